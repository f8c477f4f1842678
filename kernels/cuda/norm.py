"""Batch norm and AdaIN on the GPU: one reduction launch and one elementwise launch per pass.

As on the CPU (:mod:`minigan.kernels.cpu.norm`) both are one computation on a grouped view
``x3[a, g, s]`` (flat index ``(a*G + g)*S + s``) whose group ``g`` is normalised with its own
statistics: ``(N, C, H*W)`` for batch norm (group = channel), ``(1, N*C, H*W)`` for AdaIN
(group = one plane).

Work split. A group is cut into ``splits`` contiguous chunks of its ``A*S`` items; block
``(g, sp)`` (grid ``(G, splits)``) handles chunk ``sp`` of group ``g``, its threads striding
through it. ``splits`` is chosen from the shape so that the grid fills the GPU a few times
over even when there are few groups (64 channels of 32x128x128 values), and is 1 when there
are many (AdaIN's N*C planes).

- reduction launch: each block reduces its chunk (per-thread sums, then a pairwise tree in
  shared memory) and writes one partial result per block — no atomics;
- elementwise launch: each block first combines its group's ``splits`` partials, in a fixed
  order (so every block of a group gets bit-identical statistics), then writes its chunk.

Numerics (float32 data, float32 accumulation). The forward sums are *shifted*: every item is
taken relative to a pivot, the group's first item, ``d = x - x[0, g, 0]``, and the kernel
accumulates ``sum(d)`` and ``sum(d*d)``. For data far from zero (``1e4 + N(0, 1)``) the naive
``sum(x*x)/n - mean^2`` loses every digit to cancellation; shifted by a value of the group,
the sums have the size of the spread, not of the offset (Chan, Golub & LeVeque 1983), and
``x - pivot`` is exact in float32 for values within a factor two of each other. Unlike
Welford's update it needs no division per item, and partials with the same pivot merge by
plain addition. Float32 accumulation keeps these memory-bound kernels at memory speed on
every GPU (float64 runs at 1/64 of the float32 rate on consumer parts); per-thread sums cover
only ``chunk / threads`` items each and are combined pairwise, which keeps the rounding error
well inside float32 tolerance (checked against the float64 CPU kernels on shifted data).
Normalisation uses ``(x - pivot) - (mean - pivot)``, never ``x - mean`` with a rounded mean.

The backward pass mirrors the CPU kernel: it accumulates ``sum(gy)``, ``sum(gy * d)`` and
``sum(d)`` with ``d = x - mean`` for the saved (rounded) mean, and removes the exact offset.

Part of the CUDA backend, imported on first use: must not import minigan's core but
:mod:`minigan.backend` (through :mod:`.launch`, for CuPy when a host function runs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, types

from .launch import (
    as_device,
    cdiv,
    compiled,
    cupy_module,
    current_stream,
    is_pow2,
    numba_type,
    sm_count,
    split_count,
)

int64 = types.int64

# Threads per block of every norm kernel (a power of two, for the reduction tree).
THREADS = 256
# Fewest items per thread before a group is split over more blocks.
MIN_ITEMS_PER_THREAD = 16


# --------------------------------------------------------------------------------------------
# Kernels (factories binding the block size and dtype; see conv.py for the pattern)
# --------------------------------------------------------------------------------------------


# The walk every kernel takes through its chunk: block (g, sp)'s thread t visits the items
# f = sp*chunk + t, + NT, + 2*NT, ... < end of group g, i.e. x3[a, g, s] with f = a*S + s,
# stepping (a, s) by (NT // S, NT % S) with a carry instead of dividing by S per item:
#
#     f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
#     while f < end:
#         i = (a * G + g) * S + s          # flat index of x3[a, g, s]
#         ...
#         f, a, s = walk_next(f, a, s, NT, da, ds, S)
#
# Both are inlined into the kernel's Numba IR before typing (inline="always"): the compiled
# code is the loop written out, and compiling to PTX needs no GPU.


@cuda.jit(device=True, inline="always")
def walk_start(sp, chunk, t, A, S, nt):
    """``(f, end, a, s, da, ds)``: the thread's first item, the chunk's end, the item as
    ``(a, s)`` and the step of ``nt`` items as ``(da, ds)``."""
    f = sp * chunk + t
    end = min(A * S, sp * chunk + chunk)
    a = f // S
    da = nt // S
    return f, end, a, f - a * S, da, nt - da * S


@cuda.jit(device=True, inline="always")
def walk_next(f, a, s, nt, da, ds, S):
    """The item ``nt`` further on: ``(f + nt, a, s)`` with ``s < S``."""
    a += da
    s += ds
    if s >= S:
        s -= S
        a += 1
    return f + nt, a, s


def _signature(dt: Any, n_arrays: int, n_ints: int, n_floats: int = 0) -> Any:
    array = types.Array(dt, 1, "C")
    return types.void(*([array] * n_arrays), *([int64] * n_ints), *([dt] * n_floats))


def make_stats(nt: int, dt: Any):
    """Partial shifted sums: ``part[g, sp] = (sum(x - pivot), sum((x - pivot)^2))`` per chunk."""
    assert is_pow2(nt)
    NT = nt

    def norm_stats(x, part, A, G, S, chunk, splits):
        s1 = cuda.shared.array(NT, dt)
        s2 = cuda.shared.array(NT, dt)
        g, sp, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        pivot = x[g * S]
        acc1, acc2 = dt(0), dt(0)
        # Walk items f = a*S + s of the chunk with stride NT, updating (a, s) without division.
        f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
        while f < end:
            d = x[(a * G + g) * S + s] - pivot
            acc1 += d
            acc2 += d * d
            f, a, s = walk_next(f, a, s, NT, da, ds, S)
        s1[t], s2[t] = acc1, acc2
        cuda.syncthreads()
        half = NT // 2
        while half > 0:  # pairwise tree over the block's threads
            if t < half:
                s1[t] += s1[t + half]
                s2[t] += s2[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            part[(g * splits + sp) * 2] = s1[0]
            part[(g * splits + sp) * 2 + 1] = s2[0]

    return norm_stats


def make_apply(nt: int, dt: Any):
    """``y = scale * (x - mean) * invstd + bias`` from the partials; also writes the statistics."""
    NT = nt

    def norm_apply(x, scale, bias, part, y, mean, invstd, A, G, S, chunk, splits, eps):
        g, sp, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        pivot = x[g * S]
        t1, t2 = dt(0), dt(0)
        for i in range(splits):  # same order in every block: identical statistics
            t1 += part[(g * splits + i) * 2]
            t2 += part[(g * splits + i) * 2 + 1]
        count = dt(A * S)
        shift = t1 / count  # mean - pivot
        var = max(t2 / count - shift * shift, dt(0))
        inv = dt(1) / math.sqrt(var + eps)
        k = scale[g] * inv
        b = bias[g]
        if sp == 0 and t == 0:
            mean[g] = pivot + shift
            invstd[g] = inv
        f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
        while f < end:
            i = (a * G + g) * S + s
            y[i] = ((x[i] - pivot) - shift) * k + b
            f, a, s = walk_next(f, a, s, NT, da, ds, S)

    return norm_apply


def make_grad_sums(nt: int, dt: Any):
    """Partial ``(sum(gy), sum(gy * d), sum(d))`` per chunk, ``d = x - mean``."""
    assert is_pow2(nt)
    NT = nt

    def norm_grad_sums(gy, x, mean, part, A, G, S, chunk, splits):
        s1 = cuda.shared.array(NT, dt)
        s2 = cuda.shared.array(NT, dt)
        s3 = cuda.shared.array(NT, dt)
        g, sp, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        m0 = mean[g]
        sg, sgd, sd = dt(0), dt(0), dt(0)
        f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
        while f < end:
            i = (a * G + g) * S + s
            d = x[i] - m0
            gv = gy[i]
            sg += gv
            sgd += gv * d
            sd += d
            f, a, s = walk_next(f, a, s, NT, da, ds, S)
        s1[t], s2[t], s3[t] = sg, sgd, sd
        cuda.syncthreads()
        half = NT // 2
        while half > 0:
            if t < half:
                s1[t] += s1[t + half]
                s2[t] += s2[t + half]
                s3[t] += s3[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            base = (g * splits + sp) * 3
            part[base], part[base + 1], part[base + 2] = s1[0], s2[0], s3[0]

    return norm_grad_sums


def make_grad_apply(nt: int, dt: Any):
    """``gx = scale*invstd * (gy - mean(gy) - xhat * mean(gy*xhat))``; also gscale and gbias."""
    NT = nt

    def norm_grad_apply(
        gy, x, scale, mean, invstd, part, gx, gscale, gbias, A, G, S, chunk, splits
    ):
        g, sp, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        sg, sgd, sd = dt(0), dt(0), dt(0)
        for i in range(splits):
            sg += part[(g * splits + i) * 3]
            sgd += part[(g * splits + i) * 3 + 1]
            sd += part[(g * splits + i) * 3 + 2]
        count = dt(A * S)
        m0 = mean[g]
        shift = sd / count  # exact mean - saved mean
        sgd -= sg * shift  # sum(gy * (x - exact mean))
        inv = invstd[g]
        if sp == 0 and t == 0:
            gbias[g] = sg
            gscale[g] = sgd * inv
        k = scale[g] * inv
        mg = sg / count
        mgx = sgd * inv * inv / count  # mean(gy * xhat) * invstd
        f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
        while f < end:
            i = (a * G + g) * S + s
            gx[i] = k * (gy[i] - mg - ((x[i] - m0) - shift) * mgx)
            f, a, s = walk_next(f, a, s, NT, da, ds, S)

    return norm_grad_apply


def make_eval(nt: int, dt: Any):
    """Eval-mode batch norm from running statistics: ``y = gamma*(x - mean)/sqrt(var+eps)+beta``."""
    NT = nt

    def norm_eval(x, scale, bias, mean, var, y, A, G, S, chunk, eps):
        g, sp, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        mu = mean[g]
        k = scale[g] / math.sqrt(var[g] + eps)
        b = bias[g]
        f, end, a, s, da, ds = walk_start(sp, chunk, t, A, S, NT)
        while f < end:
            i = (a * G + g) * S + s
            y[i] = (x[i] - mu) * k + b
            f, a, s = walk_next(f, a, s, NT, da, ds, S)

    return norm_eval


def kernel_specs(dtype: Any, threads: int = THREADS) -> dict[str, tuple[Any, Any]]:
    """``name -> (python function, signature)`` for every norm kernel: what the tests compile."""
    dt = numba_type(dtype)
    return {
        "norm_stats": (make_stats(threads, dt), _signature(dt, 2, 5)),
        "norm_apply": (make_apply(threads, dt), _signature(dt, 7, 5, 1)),
        "norm_grad_sums": (make_grad_sums(threads, dt), _signature(dt, 4, 5)),
        "norm_grad_apply": (make_grad_apply(threads, dt), _signature(dt, 9, 5)),
        "norm_eval": (make_eval(threads, dt), _signature(dt, 6, 4, 1)),
    }


def _kernel(name: str, dtype: Any, threads: int) -> Any:
    key = ("norm", name, np.dtype(dtype).str, threads)
    return compiled(key, lambda: kernel_specs(dtype, threads)[name])


# --------------------------------------------------------------------------------------------
# Device-array launchers (flat contiguous device arrays; used by the CuPy functions and the
# simulator tests)
# --------------------------------------------------------------------------------------------


def plan(A: int, G: int, S: int, n_sm: int, threads: int = THREADS) -> tuple[int, int]:
    """``(splits, chunk)`` for groups of ``A*S`` items: chunks of ``chunk`` items per block."""
    total = A * S
    splits = split_count(G, total, threads * MIN_ITEMS_PER_THREAD, n_sm)
    chunk = cdiv(total, splits)
    return cdiv(total, chunk), chunk


def _launch(kernel: Any, grid: tuple, threads: int, stream: Any, *args: Any) -> None:
    if stream is None:
        kernel[grid, threads](*args)
    else:
        kernel[grid, threads, stream](*args)


def launch_forward(
    x: Any, scale: Any, bias: Any, part: Any, y: Any, mean: Any, invstd: Any,
    shape: tuple[int, int, int], splits: int, chunk: int, eps: float,
    stream: Any = None, threads: int = THREADS,
) -> None:
    """Statistics (one launch) then normalisation (one launch). ``part``: G*splits*2 values."""
    A, G, S = shape
    grid = (G, splits)
    stats = _kernel("norm_stats", x.dtype, threads)
    _launch(stats, grid, threads, stream, x, part, A, G, S, chunk, splits)
    apply = _kernel("norm_apply", x.dtype, threads)
    args = (x, scale, bias, part, y, mean, invstd, A, G, S, chunk, splits, eps)
    _launch(apply, grid, threads, stream, *args)


def launch_backward(
    gy: Any, x: Any, scale: Any, mean: Any, invstd: Any, part: Any, gx: Any, gscale: Any,
    gbias: Any, shape: tuple[int, int, int], splits: int, chunk: int,
    stream: Any = None, threads: int = THREADS,
) -> None:
    """Gradient sums (one launch) then gx (one launch). ``part``: G*splits*3 values."""
    A, G, S = shape
    grid = (G, splits)
    sums = _kernel("norm_grad_sums", x.dtype, threads)
    _launch(sums, grid, threads, stream, gy, x, mean, part, A, G, S, chunk, splits)
    apply = _kernel("norm_grad_apply", x.dtype, threads)
    args = (gy, x, scale, mean, invstd, part, gx, gscale, gbias, A, G, S, chunk, splits)
    _launch(apply, grid, threads, stream, *args)


def launch_eval(
    x: Any, scale: Any, bias: Any, mean: Any, var: Any, y: Any,
    shape: tuple[int, int, int], splits: int, chunk: int, eps: float,
    stream: Any = None, threads: int = THREADS,
) -> None:
    """Inference-mode normalisation with given (running) statistics, one launch."""
    A, G, S = shape
    kernel = _kernel("norm_eval", x.dtype, threads)
    _launch(kernel, (G, splits), threads, stream, x, scale, bias, mean, var, y, A, G, S, chunk, eps)


# --------------------------------------------------------------------------------------------
# CuPy host functions (the kernel contract)
# --------------------------------------------------------------------------------------------


def _vector(cp: Any, v: Any, n: int, fill: float, dtype: Any) -> Any:
    """``v`` as a contiguous length-``n`` vector, or ``n`` copies of ``fill`` for None."""
    if v is None:
        return cp.full(n, fill, dtype=dtype)
    return cp.ascontiguousarray(v, dtype=dtype).reshape(n)


def _forward(x: Any, scale: Any, bias: Any, shape: tuple[int, int, int], eps: float) -> tuple:
    cp = cupy_module()
    A, G, S = shape
    y = cp.empty(x.shape, dtype=x.dtype)
    mean = cp.empty(G, dtype=x.dtype)
    invstd = cp.empty(G, dtype=x.dtype)
    splits, chunk = plan(A, G, S, sm_count(), THREADS)
    part = cp.empty(G * splits * 2, dtype=x.dtype)
    d = as_device
    launch_forward(
        d(x), d(scale), d(bias), d(part), d(y), d(mean), d(invstd),
        shape, splits, chunk, float(eps), current_stream(), THREADS,
    )
    return y, mean, invstd


def _backward(
    gy: Any, x: Any, scale: Any, mean: Any, invstd: Any, shape: tuple[int, int, int]
) -> tuple:
    cp = cupy_module()
    A, G, S = shape
    gx = cp.empty(x.shape, dtype=x.dtype)
    gscale = cp.empty(G, dtype=x.dtype)
    gbias = cp.empty(G, dtype=x.dtype)
    splits, chunk = plan(A, G, S, sm_count(), THREADS)
    part = cp.empty(G * splits * 3, dtype=x.dtype)
    d = as_device
    launch_backward(
        d(gy), d(x), d(scale), d(mean), d(invstd), d(part), d(gx), d(gscale), d(gbias),
        shape, splits, chunk, current_stream(), THREADS,
    )
    return gx, gscale, gbias


def _bn_shape(x: Any) -> tuple[int, int, int]:
    N, C = x.shape[0], x.shape[1]
    return N, C, int(np.prod(x.shape[2:], dtype=np.int64))


def _adain_shape(x: Any) -> tuple[int, int, int]:
    N, C = x.shape[0], x.shape[1]
    return 1, N * C, int(np.prod(x.shape[2:], dtype=np.int64))


def batch_norm_forward(x: Any, gamma: Any, beta: Any, eps: float) -> tuple[Any, Any, Any]:
    """Training-mode batch norm over all axes but 1. Returns ``y, mean, invstd`` (biased var)."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    C = x.shape[1]
    scale = _vector(cp, gamma, C, 1.0, x.dtype)
    bias = _vector(cp, beta, C, 0.0, x.dtype)
    return _forward(x, scale, bias, _bn_shape(x), eps)


