"""PyTorch's semantics where they are easy to get silently wrong (issue 14), each compared with
PyTorch in the same process: in-place changes to tensors saved for backward (version
counters), min, out-of-range dims, advanced-indexing placement, pow at the edges, bilinear
upsampling of integer images, var/std/mean edge cases, type promotion, and calls PyTorch
accepts. Hypothesis varies shapes, dims, dtypes and index patterns.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import shapes

import minigan
import minigan.functional as F
from minigan import nn

# the edge cases (0 ** -1, 0 · inf, log 0, …) make NumPy warn, as PyTorch computes them silently
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

INPLACE = (
    r"one of the variables needed for gradient computation has been modified by an inplace "
    r"operation: \[.*\[{shape}\]\].* is at version {version}; expected version {expected} "
    r"instead"
)


def outcome(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or the type of the exception it raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                return fn()
    except Exception as e:  # noqa: BLE001 (the type is compared)
        return type(e)


def as_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, minigan.Tensor):
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [as_numpy(v) for v in value]
    return value


def assert_same(ours: Any, theirs: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Same exception class family (ours must be an instance of PyTorch's), or same values,
    shapes and dtypes (nan where PyTorch has nan)."""
    if isinstance(theirs, type):
        assert isinstance(ours, type) and issubclass(ours, theirs), (ours, theirs)
        return
    assert not isinstance(ours, type), f"minigan raised {ours.__name__}, PyTorch gave {theirs}"
    ours, theirs = as_numpy(ours), as_numpy(theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, rtol, atol)
        return
    assert ours.shape == theirs.shape
    assert ours.dtype == np.dtype(str(theirs.dtype)), (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True)


# --------------------------------------------------------------------------- 1. version counters


def _mul_graph(w_requires_grad: bool):
    """``y = sum(x * w)`` in both libraries, x = [1, 2, 3] requiring grad, w = [2, 4, 6]."""
    xs = np.array([1.0, 2.0, 3.0], np.float32)
    ws = np.array([2.0, 4.0, 6.0], np.float32)
    x, w = minigan.tensor(xs, requires_grad=True), minigan.tensor(ws, requires_grad=w_requires_grad)
    tx, tw = torch.tensor(xs, requires_grad=True), torch.tensor(ws, requires_grad=w_requires_grad)
    return (x, w, (x * w).sum()), (tx, tw, (tx * tw).sum())


def _sgd(w: Any, lib: Any) -> None:
    opt = (minigan.optim if lib is minigan else torch.optim).SGD([w], lr=1.0)
    w.grad = lib.ones(3)
    opt.step()


def _adam(w: Any, lib: Any) -> None:
    opt = (minigan.optim if lib is minigan else torch.optim).Adam([w], lr=1.0)
    w.grad = lib.ones(3)
    opt.step()


def _init(w: Any, lib: Any) -> None:
    (nn.init if lib is minigan else torch.nn.init).constant_(w, 5.0)


def _zero(w: Any, lib: Any) -> None:
    if lib is minigan:
        w.zero_()
    else:
        with torch.no_grad():
            w.zero_()


@pytest.mark.parametrize(
    "change", [_zero, _sgd, _adam, _init], ids=["zero_", "sgd", "adam", "init"]
)
def test_inplace_change_of_a_saved_tensor_raises_as_in_pytorch(change):
    (x, w, y), (tx, tw, ty) = _mul_graph(w_requires_grad=True)
    change(w, minigan)
    change(tw, torch)
    with pytest.raises(RuntimeError) as theirs:
        ty.backward()
    with pytest.raises(RuntimeError, match=INPLACE.format(shape=3, version=r"\d+", expected=0)):
        y.backward()
    assert re.search(INPLACE.format(shape=3, version=r"\d+", expected=0), str(theirs.value))


def test_the_error_names_the_op_shape_and_versions():
    (x, w, y), _ = _mul_graph(w_requires_grad=False)
    w.zero_()
    w.zero_()
    with pytest.raises(RuntimeError) as err:
        y.backward()
    message = str(err.value)
    assert re.search(INPLACE.format(shape=3, version=2, expected=0), message)
    assert "float32" in message and "mul" in message


