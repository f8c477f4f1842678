"""Fused elementwise kernels on the CPU: one parallel Numba pass instead of NumPy's chains.

NumPy evaluates ``x * where(x > 0, 1, slope)`` as three passes over memory with two
temporaries, single-threaded; each kernel here reads its inputs once and writes its output
once, on every core (benchmarks/NOTES.md: leaky ReLU on a DCGAN activation 25 ms → 1.5 ms).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def _leaky_relu(x, slope, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@njit(parallel=True, cache=True, nogil=True)
def _leaky_relu_backward(gy, x, slope, gx):
    for i in prange(x.size):
        g = gy[i]
        gx[i] = g if x[i] > 0 else g * slope


@njit(parallel=True, cache=True, nogil=True)
def _dropout(x, u, p, scale, y):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        y[i] = x[i] * scale if u[i] >= p else zero


def _flat(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def leaky_relu(x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere."""
    y = np.empty(x.shape, x.dtype)
    _leaky_relu(_flat(x, x.dtype), x.dtype.type(negative_slope), y.reshape(-1))
    return y


def leaky_relu_backward(gy: np.ndarray, x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``gy`` where ``x > 0``, ``negative_slope * gy`` elsewhere."""
    gx = np.empty(gy.shape, gy.dtype)
    _leaky_relu_backward(
        _flat(gy, gy.dtype), _flat(x, x.dtype), gy.dtype.type(negative_slope), gx.reshape(-1)
    )
    return gx


def dropout(x: np.ndarray, u: np.ndarray, p: float) -> np.ndarray:
    """``x / (1 - p)`` where the uniform draw ``u >= p``, 0 elsewhere (``u`` shaped like x)."""
    y = np.empty(x.shape, x.dtype)
    scale = x.dtype.type(1 / (1 - p))
    _dropout(_flat(x, x.dtype), _flat(u, u.dtype), u.dtype.type(p), scale, y.reshape(-1))
    return y
