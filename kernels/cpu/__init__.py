"""CPU kernels: NumPy + Numba implementations of the kernel contract
(:class:`minigan.kernels.contract.KernelBackend`); this module is the CPU backend.

The kernels are re-exported explicitly (``import name as name``), so type checkers see this
module as a :class:`~minigan.kernels.contract.KernelBackend` (mypy checks it, in
``minigan.kernels``).

Must not import: anything of minigan's core (autograd, nn) or a plugin; never CuPy.
"""

from .conv import conv2d as conv2d
from .conv import conv2d_grad_input as conv2d_grad_input
from .conv import conv2d_grad_weight as conv2d_grad_weight
from .elementwise import dropout as dropout
from .elementwise import leaky_relu as leaky_relu
from .elementwise import leaky_relu_backward as leaky_relu_backward
from .linalg import matmul as matmul
from .norm import adain_backward as adain_backward
from .norm import adain_forward as adain_forward
from .norm import batch_norm_backward as batch_norm_backward
from .norm import batch_norm_forward as batch_norm_forward
from .pool import max_pool2d as max_pool2d
from .pool import max_pool2d_backward as max_pool2d_backward