@pytest.mark.parametrize("how", ["assign", "augmented"])
def test_assigning_data_counts_as_an_inplace_change(how):
    """A deliberate difference: PyTorch's ``.data`` has its own version counter and
    ``w.data = …`` goes unseen (gradient [-1, -1, -1] here); minigan raises."""
    (x, w, y), _ = _mul_graph(w_requires_grad=False)
    if how == "assign":
        w.data = np.zeros(3, np.float32)
    else:
        w.data -= 1
    with pytest.raises(RuntimeError, match=INPLACE.format(shape=3, version=1, expected=0)):
        y.backward()


def test_module_to_its_own_device_and_dtype_keeps_the_graph_usable():
    """``model.to("cpu")`` / ``model.to(dtype=float32)`` on a CPU float32 model change nothing:
    as in PyTorch, a backward through an earlier forward still works."""
    layer = nn.Linear(3, 2)
    x = minigan.ones(4, 3, requires_grad=True)
    loss = layer(x).sum()
    layer.to("cpu").to(dtype=np.float32)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.tile(layer.weight.data.sum(0), (4, 1)), 1e-6)


def test_assigning_a_new_array_leaves_detached_tensors_valid():
    """``w.data = new`` gives w new values but a ``detach()``ed alias keeps the old array and
    its values, so a graph that saved the alias stays valid (PyTorch: gradient [1, 2, 3])."""
    results = []
    for lib in (minigan, torch):
        w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        x = lib.tensor([1.0, 1.0, 1.0], requires_grad=True)
        y = (x * w.detach()).sum()
        w.data = lib.zeros(3) if lib is torch else np.zeros(3, np.float32)
        y.backward()
        results.append(x.grad.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("graph", ["a + b", "a itself"])
def test_each_grad_owns_its_array(graph):
    """Writing into one ``.grad`` changes neither another leaf's ``.grad`` nor the tensor
    passed as ``gradient`` (they shared one array: ``a + b`` hands both the same one)."""
    results = []
    for lib in (minigan, torch):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        g = lib.tensor([1.0, 1.0, 1.0])
        (a + b if graph == "a + b" else a).backward(g)
        if lib is minigan:
            a.grad.data *= 0.5
        else:
            with torch.no_grad():
                a.grad.mul_(0.5)
        other = [] if b.grad is None else b.grad.tolist()
        results.append((a.grad.tolist(), other, g.tolist()))
    assert results[0] == results[1]


def test_load_state_dict_between_forward_and_backward_raises():
    """The weight (seen through its transpose, a view) is saved for the input's gradient."""
    layer = nn.Linear(3, 2)
    loss = layer(minigan.ones(4, 3, requires_grad=True)).sum()
    layer.load_state_dict(nn.Linear(3, 2).state_dict())
    with pytest.raises(RuntimeError, match=INPLACE.format(shape="3, 2", version=2, expected=1)):
        loss.backward()


def test_a_change_through_a_view_or_a_detached_tensor_is_seen():
    """Views (reshape) and detach() share their base's version counter, as in PyTorch."""
    x = minigan.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = minigan.tensor([2.0, 4.0, 6.0])
    y = (x * w.reshape(3, 1)).sum()
    w.zero_()
    with pytest.raises(RuntimeError, match=INPLACE.format(shape="3, 1", version=1, expected=0)):
        y.backward()
    e = x.exp()
    z = e.sum()
    e.detach().zero_()
    with pytest.raises(RuntimeError, match="which is output 0 of Exp"):
        z.backward()


UNARY = {
    "exp": (lambda t: t.exp(), lambda t: t.exp()),
    "sqrt": (lambda t: t.sqrt(), lambda t: t.sqrt()),
    "log": (lambda t: t.log(), lambda t: t.log()),
    "tanh": (lambda t: t.tanh(), lambda t: t.tanh()),
    "sigmoid": (lambda t: t.sigmoid(), lambda t: t.sigmoid()),
    "relu": (lambda t: t.relu(), lambda t: t.relu()),
    "abs": (lambda t: t.abs(), lambda t: t.abs()),
    "square": (lambda t: t**2, lambda t: t**2),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda t: TF.leaky_relu(t, 0.1)),
    "softplus": (lambda t: F.softplus(t), lambda t: TF.softplus(t)),
    "sum": (lambda t: t.sum(0, keepdim=True), lambda t: t.sum(0, keepdim=True)),
    "reshape": (lambda t: t.reshape(-1), lambda t: t.reshape(-1)),
    "neg": (lambda t: -t, lambda t: -t),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b),
    "pow": (lambda a, b: a**b, lambda a, b: a**b),
}


