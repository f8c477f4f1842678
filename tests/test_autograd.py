"""The autograd engine: Tensor.backward, minigan.grad, grad modes, graph freeing, dtypes,
pruning of unneeded gradients, reproducible randomness."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import assert_close, mg, parity, th

import minigan
import minigan.functional as F
from minigan import kernels
from minigan.tensor import Function

# --------------------------------------------------------------------------- backward and grad


def test_backward_accumulates_into_grad_across_calls():
    x = minigan.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0, 9.0])
    assert x.grad.dtype == np.float32
    assert not x.grad.requires_grad and x.grad.creator is None


def test_backward_with_explicit_gradient_and_zero_reset():
    x = minigan.tensor([[1.0, -2.0], [0.5, 4.0]], requires_grad=True)
    y = x * x
    g = minigan.tensor([[1.0, 2.0], [3.0, 4.0]])
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * g.numpy())
    x.grad.zero_()
    (x.sum() * 2).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2.0)


def test_a_gradient_of_another_dtype_takes_the_output_dtype():
    x = minigan.ones(3, requires_grad=True)
    (x * 2).backward(np.ones(3))  # float64 NumPy array for a float32 output
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), 2.0)
    (g,) = minigan.grad(x * x, x, grad_outputs=minigan.ones(3, dtype="float64"))
    assert g.dtype == np.float32


def test_backward_only_fills_leaves():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (h * h).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), 8 * x.numpy())


def test_grad_with_grad_outputs_multiple_inputs():
    a = minigan.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = minigan.tensor([0.5, -1.0], requires_grad=True)
    v = minigan.tensor([[1.0, 0.0], [2.0, -1.0]])
    y = a * b
    ga, gb = minigan.grad(y, [a, b], grad_outputs=v, retain_graph=True)
    np.testing.assert_allclose(ga.numpy(), v.numpy() * b.numpy())
    np.testing.assert_allclose(gb.numpy(), (v.numpy() * a.numpy()).sum(0))
    assert a.grad is None and b.grad is None  # grad() leaves .grad alone
    (gx,) = minigan.grad([y], [b], grad_outputs=[v])
    np.testing.assert_allclose(gx.numpy(), gb.numpy())


def test_grad_of_multiple_outputs_sums_them():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    y1, y2 = (x * x).sum(), (x * 3.0).sum()
    (g,) = minigan.grad([y1, y2], x, retain_graph=True)
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy() + 3)
    y3 = x * x
    (g,) = minigan.grad([y1, y3], [x], grad_outputs=[None, minigan.tensor([1.0, -1.0])])
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy() * np.array([2.0, 0.0]))


def test_grad_with_respect_to_an_intermediate_tensor():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = minigan.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())


def test_allow_unused():
    x = minigan.tensor([1.0], requires_grad=True)
    z = minigan.tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        minigan.grad((x * 2).sum(), [x, z])
    gx, gz = minigan.grad((x * 2).sum(), [x, z], allow_unused=True)
    np.testing.assert_array_equal(gx.numpy(), [2.0])
    assert gz is None


def test_non_scalar_output_needs_a_gradient():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="scalar"):
        minigan.grad(x * 2, x)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(minigan.tensor([1.0, 2.0, 3.0]))


def test_inputs_and_outputs_must_require_grad():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    c = minigan.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigan.grad((x * c).sum(), [x, c])
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigan.grad((c * 2).sum(), c)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (c * 2).sum().backward()
    with pytest.raises(TypeError, match="floating"):
        minigan.tensor([1, 2], requires_grad=True)


def test_second_backward_needs_retain_graph():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    y2 = (x.exp() * x).sum()
    with pytest.raises(RuntimeError, match="retain_graph"):
        minigan.grad(y2, x)
        minigan.grad(y2, x)


def test_retain_graph_allows_a_second_backward():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    expected = (np.exp(x.numpy()) * (1 + x.numpy())).astype(np.float32)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    y2 = (x * x).sum()
    (g1,) = minigan.grad(y2, x, retain_graph=True)
    (g2,) = minigan.grad(y2, x)
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())


def test_create_graph_implies_retain_graph_and_gives_higher_derivatives():
    x = minigan.tensor([0.5, -1.5], dtype="float64", requires_grad=True)
    y = (x**4).sum()
    (g,) = minigan.grad(y, x, create_graph=True)
    (gg,) = minigan.grad(g.sum(), x, create_graph=True)
    (ggg,) = minigan.grad(gg.sum(), x)
    np.testing.assert_allclose(g.numpy(), 4 * x.numpy() ** 3)
    np.testing.assert_allclose(gg.numpy(), 12 * x.numpy() ** 2)
    np.testing.assert_allclose(ggg.numpy(), 24 * x.numpy())
    y.backward()  # the graph was retained by create_graph
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy() ** 3)


def test_backward_create_graph_gives_a_differentiable_grad():
    x = minigan.tensor([2.0, 3.0], dtype="float64", requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    (gg,) = minigan.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())


# --------------------------------------------------------------------------- graph shapes


def test_a_chain_of_ten_thousand_ops():
    x = minigan.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
        y = y + 0.001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0001**5000, rtol=1e-10)
    y2 = x
    for i in range(10_000):
        y2 = F.tanh(y2) if i % 1000 == 0 else y2 * 1.0
    (g,) = minigan.grad(y2.sum(), x, retain_graph=True)
    assert np.isfinite(g.numpy()).all()
    del y2  # tearing down a deep retained graph must not overflow the stack either


def test_diamond_graph_sums_both_paths():
    xs = np.array([0.3, -1.2, 2.0], dtype=np.float32)

    def fn(x):
        a = x.exp()
        return a * 3.0 + a * a - a / (a + 1.0)

    parity(fn, fn, [xs])
    x = mg(xs)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * xs)


# a random program: each step combines earlier values (inputs of shapes (3, 4), (4,), ())
_STEPS = {
    "add": (2, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b),
    "div": (2, lambda a, b: a / (b * b + 1.0)),
    "tanh": (1, lambda a: a.tanh()),
    "sigmoid": (1, lambda a: a.sigmoid()),
    "scale": (1, lambda a: 0.5 * a - 1.0),
    "square": (1, lambda a: a**2),
    "mean0": (1, lambda a: a.mean(0, keepdim=True) if a.ndim else a),
}


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(sorted(_STEPS)), st.integers(0, 99), st.integers(0, 99)),
        min_size=1,
        max_size=25,
    ),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=30)
def test_random_programs_match_torch(steps, seed):
    """Random DAGs (values reused many times, broadcasting, reductions) against torch."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in ((3, 4), (4,), ())]

    def program(*inputs):
        values = list(inputs)
        for name, i, j in steps:
            arity, fn = _STEPS[name]
            args = (values[i % len(values)], values[j % len(values)])[:arity]
            values.append(fn(*args))
        total = values[-1].sum()
        for k, v in enumerate(values[3:]):
            total = total + (v * (0.1 * (k + 1))).sum()
        return total

    parity(program, program, arrays, rtol=1e-9, atol=1e-10)


