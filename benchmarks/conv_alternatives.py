"""Two convolution formulations measured against im2row + GEMM and PyTorch (NOTES items 33-34).

::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv_alternatives.py

- *shifted GEMM* (stride-1 3x3, padding 1): the input channels-last and padded to width W+2,
  each of the 9 taps one GEMM of a contiguous slice of it, accumulated with beta = 1 through
  the ``cblas_sgemm`` of NumPy's OpenBLAS — no packed row matrix. One thread, as a prototype.
- *phase split* (stride 2): four stride-1 convolutions of the input's even/odd rows and
  columns with the matching sub-kernels, summed.

Prints best-of-7 milliseconds for each shape; both formulations are checked against
minigan's convolution first. A research script: it needs PyTorch and NumPy's bundled OpenBLAS.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_limits

import minigan.kernels.cpu.conv as CC
from minigan.kernels.cpu import threads


def _cblas_sgemm() -> Callable[..., None]:
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    lib = ctypes.CDLL(str(next(libs.glob("libscipy_openblas64_*.so"))))
    fn = lib.scipy_cblas_sgemm64_
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    fn.argtypes = [ctypes.c_int] * 3 + [i64] * 3 + [f32, ptr, i64, ptr, i64, f32, ptr, i64]
    fn.restype = None
    return fn


SGEMM = _cblas_sgemm()


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, beta: float) -> None:
    """``c = a @ b + beta * c`` (row-major; ``a`` may be a row-strided view)."""
    (m, k), n = a.shape, b.shape[1]
    lda, ldb, ldc = a.strides[0] // 4, b.strides[0] // 4, c.strides[0] // 4
    SGEMM(101, 111, 111, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
          c.ctypes.data, ldc)  # fmt: skip


def shifted_gemm_conv3x3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Stride 1, padding 1: nine accumulated GEMMs over contiguous slices of the input."""
    n, c, h, wd = x.shape
    wp = wd + 2
    xp = np.zeros((n, h + 3, wp, c), np.float32)  # one spare row keeps the last slice inside
    xp[:, 1 : h + 1, 1 : wd + 1] = x.transpose(0, 2, 3, 1)
    taps = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (3, 3, C, O)
    out = np.empty((n, h * wp, w.shape[0]), np.float32)
    flat = xp.reshape(n, -1, c)
    for i in range(n):
        for t in range(9):
            off = (t // 3) * wp + t % 3
            gemm(flat[i, off : off + h * wp], taps[t // 3, t % 3], out[i], 0.0 if t == 0 else 1.0)
    return out.reshape(n, h, wp, -1)[:, :, :wd].transpose(0, 3, 1, 2)


def phase_split_conv(x: np.ndarray, w: np.ndarray, p: int) -> np.ndarray:
    """Stride 2, padding ``p``: four stride-1 phase convolutions, summed."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh = (x.shape[2] + 2 * p - w.shape[2]) // 2 + 1
    ow = (x.shape[3] + 2 * p - w.shape[3]) // 2 + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), np.float32)
    for r in range(2):
        for q in range(2):
            xs = np.ascontiguousarray(xp[:, :, r::2, q::2])
            ws = np.ascontiguousarray(w[:, :, r::2, q::2])
            y += CC.conv2d(xs, ws, (1, 1), (0, 0), (1, 1))[:, :, :oh, :ow]
    return y


def best_ms(fn: Callable[..., object], *args: object, reps: int = 7) -> float:
    fn(*args)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def check(ours: np.ndarray, ref: np.ndarray) -> None:
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    assert err < 1e-5, f"formulation differs from minigan's convolution: {err:.1e}"


def main() -> None:
    rng = np.random.default_rng(0)
    print("shifted GEMM, 3x3 stride 1, one thread (ms): shifted / im2row / torch")
    threads.set_num_threads(1)
    torch.set_num_threads(1)
    for n, c, h, o in [(32, 32, 32, 32), (32, 32, 16, 32), (8, 64, 64, 64)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        with threadpool_limits(1):
            check(shifted_gemm_conv3x3(x, w), CC.conv2d(x, w, (1, 1), (1, 1), (1, 1)))
            a = best_ms(shifted_gemm_conv3x3, x, w)
            b = best_ms(CC.conv2d, x, w, (1, 1), (1, 1), (1, 1))
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        t = best_ms(TF.conv2d, tx, tw, None, 1, 1)
        print(f"  {(n, c, h, o)}: {a:.2f} / {b:.2f} / {t:.2f}")
    threads.set_num_threads(threads._default_threads())
    torch.set_num_threads(threads.num_threads())
    print("phase split, stride 2, all threads (ms): phases / im2row / torch")
    for n, c, h, o, k, p in [(256, 64, 14, 128, 5, 2), (256, 128, 7, 256, 5, 2),
                             (64, 128, 16, 256, 4, 1), (64, 64, 32, 128, 4, 1)]:  # fmt: skip
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((o, c, k, k)).astype(np.float32)
        check(phase_split_conv(x, w, p), CC.conv2d(x, w, (2, 2), (p, p), (1, 1)))
        a = best_ms(phase_split_conv, x, w, p)
        b = best_ms(CC.conv2d, x, w, (2, 2), (p, p), (1, 1))
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        t = best_ms(TF.conv2d, tx, tw, None, 2, p)
        print(f"  {(n, c, h, o, k)}: {a:.1f} / {b:.1f} / {t:.1f}")


if __name__ == "__main__":
    main()
