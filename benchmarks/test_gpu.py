"""minigan's CUDA kernels against PyTorch CUDA (cuDNN) at DCGAN / StyleGAN layer sizes.

Run on a machine with an NVIDIA GPU, CuPy, numba-cuda and a CUDA build of PyTorch::

    pytest benchmarks/test_gpu.py --benchmark

Skipped without ``--benchmark`` (benchmarks/conftest.py) and, with it, when there is no GPU.
The CUDA kernels are called directly (``minigan.kernels.cuda``; the dispatch in
``minigan.kernels`` adds only a type check). Inputs are shared with PyTorch through DLPack.
PyTorch runs with TF32 *off* (Numba-CUDA has no tensor-core path, so that is the
like-for-like comparison); convolution rows also show PyTorch with TF32 on, separately.
Every row first checks that both sides agree, then times ``WARMUP`` calls of each and
``REPS`` alternating pairs with CUDA events (the GPU time between two events on the stream,
not host time), and reports the best time.
Two calibration rows come first: the device-to-device copy bandwidth (the ceiling of the norm
kernels) and cuBLAS SGEMM (the FP32 ceiling the convolutions can approach). The last rows are
whole DCGAN training steps (``DCGAN(device="cuda").train_step`` against the same step in
PyTorch eager, as benchmarks/test_dcgan_step.py does on the CPU): the events then also
measure the host's launch overhead whenever the GPU waits for it.

The table is printed at the end of the module and written to
``benchmarks/results/gpu-<date>.json`` (or ``$MINIGAN_BENCH_RESULTS``) with the device name and
versions, next to its markdown table and ratio chart (report.py). Convolution rows
also record which strategy the autotuner picked and what each candidate measured.
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pytest

cp = pytest.importorskip("cupy")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("GPU benchmarks need a CUDA build of PyTorch and a GPU", allow_module_level=True)
try:
    cp.cuda.runtime.getDeviceCount()
except Exception as e:  # CuPy installed, no usable driver or device
    pytest.skip(f"GPU benchmarks need a GPU CuPy can use ({e})", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402
from report import save  # noqa: E402  (benchmarks/report.py)

import minigan.kernels.cuda as K  # noqa: E402
from minigan.backend import is_cupy_array  # noqa: E402

WARMUP, REPS = 3, 10

# (N, C, O, H, k, stride, pad): the same DCGAN layers as the CPU benchmarks (test_kernels.py).
CONV_LAYERS = [
    (256, 1, 64, 28, 5, 2, 2),
    (256, 64, 128, 14, 5, 2, 2),
    (256, 256, 128, 7, 5, 1, 2),
    (64, 128, 256, 16, 4, 2, 1),
    (64, 3, 64, 64, 4, 2, 1),
]
BN_SHAPES = [(256, 256, 7, 7), (256, 128, 14, 14), (64, 512, 4, 4), (32, 64, 128, 128)]
ADAIN_SHAPES = [(32, 256, 8, 8), (32, 128, 32, 32), (32, 64, 128, 128)]
D1 = (1, 1)


@dataclass
class GpuRow:
    name: str
    minigan_ms: float
    torch_ms: float
    work: float  # FLOP or bytes
    unit: str  # "GFLOP/s" or "GB/s"
    minigan_median_ms: float = 0.0
    torch_median_ms: float = 0.0
    torch_tf32_ms: float | None = None
    strategy: str | None = None
    candidates_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.minigan_ms / self.torch_ms

    @property
    def rate(self) -> float:
        per_second = self.work / (self.minigan_ms * 1e-3)
        return per_second if self.unit == "img/s" else per_second / 1e9


ROWS: list[GpuRow] = []


# ------------------------------------------------------------------------------- timing


def _cupy_ms(fn: Callable[[], object]) -> float:
    """GPU milliseconds of one call of ``fn`` on CuPy's current stream."""
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    fn()
    end.record()
    end.synchronize()
    return float(cp.cuda.get_elapsed_time(start, end))


def _torch_ms(fn: Callable[[], object]) -> float:
    """GPU milliseconds of one call of ``fn`` on PyTorch's current stream."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def compare(
    name: str, ours: Callable[[], object], theirs: Callable[[], object], work: float, unit: str,
    tf32: bool = False,
) -> GpuRow:
    """Time both sides with CUDA events: warm-up, then alternating repetitions."""
    for _ in range(WARMUP):
        ours()
        theirs()
    a, b = [], []
    for _ in range(REPS):  # alternate, so clock and thermal drift hit both sides alike
        a.append(_cupy_ms(ours))
        b.append(_torch_ms(theirs))
    row = GpuRow(name, min(a), min(b), work, unit, statistics.median(a), statistics.median(b))
    if tf32:
        torch.backends.cudnn.allow_tf32 = True
        try:
            for _ in range(WARMUP):
                theirs()
            row.torch_tf32_ms = min(_torch_ms(theirs) for _ in range(REPS))
        finally:
            torch.backends.cudnn.allow_tf32 = False
    ROWS.append(row)
    return row


@pytest.fixture(scope="module", autouse=True)
def _gpu_setup_and_report(request: pytest.FixtureRequest):
    """TF32 off for the whole module; the table and JSON report at the end."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    if ROWS:
        _report(request.config)