def _run_with_change(lib: Any, op: Callable, arrays: list, grads: list, victim: str) -> Any:
    """Forward ``op``, change one operand (or the output) in place, backward: the gradients,
    or the exception type."""
    tensors = [
        (minigan.tensor if lib is minigan else torch.tensor)(a, requires_grad=g)
        for a, g in zip(arrays, grads)
    ]
    out = op(*tensors)
    target = out if victim == "output" else tensors[int(victim)]
    if lib is minigan:
        target.data += 1
    else:
        with torch.no_grad():
            target.add_(1)

    def grads_of() -> list:
        out.sum().backward()
        return [t.grad for t, g in zip(tensors, grads) if g]

    return outcome(grads_of)


@given(
    name=st.sampled_from(sorted(UNARY)),
    victim=st.sampled_from(["0", "output"]),
    values=hnp.arrays(np.float64, (2, 3), elements=st.floats(0.5, 3.0)),
)
def test_which_inplace_changes_raise_follows_pytorch_unary(name, victim, values):
    ours, theirs = UNARY[name]
    assert_same(
        _run_with_change(minigan, ours, [values], [True], victim),
        _run_with_change(torch, theirs, [values], [True], victim),
    )


@given(
    name=st.sampled_from(sorted(BINARY)),
    victim=st.sampled_from(["0", "1", "output"]),
    grads=st.sampled_from([(True, True), (True, False), (False, True)]),
    values=hnp.arrays(np.float64, (2, 3, 3), elements=st.floats(0.5, 3.0)),
)
def test_which_inplace_changes_raise_follows_pytorch_binary(name, victim, grads, values):
    ours, theirs = BINARY[name]
    arrays = [values[0], values[1]]
    assert_same(
        _run_with_change(minigan, ours, arrays, list(grads), victim),
        _run_with_change(torch, theirs, arrays, list(grads), victim),
    )


