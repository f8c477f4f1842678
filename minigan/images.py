"""Images out: grids, PNGs that carry their parameters, GIFs (charts: :mod:`minigan.plots`).

Everything here works on NumPy arrays. Model outputs are NCHW float32 in [-1, 1] (what a
``tanh`` generator gives); files are written through imageio, atomically (a temporary file
renamed over the target), and PNGs record the parameters that made them as text chunks.
This module must not import the tensor library, the kernels, the training code or plugins.

>>> import numpy as np, os, tempfile
>>> batch = np.linspace(-1, 1, 6 * 3 * 4 * 4, dtype=np.float32).reshape(6, 3, 4, 4)
>>> grid = make_grid(batch, nrow=3, padding=1)
>>> grid.shape, grid.dtype                    # 2 rows x 3 columns of 4x4 tiles, 1 px apart
((11, 16, 3), dtype('uint8'))
>>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
>>> save_image(path, grid, metadata={"seeds": [0, 1, 2], "model": "dcgan"})
>>> read_metadata(path)
{'seeds': '[0, 1, 2]', 'model': 'dcgan'}
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "to_uint8",
    "as_rgb_float",
    "unit_to_uint8",
    "make_grid",
    "save_image",
    "read_image",
    "read_metadata",
    "save_gif",
]

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- arrays
def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] (NCHW or CHW) as ``uint8`` NHWC (or HWC) in [0, 255].

    ``uint8`` input is taken to be channel-last already and returned as is.

    >>> to_uint8(np.array([[[[-1.0, 0.0, 1.0]]]], np.float32)).tolist()
    [[[[0], [128], [255]]]]
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    u8 = np.rint((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return np.moveaxis(u8, -3, -1)


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """An image as H×W×3 float32 in [0, 1]: ``uint8`` is scaled, gray is repeated, alpha dropped.

    >>> as_rgb_float(np.array([[0, 255]], np.uint8)).tolist()
    [[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    elif image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535
    image = image.astype(np.float32, copy=False)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image H×W×C with 1 to 4 channels, got shape {image.shape}")
    if image.shape[2] in (2, 4):  # drop alpha
        image = image[:, :, :-1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.clip(image, 0, 1)


def unit_to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] (H×W×C) as ``uint8`` in [0, 255], rounded.

    >>> unit_to_uint8(np.array([[[0.0, 0.5, 1.0]]])).tolist()
    [[[0, 128, 255]]]
    """
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def make_grid(
    images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> np.ndarray:
    """Tile a batch into one image, ``nrow`` tiles per row (default: a square-ish grid).

    ``images`` is NCHW float in [-1, 1] or NHWC ``uint8``. Returns an RGB ``uint8`` array
    (H, W, 3); grayscale tiles are repeated to RGB.

    >>> make_grid(np.zeros((5, 1, 8, 8), np.float32), padding=0).shape   # 3 per row, 2 rows
    (16, 24, 3)
    """
    tiles = to_uint8(images)
    if tiles.ndim != 4:
        raise ValueError(f"make_grid: expected a batch of images, got shape {tiles.shape}")
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    n, h, w, c = tiles.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol_rows = math.ceil(n / nrow)
    grid = np.full(
        (ncol_rows * (h + padding) + padding, nrow * (w + padding) + padding, c),
        pad_value,
        np.uint8,
    )
    for i, tile in enumerate(tiles):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = tile
    return grid


# --------------------------------------------------------------------------- files
def _atomic(path: PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` and rename the result over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    root, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(directory, f".{root}.{uuid.uuid4().hex[:8]}.tmp{ext}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def save_image(
    path: PathLike, image: np.ndarray, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write an image (HWC/HW ``uint8``, or CHW float in [-1, 1]) as a PNG, atomically.

    ``metadata`` becomes PNG text chunks (non-string values JSON-encoded): the parameters
    that made the image travel with it. Read them with :func:`read_metadata`.
    """
    import imageio.v3 as iio
    from PIL.PngImagePlugin import PngInfo

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = to_uint8(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    info = PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(str(key), _text(value))
    _atomic(path, lambda tmp: iio.imwrite(tmp, image, extension=".png", pnginfo=info))


def read_image(path: PathLike) -> np.ndarray:
    """An image file as a ``uint8`` array (H, W, C) or (H, W)."""
    import imageio.v3 as iio

    return np.asarray(iio.imread(os.fspath(path)))


def read_metadata(path: PathLike) -> dict[str, str]:
    """The text chunks of a PNG (what :func:`save_image` stored as ``metadata``)."""
    from PIL import Image

    with Image.open(os.fspath(path)) as im:
        return dict(getattr(im, "text", {}))


def save_gif(path: PathLike, frames: Sequence[np.ndarray], seconds_per_frame: float = 0.5) -> None:
    """An animated, looping GIF of equally-sized ``uint8`` RGB frames, written atomically.
    The last frame is held three times as long."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError("save_gif: no frames")
    stack = np.stack([np.asarray(f, np.uint8) for f in frames])
    ms = int(seconds_per_frame * 1000)
    durations = [ms] * (len(stack) - 1) + [3 * ms]
    _atomic(
        path,
        lambda tmp: iio.imwrite(tmp, stack, extension=".gif", duration=durations, loop=0),
    )
