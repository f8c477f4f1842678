"""minigan.kernels — compute kernels on raw arrays, and the one place that dispatches them.

The contract — every kernel's name, array signature and meaning — is written once, in
:class:`~minigan.kernels.contract.KernelBackend` (:mod:`minigan.kernels.contract`); the
functions below have its signatures and docstrings. In short::

    conv2d(x, w, stride, padding, dilation, groups) -> y          x (N,C,H,W), w (O,C/G,kh,kw)
    conv2d_grad_input(gy, w, x_shape, stride, padding, dilation, groups) -> gx  (= conv_transp.)
    conv2d_grad_weight(x, gy, w_shape, stride, padding, dilation, groups) -> gw
    batch_norm_forward(x, gamma, beta, eps) -> y, mean, invstd     per channel over all axes but 1
    batch_norm_backward(gy, x, gamma, mean, invstd) -> gx, ggamma, gbeta
    adain_forward(x, scale, bias, eps) -> y, mean, invstd          per (n, c) over H, W
    adain_backward(gy, x, scale, mean, invstd) -> gx, gscale, gbias
    leaky_relu(x, negative_slope) -> y                             elementwise, fused
    leaky_relu_backward(gy, x, negative_slope) -> gx
    max_pool2d(x, kernel, stride, padding, dilation, out_hw) -> y, winner (uint8, per window)
    max_pool2d_backward(gy, winner, x_shape, kernel, stride, padding, dilation) -> gx
    dropout(x, seed, p) -> y        x / (1 - p) where u_i(seed) >= p, else 0 (SplitMix64 u_i)
    matmul(a, b) -> a @ b                                          NumPy's matmul semantics

Kernels know nothing of autograd: they take and return plain arrays. Each public function
looks at its first array argument, picks the backend registered for that array type and calls
the function of the same name there. NumPy arrays go to :mod:`minigan.kernels.cpu`, CuPy arrays to
:mod:`minigan.kernels.cuda`; another backend plugs in with
``register_backend(name, module, is_array)`` (or a plugin's ``register_kernels`` hook), which
checks it against the contract.

Must not import: anything of minigan's core (``minigan.tensor``, ``minigan.functional``,
``minigan.nn``, ...) or a plugin; CuPy and ``numba.cuda`` only on first use of a CuPy array.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from . import cpu
from . import cuda as _cuda  # imports neither CuPy nor numba.cuda until a kernel is used
from .contract import (
    KERNELS,
    Array,
    KernelBackend,
    Pair,
    Shape,
    check_backend,
    conv_output_size,
)
from .cpu import threads as _cpu_threads

__all__ = [  # the kernels (contract.KERNELS) and the dispatch machinery
    *KERNELS,
    "KernelBackend",
    "backend_for",
    "conv_output_size",
    "get_num_threads",
    "register_backend",
    "set_num_threads",
]

# backend name -> (implementation module, predicate recognising that backend's arrays)
_BACKENDS: dict[str, tuple[KernelBackend, Callable[[Any], bool]]] = {}


def register_backend(
    name: str, module: KernelBackend | ModuleType, is_array: Callable[[Any], bool]
) -> None:
    """Route arrays for which ``is_array(a)`` is true to the functions of ``module``.

    ``module`` must define every kernel of the contract (:class:`KernelBackend`) under the
    same names; a TypeError names the missing ones. Registering an existing name replaces it.
    """
    check_backend(name, module)
    _BACKENDS[name] = (cast(KernelBackend, module), is_array)


if TYPE_CHECKING:  # mypy checks both backend modules against the contract's signatures
    _cpu_backend: KernelBackend = cpu
    _cuda_backend: KernelBackend = _cuda

register_backend("cpu", cpu, lambda a: isinstance(a, np.ndarray))

register_backend("cuda", _cuda, _cuda.handles)


def backend_for(array: Any, kernel: str) -> KernelBackend:
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


_F = TypeVar("_F", bound=Callable[..., Any])


def _contract(dispatch: _F) -> _F:
    """Give a dispatch function the docstring of its kernel in :class:`KernelBackend` (once,
    at import: the call path is only ``backend_for`` and the backend's function)."""
    dispatch.__doc__ = getattr(KernelBackend, dispatch.__name__).__doc__
    return dispatch


@_contract
def conv2d(
    x: Array, w: Array, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
) -> Array:
    impl = backend_for(x, "conv2d")
    if groups == 1:  # a backend written before groups existed keeps working
        return impl.conv2d(x, w, stride, padding, dilation)
    return impl.conv2d(x, w, stride, padding, dilation, groups)


@_contract
def conv2d_grad_input(
    gy: Array,
    w: Array,
    x_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Array:
    impl = backend_for(gy, "conv2d_grad_input")
    if groups == 1:
        return impl.conv2d_grad_input(gy, w, tuple(x_shape), stride, padding, dilation)
    return impl.conv2d_grad_input(gy, w, tuple(x_shape), stride, padding, dilation, groups)


@_contract
def conv2d_grad_weight(
    x: Array,
    gy: Array,
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int = 1,
) -> Array:
    impl = backend_for(x, "conv2d_grad_weight")
    if groups == 1:
        return impl.conv2d_grad_weight(x, gy, tuple(w_shape), stride, padding, dilation)
    return impl.conv2d_grad_weight(x, gy, tuple(w_shape), stride, padding, dilation, groups)


@_contract
def batch_norm_forward(
    x: Array, gamma: Array | None, beta: Array | None, eps: float
) -> tuple[Array, Array, Array]:
    return backend_for(x, "batch_norm_forward").batch_norm_forward(x, gamma, beta, eps)


@_contract
def batch_norm_backward(
    gy: Array, x: Array, gamma: Array | None, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    impl = backend_for(x, "batch_norm_backward")
    return impl.batch_norm_backward(gy, x, gamma, mean, invstd)


@_contract
def adain_forward(x: Array, scale: Array, bias: Array, eps: float) -> tuple[Array, Array, Array]:
    return backend_for(x, "adain_forward").adain_forward(x, scale, bias, eps)


@_contract
def adain_backward(
    gy: Array, x: Array, scale: Array, mean: Array, invstd: Array
) -> tuple[Array, Array, Array]:
    return backend_for(x, "adain_backward").adain_backward(gy, x, scale, mean, invstd)


@_contract
def leaky_relu(x: Array, negative_slope: float) -> Array:
    return backend_for(x, "leaky_relu").leaky_relu(x, negative_slope)


@_contract
def leaky_relu_backward(gy: Array, x: Array, negative_slope: float) -> Array:
    return backend_for(x, "leaky_relu_backward").leaky_relu_backward(gy, x, negative_slope)


@_contract
def max_pool2d(
    x: Array, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
) -> tuple[Array, Array]:
    return backend_for(x, "max_pool2d").max_pool2d(x, kernel, stride, padding, dilation, out_hw)


@_contract
def max_pool2d_backward(
    gy: Array,
    winner: Array,
    x_shape: Shape,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> Array:
    impl = backend_for(gy, "max_pool2d_backward")
    return impl.max_pool2d_backward(gy, winner, x_shape, kernel, stride, padding, dilation)


@_contract
def dropout(x: Array, seed: int, p: float) -> Array:
    return backend_for(x, "dropout").dropout(x, seed, p)


@_contract
def matmul(a: Array, b: Array) -> Array:
    return backend_for(a, "matmul").matmul(a, b)


def set_num_threads(n: int) -> None:
    """Use ``n`` CPU threads in every kernel: the worker threads that run the convolution,
    matmul, norm and elementwise kernels (like ``torch.set_num_threads``). The default is
    ``MINIGAN_NUM_THREADS``, else every usable core."""
    _cpu_threads.set_num_threads(n)


def get_num_threads() -> int:
    """The number of CPU threads the kernels use."""
    return _cpu_threads.num_threads()