def test_training_steps_still_work_with_version_counters():
    """forward → backward → step → forward… never trips the check (no false positives)."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
    opt = minigan.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(minigan.randn(8, 3)).sum().backward()
        opt.step()


# --------------------------------------------------------------------------- 2. min

INT_DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize(
    "values, dtype",
    [
        ([0, 1, 2, 3, 4, 5], np.uint8),
        ([0, 128, 255, 64, 32, 16], np.uint8),
        ([0, -(2**31)], np.int32),
        ([True, False], np.bool_),
    ],
)
def test_min_of_issue_examples(values, dtype):
    a = np.array(values, dtype)
    assert_same(minigan.tensor(a).min(), torch.tensor(a).amin())


@given(
    data=st.data(),
    dtype=st.sampled_from([*INT_DTYPES, np.float32, np.float64]),
    shape=shapes(min_dims=1, max_dims=3),
)
def test_min_matches_torch_amin(data, dtype, shape):
    a = data.draw(hnp.arrays(dtype, shape))
    if a.dtype.kind == "f":
        a = np.nan_to_num(a)
    dim = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    ours = minigan.tensor(a).min(dim)
    theirs = torch.tensor(a).amin() if dim is None else torch.tensor(a).amin(dim)
    assert_same(ours, theirs)


def test_min_gradient_is_shared_among_ties_like_max():
    a = np.array([[3.0, 1.0, 1.0], [2.0, 5.0, 0.5]], np.float32)
    x, tx = minigan.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.min(1).sum().backward()
    tx.amin(1).sum().backward()
    assert_same(x.grad, tx.grad)


# --------------------------------------------------------------------------- 3. dims

DIM_OPS: dict[str, tuple[Callable, Callable]] = {
    "sum": (lambda x, d: x.sum(d), lambda x, d: x.sum(d)),
    "mean": (lambda x, d: x.mean(d), lambda x, d: x.mean(d)),
    "var": (lambda x, d: x.var(d), lambda x, d: x.var(d)),
    "std": (lambda x, d: x.std(d), lambda x, d: x.std(d)),
    "max": (lambda x, d: x.max(d), lambda x, d: x.amax(d)),
    "min": (lambda x, d: x.min(d), lambda x, d: x.amin(d)),
    "sum_keepdim": (lambda x, d: x.sum((d,), True), lambda x, d: x.sum((d,), True)),
    "logsumexp": (lambda x, d: F.logsumexp(x, d), lambda x, d: x.logsumexp(d)),
    "softmax": (lambda x, d: F.softmax(x, d), lambda x, d: x.softmax(d)),
    "log_softmax": (lambda x, d: F.log_softmax(x, d), lambda x, d: x.log_softmax(d)),
    "squeeze": (lambda x, d: x.squeeze(d), lambda x, d: x.squeeze(d)),
    "unsqueeze": (lambda x, d: x.unsqueeze(d), lambda x, d: x.unsqueeze(d)),
    "flatten": (lambda x, d: x.flatten(d), lambda x, d: x.flatten(d)),
    "transpose": (lambda x, d: x.transpose(d, 0), lambda x, d: x.transpose(d, 0)),
    "permute": (
        lambda x, d: x.permute(*range(x.ndim - 1), d),
        lambda x, d: x.permute(*range(x.ndim - 1), d),
    ),
    "cat": (lambda x, d: F.cat([x, x], d), lambda x, d: torch.cat([x, x], d)),
    "stack": (lambda x, d: F.stack([x, x], d), lambda x, d: torch.stack([x, x], d)),
    "split": (lambda x, d: F.split(x, 1, d), lambda x, d: list(torch.split(x, 1, d))),
}


@given(
    name=st.sampled_from(sorted(DIM_OPS)),
    shape=shapes(min_dims=0, max_dims=4, min_side=1, max_side=3),
    dim=st.integers(-6, 6),
)
def test_dims_are_checked_as_in_pytorch(name, shape, dim):
    """Out-of-range dims raise IndexError (never wrap around); in-range ones agree."""
    ours, theirs = DIM_OPS[name]
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert_same(
        outcome(lambda: ours(minigan.tensor(a), dim)), outcome(lambda: theirs(torch.tensor(a), dim))
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.sum(3),
        lambda x: x.sum(5),
        lambda x: x.mean(-4),
        lambda x: x.var(4),
        lambda x: x.max(7),
        lambda x: x.squeeze(50),
        lambda x: x.unsqueeze(9),
        lambda x: x.permute(0, 1, 5),
        lambda x: F.cat([x, x], dim=4),
        lambda x: F.stack([x], dim=77),
    ],
)
def test_issue_out_of_range_dims_raise_index_error(call):
    with pytest.raises(IndexError, match="Dimension out of range"):
        call(minigan.zeros(2, 3, 4))


def test_repeated_reduction_dims_raise_runtime_error():
    for lib in (minigan, torch):
        with pytest.raises(RuntimeError, match="appears multiple times"):
            lib.zeros(2, 3).sum((0, -2))


# --------------------------------------------------------------------------- 4. indexing


@st.composite
def index_patterns(draw):
    """``(shape, index)``: a mix of ints, slices, None, Ellipsis and integer or boolean index
    arrays (all integer arrays of one broadcastable shape)."""
    shape = draw(shapes(min_dims=2, max_dims=5, min_side=1, max_side=5))
    array_shape = draw(st.sampled_from([(1,), (2,), (3,), (2, 2)]))
    items: list[Any] = []
    dim = 0
    used_bool = False
    while dim < len(shape) and len(items) < len(shape):
        n = shape[dim]
        kind = draw(st.sampled_from(["int", "slice", "array", "array", "none", "bool"]))
        if kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n - 1, n + 1))
            stop = draw(st.none() | st.integers(-n - 1, n + 1))
            items.append(slice(start, stop, draw(st.none() | st.integers(1, 3))))
        elif kind == "array":
            items.append(draw(hnp.arrays(np.int64, array_shape, elements=st.integers(-n, n - 1))))
        elif kind == "bool" and not used_bool and dim + 1 < len(shape):  # a 2-D mask
            mask = draw(hnp.arrays(np.bool_, shape[dim : dim + 2]))
            items.append(mask)
            used_bool = True
            dim += 1
        else:
            items.append(None)
            continue
        dim += 1
    if draw(st.booleans()):
        # each item's values were drawn for the dim it indexes now; an Ellipsis before an
        # item shifts it to a later dim unless the items already index every dim
        at = draw(st.integers(0, len(items))) if dim == len(shape) else len(items)
        items.insert(at, Ellipsis)
    return shape, tuple(items)


@given(pattern=index_patterns())
@example(pattern=((2, 1, 1), (slice(None), np.array([0]), Ellipsis, np.array([0]))))  # empty ...
@example(pattern=((2, 3, 4), (np.array([1]), Ellipsis, None, np.array([0, 2]))))
@example(pattern=((2, 3, 4, 5), (True, Ellipsis, np.array([0, 1]))))  # a bool adds a dim
@example(pattern=((2, 3, 4, 5), (False, Ellipsis, np.array([0]))))
@example(pattern=((2, 3, 4, 5), (np.array([0, 1]), Ellipsis, True, np.array([1, 2]))))
def test_advanced_indexing_places_dims_as_pytorch(pattern):
    shape, index = pattern
    a = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    t_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    expected = outcome(lambda: torch.tensor(a)[t_index])
    if isinstance(expected, type):  # an invalid pattern (e.g. mismatched index arrays)
        assert isinstance(outcome(lambda: minigan.tensor(a)[index]), type)
        return
    x, tx = minigan.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x[index], tx[t_index]
    assert_same(y, ty)
    g = np.random.default_rng(2).standard_normal(ty.shape).astype(np.float32)
    y.backward(minigan.tensor(g))
    ty.backward(torch.tensor(g))
    assert_same(x.grad, tx.grad)


def test_issue_indexing_examples():
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert minigan.tensor(a)[0, :, [0, 2]].shape == (3, 2)
    b = np.arange(3 * 4 * 12 * 5 * 6, dtype=np.float32).reshape(3, 4, 12, 5, 6)
    idx = np.array([[0, 4], [2, 1]])
    ours = minigan.tensor(b)[1, :, 3:11:2, idx, 0:2]
    assert_same(ours, torch.tensor(b)[1, :, 3:11:2, torch.tensor(idx), 0:2])
    # a 0-d integer tensor selects like an int
    assert_same(
        minigan.tensor(a)[minigan.tensor(np.array(1)), :, [0, 2]],
        torch.tensor(a)[torch.tensor(1), :, [0, 2]],
    )


@pytest.mark.parametrize(
    "index", [[], (slice(None), []), (0, []), (Ellipsis, [])], ids=["[]", ":,[]", "0,[]", "...,[]"]
)
def test_an_empty_list_index_selects_nothing(index):
    """``x[[]]`` is an empty selection in PyTorch (NumPy reads ``[]`` as a float array)."""
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x, tx = minigan.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x[index], tx[index]
    assert_same(y, ty)
    (y.sum() + x.sum()).backward()
    (ty.sum() + tx.sum()).backward()
    assert_same(x.grad, tx.grad)


# --------------------------------------------------------------------------- 5. pow

EDGE = [0.0, -0.0, 1.0, -1.0, -2.0, -1.5, 2.5, np.inf, -np.inf, 0.5, 3.0]
EXPONENTS = [0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.3, 0.5, -0.5, 2.5]


def _pow_results(lib: Any, base: np.ndarray, exponent: Any, tensor_exponent: bool) -> Any:
    x = (minigan.tensor if lib is minigan else torch.tensor)(base, requires_grad=True)
    if tensor_exponent:
        e = (minigan.tensor if lib is minigan else torch.tensor)(exponent, requires_grad=True)
    else:
        e = exponent

    def run() -> list:
        y = x**e
        y.backward((minigan if lib is minigan else torch).ones(y.shape, dtype=y.dtype))
        return [y, x.grad] + ([e.grad] if tensor_exponent else [])

    return outcome(run)


@given(
    base=hnp.arrays(np.float64, st.integers(1, 6), elements=st.sampled_from(EDGE)),
    data=st.data(),
)
def test_pow_with_tensor_exponent_matches_pytorch(base, data):
    exponent = data.draw(hnp.arrays(np.float64, base.shape, elements=st.sampled_from(EXPONENTS)))
    assert_same(
        _pow_results(minigan, base, exponent, True), _pow_results(torch, base, exponent, True)
    )


@given(
    base=hnp.arrays(np.float64, st.integers(1, 6), elements=st.sampled_from(EDGE)),
    exponent=st.sampled_from([0, 0.0, 1, 2, 3, -1, 0.3, 0.5, -0.5]),
)
def test_pow_with_scalar_exponent_matches_pytorch(base, exponent):
    assert_same(
        _pow_results(minigan, base, exponent, False), _pow_results(torch, base, exponent, False)
    )


def test_issue_pow_examples():
    base = np.array([-2.0, -2.0, -1.5], np.float32)
    exponent = np.array([2.0, 3.0, -1.0], np.float32)
    assert_same(
        minigan.tensor(base) ** minigan.tensor(exponent),
        torch.tensor(base) ** torch.tensor(exponent),
    )
    assert_same(minigan.tensor(0.0) ** minigan.tensor(0.0), torch.tensor(0.0) ** torch.tensor(0.0))
    assert_same(2.0 ** minigan.tensor([1.0, 3.0]), 2.0 ** torch.tensor([1.0, 3.0]))


# --------------------------------------------------------------------------- 6. bilinear


def test_issue_bilinear_integer_image():
    a = np.array([[[[0, 100], [200, 250]]]], np.uint8)
    ours = F.interpolate(minigan.tensor(a), size=(3, 3), mode="bilinear", align_corners=True)
    theirs = TF.interpolate(torch.tensor(a), size=(3, 3), mode="bilinear", align_corners=True)
    assert_same(ours, theirs)


@given(
    image=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),
    ),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    align_corners=st.booleans(),
)
def test_bilinear_upsampling_of_uint8_matches_pytorch_within_one_level(image, size, align_corners):
    """PyTorch's uint8 kernel works in fixed point and rounds between the two passes; minigan
    interpolates in float32 and rounds once, so levels may differ by 1 (never more)."""
    ours = F.interpolate(
        minigan.tensor(image), size=size, mode="bilinear", align_corners=align_corners
    )
    theirs = TF.interpolate(
        torch.tensor(image), size=size, mode="bilinear", align_corners=align_corners
    )
    assert ours.dtype == np.uint8 and ours.shape == tuple(theirs.shape)
    diff = np.abs(ours.numpy().astype(int) - theirs.numpy().astype(int))
    assert diff.max() <= 1


# --------------------------------------------------------------------------- 7. var / std / mean


@given(
    shape=shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    data=st.data(),
    op=st.sampled_from(["var", "std", "mean"]),
)
def test_var_std_mean_edge_cases_match_pytorch(shape, data, op):
    a = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    dim = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    if op == "mean":
        ours = outcome(lambda: minigan.tensor(a).mean(dim))
        theirs = outcome(lambda: torch.tensor(a).mean(dim))
    else:
        correction = data.draw(st.integers(0, 6))
        ours = outcome(lambda: getattr(minigan.tensor(a), op)(dim, correction=correction))
        theirs = outcome(lambda: getattr(torch.tensor(a), op)(dim, correction=correction))
    assert_same(ours, theirs)


def test_issue_var_std_mean_examples():
    assert np.isnan(minigan.tensor([3.0]).std().item())
    assert np.isinf(outcome(lambda: minigan.tensor(np.arange(5.0)).var(correction=5)).item())
    assert np.isnan(outcome(lambda: minigan.zeros(2, 0).mean(1)).numpy()).all()


@pytest.mark.filterwarnings(r"ignore:std\(\)")  # PyTorch's, for N = 1
@given(
    shape=st.sampled_from([(1,), (5,), (3, 4), (4, 1)]),
    dim=st.sampled_from([None, 0, -1]),
    correction=st.sampled_from([0, 1]),
)
def test_std_of_a_constant_has_gradient_zero(shape, dim, correction):
    """PyTorch's std backward is 0 where the std is 0 (it was 0 / 0 = nan): a constant
    channel must not poison a model's gradients."""
    a = np.full(shape, 1.5)
    x, tx = minigan.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = x.std(dim, correction=correction), tx.std(dim, correction=correction)
    assert_same(y, ty)
    y.sum().backward()
    ty.sum().backward()
    assert_same(x.grad, tx.grad)


