"""The ``checkers`` dataset: random checkerboards, generated (nothing to download).

A dataset factory is called by :func:`minigan.data.open_dataset` (``--data checkers``) with
the keyword arguments it accepts out of ``path``, ``resolution``, ``channels``, ``seed`` and
``limit`` (a ``None`` means "not asked for"), and returns a :class:`minigan.data.Dataset`.
open_dataset then applies ``resolution``, ``channels`` and ``limit`` to whatever comes back
(:meth:`Dataset.conform`), so a factory may ignore them — this one honours them because
drawing at the right size is cheaper than resizing.
"""

from __future__ import annotations

import numpy as np

from minigan.data import Dataset

#: how many images ``limit=None`` gives: a generated dataset chooses its own size
DEFAULT_COUNT = 2048


def checkers(
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Random two-colour checkerboards (square size 2-8 px, random phase), 32x32 RGB.

    The first docstring line is what ``minigan datasets`` shows. ``path`` is unused (nothing
    is read); ``seed`` fixes the images; ``limit=None`` means the dataset's own size
    (2048 images) and ``limit=n`` the first n of them.
    """
    size = 32 if resolution is None else int(resolution)
    count = DEFAULT_COUNT if limit is None else int(limit)
    rng = np.random.default_rng(seed)
    cells = rng.integers(2, 9, count)
    phase = rng.integers(0, 8, (count, 2))
    colours = rng.uniform(0, 1, (count, 2, 3))
    ys, xs = np.mgrid[0:size, 0:size]
    parity = ((ys[None] + phase[:, :1, None]) // cells[:, None, None]
              + (xs[None] + phase[:, 1:, None]) // cells[:, None, None]) % 2  # fmt: skip
    rgb = np.where(parity[:, None] == 0, colours[:, 0, :, None, None], colours[:, 1, :, None, None])
    images = np.rint(rgb * 255).astype(np.uint8)  # (N, 3, H, W) uint8: Dataset takes it as is
    if channels == 1:  # open_dataset would convert too (by luminance); this is the same
        images = np.rint(
            np.tensordot([0.299, 0.587, 0.114], images.astype(np.float32), axes=(0, 1))
        ).astype(np.uint8)[:, None]
    return Dataset(images, cells - 2, name="checkers", classes=[f"{c}px" for c in range(2, 9)])