BROADCASTS = [
    ((), (2, 3)),
    ((1, 3, 1, 1), (2, 3, 4, 5)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((4, 1, 5), (3, 1)),
    ((1,), ()),
]


@pytest.mark.parametrize("sa, sb", BROADCASTS, ids=str)
@pytest.mark.parametrize("op", ["add", "mul", "sub", "div"])
def test_broadcast_gradients_are_reduced_to_the_input_shape(sa, sb, op, rng):
    a = rng.standard_normal(sa).astype(np.float32) + 3.0
    b = rng.standard_normal(sb).astype(np.float32) + 3.0
    fn = getattr(F, op)
    tfn = getattr(torch, op)
    ma, mb = mg(a), mg(b)
    fn(ma, mb).sum().backward()
    assert ma.grad.shape == sa and mb.grad.shape == sb
    parity(fn, tfn, [a, b])
    parity(fn, tfn, [b, a])


def test_conv_bias_gradient_is_reduced_per_channel(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    bias = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    parity(lambda a, b: F.relu(a + b), lambda a, b: torch.relu(a + b), [x, bias])


# --------------------------------------------------------------------------- grad modes


def test_no_grad_records_nothing():
    w = minigan.tensor([1.0, 2.0], requires_grad=True)
    with minigan.no_grad():
        assert not minigan.is_grad_enabled()
        y = (w * 2).exp().sum()
        assert not y.requires_grad and y.creator is None
        with minigan.enable_grad():
            assert minigan.is_grad_enabled()
            z = (w * 2).sum()
            assert z.requires_grad and z.creator is not None
        assert not minigan.is_grad_enabled()
    assert minigan.is_grad_enabled()
    z.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0])


def test_no_grad_as_decorator_and_restored_after_an_exception():
    @minigan.no_grad()
    def f(t):
        return t * 2

    w = minigan.tensor([1.0], requires_grad=True)
    assert not f(w).requires_grad
    with pytest.raises(ZeroDivisionError), minigan.no_grad():
        _ = 1 / 0
    assert minigan.is_grad_enabled()
    with minigan.set_grad_enabled(False):
        assert not (w * 2).requires_grad
    with minigan.set_grad_enabled(True):
        assert (w * 2).requires_grad