# --------------------------------------------------------------------------- 8. promotion

DTYPES = [np.bool_, np.uint8, np.int8, np.int32, np.int64, np.float32, np.float64]
OPERATORS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "sub": lambda a, b: a - b,
    "pow": lambda a, b: a**b,
    "maximum": None,
}


def _operand(lib: Any, kind: str, dtype: Any) -> Any:
    if kind == "int":
        return 2
    if kind == "float":
        return 0.5
    if kind == "bool":
        return True
    shape = (2,) if kind == "tensor" else ()
    a = np.full(shape, 2, dtype)
    return minigan.tensor(a) if lib is minigan else torch.tensor(a)


@given(
    op=st.sampled_from(sorted(OPERATORS)),
    left=st.tuples(st.sampled_from(["tensor", "0-d"]), st.sampled_from(DTYPES)),
    right=st.tuples(
        st.sampled_from(["tensor", "0-d", "int", "float", "bool"]), st.sampled_from(DTYPES)
    ),
)
def test_result_dtype_follows_pytorch_promotion(op, left, right):
    def run(lib: Any) -> Any:
        a, b = _operand(lib, *left), _operand(lib, *right)
        if op == "maximum":
            b = b if not isinstance(b, (int, float)) else _operand(lib, "0-d", type(b))
            return (F.maximum if lib is minigan else torch.maximum)(a, b)
        return OPERATORS[op](a, b)

    theirs = outcome(lambda: run(torch))
    if isinstance(theirs, type):
        return  # PyTorch refuses (e.g. bool - bool): not compared
    ours = outcome(lambda: run(minigan))
    assert_same(ours, theirs)


