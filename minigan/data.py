"""Datasets and the data loader: images in memory, batches out as tensors.

A :class:`Dataset` holds N images as one array, NCHW, either ``uint8`` in [0, 255] (compact:
what image files, MNIST and ``shapes`` give) or ``float32`` in [-1, 1]. Whatever it stores,
indexing it gives float32 NCHW in [-1, 1] — what a GAN's ``tanh`` generator produces.

A :class:`DataLoader` shuffles and batches a dataset. The order of epoch ``e`` is a
permutation drawn from ``numpy.random.default_rng([seed, e])``, so any epoch's order can be
recomputed from ``(seed, e)`` alone, and :meth:`DataLoader.iter_from` starts an epoch at any
batch: a resumed run sees exactly the batches an uninterrupted run would have seen.

:func:`open_dataset` turns what a user typed (``shapes``, ``mnist``, ``./my-photos``,
``faces.npz``) into a dataset, through the datasets that plugins register.

>>> import numpy as np
>>> ds = Dataset(np.zeros((10, 1, 8, 8), np.uint8), np.arange(10), name="black")
>>> ds
Dataset('black', 10 images, 1x8x8, uint8, labels)
>>> images, labels = ds[np.array([0, 1])]
>>> images.dtype, images.shape, float(images.min()), labels.tolist()
(dtype('float32'), (2, 1, 8, 8), -1.0, [0, 1])
>>> loader = DataLoader(ds, batch_size=4, seed=0)
>>> len(loader), [tuple(x.shape) for x, _ in loader]
(2, [(4, 1, 8, 8), (4, 1, 8, 8)])
"""

from __future__ import annotations

import contextlib
import contextvars
import gzip
import inspect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minigan.tensor import Tensor

#: ITU-R BT.601 luma weights (as PIL's ``convert("L")``): RGB -> gray.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Batch = tuple[Tensor, "Tensor | None"]


