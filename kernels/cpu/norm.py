"""Batch norm and AdaIN on the CPU: fused, parallel Numba kernels.

Both are the same computation on a ``(G, M)``-grouped view of the data — normalise each group
of values with its own mean and variance — and differ only in what a group is:

- batch norm: a group is one channel ``c`` across every sample and pixel, ``x[:, c, ...]``;
- AdaIN (instance norm): a group is one plane ``x[n, c]``.

So each kernel works on a 3-D view ``x3[a, g, s]`` whose group ``g`` is the union over ``a`` of
the contiguous rows ``x3[a, g, :]``: ``(N, C, H*W)`` for batch norm, ``(1, N*C, H*W)`` for AdaIN.
Groups are processed in parallel (ranges of groups on minigan's worker threads,
:func:`.threads.parallel_for`), and each group is read from memory once per pass while it is
hot in cache.

Numerics: statistics are accumulated in float64 and computed in two passes (mean, then the mean
of squared deviations), so float32 inputs with a large offset (``1e4 + N(0, 1)``) keep full
accuracy. Only the ``reassoc`` fast-math flag is enabled: it lets LLVM vectorise the sums
(reordering additions, as pairwise summation does), without the NaN/Inf or reciprocal
shortcuts of full fast-math.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import grain_for, num_threads, parallel_for

_FASTMATH = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _norm_forward(x3, scale, bias, eps, y3, mean, invstd, lo, hi):
    """Per-group ``y = scale * (x - mean) * invstd + bias``; ``scale``/``bias`` indexed by group."""
    A, G, S = x3.shape
    count = A * S
    for g in range(lo, hi):
        acc = 0.0
        for a in range(A):
            for s in range(S):
                acc += x3[a, g, s]
        mu = acc / count
        acc2 = 0.0
        for a in range(A):
            for s in range(S):
                d = x3[a, g, s] - mu
                acc2 += d * d
        inv = 1.0 / np.sqrt(acc2 / count + eps)
        k = scale[g] * inv
        b = bias[g]
        for a in range(A):
            for s in range(S):
                y3[a, g, s] = (x3[a, g, s] - mu) * k + b
        mean[g] = mu
        invstd[g] = inv


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _norm_backward(gy3, x3, scale, mean, invstd, gx3, gscale, gbias, lo, hi):
    """Gradients of :func:`_norm_forward` (statistics included) w.r.t. x, scale and bias.

    With ``xhat = (x - mean) * invstd``::

        gbias  = sum(gy)          gscale = sum(gy * xhat)
        gx     = scale * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))

    The given mean is rounded to the data dtype; the exact offset of the data from it is
    summed in the same pass and removed, so ``xhat`` is centred exactly.
    """
    A, G, S = x3.shape
    count = A * S
    for g in range(lo, hi):
        m0 = np.float64(mean[g])
        inv = np.float64(invstd[g])
        sg = 0.0
        sgd = 0.0
        sd = 0.0
        for a in range(A):
            for s in range(S):
                d = x3[a, g, s] - m0
                gv = np.float64(gy3[a, g, s])
                sg += gv
                sgd += gv * d
                sd += d
        mu = m0 + sd / count  # exact mean of the data (up to float64 rounding)
        sgd -= sg * (sd / count)  # sum(gy * (x - mu))
        gbias[g] = sg
        gscale[g] = sgd * inv
        k = scale[g] * inv
        mg = sg / count
        mgx = sgd * inv * inv / count  # mean(gy * xhat) * invstd
        for a in range(A):
            for s in range(S):
                gx3[a, g, s] = k * (gy3[a, g, s] - mg - (x3[a, g, s] - mu) * mgx)


# ---- batch norm with short rows: the same computation, in memory order
# A batch-norm group (a channel) is N runs of S values, one per sample, far apart in memory.
# When the runs are short (BatchNorm1d: S = 1; DCGAN's 7x7 maps: S = 49), walking one group at
# a time reads memory in scattered small pieces. These kernels instead walk the data in memory
# order, parallel over blocks of samples, each block keeping float64 partial sums for every
# group; the blocks' sums are added afterwards. Same formulas, same two-pass numerics.
ROW_BLOCKED_MAX_S = 256  # runs shorter than this (in elements) use the memory-order kernels


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _block_sums(x3, center, parts, lo, hi):
    """``parts[p, g] = sum over block p's samples of (x3[a, g, :] - center[g])``, and in
    ``parts[P + p, g]`` the same sum squared-deviation-wise (two statistics, one read)."""
    A, G, S = x3.shape
    P = parts.shape[0] // 2
    for p in range(lo, hi):
        for g in range(G):
            parts[p, g] = 0.0
            parts[P + p, g] = 0.0
        for a in range(A * p // P, A * (p + 1) // P):
            for g in range(G):
                c = np.float64(center[g])
                acc = 0.0
                acc2 = 0.0
                for s in range(S):
                    d = x3[a, g, s] - c
                    acc += d
                    acc2 += d * d
                parts[p, g] += acc
                parts[P + p, g] += acc2


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _block_backward_sums(gy3, x3, mean, parts, lo, hi):
    """Per block of samples: ``sum gy``, ``sum gy * (x - mean)``, ``sum (x - mean)`` per group."""
    A, G, S = x3.shape
    P = parts.shape[0] // 3
    for p in range(lo, hi):
        for g in range(G):
            parts[p, g] = 0.0
            parts[P + p, g] = 0.0
            parts[2 * P + p, g] = 0.0
        for a in range(A * p // P, A * (p + 1) // P):
            for g in range(G):
                m0 = np.float64(mean[g])
                sg = 0.0
                sgd = 0.0
                sd = 0.0
                for s in range(S):
                    d = x3[a, g, s] - m0
                    gv = np.float64(gy3[a, g, s])
                    sg += gv
                    sgd += gv * d
                    sd += d
                parts[p, g] += sg
                parts[P + p, g] += sgd
                parts[2 * P + p, g] += sd


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _rows_affine(x3, mu, k, b, y3, lo, hi):
    """``y = (x - mu[g]) * k[g] + b[g]``, parallel over samples."""
    A, G, S = x3.shape
    for a in range(lo, hi):
        for g in range(G):
            m, kg, bg = mu[g], k[g], b[g]
            for s in range(S):
                y3[a, g, s] = (x3[a, g, s] - m) * kg + bg


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _rows_backward(gy3, x3, mu, k, mg, mgx, gx3, lo, hi):
    """``gx = k[g] * (gy - mg[g] - (x - mu[g]) * mgx[g])``, parallel over samples."""
    A, G, S = x3.shape
    for a in range(lo, hi):
        for g in range(G):
            m, kg, mgg, mgxg = mu[g], k[g], mg[g], mgx[g]
            for s in range(S):
                gy = gy3[a, g, s]
                gx3[a, g, s] = kg * (gy - mgg - (x3[a, g, s] - m) * mgxg)


# BatchNorm1d (S = 1): the same passes on the (A, G) matrix, vectorised along the groups.
@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _block_sums_1d(x2, center, parts, lo, hi):
    A, G = x2.shape
    P = parts.shape[0] // 2
    for p in range(lo, hi):
        acc, acc2 = parts[p], parts[P + p]
        acc[:] = 0.0
        acc2[:] = 0.0
        for a in range(A * p // P, A * (p + 1) // P):
            for g in range(G):
                d = x2[a, g] - center[g]
                acc[g] += d
                acc2[g] += d * d


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _block_backward_sums_1d(gy2, x2, mean, parts, lo, hi):
    A, G = x2.shape
    P = parts.shape[0] // 3
    for p in range(lo, hi):
        sg, sgd, sd = parts[p], parts[P + p], parts[2 * P + p]
        sg[:] = 0.0
        sgd[:] = 0.0
        sd[:] = 0.0
        for a in range(A * p // P, A * (p + 1) // P):
            for g in range(G):
                d = np.float64(x2[a, g]) - mean[g]
                gv = np.float64(gy2[a, g])
                sg[g] += gv
                sgd[g] += gv * d
                sd[g] += d


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _rows_affine_1d(x2, mu, k, b, y2, lo, hi):
    A, G = x2.shape
    for a in range(lo, hi):
        for g in range(G):
            y2[a, g] = (x2[a, g] - mu[g]) * k[g] + b[g]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _rows_backward_1d(gy2, x2, mu, k, mg, mgx, gx2, lo, hi):
    A, G = x2.shape
    for a in range(lo, hi):
        for g in range(G):
            gx2[a, g] = k[g] * (gy2[a, g] - mg[g] - (x2[a, g] - mu[g]) * mgx[g])


def _run(kernel, n: int, values_per_item: int, *args) -> None:
    """``kernel(*args, lo, hi)`` over ``range(n)`` on the worker threads."""
    parallel_for(kernel, n, *args, grain=grain_for(values_per_item))


def _groups_forward(x3, scale, bias, eps, y3, mean, invstd) -> None:
    """:func:`_norm_forward`, parallel over groups (long rows; AdaIN)."""
    G = x3.shape[1]
    _run(_norm_forward, G, x3.size // max(1, G), x3, scale, bias, eps, y3, mean, invstd)


def _groups_backward(gy3, x3, scale, mean, invstd, gx3, gscale, gbias) -> None:
    """:func:`_norm_backward`, parallel over groups (long rows; AdaIN)."""
    G = x3.shape[1]
    _run(_norm_backward, G, x3.size // max(1, G), gy3, x3, scale, mean, invstd, gx3, gscale, gbias)


def _blocks(A: int) -> int:
    return max(1, min(A, 2 * num_threads()))


def _rows_forward(x3, scale, bias, eps, y3, mean, invstd) -> None:
    """:func:`_norm_forward` for short rows: mean pass, deviation pass, write pass."""
    A, G, S = x3.shape
    P, count = _blocks(A), A * S
    if S == 1:  # BatchNorm1d: the kernels for the (A, G) matrix
        x, y, sums, affine = x3[:, :, 0], y3[:, :, 0], _block_sums_1d, _rows_affine_1d
    else:
        x, y, sums, affine = x3, y3, _block_sums, _rows_affine
    parts = np.empty((2 * P, G))
    _run(sums, P, x.size // P, x, np.zeros(G), parts)
    mu = parts[:P].sum(0) / count
    _run(sums, P, x.size // P, x, mu, parts)
    d = parts[:P].sum(0) / count  # mean offset left by rounding (exactly 0 in exact arithmetic)
    var = np.maximum(parts[P:].sum(0) / count - d * d, 0.0)
    inv = 1.0 / np.sqrt(var + eps)
    mu += d
    _run(affine, A, x.size // A, x, mu, scale * inv, bias.astype(np.float64), y)
    mean[:] = mu
    invstd[:] = inv


def _rows_norm_backward(gy3, x3, scale, mean, invstd, gx3, gscale, gbias) -> None:
    """:func:`_norm_backward` for short rows: one reduction pass and one write pass."""
    A, G, S = x3.shape
    P, count = _blocks(A), A * S
    if S == 1:
        gy, x, gx = gy3[:, :, 0], x3[:, :, 0], gx3[:, :, 0]
        sums, write = _block_backward_sums_1d, _rows_backward_1d
    else:
        gy, x, gx, sums, write = gy3, x3, gx3, _block_backward_sums, _rows_backward
    parts = np.empty((3 * P, G))
    _run(sums, P, x.size // P, gy, x, mean.astype(np.float64), parts)
    sg, sgd, sd = parts[:P].sum(0), parts[P : 2 * P].sum(0), parts[2 * P :].sum(0)
    inv = invstd.astype(np.float64)
    mu = mean.astype(np.float64) + sd / count
    sgd -= sg * (sd / count)
    gbias[:] = sg
    gscale[:] = sgd * inv
    _run(write, A, x.size // A, gy, x, mu, scale * inv, sg / count, sgd * inv * inv / count, gx)


def _affine(v: np.ndarray | None, n: int, fill: float, dtype) -> np.ndarray:
    """``v`` as a contiguous vector of ``dtype``, or ``n`` copies of ``fill`` when ``v is None``."""
    if v is None:
        return np.full(n, fill, dtype=dtype)
    return np.ascontiguousarray(v, dtype=dtype).reshape(n)


def _bn_view(x: np.ndarray) -> np.ndarray:
    """``(N, C, *spatial)`` as ``(N, C, S)``: group ``c`` is ``x3[:, c, :]``."""
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def batch_norm_forward(
    x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch norm over all axes but 1. Returns ``y, mean, invstd`` (biased var)."""
    x3 = _bn_view(x)
    C = x3.shape[1]
    y = np.empty(x.shape, dtype=x.dtype)
    mean = np.empty(C, dtype=x.dtype)
    invstd = np.empty(C, dtype=x.dtype)
    scale = _affine(gamma, C, 1.0, x.dtype)
    bias = _affine(beta, C, 0.0, x.dtype)
    forward = _rows_forward if x3.shape[2] < ROW_BLOCKED_MAX_S else _groups_forward
    forward(x3, scale, bias, float(eps), y.reshape(x3.shape), mean, invstd)
    return y, mean, invstd


