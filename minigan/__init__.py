"""minigan: a from-scratch deep-learning toolkit for image generation.

>>> import minigan
>>> x = minigan.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])

``import minigan`` is light: it imports only pluggy (for :data:`hookimpl`, all a plugin's hook
module needs). The names below and the public submodules (``minigan.nn``,
``minigan.train`` ...) are imported on first use (PEP 562 ``__getattr__``), so
``from minigan import hookimpl`` and ``minigan --help`` never pay for NumPy, Numba or the
kernels. This module must not import NumPy, Numba, the kernels or any plugin at import time.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from minigan.hookspecs import hookimpl

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from minigan import functional, nn, optim
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

#: name -> the module that defines it (imported on first use)
_LAZY = {
    "get_num_threads": "minigan.kernels",
    "set_num_threads": "minigan.kernels",
    "manual_seed": "minigan.random",
    "load": "minigan.serialization",
    "save": "minigan.serialization",
    **{
        name: "minigan.tensor"
        for name in (
            "Tensor",
            "enable_grad",
            "grad",
            "is_grad_enabled",
            "no_grad",
            "ones",
            "ones_like",
            "rand",
            "randn",
            "randn_like",
            "set_grad_enabled",
            "tensor",
            "zeros",
            "zeros_like",
        )
    },
    **{
        name: "minigan.tensor_ops"
        for name in (
            "arange",
            "einsum",
            "empty",
            "empty_like",
            "equal",
            "eye",
            "full",
            "full_like",
            "linspace",
            "randint",
        )
    },
}

#: public submodules, importable as attributes (``import minigan; minigan.train.train(...)``)
_SUBMODULES = (
    "backend",
    "batch",
    "cli",
    "cluster",
    "data",
    "diffaugment",
    "distributed",
    "errors",
    "functional",
    "gan",
    "hookspecs",
    "images",
    "kernels",
    "lazy",
    "nn",
    "nn_ops",
    "optim",
    "plots",
    "plugins",
    "processing",
    "random",
    "registry",
    "run",
    "serialization",
    "tensor",
    "tensor_ops",
    "tensorboard",
    "testing",
    "train",
    "trainer",
)

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


def __getattr__(name: str) -> Any:
    """Import a lazy name or a public submodule on first use (and keep it)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"minigan.{name}")
    else:
        raise AttributeError(f"module 'minigan' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


class _Package(types.ModuleType):
    """``minigan`` itself. Importing the submodule ``minigan.tensor`` makes Python set the
    package's attribute ``tensor`` to that module; here it stays the function
    ``minigan.tensor.tensor``, as ``minigan.tensor([1.0])`` needs."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"minigan.{name}":
            value = getattr(value, name, value) if _LAZY.get(name) == value.__name__ else value
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
