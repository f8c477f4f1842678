"""Winograd F(2x2, 3x3) for stride-1, dilation-1, ungrouped 3x3 convolutions (Lavin & Gray 2016).

Each 2x2 block of output pixels (a *tile*, ``p = (n*TH + ty)*TW + tx``) is computed from the
4x4 input block at ``(2*ty - ph, 2*tx - pw)`` by ::

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          (per input channel, summed over channels)

so a chunk of tiles costs, for the 16 positions ξ of the 4x4 transformed tile, 16 GEMMs
``M[ξ] (tiles, O) = V[ξ] (tiles, C) @ U[ξ] (C, O)`` — one batched ``np.matmul`` — instead of
im2row's ``rows (4*tiles, 9*C) @ (9*C, O)``: 16 multiply-adds per tile and channel pair instead
of 36 (2.25x fewer), and a transformed input of 16*C values per tile instead of 36*C.

- :func:`weight_transform`: ``U = G g G^T`` for all (o, c), in float64, as ``(16, C, O)``;
- :func:`input_transform`: ``V = B^T d B`` from the channels-last input, as ``(16, tiles, C)``
  (zeros outside the image: the padding);
- :func:`output_transform`: ``Y = A^T M A`` into NCHW, dropping the pixels of edge tiles that
  fall outside an odd-sized output.

The transforms' coefficients are 0, ±1 and ±1/2: in float32 the result differs from the
direct sum by a few ulps of the larger partial sums (tests/test_kernels.py checks it against
a float64 reference at the conv kernels' tolerance). :mod:`.conv` decides when to use it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import grain_for, parallel_for

# g (3 taps) -> the 4 values G g that the 4x4 input transform pairs with
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def tiles(oh: int, ow: int) -> tuple[int, int]:
    """Tiles per output column and row: ``(ceil(oh/2), ceil(ow/2))``."""
    return (oh + 1) // 2, (ow + 1) // 2


@njit(cache=True, nogil=True)
def _weight_transform(w, u, lo, hi):
    """``u[a*4 + b, c, o] = (G w[o, c] G^T)[a, b]`` in float64 arithmetic, for c in [lo, hi)."""
    O = w.shape[0]
    t = np.empty((4, 3))  # G g: rows a, columns j
    for c in range(lo, hi):
        for o in range(O):
            g = w[o, c]
            for j in range(3):
                g0, g1, g2 = np.float64(g[0, j]), np.float64(g[1, j]), np.float64(g[2, j])
                t[0, j] = g0
                t[1, j] = 0.5 * (g0 + g1 + g2)
                t[2, j] = 0.5 * (g0 - g1 + g2)
                t[3, j] = g2
            for a in range(4):
                t0, t1, t2 = t[a, 0], t[a, 1], t[a, 2]
                u[4 * a, c, o] = t0
                u[4 * a + 1, c, o] = 0.5 * (t0 + t1 + t2)
                u[4 * a + 2, c, o] = 0.5 * (t0 - t1 + t2)
                u[4 * a + 3, c, o] = t2


def weight_transform(w: np.ndarray, dtype) -> np.ndarray:
    """``U[ξ, c, o] = (G w[o, c] G^T)[ξ]`` for ``w`` (O, C, 3, 3), computed in float64.

    >>> w = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> bool(np.allclose(weight_transform(w, np.float64)[:, 0, 0], (G @ w[0, 0] @ G.T).ravel()))
    True
    """
    O, C = w.shape[0], w.shape[1]
    compiled = np.dtype(dtype) in (np.float32, np.float64)  # Numba has no float16
    u = np.empty((16, C, O), dtype=dtype if compiled else np.float64)
    wc = np.ascontiguousarray(w, dtype=None if w.dtype in (np.float32, np.float64) else np.float64)
    parallel_for(_weight_transform, C, wc, u, grain=grain_for(16 * O))  # 16*O outputs a channel
    return u if compiled else u.astype(dtype)


@njit(cache=True, nogil=True, inline="always")
def _transform_4x4(src, b, rs, cs, v, q, c):
    """``v[q, :, c] = B^T d B`` for ``d[i, j] = src[b + i*rs + j*cs]``."""
    d00, d01, d02, d03 = src[b], src[b + cs], src[b + 2 * cs], src[b + 3 * cs]
    b1 = b + rs
    d10, d11, d12, d13 = src[b1], src[b1 + cs], src[b1 + 2 * cs], src[b1 + 3 * cs]
    b2 = b1 + rs
    d20, d21, d22, d23 = src[b2], src[b2 + cs], src[b2 + 2 * cs], src[b2 + 3 * cs]
    b3 = b2 + rs
    d30, d31, d32, d33 = src[b3], src[b3 + cs], src[b3 + 2 * cs], src[b3 + 3 * cs]
    # t = B^T d, row by row
    t00, t01, t02, t03 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
    t10, t11, t12, t13 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
    t20, t21, t22, t23 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
    t30, t31, t32, t33 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
    # v = t B, column combinations of each row
    v[q, 0, c], v[q, 1, c], v[q, 2, c], v[q, 3, c] = t00 - t02, t01 + t02, t02 - t01, t01 - t03
    v[q, 4, c], v[q, 5, c], v[q, 6, c], v[q, 7, c] = t10 - t12, t11 + t12, t12 - t11, t11 - t13
    v[q, 8, c], v[q, 9, c], v[q, 10, c], v[q, 11, c] = t20 - t22, t21 + t22, t22 - t21, t21 - t23
    v[q, 12, c], v[q, 13, c], v[q, 14, c], v[q, 15, c] = (
        t30 - t32,
        t31 + t32,
        t32 - t31,
        t31 - t33,
    )


@njit(cache=True, nogil=True)
def input_transform(xt, ph, pw, th, tw, p0, p1, v):
    """``v[ξ, p - p0, c] = (B^T d B)[ξ]`` for the tiles ``p`` in ``[p0, p1)``, where ``d`` is the
    4x4 block of channel c of ``xt`` (N, H, W, C) at ``(2*ty - ph, 2*tx - pw)``, zero outside.

    ``B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]``. A tile inside the
    image reads ``xt`` directly (contiguous runs over c, which the compiler vectorises); an
    edge tile first copies its block, zero-padded, into a small (4, 4, C) scratch.
    """
    H, W, C = xt.shape[1], xt.shape[2], xt.shape[3]
    xf = xt.reshape(xt.size)
    pad = np.zeros(16 * C, xt.dtype)
    per_image = th * tw
    for p in range(p0, p1):
        n = p // per_image
        ty = (p % per_image) // tw
        tx = p % tw
        h0, w0 = 2 * ty - ph, 2 * tx - pw
        q = p - p0
        if h0 >= 0 and w0 >= 0 and h0 + 4 <= H and w0 + 4 <= W:
            base = ((n * H + h0) * W + w0) * C
            for c in range(C):
                _transform_4x4(xf, base + c, W * C, C, v, q, c)
            continue
        for i in range(4):
            h = h0 + i
            for j in range(4):
                w = w0 + j
                k = (4 * i + j) * C
                if 0 <= h < H and 0 <= w < W:
                    s = ((n * H + h) * W + w) * C
                    for c in range(C):
                        pad[k + c] = xf[s + c]
                else:
                    for c in range(C):
                        pad[k + c] = 0
        for c in range(C):
            _transform_4x4(pad, c, 4 * C, C, v, q, c)


@njit(cache=True, nogil=True)
def output_transform(m, th, tw, p0, p1, y):
    """``y[n, o, 2*ty + a, 2*tx + b] = (A^T M A)[a, b]`` with ``M[ξ] = m[ξ, p - p0, o]`` for the
    tiles ``p`` in ``[p0, p1)`` (pixels outside ``y`` dropped); ``y`` is (N, O, OH, OW).

    ``A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]``.
    """
    O, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    per_image = th * tw
    for p in range(p0, p1):
        n = p // per_image
        ty = (p % per_image) // tw
        tx = p % tw
        a0, b0 = 2 * ty, 2 * tx
        q = p - p0
        two_rows, two_cols = a0 + 1 < OH, b0 + 1 < OW
        for o in range(O):
            # s = A^T M (2 x 4)
            s00 = m[q, 0, o] + m[q, 4, o] + m[q, 8, o]
            s01 = m[q, 1, o] + m[q, 5, o] + m[q, 9, o]
            s02 = m[q, 2, o] + m[q, 6, o] + m[q, 10, o]
            s03 = m[q, 3, o] + m[q, 7, o] + m[q, 11, o]
            s10 = m[q, 4, o] - m[q, 8, o] - m[q, 12, o]
            s11 = m[q, 5, o] - m[q, 9, o] - m[q, 13, o]
            s12 = m[q, 6, o] - m[q, 10, o] - m[q, 14, o]
            s13 = m[q, 7, o] - m[q, 11, o] - m[q, 15, o]
            # y = s A (2 x 2)
            y[n, o, a0, b0] = s00 + s01 + s02
            if two_cols:
                y[n, o, a0, b0 + 1] = s01 - s02 - s03
            if two_rows:
                y[n, o, a0 + 1, b0] = s10 + s11 + s12
                if two_cols:
                    y[n, o, a0 + 1, b0 + 1] = s11 - s12 - s13