def _report(config: pytest.Config) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    write = tr.write_line if tr else print
    device = torch.cuda.get_device_name()
    write("")
    write(f"minigan / PyTorch CUDA (TF32 off) on {device}, best of {REPS} (CUDA events)")
    write(f"{'benchmark':<50} {'minigan ms':>10} {'torch ms':>9} {'ratio':>6} {'rate':>16}"
          f" {'tf32 ms':>8}  strategy")
    for r in ROWS:
        tf32 = f"{r.torch_tf32_ms:8.3f}" if r.torch_tf32_ms is not None else " " * 8
        write(f"{r.name:<50} {r.minigan_ms:10.3f} {r.torch_ms:9.3f} {r.ratio:6.2f} "
              f"{r.rate:8.1f} {r.unit:<7} {tf32}  {r.strategy or ''}")
    import numba_cuda

    stamp = dt.datetime.now().astimezone()
    report = {
        "device": device,
        "date": stamp.isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cupy": cp.__version__,
            "numba-cuda": numba_cuda.__version__,
            "torch": torch.__version__,
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "cudnn": torch.backends.cudnn.version(),
        },
        "rows": [{**asdict(r), "ratio": r.ratio, "rate": r.rate} for r in ROWS],
    }
    path = save(report, "gpu", stamp)
    write(f"results written to {path} (and .md, .png)")


# -------------------------------------------------------------------------------- helpers

_RNG = np.random.default_rng(0)


def randn(*shape: int):
    """A float32 CuPy array and the PyTorch tensor sharing its memory."""
    a = cp.asarray(_RNG.standard_normal(shape, dtype=np.float32))
    return a, torch.from_dlpack(a)


def check(ours, theirs) -> None:
    assert is_cupy_array(ours)
    ref = cp.from_dlpack(theirs.detach().contiguous())
    scale = float(cp.abs(ref).max())
    np.testing.assert_allclose(cp.asnumpy(ours), cp.asnumpy(ref), rtol=1e-3, atol=1e-3 * scale)


def conv_id(layer) -> str:
    n, c, o, h, k, s, p = layer
    return f"N{n} {c}->{o} {h}x{h} k{k} s{s} p{p}"


# ---------------------------------------------------------------------------- calibration


def test_calibration_copy_and_sgemm():
    """Device-to-device copy bandwidth and cuBLAS SGEMM rate: the two ceilings."""
    n = 64 * 2**20  # 256 MB of float32
    src, dst = cp.ones(n, dtype=cp.float32), cp.empty(n, dtype=cp.float32)
    tsrc, tdst = torch.from_dlpack(src), torch.from_dlpack(dst)
    compare("calibration: D2D copy 256 MB", lambda: cp.copyto(dst, src),
            lambda: tdst.copy_(tsrc), 2.0 * src.nbytes, "GB/s")
    m = 4096
    a, ta = randn(m, m)
    b, tb = randn(m, m)
    compare("calibration: SGEMM 4096^3 (cupy vs torch)", lambda: cp.matmul(a, b),
            lambda: torch.matmul(ta, tb), 2.0 * m**3, "GFLOP/s")


# ---------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("layer", CONV_LAYERS, ids=conv_id)
@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
def test_conv2d(layer, op):
    from minigan.kernels.cuda import conv

    n, c, o, h, k, s, p = layer
    S, P = (s, s), (p, p)
    x, tx = randn(n, c, h, h)
    w, tw = randn(o, c, k, k)
    g = conv.ConvGeometry.of(x.shape, w.shape, S, P, D1)
    gy, tgy = randn(g.N, g.O, g.OH, g.OW)
    flop = 2.0 * n * o * c * k * k * g.OH * g.OW

    if op == "forward":
        ours = lambda: K.conv2d(x, w, S, P, D1)  # noqa: E731
        theirs = lambda: F.conv2d(tx, tw, stride=S, padding=P)  # noqa: E731
    elif op == "grad_input":
        ours = lambda: K.conv2d_grad_input(gy, w, x.shape, S, P, D1)  # noqa: E731
        theirs = lambda: torch.nn.grad.conv2d_input(x.shape, tw, tgy, S, P)  # noqa: E731
    else:
        ours = lambda: K.conv2d_grad_weight(x, gy, w.shape, S, P, D1)  # noqa: E731
        theirs = lambda: torch.nn.grad.conv2d_weight(tx, w.shape, tgy, S, P)  # noqa: E731
    check(ours(), theirs())  # the first call also runs the autotuner for this shape
    row = compare(f"conv2d {op:<11} {conv_id(layer)}", ours, theirs, flop, "GFLOP/s", tf32=True)
    key = (op, g, np.dtype(np.float32).str)  # the autotuner's key for this call
    row.strategy = conv.AUTOTUNER.choices.get(key)
    row.candidates_ms = {k: v * 1e3 for k, v in conv.AUTOTUNER.timings.get(key, {}).items()}