def test_detach_cuts_the_graph_and_shares_data():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    d = h.detach()
    assert not d.requires_grad and d.creator is None and d.is_leaf
    assert np.shares_memory(d.data, h.data)
    y = (h * d).sum()  # d is a constant
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * d.numpy())


# --------------------------------------------------------------------------- dtypes


def _all_ops(x: minigan.Tensor) -> dict:
    """Every op applied to a (2, 3, 4, 4) input, returning a tensor of x's dtype."""
    dt = x.dtype
    w = minigan.tensor(np.full((2, 3, 3, 3), 0.1, dt))
    wt = minigan.tensor(np.full((3, 2, 3, 3), 0.1, dt))
    v = minigan.tensor(np.linspace(0.5, 1.5, 4).astype(dt))
    lin_w = minigan.tensor(np.ones((5, 4), dt))
    rm, rv = np.zeros(3, dt), np.ones(3, dt)
    scale = minigan.tensor(np.ones((2, 3), dt))
    target = minigan.tensor(np.full(x.shape, 0.5, dt))
    pos = x * x + 1.0
    return {
        "x*2.0": x * 2.0,
        "2.0-x": 2.0 - x,
        "x**2": x**2,
        "x/3": x / 3,
        "3/pos": 3 / pos,
        "x+1": x + 1,
        "2.0**x": 2.0**x,
        "-x": -x,
        "exp": x.exp(),
        "log": pos.log(),
        "sqrt": pos.sqrt(),
        "abs": x.abs(),
        "clip": x.clip(-0.5, 0.5),
        "where": F.where(x > 0, x, 0.0),
        "maximum": F.maximum(x, 0.0),
        "minimum": F.minimum(x, 1),
        "sum": x.sum(1),
        "mean": x.mean((2, 3), keepdim=True),
        "var": x.var(0),
        "std": x.std(),
        "max": x.max(-1),
        "min": x.min(),
        "logsumexp": F.logsumexp(x, 1),
        "log_softmax": F.log_softmax(x, 1),
        "softmax": F.softmax(x, -1),
        "matmul": x @ v,
        "linear": F.linear(x, lin_w, v[:1].expand(5)),
        "reshape": x.reshape(2, -1),
        "transpose": x.transpose(0, 1),
        "flatten": x.flatten(1),
        "cat": F.cat([x, x], 1),
        "stack": F.stack([x, x]),
        "split": F.split(x, 2, 2)[1],
        "pad": F.pad(x, (1, 1), value=0.5),
        "getitem": x[:, [0, 0]],
        "mask": x[x > 0],
        "relu": F.relu(x),
        "leaky_relu": F.leaky_relu(x, 0.2),
        "tanh": F.tanh(x),
        "sigmoid": F.sigmoid(x),
        "softplus": F.softplus(x),
        "dropout": F.dropout(x, 0.3),
        "conv2d": F.conv2d(x, w, v[:2], padding=1),
        "conv_transpose2d": F.conv_transpose2d(x, wt, stride=2, output_padding=1),
        "batch_norm": F.batch_norm(x, rm, rv, v[:3], v[1:], training=True),
        "batch_norm_eval": F.batch_norm(x, rm, rv, training=False),
        "instance_norm": F.instance_norm(x, v[:3], v[:3]),
        "adain": F.adain(x, scale, scale * 0.5),
        "avg_pool2d": F.avg_pool2d(x, 2),
        "max_pool2d": F.max_pool2d(x, 3, 1, 1),
        "nearest": F.upsample(x, scale_factor=1.5),
        "bilinear": F.upsample(x, scale_factor=2, mode="bilinear"),
        "bce": F.binary_cross_entropy_with_logits(x, target, pos_weight=v),
        "mse": F.mse_loss(x, target),
        "l1": F.l1_loss(x, target, reduction="sum"),
        "ce": F.cross_entropy(x, np.zeros((2, 4, 4), np.int64), label_smoothing=0.1),
        "ce_prob": F.cross_entropy(x, F.softmax(target, 1)),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_through_every_op_and_backward(dtype, rng):
    x = minigan.tensor(rng.standard_normal((2, 3, 4, 4)).astype(dtype), requires_grad=True)
    outs = _all_ops(x)
    wrong = {k: str(y.dtype) for k, y in outs.items() if y.dtype != dtype}
    assert not wrong, f"ops that changed {np.dtype(dtype)}: {wrong}"
    for name, y in outs.items():
        x.grad = None
        (g,) = minigan.grad(y.sum(), x, retain_graph=True)
        assert g.dtype == dtype, f"{name}: gradient is {g.dtype}"
        assert g.shape == x.shape
    total = None
    for y in outs.values():
        total = y.sum() if total is None else total + y.sum()
    total.backward()
    assert x.grad.dtype == dtype
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_by_second_derivatives(dtype, rng):
    x = minigan.tensor(rng.standard_normal((2, 3, 4, 4)).astype(dtype), requires_grad=True)
    w = minigan.tensor(rng.standard_normal((2, 3, 3, 3)).astype(dtype), requires_grad=True)
    y = F.batch_norm(F.conv2d(x, w), None, None, training=True)
    y = F.softplus(F.adain(F.leaky_relu(y, 0.2), x[:, :2, 0, 0], x[:, :2, 1, 1]))
    (g,) = minigan.grad(y.sum(), x, create_graph=True)
    assert g.dtype == dtype
    (g * g).sum().backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype


def test_dtype_conversion_is_differentiable():
    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and x.float() is x
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    (g,) = minigan.grad((x.to(dtype="float64") ** 3).sum(), x, create_graph=True)
    (gg,) = minigan.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())


