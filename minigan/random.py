"""The random state every random thing in minigan draws from.

>>> import minigan
>>> minigan.manual_seed(0)
>>> a = generator().random()
>>> minigan.manual_seed(0)
>>> a == generator().random()
True

Must import nothing of minigan (tensors build on it).
"""

from __future__ import annotations

import random as _pyrandom
import sys
from typing import Any

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed minigan's generator, Python's ``random``, NumPy's legacy global state and,
    if it is already imported, CuPy's."""
    global _generator
    seed = int(seed)
    _generator = np.random.default_rng(seed)
    _pyrandom.seed(seed)
    np.random.seed(seed % 2**32)
    if "cupy" in sys.modules:
        sys.modules["cupy"].random.seed(seed)


def generator() -> np.random.Generator:
    """The global ``numpy.random.Generator`` (replaced by :func:`manual_seed`)."""
    return _generator


def get_state() -> dict[str, Any]:
    """The generator's state, for checkpoints (JSON-serialisable)."""
    return dict(_generator.bit_generator.state)


def set_state(state: dict) -> None:
    """Restore a state saved by :func:`get_state`."""
    _generator.bit_generator.state = state