@given(
    op=st.sampled_from(["add", "sub", "mul", "div", "rdiv"]),
    dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32]),
    number=st.sampled_from([-1, -129, 255, 256, 300, 1000, 2**40]),
    values=hnp.arrays(np.int64, 3, elements=st.integers(1, 127)),
)
def test_python_int_out_of_an_integer_dtypes_range(op, dtype, number, values):
    """uint8 / 300 is a float32 division by 300 and uint8 + -1 wraps, as in PyTorch (both
    raised OverflowError: the number was first cast to the tensor's dtype)."""
    calls = {
        "add": lambda t: t + number,
        "sub": lambda t: t - number,
        "mul": lambda t: t * number,
        "div": lambda t: t / number,
        "rdiv": lambda t: number / t,
    }
    a = values.astype(dtype)
    assert_same(calls[op](minigan.tensor(a)), calls[op](torch.tensor(a)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid"])
def test_float_functions_of_integers_give_float32(op, dtype):
    a = np.array([1, 2, 0], dtype)
    assert_same(getattr(F, op)(minigan.tensor(a)), getattr(torch, op)(torch.tensor(a)))


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, a, b: a @ b,
        lambda lib, a, b: (F if lib is minigan else TF).conv2d(
            a.reshape(1, 1, 2, 2), b.reshape(1, 1, 2, 2)
        ),
        lambda lib, a, b: a + b,
    ],
    ids=["matmul", "conv2d", "add"],
)
def test_float32_with_float64_is_float64_for_every_op(call):
    """One rule: PyTorch promotes in add but refuses matmul/conv2d of mixed dtypes; minigan
    promotes everywhere (a deliberate difference, see the README's Semantics section)."""
    a32 = np.array([[1.5, 2.0], [3.0, -1.0]], np.float32)
    b64 = np.array([[0.1, 0.2], [0.3, 0.4]], np.float64)
    x = minigan.tensor(a32, requires_grad=True)
    y = call(minigan, x, minigan.tensor(b64))
    expected = call(torch, torch.tensor(a32, dtype=torch.float64), torch.tensor(b64))
    assert_same(y, expected, rtol=1e-6)
    y.sum().backward()
    assert x.grad.dtype == np.float32


