"""minigan's CPU kernels against PyTorch CPU at DCGAN / StyleGAN layer sizes.

Run with ``pytest benchmarks/ --benchmark``. Each test checks the results agree before timing
(a fast wrong kernel is not a result) and records one row through the ``bench`` fixture:
work in FLOP for convolutions (2·N·O·C·k²·OH·OW per pass, ×3 for forward+backward), in bytes
for the norms (five tensor passes: read x, write y, read gy and x, write gx).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minigan.kernels as K

# (N, C, O, H, k, stride, pad): the DCGAN discriminator-style layers of the brief, then the
# StyleGAN-lite 3x3 convolutions (32 channels, batch 32) at 8x8, 16x16 and 32x32, then one large
# 3x3 layer of the DeepDream/VGG kind.
CONV_LAYERS = [
    (256, 1, 64, 28, 5, 2, 2),
    (256, 64, 128, 14, 5, 2, 2),
    (256, 256, 128, 7, 5, 1, 2),
    (64, 128, 256, 16, 4, 2, 1),
    (64, 3, 64, 64, 4, 2, 1),
    (32, 32, 32, 8, 3, 1, 1),
    (32, 32, 32, 16, 3, 1, 1),
    (32, 32, 32, 32, 3, 1, 1),
    (1, 64, 64, 256, 3, 1, 1),
]
# (N, C_in, C_out, H_in, k, stride, pad, output_padding): the DCGAN generator's ConvT layers.
CONVT_LAYERS = [
    (256, 256, 128, 7, 5, 1, 2, 0),
    (256, 128, 64, 7, 5, 2, 2, 1),
    (256, 64, 1, 14, 5, 2, 2, 1),
]
BN_SHAPES = [(256, 256, 7, 7), (256, 128, 14, 14), (64, 512, 4, 4), (32, 64, 128, 128)]
ADAIN_SHAPES = [(32, 256, 8, 8), (32, 128, 32, 32), (32, 64, 128, 128)]
D1 = (1, 1)


_RNG = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape, dtype=np.float32)


def check(ours: np.ndarray, theirs: torch.Tensor) -> None:
    ref = theirs.detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))


def conv_id(layer) -> str:
    n, c, o, h, k, s, p = layer
    return f"N{n} {c}->{o} {h}x{h} k{k} s{s} p{p}"


@pytest.mark.parametrize("layer", CONV_LAYERS, ids=conv_id)
@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight", "fwd+bwd"])
def test_conv2d(bench, layer, op):
    n, c, o, h, k, s, p = layer
    x, w = randn(n, c, h, h), randn(o, c, k, k)
    S, P = (s, s), (p, p)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = F.conv2d(tx, tw, stride=S, padding=P)
    gy = randn(*y.shape)
    tgy = torch.from_numpy(gy)
    flop = 2.0 * n * o * c * k * k * y.shape[2] * y.shape[3]

    if op == "forward":
        ours = lambda: K.conv2d(x, w, S, P, D1)  # noqa: E731
        theirs = lambda: F.conv2d(tx, tw, stride=S, padding=P)  # noqa: E731
        check(ours(), theirs())
    elif op == "grad_input":
        ours = lambda: K.conv2d_grad_input(gy, w, x.shape, S, P, D1)  # noqa: E731
        theirs = lambda: torch.nn.grad.conv2d_input(x.shape, tw, tgy, S, P)  # noqa: E731
        check(ours(), theirs())
    elif op == "grad_weight":
        ours = lambda: K.conv2d_grad_weight(x, gy, w.shape, S, P, D1)  # noqa: E731
        theirs = lambda: torch.nn.grad.conv2d_weight(tx, w.shape, tgy, S, P)  # noqa: E731
        check(ours(), theirs())
    else:
        flop *= 3

        def ours():
            K.conv2d(x, w, S, P, D1)
            gx = K.conv2d_grad_input(gy, w, x.shape, S, P, D1)
            return gx, K.conv2d_grad_weight(x, gy, w.shape, S, P, D1)

        def theirs():
            ax, aw = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            F.conv2d(ax, aw, stride=S, padding=P).backward(tgy)
            return ax.grad, aw.grad

        (gx, gw), (tgx, tgw) = ours(), theirs()
        check(gx, tgx)
        check(gw, tgw)
    bench.compare(f"conv2d {op:<11} {conv_id(layer)}", ours, theirs, flop, "GFLOP/s")


def convt_id(layer) -> str:
    n, ci, co, h, k, s, p, op = layer
    return f"N{n} {ci}->{co} {h}x{h} k{k} s{s} p{p} op{op}"


@pytest.mark.parametrize("layer", CONVT_LAYERS, ids=convt_id)
@pytest.mark.parametrize("op", ["forward", "fwd+bwd"])
def test_conv_transpose2d(bench, layer, op):
    """ConvT forward is conv2d_grad_input; its backward is conv2d (input) + grad_weight."""
    n, ci, co, h, k, s, p, opad = layer
    x, w = randn(n, ci, h, h), randn(ci, co, k, k)  # torch ConvT weight layout (in, out, k, k)
    S, P = (s, s), (p, p)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = F.conv_transpose2d(tx, tw, stride=S, padding=P, output_padding=opad)
    y_shape = tuple(y.shape)
    gy = randn(*y_shape)
    tgy = torch.from_numpy(gy)
    flop = 2.0 * n * ci * co * k * k * h * h

    def forward():
        return K.conv2d_grad_input(x, w, y_shape, S, P, D1)

    if op == "forward":
        ours = forward
        theirs = lambda: F.conv_transpose2d(tx, tw, stride=S, padding=P, output_padding=opad)  # noqa: E731
        check(ours(), theirs())
    else:
        flop *= 3

        def ours():
            forward()
            gx = K.conv2d(gy, w, S, P, D1)
            return gx, K.conv2d_grad_weight(gy, x, w.shape, S, P, D1)

        def theirs():
            ax, aw = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            F.conv_transpose2d(ax, aw, stride=S, padding=P, output_padding=opad).backward(tgy)
            return ax.grad, aw.grad

        (gx, gw), (tgx, tgw) = ours(), theirs()
        check(gx, tgx)
        check(gw, tgw)
    bench.compare(f"convT  {op:<11} {convt_id(layer)}", ours, theirs, flop, "GFLOP/s")


# (N, C, O, H, k, stride, pad, groups): grouped convolutions, each followed by its
# equal-FLOP ungrouped twin (C/G·O = C'·O'), so the two GFLOP/s figures compare per FLOP
# (issue 17: grouped at most 1.5x slower per FLOP); then depthwise layers (groups == C, the
# direct kernels) — memory-bound, so judged against PyTorch rather than per FLOP.
GROUPED_LAYERS = [
    (32, 128, 128, 16, 3, 1, 1, 4),
    (32, 64, 64, 16, 3, 1, 1, 1),
    (32, 64, 64, 32, 3, 1, 1, 2),
    (32, 45, 45, 32, 3, 1, 1, 1),
    (32, 64, 64, 32, 3, 1, 1, 8),
    (32, 23, 23, 32, 3, 1, 1, 1),
    (32, 64, 64, 32, 3, 1, 1, 64),
    (32, 64, 128, 32, 3, 2, 1, 64),
    (8, 96, 96, 64, 7, 1, 3, 96),
]


def grouped_id(layer) -> str:
    n, c, o, h, k, s, p, g = layer
    kind = "depthwise" if g == c else f"groups={g}"
    return f"N{n} {c}->{o} {h}x{h} k{k} s{s} p{p} {kind}"


@pytest.mark.parametrize("layer", GROUPED_LAYERS, ids=grouped_id)
@pytest.mark.parametrize("op", ["forward", "fwd+bwd"])
def test_grouped_conv2d(bench, layer, op):
    n, c, o, h, k, s, p, g = layer
    x, w = randn(n, c, h, h), randn(o, c // g, k, k)
    S, P = (s, s), (p, p)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = F.conv2d(tx, tw, stride=S, padding=P, groups=g)
    gy = randn(*y.shape)
    tgy = torch.from_numpy(gy)
    flop = 2.0 * n * o * (c // g) * k * k * y.shape[2] * y.shape[3]
    if op == "forward":
        ours = lambda: K.conv2d(x, w, S, P, D1, g)  # noqa: E731
        theirs = lambda: F.conv2d(tx, tw, stride=S, padding=P, groups=g)  # noqa: E731
        check(ours(), theirs())
    else:
        flop *= 3

        def ours():
            K.conv2d(x, w, S, P, D1, g)
            gx = K.conv2d_grad_input(gy, w, x.shape, S, P, D1, g)
            return gx, K.conv2d_grad_weight(x, gy, w.shape, S, P, D1, g)

        def theirs():
            ax, aw = tx.detach().requires_grad_(), tw.detach().requires_grad_()
            F.conv2d(ax, aw, stride=S, padding=P, groups=g).backward(tgy)
            return ax.grad, aw.grad

        (gx, gw), (tgx, tgw) = ours(), theirs()
        check(gx, tgx)
        check(gw, tgw)
    bench.compare(f"conv2d {op:<11} {grouped_id(layer)}", ours, theirs, flop, "GFLOP/s")


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_fwd_bwd(bench, shape):
    c = shape[1]
    x, gy, gamma, beta = randn(*shape), randn(*shape), randn(c), randn(c)
    tx, tgy, tg, tb = (torch.from_numpy(a) for a in (x, gy, gamma, beta))

    def ours():
        y, mean, invstd = K.batch_norm_forward(x, gamma, beta, 1e-5)
        return K.batch_norm_backward(gy, x, gamma, mean, invstd)

    def theirs():
        ax, ag, ab = (a.detach().requires_grad_() for a in (tx, tg, tb))
        F.batch_norm(ax, None, None, ag, ab, training=True, eps=1e-5).backward(tgy)
        return ax.grad, ag.grad, ab.grad

    for a, b in zip(ours(), theirs(), strict=True):
        check(a, b)
    bench.compare(f"batch_norm fwd+bwd {shape}", ours, theirs, 5.0 * x.nbytes, "GB/s")


@pytest.mark.parametrize("shape", ADAIN_SHAPES, ids=str)
def test_adain_fwd_bwd(bench, shape):
    n, c = shape[:2]
    x, gy, scale, bias = randn(*shape), randn(*shape), randn(n, c), randn(n, c)
    tx, tgy, ts, tb = (torch.from_numpy(a) for a in (x, gy, scale, bias))

    def ours():
        y, mean, invstd = K.adain_forward(x, scale, bias, 1e-5)
        return K.adain_backward(gy, x, scale, mean, invstd)

    def theirs():  # AdaIN as PyTorch users write it: instance norm, then per-sample affine
        ax, as_, ab = (a.detach().requires_grad_() for a in (tx, ts, tb))
        y = F.instance_norm(ax, eps=1e-5) * as_[:, :, None, None] + ab[:, :, None, None]
        y.backward(tgy)
        return ax.grad, as_.grad, ab.grad

    for a, b in zip(ours(), theirs(), strict=True):
        check(a, b)
    bench.compare(f"adain fwd+bwd {shape}", ours, theirs, 5.0 * x.nbytes, "GB/s")
