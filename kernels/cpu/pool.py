"""Max pooling on the CPU: one Numba pass per direction, parallel over image planes.

The forward reads each window once and keeps, per output, the maximum and the position that
won (``i * kw + j``, the first maximum; a NaN wins over numbers and the first NaN stays, as in
PyTorch). It walks an output row at a time, one window position after another, so that the
inner loop runs along the row. The backward adds each output's gradient to its winner's
input position; overlapping windows add up, which is why the work is split by planes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..contract import Pair
from .threads import parallel_for

#: input values below which a call runs in the calling thread alone
GRAIN = 1 << 16


@njit(cache=True, nogil=True)
def _max_pool(x, kh, kw, sh, sw, dh, dw, y, win, lo, hi):
    """``y[p, a, b]`` = max of ``x[p, a*sh + i*dh, b*sw + j*dw]`` over the window, and in
    ``win[p, a, b]`` the position ``i*kw + j`` of the first maximum."""
    OH, OW = y.shape[1], y.shape[2]
    for p in range(lo, hi):
        for a in range(OH):
            yrow, wrow = y[p, a], win[p, a]
            xrow = x[p, a * sh]
            for b in range(OW):
                yrow[b] = xrow[b * sw]
                wrow[b] = 0
            for t in range(1, kh * kw):
                i = t // kw
                xrow = x[p, a * sh + i * dh]
                off = (t - i * kw) * dw
                for b in range(OW):
                    v = xrow[b * sw + off]
                    cur = yrow[b]
                    if v > cur or (v != v and cur == cur):
                        yrow[b] = v
                        wrow[b] = t


@njit(cache=True, nogil=True)
def _max_pool_backward(gy, win, kw, sh, sw, dh, dw, gx, lo, hi):
    """``gx[p]`` = zeros plus each ``gy[p, a, b]`` at its window's winner."""
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    for p in range(lo, hi):
        gx[p] = zero
        for a in range(OH):
            for b in range(OW):
                t = np.int64(win[p, a, b])
                i = t // kw
                gx[p, a * sh + i * dh, b * sw + (t - i * kw) * dw] += gy[p, a, b]


def _planes(a: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` as a contiguous ``(P, H, W)`` stack of planes; float16 (which Numba
    does not compile) as float32, where every float16 value and the order are exact."""
    a = a.astype(np.float32) if a.dtype == np.float16 else np.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def max_pool2d(
    x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair
) -> tuple[np.ndarray, np.ndarray]:
    """Max over each window of the (padded) ``x``; returns ``y`` and the uint8 winners."""
    x3 = _planes(x)
    y = np.empty((x3.shape[0], *out_hw), dtype=x3.dtype)
    win = np.empty(y.shape, dtype=np.uint8)
    per_plane = x3.shape[1] * x3.shape[2]
    args = (x3, *kernel, *stride, *dilation, y, win)
    parallel_for(_max_pool, x3.shape[0], *args, grain=max(1, GRAIN // per_plane))
    shape = x.shape[:-2] + tuple(out_hw)
    return y.reshape(shape).astype(x.dtype, copy=False), win.reshape(shape)


def max_pool2d_backward(
    gy: np.ndarray, winner: np.ndarray, x_shape, kernel: Pair, stride: Pair, dilation: Pair
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its ``x`` (of shape ``x_shape``)."""
    gy3, win3 = _planes(gy), _planes(winner)
    gx = np.empty((gy3.shape[0], x_shape[-2], x_shape[-1]), dtype=gy3.dtype)
    args = (gy3, win3, kernel[1], *stride, *dilation, gx)
    per_plane = x_shape[-2] * x_shape[-1]
    parallel_for(_max_pool_backward, gy3.shape[0], *args, grain=max(1, GRAIN // per_plane))
    return gx.reshape(tuple(x_shape)).astype(gy.dtype, copy=False)
