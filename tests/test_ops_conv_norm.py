"""Issue 17 ops (convolution, normalisation, layers) against PyTorch.

Each differentiable op: forward and first derivatives against torch in float32 (hypothesis
varies shapes and arguments), then float64 finite differences of the first and second
derivatives (``gradcheck``/``gradgradcheck``) and torch's double backward. Layers: state-dict
layouts that load both ways (MultiheadAttention, spectral_norm) and their modes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import assert_close, double_backward_parity, mg, parity, th, tol

import minigan
import minigan.functional as F
from minigan import nn
from minigan.testing import gradcheck, gradgradcheck

SETTINGS = settings(max_examples=20, deadline=None)


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def second_order(mg_fn, torch_fn, arrays, fd: bool = True) -> None:
    """float64: finite differences of first and second derivatives, torch's double backward."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if fd:
        inputs = [minigan.tensor(a, requires_grad=True) for a in arrays]
        assert gradcheck(mg_fn, inputs)
        assert gradgradcheck(mg_fn, inputs)
    double_backward_parity(mg_fn, torch_fn, arrays)


# --------------------------------------------------------------------------- grouped conv


@st.composite
def grouped_conv(draw, transposed: bool = False):
    g = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    if draw(st.booleans()):  # depthwise (with a channel multiplier og)
        cg = 1
    k = draw(st.integers(1, 3))
    s, d, p = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    size = draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 6))
    n = draw(st.integers(1, 2))
    return dict(n=n, c=g * cg, o=g * og, g=g, k=k, s=s, d=d, p=min(p, size), size=size)


