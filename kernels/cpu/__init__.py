"""CPU kernels: NumPy + Numba implementations of the contract in :mod:`minigan.kernels`."""

from .conv import conv2d, conv2d_grad_input, conv2d_grad_weight
from .elementwise import dropout, leaky_relu, leaky_relu_backward
from .linalg import matmul
from .norm import adain_backward, adain_forward, batch_norm_backward, batch_norm_forward

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
]
