"""minigan: a from-scratch deep-learning toolkit for image generation.

>>> import minigan
>>> x = minigan.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])
"""

from minigan import functional, nn, optim
from minigan.hookspecs import hookimpl
from minigan.kernels import get_num_threads, set_num_threads
from minigan.random import manual_seed
from minigan.serialization import load, save
from minigan.tensor import (
    Tensor,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    randn_like,
    set_grad_enabled,
    tensor,
    zeros,
    zeros_like,
)
from minigan.tensor_ops import (
    arange,
    einsum,
    empty,
    empty_like,
    equal,
    eye,
    full,
    full_like,
    linspace,
    randint,
)

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "__version__",
    "arange",
    "einsum",
    "empty",
    "empty_like",
    "enable_grad",
    "equal",
    "eye",
    "full",
    "full_like",
    "functional",
    "get_num_threads",
    "grad",
    "hookimpl",
    "is_grad_enabled",
    "linspace",
    "load",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randint",
    "randn",
    "randn_like",
    "save",
    "set_grad_enabled",
    "set_num_threads",
    "tensor",
    "zeros",
    "zeros_like",
]