def batch_norm_backward(
    gy: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray | None,
    mean: np.ndarray,
    invstd: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`batch_norm_forward`: ``gx, ggamma, gbeta`` (the latter two for an
    implicit ``gamma=1, beta=0`` when ``gamma`` is None)."""
    x3 = _bn_view(x)
    gy3 = np.ascontiguousarray(gy, dtype=x.dtype).reshape(x3.shape)
    C = x3.shape[1]
    gx = np.empty(x.shape, dtype=x.dtype)
    ggamma = np.empty(C, dtype=x.dtype)
    gbeta = np.empty(C, dtype=x.dtype)
    scale = _affine(gamma, C, 1.0, x.dtype)
    m = np.ascontiguousarray(mean, dtype=x.dtype).reshape(C)
    v = np.ascontiguousarray(invstd, dtype=x.dtype).reshape(C)
    backward = _rows_norm_backward if x3.shape[2] < ROW_BLOCKED_MAX_S else _groups_backward
    backward(gy3, x3, scale, m, v, gx.reshape(x3.shape), ggamma, gbeta)
    return gx, ggamma, gbeta


def _adain_view(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` as ``(1, N*C, H*W)``: group ``n*C + c`` is the plane ``x[n, c]``."""
    N, C = x.shape[0], x.shape[1]
    return np.ascontiguousarray(x).reshape(1, N * C, -1)


def adain_forward(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive instance norm: per-(n, c) statistics over H, W, then ``scale * xhat + bias``."""
    N, C = x.shape[0], x.shape[1]
    x3 = _adain_view(x)
    y = np.empty(x.shape, dtype=x.dtype)
    mean = np.empty((N, C), dtype=x.dtype)
    invstd = np.empty((N, C), dtype=x.dtype)
    s = _affine(scale, N * C, 1.0, x.dtype)
    b = _affine(bias, N * C, 0.0, x.dtype)
    _groups_forward(x3, s, b, float(eps), y.reshape(x3.shape), mean.reshape(-1), invstd.reshape(-1))
    return y, mean, invstd


def adain_backward(
    gy: np.ndarray, x: np.ndarray, scale: np.ndarray, mean: np.ndarray, invstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`adain_forward`: ``gx, gscale, gbias`` (the latter two shaped (N, C))."""
    N, C = x.shape[0], x.shape[1]
    x3 = _adain_view(x)
    gy3 = np.ascontiguousarray(gy, dtype=x.dtype).reshape(x3.shape)
    gx = np.empty(x.shape, dtype=x.dtype)
    gscale = np.empty((N, C), dtype=x.dtype)
    gbias = np.empty((N, C), dtype=x.dtype)
    s = _affine(scale, N * C, 1.0, x.dtype)
    m = np.ascontiguousarray(mean, dtype=x.dtype).reshape(-1)
    v = np.ascontiguousarray(invstd, dtype=x.dtype).reshape(-1)
    _groups_backward(gy3, x3, s, m, v, gx.reshape(x3.shape), gscale.reshape(-1), gbias.reshape(-1))
    return gx, gscale, gbias
