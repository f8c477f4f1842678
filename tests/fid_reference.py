"""pytorch-fid's FID Inception, importable without torchvision, as the tests' reference.

pytorch-fid (``pip install pytorch-fid``, a test-only dependency) defines the FID network as
patches of ``torchvision.models.inception``: ``FIDInceptionA/C/E_1/E_2`` subclass
torchvision's blocks, ``fid_inception_v3`` builds torchvision's ``Inception3`` and swaps them
in, and ``InceptionV3`` wraps it with the 299×299 resize and the ``2x - 1`` input scaling.
torchvision's wheels from the package index are built against a newer torch than the one the
tests pin, and fail to import (``operator torchvision::nms does not exist``). So this module
puts a minimal ``torchvision`` into ``sys.modules`` whose ``models.inception`` is a
transcription of torchvision's (v0.29) ``BasicConv2d``, ``InceptionA``–``InceptionE`` and
``Inception3`` constructor — every FID-specific line then runs from pytorch-fid's own,
unmodified source.

:func:`reference_inception` returns pytorch-fid's ``InceptionV3`` (block 3, 2048-d) with the
given state dict (torchvision/pytorch-fid key names) instead of the downloaded weights.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int, conv_block: Any = None) -> None:
        super().__init__()
        conv_block = conv_block or BasicConv2d
        self.branch1x1 = conv_block(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = conv_block(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = conv_block(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = conv_block(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv_block(96, 96, kernel_size=3, padding=1)
        self.branch_pool = conv_block(in_channels, pool_features, kernel_size=1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int, conv_block: Any = None) -> None:
        super().__init__()
        conv_block = conv_block or BasicConv2d
        self.branch3x3 = conv_block(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = conv_block(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv_block(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_1(x)
        branch3x3dbl = self.branch3x3dbl_2(branch3x3dbl)
        branch3x3dbl = self.branch3x3dbl_3(branch3x3dbl)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int, conv_block: Any = None) -> None:
        super().__init__()
        conv_block = conv_block or BasicConv2d
        self.branch1x1 = conv_block(in_channels, 192, kernel_size=1)
        c7 = channels_7x7
        self.branch7x7_1 = conv_block(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = conv_block(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = conv_block(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv_block(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = conv_block(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv_block(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv_block(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv_block(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = conv_block(in_channels, 192, kernel_size=1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int, conv_block: Any = None) -> None:
        super().__init__()
        conv_block = conv_block or BasicConv2d
        self.branch3x3_1 = conv_block(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = conv_block(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = conv_block(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = conv_block(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv_block(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv_block(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = self.branch3x3_2(branch3x3)
        branch7x7x3 = self.branch7x7x3_1(x)
        branch7x7x3 = self.branch7x7x3_2(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_3(branch7x7x3)
        branch7x7x3 = self.branch7x7x3_4(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels: int, conv_block: Any = None) -> None:
        super().__init__()
        conv_block = conv_block or BasicConv2d
        self.branch1x1 = conv_block(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = conv_block(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = conv_block(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = conv_block(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv_block(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = conv_block(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv_block(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = conv_block(in_channels, 192, kernel_size=1)


class Inception3(nn.Module):
    """torchvision's constructor (``aux_logits=False``; the forward pass is pytorch-fid's,
    which calls the submodules itself)."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, **_: Any) -> None:
        super().__init__()
        assert not aux_logits
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(2048, num_classes)


def _install_torchvision_shim() -> None:
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "_minigan_shim"):
        return
    tv = types.ModuleType("torchvision")
    tv.__version__ = "0.29.1"
    tv._minigan_shim = True
    models = types.ModuleType("torchvision.models")
    inception = types.ModuleType("torchvision.models.inception")
    for cls in (BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE):
        setattr(inception, cls.__name__, cls)
    inception.Inception3 = Inception3
    models.inception = inception
    models.inception_v3 = lambda weights=None, init_weights=False, **kw: Inception3(**kw)
    tv.models = models
    # fid_score imports torchvision.transforms (only its image loader uses it)
    transforms = types.ModuleType("torchvision.transforms")
    tv.transforms = transforms
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.models": models,
            "torchvision.models.inception": inception,
            "torchvision.transforms": transforms,
        }
    )


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for the FID Inception in pytorch-fid's file layout (``fc.*`` included,
    no ``num_batches_tracked``, as in ``pt_inception-2015-12-05``): He-scaled convolutions and
    BatchNorm statistics that keep activations in a sane range through all 94 layers."""
    _install_torchvision_shim()
    from pytorch_fid import inception as pfid

    rng = np.random.default_rng(seed)
    shapes = {k: tuple(v.shape) for k, v in pfid_model_template(pfid).state_dict().items()}
    state: dict[str, np.ndarray] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("conv.weight"):
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif key.endswith("bn.weight"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("bn.bias") or key.endswith("running_mean"):
            value = rng.normal(0, 0.1, shape)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        else:  # fc
            value = rng.normal(0, 0.01, shape)
        state[key] = value.astype(np.float32)
    return state


def pfid_model_template(pfid: Any) -> nn.Module:
    """pytorch-fid's patched Inception3 (before its weights are loaded)."""
    saved = pfid.load_state_dict_from_url
    captured: dict[str, nn.Module] = {}
    original_load = Inception3.load_state_dict

    def fake_url(*_: Any, **__: Any) -> dict[str, Any]:
        return {}

    def capture(self: nn.Module, state: Any, *a: Any, **k: Any) -> Any:
        captured["model"] = self
        return None

    pfid.load_state_dict_from_url = fake_url
    Inception3.load_state_dict = capture  # type: ignore[method-assign]
    try:
        pfid.fid_inception_v3()
    finally:
        pfid.load_state_dict_from_url = saved
        Inception3.load_state_dict = original_load  # type: ignore[method-assign]
    return captured["model"]


def reference_inception(state: dict[str, np.ndarray]) -> nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` (resize to 299, ``2x - 1``) with ``state`` loaded
    through its own ``fid_inception_v3`` (``load_state_dict_from_url`` returns ``state``)."""
    _install_torchvision_shim()
    from pytorch_fid import inception as pfid

    saved = pfid.load_state_dict_from_url
    pfid.load_state_dict_from_url = lambda *a, **k: {
        key: torch.from_numpy(v) for key, v in state.items()
    }
    try:
        model = pfid.InceptionV3([3])
    finally:
        pfid.load_state_dict_from_url = saved
    return model.eval()


def fid_score_module() -> Any:
    """``pytorch_fid.fid_score`` (its ``calculate_frechet_distance`` is the reference)."""
    _install_torchvision_shim()
    from pytorch_fid import fid_score

    return fid_score
