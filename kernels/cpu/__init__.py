"""CPU kernels: NumPy + Numba implementations of the kernel contract
(:class:`minigan.kernels.contract.KernelBackend`); this module is the CPU backend.

Must not import: anything of minigan's core (autograd, nn) or a plugin; never CuPy.
"""

# The contract's kernels, re-exported: ``__all__`` is contract.KERNELS, so ruff cannot see them.
from ..contract import KERNELS
from .conv import conv2d, conv2d_grad_input, conv2d_grad_weight  # noqa: F401
from .elementwise import dropout, leaky_relu, leaky_relu_backward  # noqa: F401
from .linalg import matmul  # noqa: F401
from .norm import (  # noqa: F401
    adain_backward,
    adain_forward,
    batch_norm_backward,
    batch_norm_forward,
)

__all__ = list(KERNELS)
