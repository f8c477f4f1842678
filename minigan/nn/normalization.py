"""Normalisation layers beyond batch and instance norm: ``GroupNorm`` and ``LayerNorm``
(PyTorch's names, arguments, parameter names and initialisation).

>>> import minigan
>>> from minigan import nn
>>> nn.GroupNorm(2, 4)(minigan.randn(3, 4, 5, 5)).shape
(3, 4, 5, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import minigan.functional as F
from minigan.nn.layers import _check_dtype_and_device, _check_floating, _check_tensor
from minigan.nn.module import Module, Parameter
from minigan.tensor import Tensor

__all__ = ["GroupNorm", "LayerNorm"]


class GroupNorm(Module):
    """Normalise each sample's channels in ``num_groups`` groups (over channels and positions),
    then a per-channel affine ``weight``/``bias`` (ones and zeros at first)."""

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True
    ) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels={num_channels} must be divisible by "
                f"num_groups={num_groups}"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine,
        )
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype=np.float32))
            self.bias = Parameter(np.zeros(num_channels, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        name = f"GroupNorm({self.num_groups}, {self.num_channels})"
        _check_tensor(name, x)
        _check_floating(name, x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{name}: expected an input (N, {self.num_channels}, …), got shape {x.shape}"
            )
        if self.weight is not None:
            _check_dtype_and_device(name, x, self.weight)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, then an elementwise affine of
    that shape (``elementwise_affine``; ``bias=False`` drops the shift)."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        name = f"LayerNorm({self.normalized_shape})"
        _check_tensor(name, x)
        _check_floating(name, x)
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"{name}: the input's trailing dims must be {self.normalized_shape}, got input "
                f"shape {x.shape}"
            )
        if self.weight is not None:
            _check_dtype_and_device(name, x, self.weight)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}"
        )
