"""Max pooling on the CPU: one Numba pass per direction, parallel over image planes.

PyTorch's rules: a window looks only at the input positions it covers (padding is not a
value), starts from its first such position, and moves to a later one that is greater or is
NaN — so the first maximum wins, and among NaNs the last. Each output keeps the position that
won, ``i * kw + j`` in its window (uint8; :data:`NONE` for a window that covers no input
position: its value is the dtype's lowest). The forward walks an output row at a time, one
window position after another, so that the inner loop runs along the row over the outputs
whose column is inside the input. The backward adds each output's gradient at its winner's
input position; overlapping windows add up, which is why the work is split by planes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..contract import Pair
from .threads import grain_for, parallel_for

#: the winner of a window that covers no input position
NONE = 255


@njit(cache=True, nogil=True)
def _first_inside(start, step, size):
    """The first ``b >= 0`` with ``0 <= start + b*step``, and the end of those ``< size``."""
    lo = 0 if start >= 0 else (-start + step - 1) // step
    hi = 0 if start >= size else (size - 1 - start) // step + 1
    return lo, hi


@njit(cache=True, nogil=True)
def _max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, low, y, win, lo, hi):
    """``y[p, a, b]`` = max of ``x[p, a*sh - ph + i*dh, b*sw - pw + j*dw]`` over the window's
    positions inside ``x``, and in ``win[p, a, b]`` the position ``i*kw + j`` that won."""
    H, W = x.shape[1], x.shape[2]
    OH, OW = y.shape[1], y.shape[2]
    for p in range(lo, hi):
        for a in range(OH):
            yrow, wrow = y[p, a], win[p, a]
            for b in range(OW):
                yrow[b] = low
                wrow[b] = NONE
            for i in range(kh):
                r = a * sh - ph + i * dh
                if r < 0 or r >= H:
                    continue
                xrow = x[p, r]
                for j in range(kw):
                    off = j * dw - pw
                    b0, b1 = _first_inside(off, sw, W)
                    t = i * kw + j
                    for b in range(b0, min(b1, OW)):
                        v = xrow[b * sw + off]
                        if wrow[b] == NONE or v > yrow[b] or v != v:
                            yrow[b] = v
                            wrow[b] = t


@njit(cache=True, nogil=True)
def _max_pool_backward(gy, win, kw, sh, sw, ph, pw, dh, dw, gx, lo, hi):
    """``gx[p]`` = zeros plus each ``gy[p, a, b]`` at its window's winner."""
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    for p in range(lo, hi):
        gx[p] = zero
        for a in range(OH):
            for b in range(OW):
                t = np.int64(win[p, a, b])
                if t == NONE:
                    continue
                i = t // kw
                gx[p, a * sh - ph + i * dh, b * sw - pw + (t - i * kw) * dw] += gy[p, a, b]


def _planes(a: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` as a contiguous ``(P, H, W)`` stack of planes (float16 never gets
    here: the backend computes it in float32, ``half_via_float32``)."""
    a = np.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def lowest(dtype) -> np.generic:
    """The value of a window without input positions: -inf, the integer minimum, False."""
    if dtype.kind == "f":
        return dtype.type(-np.inf)
    return dtype.type(False) if dtype.kind == "b" else dtype.type(np.iinfo(dtype).min)


def max_pool2d(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
) -> tuple[np.ndarray, np.ndarray]:
    """Max over each window of ``x``; returns ``y`` and the uint8 winners."""
    if kernel[0] * kernel[1] >= NONE:
        raise ValueError(f"max_pool2d: kernel {tuple(kernel)} has more than 254 positions")
    x3 = _planes(x)
    y = np.empty((x3.shape[0], *out_hw), dtype=x3.dtype)
    win = np.empty(y.shape, dtype=np.uint8)
    per_plane = x3.shape[1] * x3.shape[2]
    args = (x3, *kernel, *stride, *padding, *dilation, lowest(x3.dtype), y, win)
    parallel_for(_max_pool, x3.shape[0], *args, grain=grain_for(per_plane))
    shape = x.shape[:-2] + tuple(out_hw)
    return y.reshape(shape), win.reshape(shape)


def max_pool2d_backward(
    gy: np.ndarray,
    winner: np.ndarray,
    x_shape,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its ``x`` (of shape ``x_shape``)."""
    gy3, win3 = _planes(gy), _planes(winner)
    gx = np.empty((gy3.shape[0], x_shape[-2], x_shape[-1]), dtype=gy3.dtype)
    args = (gy3, win3, kernel[1], *stride, *padding, *dilation, gx)
    per_plane = x_shape[-2] * x_shape[-1]
    parallel_for(_max_pool_backward, gy3.shape[0], *args, grain=grain_for(per_plane))
    return gx.reshape(tuple(x_shape))
