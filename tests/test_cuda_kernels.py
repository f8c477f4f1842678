"""The CUDA kernels, checked on a machine without a GPU.

1. PTX: every kernel (float32 and float64, every tile shape the autotuner may pick) is compiled
   to PTX for compute capability 8.0 and 9.0 with ``numba.cuda.compile_ptx``, so a kernel that
   does not type-check fails here, not on a user's GPU. The float32 PTX must contain no
   float64 instruction (accumulation really is float32), and the GEMM kernels no local-memory
   traffic (their register tiles stayed in registers).
2. Simulator: ``test_simulator`` runs ``tests/cuda_sim`` in a child process started with
   ``NUMBA_ENABLE_CUDASIM=1``. The variable must be set before ``numba`` is first imported,
   which in this process happened long ago (conftest imports minigan, which imports the Numba
   CPU kernels); a child process is the one robust way to get a fresh import. Its output is
   shown when it fails.
3. Host logic that needs no GPU: lazy imports, the error without CuPy, launch planning, and the
   autotuner's caching (with a fake timer).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigan.kernels.cuda as kcuda
from minigan.kernels.cuda.launch import Autotuner, cdiv, split_count

HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(
    not HAS_NUMBA_CUDA, reason="numba-cuda is not installed: pip install 'numba-cuda[cu13]'"
)
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- imports


def test_import_does_not_import_cupy_or_numba_cuda():
    code = (
        "import sys, minigan, minigan.kernels, minigan.kernels.cuda as k\n"
        "assert k.handles(0) is False\n"
        "bad = [m for m in ('cupy', 'numba.cuda') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_handles_recognises_cupy_arrays_by_module():
    fake = type("ndarray", (), {"__module__": "cupy._core.core"})()
    assert kcuda.handles(fake)
    assert not kcuda.handles(np.zeros(2, np.float32))


@needs_numba_cuda
def test_without_cupy_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    fake = type("ndarray", (), {"__module__": "cupy._core.core"})()
    with pytest.raises(RuntimeError, match=r"minigan\[cuda\]"):
        kcuda.conv2d(fake, fake, (1, 1), (0, 0), (1, 1))
    with pytest.raises(RuntimeError, match=r"minigan\[cuda\]"):
        kcuda.batch_norm_forward(fake, None, None, 1e-5)


# -------------------------------------------------------------------------------------- PTX


def _kernel_specs() -> list[tuple[str, object, object]]:
    """``(id, python function, signature)`` for every kernel, dtype and tile shape."""
    if not HAS_NUMBA_CUDA:
        return []
    from minigan.kernels.cuda import conv, norm

    specs = []
    for dtype in ("float32", "float64"):
        for mod in (conv, norm):
            for name, (fn, sig) in mod.kernel_specs(dtype).items():
                specs.append((f"{name}-{dtype}", fn, sig))
    # The other tile shape the autotuner may choose (float32 only: the data type of training).
    for tname, tiles in conv.TILE_CHOICES.items():
        if tiles != conv.DEFAULT_TILES:
            for name, (fn, sig) in conv.kernel_specs("float32", tiles).items():
                if name.startswith("conv2d_"):
                    specs.append((f"{name}-float32-{tname}", fn, sig))
    return specs


@pytest.fixture(scope="module")
def compile_ptx():
    """``numba.cuda.compile_ptx``, or a skip when the CUDA compiler (NVVM) is not installed."""
    if not HAS_NUMBA_CUDA:
        pytest.skip("numba-cuda is not installed: pip install 'numba-cuda[cu13]'")
    from numba import cuda, types

    def trivial(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(trivial, types.void(types.float32[::1]), cc=(8, 0))
    except Exception as e:  # a kernel this small can only fail for want of NVVM/libdevice
        pytest.skip(f"numba.cuda.compile_ptx is unavailable ({type(e).__name__}: {e}); "
                    "install the compiler wheels: pip install 'numba-cuda[cu13]'")
    return cuda.compile_ptx


SPECS = _kernel_specs()


@pytest.mark.parametrize("cc", [(8, 0), (9, 0)], ids=["sm80", "sm90"])
@pytest.mark.parametrize("spec", SPECS, ids=[s[0] for s in SPECS])
def test_kernel_compiles_to_ptx(compile_ptx, spec, cc):
    name, fn, sig = spec
    ptx, _ = compile_ptx(fn, sig, cc=cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    if "float32" in name:
        f64 = [line for line in ptx.splitlines() if ".f64" in line]
        assert not f64, f"float64 arithmetic in a float32 kernel: {f64[:3]}"
    if name.startswith("conv2d_"):
        assert ".local" not in ptx, "register tile spilled to local memory"


# -------------------------------------------------------------------------------- simulator


@needs_numba_cuda
def test_simulator():
    """All of tests/cuda_sim in a fresh process with the CUDA simulator on (~1.5 min)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    cmd = [sys.executable, "-m", "pytest", "tests/cuda_sim", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"simulator tests failed:\n{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}")
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]