def batch_norm_backward(
    gy: Any, x: Any, gamma: Any, mean: Any, invstd: Any
) -> tuple[Any, Any, Any]:
    """Gradients of :func:`batch_norm_forward`: ``gx, ggamma, gbeta``."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    C = x.shape[1]
    scale = _vector(cp, gamma, C, 1.0, x.dtype)
    m = _vector(cp, mean, C, 0.0, x.dtype)
    v = _vector(cp, invstd, C, 1.0, x.dtype)
    return _backward(gy, x, scale, m, v, _bn_shape(x))


def batch_norm_inference(
    x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float
) -> Any:
    """Eval-mode batch norm with running statistics, fused into one launch (not in the
    contract: the CPU path composes it from array operations)."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    A, G, S = shape = _bn_shape(x)
    y = cp.empty(x.shape, dtype=x.dtype)
    scale = _vector(cp, gamma, G, 1.0, x.dtype)
    bias = _vector(cp, beta, G, 0.0, x.dtype)
    mean = _vector(cp, running_mean, G, 0.0, x.dtype)
    var = _vector(cp, running_var, G, 1.0, x.dtype)
    splits, chunk = plan(A, G, S, sm_count(), THREADS)
    d = as_device
    launch_eval(
        d(x), d(scale), d(bias), d(mean), d(var), d(y),
        shape, splits, chunk, float(eps), current_stream(), THREADS,
    )
    return y


def adain_forward(x: Any, scale: Any, bias: Any, eps: float) -> tuple[Any, Any, Any]:
    """Adaptive instance norm: per-(n, c) statistics over H, W, then ``scale * xhat + bias``."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    N, C = x.shape[0], x.shape[1]
    s = _vector(cp, scale, N * C, 1.0, x.dtype)
    b = _vector(cp, bias, N * C, 0.0, x.dtype)
    y, mean, invstd = _forward(x, s, b, _adain_shape(x), eps)
    return y, mean.reshape(N, C), invstd.reshape(N, C)


def adain_backward(
    gy: Any, x: Any, scale: Any, mean: Any, invstd: Any
) -> tuple[Any, Any, Any]:
    """Gradients of :func:`adain_forward`: ``gx, gscale, gbias`` (the latter two shaped (N, C))."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    N, C = x.shape[0], x.shape[1]
    s = _vector(cp, scale, N * C, 1.0, x.dtype)
    m = _vector(cp, mean, N * C, 0.0, x.dtype)
    v = _vector(cp, invstd, N * C, 1.0, x.dtype)
    gx, gscale, gbias = _backward(gy, x, s, m, v, _adain_shape(x))
    return gx, gscale.reshape(N, C), gbias.reshape(N, C)
