"""Second derivatives: every op's gradient is itself differentiable.

For each op: ``gradcheck`` and ``gradgradcheck`` (float64 central finite differences, small
shapes) and parity with torch's double backward (``torch.autograd.grad(...,
create_graph=True)`` then the backward of a penalty of the gradient) to rtol 1e-9 in
float64. End to end: an R1 penalty and a WGAN-GP gradient penalty on a small discriminator
(conv → leaky_relu → conv → [batch_norm] → leaky_relu → linear) against torch, in float64
(rtol 1e-10) and float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from parity import assert_close, double_backward_parity, th

import minigan
import minigan.functional as F
from minigan.tensor import Function
from minigan.testing import gradcheck, gradgradcheck


def normal(rng, shape, scale=1.0, shift=0.0, dtype=np.float64):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def away_from_zero(a, margin=0.1):
    return np.where(a >= 0, a + margin, a - margin)


def check_second_order(mg_fn, torch_fn, arrays, fd=True, fd_tol=None, seed=0):
    """Finite-difference checks of the first and second derivatives (float64), then parity
    with torch's double backward."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if fd:
        kw = fd_tol or {}
        inputs = [minigan.tensor(a, requires_grad=True) for a in arrays]
        assert gradcheck(mg_fn, inputs, seed=seed, **kw)
        assert gradgradcheck(mg_fn, inputs, seed=seed, **kw)
    double_backward_parity(mg_fn, torch_fn, arrays, seed=seed)


# --------------------------------------------------------------------------- convolution

CONV_CASES = [
    dict(stride=1, padding=0, dilation=1),
    dict(stride=2, padding=1, dilation=1),
    dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_second_order(kw, bias, rng):
    arrays = [normal(rng, (1, 2, 4, 4)), normal(rng, (2, 2, 3, 2))]
    if bias:
        arrays.append(normal(rng, (2,)))
    check_second_order(lambda *t: F.conv2d(*t, **kw), lambda *t: TF.conv2d(*t, **kw), arrays)


def test_conv2d_second_order_through_a_nonlinearity(rng):
    """d²/dx² is non-zero only when a nonlinearity follows the (bilinear) convolution."""
    w = normal(rng, (2, 2, 3, 3))
    check_second_order(
        lambda x: F.tanh(F.conv2d(x, minigan.tensor(w), padding=1)),
        lambda x: torch.tanh(TF.conv2d(x, torch.from_numpy(w), padding=1)),
        [normal(rng, (1, 2, 4, 4))],
    )


TRANSPOSE_CASES = [
    dict(stride=1, padding=0),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0), dilation=(1, 2)),
    dict(stride=1, padding=1, output_padding=(1, 0), dilation=(2, 1)),  # output_padding ≥ stride
]


@pytest.mark.parametrize("kw", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_second_order(kw, rng):
    arrays = [normal(rng, (1, 2, 3, 3)), normal(rng, (2, 2, 2, 2)), normal(rng, (2,))]
    check_second_order(
        lambda *t: F.conv_transpose2d(*t, **kw), lambda *t: TF.conv_transpose2d(*t, **kw), arrays
    )


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)], ids=["2d", "4d"])
def test_batch_norm_training_second_order(shape, rng):
    c = shape[1]
    arrays = [normal(rng, shape, 2.0, 1.0), normal(rng, c, 0.3, 1.0), normal(rng, c)]
    check_second_order(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        arrays,
    )


def test_batch_norm_second_order_without_affine(rng):
    check_second_order(
        lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: TF.batch_norm(x, None, None, training=True),
        [normal(rng, (4, 2, 2, 2), 2.0, 1.0)],
    )


def test_adain_second_order(rng):
    arrays = [
        normal(rng, (2, 2, 3, 3), 2.0, 1.0),
        normal(rng, (2, 2), 0.3, 1.0),
        normal(rng, (2, 2)),
    ]
    check_second_order(
        lambda x, s, b: F.adain(x, s, b, eps=1e-5),
        lambda x, s, b: TF.instance_norm(x, eps=1e-5) * s[:, :, None, None] + b[:, :, None, None],
        arrays,
    )


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_second_order(affine, rng):
    arrays = [normal(rng, (2, 2, 3, 2), 2.0, 1.0)]
    if affine:
        arrays += [normal(rng, 2, 0.3, 1.0), normal(rng, 2)]
    check_second_order(
        lambda x, *wb: F.instance_norm(x, *wb),
        lambda x, *wb: TF.instance_norm(x, None, None, *wb),
        arrays,
    )


# --------------------------------------------------------------------------- elementwise, losses