@SETTINGS
@given(grouped_conv(), st.integers(0, 2**31))
def test_grouped_conv2d_matches_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, cfg["n"], cfg["c"], cfg["size"], cfg["size"] + 1)
    w = rand(rng, cfg["o"], cfg["c"] // cfg["g"], cfg["k"], cfg["k"])
    b = rand(rng, cfg["o"])
    kw = dict(stride=cfg["s"], padding=cfg["p"], dilation=cfg["d"], groups=cfg["g"])
    parity(
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda x, w, b: TF.conv2d(x, w, b, **kw),
        [x, w, b],
        **tol(np.float32, cfg["c"] * cfg["k"] ** 2),
    )


@SETTINGS
@given(grouped_conv(), st.integers(0, 2**31))
def test_grouped_conv_transpose2d_matches_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, cfg["n"], cfg["c"], cfg["size"], cfg["size"])
    w = rand(rng, cfg["c"], cfg["o"] // cfg["g"], cfg["k"], cfg["k"])
    op = 1 if cfg["s"] > 1 else 0
    p = min(cfg["p"], (cfg["d"] * (cfg["k"] - 1)) // 2)  # a non-empty output
    kw = dict(stride=cfg["s"], padding=p, dilation=cfg["d"], groups=cfg["g"])
    parity(
        lambda x, w: F.conv_transpose2d(x, w, output_padding=op, **kw),
        lambda x, w: TF.conv_transpose2d(x, w, output_padding=op, **kw),
        [x, w],
        **tol(np.float32, cfg["o"] * cfg["k"] ** 2),
    )


@pytest.mark.parametrize("groups,c,o,stride", [(2, 4, 6, 1), (3, 3, 3, 2), (2, 4, 2, 1)])
def test_grouped_conv_second_order(groups, c, o, stride):
    """The three grouped convolutions are each other's adjoints: second derivatives hold."""
    rng = np.random.default_rng(groups)
    x, w = rand(rng, 2, c, 5, 4), rand(rng, o, c // groups, 3, 3)
    kw = dict(stride=stride, padding=1, groups=groups)
    second_order(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), [x, w])
    wt = rand(rng, c, o // groups, 3, 3)
    second_order(
        lambda x, w: F.conv_transpose2d(x, w, **kw),
        lambda x, w: TF.conv_transpose2d(x, w, **kw),
        [x, wt],
    )


@pytest.mark.parametrize(
    "c,o,groups,stride",
    [(8, 8, 4, 1), (8, 4, 2, 1), (4, 8, 2, 2), (4, 4, 4, 1), (4, 8, 4, 2), (3, 9, 3, 1)],
)
def test_grouped_cpu_kernels_every_path(c, o, groups, stride):
    """Both GEMM formulations (stride-1 flip trick and direct) of every pass, and the direct
    depthwise kernels (groups == C, with channel multipliers 1, 2, 3), against torch."""
    from minigan import kernels

    rng = np.random.default_rng(0)
    x = rand(rng, 3, c, 9, 7, dtype=np.float64)
    w = rand(rng, o, c // groups, 3, 3, dtype=np.float64)
    args = ((stride, stride), (1, 1), (1, 1), groups)
    y = kernels.conv2d(x, w, *args)
    ty = TF.conv2d(torch.tensor(x), torch.tensor(w), stride=stride, padding=1, groups=groups)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    TF.conv2d(tx, tw, stride=stride, padding=1, groups=groups).backward(torch.tensor(gy))
    gx = kernels.conv2d_grad_input(gy, w, x.shape, *args)
    gw = kernels.conv2d_grad_weight(x, gy, w.shape, *args)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (3, 2), (2, 3)])
def test_conv2d_padding_same_and_valid(k, d):
    rng = np.random.default_rng(k)
    x, w = rand(rng, 2, 4, 7, 6), rand(rng, 6, 2, k, k)
    for padding in ("same", "valid"):
        kw = dict(padding=padding, dilation=d, groups=2)
        if padding == "valid" and d * (k - 1) >= 6:
            continue
        parity(
            lambda x, w, kw=kw: F.conv2d(x, w, **kw),
            lambda x, w, kw=kw: TF.conv2d(x, w, **kw),
            [x, w],
            **tol(np.float32, 2 * k * k),
        )
    with pytest.raises(ValueError, match="strided"):
        F.conv2d(minigan.tensor(x), minigan.tensor(w), stride=2, padding="same", groups=2)


def test_conv_groups_errors_name_the_culprit():
    x = minigan.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match=r"weight expects 6 \(3 groups\)"):
        F.conv2d(x, minigan.zeros(3, 2, 3, 3), groups=3)
    with pytest.raises(ValueError, match="divisible by groups=2"):
        F.conv2d(x, minigan.zeros(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="divisible by groups=3"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(4, 6, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect")


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
def test_nn_conv2d_padding_mode_and_groups_load_torch_weights(mode, padding):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(4, 6, 3, padding=padding, groups=2, padding_mode=mode, dilation=1)
    layer = nn.Conv2d(4, 6, 3, padding=padding, groups=2, padding_mode=mode)
    assert layer.weight.shape == tuple(ref.weight.shape)
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rand(np.random.default_rng(1), 2, 4, 6, 5)
    parity(layer, ref, [x], **tol(np.float32, 18))
    if mode != "zeros":
        assert f"padding_mode='{mode}'" in repr(layer)


def test_depthwise_conv_transpose_layer_matches_torch():
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1, groups=4)
    layer = nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1, groups=4)
    assert layer.weight.shape == (4, 2, 4, 4)
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    parity(layer, ref, [rand(np.random.default_rng(2), 2, 4, 3, 3)], **tol(np.float32, 16))


# --------------------------------------------------------------------------- pad


@st.composite
def pad_cases(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    h, w = draw(st.integers(2, 5)), draw(st.integers(2, 5))

    def width(n):
        hi = n - 1 if mode == "reflect" else n
        lo = -(n - 1) if mode != "circular" else -(n // 2)
        return draw(st.integers(max(lo, -(n - 1)), hi))

    widths = (width(w), width(w), width(h), width(h))
    if mode == "circular":  # each side at most the size left after cropping
        left_w = w - max(-widths[0], 0) - max(-widths[1], 0)
        left_h = h - max(-widths[2], 0) - max(-widths[3], 0)
        if left_w < 1 or left_h < 1 or max(widths[:2]) > left_w or max(widths[2:]) > left_h:
            widths = (1, 0, 0, 1)
    if w + widths[0] + widths[1] < 1 or h + widths[2] + widths[3] < 1:
        widths = (0, 1, 1, 0)
    return mode, (2, 2, h, w), widths


@SETTINGS
@given(pad_cases(), st.integers(0, 2**31))
def test_pad_modes_and_negative_widths_match_torch(case, seed):
    mode, shape, widths = case
    x = rand(np.random.default_rng(seed), *shape)
    parity(lambda t: F.pad(t, widths, mode=mode), lambda t: TF.pad(t, widths, mode=mode), [x])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes_second_order(mode):
    x = rand(np.random.default_rng(0), 1, 2, 4, 3)
    widths = (2, -1, 1, 3)
    second_order(lambda t: F.pad(t, widths, mode=mode), lambda t: TF.pad(t, widths, mode=mode), [x])


def test_pad_errors():
    x = minigan.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match="smaller than its size 3"):
        F.pad(x, (3, 0, 0, 0), mode="reflect")
    with pytest.raises(ValueError, match="mode must be"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="negative size"):
        F.pad(x, (-2, -2))


# --------------------------------------------------------------------------- normalisation


def _norm_parity(mg_fn, th_fn, x, w, b, blocks: int, eps: float = 1e-5) -> None:
    """A normalisation over ``blocks`` equal blocks of ``x`` (then ``w``, ``b`` if given)
    against torch in float64. A block of two or three close values is ill-conditioned: its
    gradient is a difference of nearly equal terms over a small σ, so torch's float32
    result is as far from the truth as ours. Each element's tolerance grows with its own
    block's conditioning, ``1 + max|x|/σ`` (output) and that over σ (input gradient); a
    wrong formula is off by the gradient's whole size, ``|g|/σ``."""
    xb = x.astype(np.float64).reshape(blocks, -1)
    sigma = np.sqrt(xb.var(-1, keepdims=True) + eps)
    out_cond = np.broadcast_to(1 + np.abs(xb).max(-1, keepdims=True) / sigma, xb.shape)
    grad_cond = (out_cond / sigma).reshape(x.shape)
    out_cond = out_cond.reshape(x.shape)
    gy = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    params = [a for a in (w, b) if a is not None]
    mx = [mg(a) for a in (x, *params)]
    tx = [th(a.astype(np.float64)) for a in (x, *params)]
    y, ty = mg_fn(*mx), th_fn(*tx)
    y.backward(minigan.tensor(gy))
    ty.backward(torch.from_numpy(gy.astype(np.float64)))

    def close(actual, expected, atol, what):
        a, e = actual.numpy().astype(np.float64), expected.detach().numpy()
        assert a.shape == e.shape, what
        bad = np.abs(a - e) > atol + 1e-4 * np.abs(e)
        tol = np.broadcast_to(atol, a.shape)[bad][:5]
        assert not bad.any(), f"{what}: {a[bad][:5]} != {e[bad][:5]} (atol {tol})"

    scale_w = 1.0 if w is None else float(np.abs(w).max())
    scale_g = float(np.abs(gy).max())
    assert y.dtype == np.float32
    close(y, ty, 1e-6 * out_cond * scale_w + 1e-5, "forward")
    close(mx[0].grad, tx[0].grad, 1e-6 * grad_cond * scale_w * scale_g + 1e-5, "grad of x")
    for name, m, t in zip(("weight", "bias"), mx[1:], tx[1:]):
        terms = x.size // m.data.size
        atol = (1e-6 * float(out_cond.max()) + 1e-5) * scale_g * terms
        close(m.grad, t.grad, atol, f"grad of {name}")


@SETTINGS
@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(1, 4),
    st.booleans(), st.integers(0, 2**31),
)
def test_group_norm_matches_torch(n, groups, cg, hw, affine, seed):
    rng = np.random.default_rng(seed)
    c = groups * cg
    if cg * hw * (hw + 1) == 1:  # a single value per group: torch's and ours are 0 anyway
        return
    x = rand(rng, n, c, hw, hw + 1) * 3 + 1
    if affine:
        fns = (lambda x, w, b: F.group_norm(x, groups, w, b)), (
            lambda x, w, b: TF.group_norm(x, groups, w, b)
        )
        _norm_parity(*fns, x, rand(rng, c), rand(rng, c), n * groups)
    else:
        fns = (lambda x: F.group_norm(x, groups)), (lambda x: TF.group_norm(x, groups))
        _norm_parity(*fns, x, None, None, n * groups)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 2), st.integers(2, 5), st.integers(0, 2**31))
