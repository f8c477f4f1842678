"""Depthwise convolution on the CPU (``groups == C``, one input channel per group): direct
Numba loops, no packing.

With one input channel per group a GEMM would multiply a ``(pixels, kh*kw)`` matrix by a
``(kh*kw, m)`` one — ``m`` outputs per packed value — so packing costs more than the products.
These kernels read the NCHW planes directly. Output channel ``o`` reads input channel
``o // m`` (``m = O / C``, PyTorch's channel multiplier). Each kernel owns whole planes, so
chunks of planes run concurrently on the worker threads (:mod:`.threads`) with no two
writing the same value: forward by output plane, grad-input by input plane (it sums its
``m`` output planes), grad-weight by output channel (it sums over the batch).

For each output row and tap, the valid output columns ``b0 .. b1-1`` (those whose tap falls
inside the input row) are computed once, so the innermost loop has no bounds tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import by_worker, parallel_map, split

Pair = tuple[int, int]
CHUNK_BYTES = 4 * 2**20


@njit(cache=True, nogil=True)
def _cols(off, sw, W, OW):
    """The output columns b with ``0 <= b*sw + off < W``: ``range(b0, b1)``."""
    b0 = max(0, (-off + sw - 1) // sw)
    b1 = min(OW, (W - off + sw - 1) // sw)
    return b0, max(b0, b1)


@njit(cache=True, nogil=True)
def forward_planes(x, w, p0, p1, sh, sw, ph, pw, dh, dw, y):
    """``y[n, o] = sum_ij w[o, 0, i, j] * x[n, o // m]`` shifted, for planes ``n*O + o``."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    O, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    m = O // C
    for pl in range(p0, p1):
        n, o = pl // O, pl % O
        c = o // m
        for a in range(OH):
            for b in range(OW):
                y[n, o, a, b] = 0
            for i in range(kh):
                h = a * sh + i * dh - ph
                if h < 0 or h >= H:
                    continue
                for j in range(kw):
                    off = j * dw - pw
                    b0, b1 = _cols(off, sw, W, OW)
                    wv = w[o, 0, i, j]
                    yr, xr = y[n, o, a], x[n, c, h]
                    if sw == 1:  # unit stride: a vectorisable axpy
                        for b in range(b0, b1):
                            yr[b] += wv * xr[b + off]
                    else:
                        for b in range(b0, b1):
                            yr[b] += wv * xr[b * sw + off]


@njit(cache=True, nogil=True)
def grad_input_planes(gy, w, p0, p1, sh, sw, ph, pw, dh, dw, gx):
    """``gx[n, c]``: the adjoint of :func:`forward_planes`, for input planes ``n*C + c``."""
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    O, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    OH, OW = gy.shape[2], gy.shape[3]
    m = O // C
    for pl in range(p0, p1):
        n, c = pl // C, pl % C
        for h in range(H):
            for v in range(W):
                gx[n, c, h, v] = 0
        for o in range(c * m, (c + 1) * m):
            for a in range(OH):
                for i in range(kh):
                    h = a * sh + i * dh - ph
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        off = j * dw - pw
                        b0, b1 = _cols(off, sw, W, OW)
                        wv = w[o, 0, i, j]
                        gr, gyr = gx[n, c, h], gy[n, o, a]
                        if sw == 1:
                            for b in range(b0, b1):
                                gr[b + off] += wv * gyr[b]
                        else:
                            for b in range(b0, b1):
                                gr[b * sw + off] += wv * gyr[b]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def grad_weight_channels(x, gy, o0, o1, sh, sw, ph, pw, dh, dw, gw):
    """``gw[o, 0, i, j] = sum_n,a,b gy[n, o, a, b] * x[n, o // m, ...]`` for ``o`` in
    ``[o0, o1)`` (accumulated in float64)."""
    N, C, H, W = x.shape
    O, kh, kw = gw.shape[0], gw.shape[2], gw.shape[3]
    OH, OW = gy.shape[2], gy.shape[3]
    m = O // C
    for o in range(o0, o1):
        c = o // m
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                b0, b1 = _cols(off, sw, W, OW)
                acc = 0.0
                for n in range(N):
                    for a in range(OH):
                        h = a * sh + i * dh - ph
                        if h < 0 or h >= H:
                            continue
                        gyr, xr = gy[n, o, a], x[n, c, h]
                        if sw == 1:
                            for b in range(b0, b1):
                                acc += gyr[b] * xr[b + off]
                        else:
                            for b in range(b0, b1):
                                acc += gyr[b] * xr[b * sw + off]
                gw[o, 0, i, j] = acc


def _run(kernel, count: int, bytes_per_item: int, *args) -> None:
    def work(chunks: list[range]) -> None:
        for r in chunks:
            kernel(*args[:2], r.start, r.stop, *args[2:])

    parallel_map(work, by_worker(split(count, bytes_per_item, CHUNK_BYTES)))


def _flat(stride: Pair, padding: Pair, dilation: Pair) -> tuple[int, ...]:
    return (stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1])


def conv2d(x, w, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """Depthwise :func:`minigan.kernels.cpu.conv.conv2d` (``w`` of shape (C*m, 1, kh, kw))."""
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    N, O = x.shape[0], w.shape[0]
    y = np.empty((N, O, *out_hw), dtype=x.dtype)
    plane = (x.shape[2] * x.shape[3] + out_hw[0] * out_hw[1]) * x.itemsize
    _run(forward_planes, N * O, plane, x, w, *_flat(stride, padding, dilation), y)
    return y


def conv2d_grad_input(gy, w, x_shape, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """Depthwise grad-input (= depthwise ``conv_transpose2d``)."""
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w, dtype=gy.dtype)
    N, C = x_shape[0], x_shape[1]
    gx = np.empty(tuple(x_shape), dtype=gy.dtype)
    m = w.shape[0] // C
    plane = (x_shape[2] * x_shape[3] + m * gy.shape[2] * gy.shape[3]) * gy.itemsize
    _run(grad_input_planes, N * C, plane, gy, w, *_flat(stride, padding, dilation), gx)
    return gx


def conv2d_grad_weight(x, gy, w_shape, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """Depthwise grad-weight, shape ``w_shape`` (C*m, 1, kh, kw)."""
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    gw = np.empty(tuple(w_shape), dtype=x.dtype)
    per_channel = gy.shape[0] * gy.shape[2] * gy.shape[3] * x.itemsize * 2
    geo = _flat(stride, padding, dilation)
    _run(grad_weight_channels, w_shape[0], per_channel, x, gy, *geo, gw)
    return gw
