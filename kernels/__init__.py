"""minigan.kernels — compute kernels on raw arrays, and the one place that dispatches them.

Contract (design.md §3). Arrays are NCHW, float32 or float64; outputs have the input's dtype.
``stride``, ``padding`` and ``dilation`` are ``(h, w)`` int pairs; padding is symmetric zeros;
``groups`` (default 1) splits the channels into independent convolutions, PyTorch's
``groups``: w is (O, C/groups, kh, kw), output channel o reads the input channels of its group
(depthwise: groups == C)::

    conv2d(x, w, stride, padding, dilation, groups) -> y          x (N,C,H,W), w (O,C/G,kh,kw)
    conv2d_grad_input(gy, w, x_shape, stride, padding, dilation, groups) -> gx  (= conv_transp.)
    conv2d_grad_weight(x, gy, w_shape, stride, padding, dilation, groups) -> gw
    batch_norm_forward(x, gamma, beta, eps) -> y, mean, invstd     per channel over all axes but 1
    batch_norm_backward(gy, x, gamma, mean, invstd) -> gx, ggamma, gbeta
    adain_forward(x, scale, bias, eps) -> y, mean, invstd          per (n, c) over H, W
    adain_backward(gy, x, scale, mean, invstd) -> gx, gscale, gbias
    leaky_relu(x, negative_slope) -> y                             elementwise, fused
    leaky_relu_backward(gy, x, negative_slope) -> gx
    dropout(x, seed, p) -> y        x / (1 - p) where u_i(seed) >= p, else 0 (SplitMix64 u_i)
    matmul(a, b) -> a @ b                                          NumPy's matmul semantics

Statistics use the biased variance and ``invstd = 1 / sqrt(var + eps)``; ``gamma``/``beta``
may be None (meaning 1 and 0). ``x_shape`` is the full input shape, so it also fixes the
``output_padding`` of the equivalent transposed convolution.

Kernels know nothing of autograd: they take and return plain arrays. Each public function
looks at its first array argument, picks the backend registered for that array type and calls
the function of the same name there. NumPy arrays go to :mod:`minigan.kernels.cpu`, CuPy arrays to
:mod:`minigan.kernels.cuda`; another backend plugs in with
``register_backend(name, module, is_array)``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import cpu
from .cpu import threads as _cpu_threads

__all__ = [
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "batch_norm_forward",
    "batch_norm_backward",
    "adain_forward",
    "adain_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "dropout",
    "matmul",
    "register_backend",
    "set_num_threads",
    "get_num_threads",
    "backend_for",
]

Array = Any  # numpy.ndarray, or another backend's array type (e.g. cupy.ndarray)
Pair = tuple[int, int]

# backend name -> (implementation module, predicate recognising that backend's arrays)
_BACKENDS: dict[str, tuple[ModuleType, Callable[[Any], bool]]] = {}


def register_backend(name: str, module: ModuleType, is_array: Callable[[Any], bool]) -> None:
    """Route arrays for which ``is_array(a)`` is true to the functions of ``module``.

    ``module`` must define every kernel of the contract under the same names. Registering an
    existing name replaces it.
    """
    _BACKENDS[name] = (module, is_array)


register_backend("cpu", cpu, lambda a: isinstance(a, np.ndarray))

from . import cuda as _cuda  # noqa: E402  (imports neither CuPy nor numba.cuda until used)

register_backend("cuda", _cuda, _cuda.handles)


def backend_for(array: Any, kernel: str) -> ModuleType:
    """The implementation module for ``array``; a clear TypeError when there is none."""
    for module, is_array in _BACKENDS.values():
        if is_array(array):
            return module
    kind = f"{type(array).__module__}.{type(array).__qualname__}"
    raise TypeError(
        f"minigan.kernels.{kernel}: no kernel backend for arrays of type {kind}. "
        "NumPy arrays run on the CPU kernels; the CUDA kernels (for CuPy arrays) come with "
        "the GPU backend."
    )


def conv2d(
    x: Array, w: Array, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> Array:
    """2-D cross-correlation without bias, like ``torch.nn.functional.conv2d``."""
    impl = backend_for(x, "conv2d")
    if groups == 1:  # a backend written before groups existed keeps working
        return impl.conv2d(x, w, stride, padding, dilation)
    return impl.conv2d(x, w, stride, padding, dilation, groups)


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
    impl = backend_for(gy, "conv2d_grad_input")
    if groups == 1:
        return impl.conv2d_grad_input(gy, w, tuple(x_shape), stride, padding, dilation)
    return impl.conv2d_grad_input(gy, w, tuple(x_shape), stride, padding, dilation, groups)


def conv2d_grad_weight(
    x: Array,
    gy: Array,
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Array:
    """Gradient of :func:`conv2d` w.r.t. ``w`` (shape ``w_shape`` = (O, C/groups, kh, kw))."""
    impl = backend_for(x, "conv2d_grad_weight")
    if groups == 1:
        return impl.conv2d_grad_weight(x, gy, tuple(w_shape), stride, padding, dilation)
    return impl.conv2d_grad_weight(x, gy, tuple(w_shape), stride, padding, dilation, groups)


def batch_norm_forward(
    x: Array, gamma: Array | None, beta: Array | None, eps: float
) -> tuple[Array, Array, Array]:
    """Training-mode batch norm: returns ``y, mean, invstd``."""
    return backend_for(x, "batch_norm_forward").batch_norm_forward(x, gamma, beta, eps)


def batch_norm_backward(
    gy: Array, x: Array, gamma: Array | None, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`batch_norm_forward`: ``gx, ggamma, gbeta``."""
    impl = backend_for(x, "batch_norm_backward")
    return impl.batch_norm_backward(gy, x, gamma, mean, invstd)