def test_layer_norm_matches_torch(lead, k, last, seed):
    rng = np.random.default_rng(seed)
    shape = (lead, 3, last)
    norm = shape[-k:]
    x, w, b = rand(rng, *shape), rand(rng, *norm), rand(rng, *norm)
    _norm_parity(
        lambda x, w, b: F.layer_norm(x, norm, w, b),
        lambda x, w, b: TF.layer_norm(x, norm, w, b),
        x, w, b, x.size // int(np.prod(norm)),
    )


def test_norms_second_order():
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 2, 4, 3, 2), rand(rng, 4), rand(rng, 4)
    second_order(
        lambda x, w, b: F.group_norm(x, 2, w, b), lambda x, w, b: TF.group_norm(x, 2, w, b),
        [x, w, b],
    )
    w2, b2 = rand(rng, 3, 2), rand(rng, 3, 2)
    second_order(
        lambda x, w, b: F.layer_norm(x, (3, 2), w, b),
        lambda x, w, b: TF.layer_norm(x, (3, 2), w, b),
        [x, w2, b2],
    )


@SETTINGS
@given(
    st.sampled_from([1.0, 2.0, 3.0, float("inf")]), st.integers(-2, 1), st.booleans(),
    st.integers(0, 2**31),
)
def test_normalize_matches_torch(p, dim, zero_row, seed):
    x = rand(np.random.default_rng(seed), 3, 4)
    if zero_row:
        x[1] = 0  # the norm is 0 there: eps takes over, the gradient stays finite
    parity(lambda t: F.normalize(t, p, dim), lambda t: TF.normalize(t, p, dim), [x])


