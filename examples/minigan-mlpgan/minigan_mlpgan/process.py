"""The ``posterize`` processor: ``minigan process posterize photo.png --levels 4``.

A processor class has a ``Config`` dataclass (its fields become the command's options), is
built once as ``Posterize(Posterize.Config(levels=4))``, and maps one image to another with
``process``: the input is H×W×3 float32 RGB in [0, 1] (grayscale files arrive repeated to
RGB, 8/16-bit values scaled), the output must be a float H×W×3 array in [0, 1] — minigan
checks it and names this plugin if it is not. ``metadata()`` goes into the output PNG.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Config:
    levels: int = dataclasses.field(default=4, metadata={"help": "grey levels per channel (2-256)"})


class Posterize:
    """Reduce each channel to a few levels (a poster look)."""

    Config = Config

    def __init__(self, config: Config) -> None:
        if not 2 <= config.levels <= 256:
            raise ValueError(f"posterize: --levels must be in 2..256, got {config.levels}")
        self.config = config

    def process(self, image: np.ndarray) -> np.ndarray:
        steps = self.config.levels - 1
        return np.round(image * steps) / steps  # float in [0, 1], same H×W×3

    def metadata(self) -> dict:
        return {"levels": self.config.levels}