def test_python_data_becomes_float32_and_creators_default_to_float32():
    assert minigan.tensor([1.0, 2.0]).dtype == np.float32
    assert minigan.tensor(np.zeros(2)).dtype == np.float64
    for make in (minigan.zeros, minigan.ones, minigan.randn, minigan.rand):
        assert make(2, 3).dtype == np.float32
        assert make((2, 3), dtype="float64").dtype == np.float64
    assert minigan.randn_like(minigan.zeros(2, dtype="float64")).dtype == np.float64


# --------------------------------------------------------------------------- freeing the graph


def test_intermediates_are_freed_after_backward():
    x = minigan.tensor(np.ones((100, 100), np.float32), requires_grad=True)
    h = x * 2.0
    e = h.exp()
    y = (e * h).sum()
    refs = [weakref.ref(h), weakref.ref(e)]
    creator = weakref.ref(e.creator)
    del h, e
    assert all(r() is not None for r in refs)  # held by the graph until backward
    y.backward()
    assert all(r() is None for r in refs), "intermediate tensors survive backward"
    assert creator() is None
    assert y.creator.inputs is None


def test_intermediates_are_kept_with_retain_graph():
    x = minigan.tensor(np.ones(10, np.float32), requires_grad=True)
    h = x * 2.0
    y = (h.exp() * h).sum()
    ref = weakref.ref(h)
    del h
    y.backward(retain_graph=True)
    gc.collect()
    assert ref() is not None
    y.backward()
    assert ref() is None


def test_values_no_backward_reads_are_freed_before_backward():
    """The graph keeps a tensor's values only where a backward reads them (PyTorch's saved
    tensors): add, dropout, reshape and sum read none, so a chain of them holds about one
    activation, not one per op; the gradients are unchanged."""
    import tracemalloc

    def chain(x: minigan.Tensor) -> minigan.Tensor:
        for _ in range(12):
            x = F.dropout(F.reshape(x + 1.0, (-1,)), 0.25).reshape(512, 512)
        return x

    x = minigan.tensor(np.ones((512, 512), np.float32), requires_grad=True)  # 1 MiB
    chain(x)  # compiles the kernels first (Numba's own allocations are traced too)
    tracemalloc.start()
    try:
        y = chain(x)
        live = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert live < 3 * 2**20, f"{live / 2**20:.1f} MiB live after the forward (36 ops)"
    y.sum().backward()
    # d/dx: the product of the 12 dropout scales (1/0.75 where kept, 0 where dropped)
    g = x.grad.numpy()
    kept = g != 0
    np.testing.assert_allclose(g[kept], 0.75**-12, rtol=1e-5)
    assert 0 < np.count_nonzero(kept) < g.size


def test_a_freed_output_is_rebuilt_for_the_functions_that_read_it():
    """exp, tanh, sigmoid, relu, … read their output in backward: it survives the tensor
    (which nothing else holds here), first- and second-order gradients as in closed form."""
    v = np.linspace(-2, 2, 7)
    x = minigan.tensor(v, requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h)
    y = (h + 1.0).sum()
    del h
    assert ref() is None  # add keeps only its graph node: the tensor is gone
    (g,) = minigan.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), np.exp(v), rtol=1e-12)
    (gg,) = minigan.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), np.exp(v), rtol=1e-12)