def test_normalize_second_order():
    x = rand(np.random.default_rng(3), 3, 4)
    for p in (2.0, 3.0):
        second_order(
            lambda t, p=p: F.normalize(t, p, 1), lambda t, p=p: TF.normalize(t, p, 1), [x]
        )


def test_nn_group_and_layer_norm_state_dicts_match_torch():
    for ours, theirs, x in (
        (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4), (2, 4, 3, 3)),
        (nn.LayerNorm((3, 3)), torch.nn.LayerNorm((3, 3)), (2, 4, 3, 3)),
        (nn.LayerNorm(3, bias=False), torch.nn.LayerNorm(3, bias=False), (2, 3)),
    ):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        with torch.no_grad():
            for v in theirs.parameters():
                v.normal_()
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        parity(ours, theirs, [rand(np.random.default_rng(0), *x)], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\): expected an input \(N, 4"):
        nn.GroupNorm(2, 4)(minigan.zeros(2, 3, 4))


# --------------------------------------------------------------------------- layers


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31))
def test_pixel_shuffle_roundtrip_matches_torch(r, c, hw, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, 2, c * r * r, hw, hw + 1)
    parity(lambda t: F.pixel_shuffle(t, r), lambda t: TF.pixel_shuffle(t, r), [x])
    y = rand(rng, 2, c, hw * r, (hw + 1) * r)
    parity(lambda t: F.pixel_unshuffle(t, r), lambda t: TF.pixel_unshuffle(t, r), [y])
    assert nn.PixelShuffle(r)(nn.PixelUnshuffle(r)(minigan.tensor(y))).shape == y.shape


@st.composite
def attention_cases(draw):
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    l, s, e, ev = (draw(st.integers(1, 4)) for _ in range(4))
    mask = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    scale = draw(st.sampled_from([None, 0.5]))
    return lead, l, s, e, ev, mask, scale


@SETTINGS
@given(attention_cases(), st.integers(0, 2**31))
def test_scaled_dot_product_attention_matches_torch(case, seed):
    lead, l, s, e, ev, mask, scale = case
    rng = np.random.default_rng(seed)
    q, k, v = rand(rng, *lead, l, e), rand(rng, *lead, s, e), rand(rng, *lead, s, ev)
    kw: dict = dict(scale=scale)
    tkw = dict(kw)
    if mask == "bool":
        m = rng.random((l, s)) > 0.4
        m[:, 0] = True  # every query sees a key (else both give NaN rows)
        kw["attn_mask"], tkw["attn_mask"] = m, torch.tensor(m)
    elif mask == "float":
        m = rand(rng, l, s)
        kw["attn_mask"], tkw["attn_mask"] = m, torch.tensor(m)
    elif mask == "causal":
        kw["is_causal"] = tkw["is_causal"] = True
    parity(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **tkw),
        [q, k, v],
        rtol=1e-4,
        atol=1e-5,
    )


