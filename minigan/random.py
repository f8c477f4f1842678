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
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The global ``numpy.random.Generator`` (replaced by :func:`manual_seed`); inside
    :func:`batch_shard`, a view of it that draws batch-shaped arrays for the global batch."""
    return _generator if _shard is None else _ShardedGenerator(_generator, *_shard)  # type: ignore[return-value]


# ----------------------------------------------------------------- data-parallel random draws
_shard: tuple[int, int, int] | None = None  # (rank, world_size, per-process batch)
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15  # the counter step of the dropout stream (kernels)


def _is_batch_shape(shape: Any, batch: int) -> bool:
    if shape is None:
        return False
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return len(shape) >= 1 and shape[0] == batch and (len(shape) > 1 or batch > 1)


class _ShardedGenerator:
    """The global generator as one process of ``world_size`` sees it: a draw whose first
    dimension is the per-process batch ``b`` draws the whole ``(world_size * b, ...)`` array —
    exactly what one process training on the global batch draws — and returns this rank's
    rows ``rank * b : (rank + 1) * b``. Every other draw (scalars, ``rand(1)``) is shared."""

    def __init__(self, gen: np.random.Generator, rank: int, world: int, batch: int) -> None:
        self._gen, self._rank, self._world, self._batch = gen, rank, world, batch

    def _draw(self, method: str, size: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_batch_shape(size, self._batch):
            return getattr(self._gen, method)(*args, size=size, **kwargs)
        size = (size,) if isinstance(size, int) else tuple(size)
        full = getattr(self._gen, method)(*args, size=(self._world * size[0], *size[1:]), **kwargs)
        return full[self._rank * self._batch : (self._rank + 1) * self._batch]

    def standard_normal(self, size: Any = None, dtype: Any = np.float64) -> Any:
        return self._draw("standard_normal", size, dtype=dtype)

    def random(self, size: Any = None, dtype: Any = np.float64) -> Any:
        return self._draw("random", size, dtype=dtype)

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: Any = None) -> Any:
        return self._draw("normal", size, loc, scale)

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        return self._draw("uniform", size, low, high)

    def integers(
        self, low: Any, high: Any = None, size: Any = None, dtype: Any = np.int64,
        endpoint: bool = False,
    ) -> Any:  # fmt: skip
        return self._draw("integers", size, low, high, dtype=dtype, endpoint=endpoint)

    def __getattr__(self, name: str) -> Any:  # choice(), bit_generator, ...: shared
        return getattr(self._gen, name)


@contextmanager
def batch_shard(rank: int, world_size: int, batch: int) -> Iterator[None]:
    """Inside the block, random draws are this process's slice of the global batch's draws
    (data-parallel training with deterministic scaling): a draw shaped ``(batch, ...)`` is
    the rows ``rank * batch : (rank + 1) * batch`` of the ``(world_size * batch, ...)`` draw
    one process would make, and every process's generator advances exactly as that one
    process's does. Dropout masks follow through :func:`stream_offset`.

    >>> manual_seed(0)
    >>> whole = generator().standard_normal((4, 2))
    >>> manual_seed(0)
    >>> with batch_shard(rank=1, world_size=2, batch=2):
    ...     part = generator().standard_normal((2, 2))
    >>> bool((part == whole[2:]).all())
    True
    """
    global _shard
    saved, _shard = _shard, (int(rank), int(world_size), int(batch))
    try:
        yield
    finally:
        _shard = saved


def stream_offset(seed: int, shape: tuple[int, ...]) -> int:
    """The seed of a counter-based (SplitMix64) stream drawn for an array of ``shape``,
    moved on to this process's elements inside :func:`batch_shard`: element ``i`` of rank
    ``r``'s ``(b, ...)`` array is then element ``r * size + i`` of the global array's stream
    (the stream's counter ``i`` enters as ``seed + (i + 1) * gamma``)."""
    if _shard is None or not _is_batch_shape(shape, _shard[2]):
        return seed
    rank, size = _shard[0], int(np.prod(shape))
    return (int(seed) + rank * size * SPLITMIX_GAMMA) % 2**64


def get_state() -> dict[str, Any]:
    """The generator's state, for checkpoints (JSON-serialisable)."""
    return dict(_generator.bit_generator.state)


def set_state(state: dict) -> None:
    """Restore a state saved by :func:`get_state`."""
    _generator.bit_generator.state = state
