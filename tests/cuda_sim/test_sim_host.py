"""The CuPy host functions of minigan.kernels.cuda, end to end under the CUDA simulator.

CuPy cannot run here, so NumPy stands in for it: ``cupy_module()`` returns NumPy, and
``as_device`` wraps the NumPy array *without copying* in the simulator's device-array type, so
a kernel writes straight into the array the host function returns — the aliasing that
``__cuda_array_interface__`` gives with CuPy. Everything else is the real host code: shape
checks, output allocation, launch planning (with a pretend 4-SM device), the autotuner and
the im2col + GEMM strategy. Tile and block sizes are shrunk for the simulator.
See test_sim_kernels.py for how this module is run.
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

from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray  # noqa: E402

import minigan.kernels.cpu as cpu  # noqa: E402
import minigan.kernels.cuda as kcuda  # noqa: E402
from minigan.kernels.cuda import conv, norm  # noqa: E402
from minigan.kernels.cuda.conv import Tiles  # noqa: E402
from minigan.kernels.cuda.launch import Autotuner  # noqa: E402

SMALL_TILES = {"igemm64": Tiles(2, 2, 2, 2, 4), "igemm128": Tiles(4, 2, 1, 2, 4)}


def _fake_device(a: np.ndarray) -> FakeCUDAArray:
    assert a.flags.c_contiguous
    return FakeCUDAArray(a.reshape(-1))  # a view: kernels write into `a`


@pytest.fixture(autouse=True)
def numpy_as_cupy(monkeypatch):
    for mod in (conv, norm):
        monkeypatch.setattr(mod, "cupy_module", lambda: np)
        monkeypatch.setattr(mod, "as_device", _fake_device)
        monkeypatch.setattr(mod, "current_stream", lambda: None)
        monkeypatch.setattr(mod, "sm_count", lambda: 4)
    monkeypatch.setattr(conv, "TILE_CHOICES", SMALL_TILES)
    monkeypatch.setattr(conv, "ELEMENTWISE_THREADS", 16)
    monkeypatch.setattr(conv, "MIN_SPLIT_PIXELS", 8)  # so grad-weight splits its reduction
    monkeypatch.setattr(norm, "THREADS", 8)


def assert_close(actual, expected) -> None:
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale)


@pytest.mark.parametrize("strategy", ["igemm64", "igemm128", "im2col"])
def test_conv_host_functions(monkeypatch, strategy, rng):
    monkeypatch.setattr(conv, "AUTOTUNER", Autotuner(timer=lambda fn: 0.0, force=strategy))
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    spd = ((2, 1), (1, 1), (1, 2))
    y = kcuda.conv2d(x, w, *spd)
    assert_close(y, cpu.conv2d(x, w, *spd))
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = kcuda.conv2d_grad_input(gy, w, x.shape, *spd)
    assert_close(gx, cpu.conv2d_grad_input(gy, w, x.shape, *spd))
    gw = kcuda.conv2d_grad_weight(x, gy, w.shape, *spd)
    assert_close(gw, cpu.conv2d_grad_weight(x, gy, w.shape, *spd))


def test_conv_autotuner_runs_every_candidate_then_the_winner(monkeypatch, rng):
    timings = {"igemm64": 3.0, "igemm128": 2.0, "im2col": 1.0}
    seen: list[str] = []

    def timer(fn) -> float:
        fn()
        name = next(n for n in timings if n not in seen)  # candidates are timed in order
        seen.append(name)
        return timings[name]

    tuner = Autotuner(timer=timer, env="MINIGAN_TEST_UNSET_VARIABLE")
    monkeypatch.setattr(conv, "AUTOTUNER", tuner)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    args = ((1, 1), (0, 0), (1, 1))
    assert_close(kcuda.conv2d(x, w, *args), cpu.conv2d(x, w, *args))
    assert list(tuner.choices.values()) == ["im2col"]
    assert_close(kcuda.conv2d(x, w, *args), cpu.conv2d(x, w, *args))
    assert len(seen) == 3  # measured once


def test_conv_shape_mismatch_is_an_error():
    gy = np.zeros((1, 2, 3, 3), np.float32)
    w = np.zeros((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="does not match"):
        kcuda.conv2d_grad_input(gy, w, (1, 1, 9, 9), (1, 1), (0, 0), (1, 1))


def test_batch_norm_host_functions(rng):
    x = (100 + rng.standard_normal((4, 2, 8, 8))).astype(np.float32)  # splits: 2 per channel
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = rng.standard_normal(2).astype(np.float32), None
    out = kcuda.batch_norm_forward(x, gamma, beta, 1e-5)
    ref = cpu.batch_norm_forward(x, gamma, beta, 1e-5)
    for a, b in zip(out, ref, strict=True):
        assert_close(a, b)
    out = kcuda.batch_norm_backward(gy, x, None, ref[1], ref[2])
    ref = cpu.batch_norm_backward(gy, x, None, ref[1], ref[2])
    for a, b in zip(out, ref, strict=True):
        assert_close(a, b)
    rmean, rvar = np.array([99.0, 101.0], np.float32), np.array([0.5, 2.0], np.float32)
    y = kcuda.batch_norm_inference(x, gamma, None, rmean, rvar, 1e-5)
    view = (1, 2, 1, 1)
    expected = (x - rmean.reshape(view)) / np.sqrt(rvar.reshape(view) + 1e-5) * gamma.reshape(view)
    assert_close(y, expected)


def test_adain_host_functions(rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    scale = rng.standard_normal((2, 3)).astype(np.float32)
    bias = rng.standard_normal((2, 3)).astype(np.float32)
    out = kcuda.adain_forward(x, scale, bias, 1e-5)
    ref = cpu.adain_forward(x, scale, bias, 1e-5)
    for a, b in zip(out, ref, strict=True):
        assert a.shape == b.shape
        assert_close(a, b)
    out = kcuda.adain_backward(gy, x, scale, ref[1], ref[2])
    ref = cpu.adain_backward(gy, x, scale, ref[1], ref[2])
    for a, b in zip(out, ref, strict=True):
        assert a.shape == b.shape
        assert_close(a, b)

