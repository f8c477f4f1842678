"""Matrix products on the CPU, run on the kernels' worker threads.

NumPy's ``a @ b`` lets OpenBLAS parallelise with its own thread pool, whose threads then spin
for a while after every call — against the convolution workers of :mod:`.threads` that run
next (benchmarks/NOTES.md). So minigan's products go through the same workers: a large 2-D
product is cut into one block of output rows (or columns) per worker, each multiplied by a
single-threaded BLAS call; anything else runs in the calling thread with BLAS limited to one
thread. OpenBLAS's own pool is never woken.
"""

from __future__ import annotations

import numpy as np

from .threads import by_worker, parallel_map, single_threaded, split

# Products with fewer multiply-adds than this run in the calling thread (measured: below
# ~1 MFLOP the hand-off to the workers costs more than it saves).
PARALLEL_MIN_MACS = 2**19


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with NumPy's semantics (1-D operands, broadcast batch dimensions)."""
    plain = a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]  # NumPy's rules/errors
    if plain or a.shape[0] * a.shape[1] * b.shape[1] < PARALLEL_MIN_MACS:
        return single_threaded(np.matmul, a, b)
    M, N = a.shape[0], b.shape[1]
    out = np.empty((M, N), dtype=np.result_type(a, b))
    if M >= N:  # blocks of rows: out[r] = a[r] @ b

        def rows(blocks: list[range]) -> None:
            for r in blocks:
                np.matmul(a[r.start : r.stop], b, out=out[r.start : r.stop])

        parallel_map(rows, by_worker(split(M, 0, 1)))  # one block per worker
    else:  # blocks of columns: out[:, c] = a @ b[:, c]

        def cols(blocks: list[range]) -> None:
            for c in blocks:
                out[:, c.start : c.stop] = a @ b[:, c.start : c.stop]

        parallel_map(cols, by_worker(split(N, 0, 1)))  # one block per worker
    return out
