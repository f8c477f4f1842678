"""Grouped and depthwise convolution in the CUDA kernels, under Numba's CUDA simulator,
against the CPU kernels: the three implicit-GEMM kernels (groups as a grid dimension, ragged
channel tiles per group, several stride phases, a split grad-weight reduction) and the CuPy
host functions of every strategy (im2col: one batched GEMM over the groups). Run like
test_sim_kernels.py (in a child process by tests/test_cuda_kernels.py::test_simulator); on a
GPU, ``MINIGAN_TEST_CUDA=gpu python -m pytest tests/cuda_sim/test_sim_grouped.py`` runs the
kernel comparisons on the hardware.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

REAL_GPU = os.environ.get("MINIGAN_TEST_CUDA") == "gpu"
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not REAL_GPU:
    pytest.skip(
        "CUDA simulator tests: run in a subprocess by tests/test_cuda_kernels.py::test_simulator",
        allow_module_level=True,
    )

from numba import cuda  # noqa: E402

import minigan.kernels.cpu as cpu  # noqa: E402
import minigan.kernels.cuda as kcuda  # noqa: E402
from minigan.kernels.cuda import conv  # noqa: E402
from minigan.kernels.cuda.conv import ConvGeometry, Tiles  # noqa: E402
from minigan.kernels.cuda.launch import Autotuner  # noqa: E402

TILES = Tiles(tx=2, ty=2, rm=2, rn=2, bk=4)  # a 4x4 block tile: groups of 6 channels are ragged
# (x_shape, w_shape, stride, padding, dilation, groups)
CASES = {
    "groups2": ((2, 4, 5, 6), (6, 2, 3, 3), (1, 1), (1, 1), (1, 1), 2),
    "groups3-stride2": ((1, 6, 7, 7), (6, 2, 3, 3), (2, 2), (1, 1), (1, 1), 3),
    "depthwise-x2-dil2": ((2, 3, 6, 7), (6, 1, 3, 2), (1, 2), (2, 1), (2, 1), 3),
    "depthwise-wide": ((1, 6, 5, 5), (6, 1, 3, 3), (1, 1), (1, 1), (1, 1), 6),
}


def dev(a: np.ndarray):
    return cuda.to_device(np.ascontiguousarray(a).reshape(-1))


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale)


def inputs(case: str):
    x_shape, w_shape, s, p, d, groups = CASES[case]
    rng = np.random.default_rng(0)
    g = ConvGeometry.of(x_shape, w_shape, s, p, d, groups)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    gy = rng.standard_normal((g.N, g.O, g.OH, g.OW)).astype(np.float32)
    return g, x, w, gy, (s, p, d, groups)


@pytest.mark.parametrize("case", list(CASES))
def test_grouped_kernels_match_the_cpu(case):
    g, x, w, gy, args = inputs(case)
    y = cuda.device_array(g.N * g.O * g.OH * g.OW, np.float32)
    conv.launch_forward(dev(x), dev(w), y, g, tiles=TILES)
    assert_close(y.copy_to_host().reshape(gy.shape), cpu.conv2d(x, w, *args))
    gx = dev(np.full(x.shape, np.nan, np.float32))  # every input pixel must be written
    conv.launch_grad_input(dev(gy), dev(w), gx, g, tiles=TILES)
    assert_close(gx.copy_to_host().reshape(x.shape), cpu.conv2d_grad_input(gy, w, x.shape, *args))
    expected = cpu.conv2d_grad_weight(x, gy, w.shape, *args)
    for splits in (1, 3):
        per_split = -(-g.P // splits)
        chunk = -(-per_split // TILES.bk) * TILES.bk  # a multiple of BK
        n_splits = -(-g.P // chunk)
        gw = cuda.device_array(w.size, np.float32)
        part = cuda.device_array(n_splits * w.size, np.float32)
        conv.launch_grad_weight(dev(x), dev(gy), gw, part, g, n_splits, chunk, tiles=TILES)
        assert_close(gw.copy_to_host().reshape(w.shape), expected)


def test_geometry_rejects_a_weight_that_does_not_fit_the_groups():
    with pytest.raises(ValueError, match="groups=2"):
        ConvGeometry.of((1, 4, 5, 5), (6, 4, 3, 3), (1, 1), (0, 0), (1, 1), 2)


def _fake_device(a: np.ndarray):
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    assert a.flags.c_contiguous
    return FakeCUDAArray(a.reshape(-1))


@pytest.mark.skipif(REAL_GPU, reason="NumPy stands in for CuPy: simulator only")
@pytest.mark.parametrize("strategy", ["igemm64", "im2col"])
@pytest.mark.parametrize("case", ["groups3-stride2", "depthwise-x2-dil2"])
def test_grouped_host_functions(monkeypatch, strategy, case):
    monkeypatch.setattr(conv, "cupy_module", lambda: np)
    monkeypatch.setattr(conv, "as_device", _fake_device)
    monkeypatch.setattr(conv, "current_stream", lambda: None)
    monkeypatch.setattr(conv, "sm_count", lambda: 4)
    monkeypatch.setattr(conv, "TILE_CHOICES", {"igemm64": TILES})
    monkeypatch.setattr(conv, "ELEMENTWISE_THREADS", 16)
    monkeypatch.setattr(conv, "MIN_SPLIT_PIXELS", 8)
    monkeypatch.setattr(conv, "AUTOTUNER", Autotuner(timer=lambda fn: 0.0, force=strategy))
    g, x, w, gy, args = inputs(case)
    assert_close(kcuda.conv2d(x, w, *args), cpu.conv2d(x, w, *args))
    assert_close(
        kcuda.conv2d_grad_input(gy, w, x.shape, *args), cpu.conv2d_grad_input(gy, w, x.shape, *args)
    )
    assert_close(
        kcuda.conv2d_grad_weight(x, gy, w.shape, *args),
        cpu.conv2d_grad_weight(x, gy, w.shape, *args),
    )
