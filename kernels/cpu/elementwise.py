"""Fused elementwise kernels on the CPU: one parallel Numba pass instead of NumPy's chains.

NumPy evaluates ``x * where(x > 0, 1, slope)`` as three passes over memory with two
temporaries, single-threaded; each kernel here reads its inputs once and writes its output
once, on every core (benchmarks/NOTES.md: leaky ReLU on a DCGAN activation 25 ms → 1.5 ms).
The kernels are ``nogil`` loops over a range of elements, run on minigan's worker threads by
:func:`.threads.parallel_for` (not Numba's ``prange``: its OpenMP threads spin after each loop).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

from .threads import grain_for, parallel_for

# Values per part (1 Mi): these loops run at 0.1-0.2 ns a value, so a part of 64 Ki values
# takes a few microseconds, far under the 40-100 us a hand-off to a worker costs; at 1 Mi
# values one thread (110 us) still beat two (125 us; benchmarks/NOTES.md item 38).
GRAIN = 16 * grain_for(1)


# Each kernel slices its part first and loops from 0: with ``range(lo, hi)`` indices Numba
# must allow for negative (wrap-around) indexing and LLVM does not vectorise the loop (leaky
# ReLU on 128 Ki values: 114 us that way, 12 us this way).
@njit(cache=True, nogil=True)
def _leaky_relu(x, slope, y, lo, hi):
    xs, ys = x[lo:hi], y[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        ys[i] = v if v > 0 else v * slope


@njit(cache=True, nogil=True)
def _leaky_relu_backward(gy, x, slope, gx, lo, hi):
    gys, xs, gxs = gy[lo:hi], x[lo:hi], gx[lo:hi]
    for i in range(xs.size):
        g = gys[i]
        gxs[i] = g if xs[i] > 0 else g * slope


# SplitMix64 (Steele, Lea & Flood 2014): the i-th uniform of the stream seeded with ``seed``
# is a hash of ``seed + (i + 1) * GAMMA``; its top 24 bits give u in [0, 1). Counter-based, so
# every element is drawn independently — in parallel, and again in the backward pass from the
# seed alone (no mask is stored). kernels/cuda computes the same stream.
GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def keep_threshold(p: float) -> np.uint64:
    """Keep element i when its 24-bit draw ``>=`` this, i.e. when ``u_i >= p``."""
    return np.uint64(math.ceil(p * 2**24))


@njit(cache=True, nogil=True)
def _dropout(x, seed, threshold, scale, y, lo, hi):
    zero = x.dtype.type(0)
    xs, ys, first = x[lo:hi], y[lo:hi], uint64(lo) + uint64(1)
    for i in range(xs.size):
        z = seed + (uint64(i) + first) * GAMMA  # element lo + i's draw
        z = (z ^ (z >> uint64(30))) * MIX1
        z = (z ^ (z >> uint64(27))) * MIX2
        z = z ^ (z >> uint64(31))
        ys[i] = xs[i] * scale if (z >> uint64(40)) >= threshold else zero


def _flat(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def leaky_relu(x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere."""
    y = np.empty(x.shape, x.dtype)
    xf = _flat(x, x.dtype)
    parallel_for(_leaky_relu, xf.size, xf, x.dtype.type(negative_slope), y.reshape(-1), grain=GRAIN)
    return y


def leaky_relu_backward(gy: np.ndarray, x: np.ndarray, negative_slope: float) -> np.ndarray:
    """``gy`` where ``x > 0``, ``negative_slope * gy`` elsewhere."""
    gx = np.empty(gy.shape, gy.dtype)
    gyf, xf, slope = _flat(gy, gy.dtype), _flat(x, x.dtype), gy.dtype.type(negative_slope)
    parallel_for(_leaky_relu_backward, xf.size, gyf, xf, slope, gx.reshape(-1), grain=GRAIN)
    return gx


def dropout(x: np.ndarray, seed: int, p: float) -> np.ndarray:
    """``x / (1 - p)`` where the SplitMix64 draw ``u_i(seed) >= p``, 0 elsewhere."""
    y = np.empty(x.shape, x.dtype)
    scale = x.dtype.type(1 / (1 - p))
    xf = _flat(x, x.dtype)
    args = (xf, np.uint64(seed), keep_threshold(p), scale, y.reshape(-1))
    parallel_for(_dropout, xf.size, *args, grain=GRAIN)
    return y
