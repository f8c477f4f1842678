"""Tensors on ``device="cuda"`` through the real CUDA backend, under Numba's CUDA simulator.

:func:`minigan.testing.fake_cuda` with ``kernels="simulator"`` puts the NumPy-backed CuPy
stand-in in place of CuPy: tensors hold device arrays that refuse implicit conversion to
NumPy, the CUDA host functions of ``minigan.kernels.cuda`` allocate with it, and their Numba-CUDA
kernels run in the simulator. So these tests check the whole path from a layer call to a
kernel launch and back — argument layouts (non-contiguous inputs, missing affine parameters),
output allocation on the device, no host round-trip — against the same layers on the CPU.
Tiles are shrunk for the simulator, as in test_sim_host.py. Run by
tests/test_cuda_kernels.py::test_simulator in a process with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip(
        "CUDA simulator tests: run in a subprocess by tests/test_cuda_kernels.py::test_simulator",
        allow_module_level=True,
    )

import minigan  # noqa: E402
import minigan.functional as F  # noqa: E402
from minigan import nn  # noqa: E402
from minigan.kernels.cuda import conv, norm  # noqa: E402
from minigan.kernels.cuda.conv import Tiles  # noqa: E402
from minigan.kernels.cuda.launch import Autotuner  # noqa: E402
from minigan.testing import fake_cuda  # noqa: E402


@pytest.fixture
def cuda(monkeypatch):
    monkeypatch.setattr(conv, "TILE_CHOICES", {"igemm64": Tiles(2, 2, 2, 2, 4),
                                               "igemm128": Tiles(4, 2, 1, 2, 4)})  # fmt: skip
    monkeypatch.setattr(conv, "ELEMENTWISE_THREADS", 16)
    monkeypatch.setattr(conv, "MIN_SPLIT_PIXELS", 8)
    monkeypatch.setattr(norm, "THREADS", 8)
    with fake_cuda(kernels="simulator") as transfers:
        yield transfers


def _run(make_layer, arrays, device):
    minigan.manual_seed(0)
    layer = make_layer().to(device)
    xs = [minigan.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = layer(*xs)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(minigan.tensor(gy, device=device))
    grads = [x.grad for x in xs] + [p.grad for p in layer.parameters()]
    return [y.numpy()] + [g.numpy() for g in grads]


class Styled(nn.Module):
    """AdaIN with styles from a linear layer, on a transposed (non-contiguous) input."""

    def __init__(self) -> None:
        super().__init__()
        self.affine = nn.Linear(4, 6)

    def forward(self, x, w):
        style = self.affine(w)
        return F.adain(x.permute(0, 1, 3, 2), style[:, :3], style[:, 3:])


# each convolution with one of the three strategies (timing them all would triple the time)
LAYERS = {
    "conv_stride2": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), [(2, 2, 5, 4)]),
    "conv_dilated_1x1_out": (lambda: nn.Conv2d(2, 1, 3, dilation=2, bias=False), [(1, 2, 5, 6)]),
    "conv_transpose": (lambda: nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1), [(1, 2, 3, 2)]),
    "batch_norm_leaky": (
        lambda: nn.Sequential(nn.BatchNorm2d(3), nn.LeakyReLU(0.2)),
        [(3, 3, 4, 5)],
    ),  # fmt: skip
    "batch_norm_no_affine": (lambda: nn.BatchNorm2d(2, affine=False), [(2, 2, 3, 3)]),
    "adain": (Styled, [(2, 3, 5, 4), (2, 4)]),
}


STRATEGY = {"conv_stride2": "igemm64", "conv_dilated_1x1_out": "igemm128",
            "conv_transpose": "im2col"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_cuda_matches_cpu(cuda, monkeypatch, name):
    monkeypatch.setattr(conv, "AUTOTUNER", Autotuner(force=STRATEGY.get(name)))
    make, shapes = LAYERS[name]
    rng = np.random.default_rng(2)
    arrays = [(rng.standard_normal(s) + 3.0).astype(np.float32) for s in shapes]
    expected = _run(make, arrays, "cpu")
    cuda.reset()
    actual = _run(make, arrays, "cuda")
    # what went back to the host: only the results this test reads, one get() each
    assert cuda.device_to_host == len(expected), cuda.reads
    for i, (a, e) in enumerate(zip(actual, expected)):
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5 * scale, err_msg=f"{name}: #{i}")


def test_eval_mode_batch_norm_uses_running_statistics(cuda):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = {}
    for device in ("cpu", "cuda"):
        bn = nn.BatchNorm2d(3).to(device)
        bn(minigan.tensor(x * 2 + 1, device=device))  # one training step of statistics
        bn.eval()
        out[device] = (bn(minigan.tensor(x, device=device)).numpy(), bn.running_var.numpy())
    for a, e in zip(out["cuda"], out["cpu"]):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_autotuner_times_the_strategies_with_cuda_events(cuda, monkeypatch):
    tuner = Autotuner(env="MINIGAN_TEST_UNSET_VARIABLE")
    monkeypatch.setattr(conv, "AUTOTUNER", tuner)
    x = np.random.default_rng(4).standard_normal((1, 2, 3, 3)).astype(np.float32)
    layer = nn.Conv2d(2, 2, 1, bias=False)
    expected = layer(minigan.tensor(x)).numpy()
    y = layer.to("cuda")(minigan.tensor(x, device="cuda"))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    (timings,) = tuner.timings.values()
    assert sorted(timings) == ["igemm128", "igemm64", "im2col"]
    assert all(0 < t < 60 for t in timings.values())