def test_attention_second_order_and_dropout():
    rng = np.random.default_rng(0)
    q, k, v = rand(rng, 2, 3, 4), rand(rng, 2, 5, 4), rand(rng, 2, 5, 3)
    second_order(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=False),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v),
        [q, k, v],
    )
    # dropout_p: weights dropped and rescaled; with p -> the expectation is the plain output
    minigan.manual_seed(0)
    qt, kt, vt = (minigan.tensor(a) for a in (q, k, v))
    plain = F.scaled_dot_product_attention(qt, kt, vt).numpy()
    runs = [F.scaled_dot_product_attention(qt, kt, vt, dropout_p=0.3).numpy() for _ in range(400)]
    assert not np.allclose(runs[0], plain)
    np.testing.assert_allclose(np.mean(runs, axis=0), plain, atol=0.15)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masks", ["none", "key_padding", "attn_bool", "attn_float3d", "causal"])
def test_multihead_attention_loads_torch_and_matches(batch_first, masks):
    torch.manual_seed(0)
    e, h, n, l, s = 8, 2, 3, 4, 5
    ref = torch.nn.MultiheadAttention(e, h, batch_first=batch_first)
    ours = nn.MultiheadAttention(e, h, batch_first=batch_first)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(1)
    shape = (lambda length: (n, length, e)) if batch_first else (lambda length: (length, n, e))
    q, k, v = rand(rng, *shape(l)), rand(rng, *shape(s)), rand(rng, *shape(s))
    kw: dict = {}
    tkw: dict = {}
    if masks == "key_padding":
        pad = np.zeros((n, s), bool)
        pad[:, -2:] = True
        kw["key_padding_mask"], tkw["key_padding_mask"] = pad, torch.tensor(pad)
    elif masks == "attn_bool":
        m = rng.random((l, s)) > 0.6
        m[:, 0] = False
        kw["attn_mask"], tkw["attn_mask"] = m, torch.tensor(m)
    elif masks == "attn_float3d":
        m = rand(rng, n * h, l, s)
        kw["attn_mask"], tkw["attn_mask"] = m, torch.tensor(m)
    elif masks == "causal":
        m = np.triu(np.ones((l, s), bool), 1)
        kw["is_causal"] = tkw["is_causal"] = True
        tkw["attn_mask"] = torch.tensor(m)
    for avg in (True, False):
        mq, mk, mv = (minigan.tensor(a, requires_grad=True) for a in (q, k, v))
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        out, w = ours(mq, mk, mv, average_attn_weights=avg, **kw)
        tout, tw = ref(tq, tk, tv, average_attn_weights=avg, **tkw)
        assert_close(out, tout, 1e-4, 1e-5, "output")
        assert_close(w, tw, 1e-4, 1e-5, "weights")
        gy = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(minigan.tensor(gy))
        tout.backward(torch.tensor(gy))
        for a, b in ((mq, tq), (mk, tk), (mv, tv)):
            assert_close(a.grad, b.grad, 1e-4, 1e-5, "input grad")
    assert ours(mq, mk, mv, need_weights=False)[1] is None


def test_multihead_attention_kdim_vdim_and_unbatched():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(6, 3, kdim=4, vdim=5)
    ours = nn.MultiheadAttention(6, 3, kdim=4, vdim=5)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    q, k, v = rand(rng, 3, 6), rand(rng, 2, 4), rand(rng, 2, 5)  # unbatched (L, E)
    out, w = ours(*(minigan.tensor(a) for a in (q, k, v)))
    tout, tw = ref(*(torch.tensor(a) for a in (q, k, v)))
    assert_close(out, tout.detach(), 1e-4, 1e-5, "output")
    assert_close(w, tw.detach(), 1e-4, 1e-5, "weights")


# --------------------------------------------------------------------------- spectral norm