# ---------------------------------------------------------------- host logic, no GPU needed


def test_autotuner_measures_once_per_key_and_caches():
    calls: list[str] = []
    costs = {"igemm": 2.0, "im2col": 1.0}

    def fake_timer(fn) -> float:
        return costs[fn()]

    def candidate(name: str):
        def run() -> str:
            calls.append(name)
            return name

        return run

    tuner = Autotuner(timer=fake_timer, env="MINIGAN_TEST_UNSET_VARIABLE")
    cands = {"igemm": candidate("igemm"), "im2col": candidate("im2col")}
    assert tuner.pick("shape-a", cands) == "im2col"
    assert sorted(calls) == ["igemm", "im2col"]
    assert tuner.timings["shape-a"] == costs
    calls.clear()
    costs["igemm"] = 0.5  # a later change of speed is not re-measured for a known key
    assert tuner.pick("shape-a", cands) == "im2col"
    assert calls == []
    assert tuner.pick("shape-b", cands) == "igemm"  # a new key is measured
    assert sorted(calls) == ["igemm", "im2col"]


def test_autotuner_ties_single_candidates_and_forcing(monkeypatch):
    timer_calls = []

    def timer(fn) -> float:
        timer_calls.append(fn)
        return 1.0

    tuner = Autotuner(timer=timer, env="MINIGAN_TEST_CONV")
    assert tuner.pick("k", {"b": lambda: None, "a": lambda: None}) == "a"  # tie: by name
    timer_calls.clear()
    assert tuner.pick("one", {"only": lambda: None}) == "only"
    assert timer_calls == []  # nothing to compare, nothing timed
    monkeypatch.setenv("MINIGAN_TEST_CONV", "b")
    assert tuner.pick("k2", {"a": lambda: None, "b": lambda: None}) == "b"
    assert timer_calls == []
    monkeypatch.setenv("MINIGAN_TEST_CONV", "nope")
    with pytest.raises(ValueError, match="MINIGAN_TEST_CONV"):
        tuner.pick("k3", {"a": lambda: None})


def test_autotuner_skips_failing_candidates():
    def oom():
        raise MemoryError("im2col buffer")

    tuner = Autotuner(timer=lambda fn: fn() or 1.0, env="MINIGAN_TEST_UNSET_VARIABLE")
    assert tuner.pick("k", {"im2col": oom, "igemm": lambda: None}) == "igemm"
    assert tuner.pick("k2", {"im2col": oom}) == "im2col"  # one candidate: nothing is timed
    with pytest.raises(MemoryError):
        tuner.pick("k3", {"a": oom, "b": oom})


@pytest.mark.parametrize("groups,length", [(1, 10**6), (64, 32 * 128 * 128), (8192, 64), (3, 5)])
def test_split_count(groups, length):
    splits = split_count(groups, length, min_length=4096, n_sm=132)
    assert splits >= 1
    assert splits == 1 or length // splits >= 4096
    if groups >= 4 * 132:
        assert splits == 1


@needs_numba_cuda
@pytest.mark.parametrize(
    "x_shape,w_shape,s",
    [((256, 64, 14, 14), (128, 64, 5, 5), 2), ((1, 1, 3, 3), (1, 1, 3, 3), 1),
     ((64, 128, 16, 16), (256, 128, 4, 4), 2)],
)
def test_grad_weight_splits_cover_every_pixel_once(x_shape, w_shape, s):
    from minigan.kernels.cuda import conv

    g = conv.ConvGeometry.of(x_shape, w_shape, (s, s), (1, 1), (1, 1))
    for tiles in conv.TILE_CHOICES.values():
        splits, chunk = conv.grad_weight_splits(g, tiles, n_sm=132)
        assert chunk % tiles.bk == 0
        assert (splits - 1) * chunk < g.P <= splits * chunk


@needs_numba_cuda
def test_norm_plan_covers_every_item_once():
    from minigan.kernels.cuda import norm

    for A, G, S in [(32, 64, 128 * 128), (256, 256, 49), (1, 2048, 64), (1, 1, 1)]:
        splits, chunk = norm.plan(A, G, S, n_sm=132)
        assert (splits - 1) * chunk < A * S <= splits * chunk


@needs_numba_cuda
def test_conv_geometry_and_tiles_validation():
    from minigan.kernels.cuda import conv

    g = conv.ConvGeometry.of((2, 3, 7, 7), (4, 3, 3, 3), (2, 2), (1, 1), (1, 1))
    assert (g.OH, g.OW, g.K, g.P) == (4, 4, 27, 32)
    assert len(g.args) == 16  # the 15 sizes and the groups G
    with pytest.raises(ValueError, match="empty output"):
        conv.ConvGeometry.of((1, 1, 2, 2), (1, 1, 5, 5), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="tile"):
        conv.Tiles(tx=2, ty=2, rm=2, rn=4, bk=4)  # threads not a multiple of BN
    assert cdiv(7, 2) == 4
