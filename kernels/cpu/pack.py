"""Numba packing kernels for the im2row convolution (raw NumPy arrays only).

A chunk is a range ``[q0, q1)`` of output pixels ``q = n*L + l`` (``L = OH*OW``), which may
start and end inside a sample (a large image is cut into several chunks). Layouts:

- *rows* ``rows[q - q0, (i, j, c)]``: shape ``(q1 - q0, kh*kw*C)``, C-contiguous. One row per
  output pixel, one column per (kernel tap, input channel): the classic im2col matrix,
  transposed and in channels-last order, so that packing copies runs of ``C`` contiguous values
  of the channels-last input ``xt`` (N, H, W, C).
- *channel-major* ``cm[o, q - q0]``: shape ``(O, q1 - q0)``, the ``(n, o)`` axes of an
  ``(N, O, L)`` array swapped so a whole chunk is one GEMM operand.

The kernels are single-threaded and release the GIL: the convolutions run them on several
chunks at once, one per worker thread (:mod:`.threads`), each followed by a single-threaded
GEMM in the same worker. (A Numba ``prange`` pool alternating with OpenBLAS's pool was slower:
benchmarks/NOTES.md.)
"""

from __future__ import annotations

from numba import njit, uint64


@njit(cache=True, nogil=True)
def to_channel_major(src, q0, q1, dst):
    """``dst[o, q - q0] = src[n, o, l]`` for the pixels ``q = n*L + l`` in ``[q0, q1)``:
    ``src`` (N, O, L), ``dst`` (O, q1 - q0). Row by row of ``dst``, one run per sample (flat
    unsigned indices, as in :func:`im2row`)."""
    O, L = src.shape[1], src.shape[2]
    sf = src.reshape(src.size)
    df = dst.reshape(dst.size)
    width = q1 - q0
    for o in range(O):
        q = q0
        while q < q1:  # one sample's share of the range at a time
            n, l0 = q // L, q % L
            run = min(L - l0, q1 - q)
            d = uint64(o * width + q - q0)
            v = uint64((n * O + o) * L + l0)
            for t in range(run):
                df[d + uint64(t)] = sf[v + uint64(t)]
            q += run


@njit(cache=True, nogil=True)
def from_pixel_major(src, q0, q1, dst):
    """``dst[n, o, l] = src[q - q0, o]`` for the pixels ``q = n*L + l`` in ``[q0, q1)``: a
    GEMM result with one row per output pixel back to NCHW ``dst`` (N, O, L), in 16x16 tiles
    so both sides stay in cache (flat unsigned indices, as in :func:`im2row`)."""
    O, L = dst.shape[1], dst.shape[2]
    sf = src.reshape(src.size)
    df = dst.reshape(dst.size)
    q = q0
    while q < q1:
        n, l0 = q // L, q % L
        l1 = min(L, l0 + q1 - q)
        row = q - q0 - l0  # src row of pixel (n, s) is row + s
        for t0 in range(l0, l1, 16):
            t1 = min(l1, t0 + 16)
            for o0 in range(0, O, 16):
                for o in range(o0, min(O, o0 + 16)):
                    d = uint64((n * O + o) * L)
                    for s in range(t0, t1):
                        df[d + uint64(s)] = sf[uint64((row + s) * O + o)]
        q += l1 - l0


