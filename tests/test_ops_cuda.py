"""The ops of issue 17 on the ``"cuda"`` device path, compared with the same computation on
the CPU: outputs, first derivatives and (for a representative subset) second derivatives,
results staying on the device, and no device reads where an op needs none.

As in test_cuda_device.py: by default through :func:`minigan.testing.fake_cuda` (CuPy's
rules on NumPy, host <-> device copies counted); with ``MINIGAN_TEST_CUDA=gpu`` on real CuPy.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import minigan
import minigan.functional as F
from minigan import nn, optim
from minigan.backend import is_cupy_array
from minigan.optim import lr_scheduler
from minigan.testing import fake_cuda

REAL_GPU = os.environ.get("MINIGAN_TEST_CUDA") == "gpu"


@pytest.fixture
def cuda():
    """The copy counts of the stand-in, or None on a real GPU."""
    if REAL_GPU:
        minigan.backend.cupy()
        yield None
        return
    with fake_cuda() as transfers:
        yield transfers


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, err_msg=""):
    if REAL_GPU:
        scale = max(1.0, float(np.abs(np.asarray(expected)).max(initial=0.0)))
        rtol, atol = max(rtol, 1e-3), max(atol, 1e-4 * scale)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


rng = np.random.default_rng(17)


def _r(*shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


IDX = np.array([[2, 0, 1], [1, 1, 0]])
TARGET = np.array([0, 2, -100, 1])

# name -> (function of the tensors, arrays, reads the device in the forward pass)
OPS = {
    "activations": (
        lambda a: (
            F.gelu(a)
            + F.gelu(a, "tanh")
            + F.silu(a)
            + F.elu(a, 0.5)
            + F.selu(a)
            + F.celu(a, 1.5)
            + F.mish(a)
            + F.hardtanh(a)
            + F.relu6(a * 4)
            + F.hardswish(a * 3)
            + F.hardsigmoid(a * 3)
            + F.softsign(a)
            + F.logsigmoid(a)
        ),
        [_r(3, 5)],
        False,
    ),  # fmt: skip
    "math": (
        lambda a, b: (
            F.sin(a) * F.cos(b)
            + F.erf(a)
            + F.rsqrt(b * b + 1)
            + F.log2(b * b + 1)
            + F.log10(b * b + 2)
            + F.exp2(a)
            + F.lerp(a, b, 0.3)
            + F.lerp(a, b, F.sigmoid(b))
            + (a % 0.7)
            + (a // 0.5)
            + F.round(a)
            + F.floor(a)
            + F.ceil(a)
            + F.sign(a)
        ),
        [_r(4, 3), _r(4, 3)],
        False,
    ),  # fmt: skip
    "indexing": (
        lambda a, s: (
            F.gather(a, 1, minigan.tensor(IDX, device=a.device))
            + F.scatter(a, 1, minigan.tensor(IDX[:, :2] * 0 + [[0, 1]], device=a.device), s)[:, :3]
            + F.scatter_add(a, 1, minigan.tensor(IDX, device=a.device), s)[:, 1:]
            + F.index_select(a, 1, minigan.tensor([3, 0, 0], device=a.device))
            + a.masked_fill(a > 0.5, -1.0)[:, :3]
        ),
        [_r(2, 4), _r(2, 3)],
        False,
    ),  # fmt: skip
    "shapes": (
        lambda a: (
            F.flip(a, (0, 2)).reshape(-1)[:24]
            + F.roll(a, (1, -2), (1, 2)).reshape(-1)
            + a.repeat(2, 1, 1).reshape(-1)[:24]
            + F.repeat_interleave(a, 2, 1).reshape(-1)[::2]
            + F.tril(a, -1).reshape(-1)
            + F.triu(a).reshape(-1)
            + F.cumsum(a, 2).reshape(-1)
            + F.cat(F.chunk(a, 3, 1), 1).reshape(-1)
            + a.unflatten(2, (2, 2)).reshape(-1)
        ),
        [_r(2, 3, 4)],
        False,
    ),  # fmt: skip
    "einsum": (
        lambda a, b: F.einsum("bij,bjk->bik", a, b).sum(-1) + F.einsum("bii->bi", a[:, :, :3]),
        [_r(2, 3, 4), _r(2, 4, 5)],
        False,
    ),  # fmt: skip
    "reductions": (
        lambda a: (
            F.prod(a, 1)
            + a.sort(1).values[:, 0]
            + a.topk(2, 1).values.sum(1)
            + F.logsumexp(a, 1) * a.argmax(1).float()
            + a.sum(axis=1)
        ),
        [_r(3, 4)],
        False,
    ),  # fmt: skip
    "losses": (
        lambda a, p: (
            F.cross_entropy(a, TARGET, label_smoothing=0.1)
            + F.nll_loss(
                F.log_softmax(a, 1), TARGET, weight=minigan.tensor([1.0, 2.0, 0.5], device=a.device)
            )
            + F.binary_cross_entropy(F.sigmoid(p), F.sigmoid(a).detach())
            + F.smooth_l1_loss(a, p, beta=0.5)
            + F.kl_div(F.log_softmax(a, 1), F.softmax(p, 1).detach(), reduction="batchmean")
        ),
        [_r(4, 3), _r(4, 3)],
        True,  # the class-index and probability range checks read the device once each
    ),  # fmt: skip
    "embedding": (
        lambda w: (
            F.embedding(
                minigan.tensor([[1, 3], [3, 0]], device=w.device),
                w,
                padding_idx=0,
                scale_grad_by_freq=True,
            )
            * 2
        ),
        [_r(4, 3)],
        True,  # the index range check
    ),  # fmt: skip
}


def _run(fn, arrays, device, second_order=False):
    minigan.manual_seed(7)
    xs = [minigan.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = fn(*xs)
    assert y.device == device
    gy = minigan.tensor(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32),
                        device=device)  # fmt: skip
    if not second_order:
        y.backward(gy)
        return [y.numpy()] + [x.grad.numpy() for x in xs]
    grads = minigan.grad((y * gy).sum(), xs, create_graph=True)
    penalty = sum((g * g).sum() for g in grads)
    penalty.backward()
    return [penalty.numpy()] + [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_on_cuda_matches_cpu(cuda, name):
    fn, arrays, reads = OPS[name]
    expected = _run(fn, arrays, "cpu")
    if cuda is not None:
        cuda.reset()
    actual = _run(fn, arrays, "cuda")
    if cuda is not None and not reads:
        # the reads are the explicit .numpy() copies of the output and of each gradient
        assert cuda.device_to_host == 1 + len(arrays), cuda.reads
    for what, a, e in zip(["output"] + [f"grad {i}" for i in range(len(arrays))], actual, expected):
        assert_close(a, e, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {what}")


@pytest.mark.parametrize("name", ["activations", "math", "einsum", "reductions", "losses"])
def test_second_derivatives_on_cuda_match_cpu(cuda, name):
    fn, arrays, _ = OPS[name]
    expected = _run(fn, arrays, "cpu", second_order=True)
    actual = _run(fn, arrays, "cuda", second_order=True)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, rtol=1e-4, atol=1e-4, err_msg=f"{name}: {i}")


def test_creation_comparisons_and_integer_ops_on_cuda(cuda):
    made = [
        minigan.arange(5, device="cuda"),
        minigan.linspace(0, 1, 4, device="cuda"),
        minigan.eye(3, device="cuda"),
        minigan.full((2,), 1.5, device="cuda"),
        minigan.empty(2, device="cuda"),
        minigan.randint(0, 4, (3,), device="cuda"),
    ]
    for t in made:
        assert t.device == "cuda" and is_cupy_array(t.data)
    x = minigan.tensor([[1.0, -2.0], [np.nan, 4.0]], device="cuda")
    checks = {
        "eq": (x == 4.0, [[False, False], [False, True]]),
        "lt": (x < 0, [[False, True], [False, False]]),
        "logical": ((x > 0) & ~x.isnan() | (x == -2.0), [[True, True], [False, True]]),
        "isfinite": (x.isfinite(), [[True, True], [False, True]]),
        "any_all": (F.stack([(x > 0).any(1), (x > -5).all(1)]), [[True, True], [True, False]]),
        "argsort": (F.argsort(minigan.tensor([3, 1, 2], device="cuda")), [1, 2, 0]),
        "one_hot": (F.one_hot(minigan.tensor([1, 0], device="cuda"), 2), [[0, 1], [1, 0]]),
        "int_ops": (minigan.tensor([7, -7], device="cuda") // 2 % 3, [0, 2]),
        "full_like": (minigan.full_like(x, 2.0)[0], [2.0, 2.0]),
    }
    for name, (got, expected) in checks.items():
        assert got.device == "cuda", name
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=name)
    assert F.equal(x[0], minigan.tensor([1.0, -2.0], device="cuda"))


def test_modules_optimizers_and_schedules_on_cuda(cuda):
    def train(device):
        minigan.manual_seed(0)
        model = nn.Sequential(nn.Embedding(6, 4, padding_idx=0), nn.GELU(), nn.Linear(4, 3),
                              nn.SiLU()).to(device)  # fmt: skip
        opts = [
            optim.AdamW(model[0].parameters(), lr=0.05),
            optim.RMSprop(model[2].parameters(), lr=0.01, momentum=0.5, centered=True),
        ]
        schedules = [
            lr_scheduler.CosineAnnealingLR(opts[0], T_max=4),
            lr_scheduler.StepLR(opts[1], step_size=2),
        ]
        tokens = minigan.tensor([[1, 2, 0], [5, 3, 3]], device=device)
        for _ in range(4):
            loss = F.cross_entropy(model(tokens).reshape(-1, 3), np.array([0, 1, 2, 2, 1, 0]))
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o, s in zip(opts, schedules):
                o.step()
                s.step()
        assert all(p.device == device for p in model.parameters())
        return [p.numpy() for p in model.parameters()]

    for a, e in zip(train("cuda"), train("cpu")):
        assert_close(a, e, rtol=1e-4, atol=1e-5)