ELEMENTWISE = {
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2) ** 2, lambda x: TF.leaky_relu(x, 0.2) ** 2),
    "relu": (lambda x: F.relu(x) ** 3, lambda x: torch.relu(x) ** 3),
    "tanh": (F.tanh, torch.tanh),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "softplus": (F.softplus, TF.softplus),
    "exp": (F.exp, torch.exp),
    "log": (lambda x: F.log(x * x), lambda x: torch.log(x * x)),
    "sqrt": (lambda x: F.sqrt(x * x + 1), lambda x: torch.sqrt(x * x + 1)),
    "abs": (lambda x: F.abs(x) ** 3, lambda x: torch.abs(x) ** 3),
    "pow": (lambda x: x**3 - 2.0 / x, lambda x: x**3 - 2.0 / x),
    "clip": (lambda x: F.clip(x, -0.5, 0.5) ** 2, lambda x: torch.clamp(x, -0.5, 0.5) ** 2),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: torch.softmax(x, 1)),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: torch.log_softmax(x, 0)),
    "logsumexp": (lambda x: F.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1)),
    "var": (lambda x: F.var(x, 1), lambda x: torch.var(x, 1)),
    "std": (lambda x: F.std(x, 0), lambda x: torch.std(x, 0)),
    "max": (lambda x: F.max(x * x, 1), lambda x: torch.amax(x * x, 1)),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_second_order(name, rng):
    check_second_order(*ELEMENTWISE[name], [away_from_zero(normal(rng, (3, 4)))])


@pytest.mark.parametrize("name", ["maximum", "div", "mul"])
def test_binary_second_order(name, rng):
    a, b = normal(rng, (3, 4)), away_from_zero(normal(rng, (4,)), 0.5)
    mg_fn = {"maximum": lambda x, y: F.maximum(x, y) ** 2, "div": F.div, "mul": F.mul}[name]
    th_fn = {"maximum": lambda x, y: torch.maximum(x, y) ** 2, "div": torch.div, "mul": torch.mul}[
        name
    ]
    check_second_order(mg_fn, th_fn, [a, b])


@pytest.mark.parametrize("variant", ["plain", "weight", "pos_weight"])
def test_binary_cross_entropy_with_logits_second_order(variant, rng):
    target = rng.random((3, 4))
    weight = rng.random(4) + 0.5
    kw_m = {}
    kw_t = {}
    if variant == "weight":
        kw_m["weight"], kw_t["weight"] = minigan.tensor(weight), torch.from_numpy(weight)
    if variant == "pos_weight":
        kw_m["pos_weight"], kw_t["pos_weight"] = (
            minigan.tensor(weight * 2),
            torch.from_numpy(weight * 2),
        )
    check_second_order(
        lambda x: F.binary_cross_entropy_with_logits(x, minigan.tensor(target), **kw_m),
        lambda x: TF.binary_cross_entropy_with_logits(x, torch.from_numpy(target), **kw_t),
        [normal(rng, (3, 4), 2.0)],
    )


def test_other_losses_second_order(rng):
    x, t = normal(rng, (3, 4)), normal(rng, (3, 4))
    check_second_order(F.mse_loss, TF.mse_loss, [x, t])
    idx = rng.integers(0, 4, size=3)
    check_second_order(
        lambda z: F.cross_entropy(z, idx, label_smoothing=0.1),
        lambda z: TF.cross_entropy(z, torch.from_numpy(idx), label_smoothing=0.1),
        [x],
    )


# --------------------------------------------------------------------------- matmul, linear


@pytest.mark.parametrize(
    "sa, sb", [((3,), (3, 2)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2))], ids=str
)
def test_matmul_second_order(sa, sb, rng):
    check_second_order(F.matmul, torch.matmul, [normal(rng, sa), normal(rng, sb)])
    check_second_order(
        lambda a, b: F.tanh(F.matmul(a, b)),
        lambda a, b: torch.tanh(torch.matmul(a, b)),
        [normal(rng, sa), normal(rng, sb)],
    )


def test_linear_second_order(rng):
    arrays = [normal(rng, (2, 3)), normal(rng, (4, 3)), normal(rng, (4,))]
    check_second_order(
        lambda x, w, b: F.sigmoid(F.linear(x, w, b)),
        lambda x, w, b: torch.sigmoid(TF.linear(x, w, b)),
        arrays,
    )


# --------------------------------------------------------------------------- pooling, resizing

POOL_AND_RESIZE = {
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2)),
    "avg_pool2d_pad": (lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: TF.avg_pool2d(x, 3, 2, 1)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2)),
    "max_pool2d_pad": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    "nearest_x2": (
        lambda x: F.upsample(x, scale_factor=2),
        lambda x: TF.interpolate(x, scale_factor=2),
    ),
    "nearest_size": (
        lambda x: F.upsample(x, size=(5, 7)),
        lambda x: TF.interpolate(x, size=(5, 7)),
    ),
    "bilinear": (
        lambda x: F.upsample(x, scale_factor=2, mode="bilinear"),
        lambda x: TF.interpolate(x, scale_factor=2, mode="bilinear"),
    ),
    "bilinear_align": (
        lambda x: F.upsample(x, size=(5, 3), mode="bilinear", align_corners=True),
        lambda x: TF.interpolate(x, size=(5, 3), mode="bilinear", align_corners=True),
    ),
}


