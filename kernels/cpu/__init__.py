"""CPU kernels: NumPy + Numba implementations of the kernel contract
(:class:`minigan.kernels.contract.KernelBackend`); this module is the CPU backend.

The kernels are re-exported (wrapped by :func:`half_via_float32`, which keeps their types), so
type checkers see this module as a :class:`~minigan.kernels.contract.KernelBackend` (mypy
checks it, in ``minigan.kernels``).

Must not import: anything of minigan's core (autograd, nn) or a plugin; never CuPy.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import numpy as np

from . import conv as _conv
from . import elementwise as _elementwise
from . import linalg as _linalg
from . import norm as _norm
from . import pool as _pool

_K = TypeVar("_K", bound=Callable[..., Any])


def half_via_float32(kernel: _K) -> _K:
    """``kernel`` for float16 arrays too, computed in float32 (Numba compiles no float16
    loops; PyTorch's CPU kernels also accumulate half in float32): float16 arguments go in as
    float32 and every float32 array that comes out goes back to float16.

    >>> x = np.array([-2.0, 3.0], np.float16)
    >>> y = leaky_relu(x, 0.25)
    >>> y.dtype, y.tolist()
    (dtype('float16'), [-0.5, 3.0])
    """

    def widen(a: Any) -> Any:
        return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float16 else a

    def narrow(a: Any) -> Any:
        if isinstance(a, tuple):
            return tuple(narrow(b) for b in a)
        return a.astype(np.float16) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a

    @wraps(kernel)
    def run(*args: Any) -> Any:
        if not any(isinstance(a, np.ndarray) and a.dtype == np.float16 for a in args):
            return kernel(*args)
        return narrow(kernel(*(widen(a) for a in args)))

    return run  # type: ignore[return-value]


conv2d = half_via_float32(_conv.conv2d)
conv2d_grad_input = half_via_float32(_conv.conv2d_grad_input)
conv2d_grad_weight = half_via_float32(_conv.conv2d_grad_weight)
dropout = half_via_float32(_elementwise.dropout)
leaky_relu = half_via_float32(_elementwise.leaky_relu)
leaky_relu_backward = half_via_float32(_elementwise.leaky_relu_backward)
matmul = half_via_float32(_linalg.matmul)
adain_backward = half_via_float32(_norm.adain_backward)
adain_forward = half_via_float32(_norm.adain_forward)
batch_norm_backward = half_via_float32(_norm.batch_norm_backward)
batch_norm_forward = half_via_float32(_norm.batch_norm_forward)
max_pool2d = half_via_float32(_pool.max_pool2d)
max_pool2d_backward = half_via_float32(_pool.max_pool2d_backward)
