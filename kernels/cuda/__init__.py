"""CUDA kernels: the kernel contract of :mod:`minigan.kernels` for CuPy arrays, in Numba-CUDA.

Importing this package imports neither CuPy nor ``numba.cuda``: the seven contract functions
import :mod:`.conv` / :mod:`.norm` (and with them ``numba.cuda``, from the ``numba-cuda``
package) on their first call, and CuPy only through :func:`minigan.backend.cupy`, which
raises a RuntimeError naming ``pip install 'minigan[cuda]'`` when CuPy or a GPU is missing.
:func:`handles` recognises CuPy arrays by their type's module, without importing CuPy.

Kernels
-------
``conv.py``
    Convolution as three implicit GEMMs (forward, grad-input, grad-weight): one block computes
    a ``BM x BN`` output tile (default 64x64: 16x16 threads x 4x4 register tiles), streaming
    the reduction through shared memory ``BK = 8`` at a time, with the im2col gather done
    while loading the tile (the column matrix never exists in memory). Accumulation is in the
    data type — float32 for float32 (Numba-CUDA has no tensor-core path). Any stride, padding
    and dilation. grad-input is a gather over the taps that reach each input pixel, split by
    stride phase so that no multiply-add is spent on a tap that misses (no atomics);
    grad-weight splits its long reduction over blocks into a partial buffer, summed by a second
    kernel in a fixed order (deterministic). A second strategy, im2col + cuBLAS
    (``cupy.matmul``), and a second tile shape (128x128) are autotuned against the first per
    shape: timed with CUDA events on first use and cached (``conv.AUTOTUNER``;
    ``MINIGAN_CUDA_CONV=igemm64|igemm128|im2col`` forces one).
``norm.py``
    Batch norm and AdaIN, forward and backward: one reduction launch (per-thread sums, a
    shared-memory tree, one partial per block) and one elementwise launch that merges the
    partials and writes the output. Float32 accumulation of sums shifted by a pivot taken from
    the group (accurate on data far from zero, no per-item division). Also a fused eval-mode
    batch norm, :func:`batch_norm_inference` (outside the contract).
``launch.py``
    Compile-once cache (one explicit signature per kernel, dtype and tile shape), CuPy
    interop, the autotuner.

Interop: CuPy arrays are handed to the kernels as Numba device arrays over the same memory
(``__cuda_array_interface__``, with Numba's per-launch stream synchronisation turned off) and
every kernel is launched on CuPy's current stream (``numba.cuda.external_stream``), so a
training step never waits for the GPU unless the caller reads a value. Outputs are allocated
with ``cupy.empty``. Grid and block sizes are computed from the shapes (and the SM count).

Every kernel is a plain Python function built by a factory (``make_*``) that binds its tile
sizes and dtype as compile-time constants; ``kernel_specs(dtype)`` in each module lists them
with their signatures. The tests compile each to PTX for sm_80 and sm_90 and run it under
Numba's CUDA simulator, through the ``launch_*`` functions that take Numba device arrays.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "handles",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_inference",
    "adain_forward",
    "adain_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "dropout",
    "matmul",
]

Array = Any
Pair = tuple[int, int]


def handles(array: Any) -> bool:
    """True for a CuPy array (checked without importing CuPy)."""
    return type(array).__module__.startswith("cupy")


def conv2d(
    x: Array, w: Array, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> Array:
    """2-D cross-correlation without bias, like ``torch.nn.functional.conv2d``."""
    from . import conv

    return conv.conv2d(x, w, stride, padding, dilation, groups)


def conv2d_grad_input(
    gy: Array,
    w: Array,
    x_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Array:
    """Gradient of :func:`conv2d` w.r.t. ``x`` (the transposed convolution of ``gy``)."""
    from . import conv

    return conv.conv2d_grad_input(gy, w, tuple(x_shape), stride, padding, dilation, groups)


def conv2d_grad_weight(
    x: Array,
    gy: Array,
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Array:
    """Gradient of :func:`conv2d` w.r.t. ``w`` (O, C/groups, kh, kw)."""
    from . import conv

    return conv.conv2d_grad_weight(x, gy, tuple(w_shape), stride, padding, dilation, groups)


def batch_norm_forward(
    x: Array, gamma: Array | None, beta: Array | None, eps: float
) -> tuple[Array, Array, Array]:
    """Training-mode batch norm: returns ``y, mean, invstd``."""
    from . import norm

    return norm.batch_norm_forward(x, gamma, beta, eps)


def batch_norm_backward(
    gy: Array, x: Array, gamma: Array | None, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`batch_norm_forward`: ``gx, ggamma, gbeta``."""
    from . import norm

    return norm.batch_norm_backward(gy, x, gamma, mean, invstd)


def batch_norm_inference(
    x: Array,
    gamma: Array | None,
    beta: Array | None,
    running_mean: Array,
    running_var: Array,
    eps: float,
) -> Array:
    """Eval-mode batch norm with the running statistics, in one launch (not in the contract)."""
    from . import norm

    return norm.batch_norm_inference(x, gamma, beta, running_mean, running_var, eps)


def adain_forward(x: Array, scale: Array, bias: Array, eps: float) -> tuple[Array, Array, Array]:
    """Adaptive instance norm: returns ``y, mean, invstd`` (statistics shaped (N, C))."""
    from . import norm

    return norm.adain_forward(x, scale, bias, eps)


def adain_backward(
    gy: Array, x: Array, scale: Array, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`adain_forward`: ``gx, gscale, gbias``."""
    from . import norm

    return norm.adain_backward(gy, x, scale, mean, invstd)


# Elementwise kernels: plain CuPy expressions (two memory-bound launches each). Not yet run
# on a GPU; a fused cupy.ElementwiseKernel is the obvious next step once measured.
def leaky_relu(x: Array, negative_slope: float) -> Array:
    """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere."""
    import cupy as cp

    return cp.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(gy: Array, x: Array, negative_slope: float) -> Array:
    """``gy`` where ``x > 0``, ``negative_slope * gy`` elsewhere."""
    import cupy as cp

    return cp.where(x > 0, gy, gy * gy.dtype.type(negative_slope))


def dropout(x: Array, seed: int, p: float) -> Array:
    """``x / (1 - p)`` where the SplitMix64 draw ``u_i(seed) >= p`` (the CPU kernel's stream)."""
    import cupy as cp

    from ..cpu.elementwise import GAMMA, MIX1, MIX2, keep_threshold

    z = cp.arange(1, x.size + 1, dtype=cp.uint64) * cp.uint64(GAMMA) + cp.uint64(seed)
    z = (z ^ (z >> cp.uint64(30))) * cp.uint64(MIX1)
    z = (z ^ (z >> cp.uint64(27))) * cp.uint64(MIX2)
    z = z ^ (z >> cp.uint64(31))
    keep = ((z >> cp.uint64(40)) >= cp.uint64(keep_threshold(p))).reshape(x.shape)
    return cp.where(keep, x * x.dtype.type(1 / (1 - p)), x.dtype.type(0))


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` (cuBLAS through CuPy)."""
    return a @ b
