"""Parity of every op in :mod:`minigan.functional` with PyTorch (CPU), forward and backward.

Each test runs minigan and torch on the same NumPy inputs, compares the outputs, feeds the
same random output gradient to both backward passes and compares the input gradients.
Tolerances: float32 rtol=1e-4, atol=1e-5 (convolutions atol=1e-4·sqrt(K), K products per
output); float64 rtol=1e-10, atol=1e-12 (see ``parity.TOL``).
"""

from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from parity import assert_close, mg, parity, th, tol
from strategies import (
    broadcastable_pairs,
    conv_configs,
    conv_transpose_configs,
    float_dtypes,
    seeds,
    shape_and_dims,
    shapes,
)

import minigan
import minigan.functional as F


def normal(
    rng: np.random.Generator, shape, dtype=np.float32, scale: float = 1.0, shift: float = 0.0
):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def away_from_zero(a: np.ndarray, margin: float = 0.5) -> np.ndarray:
    """Push values to |a| >= margin (for division, abs, l1)."""
    return np.where(a >= 0, a + margin, a - margin).astype(a.dtype)


# --------------------------------------------------------------------------- elementwise

BINARY = {
    "add": (F.add, torch.add),
    "sub": (F.sub, torch.sub),
    "mul": (F.mul, torch.mul),
    "div": (F.div, torch.div),
    "maximum": (F.maximum, torch.maximum),
    "minimum": (F.minimum, torch.minimum),
    "operator+": (operator.add, operator.add),
    "operator-": (operator.sub, operator.sub),
    "operator*": (operator.mul, operator.mul),
    "operator/": (operator.truediv, operator.truediv),
}


@pytest.mark.parametrize("name", BINARY)
@given(pair=broadcastable_pairs(), dtype=float_dtypes, seed=seeds)
def test_binary_ops_broadcast(name, pair, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, pair[0], dtype), normal(rng, pair[1], dtype)
    if "div" in name or "/" in name:
        b = away_from_zero(b)
    parity(*BINARY[name], [a, b], seed=seed)


SCALAR_OPS = {
    "x*2.0": lambda x: x * 2.0,
    "2.0*x": lambda x: 2.0 * x,
    "x+1.5": lambda x: x + 1.5,
    "1.5+x": lambda x: 1.5 + x,
    "x-0.5": lambda x: x - 0.5,
    "2.0-x": lambda x: 2.0 - x,
    "x/3": lambda x: x / 3,
    "3.0/x": lambda x: 3.0 / x,
    "x**2": lambda x: x**2,
    "x**3.0": lambda x: x**3.0,
    "x**0.5": lambda x: x**0.5,
    "x**-1.5": lambda x: x**-1.5,
    "2.0**x": lambda x: 2.0**x,
    "x**x": lambda x: x**x,
    "-x": lambda x: -x,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SCALAR_OPS)
def test_ops_with_python_scalars_keep_dtype(name, dtype, rng):
    x = rng.uniform(0.5, 2.0, size=(3, 4)).astype(dtype)  # positive: pow and division
    my, _ = parity(SCALAR_OPS[name], SCALAR_OPS[name], [x])
    assert my.dtype == dtype


UNARY = {
    "neg": (F.neg, torch.neg, None),
    "exp": (F.exp, torch.exp, None),
    "log": (F.log, torch.log, "positive"),
    "sqrt": (F.sqrt, torch.sqrt, "positive"),
    "abs": (F.abs, torch.abs, "nonzero"),
    "relu": (F.relu, torch.relu, "nonzero"),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu, "nonzero"),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), "nonzero"),
    "tanh": (F.tanh, torch.tanh, None),
    "sigmoid": (F.sigmoid, torch.sigmoid, None),
    "softplus": (F.softplus, TF.softplus, None),
    "pow2": (lambda x: F.pow(x, 2), lambda x: torch.pow(x, 2), None),
    "pow_half": (lambda x: F.pow(x, 0.5), lambda x: torch.pow(x, 0.5), "positive"),
    "method_exp": (lambda x: x.exp(), lambda x: x.exp(), None),
    "method_clamp": (lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5), None),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=shapes(), dtype=float_dtypes, seed=seeds)
@settings(max_examples=6)
def test_unary_ops(name, shape, dtype, seed):
    mg_fn, torch_fn, domain = UNARY[name]
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, dtype, scale=2.0)
    if domain == "positive":
        x = (np.abs(x) + 0.1).astype(dtype)
    elif domain == "nonzero":
        x = away_from_zero(x, 0.01)
    parity(mg_fn, torch_fn, [x], seed=seed)


@pytest.mark.parametrize(
    "mg_fn, torch_fn",
    [
        (F.relu, torch.relu),
        (F.leaky_relu, TF.leaky_relu),
        (lambda x: F.leaky_relu(x, 0.3), lambda x: TF.leaky_relu(x, 0.3)),
        (F.abs, torch.abs),
    ],
    ids=["relu", "leaky_relu", "leaky_relu_0.3", "abs"],
)
def test_kinks_at_zero_match_torch(mg_fn, torch_fn):
    x = np.array([-2.0, -0.0, 0.0, 1e-8, 3.0], dtype=np.float32)
    parity(mg_fn, torch_fn, [x])


