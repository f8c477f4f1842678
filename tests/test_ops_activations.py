"""Activations, their nn modules and Embedding against PyTorch: forward and first derivatives
in float32 (hypothesis varying shapes and arguments), second derivatives in float64 against
torch's double backward, and gradcheck / gradgradcheck against float64 finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import double_backward_parity, parity
from strategies import seeds, shapes

import minigan
import minigan.functional as F
from minigan import nn
from minigan.testing import gradcheck, gradgradcheck

# name -> (minigan op, torch op, arguments drawn by hypothesis)
ACTIVATIONS = {
    "gelu": (F.gelu, TF.gelu, st.just({})),
    "gelu_tanh": (F.gelu, TF.gelu, st.just({"approximate": "tanh"})),
    "silu": (F.silu, TF.silu, st.just({})),
    "elu": (F.elu, TF.elu, st.fixed_dictionaries({"alpha": st.floats(0.1, 2.0)})),
    "selu": (F.selu, TF.selu, st.just({})),
    # alphas exact in float32: torch's celu backward rounds 1/alpha through float32
    "celu": (
        F.celu,
        TF.celu,
        st.fixed_dictionaries({"alpha": st.sampled_from([0.25, 0.5, 1.5, 2.0])}),
    ),
    "mish": (F.mish, TF.mish, st.just({})),
    "hardtanh": (
        F.hardtanh,
        TF.hardtanh,
        st.fixed_dictionaries({"min_val": st.floats(-2.0, -0.1), "max_val": st.floats(0.1, 2.0)}),
    ),
    "relu6": (F.relu6, TF.relu6, st.just({})),
    "hardswish": (F.hardswish, TF.hardswish, st.just({})),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid, st.just({})),
    "softsign": (F.softsign, TF.softsign, st.just({})),
    "logsigmoid": (F.logsigmoid, TF.logsigmoid, st.just({})),
}


def _inputs(shape, seed, dtype, scale=4.0):
    """Values spread over every piece of the piecewise activations (|x| up to ~12)."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
@settings(max_examples=25)
@given(data=st.data(), shape=shapes(0, 4), seed=seeds)
def test_activation_matches_torch_float32(name, data, shape, seed):
    ours, theirs, kwargs_strategy = ACTIVATIONS[name]
    kwargs = data.draw(kwargs_strategy)
    x = _inputs(shape, seed, np.float32)
    # float32 slopes in saturated tails (1 - tanh^2 near 0) are only good to ~1e-6 absolute
    parity(lambda t: ours(t, **kwargs), lambda t: theirs(t, **kwargs), [x], rtol=1e-5,
           atol=1e-6, grad_atol=1e-5)  # fmt: skip


# torch has no double backward for hardsigmoid (its second derivative, zero, is checked by
# gradgradcheck below)
@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "hardsigmoid"])
@settings(max_examples=10)
@given(data=st.data(), shape=shapes(1, 3), seed=seeds)
def test_activation_second_derivative_matches_torch(name, data, shape, seed):
    ours, theirs, kwargs_strategy = ACTIVATIONS[name]
    kwargs = data.draw(kwargs_strategy)
    x = _inputs(shape, seed, np.float64)
    double_backward_parity(lambda t: ours(t, **kwargs), lambda t: theirs(t, **kwargs), [x])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradcheck_and_gradgradcheck(name):
    ours, _, _ = ACTIVATIONS[name]
    kwargs = {"approximate": "tanh"} if name == "gelu_tanh" else {}
    x = minigan.tensor(_inputs((3, 4), 7, np.float64, scale=2.5), requires_grad=True)
    assert gradcheck(lambda t: ours(t, **kwargs), [x])
    assert gradgradcheck(lambda t: ours(t, **kwargs), [x])


@pytest.mark.parametrize("name", ["elu", "selu", "celu", "silu", "mish", "gelu", "logsigmoid"])
def test_activation_is_finite_for_huge_inputs(name):
    """No overflow in a branch that is not taken (exp of a large positive x)."""
    ours, theirs, _ = ACTIVATIONS[name]
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    parity(ours, theirs, [x], rtol=1e-5, atol=1e-6)


def test_activation_errors_name_the_argument():
    with pytest.raises(ValueError, match="gelu: approximate"):
        F.gelu(minigan.zeros(2), approximate="fast")
    with pytest.raises(ValueError, match="hardtanh: min_val"):
        F.hardtanh(minigan.zeros(2), 1.0, -1.0)


