"""Parity of the CPU kernels (minigan.kernels) with PyTorch CPU, in float32 and float64.

References are computed by PyTorch in float64 from the same inputs, so the float32 tolerance
measures only the kernel's own rounding (a float32 torch reference is itself off by ~1e-4 in
ill-conditioned cases such as batch norm over two values).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minigan.kernels as K

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]
# At least 20 examples per test; HYPOTHESIS_PROFILE=thorough (tests/conftest.py) raises it.
FEW = settings(max_examples=max(20, settings.default.max_examples), deadline=None)


def assert_close(actual: np.ndarray, expected, dtype) -> None:
    """Compare with a (float64) reference: float32 rtol 1e-4 and atol 1e-4 times the reference's
    magnitude; float64 the same with 1e-10."""
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def t64(a: np.ndarray):
    """A float64 torch tensor: the references are computed in float64 for both dtypes."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def randn(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_cases(draw):
    """A conv geometry with at least one output pixel: shapes, (stride, padding, dilation)."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    assume(out_size(h, kh, s[0], p[0], d[0]) >= 1 and out_size(w, kw, s[1], p[1], d[1]) >= 1)
    return (n, c, h, w), (o, c, kh, kw), s, p, d


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_forward(dtype, case, seed):
    x_shape, w_shape, s, p, d = case
    rng = np.random.default_rng(seed)
    x, w = randn(rng, x_shape, dtype), randn(rng, w_shape, dtype)
    ref = F.conv2d(t64(x), t64(w), stride=s, padding=p, dilation=d)
    assert_close(K.conv2d(x, w, s, p, d), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_grad_weight(dtype, case, seed):
    x_shape, w_shape, s, p, d = case
    rng = np.random.default_rng(seed)
    x, w = randn(rng, x_shape, dtype), randn(rng, w_shape, dtype)
    tw = t64(w).requires_grad_()
    y = F.conv2d(t64(x), tw, stride=s, padding=p, dilation=d)
    gy = randn(rng, tuple(y.shape), dtype)
    y.backward(t64(gy))
    assert_close(K.conv2d_grad_weight(x, gy, w_shape, s, p, d), tw.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_grad_input_every_valid_x_shape(dtype, case, seed):
    """Every input size H with out_size(H) == OH is valid; output_padding = H - minimal H."""
    (n, c, h, w), w_shape, s, p, d = case
    _, _, kh, kw = w_shape
    oh, ow = out_size(h, kh, s[0], p[0], d[0]), out_size(w, kw, s[1], p[1], d[1])
    rng = np.random.default_rng(seed)
    wt, gy = randn(rng, w_shape, dtype), randn(rng, (n, w_shape[0], oh, ow), dtype)
    min_h = (oh - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + 1
    min_w = (ow - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + 1
    for hh in range(max(1, min_h), min_h + s[0]):
        for ww in range(max(1, min_w), min_w + s[1]):
            assert out_size(hh, kh, s[0], p[0], d[0]) == oh
            assert out_size(ww, kw, s[1], p[1], d[1]) == ow
            ref = F.conv_transpose2d(
                t64(gy),
                t64(wt),
                stride=s,
                padding=p,
                dilation=d,
                output_padding=(hh - min_h, ww - min_w),
            )
            got = K.conv2d_grad_input(gy, wt, (n, c, hh, ww), s, p, d)
            assert_close(got, ref, dtype)


# Geometries at the edges of the packing loops: padding wider than the kernel, a 1-pixel
# image, a kernel as wide as the padded image. Deterministic, so the boundscheck run below
# always sees them (an im2row bug wrote past its buffer on the first one).
EDGE_CASES = [
    ((1, 1, 1, 1), (1, 1, 1, 1), (1, 2), (0, 2), (1, 1)),
    ((2, 3, 2, 3), (2, 3, 1, 2), (2, 1), (3, 3), (1, 1)),
    ((1, 2, 4, 4), (3, 2, 3, 3), (1, 1), (4, 5), (2, 1)),
    ((1, 1, 3, 2), (1, 1, 3, 6), (1, 1), (0, 2), (1, 1)),
]


@pytest.mark.parametrize("case", EDGE_CASES, ids=str)
def test_conv_kernels_edge_geometry(case):
    x_shape, w_shape, s, p, d = case
    rng = np.random.default_rng(0)
    x, w = randn(rng, x_shape, np.float64), randn(rng, w_shape, np.float64)
    tx, tw = t64(x).requires_grad_(), t64(w).requires_grad_()
    y = F.conv2d(tx, tw, stride=s, padding=p, dilation=d)
    gy = randn(rng, tuple(y.shape), np.float64)
    y.backward(t64(gy))
    assert_close(K.conv2d(x, w, s, p, d), y, np.float64)
    assert_close(K.conv2d_grad_weight(x, gy, w.shape, s, p, d), tw.grad, np.float64)
    assert_close(K.conv2d_grad_input(gy, w, x.shape, s, p, d), tx.grad, np.float64)


def test_conv2d_dcgan_layer_float32():
    """One realistic layer (several batch chunks' worth of work) against torch."""
    rng = np.random.default_rng(0)
    x, w = randn(rng, (8, 64, 14, 14), np.float32), randn(rng, (32, 64, 5, 5), np.float32)
    s, p, d = (2, 2), (2, 2), (1, 1)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    y = F.conv2d(tx, tw, stride=s, padding=p)
    gy = randn(rng, tuple(y.shape), np.float32)
    y.backward(torch.from_numpy(gy))
    assert_close(K.conv2d(x, w, s, p, d), y, np.float32)
    assert_close(K.conv2d_grad_input(gy, w, x.shape, s, p, d), tx.grad, np.float32)
    assert_close(K.conv2d_grad_weight(x, gy, w.shape, s, p, d), tw.grad, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_grad_input_stride1_larger_x_shape(dtype):
    """At stride 1 with dilation 2, torch's transposed convolution allows output_padding 1:
    an x_shape one larger than the smallest. The flipped-weight twin can only make the
    smallest, so such a shape must take the direct path (it once came back one short)."""
    rng = np.random.default_rng(0)
    gy, w = randn(rng, (2, 2, 3, 3), dtype), randn(rng, (2, 4, 3, 3), dtype)  # O=2 <= C=4
    got = K.conv2d_grad_input(gy, w, (2, 4, 4, 4), (1, 1), (2, 2), (2, 2))
    ref = F.conv_transpose2d(t64(gy), t64(w), padding=2, dilation=2, output_padding=1)
    assert_close(got, ref, dtype)


def _spy(monkeypatch, module, names: tuple[str, ...]) -> list[str]:
    """Record which of ``module``'s functions ``names`` get called, in order."""
    calls: list[str] = []
    for name in names:
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


def test_padding_dominated_stride1_convs_run_direct(monkeypatch):
    """A stride-1 convolution whose output is mostly padding takes the direct GEMM, not the
    transposed twin (which multiplies at every input pixel: 16x the work here). Both cases
    pick the twin by the channel rule alone (O <= C): a DCGAN generator's first layer (a
    1x1 latent transposed to 4x4) and a discriminator's last (a 4x4 map to one logit)."""
    from minigan.kernels.cpu import conv

    rng = np.random.default_rng(0)
    calls = _spy(monkeypatch, conv, ("_grad_input_gemm", "_conv2d_gemm"))
    z, w = randn(rng, (4, 12, 1, 1), np.float32), randn(rng, (12, 16, 4, 4), np.float32)
    got = K.conv2d_grad_input(z, w, (4, 16, 4, 4), (1, 1), (0, 0), (1, 1))
    assert_close(got, F.conv_transpose2d(t64(z), t64(w)), np.float32)
    assert calls == ["_grad_input_gemm"]
    calls.clear()
    x, w = randn(rng, (4, 16, 4, 4), np.float32), randn(rng, (3, 16, 4, 4), np.float32)
    assert_close(K.conv2d(x, w, (1, 1), (0, 0), (1, 1)), F.conv2d(t64(x), t64(w)), np.float32)
    assert calls == ["_conv2d_gemm"]


# --------------------------------------------------------------------------- batch norm


@st.composite
def bn_shapes(draw):
    """(N, C), (N, C, L) or (N, C, H, W) with more than one value per channel (torch needs it)."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    spatial = draw(st.lists(st.integers(1, 7), min_size=0, max_size=2))
    shape = (n, c, *spatial)
    assume(int(np.prod(shape)) // c > 1)
    return shape


@pytest.fixture(scope="module", params=["memory-order", "per-channel"])
def bn_path(request):
    """Run a batch-norm test through both CPU strategies (short rows / long rows)."""
    from minigan.kernels.cpu import norm

    old = norm.ROW_BLOCKED_MAX_S
    norm.ROW_BLOCKED_MAX_S = 10**9 if request.param == "memory-order" else 0
    yield request.param
    norm.ROW_BLOCKED_MAX_S = old


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(shape=bn_shapes(), affine=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm(bn_path, dtype, shape, affine, seed):
    rng = np.random.default_rng(seed)
    c, eps = shape[1], 1e-5
    x = (randn(rng, shape, dtype) * 3 + 2).astype(dtype)
    gamma = randn(rng, (c,), dtype) if affine else None
    beta = randn(rng, (c,), dtype) if affine else None
    tx = t64(x).requires_grad_()
    tg = t64(gamma if affine else np.ones(c)).requires_grad_()
    tb = t64(beta if affine else np.zeros(c)).requires_grad_()
    ty = F.batch_norm(tx, None, None, tg, tb, training=True, eps=eps)
    gy = randn(rng, shape, dtype)
    ty.backward(t64(gy))

    y, mean, invstd = K.batch_norm_forward(x, gamma, beta, eps)
    axes = tuple(i for i in range(x.ndim) if i != 1)
    x64 = x.astype(np.float64)
    assert_close(y, ty, dtype)
    assert_close(mean, x64.mean(axis=axes).astype(dtype), dtype)
    assert_close(invstd, (1 / np.sqrt(x64.var(axis=axes) + eps)).astype(dtype), dtype)

    gx, ggamma, gbeta = K.batch_norm_backward(gy, x, gamma, mean, invstd)
    assert_close(gx, tx.grad, dtype)
    assert_close(ggamma, tg.grad, dtype)
    assert_close(gbeta, tb.grad, dtype)


# --------------------------------------------------------------------------- AdaIN


def torch_adain(x, scale, bias, eps):
    """AdaIN in torch: instance norm (biased variance), then a per-sample affine."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return scale[:, :, None, None] * (x - mean) / torch.sqrt(var + eps) + bias[:, :, None, None]


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 5),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_adain(dtype, n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    eps = 1e-5
    x = (randn(rng, (n, c, h, w), dtype) * 2 - 1).astype(dtype)
    scale, bias = randn(rng, (n, c), dtype), randn(rng, (n, c), dtype)
    tx, ts, tb = (t64(a).requires_grad_() for a in (x, scale, bias))
    ty = torch_adain(tx, ts, tb, eps)
    gy = randn(rng, x.shape, dtype)
    ty.backward(t64(gy))

    y, mean, invstd = K.adain_forward(x, scale, bias, eps)
    x64 = x.astype(np.float64)
    assert_close(y, ty, dtype)
    assert mean.shape == invstd.shape == (n, c)
    assert_close(mean, x64.mean(axis=(2, 3)).astype(dtype), dtype)
    assert_close(invstd, (1 / np.sqrt(x64.var(axis=(2, 3)) + eps)).astype(dtype), dtype)

    gx, gscale, gbias = K.adain_backward(gy, x, scale, mean, invstd)
    assert_close(gx, tx.grad, dtype)
    assert_close(gscale, ts.grad, dtype)
    assert_close(gbias, tb.grad, dtype)


# --------------------------------------------------------------------------- numerical stability


def reference_norm(x64: np.ndarray, gy64: np.ndarray, axes: tuple[int, ...], eps: float):
    """float64 two-pass reference for y = xhat and gx (scale 1, bias 0)."""
    mean = x64.mean(axis=axes, keepdims=True)
    invstd = 1 / np.sqrt(((x64 - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x64 - mean) * invstd
    gx = invstd * (
        gy64
        - gy64.mean(axis=axes, keepdims=True)
        - xhat * (gy64 * xhat).mean(axis=axes, keepdims=True)
    )
    return xhat, invstd, gx


def naive_float32_invstd(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """The unstable formula var = E[x²] - E[x]², in float32 (what the test must catch)."""
    m = x.mean(axis=axes, dtype=np.float32, keepdims=True)
    m2 = (x * x).mean(axis=axes, dtype=np.float32, keepdims=True)
    return 1 / np.sqrt(np.maximum(m2 - m * m, 0) + np.float32(eps))


@pytest.mark.parametrize("kind", ["batch_norm", "adain"])
def test_norm_stable_on_large_offset(bn_path, kind):
    """float32 data 1e4 + N(0, 1): results must match a float64 reference."""
    rng = np.random.default_rng(1)
    eps = 1e-5
    x = (1e4 + rng.standard_normal((8, 3, 16, 16))).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    if kind == "batch_norm":
        axes = (0, 2, 3)
        y, mean, invstd = K.batch_norm_forward(x, None, None, eps)
        gx, _, _ = K.batch_norm_backward(gy, x, None, mean, invstd)
    else:
        axes = (2, 3)
        ones, zeros = np.ones((8, 3), np.float32), np.zeros((8, 3), np.float32)
        y, mean, invstd = K.adain_forward(x, ones, zeros, eps)
        gx, _, _ = K.adain_backward(gy, x, ones, mean, invstd)
    y_ref, invstd_ref, gx_ref = reference_norm(
        x.astype(np.float64), gy.astype(np.float64), axes, eps
    )
    invstd_ref = invstd_ref.reshape(invstd.shape)

    np.testing.assert_allclose(invstd, invstd_ref, rtol=1e-4)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=2e-3)
    np.testing.assert_allclose(gx, gx_ref, rtol=0, atol=2e-3)
    # The check has teeth: the naive single-pass float32 variance is far outside it.
    naive = naive_float32_invstd(x, axes, eps).reshape(invstd.shape)
    assert not np.allclose(naive, invstd_ref, rtol=1e-4)


# --------------------------------------------------------------------------- dispatch


def test_dispatch_rejects_unknown_array_type():
    class FakeGpuArray:
        pass

    with pytest.raises(TypeError, match=r"conv2d.*FakeGpuArray.*CUDA kernels"):
        K.conv2d(FakeGpuArray(), None, (1, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match="batch_norm_forward"):
        K.batch_norm_forward(FakeGpuArray(), None, None, 1e-5)


def test_register_backend_routes_by_array_type(monkeypatch):
    monkeypatch.setattr(K, "_BACKENDS", dict(K._BACKENDS))  # undone after the test

    class FakeArray:
        pass

    kernels = {name: getattr(K.cpu, name) for name in K.KERNELS}  # a complete backend...
    fake = types.SimpleNamespace(  # ...with one kernel of its own
        **{**kernels, "batch_norm_forward": lambda x, g, b, eps: "fake result"}
    )
    K.register_backend("fake", fake, lambda a: isinstance(a, FakeArray))
    assert K.batch_norm_forward(FakeArray(), None, None, 1e-5) == "fake result"
    y, _, _ = K.batch_norm_forward(np.ones((2, 2)), None, None, 1e-5)
    assert isinstance(y, np.ndarray)


# --------------------------------------------------------------------------- batch-parallel convs


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_conv_kernels_in_many_chunks_and_threads(monkeypatch, threads):
    """One sample per chunk, dealt over 1–3 worker threads (uneven shares): every output
    element is still written exactly once and the grad-weight partial sums all added."""
    from minigan.kernels.cpu import conv
    from minigan.kernels.cpu import threads as T

    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    old = T.num_threads()
    T.set_num_threads(threads)
    try:
        rng = np.random.default_rng(threads)
        x, w = randn(rng, (7, 3, 9, 8), np.float64), randn(rng, (4, 3, 3, 2), np.float64)
        s, p, d = (2, 1), (1, 0), (1, 1)
        tx, tw = t64(x).requires_grad_(), t64(w).requires_grad_()
        y = F.conv2d(tx, tw, stride=s, padding=p, dilation=d)
        gy = randn(rng, tuple(y.shape), np.float64)
        y.backward(t64(gy))
        assert_close(K.conv2d(x, w, s, p, d), y, np.float64)
        assert_close(K.conv2d_grad_weight(x, gy, w.shape, s, p, d), tw.grad, np.float64)
        assert_close(K.conv2d_grad_input(gy, w, x.shape, s, p, d), tx.grad, np.float64)
    finally:
        T.set_num_threads(old)


@pytest.mark.parametrize("o, c", [(5, 2), (2, 5)])
def test_grad_input_of_a_large_sample_packs_in_chunks(monkeypatch, o, c):
    """A stride-1 grad-input whose one-sample packed matrix exceeds WHOLE_SAMPLE_BYTES takes
    the chunked formulation (the transposed twin) whatever O and C are, and so does a
    forward with O < C: same results as PyTorch's, in float64."""
    from minigan.kernels.cpu import conv

    monkeypatch.setattr(conv, "WHOLE_SAMPLE_BYTES", 0)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 256)  # many chunks

    def whole_samples(*args, **kwargs):
        raise AssertionError("packed whole samples")

    monkeypatch.setattr(conv, "_grad_input_gemm", whole_samples)
    rng = np.random.default_rng(o)
    x, w = randn(rng, (2, c, 9, 7), np.float64), randn(rng, (o, c, 3, 3), np.float64)
    p, d = (1, 2), (1, 2)
    tx, tw = t64(x).requires_grad_(), t64(w).requires_grad_()
    y = F.conv2d(tx, tw, padding=p, dilation=d)
    gy = randn(rng, tuple(y.shape), np.float64)
    y.backward(t64(gy))
    assert_close(K.conv2d(x, w, (1, 1), p, d), y, np.float64)
    assert_close(K.conv2d_grad_input(gy, w, x.shape, (1, 1), p, d), tx.grad, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 6),
    o=st.integers(1, 6),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    seed=st.integers(0, 2**16),
)
def test_winograd_matches_a_float64_reference(dtype, n, c, o, h, w, p, seed):
    """Winograd F(2x2, 3x3) (odd and even output sizes, edge tiles, padding 0-2) against
    PyTorch's float64 convolution, at the conv kernels' tolerance."""
    from minigan.kernels.cpu import conv

    assume(h + 2 * p[0] >= 3 and w + 2 * p[1] >= 3)
    rng = np.random.default_rng(seed)
    x, wt = randn(rng, (n, c, h, w), dtype), randn(rng, (o, c, 3, 3), dtype)
    assert_close(conv._conv2d_winograd(x, wt, p), F.conv2d(t64(x), t64(wt), padding=p), dtype)


def test_winograd_dispatch_forward_and_grad_input(monkeypatch):
    """With the thresholds at 1, conv2d and the stride-1 grad-input take Winograd (and only
    for 3x3, stride 1, dilation 1, no groups); results as PyTorch's, in float32."""
    from minigan.kernels.cpu import conv

    # the measured rule: VGG's 3x3 layers at 128x128 and up, not StyleGAN-lite's 32 channels
    assert conv._winograd_pays((1, 256, 128, 128), (256, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert not conv._winograd_pays((32, 32, 32, 32), (32, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert not conv._winograd_pays((1, 512, 64, 64), (512, 512, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 4096)  # several chunks per worker
    calls = []
    real = conv._conv2d_winograd
    monkeypatch.setattr(conv, "_conv2d_winograd", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(3)
    x, w = randn(rng, (3, 5, 10, 7), np.float32), randn(rng, (6, 5, 3, 3), np.float32)
    tx, tw = t64(x).requires_grad_(), t64(w).requires_grad_()
    y = F.conv2d(tx, tw, padding=(1, 2))
    gy = randn(rng, tuple(y.shape), np.float32)
    y.backward(t64(gy))
    assert_close(K.conv2d(x, w, (1, 1), (1, 2), (1, 1)), y, np.float32)
    assert_close(K.conv2d_grad_input(gy, w, x.shape, (1, 1), (1, 2), (1, 1)), tx.grad, np.float32)
    assert len(calls) == 2
    K.conv2d(x, w, (2, 2), (1, 1), (1, 1))  # stride 2
    K.conv2d(x, w, (1, 1), (2, 2), (2, 2))  # dilation 2
    K.conv2d(x, randn(rng, (6, 5, 2, 2), np.float32), (1, 1), (1, 1), (1, 1))  # 2x2 kernel
    assert len(calls) == 2


@given(
    n=st.integers(0, 200),
    item=st.integers(1, 10**7),
    target=st.integers(1, 10**8),
    threads=st.integers(1, 5),
)
def test_split_covers_the_batch_in_even_shares(n, item, target, threads):
    from minigan.kernels.cpu import threads as T

    old = T.num_threads()
    T.set_num_threads(threads)
    try:
        chunks = T.split(n, item, target)
        workers = T.by_worker(chunks)
    finally:
        T.set_num_threads(old)
    assert [i for c in chunks for i in c] == list(range(n))  # contiguous, in order, complete
    if n:
        sizes = [len(c) for c in chunks]
        assert max(sizes) - min(sizes) <= 1
        assert len(chunks) == n or len(chunks) % threads == 0
        assert len(workers) == min(threads, len(chunks))
        assert sorted(i for w in workers for c in w for i in c) == list(range(n))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), grain=st.integers(1, 100), threads=st.integers(1, 4))
def test_parallel_for_runs_every_index_once_in_parts_of_at_least_grain(n, grain, threads):
    import threading

    from minigan.kernels.cpu import threads as T

    hits, parts, names = np.zeros(n, dtype=np.int64), [], set()

    def kernel(out, lo, hi):
        out[lo:hi] += 1
        parts.append(hi - lo)
        names.add(threading.current_thread().name)

    old = T.num_threads()
    T.set_num_threads(threads)
    try:
        T.parallel_for(kernel, n, hits, grain=grain)
    finally:
        T.set_num_threads(old)
    np.testing.assert_array_equal(hits, 1)
    assert len(parts) <= threads
    if len(parts) > 1:
        assert min(parts) >= grain
        assert len(names) > 1  # the caller and at least one worker
    assert len(parts) == (0 if n == 0 else max(1, min(threads, n // grain)))


def test_parallel_for_waits_for_every_part_before_raising():
    """A failing part must not return control while other parts still write the output;
    a pool shut down by set_num_threads in another thread runs the parts in the caller."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from minigan.kernels.cpu import threads as T

    def kernel(out, lo, hi):
        if lo == 0:
            raise RuntimeError("part 0 failed")
        time.sleep(0.05)
        out[lo:hi] = 1

    old = T.num_threads()
    T.set_num_threads(4)
    try:
        out = np.zeros(100)
        with pytest.raises(RuntimeError, match="part 0 failed"):
            T.parallel_for(kernel, 100, out, grain=1)
        assert out[25:].sum() == 75  # every other part had finished
        closed, live = ThreadPoolExecutor(2), T._pool
        closed.shutdown()
        T._pool = closed
        try:
            out = np.zeros(100)
            T.parallel_for(lambda o, lo, hi: o.__setitem__(slice(lo, hi), 2), 100, out, grain=1)
            assert (out == 2).all()
            assert T.parallel_map(lambda i: i + 1, [1, 2]) == [2, 3]
        finally:
            T._pool = live
    finally:
        T.set_num_threads(old)


def test_parallel_work_nested_in_a_worker_runs_inline():
    """A kernel started from a worker task (a norm inside a conv task, say) must not wait
    on the pool it runs on: with every worker busy that would deadlock."""
    from minigan.kernels.cpu import threads as T

    out = np.zeros((2, 8))

    def inner(row, lo, hi):
        row[lo:hi] += 1

    def task(i):
        T.parallel_for(inner, 8, out[i], grain=1)
        return T.parallel_map(lambda j: j * 2, [1, 2, 3])

    old = T.num_threads()
    T.set_num_threads(2)
    try:
        results = T.parallel_map(task, [0, 1])
    finally:
        T.set_num_threads(old)
    assert results == [[2, 4, 6], [2, 4, 6]]
    np.testing.assert_array_equal(out, 1)


@pytest.mark.skipif(
    __import__("minigan.kernels.cpu.threads", fromlist=["_"])._blas_local is None,
    reason="without thread-local BLAS control parallel_map runs its items in turn, by design",
)
def test_parallel_map_waits_for_every_item_when_one_fails():
    """The calling thread runs the first item itself; when any item raises, the error comes
    out only after every other item has finished (they write the output), whichever failed."""
    import threading
    import time

    from minigan.kernels.cpu import threads as T

    old = T.num_threads()
    T.set_num_threads(2)
    try:
        for failing in (0, 1):
            done: list[int] = []
            where: dict[int, str] = {}

            def task(i, failing=failing, done=done, where=where):
                where[i] = threading.current_thread().name
                if i == failing:
                    raise RuntimeError(f"item {i} failed")
                time.sleep(0.05)
                done.append(i)

            with pytest.raises(RuntimeError, match=f"item {failing} failed"):
                T.parallel_map(task, [0, 1])
            assert done == [1 - failing]  # the other item ran to its end
            assert where[0] == threading.current_thread().name
            assert where[1].startswith("minigan-cpu")
        assert T.parallel_map(lambda i: i * 10, [1, 2]) == [10, 20]
    finally:
        T.set_num_threads(old)


def test_set_num_threads_rejects_zero():
    from minigan.kernels.cpu import threads as T

    with pytest.raises(ValueError, match="at least 1 thread"):
        T.set_num_threads(0)


# --------------------------------------------------------------------------- elementwise


@st.composite
def arrays(draw, dtype):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=0, max_size=4)))
    seed = draw(st.integers(0, 2**16))
    a = np.asarray(randn(np.random.default_rng(seed), shape, dtype) * 3)
    if a.ndim >= 2 and draw(st.booleans()):
        a = a.swapaxes(0, -1)  # not contiguous
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data(), slope=st.sampled_from([0.0, 0.01, 0.2, 1.5, -0.3]))
def test_leaky_relu_and_backward(dtype, data, slope):
    x = data.draw(arrays(dtype))
    x.flat[: min(2, x.size)] = 0  # zero goes to the slope side, as in PyTorch
    gy = np.asarray(randn(np.random.default_rng(1), x.shape, dtype))
    tx = t64(x).requires_grad_()
    y = F.leaky_relu(tx, slope)
    y.backward(t64(gy))
    assert_close(K.leaky_relu(x, slope), y, dtype)
    assert_close(K.leaky_relu_backward(gy, x, slope), tx.grad, dtype)
    # what functional.leaky_relu keeps for backward: the boolean x > 0 instead of x
    assert_close(K.leaky_relu_backward(gy, np.asarray(x > 0), slope), tx.grad, dtype)


def _max_pool_reference(x, k, s, p, d, out_hw):
    """Window by window in Python, PyTorch's rule: the window's positions inside ``x`` in
    order, the first taken, then each later one that is greater or NaN (255: none inside)."""
    kind = x.dtype.kind
    low = -np.inf if kind == "f" else (False if kind == "b" else np.iinfo(x.dtype).min)
    y = np.full(x.shape[:-2] + out_hw, low, x.dtype)
    win = np.full(y.shape, 255, np.uint8)
    H, W = x.shape[-2:]
    for idx in np.ndindex(*x.shape[:-2], *out_hw):
        lead, (a, b) = idx[:-2], idx[-2:]
        for t in range(k[0] * k[1]):
            r, c = a * s[0] - p[0] + t // k[1] * d[0], b * s[1] - p[1] + t % k[1] * d[1]
            if not (0 <= r < H and 0 <= c < W):
                continue
            v = x[lead + (r, c)]
            if win[idx] == 255 or v > y[idx] or v != v:
                y[idx], win[idx] = v, t
    return y, win


@st.composite
def pool_inputs(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    out_hw = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    # the input reaches into the last window (as ceil mode allows) or beyond it
    hw = [
        max(1, (o - 1) * s[i] + d[i] * (k[i] - 1) + 1 - 2 * p[i] + draw(st.integers(0, 2)))
        for i, o in enumerate(out_hw)
    ]
    lead = draw(st.sampled_from([(2,), (1, 3), (2, 2)]))
    levels = draw(st.integers(2, 6))  # few distinct values: many ties
    x = np.random.default_rng(draw(st.integers(0, 2**31))).integers(0, levels, (*lead, *hw))
    return x, k, s, p, d, out_hw, draw(st.sampled_from(["none", "nan", "-inf"]))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(case=pool_inputs())
def test_max_pool_kernels_against_a_window_by_window_reference(dtype, case):
    """CPU kernel and the CUDA backend's CuPy expressions (run here with NumPy as CuPy)
    against a reference written window by window: values, winners with ties, NaN and -inf,
    windows partly or wholly in the padding, and the backward's sums where windows overlap."""
    import sys

    import minigan.kernels.cuda as KC

    x, k, s, p, d, out_hw, special = case
    x = x.astype(dtype)
    if special != "none":
        x.flat[:: max(1, x.size // 3)] = np.nan if special == "nan" else -np.inf
    y_ref, win_ref = _max_pool_reference(x, k, s, p, d, out_hw)
    gy = np.random.default_rng(0).standard_normal(y_ref.shape).astype(dtype)
    gx_ref = np.zeros(x.shape, np.float64)
    for idx in np.ndindex(*y_ref.shape):
        t = int(win_ref[idx])
        if t != 255:
            r = idx[-2] * s[0] - p[0] + t // k[1] * d[0]
            gx_ref[idx[:-2] + (r, idx[-1] * s[1] - p[1] + t % k[1] * d[1])] += gy[idx]
    for backend in (K.cpu, KC):
        saved = sys.modules.get("cupy")
        sys.modules["cupy"] = np  # the CuPy expressions are NumPy's API
        try:
            y, win = backend.max_pool2d(x, k, s, p, d, out_hw)
            gx = backend.max_pool2d_backward(gy, win, x.shape, k, s, p, d)
        finally:
            if saved is None:
                del sys.modules["cupy"]
            else:
                sys.modules["cupy"] = saved
        np.testing.assert_array_equal(y, y_ref)  # a selection: exact, NaN where NaN
        np.testing.assert_array_equal(win, win_ref)
        assert y.dtype == x.dtype and win.dtype == np.uint8
        assert gx.shape == x.shape and gx.dtype == x.dtype
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.uint8, np.bool_])
def test_max_pool_kernels_take_every_dtype_the_slices_did(dtype):
    """float16 (no Numba type: computed in float32), integers and bool give the reference's
    values, winners and gradient sums."""
    x = (np.random.default_rng(5).integers(0, 4, (2, 3, 5, 6))).astype(dtype)
    geometry = ((2, 3), (2, 1), (1, 1), (1, 2))
    y, win = K.cpu.max_pool2d(x, *geometry, (3, 4))
    y_ref, win_ref = _max_pool_reference(x, *geometry, (3, 4))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(win, win_ref)
    if dtype == np.float16:
        gy = np.ones(y.shape, np.float16)
        gx = K.cpu.max_pool2d_backward(gy, win, x.shape, *geometry)
        assert gx.dtype == np.float16 and float(gx.sum()) == float((win != 255).sum())


def test_max_pool_kernel_on_many_planes_runs_on_the_workers():
    """Planes large enough to be split over the worker threads: the same as one thread."""
    from minigan.kernels.cpu import threads as T

    x = np.random.default_rng(3).standard_normal((6, 40, 64, 64)).astype(np.float32)
    geometry = ((3, 3), (2, 2), (0, 0), (1, 1))
    y, win = K.cpu.max_pool2d(x, *geometry, (31, 31))
    gx = K.cpu.max_pool2d_backward(y, win, x.shape, *geometry)
    old = T.num_threads()
    T.set_num_threads(1)
    try:
        y1, win1 = K.cpu.max_pool2d(x, *geometry, (31, 31))
        gx1 = K.cpu.max_pool2d_backward(y1, win1, x.shape, *geometry)
    finally:
        T.set_num_threads(old)
    np.testing.assert_array_equal(win, win1)
    np.testing.assert_allclose(gx, gx1, rtol=1e-6, atol=1e-6)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), (2, 3))[:, :, ::2, ::2]
    np.testing.assert_array_equal(y, np.max(windows, (-2, -1)))


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data(), p=st.sampled_from([0.0, 0.3, 0.5, 0.99]))
def test_dropout_kernel(dtype, data, p):
    """Against SplitMix64 written out independently in NumPy (uint64 arithmetic wraps)."""
    x = data.draw(arrays(dtype))
    seed = data.draw(st.integers(0, 2**63 - 1))
    z = np.uint64(seed) + np.arange(1, x.size + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    u = (z ^ (z >> np.uint64(31))) >> np.uint64(40)  # 24-bit uniform integers
    keep = (u / 2**24 >= p).reshape(x.shape)
    expected = np.where(keep, x.astype(np.float64) / (1 - p), 0.0)
    assert_close(K.dropout(x, seed, p), expected, dtype)


def test_dropout_stream_is_uniform():
    """The keep rate is 1 - p within 5 standard deviations, for several seeds and p, and two
    seeds give (nearly) independent masks."""
    x = np.ones(200_000, np.float32)
    for seed in (0, 1, 2**62 + 12345):
        for p in (0.1, 0.3, 0.5, 0.9):
            rate = float((K.dropout(x, seed, p) != 0).mean())
            assert abs(rate - (1 - p)) < 5 * np.sqrt(p * (1 - p) / x.size)
    a, b = K.dropout(x, 7, 0.5) != 0, K.dropout(x, 8, 0.5) != 0
    assert abs(float((a & b).mean()) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / x.size)


# --------------------------------------------------------------------------- memory safety


def test_kernels_stay_in_bounds_under_numba_boundscheck(tmp_path):
    """Numba does not check indices, so an out-of-bounds write corrupts memory silently (an
    im2row edge case once did, and crashed the interpreter at exit now and then). Run this
    file's kernel tests again in a subprocess compiled with ``NUMBA_BOUNDSCHECK=1``, where
    such an index raises IndexError and fails the run."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*cmd, "-k", "not boundscheck"], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


# --------------------------------------------------------------------------- matmul


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((300, 200), (200, 40)),  # tall: split by rows over the workers
        ((20, 200), (200, 900)),  # wide: split by columns
        ((3, 4), (4, 5)),  # small: calling thread
        ((5,), (5, 3)),  # NumPy's 1-D and batched rules
        ((2, 3, 4), (4, 2)),
    ],
)
def test_matmul_kernel(dtype, a_shape, b_shape):
    rng = np.random.default_rng(3)
    a, b = randn(rng, a_shape, dtype), randn(rng, b_shape, dtype)
    assert_close(K.matmul(a, b), np.asarray(a, np.float64) @ np.asarray(b, np.float64), dtype)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_conv_works_in_a_forked_child():
    """The worker pool does not survive a fork: the child must start its own, not wait
    forever on threads that do not exist there."""
    import os

    rng = np.random.default_rng(0)
    x, w = randn(rng, (8, 3, 9, 9), np.float32), randn(rng, (4, 3, 3, 3), np.float32)
    expected = K.conv2d(x, w, (1, 1), (1, 1), (1, 1))  # the parent's pool now exists
    import signal
    import time

    pid = os.fork()
    if pid == 0:  # child: report success through the exit code
        ok = False
        try:
            ok = bool(np.allclose(K.conv2d(x, w, (1, 1), (1, 1), (1, 1)), expected))
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("conv2d in a forked child hung (waiting on the parent's worker threads)")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
