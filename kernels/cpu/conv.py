"""2-D convolution on the CPU: im2row packing (Numba) feeding one BLAS GEMM per chunk.

For a chunk of ``P`` output pixels, with ``K = kh*kw*C``, the packed matrix ``rows(P, K)``
holds one row per output pixel and one column per (kernel tap, channel); ``Wk(O, K)`` is the
weight with its axes ordered (o, i, j, c) to match::

    forward      y(P, O)     = rows @ Wk^T             then back to NCHW
    grad-weight  gWk(O, K)  += gy(O, P) @ rows
    grad-input   grows(P, K) = gy(O, P)^T @ Wk          then row2im (gather-sum)

``gy`` chunks are channel-major ``(O, P)`` and forward results pixel-major ``(P, O)``; the
copies to and from NCHW are Numba loops. The work is cut into chunks so the packed buffer
stays cache-sized (packing writes it, the GEMM reads it straight back): forward and
grad-weight chunks are ranges of output pixels (a large image is split too), grad-input
chunks whole samples (row2im gathers an input row from every output row that reads it).
Chunks run concurrently, one worker thread per core, each packing and multiplying its own
chunks with single-threaded kernels (:mod:`.threads`).

With ``groups = G`` the packed matrix is group-major, ``rows(G, P, K/G)``, and each product
above is one batched GEMM over the groups (``np.matmul`` on 3-D operands): ``Wk`` becomes
``(G, O/G, K/G)`` and ``gy`` chunks ``(G, O/G, P)``. The packing, the chunking and the worker
threads are the same as without groups.

Depthwise convolutions (one input channel per group) skip all this: :mod:`.depthwise`. Large
3x3 stride-1 layers (forward, and grad-input, their flipped-weight twin) take Winograd
F(2x2, 3x3) instead (:mod:`.winograd`, :func:`_winograd_pays`).

At stride 1 a convolution and its transposed twin are the same computation with the weight
flipped and its channels swapped; :func:`conv2d` and :func:`conv2d_grad_input` each take the
formulation whose GEMM writes the wider output (benchmarks/NOTES.md items 5 and 12).

Part of the CPU backend (:mod:`minigan.kernels.cpu`): must not import minigan's core
(autograd, nn) or CuPy.
"""

from __future__ import annotations

import numpy as np

from ..contract import conv_output_size
from . import depthwise, winograd
from .pack import (
    from_group_major,
    from_pixel_major,
    im2row,
    im2row_grouped,
    row2im,
    row2im_grouped,
    to_channel_major,
    to_channels_last,
)
from .threads import by_worker, parallel_map, split

Pair = tuple[int, int]

# Target size of the packed buffer per chunk; see benchmarks/NOTES.md for the measurements.
CHUNK_BYTES = 16 * 2**20
# Inputs up to this size are transposed to channels-last in the calling thread.
SMALL_BYTES = 2**20
# The row2im formulation (_grad_input_gemm) packs whole samples: one sample's packed matrix
# above this size takes the chunked formulation at stride 1 instead, whichever is faster
# (a 512x512 image's 64 -> 128 channel grad-input would pack 151 MB; benchmarks/NOTES.md).
WHOLE_SAMPLE_BYTES = 4 * CHUNK_BYTES


# Winograd F(2x2, 3x3) (_conv2d_winograd) where it measured faster than im2row + GEMM on 2
# cores: 3x3 kernels at stride 1, dilation 1, no groups, with at least this many input and
# output channels and output pixels per image (VGG's layers at 128x128 and up; it lost or tied
# on StyleGAN-lite's 32-channel layers and on 512 channels at 64x64: benchmarks/NOTES.md).
WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MIN_PIXELS = 128 * 128