# name -> (minigan module, torch module)
MODULES = [
    (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.SiLU(), torch.nn.SiLU()),
    (nn.Mish(), torch.nn.Mish()),
    (nn.ELU(0.5), torch.nn.ELU(0.5)),
    (nn.SELU(), torch.nn.SELU()),
    (nn.CELU(1.5), torch.nn.CELU(1.5)),
    (nn.Hardtanh(-2.0, 3.0), torch.nn.Hardtanh(-2.0, 3.0)),
    (nn.ReLU6(), torch.nn.ReLU6()),
    (nn.Hardswish(), torch.nn.Hardswish()),
    (nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
    (nn.Softsign(), torch.nn.Softsign()),
    (nn.LogSigmoid(), torch.nn.LogSigmoid()),
]


@pytest.mark.parametrize("pair", MODULES, ids=lambda p: repr(p[0]))
def test_activation_modules_match_torch_modules(pair, rng):
    ours, theirs = pair
    x = (rng.standard_normal((2, 3, 4)) * 4).astype(np.float32)
    parity(ours, theirs, [x], rtol=1e-5, atol=1e-6)
    assert repr(ours) == repr(theirs)


# --------------------------------------------------------------------------- embedding


@settings(max_examples=25)
@given(
    rows=st.integers(1, 6),
    dim=st.integers(1, 4),
    index_shape=shapes(0, 3),
    padding=st.booleans(),
    freq=st.booleans(),
    seed=seeds,
)
def test_embedding_matches_torch(rows, dim, index_shape, padding, freq, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((rows, dim)).astype(np.float32)
    index = rng.integers(0, rows, index_shape)
    padding_idx = int(rng.integers(-rows, rows)) if padding else None
    parity(
        lambda w, i: F.embedding(i, w, padding_idx, scale_grad_by_freq=freq),
        lambda w, i: TF.embedding(i, w, padding_idx, scale_grad_by_freq=freq),
        [weight, index],
    )


def test_embedding_second_order_and_gradcheck(rng):
    weight = rng.standard_normal((5, 3))
    index = np.array([[0, 4, 4], [2, 0, 1]])

    def square_lookup(w, padding_idx=None):  # quadratic in w: a non-zero second derivative
        e = F.embedding(minigan.tensor(index), w, padding_idx=padding_idx)
        return e * e

    double_backward_parity(
        lambda w: square_lookup(w, padding_idx=1),
        lambda w: TF.embedding(torch.tensor(index), w, padding_idx=1) ** 2,
        [weight],
    )
    # (the padding row gets no gradient by design, so finite differences go without it)
    w = minigan.tensor(weight, requires_grad=True)
    assert gradcheck(square_lookup, [w]) and gradgradcheck(square_lookup, [w])


def test_embedding_max_norm_renormalises_the_used_rows_in_place(rng):
    weight = (rng.standard_normal((6, 4)) * 3).astype(np.float32)
    index = np.array([0, 2, 2, 5])
    ours, theirs = minigan.tensor(weight.copy()), torch.tensor(weight.copy())
    out = F.embedding(minigan.tensor(index), ours, max_norm=1.5, norm_type=1.0)
    expected = TF.embedding(torch.tensor(index), theirs, max_norm=1.5, norm_type=1.0)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_embedding_module_init_padding_and_from_pretrained():
    minigan.manual_seed(0)
    table = nn.Embedding(2000, 8, padding_idx=-1)
    assert table.padding_idx == 1999 and not table.weight.numpy()[1999].any()
    values = table.weight.numpy()[:1999]
    assert abs(values.mean()) < 0.02 and abs(values.std() - 1) < 0.02  # N(0, 1), as PyTorch
    out = table(minigan.tensor([[3, 1999]]))
    out.sum().backward()
    assert out.shape == (1, 2, 8) and not table.weight.grad.numpy()[1999].any()
    assert table.weight.grad.numpy()[3].tolist() == [1.0] * 8
    assert repr(table) == repr(torch.nn.Embedding(2000, 8, padding_idx=-1))

    frozen = nn.Embedding.from_pretrained(np.eye(3, dtype=np.float32))
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(minigan.tensor([2])).numpy(), [[0, 0, 1]])
    assert nn.Embedding.from_pretrained(np.eye(3), freeze=False).weight.requires_grad


def test_embedding_errors_name_the_culprit():
    table = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match=r"embedding: indices must be in \[0, 4\)"):
        table(minigan.tensor([4]))
    with pytest.raises(TypeError, match="embedding: indices must be integers"):
        table(minigan.tensor([1.0]))
    with pytest.raises(ValueError, match="padding_idx 4"):
        nn.Embedding(4, 2, padding_idx=4)


@settings(max_examples=25)
@given(shape=shapes(0, 3), classes=st.integers(1, 5), explicit=st.booleans(), seed=seeds)
def test_one_hot_matches_torch(shape, classes, explicit, seed):
    t = np.random.default_rng(seed).integers(0, classes, shape)
    n = classes if explicit else -1
    expected = TF.one_hot(torch.tensor(t), n).numpy()
    got = F.one_hot(minigan.tensor(t), n)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), expected)


def test_one_hot_rejects_out_of_range_values():
    with pytest.raises(ValueError, match=r"one_hot: class values must be in \[0, 2\)"):
        F.one_hot(minigan.tensor([0, 2]), 2)
