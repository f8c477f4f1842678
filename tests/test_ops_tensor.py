"""Tensor ops of issue 17 against PyTorch: creation, comparisons and logical ops, elementwise
math, indexing and scattering, shape ops, einsum, reductions and sorting.

Differentiable ops: forward and first derivatives in float32 (hypothesis varies shapes, dims
and arguments), second derivatives in float64 against torch's double backward, and
gradcheck / gradgradcheck against float64 finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import double_backward_parity, parity
from strategies import broadcastable_pairs, seeds, shape_and_dims, shapes

import minigan
import minigan.functional as F
from minigan import nn
from minigan.testing import gradcheck, gradgradcheck

# --------------------------------------------------------------------------- creation


@pytest.mark.parametrize(
    "args", [(5,), (2, 9, 3), (-3, 4), (0, 1, 0.1), (1.5, -2.0, -0.5), (10, 0, -3), (0,), (3.0,)]
)
def test_arange_matches_torch(args):
    ours, theirs = minigan.arange(*args), torch.arange(*args)
    assert ours.dtype == theirs.numpy().dtype
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


def test_arange_errors_and_dtype():
    with pytest.raises(ValueError, match="arange: step must be non-zero"):
        minigan.arange(0, 3, 0)
    with pytest.raises(ValueError, match="arange: upper bound and step sign"):
        minigan.arange(0, 3, -1)
    assert minigan.arange(3, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("args", [(0, 1, 5), (-2.5, 7.0, 11), (3, 3, 1), (1, 0, 4), (0, 10, 0)])
def test_linspace_matches_torch(args):
    ours, theirs = minigan.linspace(*args), torch.linspace(*args)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_eye_full_empty_and_likes():
    np.testing.assert_array_equal(minigan.eye(2, 3).numpy(), torch.eye(2, 3).numpy())
    assert minigan.eye(3, dtype=np.float64).dtype == np.float64
    for value in (7, 0.5, True):
        ours, theirs = minigan.full((2, 3), value), torch.full((2, 3), value)
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    x = minigan.randn(2, 4, dtype=np.float64)
    like = minigan.full_like(x, 3)
    assert like.dtype == np.float64 and like.tolist() == [[3.0] * 4] * 2
    assert minigan.full_like(x, 1, dtype=np.int64).dtype == np.int64
    assert minigan.empty(2, 3).shape == (2, 3) and minigan.empty((4,)).dtype == np.float32
    assert minigan.empty_like(x).shape == (2, 4) and minigan.empty_like(x).dtype == np.float64


def test_randint_forms_range_and_seed():
    minigan.manual_seed(3)
    a = minigan.randint(5, (4, 100))
    minigan.manual_seed(3)
    b = minigan.randint(0, 5, size=(4, 100))
    assert a.dtype == np.int64 and a.shape == (4, 100)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    values = set(minigan.randint(-2, 3, (2000,)).tolist())
    assert values == {-2, -1, 0, 1, 2}
    assert minigan.randint(3, size=(2,), dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="randint: expected low < high"):
        minigan.randint(3, 3, (2,))
    like = minigan.randn_like(minigan.zeros(3, 2))
    assert like.shape == (3, 2) and like.dtype == np.float32


# --------------------------------------------------------------------------- comparisons

COMPARISONS = {
    "eq": (F.eq, torch.eq),
    "ne": (F.ne, torch.ne),
    "lt": (F.lt, torch.lt),
    "le": (F.le, torch.le),
    "gt": (F.gt, torch.gt),
    "ge": (F.ge, torch.ge),
    "logical_and": (F.logical_and, torch.logical_and),
    "logical_or": (F.logical_or, torch.logical_or),
    "logical_xor": (F.logical_xor, torch.logical_xor),
}


@pytest.mark.parametrize("name", COMPARISONS)
@settings(max_examples=25)
@given(pair=broadcastable_pairs(), seed=seeds, dtype=st.sampled_from([np.float32, np.int64]))
def test_comparisons_match_torch(name, pair, seed, dtype):
    ours, theirs = COMPARISONS[name]
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-2, 3, s).astype(dtype) for s in pair)  # small ints: many ties
    expected = theirs(torch.tensor(a), torch.tensor(b)).numpy()
    got = ours(minigan.tensor(a), minigan.tensor(b))
    assert got.dtype == np.bool_ and not got.requires_grad
    np.testing.assert_array_equal(got.numpy(), expected)
    if not name.startswith("logical"):  # (torch's logical ops take no Python numbers)
        scalar = ours(minigan.tensor(a), 1)
        np.testing.assert_array_equal(scalar.numpy(), theirs(torch.tensor(a), 1).numpy())


def test_comparison_operators_and_logical_not():
    a = minigan.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = minigan.tensor([3.0, 2.0, 1.0])
    assert (a == b).tolist() == [False, True, False] and (a != b).tolist() == [True, False, True]
    assert (a < b).tolist() == [True, False, False] and (a >= 2).tolist() == [False, True, True]
    assert (2.0 == a).tolist() == [False, True, False]  # reflected
    m = a > 1
    assert (~m).tolist() == [True, False, False]
    assert (m & (a < 3)).tolist() == [False, True, False]
    assert (m | (a < 2)).tolist() == [True, True, True] and (m ^ m).tolist() == [False] * 3
    assert F.logical_not(minigan.tensor([0.0, 2.0])).tolist() == [True, False]
    assert (a == None) is False and (a != "x") is True  # noqa: E711
    with pytest.raises(TypeError, match="bool tensor"):
        _ = ~a
    with pytest.raises(ValueError, match="eq: shapes"):
        _ = a == minigan.zeros(2)


def test_tensors_hash_by_identity_and_bool_follows_pytorch():
    a, b = minigan.zeros(3), minigan.zeros(3)
    assert len({a, b, a}) == 2 and {a: 1, b: 2}[b] == 2
    p = nn.Parameter(np.zeros(2, np.float32))
    assert p in {p} and hash(p) == object.__hash__(p)
    opt = minigan.optim.Adam([p, nn.Parameter(np.zeros(2, np.float32))])
    p.grad = minigan.ones(2)
    opt.step()
    assert p in opt.state
    assert bool(minigan.tensor([2.0])) and not bool(minigan.tensor(0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(minigan.zeros(2))
    assert F.equal(a, b) and not F.equal(a, minigan.ones(3)) and not F.equal(a, minigan.zeros(4))


def test_isnan_isinf_isfinite_match_torch():
    x = np.array([0.0, np.nan, np.inf, -np.inf, -1.5], np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        got = getattr(minigan.tensor(x), name)()
        np.testing.assert_array_equal(got.numpy(), getattr(torch, name)(torch.tensor(x)).numpy())
    assert not F.isnan(minigan.tensor([1, 2])).numpy().any()


# --------------------------------------------------------------------------- elementwise math


def _positive(rng, shape, dtype):
    return (rng.random(shape) * 3 + 0.2).astype(dtype)


def _any(rng, shape, dtype):
    return (rng.standard_normal(shape) * 2).astype(dtype)


# name -> (minigan, torch, input maker)
UNARY = {
    "sin": (F.sin, torch.sin, _any),
    "cos": (F.cos, torch.cos, _any),
    "erf": (F.erf, torch.erf, _any),
    "rsqrt": (F.rsqrt, torch.rsqrt, _positive),
    "log2": (F.log2, torch.log2, _positive),
    "log10": (F.log10, torch.log10, _positive),
    "exp2": (F.exp2, torch.exp2, _any),
    "sign": (F.sign, torch.sign, _any),
    "floor": (F.floor, torch.floor, _any),
    "ceil": (F.ceil, torch.ceil, _any),
    "round": (F.round, torch.round, _any),
    "round_2": (lambda x: F.round(x, 2), lambda x: torch.round(x, decimals=2), _any),
}
SMOOTH = ["sin", "cos", "erf", "rsqrt", "log2", "log10", "exp2"]


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=20)
@given(shape=shapes(0, 3), seed=seeds)
def test_unary_math_matches_torch(name, shape, seed):
    ours, theirs, make = UNARY[name]
    x = make(np.random.default_rng(seed), shape, np.float32)
    parity(ours, theirs, [x], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", SMOOTH)
def test_unary_math_second_derivatives(name, rng):
    ours, theirs, make = UNARY[name]
    x = make(rng, (3, 4), np.float64)
    double_backward_parity(ours, theirs, [x])
    t = minigan.tensor(x, requires_grad=True)
    assert gradcheck(ours, [t]) and gradgradcheck(ours, [t])


def test_rounding_keeps_integer_tensors():
    t = minigan.tensor([-3, 4])
    for name in ("floor", "ceil", "round"):
        out = getattr(F, name)(t)
        assert out.dtype == np.int64 and out.tolist() == [-3, 4]
    assert F.sign(t).tolist() == [-1, 1]


@settings(max_examples=25)
@given(pair=broadcastable_pairs(max_dims=3), seed=seeds, tensor_weight=st.booleans())
def test_lerp_matches_torch(pair, seed, tensor_weight):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in pair)
    if tensor_weight:
        w = rng.random(pair[1]).astype(np.float32) * 1.4 - 0.2
        parity(F.lerp, torch.lerp, [a, b, w], rtol=1e-5, atol=1e-6)
    else:
        weight = float(rng.random())
        parity(lambda x, y: F.lerp(x, y, weight), lambda x, y: torch.lerp(x, y, weight), [a, b],
               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_lerp_second_derivatives(rng):
    a, b, w = rng.standard_normal((3, 2, 4))
    double_backward_parity(F.lerp, torch.lerp, [a, b, w])
    ts = [minigan.tensor(v, requires_grad=True) for v in (a, b, w)]
    assert gradcheck(F.lerp, ts) and gradgradcheck(F.lerp, ts)
    assert minigan.tensor([1.0, 2.0]).lerp(minigan.tensor([3.0, 6.0]), 0.5).tolist() == [2.0, 4.0]


@settings(max_examples=25)
@given(pair=broadcastable_pairs(max_dims=3), seed=seeds)
def test_floor_divide_and_remainder_match_torch(pair, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(pair[0]) * 5).astype(np.float32)
    b = rng.choice([-2.5, -1.0, 0.75, 2.0, 3.0], pair[1]).astype(np.float32)
    # torch has no derivative for //; minigan's is zero, as for floor
    parity(lambda x, y: x // y, lambda x, y: x // y, [a, b], grad=False)
    parity(lambda x, y: x % y, lambda x, y: x % y, [a, b], rtol=1e-5, atol=1e-5)
    ia, ib = rng.integers(-9, 10, pair[0]), rng.choice([-3, -2, 2, 5], pair[1])
    for op in (lambda x, y: x // y, lambda x, y: x % y, lambda x, y: 7 % y, lambda x, y: x // 2):
        got, expected = (
            op(minigan.tensor(ia), minigan.tensor(ib)),
            op(torch.tensor(ia), torch.tensor(ib)),
        )
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_remainder_second_derivatives(rng):
    a = rng.standard_normal((3, 3)) * 4
    b = rng.choice([-2.5, 1.5, 3.0], (3, 3))
    double_backward_parity(F.remainder, torch.remainder, [a, b])


# --------------------------------------------------------------------------- indexing


@st.composite
def gather_cases(draw):
    """(x shape, dim, index) with index no larger than x outside ``dim``."""
    shape = draw(shapes(1, 3, max_side=4))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    index_shape = tuple(
        draw(st.integers(1, 5)) if d == dim % len(shape) else draw(st.integers(1, n))
        for d, n in enumerate(shape)
    )
    seed = draw(seeds)
    index = np.random.default_rng(seed).integers(0, shape[dim], index_shape)
    return shape, dim, index, seed


@settings(max_examples=25)
@given(case=gather_cases())
def test_gather_matches_torch(case):
    shape, dim, index, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    parity(lambda t, i: F.gather(t, dim, i), lambda t, i: torch.gather(t, dim, i), [x, index])
    double_backward_parity(
        lambda t: F.gather(t, dim, minigan.tensor(index)) ** 2,
        lambda t: torch.gather(t, dim, torch.tensor(index)) ** 2,
        [x.astype(np.float64)],
    )


@st.composite
def scatter_cases(draw):
    """(x shape, dim, index, src shape): indices along ``dim`` are distinct within each
    slice (as PyTorch needs for a deterministic scatter)."""
    shape = draw(shapes(1, 3, max_side=4))
    dim = draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(draw(st.integers(1, n)) for n in shape)
    rng = np.random.default_rng(draw(seeds))
    perms = np.argsort(rng.random(index_shape[:dim] + (shape[dim],) + index_shape[dim + 1 :]), dim)
    index = np.take(perms, np.arange(index_shape[dim]), axis=dim)
    src_shape = tuple(n + draw(st.integers(0, 1)) for n in index_shape)
    return shape, dim, index, src_shape, rng


@settings(max_examples=25)
@given(case=scatter_cases())
def test_scatter_and_scatter_add_match_torch(case):
    shape, dim, index, src_shape, rng = case
    x = rng.standard_normal(shape).astype(np.float32)
    src = rng.standard_normal(src_shape).astype(np.float32)
    # a src larger than the index: forward only (torch's backward rejects that shape)
    parity(lambda t, i, s: F.scatter(t, dim, i, s), lambda t, i, s: t.scatter(dim, i, s),
           [x, index, src], grad=False)  # fmt: skip
    src = src[tuple(slice(0, n) for n in index.shape)]
    parity(lambda t, i, s: F.scatter(t, dim, i, s), lambda t, i, s: t.scatter(dim, i, s),
           [x, index, src])  # fmt: skip
    parity(lambda t, i, s: F.scatter_add(t, dim, i, s), lambda t, i, s: t.scatter_add(dim, i, s),
           [x, index, src])  # fmt: skip
    parity(lambda t, i: F.scatter(t, dim, i, value=2.5), lambda t, i: t.scatter(dim, i, 2.5),
           [x, index])  # fmt: skip


def test_scatter_add_adds_repeated_indices_and_second_derivatives(rng):
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    index = np.array([[0, 1, 2, 0], [0, 0, 2, 2], [1, 1, 1, 1], [2, 0, 1, 0], [0, 2, 2, 1]])

    def ours(t, s):
        return F.scatter_add(t, 0, minigan.tensor(index), s) ** 2

    def theirs(t, s):
        return t.scatter_add(0, torch.tensor(index), s) ** 2

    double_backward_parity(ours, theirs, [x, src])
    double_backward_parity(
        lambda t, s: F.scatter(t, 0, minigan.tensor(index[:1]), s) ** 2,
        lambda t, s: t.scatter(0, torch.tensor(index[:1]), s) ** 2,
        [x, src[:1]],
    )
    ts = [minigan.tensor(v, requires_grad=True) for v in (x, src)]
    assert gradcheck(ours, ts) and gradgradcheck(ours, ts)


@settings(max_examples=25)
@given(shape=shapes(1, 3), data=st.data(), seed=seeds)
def test_index_select_and_masked_fill_match_torch(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    index = rng.integers(0, shape[dim], data.draw(st.integers(0, 5)))
    parity(lambda t, i: F.index_select(t, dim, i), lambda t, i: torch.index_select(t, dim, i),
           [x, index])  # fmt: skip
    mask_shape = data.draw(st.sampled_from([shape, shape[1:], (1,) * len(shape)]))
    mask = rng.random(mask_shape) < 0.5
    parity(lambda t, m: F.masked_fill(t, m, -3.0), lambda t, m: t.masked_fill(m, -3.0), [x, mask])
    value = np.array(1.5, np.float32)  # a 0-d tensor value gets a gradient
    parity(lambda t, m, v: t.masked_fill(m, v), lambda t, m, v: t.masked_fill(m, v),
           [x, mask, value])  # fmt: skip


def test_indexing_errors_name_the_op():
    x = minigan.zeros(2, 3)
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor"):
        x.masked_fill(minigan.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"masked_fill: mask of shape \(3, 3\)"):
        x.masked_fill(minigan.zeros(3, 3) > 0, 1.0)
    with pytest.raises(ValueError, match="gather: index must have as many dims"):
        x.gather(0, minigan.tensor([0]))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor"):
        x.gather(0, minigan.zeros(2, 3))
    with pytest.raises(IndexError, match="index_select: Dimension out of range"):
        x.index_select(2, minigan.tensor([0]))


# --------------------------------------------------------------------------- shape ops


@settings(max_examples=25)
@given(shape=shapes(1, 4), data=st.data(), seed=seeds)
def test_flip_roll_repeat_match_torch(shape, data, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    nd = len(shape)
    dims = tuple(data.draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=1)))
    parity(lambda t: F.flip(t, dims), lambda t: torch.flip(t, dims), [x])
    shifts = tuple(data.draw(st.integers(-5, 5)) for _ in dims)
    parity(lambda t: F.roll(t, shifts, dims), lambda t: torch.roll(t, shifts, dims), [x])
    parity(lambda t: t.roll(shifts[0]), lambda t: t.roll(shifts[0]), [x])
    reps = tuple(data.draw(st.integers(1, 3)) for _ in range(nd + data.draw(st.integers(0, 1))))
    parity(lambda t: t.repeat(*reps), lambda t: t.repeat(*reps), [x])


@settings(max_examples=25)
@given(shape=shapes(1, 3), data=st.data(), seed=seeds)
def test_repeat_interleave_and_chunk_match_torch(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    r = data.draw(st.integers(0, 3))
    parity(lambda t: t.repeat_interleave(r, dim), lambda t: t.repeat_interleave(r, dim), [x])
    n = x.size if dim is None else shape[dim]
    counts = rng.integers(0, 3, n)
    parity(lambda t: F.repeat_interleave(t, minigan.tensor(counts), dim),
           lambda t: torch.repeat_interleave(t, torch.tensor(counts), dim), [x])  # fmt: skip
    chunks, cdim = data.draw(st.integers(1, 5)), 0 if dim is None else dim
    ours, theirs = (
        F.chunk(minigan.tensor(x), chunks, cdim),
        torch.chunk(torch.tensor(x), chunks, cdim),
    )
    assert [c.shape for c in ours] == [tuple(c.shape) for c in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@settings(max_examples=25)
@given(shape=shapes(2, 4), diagonal=st.integers(-3, 3), seed=seeds)
def test_tril_triu_match_torch(shape, diagonal, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    parity(lambda t: F.tril(t, diagonal), lambda t: torch.tril(t, diagonal), [x])
    parity(lambda t: t.triu(diagonal), lambda t: t.triu(diagonal), [x])
    with pytest.raises(ValueError, match="tril: expected a tensor of at least 2 dims"):
        F.tril(minigan.zeros(3))


def test_unflatten_matmul_softmax_methods(rng):
    x = rng.standard_normal((2, 12, 3)).astype(np.float32)
    parity(lambda t: t.unflatten(1, (3, -1)), lambda t: t.unflatten(1, (3, -1)), [x])
    parity(lambda t: t.softmax(1), lambda t: t.softmax(1), [x])
    parity(lambda t: t.log_softmax(-1), lambda t: t.log_softmax(-1), [x], rtol=1e-5, atol=1e-5)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    parity(lambda a, b: a.matmul(b), lambda a, b: a.matmul(b), [x, y], rtol=1e-5, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"unflatten: cannot split dim 1 of size 12 into \(5, -1\)"
    ):
        minigan.tensor(x).unflatten(1, (5, -1))


# --------------------------------------------------------------------------- einsum

EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->", [(3, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("ba,a", [(3, 4), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(1, 3, 4), (2, 4, 5)]),  # a size-1 batch dim broadcast
    ("i...->...", [(3, 2, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij,i->j", [(3, 4), (3, 4), (3,)]),
    ("iji->j", [(2, 3, 2)]),
]


@pytest.mark.parametrize("equation, shapes_", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_matches_torch(equation, shapes_, rng):
    arrays = [rng.standard_normal(s) for s in shapes_]
    parity(lambda *ts: F.einsum(equation, *ts), lambda *ts: torch.einsum(equation, *ts),
           [a.astype(np.float32) for a in arrays], rtol=1e-5, atol=1e-5)  # fmt: skip
    double_backward_parity(
        lambda *ts: F.einsum(equation, *ts) ** 2,
        lambda *ts: torch.einsum(equation, *ts) ** 2,
        arrays,
    )


def test_einsum_gradcheck_and_list_operands(rng):
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    ts = [minigan.tensor(v, requires_grad=True) for v in (a, b)]

    def fn(x, y):
        return F.einsum("ii,ij->ij", [x, y])

    assert gradcheck(fn, ts) and gradgradcheck(lambda x, y: fn(x, y) ** 2, ts)
    with pytest.raises(ValueError, match="einsum: 'ij,jk->ik': subscript 'j' has size 3 and 2"):
        F.einsum("ij,jk->ik", minigan.zeros(2, 3), minigan.zeros(2, 3))
    with pytest.raises(ValueError, match="einsum: 'ij' names 1 operands, but 2"):
        F.einsum("ij", minigan.zeros(2, 3), minigan.zeros(2, 3))


# --------------------------------------------------------------------------- reductions


@settings(max_examples=25)
@given(shape=shapes(1, 4), data=st.data(), seed=seeds, keepdim=st.booleans())
def test_argmax_argmin_match_torch(shape, data, seed, keepdim):
    x = np.random.default_rng(seed).integers(-3, 3, shape).astype(np.float32)  # ties: first wins
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    for name in ("argmax", "argmin"):
        got = getattr(F, name)(minigan.tensor(x), dim, keepdim)
        kwargs = {} if dim is None else {"dim": dim, "keepdim": keepdim}
        expected = getattr(torch, name)(torch.tensor(x), **kwargs).numpy()
        if dim is None and keepdim:
            expected = expected.reshape((1,) * len(shape))
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got.numpy(), expected)


@settings(max_examples=25)
@given(shape=shapes(1, 3), data=st.data(), seed=seeds, keepdim=st.booleans())
def test_prod_matches_torch_including_zeros(shape, data, seed, keepdim):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    zeros = data.draw(st.integers(0, 2))  # 0, 1 or 2 exact zeros
    x.reshape(-1)[rng.permutation(x.size)[:zeros]] = 0.0
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    if dim is None:
        ours, theirs = (lambda t: F.prod(t)), (lambda t: torch.prod(t))
    else:
        ours, theirs = (lambda t: t.prod(dim, keepdim)), (lambda t: t.prod(dim, keepdim))
    parity(ours, theirs, [x.astype(np.float32)], rtol=1e-5, atol=1e-6)
    double_backward_parity(ours, theirs, [x])


def test_prod_gradcheck_with_zeros_and_integers():
    x = minigan.tensor([[0.5, 0.0, 2.0], [1.5, -1.0, 0.0], [0.7, 0.8, 0.9]], dtype=np.float64,
                       requires_grad=True)  # fmt: skip
    assert gradcheck(lambda t: F.prod(t, 1), [x]) and gradgradcheck(lambda t: F.prod(t, 1), [x])
    assert gradcheck(lambda t: F.prod(t), [x]) and gradgradcheck(lambda t: F.prod(t), [x])
    ints = minigan.tensor([[1, 2], [3, 4]], dtype=np.int32)
    assert F.prod(ints).dtype == np.int64 and F.prod(ints, 0).tolist() == [3, 8]


@settings(max_examples=25)
@given(case=shape_and_dims(), seed=seeds, keepdim=st.booleans())
def test_any_all_match_torch(case, seed, keepdim):
    shape, dims = case
    x = np.random.default_rng(seed).random(shape) < 0.6
    t = torch.tensor(x)
    for name in ("any", "all"):
        got = getattr(minigan.tensor(x), name)(dims, keepdim)
        expected = getattr(t, name)() if dims is None else getattr(t, name)(dims, keepdim)
        if dims is None and keepdim:
            expected = expected.reshape((1,) * len(shape))
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@settings(max_examples=25)
@given(shape=shapes(1, 3), data=st.data(), seed=seeds, descending=st.booleans())
def test_sort_argsort_topk_match_torch(shape, data, seed, descending):
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.arange(np.prod(shape))).reshape(shape).astype(np.float32) * 0.5
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    parity(lambda t: t.sort(dim, descending)[0], lambda t: t.sort(dim, descending)[0], [x])
    values, indices = F.sort(minigan.tensor(x), dim, descending)
    np.testing.assert_array_equal(indices.numpy(), torch.tensor(x).sort(dim, descending)[1].numpy())
    np.testing.assert_array_equal(
        F.argsort(minigan.tensor(x), dim, descending).numpy(),
        torch.argsort(torch.tensor(x), dim, descending).numpy(),
    )
    k = data.draw(st.integers(0, shape[dim]))
    largest = data.draw(st.booleans())
    parity(lambda t: t.topk(k, dim, largest).values, lambda t: t.topk(k, dim, largest).values, [x])
    ours, theirs = (
        F.topk(minigan.tensor(x), k, dim, largest),
        torch.topk(torch.tensor(x), k, dim, largest),
    )
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())


def test_sort_is_stable_and_second_derivatives(rng):
    x = minigan.tensor([2.0, 1.0, 2.0, 1.0])
    assert x.sort().indices.tolist() == [1, 3, 0, 2]
    assert x.sort(descending=True).indices.tolist() == [0, 2, 1, 3]
    a = rng.standard_normal((3, 5))
    double_backward_parity(lambda t: t.sort(1)[0] ** 2, lambda t: t.sort(1)[0] ** 2, [a])
    double_backward_parity(lambda t: t.topk(2, 0)[0] ** 3, lambda t: t.topk(2, 0)[0] ** 3, [a])


@settings(max_examples=25)
@given(shape=shapes(1, 4), data=st.data(), seed=seeds)
def test_cumsum_matches_torch(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    parity(lambda t: t.cumsum(dim), lambda t: t.cumsum(dim), [x], rtol=1e-5, atol=1e-5)
    parity(lambda t: F.cumsum(t, axis=dim), lambda t: torch.cumsum(t, axis=dim), [x], rtol=1e-5,
           atol=1e-5)  # fmt: skip
    ints = rng.integers(-5, 5, shape).astype(np.int32)
    got = minigan.tensor(ints).cumsum(dim)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), torch.tensor(ints).cumsum(dim).numpy())


def test_cumsum_second_derivatives(rng):
    a = rng.standard_normal((3, 4))
    double_backward_parity(lambda t: t.cumsum(1) ** 2, lambda t: t.cumsum(1) ** 2, [a])
    t = minigan.tensor(a, requires_grad=True)
    assert gradgradcheck(lambda u: F.cumsum(u, 0) ** 3, [t])


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "max", "min", "prod", "any",
                                  "all", "argmax", "argmin", "cumsum"])  # fmt: skip
def test_reductions_take_axis_for_dim(name, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    got = getattr(minigan.tensor(x), name)(axis=1)
    expected = getattr(torch.tensor(x), name)(axis=1)
    expected = expected[0] if isinstance(expected, tuple) else expected  # (values, indices)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="dim or axis"):
        getattr(minigan.tensor(x), name)(0, axis=1)