def test_leaky_relu_keeps_a_sign_mask_but_checks_its_input():
    v = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    x = minigan.tensor(v, requires_grad=True)
    h = x * 3.0
    ref = weakref.ref(h)
    y = F.leaky_relu(h, 0.2).sum()
    del h
    assert ref() is None  # leaky ReLU kept x > 0 (bool), not x
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(v > 0, 3.0, 0.6))
    h = x * 3.0
    y = F.leaky_relu(h, 0.2).sum()
    h.data += 1  # as in PyTorch, which saves x: an in-place change of x raises
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_reading_values_a_function_did_not_save_fails_clearly():
    class Wrong(Function):
        saved_inputs = ()  # but backward reads x's values

        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2 * minigan.Tensor(self.inputs[0].data)

    x = minigan.tensor([1.0, 2.0], requires_grad=True)
    y = Wrong()(x * 1.0).sum()
    with pytest.raises(RuntimeError, match="saved_inputs"):
        y.backward()


def test_grad_frees_the_graph_but_create_graph_keeps_it():
    x = minigan.tensor(np.ones(10, np.float64), requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    ref = weakref.ref(h)
    del h
    (g,) = minigan.grad(y, x, create_graph=True)
    assert ref() is not None  # g's graph needs it
    del g, y
    assert ref() is None  # no reference cycles: freed without the garbage collector


def test_no_grad_results_hold_no_graph():
    x = minigan.tensor(np.ones(10, np.float32), requires_grad=True)
    with minigan.no_grad():
        h = x * 2.0
    assert h.creator is None and not h.requires_grad


# --------------------------------------------------------------------------- pruning


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count calls of the conv kernels (minigan.functional calls them through the module)."""
    calls = {"conv2d": 0, "conv2d_grad_input": 0, "conv2d_grad_weight": 0}
    for name in calls:
        original = getattr(kernels, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(kernels, name, counting)
    return calls


def test_grad_wrt_input_does_not_compute_weight_gradients(kernel_calls, rng):
    x = minigan.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w1 = minigan.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    w2 = minigan.tensor(rng.standard_normal((2, 4, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.conv2d(F.leaky_relu(F.conv2d(x, w1, padding=1), 0.2), w2, stride=2).sum()
    assert kernel_calls["conv2d"] == 2
    (gx,) = minigan.grad(y, x, retain_graph=True)
    assert kernel_calls["conv2d_grad_weight"] == 0
    assert kernel_calls["conv2d_grad_input"] == 2
    (gw2,) = minigan.grad(y, w2, retain_graph=True)
    assert kernel_calls["conv2d_grad_weight"] == 1  # only the last layer's weight
    assert kernel_calls["conv2d_grad_input"] == 2  # nothing flows below w2's conv
    y.backward()
    assert kernel_calls["conv2d_grad_weight"] == 3
    # the same with torch: values agree
    tx, tw1, tw2 = th(x.numpy()), th(w1.numpy()), th(w2.numpy())
    ty = TF.conv2d(TF.leaky_relu(TF.conv2d(tx, tw1, padding=1), 0.2), tw2, stride=2).sum()
    ty.backward()
    assert_close(gx, tx.grad, rtol=1e-4, atol=1e-4)
    assert_close(w1.grad, tw1.grad, rtol=1e-4, atol=1e-3)


def test_r1_gradient_does_not_compute_weight_gradients(kernel_calls, rng):
    x = minigan.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
    w = minigan.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    (g,) = minigan.grad(F.softplus(F.conv2d(x, w)).sum(), x, create_graph=True)
    assert kernel_calls["conv2d_grad_weight"] == 0
    (g * g).sum().backward()
    assert kernel_calls["conv2d_grad_weight"] >= 1
    assert w.grad is not None


def test_constants_get_no_gradient_computed(kernel_calls, rng):
    x = minigan.tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))  # data, no grad
    w = minigan.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert kernel_calls["conv2d_grad_input"] == 0
    assert kernel_calls["conv2d_grad_weight"] == 1
    assert x.grad is None


# --------------------------------------------------------------------------- randomness


def test_manual_seed_makes_random_tensors_reproducible():
    minigan.manual_seed(7)
    a = [minigan.randn(3, 4).numpy(), minigan.rand(5).numpy(), F.dropout(minigan.ones(50)).numpy()]
    minigan.manual_seed(7)
    b = [minigan.randn(3, 4).numpy(), minigan.rand(5).numpy(), F.dropout(minigan.ones(50)).numpy()]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    minigan.manual_seed(8)
    assert not np.array_equal(minigan.randn(3, 4).numpy(), a[0])
    r = minigan.rand(10_000).numpy()
    assert r.min() >= 0 and r.max() < 1
    n = minigan.randn(10_000).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05
    assert math.isfinite(float(n.sum()))
