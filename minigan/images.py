"""Images out: grids, PNGs that carry their parameters, GIFs, and dependency-free charts.

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
    "draw_text",
    "line_chart",
    "bar_chart",
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


# --------------------------------------------------------------------------- text
# A 3x5 pixel font: enough for chart labels. Lower case is drawn as upper case.
_GLYPHS = {
    "A": ".#.|#.#|###|#.#|#.#",
    "B": "##.|#.#|##.|#.#|##.",
    "C": ".##|#..|#..|#..|.##",
    "D": "##.|#.#|#.#|#.#|##.",
    "E": "###|#..|##.|#..|###",
    "F": "###|#..|##.|#..|#..",
    "G": ".##|#..|#.#|#.#|.##",
    "H": "#.#|#.#|###|#.#|#.#",
    "I": "###|.#.|.#.|.#.|###",
    "J": "..#|..#|..#|#.#|.#.",
    "K": "#.#|#.#|##.|#.#|#.#",
    "L": "#..|#..|#..|#..|###",
    "M": "#.#|###|###|#.#|#.#",
    "N": "##.|#.#|#.#|#.#|#.#",
    "O": ".#.|#.#|#.#|#.#|.#.",
    "P": "##.|#.#|##.|#..|#..",
    "Q": ".#.|#.#|#.#|##.|.##",
    "R": "##.|#.#|##.|#.#|#.#",
    "S": ".##|#..|.#.|..#|##.",
    "T": "###|.#.|.#.|.#.|.#.",
    "U": "#.#|#.#|#.#|#.#|###",
    "V": "#.#|#.#|#.#|#.#|.#.",
    "W": "#.#|#.#|###|###|#.#",
    "X": "#.#|#.#|.#.|#.#|#.#",
    "Y": "#.#|#.#|.#.|.#.|.#.",
    "Z": "###|..#|.#.|#..|###",
    "0": "###|#.#|#.#|#.#|###",
    "1": ".#.|##.|.#.|.#.|###",
    "2": "##.|..#|.#.|#..|###",
    "3": "##.|..#|.#.|..#|##.",
    "4": "#.#|#.#|###|..#|..#",
    "5": "###|#..|##.|..#|##.",
    "6": ".##|#..|###|#.#|###",
    "7": "###|..#|.#.|.#.|.#.",
    "8": "###|#.#|###|#.#|###",
    "9": "###|#.#|###|..#|##.",
    " ": "...|...|...|...|...",
    ".": "...|...|...|...|.#.",
    ",": "...|...|...|.#.|#..",
    "-": "...|...|###|...|...",
    "_": "...|...|...|...|###",
    "+": "...|.#.|###|.#.|...",
    ":": "...|.#.|...|.#.|...",
    "/": "..#|..#|.#.|#..|#..",
    "(": ".#.|#..|#..|#..|.#.",
    ")": ".#.|..#|..#|..#|.#.",
    "=": "...|###|...|###|...",
    "%": "#.#|..#|.#.|#..|#.#",
    "?": "##.|..#|.#.|...|.#.",
    ">": "#..|.#.|..#|.#.|#..",
    "<": "..#|.#.|#..|.#.|..#",
    "^": ".#.|#.#|...|...|...",
    "*": "...|#.#|.#.|#.#|...",
    "[": "##.|#..|#..|#..|##.",
    "]": ".##|..#|..#|..#|.##",
    "'": ".#.|.#.|...|...|...",
    "|": ".#.|.#.|.#.|.#.|.#.",
}
_FONT = {
    ch: np.array([[c == "#" for c in row] for row in rows.split("|")], bool)
    for ch, rows in _GLYPHS.items()
}
GLYPH_W, GLYPH_H = 3, 5


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` drawn by :func:`draw_text`."""
    return (max(0, len(text) * (GLYPH_W + 1) - 1) * scale, GLYPH_H * scale)


def draw_text(
    image: np.ndarray, x: int, y: int, text: str, color: Sequence[int] | np.ndarray, scale: int = 1
) -> None:
    """Draw ``text`` into the (H, W, 3) ``uint8`` array ``image`` in place, its top-left
    corner at (x, y), in a 3x5 pixel font enlarged ``scale`` times (clipped at the edges).

    >>> img = np.zeros((7, 9, 3), np.uint8)
    >>> draw_text(img, 1, 1, "17", (255, 255, 255))
    >>> print("\\n".join("".join("#" if p else "." for p in row) for row in img[1:6, :, 0]))
    ..#..###.
    .##....#.
    ..#...#..
    ..#...#..
    .###..#..
    """
    color = np.asarray(color, np.uint8)
    h, w = image.shape[:2]
    for i, ch in enumerate(text):
        glyph = _FONT.get(ch.upper(), _FONT["?"])
        glyph = np.repeat(np.repeat(glyph, scale, 0), scale, 1)
        gx = x + i * (GLYPH_W + 1) * scale
        ys, xs = np.nonzero(glyph)
        ys, xs = ys + y, xs + gx
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        image[ys[keep], xs[keep]] = color