def _torch_sn(module, minigan_module):
    """Copy minigan's spectral-normed state into torch's (weight_orig, u, v)."""
    sd = {k: torch.tensor(v.numpy()) for k, v in minigan_module.state_dict().items()}
    module.load_state_dict(sd)


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_spectral_norm_matches_torch_both_ways(kind):
    torch.manual_seed(0)
    minigan.manual_seed(0)
    make = {
        "linear": (lambda: nn.Linear(5, 4), lambda: torch.nn.Linear(5, 4), (3, 5)),
        "conv": (lambda: nn.Conv2d(3, 4, 3), lambda: torch.nn.Conv2d(3, 4, 3), (2, 3, 5, 5)),
        "conv_transpose": (
            lambda: nn.ConvTranspose2d(3, 4, 3),
            lambda: torch.nn.ConvTranspose2d(3, 4, 3),
            (2, 3, 4, 4),
        ),
    }[kind]
    ours = nn.utils.spectral_norm(make[0](), n_power_iterations=2)
    ref = torch.nn.utils.spectral_norm(make[1](), n_power_iterations=2)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in ref.named_parameters()]
    # torch -> minigan (an SNGAN checkpoint), then train-mode steps update u and v alike
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rand(np.random.default_rng(0), *make[2])
    for step in range(3):
        parity(ours, ref, [x], rtol=1e-4, atol=1e-5)
        for name in ("weight_u", "weight_v"):
            assert_close(
                getattr(ours, name), getattr(ref, name), 1e-5, 1e-6, f"{name} step {step}"
            )
        assert_close(ours.weight_orig.grad, ref.weight_orig.grad, 1e-4, 1e-5, "weight_orig grad")
        ours.weight_orig.grad = None
        ref.weight_orig.grad = None
    # eval mode: no power iteration, u and v stay
    ours.eval()
    ref.eval()
    u = ours.weight_u.numpy().copy()
    parity(ours, ref, [x], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.weight_u.numpy(), u)
    # minigan -> torch: a fresh torch layer takes our state dict
    fresh = torch.nn.utils.spectral_norm(make[1](), n_power_iterations=2).eval()
    _torch_sn(fresh, ours)
    with torch.no_grad():
        np.testing.assert_allclose(
            fresh(torch.tensor(x)).numpy(), ours(minigan.tensor(x)).numpy(), rtol=1e-4, atol=1e-5
        )


def test_spectral_norm_sigma_is_the_top_singular_value_and_remove():
    minigan.manual_seed(0)
    layer = nn.utils.spectral_norm(nn.Linear(6, 4), n_power_iterations=50)
    layer(minigan.zeros(1, 6))
    top = np.linalg.svd(layer.weight.numpy(), compute_uv=False)[0]
    np.testing.assert_allclose(top, 1.0, rtol=1e-4)
    import copy

    twin = copy.deepcopy(layer)  # the hook travels with the copy and updates the copy's u
    twin(minigan.zeros(1, 6))
    nn.utils.remove_spectral_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(np.linalg.svd(layer.weight.numpy(), compute_uv=False)[0], 1, 1e-4)
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        nn.utils.spectral_norm(nn.Linear(2, 2), name="kernel")


# --------------------------------------------------------------------------- pooling, resize


@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    d = draw(st.integers(1, 2))
    h = draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 7))
    return k, s, p, d, h, draw(st.booleans()), draw(st.booleans())


@SETTINGS
@given(pool_cases(), st.integers(0, 2**31))
def test_max_pool2d_dilation_ceil_indices_match_torch(case, seed):
    k, s, p, d, h, ceil, _ = case
    x = rand(np.random.default_rng(seed), 2, 2, h, h + 1)
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    y, idx = F.max_pool2d(minigan.tensor(x), return_indices=True, **kw)
    ty, tidx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    assert idx.dtype == np.int64
    padding_only = np.isneginf(ty.numpy())  # torch: -inf, an index past the plane
    if padding_only.any():  # and that window's gradient written into the next plane
        assert_close(y, ty, 0, 0, "forward")
        np.testing.assert_array_equal(idx.numpy()[padding_only], -1)
        np.testing.assert_array_equal(idx.numpy()[~padding_only], tidx.numpy()[~padding_only])
        return
    parity(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), [x])
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