@njit(cache=True, nogil=True)
def to_channels_last(x, r0, r1, xt):
    """``xt[n, h, w, c] = x[n, c, h, w]`` for the image rows ``r = n*H + h`` in ``[r0, r1)``."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(x.size)
    tf = xt.reshape(xt.size)
    for r in range(r0, r1):
        n, h = r // H, r % H
        for c in range(C):
            src = uint64(((n * C + c) * H + h) * W)
            dst = uint64(r * W * C + c)
            for w in range(W):
                tf[dst + uint64(w * C)] = xf[src + uint64(w)]


@njit(cache=True, nogil=True)
def im2row(xt, q0, q1, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, rows):
    """Channels-last packing ``rows[q - q0, (i, j, c)]`` for the output pixels
    ``q = (n*oh + a)*ow + b`` in ``[q0, q1)``, from ``xt`` (N, H, W, C).

    Every (pixel, tap) entry is one contiguous run of ``C`` values of ``xt`` — a memcpy, not
    a strided gather; without dilation a whole kernel row (``kw`` taps) is one run of
    ``kw*C`` values.
    """
    H, W, C = xt.shape[1], xt.shape[2], xt.shape[3]
    zero = xt.dtype.type(0)
    # Flat views indexed with unsigned integers: Numba then skips its negative-index
    # wraparound test, and the runs below compile to plain copies (1.6x faster at C = 1).
    xf = xt.reshape(xt.size)
    rf = rows.reshape(rows.size)
    K = rows.shape[1]
    for q in range(q0, q1):
        p = q - q0
        n = q // (oh * ow)
        a = (q // ow) % oh
        b = q % ow
        w0 = b * sw - pw
        for i in range(kh):
            h = a * sh + i * dh - ph
            k0 = uint64(p * K + i * kw * C)
            if h < 0 or h >= H:
                for t in range(kw * C):
                    rf[k0 + uint64(t)] = zero
            elif dw == 1:  # the kernel row's taps j0 .. j1-1 are inside: one run of values
                j0 = min(kw, max(0, -w0))
                j1 = max(j0, min(kw, W - w0))
                for t in range(j0 * C):
                    rf[k0 + uint64(t)] = zero
                src = uint64(((n * H + h) * W + w0 + j0) * C)
                dst = k0 + uint64(j0 * C)
                for t in range((j1 - j0) * C):
                    rf[dst + uint64(t)] = xf[src + uint64(t)]
                for t in range(j1 * C, kw * C):
                    rf[k0 + uint64(t)] = zero
            else:
                for j in range(kw):
                    w = w0 + j * dw
                    k1 = i * kw * C + j * C
                    if 0 <= w < W:
                        for c in range(C):
                            rows[p, k1 + c] = xt[n, h, w, c]
                    else:
                        for c in range(C):
                            rows[p, k1 + c] = zero


@njit(cache=True, nogil=True)
def row2im(rows, n0, m, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, xt, gx):
    """Adjoint of :func:`im2row`: sum each (pixel, tap) run of ``rows`` into ``gx[n0:n0+m]``.

    A gather: every input pixel ``(n, h, w)`` adds up the runs of the output pixels that read
    it, into the one-sample scratch ``xt`` (H, W, C); then ``xt`` is transposed into ``gx``,
    sample by sample. Only the samples ``n0 .. n0+m-1`` of ``gx`` are written, so chunks can
    run concurrently.
    """
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    for n in range(m):
        for h in range(H):
            xt[h, :, :] = 0
            for i in range(kh):
                ah = h + ph - i * dh  # = a * sh for the output row a that reads input row h
                if ah < 0 or ah % sh != 0 or ah // sh >= oh:
                    continue
                a = ah // sh
                for b in range(ow):
                    for j in range(kw):
                        w = b * sw + j * dw - pw
                        if 0 <= w < W:
                            k0 = (i * kw + j) * C
                            q = (n * oh + a) * ow + b
                            for c in range(C):
                                xt[h, w, c] += rows[q, k0 + c]
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    gx[n0 + n, c, h, w] = xt[h, w, c]


# ----------------------------------------------------------------------------- grouped layouts
# With ``G`` groups the packed matrix is group-major, ``rows[g, q - q0, (i, j, cg)]`` of shape
# ``(G, q1 - q0, kh*kw*Cg)``: group g's columns are one contiguous block, so the products of
# all groups are one batched GEMM (``np.matmul`` over the leading axis), not a loop of calls.


@njit(cache=True, nogil=True)
def im2row_grouped(xt, q0, q1, G, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, rows):
    """Grouped :func:`im2row`: ``rows[g, q - q0, (i, j, cg)] = xt[n, h, w, g*Cg + cg]`` (zero
    outside the input) for the output pixels ``q`` in ``[q0, q1)``.

    Per output pixel and kernel row, each group's ``kw*Cg`` entries are one contiguous block
    of ``rows`` (flat unsigned indices, as in :func:`im2row`).
    """
    H, W, C = xt.shape[1], xt.shape[2], xt.shape[3]
    Cg = C // G
    Kg = kh * kw * Cg
    zero = xt.dtype.type(0)
    xf = xt.reshape(xt.size)
    rf = rows.reshape(rows.size)
    P = q1 - q0
    for q in range(q0, q1):
        n = q // (oh * ow)
        a = (q // ow) % oh
        b = q % ow
        w0 = b * sw - pw
        j0 = min(kw, max(0, (-w0 + dw - 1) // dw))  # taps j0 .. j1-1 fall inside the row
        j1 = max(j0, min(kw, (W - w0 + dw - 1) // dw))
        for i in range(kh):
            h = a * sh + i * dh - ph
            for g in range(G):
                dst = uint64((g * P + q - q0) * Kg + i * kw * Cg)
                if h < 0 or h >= H:
                    for t in range(kw * Cg):
                        rf[dst + uint64(t)] = zero
                    continue
                for t in range(j0 * Cg):
                    rf[dst + uint64(t)] = zero
                src = uint64(((n * H + h) * W + w0) * C + g * Cg)
                for j in range(j0, j1):
                    s = src + uint64(j * dw * C)
                    d = dst + uint64(j * Cg)
                    for c in range(Cg):
                        rf[d + uint64(c)] = xf[s + uint64(c)]
                for t in range(j1 * Cg, kw * Cg):
                    rf[dst + uint64(t)] = zero


@njit(cache=True, nogil=True)
def row2im_grouped(rows, n0, m, G, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, xt, gx):
    """Adjoint of :func:`im2row_grouped` for the samples ``n0 .. n0+m-1`` (a gather, as
    :func:`row2im`); ``rows`` is ``(G, m*oh*ow, kh*kw*Cg)``, ``xt`` scratch ``(H, W, C)``."""
    C, H, W = gx.shape[1], gx.shape[2], gx.shape[3]
    Cg = C // G
    for n in range(m):
        for h in range(H):
            xt[h, :, :] = 0
            for i in range(kh):
                ah = h + ph - i * dh
                if ah < 0 or ah % sh != 0 or ah // sh >= oh:
                    continue
                a = ah // sh
                for b in range(ow):
                    q = (n * oh + a) * ow + b
                    for j in range(kw):
                        w = b * sw + j * dw - pw
                        if 0 <= w < W:
                            k0 = (i * kw + j) * Cg
                            for g in range(G):
                                for c in range(Cg):
                                    xt[h, w, g * Cg + c] += rows[g, q, k0 + c]
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    gx[n0 + n, c, h, w] = xt[h, w, c]


@njit(cache=True, nogil=True)
def from_group_major(src, q0, q1, dst):
    """``dst[n, g*Og + o, l] = src[g, q - q0, o]`` for ``q = n*L + l`` in ``[q0, q1)``: the
    batched GEMM's ``(G, pixels, Og)`` result back to NCHW ``dst`` (N, O, L), writing runs of
    consecutive pixels of one output channel (flat unsigned indices)."""
    G, P, Og = src.shape[0], src.shape[1], src.shape[2]
    O, L = dst.shape[1], dst.shape[2]
    sf = src.reshape(src.size)
    df = dst.reshape(dst.size)
    for g in range(G):
        q = q0
        while q < q1:  # one sample's share of the range at a time
            n, l0 = q // L, q % L
            run = min(L - l0, q1 - q)
            for o in range(Og):
                d = uint64((n * O + g * Og + o) * L + l0)
                s = uint64((g * P + q - q0) * Og + o)
                for t in range(run):
                    df[d + uint64(t)] = sf[s + uint64(t * Og)]
            q += run
