"""minigan's built-in datasets: ``shapes``, ``mnist``, ``folder`` and ``npz``.

Registered through the ``register_datasets`` hook of :mod:`minigan.plugins.datasets` (which
imports this module only when a dataset is opened), like any third-party dataset. Each is a
factory ``factory(path=None, resolution=None, channels=None, seed=0, limit=None)`` returning a
:class:`minigan.data.Dataset` (images stored as ``uint8`` NCHW, served as float32 in [-1, 1]).

>>> ds = shapes(resolution=28, channels=1, limit=12, seed=3)
>>> ds
Dataset('shapes', 12 images, 1x28x28, uint8, 6 classes: circle, square, triangle, ...)
>>> images, labels = ds[:4]
>>> images.shape, images.dtype, labels.dtype
((4, 1, 28, 28), dtype('float32'), dtype('int64'))

This module must not import the models, the training loop, the CLI or another plugin.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.request
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from minigan.batch import image_files
from minigan.data import (
    IMAGE_EXTENSIONS,
    LUMA,
    Dataset,
    check_npz,
    resize_and_crop,
    show_progress,
    to_channels,
    to_uint8,
)

# ============================================================================ shapes
SHAPE_CLASSES = ["circle", "square", "triangle", "star", "cross", "ellipse"]
SHAPES_COUNT = 20_000


def star_sdf(x: np.ndarray, y: np.ndarray, points: int, inner: float) -> np.ndarray:
    """Signed distance (negative inside) to a star with ``points`` tips at radius 1 and its
    concave corners at radius ``inner``; a tip points along -y (up in an image).

    A regular polygon is the star whose corners sit at the edge midpoints:
    ``inner = cos(pi / points)``. By symmetry, each point is folded into the wedge between a
    tip and the next corner, where the boundary is the single segment tip -> corner (the
    polar folding of Inigo Quilez's ``sdStar``).

    >>> square = dict(points=4, inner=np.cos(np.pi / 4))   # corners at radius 1
    >>> x, y = np.array([0.0, 0.0]), np.array([0.0, -2.0])
    >>> np.round(star_sdf(x, y, **square), 4).tolist()     # centre; a tip's length beyond one
    [-0.7071, 1.0]
    """
    sector, inner = np.float32(np.pi / points), float(inner)  # stay in float32
    # angle from the nearest tip: 0 at a tip, ``sector`` at a corner
    angle = np.abs(np.mod(np.arctan2(x, -y), 2 * sector) - sector)
    rho = np.sqrt(x * x + y * y)
    px, py = rho * np.sin(sector - angle), rho * np.cos(sector - angle)  # tip along +y
    ex, ey = inner * np.sin(sector), inner * np.cos(sector) - 1  # edge: tip (0, 1) -> corner
    wx, wy = px, py - 1
    t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
    distance = np.sqrt((wx - ex * t) ** 2 + (wy - ey * t) ** 2)
    return np.where(ex * wy - ey * wx < 0, -distance, distance)


def box_sdf(x: np.ndarray, y: np.ndarray, half_width: float, half_height: float) -> np.ndarray:
    """Signed distance (negative inside) to an axis-aligned rectangle centred at 0."""
    dx, dy = np.abs(x) - half_width, np.abs(y) - half_height
    outside = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2)
    return outside + np.minimum(np.maximum(dx, dy), 0)


def triangle_sdf(x: np.ndarray, y: np.ndarray, half_side: float) -> np.ndarray:
    """Signed distance (negative inside) to an equilateral triangle centred at 0, one tip
    along +y (Inigo Quilez's ``sdEquilateralTriangle``: fold by symmetry, no trigonometry).

    >>> float(triangle_sdf(np.array(0.0), np.array(0.0), np.sqrt(3)))   # inradius 1
    -1.0
    """
    k = 3**0.5
    x = np.abs(x) - half_side
    y = y + half_side / k
    fold = x + k * y > 0  # beyond the slanted edge's normal: reflect across it
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * half_side, 0)
    distance = np.sqrt(x * x + y * y)
    return np.where(y > 0, -distance, distance)


def shape_sdf(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to shape ``kind`` in its own unit coordinates (negative inside).

    Every shape fits in the unit disc, so it stays in the image at any rotation.
    """
    if kind == "circle":
        return np.sqrt(x * x + y * y) - 0.85
    if kind == "square":
        return box_sdf(x, y, 0.7071, 0.7071)
    if kind == "triangle":
        return triangle_sdf(x, y, 0.866)  # circumradius 1
    if kind == "star":
        return star_sdf(x, y, 5, 0.45)
    if kind == "cross":
        return np.minimum(box_sdf(x, y, 0.95, 0.3), box_sdf(x, y, 0.3, 0.95))
    if kind == "ellipse":  # semi-axes 1 and 0.5: implicit function / its gradient's norm
        k = np.sqrt(x * x + 4 * y * y)
        gradient = np.sqrt(x * x + 16 * y * y) / np.maximum(k, 1e-6)
        return (k - 1) / np.maximum(gradient, 1e-6)
    raise ValueError(f"unknown shape {kind!r}; known: {', '.join(SHAPE_CLASSES)}")


def _random_colours(rng: np.random.Generator, luma: np.ndarray) -> np.ndarray:
    """Random RGB colours in [0, 1] with the given luminance: (n,) -> (n, 3).

    A random chroma direction orthogonal to luminance is added to gray ``luma``, scaled by a
    random saturation up to the largest step that stays inside the RGB cube. (One draw of
    shape (n, 4), so colour i does not depend on n.)
    """
    draw = rng.random((len(luma), 4))
    direction = draw[:, :3] * 2 - 1
    direction -= (direction @ LUMA)[:, None]  # LUMA sums to 1: now LUMA . direction == 0
    room = np.where(direction > 0, 1 - luma[:, None], luma[:, None]) / (np.abs(direction) + 1e-12)
    step = room.min(axis=1) * draw[:, 3]
    return np.clip(luma[:, None] + step[:, None] * direction, 0, 1)


def signed_distances(
    labels: np.ndarray,
    centre: np.ndarray,
    radius: np.ndarray,
    angle: np.ndarray,
    resolution: int,
    supersample: int = 1,
) -> np.ndarray:
    """Each image's signed distance (in pixels, negative inside) to its shape, at the centres
    of ``supersample``² sub-pixels per pixel: float32 (n, resolution·s, resolution·s).

    Arguments as :func:`render_shapes`'s.
    """
    n, side = len(labels), resolution * supersample
    distance = np.empty((n, side, side), np.float32)
    pixel = (np.arange(side, dtype=np.float32) + 0.5) / supersample  # sample centres
    for k, kind in enumerate(SHAPE_CLASSES):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            continue
        cos = np.cos(angle[idx]).astype(np.float32)[:, None, None]
        sin = np.sin(angle[idx]).astype(np.float32)[:, None, None]
        scale = radius[idx].astype(np.float32)[:, None, None]
        dx = pixel[None, None, :] - centre[idx, 0].astype(np.float32)[:, None, None]
        dy = pixel[None, :, None] - centre[idx, 1].astype(np.float32)[:, None, None]
        x = (cos * dx + sin * dy) / scale  # rotate by -angle into the shape's own frame
        y = (cos * dy - sin * dx) / scale
        distance[idx] = shape_sdf(kind, x, y) * scale  # back to pixels
    return distance


def render_shapes(
    labels: np.ndarray,
    centre: np.ndarray,
    radius: np.ndarray,
    angle: np.ndarray,
    foreground: np.ndarray,
    background: np.ndarray,
    resolution: int,
) -> np.ndarray:
    """Draw one filled, antialiased shape per image on a flat background.

    Args:
        labels: (n,) indices into :data:`SHAPE_CLASSES`.
        centre: (n, 2) shape centres ``(x, y)`` in pixels.
        radius: (n,) sizes in pixels (each shape fits in a disc of this radius).
        angle: (n,) rotations in radians.
        foreground, background: (n, C) colours in [0, 1].
        resolution: image side in pixels.

    Returns float32 (n, C, resolution, resolution) in [0, 1]. Coverage is the signed distance
    (in pixels) mapped through a one-pixel ramp: clean, antialiased edges.
    """
    distance = signed_distances(labels, centre, radius, angle, resolution)
    return blend(np.clip(0.5 - distance, 0, 1), foreground, background)


def blend(coverage: np.ndarray, foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Images (n, C, H, W) of ``foreground`` over ``background`` colours (n, C) by ``coverage``
    (n, H, W) in [0, 1]."""
    fg = foreground.astype(np.float32)[:, :, None, None]
    bg = background.astype(np.float32)[:, :, None, None]
    return bg + coverage[:, None] * (fg - bg)


class ShapeParameters(NamedTuple):
    """What :func:`shapes` draws for each image (arrays of length n; see :func:`render_shapes`)."""

    labels: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    foreground: np.ndarray
    background: np.ndarray


def shape_parameters(count: int, resolution: int, channels: int, seed: int) -> ShapeParameters:
    """The class, position, size, rotation and colours of :func:`shapes`' first ``count``
    images for ``seed``: what it renders (to draw the same shapes another way)."""
    # One independent stream per property, so image i does not depend on the count.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]
    labels = streams[0].integers(0, len(SHAPE_CLASSES), count)
    radius = streams[1].uniform(0.22, 0.45, count) * resolution
    margin = radius + 0.5
    free = resolution - 2 * margin  # room left for the centre
    centre = margin[:, None] + streams[2].uniform(0, 1, (count, 2)) * free[:, None]
    angle = streams[3].uniform(0, 2 * np.pi, count)
    dark_background = streams[4].random(count) < 0.5
    light = streams[5].uniform(0.65, 0.98, count)
    dark = streams[6].uniform(0.02, 0.35, count)
    fg_luma = np.where(dark_background, light, dark)
    bg_luma = np.where(dark_background, dark, light)
    if channels == 3:
        foreground = _random_colours(streams[7], fg_luma)
        background = _random_colours(streams[8], bg_luma)
    else:
        foreground, background = fg_luma[:, None], bg_luma[:, None]
    return ShapeParameters(labels, centre, radius, angle, foreground, background)


def shapes(
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Procedurally drawn coloured shapes: the built-in, download-free dataset.

    Each image is one filled, antialiased shape — circle, square, triangle, star, cross or
    ellipse (the label) — of random colour, size, position and rotation on a flat background
    of random colour. Shape and background always differ in luminance by at least 0.3, so the
    shape is clear in grayscale too.

    Args:
        path: unused (nothing is read).
        resolution: image side in pixels, at least 8 (default 32).
        channels: 3 (RGB, default) or 1 (grayscale).
        seed: the same seed gives the same images; ``limit=n`` gives the first ``n`` images
            of the full set for that seed.
        limit: number of images (default 20,000).

    >>> a = shapes(resolution=16, limit=50, seed=1)
    >>> b = shapes(resolution=16, limit=10, seed=1)
    >>> bool((a.data[:10] == b.data).all())
    True
    """
    resolution = 32 if resolution is None else int(resolution)
    channels = 3 if channels is None else int(channels)
    count = SHAPES_COUNT if limit is None else int(limit)
    if resolution < 8:
        raise ValueError(f"shapes: resolution must be at least 8 pixels, got {resolution}")
    if channels not in (1, 3):
        raise ValueError(f"shapes: channels must be 1 or 3, got {channels}")
    if count < 1:
        raise ValueError(f"shapes: limit must be at least 1, got {count}")

    p = shape_parameters(count, resolution, channels, seed)
    data = np.empty((count, channels, resolution, resolution), np.uint8)
    step = max(1, 2**20 // (resolution * resolution))  # ~1M pixels per chunk
    for i in range(0, count, step):
        s = slice(i, i + step)
        images = render_shapes(
            p.labels[s],
            p.centre[s],
            p.radius[s],
            p.angle[s],
            p.foreground[s],
            p.background[s],
            resolution,
        )
        data[s] = np.rint(images * 255)
    return Dataset(data, p.labels, name="shapes", classes=SHAPE_CLASSES)


# ============================================================================ mnist (IDX files)
#: Where MNIST is downloaded from, in order: the mirrors torchvision uses (the S3 copy first:
#: yann.lecun.com often refuses plain downloads now).
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
#: The training files and their MD5 checksums — the values in torchvision's
#: ``torchvision.datasets.MNIST.resources``.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
}
MNIST_CLASSES = [str(digit) for digit in range(10)]

# IDX type codes: https://yann.lecun.com/exdb/mnist/ ("THE IDX FILE FORMAT"); data big-endian
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DownloadError(OSError):
    """A dataset file could not be downloaded (offline, refused, or a checksum mismatch)."""


def cache_dir() -> Path:
    """minigan's download cache: ``$MINIGAN_CACHE``, else ``~/.cache/minigan``."""
    return Path(os.environ.get("MINIGAN_CACHE") or Path.home() / ".cache" / "minigan").expanduser()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed, detected from its first bytes), strictly.

    The header is a magic number ``0x0000TTDD`` (``TT`` the element type, ``DD`` the number
    of dimensions), then one big-endian uint32 per dimension, then exactly the data.
    A bad magic number, an unknown type, a truncated file or trailing bytes raise
    ``ValueError`` naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from e
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; expected 0x0000TTDD "
            f"with type TT in {', '.join(f'{c:02x}' for c in _IDX_DTYPES)} and DD >= 1 dims)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {problem}: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``directory`` or its torchvision-style ``raw``/``MNIST/raw``."""
    for folder in (directory, directory / "raw", directory / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def download(url: str, destination: Path, md5: str) -> Path:
    """Download ``url`` to ``destination``, verifying its MD5 checksum.

    Written to a temporary file in the same folder and renamed only once verified, so a
    failed or interrupted download never leaves a file under the final name.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name,
                      disable=not show_progress()) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DownloadError(f"checksum mismatch: MD5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return destination


def _download_mnist(directory: Path) -> None:
    """Fetch the missing MNIST training files into ``directory``, trying each mirror."""
    for name, md5 in MNIST_FILES.items():
        if _find(directory, name.removesuffix(".gz")):
            continue
        failures = []
        for mirror in MNIST_MIRRORS:
            url = mirror + name
            try:
                print(f"minigan: downloading {url}", file=sys.stderr, flush=True)
                download(url, directory / name, md5)
                break
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts, DownloadError
                failures.append(f"  {url}: {e}")
        else:
            files = "\n".join(f"  {n}  (MD5 {m})" for n, m in MNIST_FILES.items())
            raise DownloadError(
                f"could not download MNIST file {name}:\n" + "\n".join(failures) + "\n"
                f"If this machine is offline, fetch these files elsewhere (e.g. from "
                f"{MNIST_MIRRORS[0]}) and put them in {directory}:\n{files}\n"
                f"or pass a folder holding them: --data /path/to/mnist (gzip or raw IDX files)."
            )


def mnist(
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """MNIST (or any IDX image set such as Fashion-MNIST): 28x28 grayscale digits, labelled.

    Args:
        path: a folder with ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
            (each raw or ``.gz``; also found in ``raw/`` or ``MNIST/raw/`` below it, as
            torchvision lays them out), or an images IDX file (labels are read from the
            ``labels-idx1`` file next to it if there is one). ``None``: the cache folder
            (:func:`cache_dir` / ``mnist``), downloading the two training files there with
            MD5 verification when they are missing.
        resolution: resize to this size (default: 28, as stored).
        channels: 1 (default) or 3.
        seed: unused.
        limit: use the first ``limit`` images.
    """
    if path is None:
        directory = cache_dir() / "mnist"
        stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
        if not all(_find(directory, stem) for stem in stems):
            _download_mnist(directory)
        path = str(directory)
    source = Path(path).expanduser()
    if source.is_dir():
        images_file = _find(source, "train-images-idx3-ubyte")
        if images_file is None:
            candidates = sorted(source.glob("*images-idx3-ubyte*"))
            if not candidates:
                raise FileNotFoundError(
                    f"no MNIST images in {source}: expected train-images-idx3-ubyte[.gz] "
                    f"(and train-labels-idx1-ubyte[.gz]); omit the path to download MNIST"
                )
            images_file = candidates[0]
    elif source.is_file():
        images_file = source
    else:
        raise FileNotFoundError(f"no such file or directory: {str(source)!r}")

    labels_stem = images_file.name.replace("images-idx3", "labels-idx1").removesuffix(".gz")
    labels_file = _find(images_file.parent, labels_stem)
    images = read_idx(images_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_file}: expected (N, H, W) uint8 images, got {images.dtype} {images.shape}"
        )
    labels = None
    if labels_file is not None:
        labels = read_idx(labels_file)
        if labels.shape != images.shape[:1]:
            raise ValueError(
                f"{labels_file}: {labels.shape} labels do not match the {len(images)} images "
                f"of {images_file}"
            )
    classes = MNIST_CLASSES if labels is not None and labels.max(initial=0) < 10 else None
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    dataset = Dataset(images[:, None], labels, name="mnist", classes=classes)
    return dataset.conform(resolution=resolution, channels=channels)


# ============================================================================ folder
#: the smallest image side accepted in a training folder
MIN_SIDE = 8

def _load_image(path: Path) -> np.ndarray:
    """An image file as float32 (H, W, C) in [0, 1], C = 1 or 3 (alpha composited on white).

    The pixel limit (:func:`minigan.images.max_pixels`) is checked from the header before
    decoding; images smaller than :data:`MIN_SIDE` pixels a side are refused (upscaling a 1x1
    image to the training resolution teaches a GAN nothing)."""
    from minigan.images import image_size, read_image

    width, height, _ = image_size(path)
    if min(width, height) < MIN_SIDE:
        raise ValueError(
            f"{width}x{height} pixels is smaller than the {MIN_SIDE}x{MIN_SIDE} minimum for "
            "training"
        )
    image = read_image(path)
    if image.ndim == 4:  # frames of a GIF or WebP: the first one
        image = image[0]
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4) or min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"unsupported image shape {image.shape}")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / 255
    elif image.dtype == np.uint16:
        x = image.astype(np.float32) / 65535
    elif image.dtype == bool:
        x = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.floating):
        x = np.clip(image.astype(np.float32), 0, 1)
    else:
        raise ValueError(f"unsupported pixel type {image.dtype}")
    if x.shape[2] in (2, 4):  # gray + alpha, RGBA: composite on white
        colour, alpha = x[:, :, :-1], x[:, :, -1:]
        x = colour * alpha + (1 - alpha)
    return x


def _reason(file: Path, error: BaseException) -> str:
    """Why ``file`` was skipped, in short: the message without the path it starts with."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.removeprefix(f"{file}: ")[:160]


def _image_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return image_files(root, IMAGE_EXTENSIONS)


def folder(
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Every image in a folder and its subfolders, read with imageio.

    Files ending in .png, .jpg, .jpeg, .bmp, .gif or .webp (any case) are read in sorted
    path order; hidden files and folders are ignored. Grayscale, RGB, RGBA and gray+alpha
    (composited on white), 8- and 16-bit, are accepted. Each image is scaled so its shorter
    side is ``resolution`` (area averaging or bilinear) and its centre square is kept.
    Unreadable files are skipped, and counted in one warning.

    When every image sits in a subfolder (``root/cat/1.png``, ``root/dog/2.png``), the
    subfolder names become the classes and labels.

    Args:
        path: the folder (or a single image file).
        resolution: the side of the square images (default 64).
        channels: 1 or 3; ``None``: 3 if any image has colour channels, else 1.
        seed: unused.
        limit: read at most this many images.
    """
    if path is None:
        raise ValueError("folder: give the folder of images (--data /path/to/images)")
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {str(root)!r}")
    resolution = 64 if resolution is None else int(resolution)
    files = _image_files(root)
    if not files:
        raise ValueError(
            f"no images in {str(root)!r} (looked recursively for {', '.join(IMAGE_EXTENSIONS)})"
        )

    images: list[np.ndarray] = []
    kept: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    wanted = len(files) if limit is None else min(int(limit), len(files))
    with tqdm(total=wanted, desc=f"reading {root.name or root}", unit="img",
              disable=len(files) < 500 or not show_progress()) as bar:
        for file in files:
            if len(images) == wanted:
                break
            try:
                image = _load_image(file)
            except (OSError, ValueError) as e:  # unreadable, corrupt, too large or too small
                skipped.append((file, _reason(file, e)))
                continue
            chw = image.transpose(2, 0, 1)[None] * 2 - 1
            images.append(resize_and_crop(chw, resolution)[0])
            kept.append(file)
            bar.update()
    first = "; ".join(f"{f.name} ({why})" for f, why in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    if skipped:  # unreadable, corrupt, over the pixel limit or under 8x8
        warnings.warn(
            f"folder {str(root)!r}: skipped {len(skipped)} unreadable image file(s): {first}{more}",
            stacklevel=2,
        )
    if not images:
        raise ValueError(
            f"none of the {len(files)} image files in {str(root)!r} could be read: {first}{more}"
        )

    if channels is None:
        channels = 3 if any(image.shape[0] == 3 for image in images) else 1
    data = to_uint8(np.concatenate([to_channels(image[None], channels) for image in images]))
    labels, classes = None, None
    if root.is_dir():
        relative = [f.relative_to(root).parts for f in kept]
        if all(len(parts) > 1 for parts in relative):
            classes = sorted({parts[0] for parts in relative})
            labels = np.array([classes.index(parts[0]) for parts in relative])
    return Dataset(data, labels, name=root.name or str(root), classes=classes)


# ============================================================================ npz
def _read_npz(path: Path) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(key, images, labels)`` of a ``.npz`` file; a file that is not one, truncated, or
    holding object, bool or empty image arrays raises ``ValueError`` naming it."""
    import zipfile

    if not path.is_file():
        raise FileNotFoundError(f"no such .npz file: {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            check_npz(archive, path)
            keys = list(archive.keys())
            if not keys:
                raise ValueError(f"{path}: the .npz file holds no arrays")
            key = next((k for k in ("images", "x") if k in archive), keys[0])
            images = archive[key]
            label_key = next((k for k in ("labels", "y") if k in archive and k != key), None)
            labels = archive[label_key] if label_key else None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        if str(e).startswith(str(path)):
            raise
        if "allow_pickle" in str(e):
            raise ValueError(
                f"{path}: holds object arrays, which would need pickle (refused: loading a "
                f"pickle can run code); save plain numeric arrays with np.savez"
            ) from None
        raise ValueError(
            f"{path}: not a readable .npz file ({type(e).__name__}: {e}); is it truncated?"
        ) from None
    if images.dtype == bool:
        raise ValueError(
            f"{path}: array {key!r} is boolean (a mask?); images must be uint8 in [0, 255] or "
            f"floats in [0, 1] or [-1, 1] (convert with images.astype(np.uint8) * 255)"
        )
    if images.size == 0:
        raise ValueError(f"{path}: array {key!r} of shape {images.shape} holds no images")
    return key, images, labels


def npz(
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Dataset:
    """Images from a NumPy ``.npz`` file.

    The images are the array named ``images``, else ``x``, else the first array; labels are
    ``labels`` or ``y`` when present. Layouts (detected):

    - ``(N, H, W)``: grayscale;
    - ``(N, C, H, W)`` when dimension 1 is 1 or 3, else ``(N, H, W, C)`` when the last is.

    Values (detected): integers are 8-bit in [0, 255]; floats within [0, 1] are read as
    [0, 1], floats within [-1, 1] with a negative value as [-1, 1]; anything else is an
    error. (A float array in [-1, 1] that happens to have no negative value reads as [0, 1].)

    Args:
        path: the ``.npz`` file.
        resolution: resize to this square size (default: as stored).
        channels: 1 or 3 (default: as stored).
        seed: unused.
        limit: use the first ``limit`` images.
    """
    if path is None:
        raise ValueError("npz: give the .npz file (--data /path/to/images.npz)")
    key, images, labels = _read_npz(Path(path).expanduser())
    if limit is not None:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 3):
        if images.shape[3] not in (1, 3):
            raise ValueError(
                f"{path}: array {key!r} of shape {images.shape} is neither NCHW nor NHWC with "
                f"1 or 3 channels"
            )
        images = images.transpose(0, 3, 1, 2)
    elif images.ndim != 4:
        raise ValueError(f"{path}: array {key!r} must be (N, H, W) or 4-d, got {images.shape}")
    images = np.ascontiguousarray(images)

    lo: float
    hi: float
    if np.issubdtype(images.dtype, np.integer):
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{path}: integer images must be in [0, 255], found [{lo}, {hi}]")
        images = images.astype(np.uint8)
    elif np.issubdtype(images.dtype, np.floating):
        lo, hi = float(images.min()), float(images.max())
        if 0 <= lo and hi <= 1:
            images = images.astype(np.float32) * 2 - 1
        elif not (-1 <= lo and hi <= 1):
            raise ValueError(
                f"{path}: float images must be in [0, 1] or [-1, 1], found [{lo:g}, {hi:g}]"
            )
    else:
        raise ValueError(f"{path}: unsupported image dtype {images.dtype}")
    if labels is not None and labels.shape != images.shape[:1]:
        raise ValueError(f"{path}: {labels.shape} labels do not match {len(images)} images")
    name = Path(path).stem
    return Dataset(images, labels, name=name).conform(resolution=resolution, channels=channels)