# ----------------------------------------------------------------------------- array helpers
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("minigan_progress", default=True)


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`show_progress` says ``enabled``: how ``minigan train
    --no-progress`` reaches the bars a dataset plugin draws while it reads or downloads.

    >>> with progress_bars(False):
    ...     show_progress()
    False
    >>> show_progress()
    True
    """
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def show_progress() -> bool:
    """Whether a dataset plugin should draw progress bars now (see :func:`progress_bars`);
    pass ``disable=not show_progress()`` to ``tqdm``."""
    return _PROGRESS.get()


def to_float(images: np.ndarray) -> np.ndarray:
    """Images as float32 in [-1, 1]: ``uint8`` [0, 255] is rescaled, floats are cast.

    >>> to_float(np.array([0, 255], np.uint8)).tolist()
    [-1.0, 1.0]
    """
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return images.astype(np.float32, copy=False)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] as ``uint8`` in [0, 255] (rounded; ``uint8`` passes through).

    >>> to_uint8(np.array([-1.0, 0.0, 1.0])).tolist()
    [0, 128, 255]
    """
    if images.dtype == np.uint8:
        return images
    return np.rint((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """NCHW images with 1 or 3 channels: RGB -> gray by luminance, gray -> RGB by repetition.

    Keeps the dtype (``uint8`` results are rounded).

    >>> rgb = np.array([255, 0, 0], np.uint8).reshape(1, 3, 1, 1)   # pure red
    >>> to_channels(rgb, 1).ravel().tolist()
    [76]
    >>> to_channels(np.zeros((2, 1, 4, 4), np.float32), 3).shape
    (2, 3, 4, 4)
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, 3, axis=1)
    if have != 3:
        raise ValueError(f"cannot convert {have}-channel images to {channels} channels")
    gray = np.einsum("nchw,c->nhw", images.astype(np.float32, copy=False), LUMA)[:, None]
    if images.dtype == np.uint8:
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return gray.astype(images.dtype, copy=False)


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix that resamples one axis; every row sums to 1.

    Shrinking averages the input over each output pixel's footprint (exact area weights,
    fractional at the edges); enlarging interpolates linearly between pixel centres
    (half-pixel convention, edges clamped) — what ``cv2.INTER_AREA`` / ``INTER_LINEAR`` do.
    """
    if n_out <= n_in:
        scale = n_in / n_out
        start = np.arange(n_out)[:, None] * scale  # footprint of output pixel i: [start, stop)
        stop = start + scale
        left = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(stop, left + 1) - np.maximum(start, left), 0, None)
        return (overlap / scale).astype(np.float32)
    centre = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    centre = np.clip(centre, 0, n_in - 1)
    lo = np.floor(centre).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centre - lo
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def resize(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize NCHW images to ``size`` (``int`` for square, or ``(height, width)``).

    Area averaging when shrinking, bilinear when enlarging; separable, pure NumPy.
    Keeps the dtype (``uint8`` results are rounded).

    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> resize(x, 2)[0, 0].tolist()                  # each output is the mean of a 2x2 block
    [[2.5, 4.5], [10.5, 12.5]]
    >>> resize(np.array([[[[0, 255]]]], np.uint8), (1, 4))[0, 0].tolist()
    [[0, 64, 191, 255]]
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    if h < 1 or w < 1:
        raise ValueError(f"cannot resize to {h}x{w}")
    if images.shape[-2:] == (h, w):
        return images
    rows = _resize_matrix(images.shape[-2], h)
    cols = _resize_matrix(images.shape[-1], w)
    out = rows @ images.astype(np.float32, copy=False) @ cols.T
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(images.dtype, copy=False)


def resize_and_crop(images: np.ndarray, resolution: int) -> np.ndarray:
    """Scale NCHW images so the shorter side is ``resolution``, then crop the centre square.

    >>> resize_and_crop(np.zeros((1, 3, 40, 80), np.uint8), 20).shape
    (1, 3, 20, 20)
    """
    h, w = images.shape[-2:]
    if h == w == resolution:
        return images
    scale = resolution / min(h, w)
    new_h, new_w = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    images = resize(images, (new_h, new_w))
    top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
    return images[..., top : top + resolution, left : left + resolution]


# ----------------------------------------------------------------------------- Dataset
def two_colour(
    images: np.ndarray, sample: int = 256, tolerance: float = 0.05, share: float = 0.9
) -> bool:
    """Whether ``images`` (NCHW, ``uint8`` or float in [-1, 1]) are flat two-colour
    pictures: in at least ``share`` of ``sample`` images spread evenly over the set (all of
    them if there are fewer) every pixel is a blend ``a + t (b - a)`` of two colours ``a``,
    ``b`` (off that line by at most ``tolerance`` in the [-1, 1] range, for 99% of the
    pixels) and at least 3/4 of the pixels are one of them (``t`` below 0.1 or above 0.9).
    Shapes, digits, icons and line art are; photographs and gradients are not. A generator
    can then draw a mask and two colours (DCGAN's ``layered``).

    >>> flat = np.zeros((4, 3, 8, 8), np.uint8); flat[:, 0, 2:5, 2:5] = 255
    >>> two_colour(flat)
    True
    >>> two_colour(np.linspace(-1, 1, 4 * 3 * 8 * 8).reshape(4, 3, 8, 8))
    False
    """
    n = min(len(images), sample)
    if n == 0:
        return False
    chosen = (images[i] for i in np.linspace(0, len(images) - 1, n).round().astype(int))
    passed = 0
    for image in chosen:  # one at a time: large images stay cheap
        p = to_float(np.asarray(image)).reshape(len(image), -1).T.astype(np.float64)  # (HW, C)
        centred = p - p.mean(0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]  # the main colour direction
        t = centred @ axis
        a, b = np.quantile(t, [0.01, 0.99])
        if b - a <= tolerance:  # one flat colour
            passed += 1
            continue
        residual = np.linalg.norm(centred - np.outer(t, axis), axis=1)
        s = (t - a) / (b - a)
        flat = np.mean((s < 0.1) | (s > 0.9))
        passed += bool(np.quantile(residual, 0.99) <= tolerance and flat >= 0.75)
    return passed >= share * n


class Dataset:
    """N images in memory, with optional integer labels.

    Args:
        images: (N, C, H, W) with C in {1, 3}: ``uint8`` in [0, 255], or float in [-1, 1]
            (stored as float32).
        labels: N integer class indices, or ``None``.
        name: shown in messages and ``repr``.
        classes: the class names (``classes[label]``), if known.

    ``dataset[i]`` gives ``(image (C, H, W), label)``; ``dataset[index_array]`` or a slice
    gives ``(images (n, C, H, W), labels (n,))`` — images always float32 in [-1, 1], labels
    ``int64`` or ``None``.

    >>> ds = Dataset(np.full((3, 3, 2, 2), 255, np.uint8), [2, 0, 1], classes=["a", "b", "c"])
    >>> image, label = ds[0]
    >>> image.shape, float(image.max()), ds.classes[label]
    ((3, 2, 2), 1.0, 'c')
    >>> ds.shape, len(ds)
    ((3, 2, 2), 3)
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | Sequence[int] | None = None,
        *,
        name: str = "dataset",
        classes: Sequence[str] | None = None,
    ) -> None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"dataset {name!r}: images must be (N, C, H, W) with C = 1 or 3, "
                f"got shape {images.shape}"
            )
        if len(images) == 0:
            raise ValueError(f"dataset {name!r} has no images")
        if images.dtype != np.uint8:
            if not np.issubdtype(images.dtype, np.floating):
                raise ValueError(
                    f"dataset {name!r}: images must be uint8 in [0, 255] or float in [-1, 1], "
                    f"got dtype {images.dtype}"
                )
            images = images.astype(np.float32, copy=False)
            lo, hi = float(images.min()), float(images.max())
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1.0001 or hi > 1.0001:
                raise ValueError(
                    f"dataset {name!r}: float images must lie in [-1, 1], found [{lo:g}, {hi:g}]"
                )
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(images),) or not (
                np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool
            ):
                raise ValueError(
                    f"dataset {name!r}: labels must be {len(images)} integers, got "
                    f"{labels.dtype} array of shape {labels.shape}"
                )
            labels = labels.astype(np.int64, copy=False)
            if classes is not None and len(labels) and (
                labels.min() < 0 or labels.max() >= len(classes)
            ):
                raise ValueError(
                    f"dataset {name!r}: labels must index the {len(classes)} classes, "
                    f"found [{labels.min()}, {labels.max()}]"
                )
        self.data = images
        self.labels: np.ndarray | None = labels
        self.name = name
        self.classes: list[str] | None = list(classes) if classes is not None else None

    @property
    def images(self) -> np.ndarray:
        """All images as float32 NCHW in [-1, 1] (a converted copy when stored as ``uint8``;
        index the dataset to convert just a batch)."""
        return to_float(self.data)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(C, H, W)``."""
        c, h, w = self.data.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, Any]:
        labels = None if self.labels is None else self.labels[index]
        return to_float(self.data[index]), labels

    def __repr__(self) -> str:
        c, h, w = self.shape
        extra = ""
        if self.classes is not None:
            names = self.classes if len(self.classes) <= 4 else [*self.classes[:3], "..."]
            extra = f", {len(self.classes)} classes: {', '.join(names)}"
        elif self.labels is not None:
            extra = ", labels"
        return f"Dataset({self.name!r}, {len(self)} images, {c}x{h}x{w}, {self.data.dtype}{extra})"

    def subset(self, index: Any) -> Dataset:
        """A dataset of the images picked by ``index`` (a slice, an index or a boolean array)."""
        labels = None if self.labels is None else self.labels[index]
        return Dataset(self.data[index], labels, name=self.name, classes=self.classes)

    def conform(
        self,
        *,
        resolution: int | None = None,
        channels: int | None = None,
        limit: int | None = None,
    ) -> Dataset:
        """This dataset cut to ``limit`` images, with ``channels`` channels (1 or 3) and
        square images of ``resolution`` pixels (shorter side scaled, centre cropped).

        ``None`` leaves a property as it is; returns ``self`` when nothing changes.

        >>> ds = Dataset(np.zeros((5, 1, 28, 28), np.uint8))
        >>> ds.conform(resolution=32, channels=3, limit=2)
        Dataset('dataset', 2 images, 3x32x32, uint8)
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if channels is not None and channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        out = self
        if limit is not None and limit < len(out):
            out = out.subset(slice(0, limit))
        data = out.data
        if channels is not None:
            data = to_channels(data, channels)
        if resolution is not None:
            # a chunk at a time: resizing works in float32
            step = max(1, 2**24 // max(1, data[0].size))
            data = np.concatenate(
                [resize_and_crop(data[i : i + step], resolution) for i in range(0, len(data), step)]
            )
        if data is out.data:
            return out
        return Dataset(data, out.labels, name=out.name, classes=out.classes)


# ----------------------------------------------------------------------------- DataLoader
class DataLoader:
    """Shuffled batches of a dataset as ``(images, labels)`` tensors.

    The order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(N)``
    (or ``0..N-1`` without ``shuffle``): reproducible from ``(seed, e)``, nothing else.
    Iterating the loader runs the epoch :attr:`epoch` and moves on to the next one when the
    pass completes; :meth:`set_epoch` picks the epoch (and, for a resume, the first batch);
    :meth:`iter_from` iterates any epoch from any batch without touching the loader's state.

    Args:
        dataset: the :class:`Dataset`.
        batch_size: images per batch.
        shuffle: draw a new order each epoch (else dataset order).
        seed: the seed of the epoch orders.
        drop_last: skip the last batch when it would be smaller than ``batch_size``.
        device: where the batch tensors go (``"cpu"``, ``"cuda"``).
        rank, world_size: data-parallel sharding. Each step consumes one *global* batch of
            ``batch_size * world_size`` consecutive indices of the epoch's order (the same
            order on every process); process ``rank`` gets its ``rank``-th slice of
            ``batch_size``. So ``world_size`` processes see, together and step by step, the
            batches one process with ``batch_size * world_size`` sees, and the epochs'
            shards are disjoint.

    >>> ds = Dataset(np.zeros((10, 1, 2, 2), np.float32), np.arange(10))
    >>> loader = DataLoader(ds, batch_size=3, seed=1)
    >>> len(loader)                                  # 10 // 3, the last image dropped
    3
    >>> [labels.tolist() for _, labels in loader.iter_from(epoch=0, batch_index=2)]
    [[5, 9, 6]]
    >>> loader.order(0)[6:9].tolist()
    [5, 9, 6]
    >>> shard = DataLoader(ds, batch_size=2, seed=1, rank=1, world_size=2)   # global batch 4
    >>> len(shard), [labels.tolist() for _, labels in shard.iter_from(0)]
    (2, [[7, 0], [5, 9]])
    >>> loader.order(0)[:8].tolist()
    [8, 4, 7, 0, 1, 2, 5, 9]
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        device: str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"DataLoader needs a minigan.data.Dataset, got {type(dataset).__name__}"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if drop_last and batch_size * world_size > len(dataset):
            what = f"batch_size {batch_size}" + (
                f" x {world_size} processes" if world_size > 1 else ""
            )
            raise ValueError(
                f"{what} is larger than dataset {dataset.name!r} "
                f"({len(dataset)} images): with drop_last=True no batch would be produced; "
                f"use a smaller batch size, more data, or drop_last=False"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.device = device
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self._start = 0  # first batch of the next pass (set by set_epoch for a resume)

    @property
    def global_batch_size(self) -> int:
        """Images per step over all processes: ``batch_size * world_size``."""
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches (steps) per epoch."""
        return self.steps_from(0)

    def steps_from(self, offset: int) -> int:
        """Steps in an epoch whose first ``offset`` samples were already consumed."""
        n, b = len(self.dataset) - int(offset), self.global_batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int, batch_index: int = 0) -> None:
        """Make the next pass epoch ``epoch``, starting at batch ``batch_index`` (a resume)."""
        self._check(epoch, batch_index)
        self.epoch, self._start = int(epoch), int(batch_index)

    def order(self, epoch: int) -> np.ndarray:
        """The dataset indices of epoch ``epoch``, in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def __iter__(self) -> Iterator[Batch]:
        epoch, start = self.epoch, self._start
        self._start = 0
        yield from self.iter_from(epoch, start)
        self.epoch = epoch + 1

    def iter_from(self, epoch: int, batch_index: int = 0, offset: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` from batch ``batch_index`` on (0-based); exactly
        the batches an uninterrupted pass would yield from there. ``offset`` skips that many
        samples of the epoch's order first (a run resumed with another global batch size:
        its position is a sample index, not always a whole number of the new batches)."""
        if not 0 <= offset <= len(self.dataset):
            raise ValueError(f"offset must be in [0, {len(self.dataset)}], got {offset}")
        self._check(epoch, batch_index, self.steps_from(offset))
        order = self.order(epoch)[int(offset) :]
        g, b, r = self.global_batch_size, self.batch_size, self.rank
        for k in range(batch_index, self.steps_from(offset)):
            yield self._batch(order[k * g + r * b : min(k * g + (r + 1) * b, len(order))])

    def _batch(self, index: np.ndarray) -> Batch:
        images, labels = self.dataset[index]
        x = Tensor(images)
        y = None if labels is None else Tensor(labels)
        if self.device != "cpu":
            x = x.to(self.device)
            y = None if y is None else y.to(self.device)
        return x, y

    def _check(self, epoch: int, batch_index: int, steps: int | None = None) -> None:
        steps = len(self) if steps is None else steps
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if not 0 <= batch_index <= steps:
            raise ValueError(f"batch_index must be in [0, {steps}], got {batch_index}")

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}"
            + (f", rank={self.rank}, world_size={self.world_size})" if self.world_size > 1 else ")")
        )


# ----------------------------------------------------------------------------- open_dataset
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

#: the largest expansion accepted for a compressed member of a .npz file; real image data
#: compresses far less, a "zip bomb" (a small file that inflates to gigabytes) far more
MAX_NPZ_RATIO = 200


def check_npz(archive: Any, path: str | os.PathLike[str]) -> None:
    """Refuse (``ValueError``) a ``.npz`` (an ``np.load`` result) with a member that would
    expand more than :data:`MAX_NPZ_RATIO` times — checked from the zip directory, before
    anything is decompressed."""
    import zipfile

    for info in archive.zip.infolist():
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_NPZ_RATIO * (
            info.compress_size + 4096
        ):
            raise ValueError(
                f"{os.fspath(path)}: array {info.filename!r} would expand {info.compress_size:,} "
                f"bytes to {info.file_size:,} (over {MAX_NPZ_RATIO}x); refused as a likely zip "
                f"bomb"
            )


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~")) or spec.endswith(".npz")


def _is_idx_file(path: Path) -> bool:
    """An MNIST-style IDX file: named ``*-idx<N>-ubyte[.gz]`` or starting with an IDX magic
    number (possibly gzip-compressed)."""
    if "-idx" in path.name and "ubyte" in path.name:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                head = f.read(4)
    except (OSError, EOFError):
        return False
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] in (8, 9, 11, 12, 13, 14)


def dataset_kind(path: str | os.PathLike[str]) -> str:
    """Which built-in dataset reads ``path``: ``npz``, ``mnist`` (IDX files) or ``folder``.

    >>> dataset_kind("faces.npz")
    'npz'
    """
    p = Path(path).expanduser()
    if p.suffix.lower() == ".npz":
        return "npz"
    if p.is_dir():
        folders = [p, p / "raw", p / "MNIST" / "raw"]  # torchvision's layout too
        has_idx = any(
            _is_idx_file(f)
            for d in folders
            if d.is_dir()
            for f in d.iterdir()
            if f.is_file() and "idx" in f.name
        )
        return "mnist" if has_idx else "folder"
    if p.is_file():
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            return "folder"
        if _is_idx_file(p):
            return "mnist"
        raise ValueError(
            f"{str(path)!r} is not a dataset minigan can read: expected a folder of images, "
            f"a .npz file or MNIST IDX files"
        )
    raise FileNotFoundError(f"no such file or directory: {str(path)!r}")


def _accepted(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``factory`` takes (all if it has ``**kwargs``): a factory written before
    ``limit`` existed still works, and :meth:`Dataset.conform` applies what it ignores."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return options
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return options
    names = {p.name for p in parameters}
    return {k: v for k, v in options.items() if k in names}


def open_dataset(
    spec: str,
    *,
    path: str | None = None,
    resolution: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    registry: Any = None,
) -> Dataset:
    """The dataset a user asked for: a registered name or a path.

    Args:
        spec: a registered dataset name (``shapes``, ``mnist``, ``folder``, ``npz``, or one a
            plugin adds), or a path: a directory of images (``folder``), a ``.npz`` file
            (``npz``), an IDX file or a directory of them (``mnist``). A name wins over a
            same-named file; write ``./shapes`` to mean the path.
        path: the data's location for a named dataset (e.g. ``mnist`` files on disk).
        resolution: square image size in pixels (``None``: the dataset's own).
        channels: 1 (grayscale) or 3 (RGB) (``None``: the dataset's own).
        seed: for datasets that are generated (``shapes``).
        limit: use at most this many images.
        registry: the :class:`minigan.registry.Registry` to look names up in (default: the
            process-wide one).

    >>> open_dataset("shapes", resolution=16, channels=1, limit=8)
    Dataset('shapes', 8 images, 1x16x16, uint8, 6 classes: circle, square, triangle, ...)
    """
    if registry is None:
        from minigan.registry import get_registry

        registry = get_registry()
    names = registry.names("dataset")
    if registry.has("dataset", spec) and not _looks_like_path(spec):
        name = spec
    elif _looks_like_path(spec) or os.path.exists(spec):
        if path is not None:
            raise ValueError(f"give the data's location once: got both {spec!r} and path={path!r}")
        name, path = dataset_kind(spec), str(Path(spec).expanduser())
        if name not in names:
            raise KeyError(f"dataset {name!r} (needed to read {spec!r}) is not registered")
    else:
        raise KeyError(
            f"unknown dataset {spec!r}; available: {', '.join(names) or 'none'} — or give a path: "
            f"a folder of images, a .npz file, or MNIST IDX files"
        )
    factory = registry.get("dataset", name)
    options = dict(path=path, resolution=resolution, channels=channels, seed=seed, limit=limit)
    dataset = factory(**_accepted(factory, options))
    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"dataset {name!r} returned {type(dataset).__name__}, expected minigan.data.Dataset"
        )
    return dataset.conform(resolution=resolution, channels=channels, limit=limit)