# ------------------------------------------------------------------- batch norm and AdaIN


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_fwd_bwd(shape):
    c = shape[1]
    x, tx = randn(*shape)
    gy, tgy = randn(*shape)
    gamma, tg = randn(c)
    beta, tb = randn(c)

    def ours():
        y, mean, invstd = K.batch_norm_forward(x, gamma, beta, 1e-5)
        return K.batch_norm_backward(gy, x, gamma, mean, invstd)

    def theirs():
        ax, ag, ab = (a.detach().requires_grad_() for a in (tx, tg, tb))
        F.batch_norm(ax, None, None, ag, ab, training=True, eps=1e-5).backward(tgy)
        return ax.grad, ag.grad, ab.grad

    for a, b in zip(ours(), theirs(), strict=True):
        check(a, b)
    compare(f"batch_norm fwd+bwd {shape}", ours, theirs, 5.0 * x.nbytes, "GB/s")


@pytest.mark.parametrize("shape", BN_SHAPES[:2], ids=str)
def test_batch_norm_eval(shape):
    c = shape[1]
    x, tx = randn(*shape)
    gamma, tg = randn(c)
    beta, tb = randn(c)
    rmean, trm = randn(c)
    rvar = cp.abs(randn(c)[0]) + 0.5
    trv = torch.from_dlpack(rvar)
    ours = lambda: K.batch_norm_inference(x, gamma, beta, rmean, rvar, 1e-5)  # noqa: E731
    theirs = lambda: F.batch_norm(tx, trm, trv, tg, tb, training=False, eps=1e-5)  # noqa: E731
    check(ours(), theirs())
    compare(f"batch_norm eval {shape}", ours, theirs, 2.0 * x.nbytes, "GB/s")


@pytest.mark.parametrize("shape", ADAIN_SHAPES, ids=str)
def test_adain_fwd_bwd(shape):
    n, c = shape[:2]
    x, tx = randn(*shape)
    gy, tgy = randn(*shape)
    scale, ts = randn(n, c)
    bias, tb = randn(n, c)

    def ours():
        y, mean, invstd = K.adain_forward(x, scale, bias, 1e-5)
        return K.adain_backward(gy, x, scale, mean, invstd)

    def theirs():  # AdaIN as PyTorch users write it: instance norm, then per-sample affine
        ax, as_, ab = (a.detach().requires_grad_() for a in (tx, ts, tb))
        y = F.instance_norm(ax, eps=1e-5) * as_[:, :, None, None] + ab[:, :, None, None]
        y.backward(tgy)
        return ax.grad, as_.grad, ab.grad

    for a, b in zip(ours(), theirs(), strict=True):
        check(a, b)
    compare(f"adain fwd+bwd {shape}", ours, theirs, 5.0 * x.nbytes, "GB/s")


# ------------------------------------------------------------------------- training step


@pytest.mark.parametrize("resolution, batch", [(28, 256), (64, 64)])
def test_dcgan_train_step(resolution, batch):
    from test_dcgan_step import torch_train_step  # benchmarks/test_dcgan_step.py

    import minigan
    from minigan.plugins.dcgan import DCGAN
    from minigan.train import read_metrics

    minigan.manual_seed(0)
    channels = 1 if resolution == 28 else 3
    model = DCGAN(image_shape=(channels, resolution, resolution), device="cuda")
    real_np = _RNG.uniform(-1, 1, (batch, channels, resolution, resolution)).astype(np.float32)
    real = minigan.tensor(real_np, device="cuda")
    torch_step = torch_train_step(model, torch.from_dlpack(real.data))
    metrics = model.train_step(real)  # the first step pays compilation and autotuning
    assert all(np.isfinite(v) for v in read_metrics([metrics])[0].values())
    compare(f"DCGAN train step {resolution}x{resolution} batch {batch}",
            lambda: model.train_step(real), torch_step, batch, "img/s")  # fmt: skip