def adain_forward(x: Array, scale: Array, bias: Array, eps: float) -> tuple[Array, Array, Array]:
    """Adaptive instance norm: returns ``y, mean, invstd`` (statistics shaped (N, C))."""
    return backend_for(x, "adain_forward").adain_forward(x, scale, bias, eps)


def adain_backward(
    gy: Array, x: Array, scale: Array, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`adain_forward`: ``gx, gscale, gbias``."""
    return backend_for(x, "adain_backward").adain_backward(gy, x, scale, mean, invstd)


def leaky_relu(x: Array, negative_slope: float) -> Array:
    """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere (one fused pass)."""
    return backend_for(x, "leaky_relu").leaky_relu(x, negative_slope)


def leaky_relu_backward(gy: Array, x: Array, negative_slope: float) -> Array:
    """Gradient of :func:`leaky_relu`: ``gy`` where ``x > 0``, ``negative_slope * gy`` elsewhere."""
    return backend_for(x, "leaky_relu_backward").leaky_relu_backward(gy, x, negative_slope)


def dropout(x: Array, seed: int, p: float) -> Array:
    """``x / (1 - p)`` where ``u_i >= p``, 0 elsewhere; ``u_i`` is element i's uniform draw of
    the counter-based SplitMix64 stream ``seed`` (:mod:`minigan.kernels.cpu.elementwise`).
    Linear in ``x``: the same call with ``gy`` and the same seed is its backward."""
    return backend_for(x, "dropout").dropout(x, seed, p)


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` with NumPy's semantics; on the CPU run on the kernels' worker threads."""
    return backend_for(a, "matmul").matmul(a, b)


def set_num_threads(n: int) -> None:
    """Use ``n`` CPU threads in every kernel: the convolution and matmul workers and the
    Numba-parallel norm and elementwise kernels (like ``torch.set_num_threads``). The
    default is ``MINIGAN_NUM_THREADS``, else every usable core."""
    import numba

    _cpu_threads.set_num_threads(n)
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


def get_num_threads() -> int:
    """The number of CPU threads the kernels use."""
    return _cpu_threads.num_threads()