# --------------------------------------------------------------------------- PyTorch accepts


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_])
def test_to_integer_dtype_on_a_tensor_requiring_grad(dtype):
    a = np.array([1.5, 0.0, 2.0], np.float32)
    ours = minigan.tensor(a, requires_grad=True).to(dtype=dtype)
    theirs = torch.tensor(a, requires_grad=True).to(dtype=getattr(torch, np.dtype(dtype).name))
    assert_same(ours, theirs)
    assert not ours.requires_grad and not theirs.requires_grad


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda x: F.softmax(x, 0), lambda x: x.softmax(0)),
        (lambda x: F.log_softmax(x, -1), lambda x: x.log_softmax(-1)),
        (lambda x: F.logsumexp(x, 0), lambda x: x.logsumexp(0)),
        (lambda x: x.sum(0), lambda x: x.sum(0)),
        (lambda x: x.max(-1), lambda x: x.amax(-1)),
    ],
)
def test_zero_dim_tensors_take_dim_0(ours, theirs):
    x, tx = minigan.tensor(1.5, requires_grad=True), torch.tensor(1.5, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    assert_same(y, ty)
    y.backward()
    ty.backward()
    assert_same(x.grad, tx.grad)


def test_cross_entropy_on_unbatched_logits():
    logits = np.array([1.0, -2.0, 0.5], np.float32)
    x, tx = minigan.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    for reduction in ("mean", "none", "sum"):
        ours = F.cross_entropy(x, minigan.tensor(np.array(2)), reduction=reduction)
        theirs = TF.cross_entropy(tx, torch.tensor(2), reduction=reduction)
        assert_same(ours, theirs)
    ours.backward()
    theirs.backward()
    assert_same(x.grad, tx.grad)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_max_pool2d_of_integers_with_padding(dtype):
    a = np.arange(25).reshape(1, 1, 5, 5).astype(dtype)
    ours = F.max_pool2d(minigan.tensor(a), 3, 2, 1)
    theirs = TF.max_pool2d(torch.tensor(a), 3, 2, 1)
    assert_same(ours, theirs)


def test_cat_of_zero_dim_tensors_raises_pytorchs_error():
    for lib, cat in ((minigan, F.cat), (torch, torch.cat)):
        with pytest.raises(RuntimeError, match="zero-dimensional tensor .at position 0. cannot be"):
            cat([lib.tensor(1.0), lib.tensor(2.0)])


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda lib: lib.ones(2, 3) + lib.ones(4, 3), RuntimeError),
        (lambda lib: lib.ones(2, 3).reshape(4, 2), RuntimeError),
        (lambda lib: lib.ones(2, 3) @ lib.ones(2, 3), RuntimeError),
        (lambda lib: lib.ones(2, 3).permute(0, 0), RuntimeError),
    ],
    ids=["broadcast", "reshape", "matmul", "permute"],
)
def test_shape_errors_are_runtime_errors_as_in_pytorch(call, error):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error):
        call(minigan)
