"""CUDA kernels: the kernel contract (:class:`minigan.kernels.contract.KernelBackend`) for CuPy
arrays, in Numba-CUDA; this module is the CUDA backend.

Importing this package imports neither CuPy nor ``numba.cuda``: the convolution and norm
kernels are lazy ``"module:attribute"`` strings (:data:`LAZY`, resolved by
:func:`minigan.lazy.resolve`, as the plugin registry resolves its own) that import :mod:`.conv`
/ :mod:`.norm` (and with them ``numba.cuda``, from the ``numba-cuda`` package) on first
access, after which they are plain module attributes. CuPy comes only through
:func:`minigan.backend.cupy`, which raises a RuntimeError naming ``pip install 'minigan[cuda]'``
when CuPy or a GPU is missing. :func:`handles` recognises CuPy arrays by their type's module,
without importing CuPy.

Must not import: anything of minigan's core but :mod:`minigan.lazy` and
:mod:`minigan.backend` (no autograd, no nn), nor a plugin; CuPy and ``numba.cuda`` only lazily.

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

from typing import TYPE_CHECKING, Any

from minigan.lazy import resolve

from ..contract import Array, Pair, Shape

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and IDEs
    from .conv import conv2d as conv2d
    from .conv import conv2d_grad_input as conv2d_grad_input
    from .conv import conv2d_grad_weight as conv2d_grad_weight
    from .norm import adain_backward as adain_backward
    from .norm import adain_forward as adain_forward
    from .norm import batch_norm_backward as batch_norm_backward
    from .norm import batch_norm_forward as batch_norm_forward
    from .norm import batch_norm_inference as batch_norm_inference

# The kernels written with Numba-CUDA, imported on first access (and batch_norm_inference, a
# fused eval-mode batch norm outside the contract).
_CONV, _NORM = "minigan.kernels.cuda.conv", "minigan.kernels.cuda.norm"
LAZY: dict[str, str] = {
    "conv2d": f"{_CONV}:conv2d",
    "conv2d_grad_input": f"{_CONV}:conv2d_grad_input",
    "conv2d_grad_weight": f"{_CONV}:conv2d_grad_weight",
    "batch_norm_forward": f"{_NORM}:batch_norm_forward",
    "batch_norm_backward": f"{_NORM}:batch_norm_backward",
    "batch_norm_inference": f"{_NORM}:batch_norm_inference",
    "adain_forward": f"{_NORM}:adain_forward",
    "adain_backward": f"{_NORM}:adain_backward",
}


def __getattr__(name: str) -> Any:
    """Resolve a lazy kernel on first access and keep it as a module attribute."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = resolve(LAZY[name])
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY})


def handles(array: Any) -> bool:
    """True for a CuPy array (checked without importing CuPy)."""
    return type(array).__module__.startswith("cupy")


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


def _windows(
    x_hw: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
) -> tuple[tuple[int, int, int, int], list[tuple[tuple, Any]]]:
    """The zero padding ``(top, bottom, left, right)`` that puts every window inside, and per
    window position ``i*kw + j``: the strided slices of the padded input it reads for every
    output, and the (OH, OW) NumPy mask of the outputs whose position is inside the input."""
    import numpy as np

    pads, axes = [], []
    for d in range(2):
        k, s, p, dl, n, size = kernel[d], stride[d], padding[d], dilation[d], out_hw[d], x_hw[d]
        need = (n - 1) * s + dl * (k - 1) + 1
        pads += [p, max(need - size - p, 0)]
        start = np.arange(n) * s - p
        inside = [(start + i * dl >= 0) & (start + i * dl < size) for i in range(k)]
        axes.append([(slice(i * dl, i * dl + (n - 1) * s + 1, s), inside[i]) for i in range(k)])
    return (pads[0], pads[1], pads[2], pads[3]), [
        ((..., r, c), np.outer(rin, cin)) for r, rin in axes[0] for c, cin in axes[1]
    ]


# Max pooling: CuPy expressions, one pass over x per window position.
def max_pool2d(
    x: Array, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
) -> tuple[Array, Array]:
    """Max over each window's positions inside ``x``, and the position that won."""
    import cupy as cp

    if kernel[0] * kernel[1] >= 255:
        raise ValueError(f"max_pool2d: kernel {tuple(kernel)} has more than 254 positions")

    (t, b, le, r), windows = _windows(x.shape[-2:], kernel, stride, padding, dilation, out_hw)
    lead = [(0, 0)] * (x.ndim - 2)
    xp = cp.pad(x, lead + [(t, b), (le, r)]) if t or b or le or r else x
    from ..cpu.pool import lowest

    y = cp.full(x.shape[:-2] + tuple(out_hw), lowest(x.dtype), dtype=x.dtype)
    winner = cp.full(y.shape, 255, dtype=cp.uint8)
    for pos, (sl, inside) in enumerate(windows):
        v = xp[sl]
        take = cp.asarray(inside) & ((winner == 255) | (v > y) | (v != v))
        y = cp.where(take, v, y)
        winner[take] = pos
    return y, winner


def max_pool2d_backward(
    gy: Array,
    winner: Array,
    x_shape: Shape,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> Array:
    """Zeros of ``x_shape`` plus each ``gy`` at its window's winner."""
    import cupy as cp

    hw = (x_shape[-2], x_shape[-1])
    (t, b, le, r), windows = _windows(hw, kernel, stride, padding, dilation, gy.shape[-2:])
    gx = cp.zeros(tuple(x_shape[:-2]) + (hw[0] + t + b, hw[1] + le + r), dtype=gy.dtype)
    for pos, (sl, _) in enumerate(windows):
        gx[sl] += cp.where(winner == pos, gy, gy.dtype.type(0))
    return cp.ascontiguousarray(gx[..., t : t + hw[0], le : le + hw[1]])


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
