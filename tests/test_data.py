"""Datasets (shapes, mnist, folder, npz), the DataLoader and open_dataset.

Nothing here touches the network: MNIST downloads are served by a fake URL opener, and the
IDX, image and .npz files are written by the tests themselves.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import urllib.error
import urllib.request
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan
from minigan.data import (
    DataLoader,
    Dataset,
    dataset_kind,
    open_dataset,
    resize,
    resize_and_crop,
    to_channels,
)
from minigan.plugins import datasets as datasets_plugin
from minigan.plugins.datasets import sources as builtin
from minigan.registry import Registry


@pytest.fixture
def registry() -> Registry:
    """A registry holding only the built-in dataset plugin, loaded as an entry point would."""
    reg = Registry(load_entry_points=False)
    assert reg.add_plugin(datasets_plugin, "datasets")
    return reg


def as_uint8(images: np.ndarray) -> np.ndarray:
    return np.rint((images + 1) * 127.5).astype(np.int64)


# ============================================================================ array helpers
def test_resize_area_and_bilinear():
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    small = resize(x, 3)
    expected = x.reshape(3, 2, 3, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(small[0, 0], expected, rtol=1e-6)
    # a non-integer factor still averages exactly: the mean is preserved
    np.testing.assert_allclose(resize(x, 4).mean(), x.mean(), rtol=1e-5)
    # enlarging interpolates: constants stay constant, a ramp stays monotonic within range
    np.testing.assert_allclose(resize(np.full((2, 3, 4, 5), 0.25, np.float32), (9, 7)), 0.25)
    ramp = resize(np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4), (1, 8))[0, 0, 0]
    assert np.all(np.diff(ramp) >= 0) and ramp[0] == 0 and ramp[-1] == 3


def test_resize_and_crop_keeps_the_centre():
    x = np.zeros((1, 1, 10, 30), np.float32)
    x[..., 10:20] = 1  # the middle third
    np.testing.assert_array_equal(resize_and_crop(x, 10), np.ones((1, 1, 10, 10)))


def test_to_channels():
    rgb = np.zeros((1, 3, 2, 2), np.float32)
    rgb[:, 1] = 1.0  # pure green
    np.testing.assert_allclose(to_channels(rgb, 1), 0.587, rtol=1e-6)
    gray = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(to_channels(gray, 3), np.repeat(gray, 3, axis=1))
    with pytest.raises(ValueError, match="1 .* or 3"):
        to_channels(gray, 2)


# ============================================================================ Dataset
def test_dataset_indexing_and_conversion():
    data = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2) * 5
    ds = Dataset(data, [0, 1, 0, 1], name="tiny", classes=["a", "b"])
    images, labels = ds[np.array([3, 0])]
    assert images.dtype == np.float32 and images.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(images, data[[3, 0]] / 127.5 - 1, atol=1e-6)
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0]
    image, label = ds[2]
    assert image.shape == (3, 2, 2) and label == 0
    assert ds.shape == (3, 2, 2) and len(ds) == 4
    assert ds.images.dtype == np.float32 and ds.images.min() >= -1 and ds.images.max() <= 1
    assert repr(ds) == "Dataset('tiny', 4 images, 3x2x2, uint8, 2 classes: a, b)"


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 2, 8, 8), np.uint8), None, "C = 1 or 3"),
        (np.zeros((4, 8, 8), np.uint8), None, r"\(N, C, H, W\)"),
        (np.zeros((0, 1, 8, 8), np.uint8), None, "no images"),
        (np.full((4, 1, 8, 8), 2.0, np.float32), None, r"\[-1, 1\]"),
        (np.full((4, 1, 8, 8), np.nan, np.float32), None, r"\[-1, 1\]"),
        (np.zeros((4, 1, 8, 8), np.int32), None, "uint8"),
        (np.zeros((4, 1, 8, 8), np.uint8), [0, 1], "4 integers"),
        (np.zeros((4, 1, 8, 8), np.uint8), [0.5] * 4, "4 integers"),
    ],
)
def test_dataset_rejects_bad_input(images, labels, message):
    with pytest.raises(ValueError, match=message):
        Dataset(images, labels)


def test_conform():
    ds = Dataset(np.zeros((5, 1, 28, 28), np.uint8), np.arange(5))
    assert ds.conform() is ds
    out = ds.conform(resolution=32, channels=3, limit=2)
    assert out.shape == (3, 32, 32) and len(out) == 2 and out.labels.tolist() == [0, 1]


# ============================================================================ shapes
def test_shapes_deterministic_by_seed():
    a = builtin.shapes(resolution=16, limit=300, seed=7)
    b = builtin.shapes(resolution=16, limit=300, seed=7)
    c = builtin.shapes(resolution=16, limit=300, seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.data != c.data).mean() > 0.5
    # a smaller count is a prefix of the same set
    d = builtin.shapes(resolution=16, limit=40, seed=7)
    np.testing.assert_array_equal(d.data, a.data[:40])


@pytest.mark.parametrize(("resolution", "channels"), [(None, None), (28, 1), (64, 3), (8, 1)])
def test_shapes_layout_and_range(resolution, channels):
    ds = builtin.shapes(resolution=resolution, channels=channels, limit=64)
    side, c = resolution or 32, channels or 3
    images, labels = ds[:]
    assert images.dtype == np.float32 and images.shape == (64, c, side, side)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < -0.4 and images.max() > 0.4  # uses the range: dark and light
    assert labels.dtype == np.int64 and ds.classes == builtin.SHAPE_CLASSES
    assert ds.name == "shapes"


def test_shapes_default_count_and_bad_arguments():
    assert builtin.SHAPES_COUNT == 20_000
    with pytest.raises(ValueError, match="at least 8"):
        builtin.shapes(resolution=6)
    with pytest.raises(ValueError, match="channels"):
        builtin.shapes(channels=2, limit=4)


def test_shapes_classes_roughly_balanced():
    ds = builtin.shapes(resolution=8, limit=6000, seed=1)
    counts = np.bincount(ds.labels, minlength=len(ds.classes))
    assert len(counts) == 6
    assert np.all(np.abs(counts / 1000 - 1) < 0.15), counts


def test_shapes_are_clear_shapes_on_a_flat_background():
    ds = builtin.shapes(resolution=32, limit=300, seed=2)
    x = as_uint8(ds[:][0])  # (N, 3, 32, 32) in 0..255
    corners = x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # (N, 3, 4)
    assert np.all(corners == corners[:, :, :1]), "the background is one flat colour"
    background = corners[:, :, :1, None]  # (N, 3, 1, 1)
    differs = np.any(x != background, axis=1)  # (N, 32, 32): touched by the shape
    area = differs.mean(axis=(1, 2))
    assert area.min() > 0.03 and area.max() < 0.75, (area.min(), area.max())
    # the shape differs clearly (luminance contrast), and its edges are antialiased
    luma = np.einsum("nchw,c->nhw", x.astype(np.float32), [0.299, 0.587, 0.114])
    bg_luma = luma[:, 0, 0][:, None, None]
    contrast = np.abs(luma - bg_luma).max(axis=(1, 2))
    assert contrast.min() > 0.25 * 255
    levels = [np.unique(img.reshape(3, -1), axis=1).shape[1] for img in x[:20]]
    assert min(levels) > 2, "edge pixels blend shape and background colours"


def test_shapes_classes_have_distinct_silhouettes():
    """Mean coverage per class differs: e.g. a star covers less of its disc than a circle."""
    ds = builtin.shapes(resolution=32, channels=1, limit=1200, seed=3)
    x = ds[:][0][:, 0]
    background = x[:, :1, :1]
    coverage = np.abs(x - background) / np.abs(x - background).max(axis=(1, 2), keepdims=True)
    means = {k: coverage[ds.labels == i].mean() for i, k in enumerate(ds.classes)}
    assert means["circle"] > means["star"] and means["square"] > means["triangle"]


def test_shapes_images_are_pinned():
    """The default shapes data (seed 0) stays what the cached real-image features, the
    recorded runs and the shipped classifier were made from: the first 16 classes exactly and
    each image's mean pixel value (a tolerance, not bytes: float32 sin/cos may round an edge
    pixel differently on another CPU)."""
    ds = builtin.shapes(limit=16)
    assert ds.labels.tolist() == [4, 5, 0, 1, 4, 4, 1, 0, 5, 2, 4, 3, 5, 0, 2, 4]
    means = ds.data.reshape(16, -1).mean(1)
    expected = [152.34, 88.91, 71.52, 182.83, 147.36, 124.64, 167.99, 86.93,
                76.13, 152.37, 83.46, 184.38, 183.15, 102.24, 195.8, 187.12]  # fmt: skip
    np.testing.assert_allclose(means, expected, atol=0.05)


def test_shape_parameters_rerender_the_dataset_exactly():
    """shapes() = shape_parameters() drawn by render_shapes(), rounded to 8 bits."""
    for resolution, channels, seed in ((32, 3, 0), (20, 1, 5)):
        ds = builtin.shapes(resolution=resolution, channels=channels, limit=300, seed=seed)
        p = builtin.shape_parameters(300, resolution, channels, seed)
        np.testing.assert_array_equal(p.labels, ds.labels)
        drawn = builtin.render_shapes(*p, resolution)
        np.testing.assert_array_equal(np.rint(drawn * 255).astype(np.uint8), ds.data)


def test_supersampled_distances_place_a_circle_exactly():
    """signed_distances at sub-pixel centres against a disc drawn from its closed form: the
    circle class is the disc of radius 0.85 x size about the centre, at any rotation."""
    p = builtin.shape_parameters(400, 24, 3, seed=4)
    circles = np.flatnonzero(p.labels == builtin.SHAPE_CLASSES.index("circle"))[:20]
    s = 4
    d = builtin.signed_distances(
        p.labels[circles], p.centre[circles], p.radius[circles], p.angle[circles], 24, s
    )
    u = (np.arange(24 * s) + 0.5) / s
    cx, cy = p.centre[circles, 0, None, None], p.centre[circles, 1, None, None]
    r = np.hypot(u[None, None, :] - cx, u[None, :, None] - cy)
    exact = r - 0.85 * p.radius[circles, None, None]
    np.testing.assert_allclose(d, exact, atol=1e-3)
    # a straight edge's box-filter coverage is the renderer's one-pixel ramp: a large square,
    # its top edge at y = 14.5 (half of pixel row 14 covered; 8 x 8 sub-samples resolve that)
    half = 25.5
    big = builtin.ShapeParameters(
        np.array([1]),
        np.array([[40.0, 40.0]]),
        np.array([half / 0.7071]),
        np.array([0.0]),
        np.ones((1, 1)),
        np.zeros((1, 1)),
    )
    ramp = np.clip(0.5 - builtin.signed_distances(*big[:4], 80), 0, 1)
    fine = builtin.signed_distances(*big[:4], 80, supersample=8) < 0
    box = fine.reshape(1, 80, 8, 80, 8).mean((2, 4))
    edge = slice(20, 60)  # away from the corners, where the ramp and the box filter differ
    np.testing.assert_allclose(box[0, 13:17, edge], ramp[0, 13:17, edge], atol=1e-5)
    assert np.allclose(box[0, 14, edge], 0.5)


# ============================================================================ mnist (IDX)
def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written independently of the reader: magic 0x0000TTDD, dims, data."""
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, n=50, compress=True, size=28):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files(tmp_path, compress):
    images, labels = write_mnist(tmp_path, compress=compress)
    ds = builtin.mnist(path=str(tmp_path))
    assert ds.shape == (1, 28, 28) and len(ds) == 50 and ds.classes == [str(d) for d in range(10)]
    np.testing.assert_array_equal(ds.data[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    x, _ = ds[:3]
    np.testing.assert_allclose(x[:, 0], images[:3] / 127.5 - 1, atol=1e-6)


def test_mnist_direct_file_torchvision_layout_limit_and_resize(tmp_path):
    images, labels = write_mnist(tmp_path / "MNIST" / "raw")
    assert len(builtin.mnist(path=str(tmp_path))) == 50  # finds MNIST/raw below the folder
    ds = builtin.mnist(path=str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"),
                       limit=10, resolution=32, channels=3)
    assert len(ds) == 10 and ds.shape == (3, 32, 32)
    np.testing.assert_array_equal(ds.labels, labels[:10])


def test_read_idx_types(tmp_path):
    array = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    out = builtin.read_idx(tmp_path / "a.idx")
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.int32


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-7], "truncated"),
        (lambda b: b + b"\0", "trailing bytes"),
        (lambda b: b"\x01\x02" + b[2:], "not an IDX file"),
        (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: gzip.compress(b)[:-20], "corrupt gzip"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, mangle, message):
    good = idx_bytes(np.zeros((2, 4, 4), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mangle(good))
    with pytest.raises(ValueError, match=message) as info:
        builtin.read_idx(path)
    assert str(path) in str(info.value)


def test_mnist_missing_files_and_label_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        builtin.mnist(path=str(tmp_path))
    write_mnist(tmp_path, n=5)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, np.uint8)))
    )
    with pytest.raises(ValueError, match="do not match"):
        builtin.mnist(path=str(tmp_path))


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """MNIST served from memory: returns (files by URL, list of URLs requested)."""
    served, requested = {}, []
    src = tmp_path / "src"
    images, labels = write_mnist(src, n=20)
    checksums = {}
    for name in builtin.MNIST_FILES:
        data = (src / name).read_bytes()
        served[builtin.MNIST_MIRRORS[0] + name] = data
        checksums[name] = hashlib.md5(data).hexdigest()
    monkeypatch.setattr(builtin, "MNIST_FILES", checksums)

    def urlopen(url, timeout=None):
        requested.append(url)
        if url not in served:
            raise urllib.error.URLError("no network in tests")
        return FakeResponse(served[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("MINIGAN_CACHE", str(tmp_path / "cache"))
    return served, requested, (images, labels)


def test_mnist_download_into_cache(tmp_path, fake_mirror):
    served, requested, (images, labels) = fake_mirror
    ds = builtin.mnist()
    np.testing.assert_array_equal(ds.data[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(builtin.MNIST_FILES)
    assert len(requested) == 2
    builtin.mnist()  # now cached: no more requests
    assert len(requested) == 2


def test_mnist_download_checksum_mismatch_leaves_no_file(tmp_path, fake_mirror, monkeypatch):
    served, _, _ = fake_mirror
    monkeypatch.setattr(builtin, "MNIST_FILES", {n: "0" * 32 for n in builtin.MNIST_FILES})
    with pytest.raises(builtin.DownloadError, match="checksum mismatch"):
        builtin.mnist()
    cache = tmp_path / "cache" / "mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_mnist_offline_error_names_url_and_what_to_do(tmp_path, fake_mirror):
    served, _, _ = fake_mirror
    served.clear()
    with pytest.raises(builtin.DownloadError) as info:
        builtin.mnist()
    message = str(info.value)
    first = next(iter(builtin.MNIST_FILES))
    for mirror in builtin.MNIST_MIRRORS:
        assert mirror + first in message
    assert str(tmp_path / "cache" / "mnist") in message and "offline" in message
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


# ============================================================================ folder
def make_folder(root):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    iio.imwrite(root / "rgb.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    iio.imwrite(root / "photo.JPG", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    (root / "sub").mkdir()
    iio.imwrite(root / "sub" / "gray.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    iio.imwrite(root / "sub" / "deep16.png", np.full((12, 12), 65535, np.uint16))
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    iio.imwrite(root / "sub" / "clear.png", rgba)
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "notes.txt").write_text("not an image")


def test_folder_reads_all_kinds_and_warns_once(tmp_path):
    make_folder(tmp_path / "imgs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = builtin.folder(path=str(tmp_path / "imgs"), resolution=8)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 1 unreadable" in messages[0]
    assert "broken.png" in messages[0]
    assert len(ds) == 5 and ds.shape == (3, 8, 8)  # an RGB image present: 3 channels
    images, labels = ds[:]
    assert labels is None and images.dtype == np.float32
    order = ["photo.JPG", "rgb.png", "sub/clear.png", "sub/deep16.png", "sub/gray.png"]
    np.testing.assert_allclose(images[order.index("sub/clear.png")], 1.0)  # on white
    np.testing.assert_allclose(images[order.index("sub/deep16.png")], 1.0)  # 16-bit white
    gray = images[order.index("sub/gray.png")]
    np.testing.assert_array_equal(gray[0], gray[1])


def test_folder_grayscale_limit_classes(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            iio.imwrite(tmp_path / cls / f"{i}.png", np.full((9, 9), 40 * i, np.uint8))
    ds = builtin.folder(path=str(tmp_path), resolution=9)
    assert ds.shape == (1, 9, 9) and ds.classes == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(builtin.folder(path=str(tmp_path), limit=4)) == 4
    assert builtin.folder(path=str(tmp_path), channels=3).shape == (3, 64, 64)


def test_folder_resize_then_centre_crop_geometry(tmp_path):
    # 40 x 80, every column a different gray: column c has value 3 * c
    pattern = np.tile((3 * np.arange(80)).astype(np.uint8), (40, 1))
    iio.imwrite(tmp_path / "wide.png", pattern)
    ds = builtin.folder(path=str(tmp_path), resolution=20)
    out = as_uint8(ds[0][0][0])  # (20, 20)
    # shorter side 40 -> 20 (factor 2): 40 columns, the middle 20 kept (input columns 20..59)
    expected = 3 * (20 + 2 * np.arange(20) + 0.5)
    assert np.all(out == out[:1]), "rows are identical"
    assert np.all(np.abs(out[0] - expected) <= 1)


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        builtin.folder(path=str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could be read"):
        builtin.folder(path=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        builtin.folder(path=str(tmp_path / "missing"))


# ============================================================================ npz
RGB = np.random.default_rng(3).integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)  # NHWC


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"images": RGB}, RGB.transpose(0, 3, 1, 2)),
        ({"images": RGB.transpose(0, 3, 1, 2)}, RGB.transpose(0, 3, 1, 2)),
        ({"x": RGB[..., 0]}, RGB[:, None, :, :, 0]),
        ({"x": RGB[..., :1]}, RGB[:, None, :, :, 0]),
        ({"first": RGB.astype(np.float32) / 255}, RGB.transpose(0, 3, 1, 2)),
        ({"images": RGB.astype(np.float64) / 127.5 - 1}, RGB.transpose(0, 3, 1, 2)),
    ],
)
def test_npz_layouts_and_ranges(tmp_path, arrays, expected):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays, y=np.arange(6))
    ds = builtin.npz(path=str(path))
    images, labels = ds[:]
    assert images.dtype == np.float32 and ds.name == "data"
    np.testing.assert_allclose(images, expected / 127.5 - 1, atol=1e-5)
    assert labels.tolist() == list(range(6))


def test_npz_errors(tmp_path):
    cases = {
        "range": (np.full((2, 4, 4), 3.0), "float images"),
        "ints": (np.full((2, 4, 4), 300), r"\[0, 255\]"),
        "layout": (np.zeros((2, 5, 4, 4), np.uint8), "neither NCHW nor NHWC"),
        "dims": (np.zeros((2, 4), np.uint8), "4-d"),
    }
    for name, (array, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", images=array)
        with pytest.raises(ValueError, match=message):
            builtin.npz(path=str(tmp_path / f"{name}.npz"))
    np.savez(tmp_path / "labels.npz", images=np.zeros((3, 4, 4), np.uint8), labels=[1, 2])
    with pytest.raises(ValueError, match="labels"):
        builtin.npz(path=str(tmp_path / "labels.npz"))


# ============================================================================ DataLoader
def indexed_dataset(n: int = 23, labels: bool = True) -> Dataset:
    """Image i is filled with value i / n, labels are i: batches reveal their indices."""
    images = np.broadcast_to((np.arange(n) / n).astype(np.float32)[:, None, None, None],
                             (n, 1, 2, 2)).copy()
    return Dataset(images, np.arange(n) if labels else None)


@pytest.mark.parametrize(("drop_last", "batches", "seen"), [(True, 4, 20), (False, 5, 23)])
def test_loader_covers_each_image_once_per_epoch(drop_last, batches, seen):
    ds = indexed_dataset(23)
    loader = DataLoader(ds, batch_size=5, seed=4, drop_last=drop_last)
    assert len(loader) == batches
    for _ in range(2):
        out = list(loader)
        assert len(out) == batches
        x, y = out[0]
        assert isinstance(x, minigan.Tensor) and x.dtype == np.float32 and x.shape == (5, 1, 2, 2)
        assert isinstance(y, minigan.Tensor) and y.dtype == np.int64
        indices = np.concatenate([y.numpy() for _, y in out])
        assert len(indices) == seen and len(set(indices.tolist())) == seen
        np.testing.assert_allclose(np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in out]),
                                   indices / 23, rtol=1e-6)


def test_loader_order_from_seed_and_epoch():
    ds = indexed_dataset(40)
    a, b = DataLoader(ds, 8, seed=1), DataLoader(ds, 8, seed=1)
    first = [y.tolist() for _, y in a]  # epoch 0; then a moves on to epoch 1
    assert a.epoch == 1
    assert first == [y.tolist() for _, y in b]
    second = [y.tolist() for _, y in a]
    assert second != first
    b.set_epoch(1)
    assert [y.tolist() for _, y in b] == second
    np.testing.assert_array_equal(a.order(5), np.random.default_rng([1, 5]).permutation(40))
    assert [y.tolist() for _, y in DataLoader(ds, 8, seed=2)] != first
    assert [y.tolist() for _, y in DataLoader(ds, 8, shuffle=False)][0] == list(range(8))


def test_loader_resume_mid_epoch_yields_the_remaining_batches():
    ds = indexed_dataset(50)
    loader = DataLoader(ds, batch_size=7, seed=9)
    full = [y.tolist() for _, y in loader.iter_from(3)]
    assert [y.tolist() for _, y in loader.iter_from(3, 4)] == full[4:]
    assert list(loader.iter_from(3, len(loader))) == []
    resumed = DataLoader(ds, batch_size=7, seed=9)
    resumed.set_epoch(3, batch_index=4)
    assert [y.tolist() for _, y in resumed] == full[4:]
    assert resumed.epoch == 4
    assert [y.tolist() for _, y in resumed] == [y.tolist() for _, y in loader.iter_from(4)]
    with pytest.raises(ValueError, match="batch_index"):
        loader.iter_from(0, len(loader) + 1).__next__()


def test_loader_errors_and_unlabelled():
    ds = indexed_dataset(6, labels=False)
    with pytest.raises(ValueError, match="larger than dataset"):
        DataLoader(ds, batch_size=7)
    assert len(DataLoader(ds, batch_size=7, drop_last=False)) == 1
    with pytest.raises(ValueError, match="positive"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError):
        DataLoader(np.zeros((6, 1, 2, 2)), batch_size=2)
    (x, y), *_ = DataLoader(ds, batch_size=4)
    assert y is None and x.shape == (4, 1, 2, 2)


# ============================================================================ open_dataset
def test_plugin_registers_the_builtin_datasets(registry):
    assert registry.names("dataset") == ["folder", "mnist", "npz", "shapes"]
    assert registry.plugins["datasets"].error is None
    assert registry.get("dataset", "shapes") is builtin.shapes


def test_open_dataset_by_name(registry):
    ds = open_dataset("shapes", resolution=28, channels=1, limit=10, seed=5, registry=registry)
    assert ds.shape == (1, 28, 28) and len(ds) == 10
    np.testing.assert_array_equal(ds.data, builtin.shapes(resolution=28, channels=1, limit=10,
                                                          seed=5).data)


def test_open_dataset_by_path(tmp_path, registry):
    write_mnist(tmp_path / "digits", n=12, compress=False)
    ds = open_dataset(str(tmp_path / "digits"), resolution=32, registry=registry)
    assert ds.name == "mnist" and ds.shape == (1, 32, 32) and len(ds) == 12
    ds = open_dataset("mnist", path=str(tmp_path / "digits"), channels=3, registry=registry)
    assert ds.shape == (3, 28, 28)

    iio.imwrite(tmp_path / "pics.png", np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "pics").mkdir()
    iio.imwrite(tmp_path / "pics" / "a.png", np.zeros((10, 10, 3), np.uint8))
    assert open_dataset(str(tmp_path / "pics"), resolution=16, registry=registry).shape == (
        3, 16, 16)

    np.savez(tmp_path / "arr.npz", images=np.zeros((3, 8, 8), np.uint8))
    assert open_dataset(str(tmp_path / "arr.npz"), registry=registry).shape == (1, 8, 8)
    assert dataset_kind(tmp_path / "digits" / "train-images-idx3-ubyte") == "mnist"
    assert dataset_kind(tmp_path / "pics") == "folder"


def test_open_dataset_unknown_name(registry):
    with pytest.raises(KeyError, match="unknown dataset 'nope'") as info:
        open_dataset("nope", registry=registry)
    assert "shapes" in str(info.value) and "path" in str(info.value)
    with pytest.raises(FileNotFoundError):
        open_dataset("./missing-folder", registry=registry)


def test_open_dataset_conforms_a_third_party_dataset():
    """A plugin's factory that ignores resolution/channels/limit still gets what was asked."""

    class Plugin:
        @staticmethod
        @minigan.hookimpl
        def register_datasets(register):
            register("noise", lambda **kwargs: Dataset(np.zeros((9, 3, 10, 20), np.uint8)))
            # written to the older hook signature, without ``limit``
            register("old", lambda path, resolution, channels, seed: Dataset(
                np.zeros((9, 1, 8, 8), np.uint8)))

    reg = Registry(load_entry_points=False)
    assert reg.add_plugin(Plugin(), "noise")
    ds = open_dataset("noise", resolution=8, channels=1, limit=4, registry=reg)
    assert ds.shape == (1, 8, 8) and len(ds) == 4
    assert len(open_dataset("old", limit=3, registry=reg)) == 3


# --------------------------------------------------------------------------- two_colour
def _two_colour_images(
    rng: np.random.Generator, n: int, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n images of two random colours: a random disc (antialiased edge) of colour b on a
    background of colour a. Returns the images and the colours a, b (n, channels)."""
    yy, xx = np.mgrid[:32, :32] + 0.5
    images = np.empty((n, channels, 32, 32), np.float32)
    a, b = rng.uniform(-1, 1, (2, n, channels))
    for i in range(n):
        cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 10)
        t = np.clip(r - np.hypot(yy - cy, xx - cx) + 0.5, 0, 1)  # 1 inside, ramp at the edge
        images[i] = a[i, :, None, None] + (b - a)[i, :, None, None] * t
    return images, a, b


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), channels=st.sampled_from([1, 3]))
def test_two_colour_accepts_blends_of_two_colours(seed, channels):
    """Any two colours blended by a mask with soft edges, stored as uint8 or float."""
    images = _two_colour_images(np.random.default_rng(seed), 16, channels)[0]
    assert minigan.data.two_colour(images)
    assert minigan.data.two_colour(minigan.data.to_uint8(images))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_colour_rejects_each_image_with_a_third_colour_noise_or_a_gradient(seed):
    rng = np.random.default_rng(seed)
    images, a, b = _two_colour_images(rng, 8, 3)
    for image, colour_a, colour_b in zip(images, a, b):
        third = image.copy()  # a 6x6 patch of a colour 0.5 off the line through a and b
        off = np.cross(colour_b - colour_a, rng.normal(size=3))
        off *= 0.5 / max(np.linalg.norm(off), 1e-9)
        third[:, 1:7, 1:7] = (colour_a + off)[:, None, None]
        assert not minigan.data.two_colour(third[None])
        noisy = image + rng.normal(0, 0.1, image.shape).astype(np.float32)
        assert not minigan.data.two_colour(noisy[None])
        # a gradient: every pixel on the line between two colours, but few at its ends
        ramp = np.linspace(0, 1, 32, dtype=np.float32)[None, None, :]
        gradient = colour_a[:, None, None] + (colour_b - colour_a)[:, None, None] * ramp
        if np.abs(colour_b - colour_a).max() > 0.1:  # (else it is one flat colour)
            assert not minigan.data.two_colour(gradient[None].astype(np.float32))


def test_two_colour_on_the_built_in_shapes_and_on_smooth_random_pictures():
    assert minigan.data.two_colour(open_dataset("shapes", limit=256).data)
    assert minigan.data.two_colour(open_dataset("shapes", limit=256, channels=1).data)
    rng = np.random.default_rng(0)
    field = rng.normal(size=(64, 3, 32, 32))
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 3.0) ** 2)
    for axis in (2, 3):  # a separable Gaussian blur: smooth random "photographs"
        field = np.apply_along_axis(np.convolve, axis, field, kernel, mode="same")
    assert not minigan.data.two_colour(field / np.abs(field).max())
    assert not minigan.data.two_colour(np.zeros((0, 3, 8, 8), np.uint8))


def test_two_colour_looks_across_the_whole_set():
    """Images spread over the set are judged, not only the first ones: a set that starts
    with a block of shapes and goes on with noise pictures is not two-colour."""
    shapes = open_dataset("shapes", limit=64).data
    noise = np.random.default_rng(0).integers(0, 256, (1000, 3, 32, 32), dtype=np.uint8)
    assert minigan.data.two_colour(shapes)
    assert not minigan.data.two_colour(np.concatenate([shapes, noise]))
