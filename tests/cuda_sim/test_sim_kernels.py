"""The CUDA kernels run under Numba's CUDA simulator and compared with the CPU kernels.

The simulator is chosen when ``numba`` is first imported, from ``NUMBA_ENABLE_CUDASIM=1`` in
the environment, so this module only runs in a process started with it:
``tests/test_cuda_kernels.py::test_simulator`` starts that process (``python -m pytest`` on
this file); by hand: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda_sim``. Collected in
an ordinary run (simulator off), the module skips itself before it imports ``numba.cuda``.

The simulator runs each GPU thread as a Python thread, so the shapes are tiny and the tile
and block sizes shrunk (a 4x4 tile of 2x2 threads, 8-thread norm blocks); every code path of
the full-size kernels still runs: ragged edge tiles, several reduction tiles, several stride
phases, split reductions. CuPy is not involved: the ``launch_*`` functions take Numba device
arrays, exactly as the CuPy host functions hand them over.

On a machine with a GPU, ``MINIGAN_TEST_CUDA=gpu python -m pytest tests/cuda_sim`` (simulator
off) runs the same comparisons on the hardware, with the production tile shapes and norm
block size added to the small ones — races and shared-memory mistakes that the
simulator's thread scheduling can hide show up there.
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
from minigan.kernels.cuda import conv, norm  # noqa: E402
from minigan.kernels.cuda.conv import ConvGeometry, Tiles  # noqa: E402

# Small tiles: 2x2 threads with 2x2 register tiles (a 4x4 block tile), and an uneven one.
SIM_TILES = [Tiles(tx=2, ty=2, rm=2, rn=2, bk=4), Tiles(tx=4, ty=2, rm=1, rn=2, bk=4)]
TILE_IDS = ["t4x4", "t2x8"]
NORM_THREADS = 8
if REAL_GPU:  # on hardware, the tiles and block size the kernels really run with as well
    SIM_TILES += list(conv.TILE_CHOICES.values())
    TILE_IDS += list(conv.TILE_CHOICES)
    NORM_THREADS = norm.THREADS

# (x_shape, w_shape, stride, padding, dilation)
CONV_CASES = {
    "odd-sizes": ((2, 3, 5, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1)),
    "stride2-pad1": ((1, 2, 7, 7), (3, 2, 3, 3), (2, 2), (1, 1), (1, 1)),
    "dilation2": ((2, 2, 7, 6), (2, 2, 3, 2), (1, 1), (2, 1), (2, 2)),
    "single-channel-k4s2": ((3, 1, 6, 5), (1, 1, 4, 4), (2, 2), (1, 1), (1, 1)),
    "batch1-mixed": ((1, 3, 8, 9), (2, 3, 3, 2), (2, 3), (1, 0), (2, 1)),
    "output-padding": ((2, 2, 8, 8), (3, 2, 5, 5), (2, 2), (2, 2), (1, 1)),
    "stride3-dil2-empty-phases": ((1, 2, 7, 7), (2, 2, 2, 2), (3, 3), (0, 0), (2, 2)),
    "1x1-stride2": ((2, 3, 5, 5), (4, 3, 1, 1), (2, 2), (0, 0), (1, 1)),
}


def dev(a: np.ndarray):
    """A flat device copy of ``a`` (what ``launch.as_device`` makes of a CuPy array)."""
    return cuda.to_device(np.ascontiguousarray(a).reshape(-1))


def empty(n: int, dtype) -> object:
    return cuda.device_array(n, dtype=dtype)


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """float32 tolerance relative to the reference's magnitude (float64: much tighter)."""
    tol = 2e-5 if expected.dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol * 5, atol=tol * scale)


def conv_inputs(case: str, rng: np.random.Generator, dtype=np.float32):
    x_shape, w_shape, s, p, d = CONV_CASES[case]
    g = ConvGeometry.of(x_shape, w_shape, s, p, d)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal((g.N, g.O, g.OH, g.OW)).astype(dtype)
    return g, x, w, gy, (s, p, d)


# ------------------------------------------------------------------------------ convolution


@pytest.mark.parametrize("tiles", SIM_TILES, ids=TILE_IDS)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_forward(case, tiles, rng):
    g, x, w, _, spd = conv_inputs(case, rng)
    y = empty(g.N * g.O * g.OH * g.OW, x.dtype)
    conv.launch_forward(dev(x), dev(w), y, g, tiles=tiles)
    assert_close(y.copy_to_host().reshape(g.N, g.O, g.OH, g.OW), cpu.conv2d(x, w, *spd))


