"""``PixelShuffle`` and ``PixelUnshuffle``: sub-pixel rearrangements between channels and
space (PyTorch's layers).

>>> import minigan
>>> from minigan import nn
>>> nn.PixelShuffle(2)(minigan.zeros(1, 8, 3, 3)).shape
(1, 2, 6, 6)
"""

from __future__ import annotations

import minigan.functional as F
from minigan.nn.layers import _check_tensor
from minigan.nn.module import Module
from minigan.tensor import Tensor

__all__ = ["PixelShuffle", "PixelUnshuffle"]


class PixelShuffle(Module):
    """(…, C·r², H, W) -> (…, C, H·r, W·r)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = int(upscale_factor)

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor(f"PixelShuffle({self.upscale_factor})", x)
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(…, C, H·r, W·r) -> (…, C·r², H, W)."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = int(downscale_factor)

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor(f"PixelUnshuffle({self.downscale_factor})", x)
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