@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (None, 0.25), (-0.25, None), (0.0, 0.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_including_values_on_the_bounds(bounds, dtype, rng):
    lo, hi = bounds
    x = np.concatenate([normal(rng, 10, dtype), np.array([-0.5, 0.5, 0.25, -0.25, 0.0], dtype)])
    parity(lambda t: F.clip(t, lo, hi), lambda t: torch.clamp(t, lo, hi), [x])
    parity(lambda t: t.clamp(lo, hi), lambda t: t.clamp(lo, hi), [x])


@given(
    shapes3=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3),
    dtype=float_dtypes,
    seed=seeds,
)
def test_where_broadcasts_condition_and_operands(shapes3, dtype, seed):
    rng = np.random.default_rng(seed)
    cs, as_, bs = shapes3.input_shapes
    cond = np.asarray(rng.random(cs) > 0.5)
    a, b = normal(rng, as_, dtype), normal(rng, bs, dtype)
    parity(
        lambda x, y: F.where(cond, x, y),
        lambda x, y: torch.where(torch.from_numpy(cond), x, y),
        [a, b],
        seed=seed,
    )


def test_where_with_tensor_condition_and_scalar(rng):
    x = normal(rng, (4, 5))
    parity(lambda t: F.where(t > 0, t, 0.0), lambda t: torch.where(t > 0, t, 0.0), [x])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_gradient_on_ties(name):
    a = np.array([1.0, 2.0, 3.0, -1.0, 5.0], dtype=np.float32)
    b = np.array([1.0, 0.0, 3.0, -1.0, 7.0], dtype=np.float32)
    _, _ = parity(*BINARY[name], [a, b])
    ma, mb = mg(a), mg(b)
    getattr(F, name)(ma, mb).sum().backward()
    ties = a == b
    np.testing.assert_array_equal(ma.grad.numpy()[ties], 0.5)
    np.testing.assert_array_equal(mb.grad.numpy()[ties], 0.5)


def test_maximum_with_infinite_operand():
    x = np.array([-3.0, 0.0, 2.0], dtype=np.float32)
    parity(lambda t: F.maximum(t, -np.inf), lambda t: torch.maximum(t, torch.tensor(-np.inf)), [x])
    parity(lambda t: F.minimum(t, np.inf), lambda t: torch.minimum(t, torch.tensor(np.inf)), [x])


# --------------------------------------------------------------------------- reductions


def _torch_dims(dims, ndim):
    return tuple(range(ndim)) if dims is None else dims


REDUCTIONS = {
    "sum": (F.sum, lambda x, d, k: torch.sum(x, _torch_dims(d, x.ndim), keepdim=k)),
    "mean": (F.mean, lambda x, d, k: torch.mean(x, _torch_dims(d, x.ndim), keepdim=k)),
    "max": (F.max, lambda x, d, k: torch.amax(x, _torch_dims(d, x.ndim), keepdim=k)),
    "min": (F.min, lambda x, d, k: torch.amin(x, _torch_dims(d, x.ndim), keepdim=k)),
    "logsumexp": (
        F.logsumexp,
        lambda x, d, k: torch.logsumexp(x, _torch_dims(d, x.ndim), keepdim=k),
    ),
    "method_sum": (
        lambda x, d, k: x.sum(d, keepdim=k),
        lambda x, d, k: x.sum(_torch_dims(d, x.ndim), keepdim=k),
    ),
    "method_max": (
        lambda x, d, k: x.max(d, keepdim=k),
        lambda x, d, k: x.amax(_torch_dims(d, x.ndim), keepdim=k),
    ),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(sd=shape_and_dims(), keepdim=st.booleans(), dtype=float_dtypes, seed=seeds)
def test_reductions_over_dims(name, sd, keepdim, dtype, seed):
    shape, dims = sd
    mg_fn, torch_fn = REDUCTIONS[name]
    x = normal(np.random.default_rng(seed), shape, dtype)
    parity(lambda t: mg_fn(t, dims, keepdim), lambda t: torch_fn(t, dims, keepdim), [x], seed=seed)


@pytest.mark.parametrize("name", ["var", "std"])
@given(
    sd=shape_and_dims(min_count=2),
    keepdim=st.booleans(),
    correction=st.sampled_from([0, 1]),
    dtype=float_dtypes,
    seed=seeds,
)
def test_var_std_over_dims(name, sd, keepdim, correction, dtype, seed):
    shape, dims = sd
    x = normal(np.random.default_rng(seed), shape, dtype)
    tdims = _torch_dims(dims, len(shape))
    parity(
        lambda t: getattr(F, name)(t, dims, correction=correction, keepdim=keepdim),
        lambda t: getattr(torch, name)(t, tdims, correction=correction, keepdim=keepdim),
        [x],
        seed=seed,
    )
    parity(
        lambda t: getattr(t, name)(dims, correction=correction, keepdim=keepdim),
        lambda t: getattr(t, name)(tdims, correction=correction, keepdim=keepdim),
        [x],
        seed=seed,
    )


def test_var_is_stable_for_a_large_offset():
    x = (np.arange(10, dtype=np.float64) + 1e6).astype(np.float32)
    parity(lambda t: F.var(t), lambda t: torch.var(t), [x], rtol=1e-3)


@pytest.mark.parametrize("name, torch_name", [("max", "amax"), ("min", "amin")])
def test_max_min_share_gradient_among_ties(name, torch_name):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [-1.0, 0.0, -1.0]], dtype=np.float32)
    for dim in (None, 0, 1, (0, 1)):
        parity(
            lambda t, d=dim: getattr(F, name)(t, d),
            lambda t, d=dim: getattr(torch, torch_name)(t, _torch_dims(d, 2)),
            [x],
        )