@pytest.mark.parametrize(
    "x, kw",
    [  # -inf inputs tie with the padding (padding is no value in PyTorch); the last NaN wins
        (np.full((1, 1, 2, 2), -np.inf), dict(kernel_size=2, stride=1, padding=1)),
        (np.array([[[[np.nan, 1, np.nan, 2]]]]), dict(kernel_size=(1, 4))),
        (np.array([[[[-np.inf, np.nan, 3, np.nan], [np.nan, -np.inf, 5, 5]]]]),
         dict(kernel_size=2, stride=1, padding=1, ceil_mode=True)),  # fmt: skip
    ],
)
def test_max_pool2d_ties_with_padding_and_nan_follow_torch(x, kw):
    x = x.astype(np.float32)
    m = minigan.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(m, return_indices=True, **kw)
    y.sum().backward()
    t = torch.tensor(x, requires_grad=True)
    ty, tidx = TF.max_pool2d(t, return_indices=True, **kw)
    ty.sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(m.grad.numpy(), t.grad.numpy())


def test_max_pool2d_window_of_padding_only_gets_no_gradient():
    x = minigan.tensor(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3), requires_grad=True)
    y = F.max_pool2d(x, 2, 1, padding=1, dilation=3)  # each window: rows -1 and 2 only
    np.testing.assert_array_equal(y.numpy(), [[[[-np.inf, -np.inf]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 2, 3)))


@SETTINGS
@given(pool_cases(), st.integers(0, 2**31))
def test_avg_pool2d_ceil_and_count_include_pad_match_torch(case, seed):
    k, s, p, _, h, ceil, include = case
    x = rand(np.random.default_rng(seed), 2, 2, max(h, k), max(h, k) + 1)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include)
    parity(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), [x])


def test_pool_layers_and_second_order():
    x = rand(np.random.default_rng(0), 1, 2, 5, 5)
    layer = nn.MaxPool2d(3, 2, 1, dilation=1, return_indices=True, ceil_mode=True)
    y, idx = layer(minigan.tensor(x))
    ty, tidx = torch.nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)(torch.tensor(x))
    assert_close(y, ty, 1e-6, 1e-6, "max pool")
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    second_order(lambda t: F.avg_pool2d(t, **kw), lambda t: TF.avg_pool2d(t, **kw), [x])
    parity(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), [x])


@SETTINGS
@given(
    st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9), st.booleans(),
    st.integers(0, 2**31),
)
def test_interpolate_nearest_exact_matches_torch(h, w, oh, ow, by_scale, seed):
    x = rand(np.random.default_rng(seed), 1, 2, h, w)
    if by_scale:
        kw = dict(scale_factor=(oh / 3, ow / 3), mode="nearest-exact")
        if int(h * oh / 3) < 1 or int(w * ow / 3) < 1:
            return
    else:
        kw = dict(size=(oh, ow), mode="nearest-exact")
    parity(
        lambda t: F.interpolate(t, antialias=False, **kw),
        lambda t: TF.interpolate(t, antialias=False, **kw),
        [x],
    )
    up = nn.Upsample(**kw)
    assert up(minigan.tensor(x)).shape == TF.interpolate(torch.tensor(x), **kw).shape


@pytest.mark.parametrize("small", [0, 1 << 30], ids=["fused-kernel", "composed"])
def test_norm_paths_agree_with_torch(monkeypatch, small):
    """Both implementations of GroupNorm/LayerNorm (the fused per-group kernel above
    ``SMALL_NORM`` elements, composed ops below), first and second derivatives."""
    monkeypatch.setattr(F, "SMALL_NORM", small)
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, 2, 6, 3, 3) * 2 + 3, rand(rng, 6), rand(rng, 6)
    parity(
        lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b),
        [x, w, b], rtol=1e-4, atol=1e-4,
    )
    second_order(
        lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b),
        [x, w, b], fd=False,
    )
    second_order(lambda x: F.layer_norm(x, (3, 3)), lambda x: TF.layer_norm(x, (3, 3)), [x])


