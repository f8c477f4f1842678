"""The FID Inception-v3: the 2015-12-05 TensorFlow graph as ported to PyTorch by pytorch-fid,
rebuilt with minigan layers so that FID needs no PyTorch.

It is torchvision's Inception-v3 (``BasicConv2d`` = conv without bias, BatchNorm eps 0.001,
ReLU) with pytorch-fid's patches — the quirks of the TensorFlow graph that FID was defined on:

- ``Mixed_5b/5c/5d`` (``FIDInceptionA``), ``Mixed_6b..6e`` (``FIDInceptionC``) and
  ``Mixed_7b`` (``FIDInceptionE_1``) average-pool their pool branch *without* counting the
  zero padding (TensorFlow's ``SAME`` average pool; PyTorch's ``count_include_pad=False``);
- ``Mixed_7c`` (``FIDInceptionE_2``) max-pools its pool branch instead of averaging;
- 1008 output classes (unused here: the features are the 2048-d global average pool);
- inputs are resized to 299×299 by bilinear interpolation (``align_corners=False``) and
  expected in [-1, 1] (pytorch-fid maps its [0, 1] input with ``2x - 1``; minigan's images
  already are in [-1, 1], and the resize commutes with that affine map).

The weights are pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (parameter names as
in the file: ``Mixed_5b.branch1x1.conv.weight`` ...), read with minigan's safe unpickler.

>>> net = FIDInceptionV3()
>>> sum(p.numel() for p in net.parameters())
21785568
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn
from minigan.tensor import Tensor

__all__ = ["FIDInceptionV3", "load_fid_weights"]

_Pair = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel_size: _Pair, stride: _Pair = 1, padding: _Pair = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def avg_pool3x3_same(x: Tensor) -> Tensor:
    """3×3 stride-1 average pool with padding 1 that averages only the real (unpadded) pixels:
    PyTorch's ``count_include_pad=False``, TensorFlow's ``SAME``."""
    h, w = x.shape[2], x.shape[3]
    ones = np.pad(np.ones((h, w), np.float32), 1)
    counts = np.zeros((h, w), np.float32)
    for i in range(3):
        for j in range(3):
            counts += ones[i : i + h, j : j + w]
    scale = minigan.tensor((9.0 / counts).astype(x.dtype)[None, None], device=x.device)
    return F.avg_pool2d(x, 3, 1, 1) * scale


def max_pool3x3(x: Tensor, stride: int) -> Tensor:
    return F.max_pool2d(x, 3, stride, 1 if stride == 1 else 0)


class FIDInceptionA(nn.Module):
    """``Mixed_5b..5d``: 1×1, 5×5, double 3×3 and (count_include_pad=False) pool branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(avg_pool3x3_same(x))
        return F.cat([self.branch1x1(x), b5, b3, pool], dim=1)


class InceptionB(nn.Module):
    """``Mixed_6a``: grid reduction (stride-2 3×3, double 3×3 and max-pool branches)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return F.cat([self.branch3x3(x), b3, max_pool3x3(x, 2)], dim=1)


class FIDInceptionC(nn.Module):
    """``Mixed_6b..6e``: factorised 7×7 branches (1×7 / 7×1) and the FID pool branch."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        pool = self.branch_pool(avg_pool3x3_same(x))
        return F.cat([self.branch1x1(x), b7, d, pool], dim=1)


class InceptionD(nn.Module):
    """``Mixed_7a``: grid reduction (3×3 stride 2, 7×7 then 3×3 stride 2, max pool)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return F.cat([b3, b7, max_pool3x3(x, 2)], dim=1)


class FIDInceptionE(nn.Module):
    """``Mixed_7b`` (``max_pool=False``: FIDInceptionE_1, count_include_pad=False average) and
    ``Mixed_7c`` (``max_pool=True``: FIDInceptionE_2, a 3×3 max pool in the pool branch)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = F.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = F.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], dim=1)
        pooled = max_pool3x3(x, 1) if self.max_pool else avg_pool3x3_same(x)
        return F.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], dim=1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 up to its 2048-d global average pool (pytorch-fid's block 3).

    ``forward`` takes NCHW RGB images in [-1, 1] of any size (resized to 299×299 unless
    ``resize_input=False``) and returns ``(N, 2048)`` features.
    """

    def __init__(self, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(max_pool3x3(x, 2)))
        x = max_pool3x3(x, 2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.mean(x, dim=(2, 3))


def load_fid_weights(net: FIDInceptionV3, state: Mapping[str, Any]) -> None:
    """Load pytorch-fid's state dict (its ``fc.*`` classifier and any ``num_batches_tracked``
    counters are not part of the feature network and are skipped)."""
    wanted = net.state_dict()
    kept = {k: np.asarray(v) for k, v in state.items() if k in wanted}
    missing = sorted(k for k in set(wanted) - set(kept) if not k.endswith("num_batches_tracked"))
    if missing:
        raise ValueError(
            f"not FID Inception weights: {len(missing)} tensors missing (first: {missing[0]})"
        )
    net.load_state_dict(kept, strict=False)
