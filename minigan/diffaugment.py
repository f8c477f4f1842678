"""DiffAugment: random, differentiable augmentations for the images a GAN's discriminator sees.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
(github.com/mit-han-lab/data-efficient-gans), policy ``"color,translation,cutout"``. The
same augmentation is applied to real and fake images alike and every op is differentiable
in the images, so the generator is trained through it. The semantics are those of the
paper's PyTorch functions as ``benchmarks/dcgan_twin.py`` ports them (``augment_color``,
``augment_translation``, ``augment_cutout``), with the random draws split from the
arithmetic:

- :func:`draw` takes everything random about one call from a ``numpy.random.Generator``
  into an :class:`AugmentDraws` (NumPy arrays, one entry per sample), in a fixed order;
- :func:`apply` is then a deterministic function of the images and those draws, so a
  PyTorch twin can replay exactly the same augmentation;
- :func:`diff_augment` is ``apply(x, draw(policy, x.shape, rng))``.

The ops always run in the paper's order, color -> translation -> cutout, whatever the order
of the policy:

- **color**: per sample, brightness ``x + (b - 0.5)``; saturation
  ``(x - mean_c) * 2s + mean_c`` (mean over the channels); contrast
  ``(x - mean_chw) * (c + 0.5) + mean_chw`` (mean over channels and pixels); ``b, s, c`` are
  U(0, 1) float32 draws, cast to the images' dtype.
- **translation**: each sample shifted by ``(ty, tx)`` pixels, ``|ty| <= int(H/8 + 0.5)``,
  ``|tx| <= int(W/8 + 0.5)``: ``out[y, x] = in[y + ty, x + tx]`` where that lies inside the
  image, else 0. The paper's 1/8 is the default; ``translation=r`` in :func:`draw` and
  :func:`diff_augment` makes it ``int(H r + 0.5)``.
- **cutout**: each sample gets a ``ch x cw`` square (``ch = int(H/2 + 0.5)``) of zeros
  centred at ``(oy, ox)``, ``0 <= oy < H + 1 - ch % 2``; the part outside the image is cut off.

Each op is one minigan op, on the tensor's own device (index arrays and masks are built with
the tensor's array module): color one per-sample affine map (:class:`ColorAffine`),
translation one shift (:class:`Translate`: rectangle copies on the CPU, one gather on a GPU)
and cutout one multiply by a constant mask. The backward of each is the same kind of op
(the opposite shift, the same mask, the same affine map), so second derivatives work too.

>>> import numpy as np
>>> import minigan
>>> from minigan import diffaugment
>>> x = minigan.arange(9.0).reshape(1, 1, 3, 3).requires_grad_()
>>> up = diffaugment.AugmentDraws(shift_y=np.array([1]), shift_x=np.array([0]))
>>> y = diffaugment.apply(x, up)  # row y shows input row y + 1; the last row is zero-filled
>>> y
tensor([[[[3., 4., 5.],
          [6., 7., 8.],
          [0., 0., 0.]]]], requires_grad=True)
>>> y.sum().backward()
>>> x.grad[0, 0]  # input row 0 left the image
tensor([[0., 0., 0.],
        [1., 1., 1.],
        [1., 1., 1.]])
>>> rng = np.random.default_rng(0)
>>> draws = diffaugment.draw("color,translation,cutout", (4, 3, 32, 32), rng)
>>> draws.policy, draws.brightness.dtype, draws.shift_y.dtype
(('color', 'translation', 'cutout'), dtype('float32'), dtype('int64'))
>>> images = minigan.randn(4, 3, 32, 32)
>>> diffaugment.diff_augment(images, "color,translation,cutout", rng).shape
(4, 3, 32, 32)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from minigan import backend
from minigan import functional as F
from minigan.tensor import Function, Tensor

__all__ = ["POLICY_OPS", "AugmentDraws", "apply", "diff_augment", "draw", "parse_policy"]

#: the known ops, in the order they are applied
POLICY_OPS = ("color", "translation", "cutout")

TRANSLATION_RATIO = 0.125  # the largest shift, as a fraction of the size
CUTOUT_RATIO = 0.5  # the side of the cut-out square, as a fraction of the size

# the AugmentDraws fields each op reads (all set or all None)
_FIELDS = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("shift_y", "shift_x"),
    "cutout": ("cutout_y", "cutout_x"),
}


@dataclass(frozen=True, eq=False)
class AugmentDraws:
    """Everything random about one augmentation of a batch: NumPy arrays of shape (N,), one
    entry per sample; an op's fields are None when the policy leaves it out. (Compared and
    hashed by identity: the fields are arrays.)

    ``brightness``, ``saturation``, ``contrast``: float32 U(0, 1) draws; ``shift_y``,
    ``shift_x``: int64 shifts in pixels; ``cutout_y``, ``cutout_x``: int64 centres of the
    cut-out square (as the reference draws them: ``[0, H + 1 - ch % 2)``).
    """

    brightness: np.ndarray | None = None
    saturation: np.ndarray | None = None
    contrast: np.ndarray | None = None
    shift_y: np.ndarray | None = None
    shift_x: np.ndarray | None = None
    cutout_y: np.ndarray | None = None
    cutout_x: np.ndarray | None = None

    def __post_init__(self) -> None:
        for op, names in _FIELDS.items():
            given = [getattr(self, name) is not None for name in names]
            if any(given) and not all(given):
                missing = [n for n, g in zip(names, given) if not g]
                raise ValueError(
                    f"AugmentDraws: {op!r} needs {', '.join(names)}; missing {', '.join(missing)}"
                )
        lengths = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray) or value.ndim != 1:
                raise ValueError(
                    f"AugmentDraws: {f.name} must be a 1-D NumPy array (one entry per sample), "
                    f"got {type(value).__name__} of shape {np.shape(value)}"
                )
            lengths[f.name] = len(value)
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name} {n}" for name, n in lengths.items())
            raise ValueError(f"AugmentDraws: every draw needs one entry per sample, got {shown}")

    @property
    def policy(self) -> tuple[str, ...]:
        """The ops these draws apply, in the order they are applied."""
        return tuple(op for op in POLICY_OPS if getattr(self, _FIELDS[op][0]) is not None)

    @property
    def batch_size(self) -> int | None:
        """The number of samples drawn for (None when no op is drawn)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                return len(value)
        return None


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """The ops of ``policy`` (``"color,translation"`` or a list of names) in the order they
    are applied; ``""`` gives ``()``. Raises ValueError naming an unknown op.

    >>> parse_policy("cutout, color")
    ('color', 'cutout')
    """
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    wanted = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"DiffAugment policy: op names are strings, got {name!r}")
        name = name.strip()
        if not name:
            continue
        if name not in POLICY_OPS:
            raise ValueError(
                f"DiffAugment policy: unknown op {name!r}; the known ops are "
                f"{', '.join(POLICY_OPS)}"
            )
        wanted.add(name)
    return tuple(op for op in POLICY_OPS if op in wanted)