@pytest.mark.parametrize("name", POOL_AND_RESIZE)
def test_pool_and_resize_second_order(name, rng):
    """Linear ops (pooling, resizing) followed by a square: the second derivative runs
    through the op's backward and its transpose."""
    mg_fn, th_fn = POOL_AND_RESIZE[name]
    check_second_order(
        lambda x: mg_fn(x) ** 2, lambda x: th_fn(x) ** 2, [normal(rng, (1, 2, 4, 4))]
    )


def test_shape_ops_and_indexing_second_order(rng):
    idx = np.array([0, 2, 2])
    check_second_order(
        lambda x: F.cat(
            [x[idx].flatten() ** 2, F.pad(x, (1, 1)).T.reshape(-1, 3)[1:].flatten() ** 3]
        ),
        lambda x: torch.cat(
            [
                x[torch.from_numpy(idx)].flatten() ** 2,
                TF.pad(x, (1, 1)).T.reshape(-1, 3)[1:].flatten() ** 3,
            ]
        ),
        [normal(rng, (3, 4))],
    )


# --------------------------------------------------------------------------- R1, gradient penalty


def make_params(rng, dtype):
    return {
        "w1": normal(rng, (4, 3, 3, 3), 0.3, dtype=dtype),
        "b1": normal(rng, (4,), 0.1, dtype=dtype),
        "w2": normal(rng, (8, 4, 3, 3), 0.2, dtype=dtype),
        "b2": normal(rng, (8,), 0.1, dtype=dtype),
        "gamma": normal(rng, (8,), 0.2, 1.0, dtype=dtype),
        "beta": normal(rng, (8,), 0.1, dtype=dtype),
        "wl": normal(rng, (1, 8 * 2 * 2), 0.3, dtype=dtype),
        "bl": normal(rng, (1,), 0.1, dtype=dtype),
    }


def discriminator(lib, p, x, bn):
    """conv → leaky_relu → conv → [batch_norm] → leaky_relu → linear; ``lib`` is
    ``minigan.functional`` or ``torch.nn.functional`` (the same names)."""
    h = lib.leaky_relu(lib.conv2d(x, p["w1"], p["b1"], stride=2, padding=1), 0.2)
    h = lib.conv2d(h, p["w2"], p["b2"], stride=2, padding=1)
    if bn:
        h = lib.batch_norm(h, None, None, p["gamma"], p["beta"], training=True)
    h = lib.leaky_relu(h, 0.2)
    return lib.linear(h.flatten(1), p["wl"], p["bl"])


def _both(arrays):
    mp = {k: minigan.tensor(v, requires_grad=True) for k, v in arrays.items()}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    return mp, tp


def compare_param_grads(mp, tp, tol, what, dtype):
    """Parameter grads equal torch's; a parameter the penalty does not reach (biases
    before a piecewise-linear activation: zero second derivative) may get None in minigan
    where torch gives zeros or None."""
    reached = 0
    for k in mp:
        expected = tp[k].grad if tp[k].grad is not None else torch.zeros_like(tp[k])
        if mp[k].grad is None:
            assert float(expected.abs().max()) == 0.0, f"{what}: {k} got no gradient"
            continue
        reached += 1
        assert mp[k].grad.dtype == dtype
        scale = float(expected.abs().max())
        assert_close(
            mp[k].grad,
            expected,
            rtol=tol["rtol"],
            atol=tol["atol"] * max(scale, 1.0),
            what=f"{what} grad of {k}",
        )
    assert reached >= 2