# --------------------------------------------------------------------------- chart
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _line(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Any) -> None:
    """A 2-pixel-wide straight segment (sampled densely enough to leave no gaps)."""
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 2
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    h, w = image.shape[:2]
    for dy in (0, 1):
        keep = (ys + dy >= 0) & (ys + dy < h) & (xs >= 0) & (xs < w)
        image[ys[keep] + dy, xs[keep]] = color


def _format(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-2:
        return f"{value:.1e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{value:.3g}"


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    width: int = 640,
    height: int = 360,
    title: str = "",
    xlabel: str = "",
) -> np.ndarray:
    """Plot named ``(xs, ys)`` series as coloured polylines on one set of axes, with tick
    labels and a legend; returns an RGB ``uint8`` image (height, width, 3).

    Non-finite points are skipped; a series with many points is drawn at one point per pixel
    column (averaged), so the chart stays readable for long runs.

    >>> steps = [0, 1, 2]
    >>> img = line_chart({"loss_d": (steps, [1.4, 1.0, 0.9]), "loss_g": (steps, [0.7, 2, 3])})
    >>> img.shape, img.dtype
    ((360, 640, 3), dtype('uint8'))
    >>> bool((img == PALETTE[0]).all(-1).any() and (img == PALETTE[1]).all(-1).any())
    True
    """
    scale = 2
    image = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 16, 40 if title else 16, 40 if xlabel else 28
    pw, ph = width - left - right, height - top - bottom
    points = {
        name: (np.asarray(xs, np.float64), np.asarray(ys, np.float64))
        for name, (xs, ys) in series.items()
    }
    finite = [(x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in points.values()]
    all_x = np.concatenate([x for x, _ in finite] + [np.zeros(0)])
    all_y = np.concatenate([y for _, y in finite] + [np.zeros(0)])
    x0, x1 = (all_x.min(), all_x.max()) if all_x.size else (0.0, 1.0)
    y0, y1 = (all_y.min(), all_y.max()) if all_y.size else (0.0, 1.0)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: np.ndarray) -> np.ndarray:
        return left + (x - x0) / (x1 - x0) * (pw - 1)

    def py(y: np.ndarray) -> np.ndarray:
        return top + (y1 - y) / (y1 - y0) * (ph - 1)

    grey, dark = (225, 225, 225), (40, 40, 40)
    for i in range(5):  # horizontal grid lines with y tick labels
        value = y0 + (y1 - y0) * i / 4
        row = int(round(float(py(np.array(value)))))
        image[row, left : left + pw] = grey
        label = _format(value)
        tw, th = text_size(label, scale)
        draw_text(image, left - 6 - tw, row - th // 2, label, dark, scale)
    for i in range(5):  # x tick labels
        value = x0 + (x1 - x0) * i / 4
        col = int(round(float(px(np.array(value)))))
        image[top + ph : top + ph + 4, col] = dark
        label = str(int(round(value))) if x1 - x0 >= 8 else _format(value)
        tw, _ = text_size(label, scale)
        draw_text(image, min(max(col - tw // 2, 0), width - tw), top + ph + 7, label, dark, scale)
    image[top : top + ph, left - 1] = dark  # axes
    image[top + ph, left - 1 : left + pw] = dark
    _titles(image, title, xlabel, left, pw, height - 14, scale)
    for k, (x, y) in enumerate(finite):
        if x.size > pw:  # one point per pixel column: mean of the values falling in it
            column = np.minimum(((x - x0) / (x1 - x0) * pw).astype(int), pw - 1)
            counts = np.bincount(column, minlength=pw)
            used = counts > 0
            x = (np.bincount(column, x, pw)[used]) / counts[used]
            y = (np.bincount(column, y, pw)[used]) / counts[used]
        _polyline(image, px(x), py(y), PALETTE[k % len(PALETTE)])
    _legend(image, list(points), left + pw - 8, top + 8, scale)
    return image


def _titles(
    image: np.ndarray, title: str, xlabel: str, left: int, pw: int, xlabel_row: int, scale: int
) -> None:
    """The title centred at the top and the x label centred under the plot area."""
    dark = (40, 40, 40)
    if title:
        tw, _ = text_size(title, scale)
        draw_text(image, (image.shape[1] - tw) // 2, 12, title, dark, scale)
    if xlabel:
        tw, _ = text_size(xlabel, scale)
        draw_text(image, left + (pw - tw) // 2, xlabel_row, xlabel, dark, scale)


def _polyline(image: np.ndarray, cx: np.ndarray, cy: np.ndarray, color: Any) -> None:
    """Segments through the points (pixel coordinates); one point is a short dash."""
    if cx.size == 1:
        _line(image, cx[0] - 1, cy[0], cx[0] + 1, cy[0], color)
    for i in range(cx.size - 1):
        _line(image, cx[i], cy[i], cx[i + 1], cy[i + 1], color)


def _legend(image: np.ndarray, names: list[str], lx: int, ly: int, scale: int) -> None:
    """The legend, its top right corner at (lx, ly): a swatch and the name per series."""
    widest = max((text_size(n, scale)[0] for n in names), default=0)
    box_left = lx - widest - 26
    image[ly - 4 : ly + 14 * len(names) + 2, box_left - 4 : lx + 4] = 255
    for k, name in enumerate(names):
        row = ly + 14 * k
        image[row + 1 : row + 9, box_left : box_left + 16] = PALETTE[k % len(PALETTE)]
        draw_text(image, box_left + 22, row, name, (40, 40, 40), scale)


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(s * power for s in (1, 2, 2.5, 5, 10) if value <= s * power * (1 + 1e-9))


def bar_chart(
    bars: Sequence[tuple[str, float]],
    width: int = 960,
    title: str = "",
    xlabel: str = "",
    reference: float | None = 1.0,
    xmax: float | None = None,
) -> np.ndarray:
    """Horizontal bars, one per ``(label, value)``, drawn from 0 in the order given, labels on
    the left and each value at its bar's end; returns an RGB ``uint8`` image (height, width, 3)
    whose height grows with the number of bars (20 pixels each).

    The axis is linear from 0 to ``xmax`` (default: the largest finite value, or ``reference``,
    rounded up to a tick), so a bar's length in pixels is proportional to its value. A dark
    vertical line marks ``reference``; bars at or below it are drawn in ``PALETTE[0]``, bars
    above it in ``PALETTE[1]``. A value beyond ``xmax`` (or infinite) is cut at the right edge
    with a white notch, its true value still written; NaN draws no bar and reads "n/a".
    Negative values raise ``ValueError``.

    >>> img = bar_chart([("adain", 0.5), ("conv2d", 1.5)], title="minigan / torch")
    >>> img.shape
    (110, 960, 3)
    >>> short, long = ((img == c).all(-1).sum(1).max() for c in PALETTE[:2])  # bar lengths
    >>> int(short), int(long)
    (215, 644)
    """
    if not bars:
        raise ValueError("bar_chart: no bars")
    labels = [str(label) for label, _ in bars]
    values = np.array([float(v) for _, v in bars], np.float64)
    if (values < 0).any():
        raise ValueError(f"bar_chart: bars start at 0, got negative values {values[values < 0]}")
    finite = values[np.isfinite(values)]
    top_value = xmax or max([*finite, reference or 0.0]) or 1.0
    step = _nice_step(top_value / 4)  # 4 to 8 ticks
    if xmax is None:
        xmax = step * math.ceil(top_value * 1.02 / step)
    texts = ["n/a" if math.isnan(v) else _format(v) for v in values]  # inf formats as "inf"

    scale, pitch, bar_h = 2, 20, 14
    dark, grey = (40, 40, 40), (225, 225, 225)
    left = 16 + max(text_size(t, scale)[0] for t in labels)
    right = 16 + max(text_size(t, scale)[0] for t in texts)
    top, bottom = 40 if title else 16, 48 if xlabel else 30
    pw, ph = width - left - right, len(bars) * pitch
    if pw < 50:
        raise ValueError(f"bar_chart: width {width} leaves no room for the bars beside the labels")
    image = np.full((top + ph + bottom, width, 3), 255, np.uint8)

    def px(value: float) -> int:
        return left + int(round(min(value, xmax) / xmax * pw))

    ticks = [step * i for i in range(int(xmax / step * (1 + 1e-9)) + 1)]
    for value in ticks:  # vertical grid lines and tick marks
        col = min(px(value), left + pw - 1)
        image[top : top + ph, col] = grey
        image[top + ph : top + ph + 4, col] = dark
    rows = [top + k * pitch + (pitch - bar_h) // 2 for k in range(len(bars))]
    ends = [left if math.isnan(v) else px(v) for v in values]
    for y, end, value in zip(rows, ends, values):
        color = PALETTE[1] if reference is not None and value > reference else PALETTE[0]
        image[y : y + bar_h, left:end] = color
        if value > xmax:  # cut: a notch near the edge says the bar goes on
            image[y : y + bar_h, end - 8 : end - 5] = 255
    if reference is not None and 0 <= reference <= xmax:
        image[top - 4 : top + ph + 4, min(px(reference), left + pw - 1)] = dark
    image[top - 4 : top + ph + 4, left - 1] = dark  # the axes
    image[top + ph, left - 1 : left + pw] = dark

    for value in ticks:  # text last, over the lines
        label = _format(value)
        tw, _ = text_size(label, scale)
        col = min(max(px(value) - tw // 2, 0), width - tw)
        draw_text(image, col, top + ph + 7, label, dark, scale)
    for y, end, label, text in zip(rows, ends, labels, texts):
        tw, th = text_size(label, scale)
        draw_text(image, left - 8 - tw, y + (bar_h - th) // 2, label, dark, scale)
        draw_text(image, end + 6, y + (bar_h - th) // 2, text, dark, scale)
    _titles(image, title, xlabel, left, pw, top + ph + 26, scale)
    return image