def _size(n: int, ratio: float) -> int:
    """The reference's ``int(n * ratio + 0.5)``."""
    return int(n * ratio + 0.5)


def _check_shape(shape: Sequence[int], what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4 or any(int(s) < 0 for s in shape):
        raise ValueError(f"DiffAugment: {what} must be an NCHW batch, got shape {tuple(shape)}")
    n, c, h, w = (int(s) for s in shape)
    return n, c, h, w


def draw(
    policy: str | Sequence[str],
    shape: Sequence[int],
    rng: np.random.Generator,
    translation: float = TRANSLATION_RATIO,
) -> AugmentDraws:
    """Draw the random parameters of ``policy`` for a batch of ``shape`` (N, C, H, W);
    ``translation`` is the largest shift as a fraction of the size (in [0, 1]).

    The generator is used in a fixed order, each op only when in the policy: brightness,
    saturation, contrast (``rng.random(N, dtype=np.float32)`` each), then ``shift_y``,
    ``shift_x`` (``rng.integers``), then ``cutout_y``, ``cutout_x``. Each is drawn as an
    (N, 1) column (the same values as a draw of N), so that under
    :func:`minigan.random.batch_shard` every data-parallel process draws its own slice of the
    global batch's draws even with one sample per process.
    """
    ops = parse_policy(policy)
    n, _, h, w = _check_shape(shape, "the shape to draw for")
    real = isinstance(translation, numbers.Real) and not isinstance(translation, bool)
    if not (real and 0.0 <= translation <= 1.0):  # also refuses NaN
        raise ValueError(
            f"DiffAugment: translation is the largest shift as a fraction of the image size, "
            f"in [0, 1]; got {translation!r}"
        )
    column = (n, 1)  # the same values as size n; a batch-shaped draw for every n (see below)
    drawn: dict[str, np.ndarray] = {}
    if "color" in ops:
        for name in _FIELDS["color"]:
            drawn[name] = rng.random(column, dtype=np.float32).ravel()
    if "translation" in ops:
        sh, sw = _size(h, translation), _size(w, translation)
        drawn["shift_y"] = rng.integers(-sh, sh + 1, size=column, dtype=np.int64).ravel()
        drawn["shift_x"] = rng.integers(-sw, sw + 1, size=column, dtype=np.int64).ravel()
    if "cutout" in ops:
        ch, cw = _size(h, CUTOUT_RATIO), _size(w, CUTOUT_RATIO)
        drawn["cutout_y"] = rng.integers(0, h + (1 - ch % 2), size=column, dtype=np.int64).ravel()
        drawn["cutout_x"] = rng.integers(0, w + (1 - cw % 2), size=column, dtype=np.int64).ravel()
    return AugmentDraws(**drawn)


# --------------------------------------------------------------------------- the ops


class ColorAffine(Function):
    """Per sample ``out = scale * x + channel * mean_c(x) + whole * mean_chw(x) + shift``
    (``mean_c`` over the channels, ``mean_chw`` over channels and pixels): DiffAugment's
    brightness, saturation and contrast folded into one op. The linear part is symmetric
    (both means are orthogonal projections), so the backward is the same op without the
    shift. The coefficients are (N, 1, 1, 1) arrays on the input's device; ``shift`` may be
    None."""

    saved_inputs = ()

    def __init__(self, scale: Any, channel: Any, whole: Any, shift: Any = None) -> None:
        self.scale, self.channel, self.whole, self.shift = scale, channel, whole, shift

    def forward(self, x):
        per_pixel = x.mean(axis=1, keepdims=True)  # (N, 1, H, W)
        offset = self.whole * per_pixel.mean(axis=(2, 3), keepdims=True)  # (N, 1, 1, 1)
        if self.shift is not None:
            offset = offset + self.shift
        out = x * self.scale
        out += self.channel * per_pixel + offset
        return out

    def backward(self, gy):
        return ColorAffine(self.scale, self.channel, self.whole)(gy)


def _color(x: Tensor, draws: AugmentDraws) -> Tensor:
    """The reference's three steps, ``x + (b - 0.5)``, ``(x - mean_c) * 2s + mean_c`` and
    ``(x - mean_chw) * (c + 0.5) + mean_chw``, compose to one :class:`ColorAffine`: with
    ``S = 2s`` and ``K = c + 0.5`` it is ``K*S*x + K*(1 - S)*mean_c(x) + (1 - K)*mean_chw(x)
    + (b - 0.5)`` (the saturation step keeps the overall mean, and a per-sample constant
    passes through both steps unchanged)."""
    assert draws.brightness is not None and draws.saturation is not None
    assert draws.contrast is not None
    xp = backend.get_array_module(x.data)
    # the draws cast to x's dtype, then the coefficients in float64, rounded once
    b, s, c = (
        d.astype(x.dtype).astype(np.float64)
        for d in (draws.brightness, draws.saturation, draws.contrast)
    )
    big_s, big_k = 2 * s, c + 0.5
    coefficients = (big_k * big_s, big_k * (1 - big_s), 1 - big_k, b - 0.5)
    on_device = [xp.asarray(v.reshape(-1, 1, 1, 1).astype(x.dtype)) for v in coefficients]
    return ColorAffine(*on_device)(x)


def _shift_slices(x: np.ndarray, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    """The zero-filled shift as one rectangle copy per sample (NumPy: cheaper than a gather)."""
    _, _, h, w = x.shape
    out = np.zeros_like(x)
    for i, (dy, dx) in enumerate(zip(ty.tolist(), tx.tolist())):
        if abs(dy) >= h or abs(dx) >= w:
            continue  # shifted out of the image: all zeros
        out[i, :, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = x[
            i, :, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
        ]
    return out


def _shift_gather(x: Any, ty: np.ndarray, tx: np.ndarray, xp: Any) -> Any:
    """The zero-filled shift as one gather over the whole batch (a GPU: no per-sample launch)."""
    n, c, h, w = x.shape
    ys = xp.arange(h, dtype=np.int64).reshape(1, h, 1) + xp.asarray(ty).reshape(n, 1, 1)
    xs = xp.arange(w, dtype=np.int64).reshape(1, 1, w) + xp.asarray(tx).reshape(n, 1, 1)
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).reshape(n, 1, h * w)
    plane = xp.where(inside, (ys * w + xs).reshape(n, 1, h * w), 0)  # source pixel in its plane
    first = xp.arange(n * c, dtype=np.int64).reshape(n, c, 1) * (h * w)
    out = xp.take(xp.ascontiguousarray(x).reshape(-1), first + plane)
    return xp.where(inside, out, 0).reshape(x.shape)


class Translate(Function):
    """Shift sample ``i`` by ``(ty[i], tx[i])`` pixels with zero fill:
    ``out[i, :, y, x] = x[i, :, y + ty[i], x + tx[i]]`` where inside, else 0. The backward is
    the opposite shift (the adjoint of a zero-filled shift). ``ty`` and ``tx`` are int64
    NumPy arrays, one entry per sample."""

    saved_inputs = ()

    def __init__(self, ty: np.ndarray, tx: np.ndarray) -> None:
        self.ty, self.tx = ty.astype(np.int64), tx.astype(np.int64)

    def forward(self, x):
        xp = backend.get_array_module(x)
        if xp is np:
            return _shift_slices(x, self.ty, self.tx)
        return _shift_gather(x, self.ty, self.tx, xp)

    def backward(self, gy):
        return Translate(-self.ty, -self.tx)(gy)


def _translation(x: Tensor, draws: AugmentDraws) -> Tensor:
    assert draws.shift_y is not None and draws.shift_x is not None
    return Translate(draws.shift_y, draws.shift_x)(x)


def _cut_span(centre: Any, size: int, n: int, xp: Any) -> tuple[Any, Any]:
    """The first and last row (or column) the reference zeroes: it clamps each row of the
    square into ``[0, n - 1]``, so the square is cut at the edges."""
    start = centre - size // 2
    return xp.clip(start, 0, n - 1), xp.clip(start + size - 1, 0, n - 1)


def _cutout(x: Tensor, draws: AugmentDraws) -> Tensor:
    assert draws.cutout_y is not None and draws.cutout_x is not None
    n, _, h, w = x.shape
    xp = backend.get_array_module(x.data)
    ch, cw = _size(h, CUTOUT_RATIO), _size(w, CUTOUT_RATIO)
    oy = xp.asarray(draws.cutout_y, dtype=np.int64).reshape(n, 1, 1, 1)
    ox = xp.asarray(draws.cutout_x, dtype=np.int64).reshape(n, 1, 1, 1)
    y0, y1 = _cut_span(oy, ch, h, xp)
    x0, x1 = _cut_span(ox, cw, w, xp)
    ys = xp.arange(h, dtype=np.int64).reshape(1, 1, h, 1)
    xs = xp.arange(w, dtype=np.int64).reshape(1, 1, 1, w)
    cut = (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)  # (N, 1, H, W)
    return F.mask(x, ~cut)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def apply(x: Tensor, draws: AugmentDraws) -> Tensor:
    """Augment the NCHW batch ``x`` with ``draws`` (from :func:`draw`, or built by hand):
    color, then translation, then cutout, each where drawn. Differentiable in ``x``, on
    ``x``'s device; no draws at all returns ``x`` itself."""
    n, _, h, w = _check_shape(x.shape, "the images")
    if draws.batch_size is not None and draws.batch_size != n:
        raise ValueError(
            f"DiffAugment: the draws are for {draws.batch_size} samples, the images "
            f"{x.shape} hold {n}"
        )
    for op in draws.policy:
        if op == "color" and x.dtype.kind != "f":
            raise TypeError(f"DiffAugment: color needs floating-point images, got {x.dtype}")
        x = _OPS[op](x, draws)
    return x


def diff_augment(
    x: Tensor,
    policy: str | Sequence[str],
    rng: np.random.Generator,
    translation: float = TRANSLATION_RATIO,
) -> Tensor:
    """``apply(x, draw(policy, x.shape, rng, translation))``: augment ``x`` with fresh draws
    from ``rng``. An empty policy returns ``x`` unchanged and draws nothing."""
    return apply(x, draw(policy, x.shape, rng, translation))