@pytest.mark.parametrize("tiles", SIM_TILES, ids=TILE_IDS)
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_grad_input(case, tiles, rng):
    g, x, w, gy, spd = conv_inputs(case, rng)
    # Filled with NaN first: every input pixel must be written, including unreached ones.
    gx = dev(np.full(x.shape, np.nan, dtype=x.dtype))
    conv.launch_grad_input(dev(gy), dev(w), gx, g, tiles=tiles)
    expected = cpu.conv2d_grad_input(gy, w, x.shape, *spd)
    assert_close(gx.copy_to_host().reshape(x.shape), expected)


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_grad_weight(case, splits, rng):
    tiles = SIM_TILES[0]
    g, x, w, gy, spd = conv_inputs(case, rng)
    chunk = -(-g.P // splits)
    chunk = -(-chunk // tiles.bk) * tiles.bk  # a multiple of BK, as grad_weight_splits makes
    splits = -(-g.P // chunk)
    gw = empty(w.size, x.dtype)
    part = empty(splits * w.size, x.dtype)
    conv.launch_grad_weight(dev(x), dev(gy), gw, part, g, splits, chunk, tiles=tiles)
    expected = cpu.conv2d_grad_weight(x, gy, w.shape, *spd)
    assert_close(gw.copy_to_host().reshape(w.shape), expected)


@pytest.mark.parametrize("case", ["odd-sizes", "batch1-mixed", "output-padding"])
def test_im2col_strategy(case, rng):
    """The im2col + GEMM strategy (the GEMM on the host here, cuBLAS on a GPU)."""
    g, x, w, gy, spd = conv_inputs(case, rng)
    cols = empty(g.K * g.P, x.dtype)
    conv.launch_im2col(dev(x), cols, g)
    cols = cols.copy_to_host().reshape(g.K, g.P)
    y = (w.reshape(g.O, g.K) @ cols).reshape(g.O, g.N, g.OH, g.OW).transpose(1, 0, 2, 3)
    assert_close(y, cpu.conv2d(x, w, *spd))
    gy_cm = gy.reshape(g.N, g.O, -1).transpose(1, 0, 2).reshape(g.O, g.P)
    assert_close((gy_cm @ cols.T).reshape(w.shape), cpu.conv2d_grad_weight(x, gy, w.shape, *spd))
    gx = empty(x.size, x.dtype)
    conv.launch_col2im(dev(w.reshape(g.O, g.K).T @ gy_cm), gx, g)
    assert_close(gx.copy_to_host().reshape(x.shape), cpu.conv2d_grad_input(gy, w, x.shape, *spd))


def test_conv_float64(rng):
    tiles = SIM_TILES[0]
    g, x, w, gy, spd = conv_inputs("stride2-pad1", rng, np.float64)
    y = empty(g.N * g.O * g.OH * g.OW, x.dtype)
    conv.launch_forward(dev(x), dev(w), y, g, tiles=tiles)
    assert_close(y.copy_to_host().reshape(gy.shape), cpu.conv2d(x, w, *spd))
    gx = empty(x.size, x.dtype)
    conv.launch_grad_input(dev(gy), dev(w), gx, g, tiles=tiles)
    assert_close(gx.copy_to_host().reshape(x.shape), cpu.conv2d_grad_input(gy, w, x.shape, *spd))


# ------------------------------------------------------------------ batch norm and AdaIN

# (shape, offset): offset 1e4 checks the shifted sums against cancellation.
BN_CASES = {
    "odd": ((2, 3, 3, 5), 0.0),
    "batch1-single-channel": ((1, 1, 4, 4), 0.0),
    "1x1-spatial": ((5, 2, 1, 1), 0.0),
    "offset": ((4, 2, 5, 3), 1e4),
}
ADAIN_CASES = {
    "odd": ((2, 3, 3, 5), 0.0),
    "batch1-single-channel": ((1, 1, 4, 4), 0.0),
    "offset": ((2, 2, 6, 5), 1e4),
}


def norm_data(shape, offset, rng, dtype=np.float32):
    x = (offset + rng.standard_normal(shape)).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    return x, gy


def run_forward(x, scale, bias, shape3, splits, eps=1e-5):
    A, G, S = shape3
    chunk = -(-A * S // splits)
    splits = -(-A * S // chunk)
    y, mean, invstd = empty(x.size, x.dtype), empty(G, x.dtype), empty(G, x.dtype)
    part = empty(G * splits * 2, x.dtype)
    norm.launch_forward(
        dev(x), dev(scale), dev(bias), part, y, mean, invstd, shape3, splits, chunk, eps,
        threads=NORM_THREADS,
    )
    return y.copy_to_host().reshape(x.shape), mean.copy_to_host(), invstd.copy_to_host()


def run_backward(gy, x, scale, mean, invstd, shape3, splits):
    A, G, S = shape3
    chunk = -(-A * S // splits)
    splits = -(-A * S // chunk)
    gx, gscale, gbias = empty(x.size, x.dtype), empty(G, x.dtype), empty(G, x.dtype)
    part = empty(G * splits * 3, x.dtype)
    norm.launch_backward(
        dev(gy), dev(x), dev(scale), dev(mean), dev(invstd), part, gx, gscale, gbias,
        shape3, splits, chunk, threads=NORM_THREADS,
    )
    return gx.copy_to_host().reshape(x.shape), gscale.copy_to_host(), gbias.copy_to_host()


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("case", list(BN_CASES))
def test_batch_norm(case, splits, rng):
    shape, offset = BN_CASES[case]
    x, gy = norm_data(shape, offset, rng)
    N, C = shape[:2]
    gamma = rng.standard_normal(C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    shape3 = (N, C, x[0, 0].size)

    y, mean, invstd = run_forward(x, gamma, beta, shape3, splits)
    ry, rmean, rinvstd = cpu.batch_norm_forward(x, gamma, beta, 1e-5)
    assert_close(y, ry)
    assert_close(mean, rmean)
    assert_close(invstd, rinvstd)

    gx, ggamma, gbeta = run_backward(gy, x, gamma, rmean, rinvstd, shape3, splits)
    rgx, rggamma, rgbeta = cpu.batch_norm_backward(gy, x, gamma, rmean, rinvstd)
    assert_close(gx, rgx)
    assert_close(ggamma, rggamma)
    assert_close(gbeta, rgbeta)


@pytest.mark.parametrize("case", list(ADAIN_CASES))
def test_adain(case, rng):
    shape, offset = ADAIN_CASES[case]
    x, gy = norm_data(shape, offset, rng)
    N, C = shape[:2]
    scale = rng.standard_normal((N, C)).astype(np.float32)
    bias = rng.standard_normal((N, C)).astype(np.float32)
    shape3 = (1, N * C, x[0, 0].size)

    y, mean, invstd = run_forward(x, scale, bias, shape3, splits=1)
    ry, rmean, rinvstd = cpu.adain_forward(x, scale, bias, 1e-5)
    assert_close(y, ry)
    assert_close(mean.reshape(N, C), rmean)
    assert_close(invstd.reshape(N, C), rinvstd)

    gx, gscale, gbias = run_backward(gy, x, scale, rmean, rinvstd, shape3, splits=2)
    rgx, rgscale, rgbias = cpu.adain_backward(gy, x, scale, rmean, rinvstd)
    assert_close(gx, rgx)
    assert_close(gscale.reshape(N, C), rgscale)
    assert_close(gbias.reshape(N, C), rgbias)


def test_norm_float64(rng):
    x, gy = norm_data((3, 2, 4, 3), 1e4, rng, np.float64)
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    y, mean, invstd = run_forward(x, gamma, beta, (3, 2, 12), splits=2)
    ry, rmean, rinvstd = cpu.batch_norm_forward(x, gamma, beta, 1e-5)
    assert_close(y, ry)
    assert_close(invstd, rinvstd)
    gx, _, _ = run_backward(gy, x, gamma, rmean, rinvstd, (3, 2, 12), splits=2)
    assert_close(gx, cpu.batch_norm_backward(gy, x, gamma, rmean, rinvstd)[0])


def test_batch_norm_eval(rng):
    x, _ = norm_data((3, 2, 3, 5), 0.0, rng)
    gamma, beta = rng.standard_normal(2).astype(np.float32), np.zeros(2, np.float32)
    rmean, rvar = rng.standard_normal(2).astype(np.float32), np.array([0.5, 2.0], np.float32)
    y = empty(x.size, x.dtype)
    shape3 = (3, 2, 15)
    norm.launch_eval(
        dev(x), dev(gamma), dev(beta), dev(rmean), dev(rvar), y, shape3, 2, 23, 1e-5,
        threads=NORM_THREADS,
    )
    view = (1, 2, 1, 1)
    expected = (x - rmean.reshape(view)) / np.sqrt(rvar.reshape(view) + 1e-5)
    expected = expected * gamma.reshape(view) + beta.reshape(view)
    assert_close(y.copy_to_host().reshape(x.shape), expected)
