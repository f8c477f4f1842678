"""DeepDream's parameters (:class:`DreamConfig`), in a module of their own so that the hook
module can declare ``minigan dream``'s options without importing the algorithm or NumPy.

This module must import nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DreamConfig"]


@dataclass
class DreamConfig:
    """DeepDream's parameters (each one is also a ``minigan dream`` option; ``min``/``max`` in
    a field's metadata bound its option)."""

    model: Literal["shapes", "vgg16", "googlenet"] = field(
        default="shapes",
        metadata={"help": "network: shapes (shipped, offline), vgg16 or googlenet"},
    )
    weights: str | None = field(
        default=None,
        metadata={
            "help": "weights file (.pth read without PyTorch, .safetensors, .npz)",
            "default_help": "shipped for shapes, the torch hub cache for vgg16/googlenet",
        },
    )
    layers: str | None = field(
        default=None,
        metadata={
            "help": "layers and weights, e.g. conv4_3:1.0,conv5_1:0.5",
            "default_help": "per model",
        },
    )
    channels: str | None = field(
        default=None,
        metadata={
            "help": "channels to amplify: 3,17 (every layer) or conv4_3=3,17;conv5_1=9",
            "default_help": "all",
        },
    )
    octaves: int = field(default=4, metadata={"help": "number of octaves (image scales)", "min": 1})
    octave_scale: float = field(
        default=1.4, metadata={"help": "size ratio between octaves", "min": 1.0}
    )
    steps: int = field(default=10, metadata={"help": "gradient steps per octave", "min": 1})
    lr: float = field(default=0.01, metadata={"help": "step size (image in [0, 1])"})
    jitter: int = field(
        default=32, metadata={"help": "largest random roll in pixels per step", "min": 0}
    )
    tile: int = field(
        default=512, metadata={"help": "largest tile side for gradients (0: no tiling)", "min": 0}
    )
    laplacian: int = field(
        default=0,
        metadata={"help": "Laplacian pyramid levels to normalise the gradient (0: off)", "min": 0},
    )
    guide: str | None = field(
        default=None,
        metadata={
            "help": "guide image: dream towards its features instead of the input's own",
            "default_help": "none: amplify what the network sees in the input",
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed (jitter and tile rolls)", "min": 0})
    device: Literal["cpu", "cuda"] = field(
        default="cpu", metadata={"help": "where the network runs (the image stays in host memory)"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar per octave"})
