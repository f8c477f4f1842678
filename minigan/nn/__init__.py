"""Neural-network building blocks with PyTorch's names: ``Module``, layers, ``init``.

>>> from minigan import nn
>>> model = nn.Sequential(nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from minigan.nn import init, utils
from minigan.nn.attention import MultiheadAttention
from minigan.nn.layers import (
    CELU,
    ELU,
    GELU,
    SELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Embedding,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    InstanceNorm2d,
    LeakyReLU,
    Linear,
    LogSigmoid,
    MaxPool2d,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softplus,
    Softsign,
    Tanh,
    Unflatten,
    Upsample,
)
from minigan.nn.module import Module, ModuleList, Parameter, Sequential
from minigan.nn.normalization import GroupNorm, LayerNorm
from minigan.nn.pixelshuffle import PixelShuffle, PixelUnshuffle

__all__ = [
    "GELU",
    "SiLU",
    "Mish",
    "ELU",
    "SELU",
    "CELU",
    "Hardtanh",
    "ReLU6",
    "Hardswish",
    "Hardsigmoid",
    "Softsign",
    "LogSigmoid",
    "Embedding",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Dropout",
    "Flatten",
    "Identity",
    "InstanceNorm2d",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "Unflatten",
    "Upsample",
    "init",
    "utils",
    "GroupNorm",
    "LayerNorm",
    "MultiheadAttention",
    "PixelShuffle",
    "PixelUnshuffle",
]