def _winograd_pays(x_shape, w_shape, stride: Pair, padding: Pair, dilation: Pair, groups: int):
    """Whether :func:`conv2d` of these shapes takes Winograd F(2x2, 3x3)."""
    if tuple(w_shape[2:]) != (3, 3) or stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return False
    pixels = (x_shape[2] + 2 * padding[0] - 2) * (x_shape[3] + 2 * padding[1] - 2)
    return min(w_shape[0], w_shape[1]) >= WINOGRAD_MIN_CHANNELS and pixels >= WINOGRAD_MIN_PIXELS


def _fits_whole_sample(channels: int, w_shape, pixels: int, itemsize: int) -> bool:
    """Whether _grad_input_gemm's packed matrix for one sample (``channels*kh*kw`` columns,
    ``pixels`` rows) stays within :data:`WHOLE_SAMPLE_BYTES`."""
    return channels * w_shape[2] * w_shape[3] * pixels * itemsize <= WHOLE_SAMPLE_BYTES


def _geometry(w_shape, stride: Pair, padding: Pair, dilation: Pair, oh: int, ow: int) -> tuple:
    """The integer arguments shared by :func:`im2row` and :func:`row2im`."""
    kh, kw = w_shape[2], w_shape[3]
    return (kh, kw, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], oh, ow)


