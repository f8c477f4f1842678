"""The kernel contract: what every kernel backend (CPU, CUDA, a plugin's) provides.

:class:`KernelBackend` lists every kernel with its array signature and meaning; it is the one
place the contract is written. The dispatcher (:mod:`minigan.kernels`), the CPU backend
(:mod:`minigan.kernels.cpu`), the CUDA backend (:mod:`minigan.kernels.cuda`) and the
``register_kernels`` hook (:mod:`minigan.hookspecs`) all refer to it; :data:`KERNELS` (the
kernel names, derived from the class) is what the backends' ``__all__`` and
:func:`check_backend` use.

Conventions. Arrays are NCHW, float32 or float64; outputs have the input's dtype.
``stride``, ``padding`` and ``dilation`` are ``(h, w)`` int pairs; padding is symmetric
zeros; ``groups`` (default 1) is PyTorch's grouped convolution. Statistics use the biased
variance and ``invstd = 1 / sqrt(var + eps)``; ``gamma``/``beta`` may be None (meaning 1
and 0). ``x_shape`` is the full input shape, so it also fixes the ``output_padding`` of the
equivalent transposed convolution. Kernels take and return plain arrays (NumPy, CuPy, ...)
and know nothing of autograd.

This module must import nothing but the standard library (no NumPy, no Numba, nothing of
minigan): the plugin host and type checkers read it without loading any kernel.

>>> conv_output_size(32, k=4, s=2, p=1, d=1)
16
>>> "conv2d" in KERNELS and "matmul" in KERNELS
True
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

Array = Any  # numpy.ndarray, cupy.ndarray, or another backend's array type
Pair = tuple[int, int]
Shape = tuple[int, ...]


@runtime_checkable
class KernelBackend(Protocol):
    """Every kernel a backend implements, under these names (a module satisfies it)."""

    def conv2d(
        self, x: Array, w: Array, stride: Pair, padding: Pair, dilation: Pair, groups: int = 1
    ) -> Array:
        """2-D cross-correlation without bias, like ``torch.nn.functional.conv2d``:
        ``x (N, C, H, W)``, ``w (O, C/groups, kh, kw)`` -> ``y (N, O, OH, OW)`` with
        ``OH = conv_output_size(H, kh, stride[0], padding[0], dilation[0])``. ``groups``
        (PyTorch's) splits the channels into independent convolutions: output channel ``o``
        reads the input channels of its group (depthwise: ``groups == C``). The dispatcher
        passes ``groups`` only when it is not 1, so a backend without grouped kernels still
        serves every ungrouped convolution."""
        ...

    def conv2d_grad_input(
        self,
        gy: Array,
        w: Array,
        x_shape: Shape,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: int = 1,
    ) -> Array:
        """Gradient of :meth:`conv2d` w.r.t. ``x`` (= ``conv_transpose2d`` of ``gy``):
        ``gy (N, O, OH, OW)`` -> ``gx`` of shape ``x_shape``; ``groups`` as in :meth:`conv2d`."""
        ...

    def conv2d_grad_weight(
        self,
        x: Array,
        gy: Array,
        w_shape: Shape,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: int = 1,
    ) -> Array:
        """Gradient of :meth:`conv2d` w.r.t. ``w``: -> ``gw`` of shape ``w_shape``
        ``(O, C/groups, kh, kw)``; ``groups`` as in :meth:`conv2d`."""
        ...

    def batch_norm_forward(
        self, x: Array, gamma: Array | None, beta: Array | None, eps: float
    ) -> tuple[Array, Array, Array]:
        """Training-mode batch norm per channel over all axes but 1: ``y, mean, invstd``
        (statistics shaped ``(C,)``)."""
        ...

    def batch_norm_backward(
        self, gy: Array, x: Array, gamma: Array | None, mean: Array, invstd: Array
    ) -> tuple[Array, Array, Array]:
        """Gradients of :meth:`batch_norm_forward`: ``gx, ggamma, gbeta``."""
        ...

    def adain_forward(
        self, x: Array, scale: Array, bias: Array, eps: float
    ) -> tuple[Array, Array, Array]:
        """Adaptive instance norm per ``(n, c)`` over ``H, W``:
        ``y = scale[n, c] * (x - mean) * invstd + bias[n, c]``; returns ``y, mean, invstd``
        (statistics shaped ``(N, C)``)."""
        ...

    def adain_backward(
        self, gy: Array, x: Array, scale: Array, mean: Array, invstd: Array
    ) -> tuple[Array, Array, Array]:
        """Gradients of :meth:`adain_forward`: ``gx, gscale, gbias``."""
        ...

    def leaky_relu(self, x: Array, negative_slope: float) -> Array:
        """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere (elementwise, one pass)."""
        ...

    def leaky_relu_backward(self, gy: Array, x: Array, negative_slope: float) -> Array:
        """Gradient of :meth:`leaky_relu`: ``gy`` where ``x > 0``, ``negative_slope * gy``
        elsewhere."""
        ...

    def max_pool2d(
        self, x: Array, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair
    ) -> tuple[Array, Array]:
        """Max pooling like ``torch.nn.functional.max_pool2d``: ``x (..., H, W)`` ->
        ``y (..., OH, OW)`` (``out_hw``, ceil mode included) with ``y[a, b]`` the maximum of
        ``x[a*sh - ph + i*dh, b*sw - pw + j*dw]`` over the window positions (i < kh, j < kw)
        inside ``x`` — padding is no value — and the uint8 ``winner`` of each window, its
        position ``i*kw + j``: the first inside, replaced by each later one that is greater or
        NaN (PyTorch's rule: the first maximum, the last NaN). A window with no position
        inside gets the dtype's lowest value and winner 255. At most 254 window positions; any
        dtype with an order."""
        ...

    def max_pool2d_backward(
        self,
        gy: Array,
        winner: Array,
        x_shape: Shape,
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
    ) -> Array:
        """Gradient of :meth:`max_pool2d`: zeros of ``x_shape`` plus each ``gy`` at its window's
        winner (none for winner 255; overlapping windows add up)."""
        ...

    def dropout(self, x: Array, seed: int, p: float) -> Array:
        """``x / (1 - p)`` where ``u_i >= p``, 0 elsewhere; ``u_i`` is element i's uniform draw
        of the counter-based SplitMix64 stream ``seed`` (:mod:`minigan.kernels.cpu.elementwise`),
        the same on every backend. Linear in ``x``: the same call with ``gy`` and the same seed
        is its backward."""
        ...

    def matmul(self, a: Array, b: Array) -> Array:
        """``a @ b`` with NumPy's matmul semantics (batched, broadcasting)."""
        ...


_LAZY = object()  # marks a name found in dir() but not statically (resolved on first use)

#: The kernel names, in contract order: the single list the backends and checks use.
KERNELS: tuple[str, ...] = tuple(
    name for name, value in vars(KernelBackend).items() if callable(value) and name[0] != "_"
)


def missing_kernels(backend: object) -> list[str]:
    """The contract's kernels that ``backend`` (a module or object) lacks or has uncallable.

    Checked without loading anything: a name the backend lists in ``dir()`` but resolves
    lazily (a module ``__getattr__``, as :mod:`minigan.kernels.cuda` does) counts as present.

    >>> import types
    >>> missing_kernels(types.SimpleNamespace(conv2d=print, matmul=1))[:2]
    ['conv2d_grad_input', 'conv2d_grad_weight']
    >>> missing_kernels(types.SimpleNamespace(conv2d=print, matmul=1))[-1]
    'matmul'
    """
    listed = set(dir(backend))
    missing = []
    for name in KERNELS:
        value = inspect.getattr_static(backend, name, _LAZY)
        if name not in listed or (value is not _LAZY and not callable(value)):
            missing.append(name)
    return missing


def check_backend(name: str, backend: object) -> None:
    """Raise a TypeError naming every kernel of the contract that ``backend`` lacks."""
    missing = missing_kernels(backend)
    if missing:
        what = getattr(backend, "__name__", type(backend).__name__)
        raise TypeError(
            f"kernel backend {name!r} ({what}) does not implement the kernel contract "
            f"(minigan.kernels.contract.KernelBackend): missing {', '.join(missing)}"
        )


def conv_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution along one axis: input ``size``, kernel ``k``, stride
    ``s``, padding ``p`` (each side), dilation ``d`` — PyTorch's formula."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1