@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_stable_for_large_logits(name, dim, dtype, rng):
    x = normal(rng, (3, 4, 5), dtype, scale=50.0, shift=1000.0)
    if name == "logsumexp":
        mg_fn, torch_fn = (lambda t: F.logsumexp(t, dim)), (lambda t: torch.logsumexp(t, dim))
    else:
        mg_fn = lambda t: getattr(F, name)(t, dim)  # noqa: E731
        torch_fn = lambda t: getattr(torch, name)(t, dim)  # noqa: E731
    my, _ = parity(mg_fn, torch_fn, [x])
    assert np.isfinite(my.numpy()).all()


def test_logsumexp_of_infinite_rows_matches_torch():
    inf = np.inf
    x = np.array([[-inf, -inf, -inf], [1.0, -inf, 2.0], [inf, 1.0, 2.0]], dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        my = F.logsumexp(minigan.tensor(x), 1)
    expected = torch.logsumexp(torch.from_numpy(x), 1).numpy()
    np.testing.assert_allclose(my.numpy(), expected, rtol=1e-6)


# --------------------------------------------------------------------------- matmul, linear

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (4, 3, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((3,), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((1, 2, 3), (4, 3, 2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_with_broadcasting(sa, sb, dtype, rng):
    a, b = normal(rng, sa, dtype), normal(rng, sb, dtype)
    parity(F.matmul, torch.matmul, [a, b], **tol(dtype))
    parity(operator.matmul, operator.matmul, [a, b], **tol(dtype))


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear(x_shape, bias, dtype, rng):
    x, w, b = normal(rng, x_shape, dtype), normal(rng, (5, 4), dtype), normal(rng, (5,), dtype)
    if bias:
        parity(F.linear, TF.linear, [x, w, b])
    else:
        parity(F.linear, TF.linear, [x, w])


# --------------------------------------------------------------------------- shapes

SHAPE_OPS = {
    "reshape": ((2, 3, 4), lambda t: F.reshape(t, (4, -1)), lambda t: t.reshape(4, -1)),
    "method_reshape": ((2, 3, 4), lambda t: t.reshape(6, 4), lambda t: t.reshape(6, 4)),
    "view_flat": ((2, 3, 4), lambda t: t.view(-1), lambda t: t.reshape(-1)),
    "transpose": ((2, 3, 4), lambda t: F.transpose(t, 0, -1), lambda t: t.transpose(0, -1)),
    "method_transpose": ((2, 3, 4), lambda t: t.transpose(1, 2), lambda t: t.transpose(1, 2)),
    "permute": (
        (2, 3, 4, 5),
        lambda t: F.permute(t, (2, 0, 3, 1)),
        lambda t: t.permute(2, 0, 3, 1),
    ),
    "method_permute": ((2, 3, 4), lambda t: t.permute(-1, 0, 1), lambda t: t.permute(-1, 0, 1)),
    "T": ((3, 4), lambda t: t.T, lambda t: t.T),
    "flatten": ((2, 3, 4, 5), lambda t: F.flatten(t, 1), lambda t: torch.flatten(t, 1)),
    "flatten_mid": ((2, 3, 4, 5), lambda t: t.flatten(1, 2), lambda t: t.flatten(1, 2)),
    "flatten_all": ((2, 3, 4), lambda t: t.flatten(), lambda t: t.flatten()),
    "unsqueeze": ((2, 3), lambda t: F.unsqueeze(t, 1), lambda t: t.unsqueeze(1)),
    "unsqueeze_neg": ((2, 3), lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    "squeeze_all": ((1, 3, 1, 2), lambda t: F.squeeze(t), lambda t: t.squeeze()),
    "squeeze_dim": ((1, 3, 1, 2), lambda t: t.squeeze(2), lambda t: t.squeeze(2)),
    "squeeze_non1": ((1, 3, 1, 2), lambda t: t.squeeze(1), lambda t: t.squeeze(1)),
    "broadcast_to": (
        (3, 1),
        lambda t: F.broadcast_to(t, (2, 3, 4)),
        lambda t: t.broadcast_to(2, 3, 4),
    ),
    "expand": ((1, 4), lambda t: t.expand(3, 4), lambda t: t.expand(3, 4)),
    "broadcast_scalar": ((), lambda t: F.broadcast_to(t, (2, 2)), lambda t: t.broadcast_to(2, 2)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_ops(name, dtype, rng):
    shape, mg_fn, torch_fn = SHAPE_OPS[name]
    parity(mg_fn, torch_fn, [normal(rng, shape, dtype)])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack(dim, rng):
    shapes_ = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    if dim == 0:
        shapes_ = [(1, 3, 4), (2, 3, 4), (3, 3, 4)]
    elif dim == 1:
        shapes_ = [(2, 1, 4), (2, 3, 4), (2, 2, 4)]
    arrays = [normal(rng, s) for s in shapes_]
    parity(lambda *ts: F.cat(ts, dim), lambda *ts: torch.cat(ts, dim), arrays)
    same = [normal(rng, (2, 3, 4)) for _ in range(3)]
    for sdim in (0, 2, -1, 3):
        parity(lambda *ts, d=sdim: F.stack(ts, d), lambda *ts, d=sdim: torch.stack(ts, d), same)


@pytest.mark.parametrize("sizes", [2, 3, [1, 4], [2, 2, 1], 5])
@pytest.mark.parametrize("dim", [1, -1])
def test_split(sizes, dim, rng):
    x = normal(rng, (2, 5, 5))

    def combine(chunks):  # a different weight per chunk, so misplaced gradients show
        return [c * float(i + 1) for i, c in enumerate(chunks)]

    mx, tx = mg(x), th(x)
    mc, tc = F.split(mx, sizes, dim), torch.split(tx, sizes, dim)
    assert [c.shape for c in mc] == [tuple(c.shape) for c in tc]
    parity(
        lambda t: F.cat(combine(F.split(t, sizes, dim)), dim),
        lambda t: torch.cat(combine(torch.split(t, sizes, dim)), dim),
        [x],
    )


@pytest.mark.parametrize(
    "shape, pad, value",
    [
        ((2, 3), (1, 2), 0.0),
        ((2, 3, 4), (1, 0, 2, 1), 0.0),
        ((1, 2, 3, 4), (0, 1, 1, 0, 2, 2), 1.5),
        ((1, 2, 3, 4), (2, 2, 0, 3), -1.0),
    ],
)
def test_pad(shape, pad, value, rng):
    parity(
        lambda t: F.pad(t, pad, value), lambda t: TF.pad(t, pad, value=value), [normal(rng, shape)]
    )


def _to_torch_index(index):
    if isinstance(index, tuple):
        return tuple(_to_torch_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    return index


GETITEM_INDICES = {
    "int": 2,
    "neg_int": -1,
    "slices": (slice(1, 3), slice(None, None, 2)),
    "ellipsis": (Ellipsis, 1),
    "none": (None, 2, slice(-3, None)),
    "step_slices": (slice(None, None, 3), slice(1, None, 2), slice(0, 5, 4)),
    "int_array_repeats": np.array([0, 2, 2, 3, 0]),
    "int_array_2d": (slice(None), np.array([[1, 1], [4, 0]])),
    "paired_arrays": (np.array([0, 0, 1]), np.array([1, 1, 2])),
    "arrays_around_slice": (np.array([1, 1]), slice(None), np.array([0, 5])),
    "negative_array": (Ellipsis, np.array([-1, -1, 0])),
    "bool_first_dim": np.array([True, False, True, True]),
    "bool_last_dim": (Ellipsis, np.array([True, False, False, True, True, False])),
    "bool_full": "positive",
}


@pytest.mark.parametrize("name", GETITEM_INDICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_getitem(name, dtype, rng):
    x = normal(rng, (4, 5, 6), dtype)
    index = GETITEM_INDICES[name]
    if isinstance(index, str):
        index = x > 0
    parity(lambda t: t[index], lambda t: t[_to_torch_index(index)], [x])
    parity(lambda t: F.getitem(t, index), lambda t: t[_to_torch_index(index)], [x])


def test_getitem_with_tensor_indices(rng):
    x = normal(rng, (4, 5))
    idx = np.array([3, 3, 0])
    parity(lambda t: t[minigan.tensor(idx)], lambda t: t[torch.from_numpy(idx)], [x])
    parity(lambda t: t[t > 0.1], lambda t: t[t > 0.1], [x])


# --------------------------------------------------------------------------- activations


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_softplus_tanh_at_extreme_values(dtype):
    x = np.array([-1e4, -100.0, -30.0, -20.0, -1.0, 0.0, 1.0, 20.0, 30.0, 100.0, 1e4], dtype=dtype)
    for mg_fn, torch_fn in (
        (F.sigmoid, torch.sigmoid),
        (F.softplus, TF.softplus),
        (F.tanh, torch.tanh),
    ):
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            my, _ = parity(mg_fn, torch_fn, [x])
        assert np.isfinite(my.numpy()).all()
    xt = mg(np.array([-100.0, 100.0], dtype))
    np.testing.assert_array_equal(F.sigmoid(xt).numpy() > 0, True)
    assert F.sigmoid(xt).numpy()[1] == 1.0


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_scaling_and_gradient(p):
    n = 200_000
    x = minigan.ones(n, requires_grad=True)
    y = F.dropout(x, p, training=True)
    kept = y.numpy() != 0
    frac = kept.mean()
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(frac - (1 - p)) < 5 * sigma, f"kept {frac:.4f}, expected {1 - p}"
    np.testing.assert_allclose(y.numpy()[kept], 1 / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32
    y.backward(minigan.ones(n))
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # grad == mask / (1 - p)
    # a random input: the same mask multiplies values and gradients
    xr = minigan.randn(1000, requires_grad=True)
    yr = F.dropout(xr, p)
    g = minigan.randn(1000)
    yr.backward(g)
    m = (yr.numpy() != 0) / (1 - p)
    np.testing.assert_allclose(yr.numpy(), xr.numpy() * m, rtol=1e-6)
    np.testing.assert_allclose(xr.grad.numpy(), g.numpy() * m, rtol=1e-6)


def test_dropout_is_reproducible_under_manual_seed():
    x = minigan.randn(64, 64)
    minigan.manual_seed(123)
    a = F.dropout(x, 0.5).numpy()
    minigan.manual_seed(123)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dropout_identity_cases_and_p_one():
    x = minigan.randn(10, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.5)


# --------------------------------------------------------------------------- convolution


@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds)
@settings(max_examples=60)
def test_conv2d(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = [normal(rng, cfg.x_shape, dtype), normal(rng, cfg.weight_shape, dtype)]
    if cfg.bias:
        arrays.append(normal(rng, (cfg.o,), dtype))
    kw = cfg.conv_kwargs()
    parity(
        lambda *t: F.conv2d(*t, **kw),
        lambda *t: TF.conv2d(*t, **kw),
        arrays,
        seed=seed,
        **tol(dtype, cfg.terms),
    )


@given(cfg=conv_transpose_configs(), dtype=float_dtypes, seed=seeds)
@settings(max_examples=60)
def test_conv_transpose2d(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = [normal(rng, cfg.x_shape, dtype), normal(rng, cfg.transposed_weight_shape, dtype)]
    if cfg.bias:
        arrays.append(normal(rng, (cfg.o,), dtype))
    kw = cfg.transpose_kwargs()
    parity(
        lambda *t: F.conv_transpose2d(*t, **kw),
        lambda *t: TF.conv_transpose2d(*t, **kw),
        arrays,
        seed=seed,
        **tol(dtype, cfg.terms),
    )


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv_transpose2d_output_padding_below_dilation_only(padding, rng):
    """``output_padding`` may reach the stride when it stays below the dilation."""
    x, w, b = normal(rng, (2, 2, 3, 4)), normal(rng, (2, 3, 2, 3)), normal(rng, (3,))
    kw = dict(stride=1, padding=padding, output_padding=(1, 0), dilation=(2, 1))
    parity(
        lambda *t: F.conv_transpose2d(*t, **kw),
        lambda *t: TF.conv_transpose2d(*t, **kw),
        [x, w, b],
        **tol(np.float32, 12),
    )
    kw = dict(stride=(2, 1), padding=padding, output_padding=(2, 1), dilation=(3, 2))
    parity(
        lambda *t: F.conv_transpose2d(*t, **kw),
        lambda *t: TF.conv_transpose2d(*t, **kw),
        [x, w, b],
        **tol(np.float32, 12),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_spot_checks(dtype, rng):
    """A DCGAN-sized pair of layers: 4x4 kernels, stride 2, padding 1."""
    x = normal(rng, (2, 8, 16, 16), dtype)
    w = normal(rng, (16, 8, 4, 4), dtype, scale=0.1)
    b = normal(rng, (16,), dtype)
    k = 8 * 16
    parity(
        lambda *t: F.conv2d(*t, stride=2, padding=1),
        lambda *t: TF.conv2d(*t, stride=2, padding=1),
        [x, w, b],
        **tol(dtype, k),
    )
    wt = normal(rng, (8, 4, 4, 4), dtype, scale=0.1)
    parity(
        lambda *t: F.conv_transpose2d(*t, stride=2, padding=1),
        lambda *t: TF.conv_transpose2d(*t, stride=2, padding=1),
        [x, wt],
        **tol(dtype, k),
    )


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5)], ids=["2d", "3d", "4d"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_training_running_stats_and_eval(shape, affine, dtype, rng):
    c = shape[1]
    momentum, eps = 0.2, 1e-3
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    trm, trv = torch.zeros(c, dtype=th(rm).dtype), torch.ones(c, dtype=th(rm).dtype)
    params = [normal(rng, c, dtype, 0.5, 1.0), normal(rng, c, dtype)] if affine else []
    for step in range(3):
        x = normal(rng, shape, dtype, scale=1.0 + step, shift=step - 1.0)
        my, _ = parity(
            lambda t, *wb: F.batch_norm(t, rm, rv, *wb, training=True, momentum=momentum, eps=eps),
            lambda t, *wb: TF.batch_norm(
                t, trm, trv, *wb, training=True, momentum=momentum, eps=eps
            ),
            [x, *params],
            seed=step,
        )
        assert my.dtype == dtype
        assert_close(rm, trm, **tol(dtype), what=f"running_mean after step {step}")
        assert_close(rv, trv, **tol(dtype), what=f"running_var after step {step}")
    x = normal(rng, shape, dtype)
    parity(
        lambda t, *wb: F.batch_norm(t, rm, rv, *wb, training=False, eps=eps),
        lambda t, *wb: TF.batch_norm(t, trm, trv, *wb, training=False, eps=eps),
        [x, *params],
    )


def test_batch_norm_training_without_running_stats(rng):
    x, w, b = normal(rng, (4, 3, 2, 2)), normal(rng, 3), normal(rng, 3)
    parity(
        lambda *t: F.batch_norm(t[0], None, None, t[1], t[2], training=True),
        lambda *t: TF.batch_norm(t[0], None, None, t[1], t[2], training=True),
        [x, w, b],
    )


def test_batch_norm_running_var_of_tiny_and_shifted_data(rng):
    """Statistics of data far from zero with a small spread (a stable variance is needed)."""
    x = normal(rng, (16, 2, 3, 3), scale=1e-2, shift=100.0)
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    trm, trv = torch.zeros(2), torch.ones(2)
    F.batch_norm(mg(x), rm, rv, training=True, momentum=1.0)
    TF.batch_norm(th(x), trm, trv, training=True, momentum=1.0)
    assert_close(rm, trm, rtol=1e-6, atol=0)
    assert_close(rv, trv, rtol=1e-4, atol=0)  # E[x²] - E[x]² in float32 would be far off


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_norm(affine, dtype, rng):
    x = normal(rng, (2, 3, 4, 5), dtype, scale=2.0, shift=1.0)
    params = [normal(rng, 3, dtype, 0.5, 1.0), normal(rng, 3, dtype)] if affine else []
    parity(
        lambda t, *wb: F.instance_norm(t, *wb, eps=1e-5),
        lambda t, *wb: TF.instance_norm(t, None, None, *wb, eps=1e-5),
        [x, *params],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 2, 2), (3, 4, 1, 7)])
def test_adain(shape, dtype, rng):
    n, c = shape[:2]
    x = normal(rng, shape, dtype, scale=2.0, shift=1.0)
    s, b = normal(rng, (n, c), dtype, 0.5, 1.0), normal(rng, (n, c), dtype)

    def reference(t, scale, bias):
        return TF.instance_norm(t, eps=1e-5) * scale[:, :, None, None] + bias[:, :, None, None]

    parity(lambda *t: F.adain(*t, eps=1e-5), reference, [x, s, b])


# --------------------------------------------------------------------------- pooling, resizing


@st.composite
def pool_configs(draw):
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * p), 7))
    w = draw(st.integers(max(1, k - 2 * p), 7))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), k, s, p


@pytest.mark.parametrize("name", ["avg_pool2d", "max_pool2d"])
@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds)
def test_pooling(name, cfg, dtype, seed):
    shape, k, s, p = cfg
    x = normal(np.random.default_rng(seed), shape, dtype)
    parity(
        lambda t: getattr(F, name)(t, k, s, p),
        lambda t: getattr(TF, name)(t, k, s, p),
        [x],
        seed=seed,
    )


def test_pooling_rectangular_and_default_stride(rng):
    x = normal(rng, (2, 3, 8, 9))
    for name in ("avg_pool2d", "max_pool2d"):
        mg_fn, th_fn = getattr(F, name), getattr(TF, name)
        parity(lambda t, f=mg_fn: f(t, 2), lambda t, f=th_fn: f(t, 2), [x])
        parity(
            lambda t, f=mg_fn: f(t, (3, 2), (2, 1), (1, 0)),
            lambda t, f=th_fn: f(t, (3, 2), (2, 1), (1, 0)),
            [x],
        )


UPSAMPLES = [
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=(2, 3), mode="nearest"),
    dict(scale_factor=1.5, mode="nearest"),
    dict(scale_factor=2.5, mode="nearest"),
    dict(scale_factor=0.5, mode="nearest"),
    dict(size=(7, 11), mode="nearest"),
    dict(size=(10, 12), mode="nearest"),
    dict(size=(3, 2), mode="nearest"),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(scale_factor=1.5, mode="bilinear", align_corners=False),
    dict(size=(7, 11), mode="bilinear", align_corners=False),
    dict(size=(3, 3), mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(7, 11), mode="bilinear", align_corners=True),
    dict(size=(1, 9), mode="bilinear", align_corners=True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", UPSAMPLES, ids=[str(sorted(k.items())) for k in UPSAMPLES])
def test_upsample(kw, dtype, rng):
    x = normal(rng, (2, 3, 5, 6), dtype)
    parity(lambda t: F.upsample(t, **kw), lambda t: TF.interpolate(t, **kw), [x])
    parity(lambda t: F.interpolate(t, **kw), lambda t: TF.interpolate(t, **kw), [x])


# --------------------------------------------------------------------------- losses

REDUCTION = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTION)
@pytest.mark.parametrize("weighted", ["none", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_with_logits(reduction, weighted, dtype, rng):
    logits = normal(rng, (4, 3), dtype, scale=3.0)
    target = rng.random((4, 3)).astype(dtype)  # soft targets
    weight = rng.random(3).astype(dtype) + 0.5
    pos_weight = rng.random(3).astype(dtype) * 3
    use_w = weighted in ("weight", "both")
    use_p = weighted in ("pos_weight", "both")

    def run(lib, x, t):
        kw = {}
        wrap = minigan.tensor if lib is F else torch.from_numpy
        if use_w:
            kw["weight"] = wrap(weight.copy())
        if use_p:
            kw["pos_weight"] = wrap(pos_weight.copy())
        return lib.binary_cross_entropy_with_logits(x, t, reduction=reduction, **kw)

    parity(lambda x, t: run(F, x, t), lambda x, t: run(TF, x, t), [logits, target])
    parity(
        lambda x: run(F, x, mg(target, False)), lambda x: run(TF, x, th(target, False)), [logits]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_binary_cross_entropy_with_huge_logits_is_finite(dtype, pos_weight):
    logits = np.array([-1e4, -100.0, -100.0, -30.0, 0.0, 30.0, 100.0, 100.0, 1e4], dtype=dtype)
    target = np.array([1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype)
    pw = np.full(9, 2.0, dtype)
    kw_m = {"pos_weight": minigan.tensor(pw)} if pos_weight else {}
    kw_t = {"pos_weight": torch.from_numpy(pw)} if pos_weight else {}
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        my, _ = parity(
            lambda x: F.binary_cross_entropy_with_logits(x, target, reduction="none", **kw_m),
            lambda x: TF.binary_cross_entropy_with_logits(
                x, torch.from_numpy(target), reduction="none", **kw_t
            ),
            [logits],
        )
    assert np.isfinite(my.numpy()).all()


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTION)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regression_losses(name, reduction, dtype, rng):
    x = normal(rng, (3, 4, 2), dtype)
    t = (x + away_from_zero(normal(rng, (3, 4, 2), dtype), 0.01)).astype(dtype)
    parity(
        lambda a, b: getattr(F, name)(a, b, reduction=reduction),
        lambda a, b: getattr(TF, name)(a, b, reduction=reduction),
        [x, t],
    )


@pytest.mark.parametrize("reduction", REDUCTION)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
    "logits_shape, kind",
    [((5, 4), "index"), ((2, 4, 3, 2), "index"), ((5, 4), "prob"), ((2, 4, 3), "prob")],
)
def test_cross_entropy(logits_shape, kind, smoothing, reduction, rng):
    logits = normal(rng, logits_shape, scale=2.0)
    k = logits_shape[1]
    if kind == "index":
        target = rng.integers(0, k, size=logits_shape[:1] + logits_shape[2:])
        mg_t, th_t = minigan.tensor(target), torch.from_numpy(target)
    else:
        p = rng.random(logits_shape).astype(np.float32)
        p /= p.sum(axis=1, keepdims=True)
        mg_t, th_t = minigan.tensor(p), torch.from_numpy(p)
    parity(
        lambda x: F.cross_entropy(x, mg_t, reduction=reduction, label_smoothing=smoothing),
        lambda x: TF.cross_entropy(x, th_t, reduction=reduction, label_smoothing=smoothing),
        [logits],
    )


def test_cross_entropy_float64_and_plain_array_target(rng):
    logits = normal(rng, (6, 5), np.float64)
    target = rng.integers(0, 5, size=6)
    parity(
        lambda x: F.cross_entropy(x, target),
        lambda x: TF.cross_entropy(x, torch.from_numpy(target)),
        [logits],
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.mse_loss(x, x.detach(), reduction="avg"),
        lambda x: F.l1_loss(x, x.detach(), reduction="avg"),
        lambda x: F.binary_cross_entropy_with_logits(x, x.detach(), reduction="avg"),
    ],
)
def test_losses_reject_unknown_reduction(fn):
    with pytest.raises(ValueError, match="reduction"):
        fn(minigan.randn(3))


# --------------------------------------------------------------------------- error messages


def _shapes_pattern(op: str, *shapes_) -> str:
    """``op`` followed (anywhere later) by every shape, as the message must name them."""
    import re

    return re.escape(op) + "".join(".*" + re.escape(str(s)) for s in shapes_)


def t32(*shape):
    return minigan.zeros(*shape)


SHAPE_ERRORS = {
    "conv2d channels": (
        lambda: F.conv2d(t32(1, 3, 8, 8), t32(4, 2, 3, 3)),
        "conv2d",
        (1, 3, 8, 8),
        (4, 2, 3, 3),
    ),
    "conv2d too small": (
        lambda: F.conv2d(t32(1, 2, 2, 2), t32(4, 2, 3, 3)),
        "conv2d",
        (1, 2, 2, 2),
        (3, 3),
    ),
    "conv2d bias": (
        lambda: F.conv2d(t32(1, 2, 4, 4), t32(4, 2, 3, 3), t32(3)),
        "conv2d",
        (3,),
        (4,),
    ),
    "conv_transpose2d channels": (
        lambda: F.conv_transpose2d(t32(1, 3, 4, 4), t32(2, 4, 3, 3)),
        "conv_transpose2d",
        (1, 3, 4, 4),
        (2, 4, 3, 3),
    ),
    "matmul": (lambda: F.matmul(t32(2, 3), t32(4, 5)), "matmul", (2, 3), (4, 5)),
    "matmul 1-d": (lambda: t32(3) @ t32(4), "matmul", (3,), (4,)),
    "matmul batched": (lambda: t32(5, 2, 3) @ t32(4), "matmul", (5, 2, 3), (4,)),
    "linear": (lambda: F.linear(t32(2, 3), t32(5, 4)), "linear", (2, 3), (5, 4)),
    "add": (lambda: t32(2, 3) + t32(4), "add", (2, 3), (4,)),
    "mul": (lambda: F.mul(t32(2, 3), t32(2, 2)), "mul", (2, 3), (2, 2)),
    "maximum": (lambda: F.maximum(t32(2, 3), t32(2, 2)), "maximum", (2, 3), (2, 2)),
    "reshape": (lambda: t32(2, 3).reshape(4, 2), "reshape", (2, 3), (4, 2)),
    "reshape -1": (lambda: t32(2, 3).reshape(-1, 4), "reshape", (2, 3), (-1, 4)),
    "broadcast_to": (lambda: t32(2, 3).expand(2, 4), "broadcast_to", (2, 3), (2, 4)),
    "cat": (lambda: F.cat([t32(2, 3), t32(2, 4)], 0), "cat", (2, 3), (2, 4)),
    "stack": (lambda: F.stack([t32(2, 3), t32(3, 2)]), "stack", (2, 3), (3, 2)),
    "split": (lambda: F.split(t32(2, 5), [2, 2], 1), "split", (2, 5)),
    "batch_norm weight": (
        lambda: F.batch_norm(t32(2, 3, 4, 4), None, None, t32(4), training=True),
        "batch_norm",
        (4,),
        (2, 3, 4, 4),
    ),
    "adain scale": (
        lambda: F.adain(t32(2, 3, 4, 4), t32(3, 2), t32(2, 3)),
        "adain",
        (3, 2),
        (2, 3, 4, 4),
    ),
    "cross_entropy index target": (
        lambda: F.cross_entropy(t32(4, 3), np.zeros(5, np.int64)),
        "cross_entropy",
        (5,),
        (4, 3),
    ),
    "cross_entropy prob target": (
        lambda: F.cross_entropy(t32(4, 3), t32(4, 2)),
        "cross_entropy",
        (4, 3),
        (4, 2),
    ),
    "mse_loss": (lambda: F.mse_loss(t32(4, 3), t32(3, 4)), "mse_loss", (4, 3), (3, 4)),
    "bce": (
        lambda: F.binary_cross_entropy_with_logits(t32(4), t32(5)),
        "binary_cross_entropy_with_logits",
        (4,),
        (5,),
    ),
    "max_pool2d": (lambda: F.max_pool2d(t32(1, 1, 2, 2), 3), "max_pool2d", (1, 1, 2, 2)),
}


@pytest.mark.parametrize("case", SHAPE_ERRORS)
def test_shape_errors_name_the_op_and_the_shapes(case):
    fn, op, *shapes_ = SHAPE_ERRORS[case]
    with pytest.raises(ValueError, match=_shapes_pattern(op, *shapes_)):
        fn()


def test_cross_entropy_rejects_out_of_range_classes():
    with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 3\)"):
        F.cross_entropy(t32(2, 3), np.array([0, 3]))


# conv2d, matmul and linear promote float32 with float64 like every other op (PyTorch's
# promotion rule, one for all ops): see tests/test_semantics.py
@pytest.mark.parametrize(
    "fn, op",
    [
        (lambda a, b: F.adain(a.reshape(1, 1, 2, 3), b.reshape(1, 1), b.reshape(1, 1)), "adain"),
    ],
    ids=["adain"],
)
def test_dtype_mismatch_raises_type_error_naming_both(fn, op):
    a64 = minigan.zeros(2, 3, dtype="float64")
    b32 = minigan.ones(1, dtype="float32")
    with pytest.raises(TypeError, match=re_all(op, "float64", "float32")):
        fn(a64, b32)


def re_all(*words: str) -> str:
    import re

    return ".*".join(re.escape(w) for w in words)


def test_relu_of_minus_infinity_is_zero():
    x = minigan.tensor([-np.inf, -1.0, 2.0, np.inf], requires_grad=True)
    y = F.relu(x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 2.0, np.inf])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0, 1.0])