def _weight_matrix(w: np.ndarray, dtype, groups: int = 1) -> np.ndarray:
    """``w`` (O, C/G, kh, kw) as ``Wk`` (G, O/G, kh*kw*C/G), columns ordered like the packed
    rows (``(O, kh*kw*C)`` without groups)."""
    O = w.shape[0]
    wk = np.ascontiguousarray(w.transpose(0, 2, 3, 1), dtype=dtype)
    return wk.reshape(O, -1) if groups == 1 else wk.reshape(groups, O // groups, -1)


def _channels_last(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, H, W) as (N, H, W, C), transposed in parallel over image rows."""
    N, C, H, W = x.shape
    if C == 1:  # the same memory order already
        return x.reshape(N, H, W, 1)
    xt = np.empty((N, H, W, C), dtype=x.dtype)
    if x.nbytes <= SMALL_BYTES:  # not worth a hand-off to the workers
        to_channels_last(x, 0, N * H, xt)
        return xt

    def work(chunks: list[range]) -> None:
        for r in chunks:
            to_channels_last(x, r.start, r.stop, xt)

    parallel_map(work, by_worker(split(N * H, W * C * x.itemsize, CHUNK_BYTES)))
    return xt


def _flipped(w: np.ndarray, dtype, groups: int = 1) -> np.ndarray:
    """``w`` (O, C/G, kh, kw) flipped in space with in/out channels swapped within each group:
    (C, O/G, kh, kw), the weight of the transposed twin (with the same groups)."""
    O, Cg, kh, kw = w.shape
    g5 = w.reshape(groups, O // groups, Cg, kh, kw)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(g5.transpose(0, 2, 1, 3, 4), dtype=dtype).reshape(
        groups * Cg, O // groups, kh, kw
    )


def _twin_does_no_more(input_pixels: int, output_pixels: int) -> bool:
    """Whether a stride-1 convolution may run as its transposed twin (and back): the twin
    multiplies at every *input* pixel where the convolution multiplies at every *output*
    pixel, so it pays only when the two are about as many (up to 1.25x: a "valid" 3x3 layer
    on a 32x32 map is 1.14x). Where padding makes most of the output (a 1x1 latent
    transposed to 4x4, a 4x4 map convolved to 1x1) the twin would multiply mostly zeros:
    16x the work of the direct GEMM there. Measured (2 threads, benchmarks/NOTES.md item 38):
    at 1.56-1.78x the direct GEMM won every case tried, by 1.2-1.8x; at 1.0-1.31x the twin
    won or tied."""
    return 4 * input_pixels <= 5 * output_pixels


def _full_padding(w_shape, padding: Pair, dilation: Pair) -> Pair:
    """The padding that turns a stride-1 convolution into its transposed twin and back."""
    return (
        dilation[0] * (w_shape[2] - 1) - padding[0],
        dilation[1] * (w_shape[3] - 1) - padding[1],
    )


def conv2d(
    x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> np.ndarray:
    """Cross-correlation ``y[n, o] = sum_c x[n, c] * w[o, c]`` (PyTorch ``conv2d``, no bias);
    with ``groups`` the sum runs over the input channels of output channel o's group."""
    O, C = w.shape[0], w.shape[1]
    oh = conv_output_size(x.shape[2], w.shape[2], stride[0], padding[0], dilation[0])
    ow = conv_output_size(x.shape[3], w.shape[3], stride[1], padding[1], dilation[1])
    if groups > 1 and C == 1 and groups == x.shape[1]:  # depthwise: direct loops, no GEMM
        return depthwise.conv2d(x, w, stride, padding, dilation, (oh, ow))
    if _winograd_pays(x.shape, w.shape, stride, padding, dilation, groups):
        return _conv2d_winograd(x, w, padding)
    if (
        stride == (1, 1)
        and O // groups < C
        and _twin_does_no_more(x.shape[2] * x.shape[3], oh * ow)
        and _fits_whole_sample(O, w.shape, x.shape[2] * x.shape[3], x.dtype.itemsize)
    ):
        # The mirror of conv2d_grad_input's rule: at stride 1 a convolution is the transposed
        # convolution of the flipped weight, whose GEMM is rows(C) @ (C, O*k*k) — wider and
        # faster in OpenBLAS than rows(C*k*k) @ (C*k*k, O) when O < C (benchmarks/NOTES.md).
        full = _full_padding(w.shape, padding, dilation)
        if min(full) >= 0:
            y_shape = (x.shape[0], O, oh, ow)
            flipped = _flipped(w, x.dtype, groups)
            return _grad_input_gemm(x, flipped, y_shape, (1, 1), full, dilation, groups)
    return _conv2d_gemm(x, w, stride, padding, dilation, groups)


def _conv2d_winograd(x: np.ndarray, w: np.ndarray, padding: Pair) -> np.ndarray:
    """:func:`conv2d` of a 3x3 kernel at stride 1, dilation 1, no groups, as Winograd
    F(2x2, 3x3) (:mod:`.winograd`), in chunks of output tiles: per chunk the input transform,
    one batched GEMM over the 16 transformed positions, the output transform."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    O = w.shape[0]
    oh, ow = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    th, tw = winograd.tiles(oh, ow)
    u = winograd.weight_transform(w, x.dtype)
    y = np.empty((N, O, oh, ow), dtype=x.dtype)
    xt = _channels_last(x)

    def work(chunks: list[range]) -> None:
        size = max(map(len, chunks))
        v_buf = np.empty(16 * size * C, dtype=x.dtype)
        m_buf = np.empty(16 * size * O, dtype=x.dtype)
        for q in chunks:  # tile-major buffers: each tile's 16 x C (16 x O) values together
            v = v_buf[: 16 * len(q) * C].reshape(len(q), 16, C)
            m = m_buf[: 16 * len(q) * O].reshape(len(q), 16, O)
            winograd.input_transform(xt, padding[0], padding[1], th, tw, q.start, q.stop, v)
            np.matmul(v.transpose(1, 0, 2), u, out=m.transpose(1, 0, 2))  # 16 strided GEMMs
            winograd.output_transform(m, th, tw, q.start, q.stop, y)

    per_tile = 16 * (C + O) * x.itemsize
    parallel_map(work, by_worker(split(N * th * tw, per_tile, CHUNK_BYTES)))
    return y


def _conv2d_gemm(x, w, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1):
    """:func:`conv2d` as im2row + ``rows @ Wk^T``, in chunks of output pixels."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    G = groups
    oh = conv_output_size(H, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(W, kw, stride[1], padding[1], dilation[1])
    K, L = C * kh * kw, oh * ow
    wk = _weight_matrix(w, x.dtype, G)
    geo = _geometry(w.shape, stride, padding, dilation, oh, ow)
    y = np.empty((N, O, oh, ow), dtype=x.dtype)
    xt = _channels_last(x)

    def work(chunks: list[range]) -> None:
        size = max(map(len, chunks))
        rows_buf = np.empty(size * K, dtype=x.dtype)
        out_buf = np.empty(size * O, dtype=x.dtype)
        for q in chunks:
            if G > 1:  # group-major rows (G, pixels, K/G): one batched GEMM for all groups
                grows = rows_buf[: len(q) * K].reshape(G, len(q), K // G)
                im2row_grouped(xt, q.start, q.stop, G, *geo, grows)
                gout = out_buf[: len(q) * O].reshape(G, len(q), O // G)
                np.matmul(grows, wk.transpose(0, 2, 1), out=gout)
                from_group_major(gout, q.start, q.stop, y.reshape(N, O, L))
                continue
            rows = rows_buf[: len(q) * K].reshape(len(q), K)
            im2row(xt, q.start, q.stop, *geo, rows)
            # rows @ Wk^T (one output row per pixel) runs faster in OpenBLAS than
            # Wk @ rows^T, most of all when O is small (benchmarks/NOTES.md)
            out = out_buf[: len(q) * O].reshape(len(q), O)
            np.matmul(rows, wk.T, out=out)
            from_pixel_major(out, q.start, q.stop, y.reshape(N, O, L))

    parallel_map(work, by_worker(split(N * L, K * x.itemsize, CHUNK_BYTES)))
    return y


def conv2d_grad_weight(
    x: np.ndarray,
    gy: np.ndarray,
    w_shape,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> np.ndarray:
    """Gradient of :func:`conv2d` w.r.t. the weight: ``gW = sum over chunks of gy @ rows``."""
    if groups > 1 and w_shape[1] == 1 and groups == x.shape[1]:
        return depthwise.conv2d_grad_weight(x, gy, w_shape, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    N, C, H, W = x.shape
    O, _, kh, kw = w_shape
    G = groups
    oh, ow = gy.shape[2], gy.shape[3]
    K, L = C * kh * kw, oh * ow
    Kg = K // G  # the weight's columns: (kh, kw, C/G) per output channel
    geo = _geometry(w_shape, stride, padding, dilation, oh, ow)
    xt = _channels_last(x)

    def work(chunks: list[range]) -> np.ndarray:
        """This worker's share of gWk: its chunks' products, summed."""
        size = max(map(len, chunks))
        rows_buf = np.empty(size * K, dtype=x.dtype)
        gy_buf = np.empty(O * size, dtype=x.dtype)
        total = np.zeros((G, O // G, Kg), dtype=x.dtype)
        part = np.empty_like(total) if len(chunks) > 1 else total
        for q in chunks:
            gyc = gy_buf[: O * len(q)].reshape(O, len(q))
            to_channel_major(gy.reshape(N, O, L), q.start, q.stop, gyc)
            if G > 1:
                grows = rows_buf[: len(q) * K].reshape(G, len(q), Kg)
                im2row_grouped(xt, q.start, q.stop, G, *geo, grows)
                np.matmul(gyc.reshape(G, O // G, len(q)), grows, out=part)
            else:
                rows = rows_buf[: len(q) * K].reshape(len(q), K)
                im2row(xt, q.start, q.stop, *geo, rows)
                np.matmul(gyc, rows, out=part[0])
            if part is not total:
                total += part
        return total

    parts = parallel_map(work, by_worker(split(N * L, K * x.itemsize, CHUNK_BYTES)))
    gwk = parts[0] if parts else np.zeros((G, O // G, Kg), dtype=x.dtype)  # N = 0: zero
    for p in parts[1:]:
        gwk += p
    del parts  # the workers' partial sums go before the copy below (a lower peak)
    return np.ascontiguousarray(gwk.reshape(O, kh, kw, C // G).transpose(0, 3, 1, 2))


def conv2d_grad_input(
    gy: np.ndarray,
    w: np.ndarray,
    x_shape,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> np.ndarray:
    """Gradient of :func:`conv2d` w.r.t. its input (= ``conv_transpose2d`` forward)."""
    O, C = w.shape[0], w.shape[1]
    if groups > 1 and C == 1 and groups == x_shape[1]:
        return depthwise.conv2d_grad_input(gy, w, x_shape, stride, padding, dilation)
    full = _full_padding(w.shape, padding, dilation)
    # the twin's output size: the smallest input that gives gy; a larger x_shape (possible
    # with dilation, as output_padding) takes the direct path, which sizes gx by x_shape
    minimal = tuple(gy.shape[2 + i] + dilation[i] * (w.shape[2 + i] - 1) - 2 * padding[i]
                    for i in (0, 1))  # fmt: skip
    if stride == (1, 1) and min(full) >= 0 and tuple(x_shape[2:]) == minimal:
        # At stride 1 the transposed convolution is an ordinary one: gy convolved with the
        # flipped weight, channels swapped, padded by d*(k-1) - p. It packs O*k*k values per
        # pixel instead of writing and scattering back C*k*k (row2im), so it wins when O <= C
        # (benchmarks/NOTES.md); the GEMM work is the same. It also packs in bounded chunks,
        # so a large image takes it whatever O and C are, and a large 3x3 layer takes it as
        # Winograd.
        twin = (C * groups, O // groups, w.shape[2], w.shape[3])
        L = gy.shape[2] * gy.shape[3]
        winograd_pays = _winograd_pays(gy.shape, twin, (1, 1), full, dilation, groups)
        big = not _fits_whole_sample(twin[0], w.shape, L, gy.itemsize)
        narrow = O // groups <= C
        if winograd_pays or big or (narrow and _twin_does_no_more(x_shape[2] * x_shape[3], L)):
            flipped = _flipped(w, gy.dtype, groups)
            if winograd_pays:
                return _conv2d_winograd(gy, flipped, full)
            return _conv2d_gemm(gy, flipped, (1, 1), full, dilation, groups)
    return _grad_input_gemm(gy, w, x_shape, stride, padding, dilation, groups)


def _grad_input_gemm(
    gy, w, x_shape, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> np.ndarray:
    """:func:`conv2d_grad_input` as ``gy^T @ Wk`` + row2im, in chunks of whole samples (row2im
    gathers each input row from every output row that reads it)."""
    gy = np.ascontiguousarray(gy)
    N, C, H, W = x_shape
    O, _, kh, kw = w.shape
    G = groups
    oh, ow = gy.shape[2], gy.shape[3]
    K, L = C * kh * kw, oh * ow
    wk = _weight_matrix(w, gy.dtype, G)
    geo = _geometry(w.shape, stride, padding, dilation, oh, ow)
    gx = np.empty((N, C, H, W), dtype=gy.dtype)

    def work(chunks: list[range]) -> None:
        m_max = max(map(len, chunks))
        rows_buf = np.empty(m_max * L * K, dtype=gy.dtype)
        gy_buf = np.empty(O * m_max * L, dtype=gy.dtype)
        xt = np.empty((H, W, C), dtype=gy.dtype)  # row2im's one-sample scratch
        for chunk in chunks:
            n0, m = chunk.start, len(chunk)
            rows = rows_buf[: m * L * K].reshape(m * L, K)
            gyc = gy_buf[: O * m * L].reshape(O, m * L)
            to_channel_major(gy.reshape(N, O, L), n0 * L, (n0 + m) * L, gyc)
            if G > 1:  # (G, pixels, O/G) @ (G, O/G, K/G): one batched GEMM
                rows3 = rows.reshape(G, m * L, K // G)
                np.matmul(gyc.reshape(G, O // G, m * L).transpose(0, 2, 1), wk, out=rows3)
                row2im_grouped(rows3, n0, m, G, *geo, xt, gx)
                continue
            np.matmul(gyc.T, wk, out=rows)
            row2im(rows, n0, m, *geo, xt, gx)

    parallel_map(work, by_worker(split(N, K * L * gy.itemsize, CHUNK_BYTES)))
    return gx
