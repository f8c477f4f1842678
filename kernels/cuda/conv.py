"""2-D convolution on the GPU: tiled shared-memory implicit GEMM, and im2col + cuBLAS.

All three passes are matrix products whose operands are *views* of the tensors, gathered on
the fly while a tile is loaded into shared memory (an "implicit GEMM": the im2col matrix is
never written to memory). With ``K = C*kh*kw`` (index ``k = (c, ky, kx)``, the memory order of
``w``) and ``P = N*OH*OW`` (index ``p = (n, oy, ox)``)::

    forward        y[o, p]  = sum_k  w[o, k]  * cols[k, p]          cols[k, p] = x at the tap
    grad-weight    gw[o, k] = sum_p  gy[o, p] * cols[k, p]          (reduction split over p)
    grad-input     gx[c, q] = sum_k' wt[c, k'] * gcols[k', q]        one GEMM per stride phase

Every kernel computes one ``BM x BN`` output tile per thread block: ``TY x TX`` threads, each
holding an ``RM x RN`` register tile, strided by the thread grid so that shared-memory reads
broadcast and global stores coalesce. The reduction dimension is walked in steps of ``BK``:
the block loads a ``BK x BM`` slice of the left operand and a ``BK x BN`` slice of the right
one into shared memory, synchronises, and every thread does ``BK * RM * RN`` fused
multiply-adds from shared memory. Accumulation is in the data type (float32 for float32).

Index arithmetic is kept out of the inner loops: the ``(c, ky, kx)`` decomposition of the
current ``BK`` reduction indices is computed once per tile by ``BK`` threads into small
shared tables, and each thread decomposes its own (fixed) output column once.

grad-input is a *gather*: each input pixel sums the ``(o, ky, kx)`` that reach it, so no two
threads write the same value and no atomics are needed. For stride ``s`` only the taps with
``ky*d = iy + p (mod s)`` reach row ``iy``; grouping input pixels by their phase
``(iy mod sh, ix mod sw)`` (grid axis z) turns each phase into a dense GEMM over just those
taps, instead of a GEMM over all taps of which ``1 - 1/s^2`` would be zeros.

Groups (PyTorch's grouped and depthwise convolutions, ``w`` of shape ``(O, C/G, kh, kw)``) are
a grid dimension, not a loop: the output-channel (or, for grad-input, input-channel) tiles of
all ``G`` groups share grid axis y, each block finding its group ``g`` from its tile index and
offsetting its channels by ``g*C/G`` (input) and ``g*O/G`` (output); the reduction then runs
over the group's ``C/G`` (or ``O/G``) channels only. The im2col strategy writes the full
column matrix and hands all groups to one batched ``cupy.matmul``.

grad-weight reduces over all ``N*OH*OW`` pixels but has only ``O*K`` outputs, too few tiles to
fill a GPU; the reduction is split over grid axis z into contiguous chunks, each writing its
own partial ``(O, K)`` slice, and a second kernel sums the slices in a fixed order
(deterministic, no atomics).

The alternative strategy, ``im2col``, writes the ``cols`` matrix explicitly and hands the
product to cuBLAS through ``cupy.matmul`` (``col2im``, a gather, for grad-input). Which one is
faster depends on the shape; :data:`AUTOTUNER` measures both once per shape and caches the
winner.

Part of the CUDA backend, imported on first use: must not import minigan's core but
:mod:`minigan.backend` (through :mod:`.launch`, for CuPy when a host function runs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numba import cuda, types

from ..contract import conv_output_size
from .launch import (
    Autotuner,
    as_device,
    cdiv,
    compiled,
    cupy_module,
    current_stream,
    gcd_step,
    numba_type,
    sm_count,
)

Pair = tuple[int, int]
int64 = types.int64


# --------------------------------------------------------------------------------------------
# Shapes and launch configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvGeometry:
    """Every integer a conv kernel needs, in the order the kernels take them."""

    N: int
    C: int
    H: int
    W: int
    O: int
    OH: int
    OW: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    G: int = 1  # groups: w is (O, C/G, kh, kw)

    @classmethod
    def of(
        cls, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Pair, padding: Pair,
        dilation: Pair, groups: int = 1,
    ) -> ConvGeometry:
        N, C, H, W = (int(v) for v in x_shape)
        O, Cg, kh, kw = (int(v) for v in w_shape)
        G = int(groups)
        if G < 1 or C % G or O % G or Cg != C // G:
            raise ValueError(
                f"conv2d: weight {tuple(w_shape)} does not fit input {tuple(x_shape)} with "
                f"groups={G}"
            )
        sh, sw = int(stride[0]), int(stride[1])
        ph, pw = int(padding[0]), int(padding[1])
        dh, dw = int(dilation[0]), int(dilation[1])
        OH, OW = conv_output_size(H, kh, sh, ph, dh), conv_output_size(W, kw, sw, pw, dw)
        if OH < 1 or OW < 1:
            raise ValueError(f"conv2d: empty output for input {x_shape} and weight {w_shape}")
        return cls(N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G)

    @property
    def args(self) -> tuple[int, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @property
    def K(self) -> int:
        """Rows of the full column matrix: ``C*kh*kw``."""
        return self.C * self.kh * self.kw

    @property
    def Kg(self) -> int:
        """A group's reduction length (the weight's columns): ``C/G*kh*kw``."""
        return self.C // self.G * self.kh * self.kw

    @property
    def P(self) -> int:
        return self.N * self.OH * self.OW


@dataclass(frozen=True)
class Tiles:
    """Tile shape of the GEMM kernels: ``TY x TX`` threads, each computing ``RM x RN`` outputs.

    The block tile is ``BM = TY*RM`` rows by ``BN = TX*RN`` columns; ``BK`` is the depth of one
    shared-memory slice of the reduction.
    """

    tx: int = 16
    ty: int = 16
    rm: int = 4
    rn: int = 4
    bk: int = 8

    def __post_init__(self) -> None:
        # Each thread loads a fixed column of the right-hand tile (so it decomposes that column's
        # index once), which needs the thread count to be a multiple of BN, and BK a multiple of
        # the rows loaded per sweep; the first BK threads fill the per-tile index tables.
        if self.threads % self.bn or self.bk % (self.threads // self.bn) or self.bk > self.threads:
            raise ValueError(f"unsupported tile shape {self}")

    @property
    def bm(self) -> int:
        return self.ty * self.rm

    @property
    def bn(self) -> int:
        return self.tx * self.rn

    @property
    def threads(self) -> int:
        return self.tx * self.ty

    @property
    def sweeps_a(self) -> int:
        """Sweeps of all threads that load the ``BK x BM`` left tile."""
        return cdiv(self.bm * self.bk, self.threads)

    @property
    def rows_b(self) -> int:
        """Rows of the ``BK x BN`` right tile loaded per sweep of all threads."""
        return self.threads // self.bn

    @property
    def sweeps_b(self) -> int:
        return self.bk // self.rows_b


# The implicit-GEMM tile shapes the autotuner tries: a 64x64 tile (16 accumulators per thread)
# and a 128x128 one (64 accumulators: more reuse per shared-memory load, fewer blocks).
TILE_CHOICES: dict[str, Tiles] = {
    "igemm64": Tiles(16, 16, 4, 4, 8),
    "igemm128": Tiles(16, 16, 8, 8, 8),
}
DEFAULT_TILES = TILE_CHOICES["igemm64"]

# Threads per block of the simple one-thread-per-element kernels (im2col, col2im, sum).
ELEMENTWISE_THREADS = 256

# grad-weight: fewest reduction items (pixels) per split of the reduction.
MIN_SPLIT_PIXELS = 512


# --------------------------------------------------------------------------------------------
# Kernels. Each factory returns a plain Python function with its tile sizes and dtype bound
# as constants; :func:`launch.compiled` compiles it for one signature, and the tests compile
# the same functions to PTX and run them in the simulator.
# --------------------------------------------------------------------------------------------


def _signature(dt: Any, n_arrays: int, n_ints: int) -> Any:
    array = types.Array(dt, 1, "C")
    return types.void(*([array] * n_arrays), *([int64] * n_ints))


# Device functions shared by the kernels. inline="always" inlines them into the kernel's Numba
# IR before typing: the compiled code is the same as if written out, the tile sizes bound by a
# factory stay compile-time constants, and compiling to PTX needs no GPU.


@cuda.jit(device=True, inline="always")
def unravel3(i, rows, cols):
    """``(a, r, c)`` with ``i = (a*rows + r)*cols + c``: a flat pixel index as (sample, row,
    column), or a flat weight index as (channel, ky, kx)."""
    plane = rows * cols
    a = i // plane
    r = (i - a * plane) // cols
    return a, r, i - a * plane - r * cols


@cuda.jit(device=True, inline="always")
def phase_taps(r, pad, dil, stride, step, k):
    """The taps along one axis that reach the input pixels of stride phase ``r``, as
    ``(first, count)``: taps ``first, first + step, ...`` where ``first * dil = r + pad``
    (mod ``stride``), so that ``(r + pad - tap * dil) // stride`` is exact; ``(-1, 0)`` when
    the congruence has no solution."""
    first = -1
    for v in range(min(step, k)):
        if first < 0 and (r + pad - v * dil) % stride == 0:
            first = v
    return first, 0 if first < 0 else (k - first + step - 1) // step


def make_tile_ops(t: Tiles, dt: Any) -> tuple[Any, Any]:
    """The register-tile arithmetic of the three GEMM kernels, as inlined device functions:
    ``clear(acc)`` zeroes a thread's ``RM x RN`` accumulators; ``multiply(a_s, b_s, acc, a_r,
    b_r, tx, ty)`` adds the product of the shared tiles ``a_s (BK, BM+1)`` and ``b_s (BK, BN)``,
    thread ``(tx, ty)`` owning rows ``ty + i*TY`` and columns ``tx + j*TX``."""
    TX, TY, RM, RN, BK = t.tx, t.ty, t.rm, t.rn, t.bk

    @cuda.jit(device=True, inline="always")
    def clear(acc):
        for i in range(RM):
            for j in range(RN):
                acc[i, j] = dt(0)

    @cuda.jit(device=True, inline="always")
    def multiply(a_s, b_s, acc, a_r, b_r, tx, ty):
        for kk in range(BK):
            for i in range(RM):
                a_r[i] = a_s[kk, ty + i * TY]
            for j in range(RN):
                b_r[j] = b_s[kk, tx + j * TX]
            for i in range(RM):
                for j in range(RN):
                    acc[i, j] += a_r[i] * b_r[j]

    return clear, multiply


def make_forward(t: Tiles, dt: Any):
    """``y[n, o, oy, ox] = sum_{c, ky, kx} w[o, c, ky, kx] * x[n, c, iy, ix]``, implicit GEMM."""
    TX, TY, RM, RN, BK, NT = t.tx, t.ty, t.rm, t.rn, t.bk, t.threads
    BM, BN, BM1 = t.bm, t.bn, t.bm + 1  # BM1 pads a_s: its transposed stores hit distinct banks
    SWEEPS_A, ROWS_B, SWEEPS_B = t.sweeps_a, t.rows_b, t.sweeps_b
    clear, multiply = make_tile_ops(t, dt)

    def conv2d_forward(x, w, y, N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G):
        a_s = cuda.shared.array((BK, BM1), dt)  # w[o0:o0+BM, k0:k0+BK], transposed
        b_s = cuda.shared.array((BK, BN), dt)  # cols[k0:k0+BK, p0:p0+BN]
        k_chan = cuda.shared.array(BK, int64)  # for reduction index k0+kk: c*H*W,
        k_dy = cuda.shared.array(BK, int64)  # ky*dh
        k_dx = cuda.shared.array(BK, int64)  # and kx*dw
        acc = cuda.local.array((RM, RN), dt)
        a_r = cuda.local.array(RM, dt)
        b_r = cuda.local.array(RN, dt)

        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * TX + tx
        Og = O // G  # this block's group g: its output tiles are o0 .. o0+BM of Og channels
        tiles = (Og + BM - 1) // BM
        g = cuda.blockIdx.y // tiles
        p0, o0 = cuda.blockIdx.x * BN, (cuda.blockIdx.y - g * tiles) * BM
        K, L, HW = C // G * kh * kw, OH * OW, H * W
        zero = dt(0)

        # This thread always loads column `col` of the B tile: decompose it once.
        col = tid % BN
        p = p0 + col
        p_ok = p < N * L
        n, oy, ox = unravel3(p, OH, OW)
        x_n = (n * C + g * (C // G)) * HW  # the group's first input channel
        iy0, ix0 = oy * sh - ph, ox * sw - pw

        clear(acc)
        for k0 in range(0, K, BK):
            if tid < BK:
                c, ky, kx = unravel3(k0 + tid, kh, kw)
                k_chan[tid], k_dy[tid], k_dx[tid] = c * HW, ky * dh, kx * dw
            for s in range(SWEEPS_A):
                e = tid + s * NT
                if e < BM * BK:
                    kk, mm = e % BK, e // BK  # kk fastest: consecutive threads read along k
                    o, k = o0 + mm, k0 + kk
                    a_s[kk, mm] = w[(g * Og + o) * K + k] if o < Og and k < K else zero
            cuda.syncthreads()  # index tables ready
            for s in range(SWEEPS_B):
                kk = tid // BN + s * ROWS_B
                v = zero
                if p_ok and k0 + kk < K:
                    iy, ix = iy0 + k_dy[kk], ix0 + k_dx[kk]
                    if 0 <= iy < H and 0 <= ix < W:
                        v = x[x_n + k_chan[kk] + iy * W + ix]
                b_s[kk, col] = v
            cuda.syncthreads()  # tiles ready
            multiply(a_s, b_s, acc, a_r, b_r, tx, ty)
            cuda.syncthreads()  # tiles consumed; the next iteration may overwrite them

        for j in range(RN):
            p = p0 + tx + j * TX
            if p < N * L:
                n = p // L
                l = p - n * L
                for i in range(RM):
                    o = o0 + ty + i * TY
                    if o < Og:
                        y[(n * O + g * Og + o) * L + l] = acc[i, j]

    return conv2d_forward


def make_grad_input(t: Tiles, dt: Any):
    """``gx[n, c, iy, ix] = sum over (o, ky, kx) reaching (iy, ix) of w[o, c, ky, kx] * gy[...]``.
    Grid axis z enumerates the stride phases ``(ry, rx)``; the block's GEMM runs over the input
    pixels ``(n, ry + sh*i, rx + sw*j)`` of its phase and the taps ``ky = ky0 + th*m`` (and
    likewise kx) that reach them, where ``th = sh / gcd(sh, dh)``."""
    TX, TY, RM, RN, BK, NT = t.tx, t.ty, t.rm, t.rn, t.bk, t.threads
    BM, BN, BM1 = t.bm, t.bn, t.bm + 1
    SWEEPS_A, ROWS_B, SWEEPS_B = t.sweeps_a, t.rows_b, t.sweeps_b
    clear, multiply = make_tile_ops(t, dt)

    def conv2d_grad_input(
        gy, w, gx, N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G, th, tw
    ):
        a_s = cuda.shared.array((BK, BM1), dt)  # w[o, c0:c0+BM, ky, kx] for k'=(o, ky, kx)
        b_s = cuda.shared.array((BK, BN), dt)  # gy gathered at the pixels the taps reach
        k_w = cuda.shared.array(BK, int64)  # offset of (o, 0, ky, kx) in w
        k_g = cuda.shared.array(BK, int64)  # offset of plane (0, o) in gy
        k_dy = cuda.shared.array(BK, int64)  # oy = i + k_dy for input row iy = ry + sh*i
        k_dx = cuda.shared.array(BK, int64)
        acc = cuda.local.array((RM, RN), dt)
        a_r = cuda.local.array(RM, dt)
        b_r = cuda.local.array(RN, dt)

        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * TX + tx
        Cg, Og = C // G, O // G  # block's group g: input channels c0 .. c0+BM of its Cg
        tiles = (Cg + BM - 1) // BM
        g = cuda.blockIdx.y // tiles
        q0, c0 = cuda.blockIdx.x * BN, (cuda.blockIdx.y - g * tiles) * BM
        ry = cuda.blockIdx.z // sw  # z = ry*sw + rx
        rx = cuda.blockIdx.z - ry * sw
        zero = dt(0)

        # The phase's pixels: rows ry, ry+sh, ... (HP of them) and columns rx, rx+sw, ...
        HP, WP = (H - ry + sh - 1) // sh, (W - rx + sw - 1) // sw
        Q = N * HP * WP
        if q0 >= Q:
            return  # the whole block is past this phase's pixels (phases differ in size)
        ky0, ny = phase_taps(ry, ph, dh, sh, th, kh)  # the taps reaching the phase
        kx0, nx = phase_taps(rx, pw, dw, sw, tw, kw)
        KP, khw, L = Og * ny * nx, kh * kw, OH * OW  # the group's Og output channels x taps
        col = tid % BN  # this thread loads column col of the B tile: pixel q0 + col
        q_ok = q0 + col < Q
        n, i_y, i_x = unravel3(q0 + col, HP, WP)
        g_n = n * O * L

        clear(acc)
        for k0 in range(0, KP, BK):
            if tid < BK and k0 + tid < KP:
                o, my, mx = unravel3(k0 + tid, ny, nx)
                o += g * Og  # the group's output channel
                ky, kx = ky0 + my * th, kx0 + mx * tw
                k_w[tid], k_g[tid] = o * Cg * khw + ky * kw + kx, o * L
                k_dy[tid], k_dx[tid] = (ry + ph - ky * dh) // sh, (rx + pw - kx * dw) // sw
            cuda.syncthreads()  # index tables ready
            for s in range(SWEEPS_A):
                e = tid + s * NT
                if e < BM * BK:
                    kk, mm = e % BK, e // BK
                    c = c0 + mm
                    a_s[kk, mm] = w[k_w[kk] + c * khw] if c < Cg and k0 + kk < KP else zero
            for s in range(SWEEPS_B):
                kk = tid // BN + s * ROWS_B
                v = zero
                if q_ok and k0 + kk < KP:
                    oy, ox = i_y + k_dy[kk], i_x + k_dx[kk]
                    if 0 <= oy < OH and 0 <= ox < OW:
                        v = gy[g_n + k_g[kk] + oy * OW + ox]
                b_s[kk, col] = v
            cuda.syncthreads()
            multiply(a_s, b_s, acc, a_r, b_r, tx, ty)
            cuda.syncthreads()

        for j in range(RN):
            q = q0 + tx + j * TX
            if q < Q:
                n, i_y, i_x = unravel3(q, HP, WP)
                pix = (ry + sh * i_y) * W + rx + sw * i_x
                for i in range(RM):
                    c = c0 + ty + i * TY
                    if c < Cg:
                        gx[(n * C + g * Cg + c) * H * W + pix] = acc[i, j]

    return conv2d_grad_input


def make_grad_weight(t: Tiles, dt: Any):
    """``part[z, o, k] = sum over pixels p of chunk z of gy[o, p] * cols[k, p]``."""
    TX, TY, RM, RN, BK, NT = t.tx, t.ty, t.rm, t.rn, t.bk, t.threads
    BM, BN, BM1 = t.bm, t.bn, t.bm + 1
    SWEEPS_A, ROWS_B, SWEEPS_B = t.sweeps_a, t.rows_b, t.sweeps_b
    clear, multiply = make_tile_ops(t, dt)

    def conv2d_grad_weight(
        x, gy, part, N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G, chunk
    ):
        a_s = cuda.shared.array((BK, BM1), dt)  # gy[o0:o0+BM, pixels], transposed
        b_s = cuda.shared.array((BK, BN), dt)  # cols[k0:k0+BN, pixels], transposed
        p_g = cuda.shared.array(BK, int64)  # per pixel of the slice: offset in gy (o = 0),
        p_x = cuda.shared.array(BK, int64)  # offset of sample n in x,
        p_iy = cuda.shared.array(BK, int64)  # top-left input row and column,
        p_ix = cuda.shared.array(BK, int64)
        p_ok = cuda.shared.array(BK, int64)  # and whether it exists
        acc = cuda.local.array((RM, RN), dt)
        a_r = cuda.local.array(RM, dt)
        b_r = cuda.local.array(RN, dt)

        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * TX + tx
        Og = O // G  # block's group g: output channels o0 .. o0+BM of its Og
        tiles = (Og + BM - 1) // BM
        g = cuda.blockIdx.y // tiles
        k0, o0 = cuda.blockIdx.x * BN, (cuda.blockIdx.y - g * tiles) * BM
        K, L, HW = C // G * kh * kw, OH * OW, H * W
        begin = cuda.blockIdx.z * chunk
        end = min(N * L, begin + chunk)
        zero = dt(0)

        # This thread always loads column `col` (weight index k) of the B tile.
        col = tid % BN
        k = k0 + col
        k_ok = k < K
        c, ky, kx = unravel3(k, kh, kw)
        k_chan, k_dy, k_dx = (g * (C // G) + c) * HW, ky * dh, kx * dw

        clear(acc)
        for pt in range(begin, end, BK):
            if tid < BK:
                p = pt + tid
                n, oy, ox = unravel3(p, OH, OW)
                p_g[tid], p_x[tid] = n * O * L + p - n * L, n * C * HW
                p_iy[tid], p_ix[tid] = oy * sh - ph, ox * sw - pw
                p_ok[tid] = 1 if p < end else 0
            cuda.syncthreads()
            for s in range(SWEEPS_A):
                e = tid + s * NT
                if e < BM * BK:
                    pp, mm = e % BK, e // BK  # pp fastest: consecutive threads read along p
                    o = o0 + mm
                    a_s[pp, mm] = gy[p_g[pp] + (g * Og + o) * L] if o < Og and p_ok[pp] else zero
            for s in range(SWEEPS_B):
                pp = tid // BN + s * ROWS_B
                v = zero
                if k_ok and p_ok[pp]:
                    iy, ix = p_iy[pp] + k_dy, p_ix[pp] + k_dx
                    if 0 <= iy < H and 0 <= ix < W:
                        v = x[p_x[pp] + k_chan + iy * W + ix]
                b_s[pp, col] = v
            cuda.syncthreads()
            multiply(a_s, b_s, acc, a_r, b_r, tx, ty)
            cuda.syncthreads()

        base = cuda.blockIdx.z * O * K
        for i in range(RM):
            o = o0 + ty + i * TY
            if o < Og:
                for j in range(RN):
                    k = k0 + tx + j * TX
                    if k < K:
                        part[base + (g * Og + o) * K + k] = acc[i, j]

    return conv2d_grad_weight


def make_sum_splits(dt: Any):
    """``out[i] = sum_z part[z * size + i]``, summed in order z = 0, 1, ... (deterministic)."""

    def sum_splits(part, out, splits, size):
        i = cuda.grid(1)
        if i < size:
            acc = part[i]
            for z in range(1, splits):
                acc += part[z * size + i]
            out[i] = acc

    return sum_splits


def make_im2col(dt: Any):
    """``cols[k, p] = x[n, c, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw]`` (0 outside), k=(c,ky,kx)."""

    def im2col(x, cols, N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G):
        e = cuda.grid(1)  # consecutive threads: consecutive pixels p of one row k
        L = OH * OW
        P = N * L
        if e < C * kh * kw * P:
            k = e // P
            p = e - k * P
            c = k // (kh * kw)
            ky = (k - c * kh * kw) // kw
            kx = k - c * kh * kw - ky * kw
            n = p // L
            oy = (p - n * L) // OW
            ox = p - n * L - oy * OW
            iy, ix = oy * sh - ph + ky * dh, ox * sw - pw + kx * dw
            v = dt(0)
            if 0 <= iy < H and 0 <= ix < W:
                v = x[((n * C + c) * H + iy) * W + ix]
            cols[e] = v

    return im2col


def make_col2im(dt: Any):
    """``gx[n, c, iy, ix] = sum of cols[(c, ky, kx), (n, oy, ox)]`` over the taps reaching it."""

    def col2im(cols, gx, N, C, H, W, O, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, G):
        e = cuda.grid(1)  # one thread per input pixel: a gather, no atomics
        if e < N * C * H * W:
            ix = e % W
            iy = (e // W) % H
            c = (e // (H * W)) % C
            n = e // (C * H * W)
            L = OH * OW
            P = N * L
            acc = dt(0)
            for ky in range(kh):
                ty = iy + ph - ky * dh
                if ty >= 0 and ty % sh == 0 and ty // sh < OH:
                    for kx in range(kw):
                        tx = ix + pw - kx * dw
                        if tx >= 0 and tx % sw == 0 and tx // sw < OW:
                            k = (c * kh + ky) * kw + kx
                            acc += cols[k * P + n * L + (ty // sh) * OW + tx // sw]
            gx[e] = acc

    return col2im


def kernel_specs(dtype: Any, tiles: Tiles = DEFAULT_TILES) -> dict[str, tuple[Any, Any]]:
    """``name -> (python function, signature)`` for every conv kernel: what the tests compile."""
    dt = numba_type(dtype)
    return {
        "conv2d_forward": (make_forward(tiles, dt), _signature(dt, 3, 16)),
        "conv2d_grad_input": (make_grad_input(tiles, dt), _signature(dt, 3, 18)),
        "conv2d_grad_weight": (make_grad_weight(tiles, dt), _signature(dt, 3, 17)),
        "sum_splits": (make_sum_splits(dt), _signature(dt, 2, 2)),
        "im2col": (make_im2col(dt), _signature(dt, 2, 16)),
        "col2im": (make_col2im(dt), _signature(dt, 2, 16)),
    }


def _kernel(name: str, dtype: Any, tiles: Tiles = DEFAULT_TILES) -> Any:
    key = ("conv", name, np.dtype(dtype).str, tiles)
    return compiled(key, lambda: kernel_specs(dtype, tiles)[name])


# --------------------------------------------------------------------------------------------
# Device-array launchers: flat (1-D, contiguous) device arrays in, results written in place.
# Both the CuPy host functions below and the simulator tests call these.
# --------------------------------------------------------------------------------------------


def _launch(kernel: Any, grid: tuple, block: tuple, stream: Any, *args: Any) -> None:
    if stream is None:
        kernel[grid, block](*args)
    else:
        kernel[grid, block, stream](*args)


def launch_forward(
    x: Any, w: Any, y: Any, g: ConvGeometry, stream: Any = None, tiles: Tiles = DEFAULT_TILES
) -> None:
    """Implicit-GEMM forward into ``y`` (N*O*OH*OW values)."""
    kernel = _kernel("conv2d_forward", x.dtype, tiles)
    grid = (cdiv(g.P, tiles.bn), cdiv(g.O // g.G, tiles.bm) * g.G)
    _launch(kernel, grid, (tiles.tx, tiles.ty), stream, x, w, y, *g.args)


def launch_grad_input(
    gy: Any, w: Any, gx: Any, g: ConvGeometry, stream: Any = None, tiles: Tiles = DEFAULT_TILES
) -> None:
    """Gather grad-input into ``gx`` (N*C*H*W values; every one is written)."""
    kernel = _kernel("conv2d_grad_input", gy.dtype, tiles)
    q_max = g.N * cdiv(g.H, g.sh) * cdiv(g.W, g.sw)  # pixels of the largest phase
    grid = (cdiv(q_max, tiles.bn), cdiv(g.C // g.G, tiles.bm) * g.G, g.sh * g.sw)
    th, tw = gcd_step(g.sh, g.dh), gcd_step(g.sw, g.dw)
    _launch(kernel, grid, (tiles.tx, tiles.ty), stream, gy, w, gx, *g.args, th, tw)


def grad_weight_splits(g: ConvGeometry, tiles: Tiles, n_sm: int) -> tuple[int, int]:
    """``(splits, chunk)``: the pixel reduction of grad-weight is cut into ``splits`` chunks of
    ``chunk`` pixels (a multiple of BK) so that about four waves of blocks fill ``n_sm`` SMs."""
    blocks = cdiv(g.Kg, tiles.bn) * cdiv(g.O // g.G, tiles.bm) * g.G
    want = cdiv(4 * n_sm, blocks)
    splits = max(1, min(want, g.P // MIN_SPLIT_PIXELS))
    chunk = cdiv(cdiv(g.P, splits), tiles.bk) * tiles.bk
    return cdiv(g.P, chunk), chunk


def launch_grad_weight(
    x: Any, gy: Any, gw: Any, part: Any | None, g: ConvGeometry, splits: int, chunk: int,
    stream: Any = None, tiles: Tiles = DEFAULT_TILES,
) -> None:
    """Implicit-GEMM grad-weight into ``gw`` (O*C/G*kh*kw values).

    With ``splits > 1``, ``part`` holds ``splits * O*Kg`` values for the partial products.
    """
    kernel = _kernel("conv2d_grad_weight", x.dtype, tiles)
    grid = (cdiv(g.Kg, tiles.bn), cdiv(g.O // g.G, tiles.bm) * g.G, splits)
    out = gw if splits == 1 else part
    _launch(kernel, grid, (tiles.tx, tiles.ty), stream, x, gy, out, *g.args, chunk)
    if splits > 1:
        size = g.O * g.Kg
        reduce = _kernel("sum_splits", x.dtype)
        blocks = cdiv(size, ELEMENTWISE_THREADS)
        _launch(reduce, (blocks,), (ELEMENTWISE_THREADS,), stream, part, gw, splits, size)


def launch_im2col(x: Any, cols: Any, g: ConvGeometry, stream: Any = None) -> None:
    """Write ``cols`` (K*P values, row k = (c, ky, kx), column p = (n, oy, ox))."""
    kernel = _kernel("im2col", x.dtype)
    blocks = cdiv(g.K * g.P, ELEMENTWISE_THREADS)
    _launch(kernel, (blocks,), (ELEMENTWISE_THREADS,), stream, x, cols, *g.args)


def launch_col2im(cols: Any, gx: Any, g: ConvGeometry, stream: Any = None) -> None:
    """Gather-sum ``cols`` back into the image ``gx`` (N*C*H*W values)."""
    kernel = _kernel("col2im", cols.dtype)
    blocks = cdiv(g.N * g.C * g.H * g.W, ELEMENTWISE_THREADS)
    _launch(kernel, (blocks,), (ELEMENTWISE_THREADS,), stream, cols, gx, *g.args)


# --------------------------------------------------------------------------------------------
# CuPy host functions (the kernel contract). Outputs are allocated with CuPy on its current
# stream; no data ever goes to the host.
# --------------------------------------------------------------------------------------------

# Picks the strategy per (pass, shapes, dtype). MINIGAN_CUDA_CONV=igemm64|igemm128|im2col fixes it.
AUTOTUNER = Autotuner()


def _channel_major(cp: Any, a: Any, g: ConvGeometry, channels: int) -> Any:
    """``(N, channels, L)`` as a contiguous ``(channels, N*L)`` matrix."""
    return cp.ascontiguousarray(a.reshape(g.N, channels, -1).transpose(1, 0, 2)).reshape(
        channels, -1
    )


def _autotuned(
    op: str, g: ConvGeometry, dtype: Any, igemm: Callable[[Tiles], None], im2col: Callable[[], None]
) -> None:
    """Run the fastest strategy for this shape: ``igemm(tiles)`` for each tile shape of
    :data:`TILE_CHOICES`, or ``im2col()``. Each writes the same output; :data:`AUTOTUNER`
    times them on first use of ``(op, shapes, dtype)`` and caches the winner."""
    candidates: dict[str, Callable[[], object]] = {
        name: functools.partial(igemm, tiles) for name, tiles in TILE_CHOICES.items()
    }
    candidates["im2col"] = im2col
    best = AUTOTUNER.pick((op, g, np.dtype(dtype).str), candidates)
    candidates[best]()


def _grouped(a: Any, g: ConvGeometry, rows: int) -> Any:
    """A (rows, cols) matrix whose rows are the G groups' blocks as (G, rows/G, cols)."""
    return a.reshape(g.G, rows // g.G, -1)


def conv2d(
    x: Any, w: Any, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> Any:
    """Cross-correlation ``y[n, o] = sum_c x[n, c] * w[o, c]`` (PyTorch ``conv2d``, no bias);
    with ``groups``, over the input channels of output channel o's group."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    w = cp.ascontiguousarray(w, dtype=x.dtype)
    g = ConvGeometry.of(x.shape, w.shape, stride, padding, dilation, groups)
    y = cp.empty((g.N, g.O, g.OH, g.OW), dtype=x.dtype)
    stream = current_stream()

    def igemm(tiles: Tiles) -> None:
        launch_forward(as_device(x), as_device(w), as_device(y), g, stream, tiles)

    def im2col() -> None:
        cols = cp.empty((g.K, g.P), dtype=x.dtype)
        launch_im2col(as_device(x), as_device(cols), g, stream)
        # (G, O/G, Kg) @ (G, Kg, N*L): every group in one batched cuBLAS call
        ycm = cp.matmul(_grouped(w.reshape(g.O, g.Kg), g, g.O), _grouped(cols, g, g.K))
        y[...] = ycm.reshape(g.O, g.N, g.OH, g.OW).transpose(1, 0, 2, 3)

    _autotuned("forward", g, x.dtype, igemm, im2col)
    return y


def conv2d_grad_input(
    gy: Any,
    w: Any,
    x_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Any:
    """Gradient of :func:`conv2d` w.r.t. its input (= ``conv_transpose2d`` forward)."""
    cp = cupy_module()
    gy = cp.ascontiguousarray(gy)
    w = cp.ascontiguousarray(w, dtype=gy.dtype)
    g = ConvGeometry.of(x_shape, w.shape, stride, padding, dilation, groups)
    if (g.OH, g.OW) != tuple(gy.shape[2:]):
        raise ValueError(f"conv2d_grad_input: gy {gy.shape} does not match x_shape {x_shape}")
    gx = cp.empty((g.N, g.C, g.H, g.W), dtype=gy.dtype)
    stream = current_stream()

    def igemm(tiles: Tiles) -> None:
        launch_grad_input(as_device(gy), as_device(w), as_device(gx), g, stream, tiles)

    def im2col() -> None:
        wg = _grouped(w.reshape(g.O, g.Kg), g, g.O).transpose(0, 2, 1)  # (G, Kg, O/G)
        gcols = cp.matmul(wg, _grouped(_channel_major(cp, gy, g, g.O), g, g.O))
        gcols = gcols.reshape(g.K, g.P)  # (G, Kg, P) is (K, P): rows k = (c, ky, kx)
        launch_col2im(as_device(gcols), as_device(gx), g, stream)

    _autotuned("grad_input", g, gy.dtype, igemm, im2col)
    return gx


def conv2d_grad_weight(
    x: Any,
    gy: Any,
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Any:
    """Gradient of :func:`conv2d` w.r.t. the weight (O, C/groups, kh, kw)."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    gy = cp.ascontiguousarray(gy, dtype=x.dtype)
    g = ConvGeometry.of(x.shape, w_shape, stride, padding, dilation, groups)
    gw = cp.empty(tuple(w_shape), dtype=x.dtype)
    stream = current_stream()

    def igemm(tiles: Tiles) -> None:
        splits, chunk = grad_weight_splits(g, tiles, sm_count())
        part = cp.empty(splits * g.O * g.Kg, dtype=x.dtype) if splits > 1 else None
        launch_grad_weight(
            as_device(x), as_device(gy), as_device(gw),
            None if part is None else as_device(part), g, splits, chunk, stream, tiles,
        )

    def im2col() -> None:
        cols = cp.empty((g.K, g.P), dtype=x.dtype)
        launch_im2col(as_device(x), as_device(cols), g, stream)
        gyg = _grouped(_channel_major(cp, gy, g, g.O), g, g.O)  # (G, O/G, P)
        colsg = _grouped(cols, g, g.K).transpose(0, 2, 1)  # (G, P, Kg)
        cp.matmul(gyg, colsg, out=gw.reshape(g.G, g.O // g.G, g.Kg))

    _autotuned("grad_weight", g, x.dtype, igemm, im2col)
    return gw