R1_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bn", [False, True], ids=["plain", "batch_norm"])
def test_r1_penalty_matches_torch(bn, dtype, rng):
    params = make_params(rng, dtype)
    x = normal(rng, (4, 3, 8, 8), dtype=dtype)
    mp, tp = _both(params)
    mx, tx = minigan.tensor(x, requires_grad=True), th(x)

    g = minigan.grad(discriminator(F, mp, mx, bn).sum(), mx, create_graph=True)[0]
    r1 = (g * g).sum()
    r1.backward()
    (tg,) = torch.autograd.grad(discriminator(TF, tp, tx, bn).sum(), tx, create_graph=True)
    tr1 = (tg * tg).sum()
    tr1.backward()

    tol = R1_TOL[dtype]
    assert r1.dtype == dtype and g.dtype == dtype
    assert_close(g, tg, **tol, what="gradient wrt x")
    assert_close(r1, tr1, **tol, what="R1")
    compare_param_grads(mp, tp, tol, "R1", dtype)
    expected = tx.grad if bn else torch.zeros_like(tx)  # piecewise linear in x without bn
    assert_close(
        mx.grad if mx.grad is not None else np.zeros_like(x), expected, **tol, what="R1 grad of x"
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bn", [False, True], ids=["plain", "batch_norm"])
def test_wgan_gp_gradient_penalty_matches_torch(bn, dtype, rng):
    params = make_params(rng, dtype)
    real = normal(rng, (3, 3, 8, 8), dtype=dtype)
    g_raw = normal(rng, (3, 3, 8, 8), dtype=dtype)  # "generator": fake = tanh(g_raw)
    alpha = rng.random((3, 1, 1, 1)).astype(dtype)
    mp, tp = _both(params)
    mg_raw, th_raw = minigan.tensor(g_raw, requires_grad=True), th(g_raw)

    def penalty(lib, grad_fn, p, raw):
        wrap = minigan.tensor if lib is F else torch.from_numpy
        fake = lib.tanh(raw)
        interp = wrap(alpha.copy()) * wrap(real.copy()) + (1 - wrap(alpha.copy())) * fake
        score = discriminator(lib, p, interp, bn)
        (g,) = grad_fn(score.sum(), interp)
        norm = ((g * g).sum((1, 2, 3)) + 1e-12) ** 0.5
        return ((norm - 1) ** 2).mean()

    gp = penalty(F, lambda y, x: minigan.grad(y, x, create_graph=True), mp, mg_raw)
    tgp = penalty(TF, lambda y, x: torch.autograd.grad(y, x, create_graph=True), tp, th_raw)
    gp.backward()
    tgp.backward()
    tol = R1_TOL[dtype]
    assert_close(gp, tgp, **tol, what="gradient penalty")
    compare_param_grads(mp, tp, tol, "GP", dtype)
    if bn:  # without batch norm the critic is piecewise linear: no gradient reaches G
        assert_close(mg_raw.grad, th_raw.grad, **tol, what="GP grad of the generator output")
    else:
        assert mg_raw.grad is None or not mg_raw.grad.numpy().any()
        assert not th_raw.grad.numpy().any()


def test_r1_penalty_finite_differences_on_a_tiny_discriminator(rng):
    """The R1 parameter gradient against finite differences (no torch involved)."""
    w1 = minigan.tensor(normal(rng, (2, 1, 2, 2), 0.5), requires_grad=True)
    wl = minigan.tensor(normal(rng, (1, 2 * 2 * 2), 0.5), requires_grad=True)
    x = minigan.tensor(normal(rng, (2, 1, 3, 3)), requires_grad=True)

    def r1(w1_, wl_):
        h = F.leaky_relu(F.conv2d(x, w1_), 0.2)
        h = F.softplus(h)  # a curved layer: R1 depends on the weights non-trivially
        out = F.linear(h.flatten(1), wl_)
        (g,) = minigan.grad(out.sum(), x, create_graph=True)
        return (g * g).sum()

    assert gradcheck(r1, [w1, wl])


# --------------------------------------------------------------------------- the checkers can fail


def _square(first_order_right: bool, differentiable: bool):
    """x² as a Function whose backward is wrong, or right but not differentiable."""

    class Square(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            (x,) = self.inputs
            if not first_order_right:
                return gy * x * 3.0
            if differentiable:
                return gy * x * 2.0
            return gy * minigan.Tensor(2.0 * x.data)  # cut from the graph: no d²

    return lambda x: Square()(x)


def test_gradcheck_and_gradgradcheck_catch_wrong_derivatives(rng):
    x = minigan.tensor(normal(rng, (2, 3)), requires_grad=True)
    assert gradcheck(_square(True, True), [x]) and gradgradcheck(_square(True, True), [x])
    with pytest.raises(AssertionError, match="gradient mismatch"):
        gradcheck(_square(False, True), [x])
    assert gradcheck(_square(True, False), [x])
    with pytest.raises(AssertionError, match="second derivative mismatch"):
        gradgradcheck(_square(True, False), [x])


def test_gradcheck_needs_float64_and_handles_non_contiguous_inputs(rng):
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.tanh, [minigan.randn(3, requires_grad=True)])
    x = minigan.Tensor(normal(rng, (4, 3)).T, requires_grad=True)  # a transposed view
    assert not x.data.flags["C_CONTIGUOUS"]
    assert gradcheck(F.tanh, [x]) and gradgradcheck(F.tanh, [x])
    with pytest.raises(AssertionError):
        gradcheck(_square(False, True), [x])
