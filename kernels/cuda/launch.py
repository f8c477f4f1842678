"""Plumbing shared by the CUDA kernels: compile-once caches, streams, CuPy interop, autotuning.

Nothing here imports CuPy or ``numba.cuda`` at import time. ``numba.cuda`` (1–2 s to import)
is imported by :mod:`.conv` and :mod:`.norm`, which the package imports on first use; CuPy is
imported only by the host wrappers that are handed CuPy arrays.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# Compile once: kernels are built by factories (tile sizes baked in as constants) and compiled
# for one explicit signature per dtype, the first time that (kernel, dtype, tiles) is launched.
# --------------------------------------------------------------------------------------------

_COMPILED: dict[Hashable, Any] = {}


def numba_type(dtype: Any) -> Any:
    """The Numba scalar type of a NumPy dtype (float32 or float64 only)."""
    from numba import types

    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return types.float32
    if dtype == np.float64:
        return types.float64
    raise TypeError(f"minigan CUDA kernels support float32 and float64, not {dtype}")


def compiled(key: Hashable, build: Callable[[], tuple[Callable, Any]]) -> Any:
    """The kernel for ``key``, compiled on first use from ``build() -> (pyfunc, signature)``.

    One explicit signature per kernel means exactly one compilation per process, and no
    type dispatch on the launch path.
    """
    kernel = _COMPILED.get(key)
    if kernel is None:
        from numba import cuda

        pyfunc, sig = build()
        kernel = _COMPILED[key] = cuda.jit(sig)(pyfunc)
    return kernel


def cdiv(a: int, b: int) -> int:
    """Ceiling division, for grid sizes."""
    return -(-a // b)


# --------------------------------------------------------------------------------------------
# CuPy interop: CuPy arrays become Numba device arrays without a copy, kernels run on CuPy's
# current stream.
# --------------------------------------------------------------------------------------------


def cupy_module() -> Any:
    """CuPy, or a RuntimeError that says what to install (see :func:`minigan.backend.cupy`)."""
    from minigan.backend import cupy

    return cupy()


_STREAMS: dict[int, Any] = {}


def current_stream() -> Any:
    """CuPy's current stream as a Numba stream object (cached per stream pointer).

    Launching there orders our kernels with CuPy's own work without any host synchronisation.
    """
    from numba import cuda

    ptr = cupy_module().cuda.get_current_stream().ptr
    stream = _STREAMS.get(ptr)
    if stream is None:
        stream = _STREAMS[ptr] = cuda.external_stream(ptr)
    return stream


def as_device(a: Any) -> Any:
    """A contiguous CuPy array as a flat Numba device array, sharing its memory.

    ``sync=False``: Numba would otherwise *synchronise the host* with the stream named in the
    array's ``__cuda_array_interface__`` before every launch. We launch on that same stream
    (CuPy's current one), so stream order already guarantees the data is ready.
    """
    from numba import cuda

    flat = a.reshape(-1)
    return cuda.from_cuda_array_interface(flat.__cuda_array_interface__, owner=flat, sync=False)


_SM_COUNT: dict[int, int] = {}


def sm_count() -> int:
    """Number of streaming multiprocessors of CuPy's current device (cached)."""
    cp = cupy_module()
    dev = cp.cuda.Device()
    if dev.id not in _SM_COUNT:
        _SM_COUNT[dev.id] = int(dev.attributes["MultiProcessorCount"])
    return _SM_COUNT[dev.id]


# --------------------------------------------------------------------------------------------
# Autotuning: where two strategies exist, measure each once per key and remember the winner.
# --------------------------------------------------------------------------------------------

Timer = Callable[[Callable[[], object]], float]


def cuda_event_timer(fn: Callable[[], object], warmup: int = 1, reps: int = 3) -> float:
    """Seconds per call of ``fn`` on CuPy's current stream, measured with CUDA events.

    The warm-up call pays compilation and allocation; the one host synchronisation waits for
    the end event. It runs once per new shape, never in the steady state.
    """
    cp = cupy_module()
    for _ in range(warmup):
        fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3 / reps


@dataclass
class Autotuner:
    """Pick the fastest of several interchangeable implementations, per key, once.

    ``pick(key, candidates)`` times every candidate the first time ``key`` is seen and caches
    the fastest name; later calls return it without timing anything. A candidate that raises
    (say, out of memory) counts as infinitely slow, unless all do. ``force`` (or the
    environment variable named by ``env``) bypasses the measurement with a fixed choice.
    """

    timer: Timer = cuda_event_timer
    env: str = "MINIGAN_CUDA_CONV"
    force: str | None = None

    def __post_init__(self) -> None:
        self.choices: dict[Hashable, str] = {}
        self.timings: dict[Hashable, dict[str, float]] = {}

    def pick(self, key: Hashable, candidates: dict[str, Callable[[], object]]) -> str:
        forced = self.force or os.environ.get(self.env)
        if forced:
            if forced not in candidates:
                raise ValueError(f"{self.env}={forced!r}: expected one of {sorted(candidates)}")
            return forced
        if key not in self.choices:
            if len(candidates) == 1:
                (self.choices[key],) = candidates
            else:
                times, errors = {}, {}
                for name, fn in candidates.items():
                    try:
                        times[name] = self.timer(fn)
                    except Exception as e:  # e.g. out of memory for im2col's buffer
                        times[name], errors[name] = math.inf, e
                if len(errors) == len(candidates):
                    raise next(iter(errors.values()))
                self.timings[key] = times
                self.choices[key] = min(times, key=lambda name: (times[name], name))
        return self.choices[key]


def split_count(groups: int, length: int, min_length: int, n_sm: int, waves: int = 4) -> int:
    """How many blocks to split each of ``groups`` reductions of ``length`` items across.

    Enough blocks in total to fill the GPU ``waves`` times over, but no block with fewer than
    ``min_length`` items (splitting further would only add partial results to merge).
    """
    want = cdiv(waves * n_sm, max(1, groups))
    return int(max(1, min(want, length // max(1, min_length))))


def is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def gcd_step(stride: int, dilation: int) -> int:
    """Distance between the kernel taps that reach the same input phase: ``s / gcd(s, d)``."""
    return stride // math.gcd(stride, dilation)
