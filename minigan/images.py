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
    "image_size",
    "max_pixels",
    "set_max_pixels",
    "ImageError",
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


# --------------------------------------------------------------------------- reading, bounded
#: the most pixels (width x height x frames) an image may have before it is decoded
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "MINIGAN_MAX_PIXELS"
_max_pixels: int | None = None  # set by --max-pixels


class ImageError(ValueError):
    """An image file that cannot be used: unreadable, corrupt, or over the pixel limit."""


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit of :func:`read_image` (``None``: back to the environment/default)."""
    global _max_pixels
    if limit is not None and limit < 1:
        raise ValueError(f"the pixel limit must be at least 1, got {limit}")
    _max_pixels = limit


def max_pixels() -> int:
    """The pixel limit now in force: ``--max-pixels``, else ``$MINIGAN_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS` (50 megapixels).

    >>> max_pixels() == DEFAULT_MAX_PIXELS or MAX_PIXELS_ENV in os.environ
    True
    """
    if _max_pixels is not None:
        return _max_pixels
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV}={text!r} is not a number of pixels") from None
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={text!r}: the pixel limit must be at least 1")
    return value


def image_size(path: PathLike) -> tuple[int, int, int]:
    """``(width, height, frames)`` of an image file, read from its header only (nothing is
    decoded). Raises :class:`ImageError` for a file that is not a readable image."""
    import warnings

    from PIL import Image

    path = os.fspath(path)
    with open(path, "rb"):  # FileNotFoundError / PermissionError with the path, as usual
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning: we check below
            with Image.open(path) as im:
                width, height = im.size
                frames = int(getattr(im, "n_frames", 1) or 1)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: {e}") from None
    except Exception as e:  # UnidentifiedImageError, SyntaxError from a broken header, ...
        raise ImageError(
            f"{path}: not a readable image ({type(e).__name__}: {e}); is it empty, truncated or "
            f"another kind of file?"
        ) from None
    return width, height, frames


def check_pixels(path: PathLike, width: int, height: int, frames: int = 1) -> None:
    """Raise :class:`ImageError` if an image of this size is over :func:`max_pixels`."""
    limit, pixels = max_pixels(), width * height * max(frames, 1)
    if pixels > limit:
        of = f" x {frames} frames" if frames > 1 else ""
        raise ImageError(
            f"{os.fspath(path)}: {width}x{height}{of} pixels ({pixels / 1e6:.1f} MP) is over the "
            f"limit of {limit / 1e6:.1f} MP; if you trust this file, raise the limit with "
            f"--max-pixels N or {MAX_PIXELS_ENV}=N"
        )


def read_image(path: PathLike) -> np.ndarray:
    """An image file as a ``uint8`` array (H, W, C) or (H, W).

    The size is read from the file's header first and checked against :func:`max_pixels`
    before anything is decoded (a small file can decode to gigabytes). A file that is not an
    image, or is truncated or corrupt, raises :class:`ImageError` naming it.
    """
    import warnings

    import imageio.v3 as iio

    path = os.fspath(path)
    width, height, frames = image_size(path)
    check_pixels(path, width, height, frames)
    try:
        with warnings.catch_warnings():  # imageio's plugins warn while probing a bad file
            warnings.simplefilter("ignore")
            return np.asarray(iio.imread(path))
    except MemoryError:
        raise
    except Exception as e:  # truncated data, a corrupt JPEG, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise ImageError(
            f"{path}: cannot decode this image ({type(e).__name__}: {first}); it may be "
            f"truncated or corrupt"
        ) from None


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