def test_rearranging_ops_second_order():
    """pixel_shuffle, dilated ceil-mode max pooling and nearest-exact resizing: finite
    differences of first and second derivatives, and torch's double backward."""
    rng = np.random.default_rng(7)
    x = rand(rng, 1, 4, 5, 5)
    second_order(lambda t: F.pixel_shuffle(t, 2), lambda t: TF.pixel_shuffle(t, 2), [x])
    kw = dict(kernel_size=2, stride=2, dilation=2, ceil_mode=True)
    second_order(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), [x])
    second_order(
        lambda t: F.interpolate(t, size=(7, 3), mode="nearest-exact"),
        lambda t: TF.interpolate(t, size=(7, 3), mode="nearest-exact"),
        [x],
    )
    second_order(
        lambda t, w: F.conv2d(t, w, padding="same", dilation=2, groups=2),
        lambda t, w: TF.conv2d(t, w, padding="same", dilation=2, groups=2),
        [x, rand(rng, 4, 2, 2, 2)],
    )


# --------------------------------------------------------------------------- float16 on the CPU
HALF_OPS = {
    "conv2d": (
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=1),
        [(2, 3, 7, 6), (4, 3, 3, 3)],
    ),
    "conv_transpose2d": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
        lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1),
        [(2, 3, 5, 4), (3, 4, 3, 3)],
    ),
    "batch_norm": (
        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
        lambda x, g, b: torch.nn.functional.batch_norm(x, None, None, g, b, training=True),
        [(4, 3, 5, 5), (3,), (3,)],
    ),
    "leaky_relu": (
        lambda x: F.leaky_relu(x, 0.2),
        lambda x: torch.nn.functional.leaky_relu(x, 0.2),
        [(3, 4, 5)],
    ),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(5, 7), (7, 3)]),
}


@pytest.mark.parametrize("op", sorted(HALF_OPS))
def test_float16_on_the_cpu_follows_torch(op):
    """float16 in, float16 out (computed in float32, as PyTorch's CPU kernels accumulate
    half): values and gradients agree with PyTorch's float16 to a couple of float16 ulps."""
    ours, theirs, shapes = HALF_OPS[op]
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(s) * 0.5).astype(np.float16) for s in shapes]
    mine = [minigan.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = ours(*mine), theirs(*ref)
    assert y.dtype == np.float16
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float16)
    (y * minigan.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    for a, b in [(y, yt), *[(m.grad, t.grad) for m, t in zip(mine, ref)]]:
        assert a.dtype == np.float16
        a, b = np.asarray(a.numpy(), np.float64), b.detach().numpy().astype(np.float64)
        np.testing.assert_allclose(a, b, rtol=4e-3, atol=4e-3 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_takes_an_unbatched_chw_input_as_torch(pool):
    rng = np.random.default_rng(1)
    xn = rng.standard_normal((3, 7, 6)).astype(np.float32)
    x, xt = minigan.tensor(xn, requires_grad=True), torch.tensor(xn, requires_grad=True)
    if pool == "max":
        (y, i), (yt, it) = (
            F.max_pool2d(x, 3, 2, padding=1, return_indices=True),
            TF.max_pool2d(xt, 3, 2, padding=1, return_indices=True),
        )
        np.testing.assert_array_equal(i.numpy(), it.numpy())
    else:
        y, yt = F.avg_pool2d(x, 3, 2, padding=1), TF.avg_pool2d(xt, 3, 2, padding=1)
    assert y.shape == tuple(yt.shape) == (3, 4, 3)
    g = rng.standard_normal(y.shape).astype(np.float32)
    (y * minigan.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(F.ShapeError, match=r"4-D \(N, C, H, W\) or 3-D"):
        F.max_pool2d(minigan.ones(4, 4), 2)
    layer = nn.MaxPool2d(3, 2, 1) if pool == "max" else nn.AvgPool2d(3, 2, 1)
    np.testing.assert_allclose(layer(minigan.tensor(xn)).numpy(), yt.detach().numpy(), atol=1e-6)


def test_batch_norm_of_no_channels_is_the_empty_input():
    """PyTorch returns the empty input too (without weight or running statistics; with them
    it raises an IndexError)."""
    x = minigan.tensor(np.zeros((2, 0, 3, 3), np.float32), requires_grad=True)
    y = F.batch_norm(x, np.zeros(0, np.float32), np.ones(0, np.float32), training=True)
    assert y.shape == tuple(TF.batch_norm(torch.zeros(2, 0, 3, 3), None, None, training=True).shape)
    y.sum().backward()
    assert x.grad.shape == (2, 0, 3, 3)
    assert nn.BatchNorm2d(0)(x).shape == (2, 0, 3, 3)
