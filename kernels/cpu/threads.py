"""Batch-parallel CPU work: one Python thread per core, each running single-threaded kernels.

A convolution is packing (Numba) followed by a GEMM (BLAS) per chunk of the batch. Letting
each library parallelise itself means two thread pools taking turns on the same cores, and
OpenBLAS's workers spin for a while after every GEMM, stealing the cores the packing needs
(benchmarks/NOTES.md). So the convolutions parallelise over chunks instead: every worker
packs its chunk with a ``nogil`` Numba kernel and multiplies it with a BLAS call limited to
one thread *for that worker only* (OpenBLAS's ``openblas_set_num_threads_local``), and nothing
else runs — no pool spins against another.

Where the thread-local BLAS control is missing (a NumPy linked to another BLAS, or an
OpenBLAS older than 0.3.27), :func:`parallel_map` runs the tasks one after the other in the
calling thread and BLAS parallelises each GEMM itself, as before.

>>> set_num_threads(2)
>>> parallel_map(lambda items: sum(items), [[1, 2], [3]])
[3, 3]
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "num_threads",
    "set_num_threads",
    "parallel_map",
    "parallel_for",
    "grain_for",
    "single_threaded",
    "split",
    "by_worker",
]


def _default_threads() -> int:
    env = os.environ.get("MINIGAN_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"MINIGAN_NUM_THREADS must be an integer, got {env!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None


def _forget_pool_in_child() -> None:
    """A forked child has none of the parent's threads: start a new pool when needed."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def num_threads() -> int:
    """Threads the CPU kernels use (``MINIGAN_NUM_THREADS``, else the usable cores)."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the CPU kernels (like ``torch.set_num_threads``)."""
    global _threads, _pool
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    if int(n) != _threads and _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _threads = int(n)


def _find_local_blas_control() -> Callable[[int], int] | None:
    """``openblas_set_num_threads_local`` of the OpenBLAS NumPy uses, if it has one."""
    root = Path(np.__file__).parent
    candidates = [*root.parent.glob("numpy.libs/*openblas*"), *root.glob(".dylibs/*openblas*")]
    for path in candidates:
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by NumPy: returns that same library
            fn = lib.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_blas_local = _find_local_blas_control()


def single_threaded(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` with BLAS limited to one thread in this thread (where that can be set).

    >>> import numpy as np
    >>> single_threaded(np.matmul, np.eye(2), np.ones(2))
    array([1., 1.])
    """
    if _blas_local is None:
        return fn(*args)
    previous = _blas_local(1)
    try:
        return fn(*args)
    finally:
        _blas_local(previous)


def parallel_map(task: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[task(item) for item in items]``, the items run concurrently: the first in the
    calling thread (which would otherwise only wait), each other one on a worker thread.

    ``task`` must release the GIL for its heavy parts (``nogil`` Numba kernels, NumPy's BLAS
    calls) and must not write memory another item writes. In the workers and in the calling
    thread's share, BLAS runs single-threaded.
    """
    if _threads <= 1:
        return [single_threaded(task, item) for item in items]
    if _in_worker():  # called from a task on a worker: waiting on the pool could deadlock
        return [single_threaded(task, item) for item in items]
    if len(items) <= 1 or _blas_local is None:  # one chunk: let BLAS use its own threads
        return [task(item) for item in items]
    pool = _get_pool()
    futures: list[Future[R] | None] = [None]  # the first item runs here, not on a worker
    inline: dict[int, R] = {}
    for i, item in enumerate(items[1:], 1):
        try:
            futures.append(pool.submit(single_threaded, task, item))
        except RuntimeError:  # set_num_threads shut this pool down meanwhile: run it here
            futures.append(None)
            inline[i] = single_threaded(task, item)
    try:
        inline[0] = single_threaded(task, items[0])
    finally:  # wait for every item, even after a failure: they write the output
        for f in futures:
            if f is not None:
                f.exception()
    return [inline[i] if f is None else f.result() for i, f in enumerate(futures)]


#: values below which a parallel_for kernel runs in the calling thread alone (the hand-off
#: to a worker costs 40-100 us: benchmarks/NOTES.md item 36)
GRAIN_VALUES = 1 << 16


def grain_for(values_per_item: int) -> int:
    """``parallel_for``'s ``grain`` for items of ``values_per_item`` values each."""
    return max(1, GRAIN_VALUES // max(1, values_per_item))


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads, thread_name_prefix="minigan-cpu")
    return _pool


def _in_worker() -> bool:
    return threading.current_thread().name.startswith("minigan-cpu")


def parallel_for(kernel: Callable[..., None], n: int, *args: Any, grain: int = 1) -> None:
    """``kernel(*args, lo, hi)`` over ``range(n)``, cut into one contiguous part per thread
    of at least ``grain`` items; the calling thread runs the first part itself.

    For the norm and elementwise kernels (``nogil`` Numba loops over ``range(lo, hi)``, no
    BLAS): they run on the same worker threads as the convolutions, which wait on a queue
    between tasks. Numba's own ``prange`` pool (OpenMP) spins after every parallel loop,
    stealing the cores from the workers and BLAS that run next (benchmarks/NOTES.md).

    >>> import numpy as np
    >>> out = np.zeros(5)
    >>> def fill(out, lo, hi): out[lo:hi] = np.arange(lo, hi)
    >>> parallel_for(fill, 5, out, grain=2)
    >>> out.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    parts = min(_threads, n // max(1, grain))
    if parts <= 1 or _in_worker():  # small, or already on a worker: no hand-off
        if n > 0:
            kernel(*args, 0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    pool, futures, errors = _get_pool(), [], []
    for lo, hi in zip(bounds[1:-1], bounds[2:]):
        try:
            futures.append(pool.submit(kernel, *args, lo, hi))
        except RuntimeError:  # set_num_threads shut this pool down meanwhile: run it here
            kernel(*args, lo, hi)
    try:
        kernel(*args, bounds[0], bounds[1])
    except BaseException as e:  # noqa: BLE001 - re-raised below, once every part is done
        errors.append(e)
    for f in futures:  # wait for every part, even after a failure: they write the output
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    if errors:
        raise errors[0]


def split(n: int, bytes_per_item: int, target_bytes: int) -> list[range]:
    """Cut ``range(n)`` into contiguous chunks of about ``target_bytes`` each, in a multiple of
    :func:`num_threads` chunks of near-equal size (so every worker gets the same work).

    >>> set_num_threads(2)
    >>> split(10, 1, 4)
    [range(0, 2), range(2, 5), range(5, 7), range(7, 10)]
    >>> split(1, 1000, 10)
    [range(0, 1)]
    """
    if n <= 0:
        return []
    per_thread = -(-n // _threads)
    rounds = max(1, -(-per_thread * bytes_per_item // max(1, target_bytes)))
    parts = min(n, _threads * rounds)
    bounds = [n * i // parts for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def by_worker(chunks: Sequence[T]) -> list[list[T]]:
    """Deal ``chunks`` round-robin into one list per worker (empty lists dropped).

    >>> set_num_threads(2)
    >>> by_worker([1, 2, 3])
    [[1, 3], [2]]
    """
    return [list(chunks[t::_threads]) for t in range(min(_threads, len(chunks)))]
