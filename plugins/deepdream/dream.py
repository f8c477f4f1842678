"""DeepDream: gradient ascent on an image to amplify what a network's layers respond to.

The objective is the (weighted) mean square of the activations of one or more layers — or of
chosen channels of them, or, with a guide image, how well each activation matches its closest
guide feature. Each step computes its gradient with respect to the image through minigan's
autograd (the network is frozen: no weight gradients), normalises it and adds it:

- **octaves**: the image is dreamt from a small copy (``octave_scale`` smaller per octave) up
  to full size; the detail dreamt so far is carried up and re-added to each larger octave;
- **jitter**: before each step the image is rolled by a random offset (and back after), so
  the network's grid does not imprint itself;
- **normalised steps**: the gradient is divided by its mean absolute value (or, with
  ``laplacian``, every level of its Laplacian pyramid by its own RMS, which favours large
  smooth patterns), so ``lr`` is a step in image units;
- **tiles**: the gradient is computed tile by tile (each at most ``tile`` pixels a side), with
  a random roll of the tile grid, so any image size runs in memory bounded by the tile size.

On ``device="cuda"`` the network runs on the GPU and the image stays in host memory: each tile
is copied to the GPU and its gradient back, so the GPU's memory bounds the tile, not the
image; the per-step image arithmetic (roll, normalise, clip) is NumPy on the host.

Its parameters (:class:`DreamConfig`) live in :mod:`.config`, which the hook module can import
cheaply. This module must not import the CLI, the training code or another plugin.

>>> import numpy as np
>>> image = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
>>> out = dream(image, model="shapes", octaves=2, steps=2, progress=False)
>>> out.shape, out.dtype, bool(0 <= out.min() and out.max() <= 1), bool(np.any(out != image))
((40, 48, 3), dtype('float32'), True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn
from minigan.data import resize
from minigan.images import as_rgb_float
from minigan.plugins.deepdream import networks
from minigan.plugins.deepdream import weights as weights_io
from minigan.plugins.deepdream.config import DreamConfig

__all__ = ["DreamConfig", "DeepDream", "dream", "laplacian_normalize", "zoom_in"]

MIN_OCTAVE_SIDE = 32  # octaves stop before an image side gets smaller than this
MIN_IMAGE_SIDE = 8  # smaller images are refused: the networks pool them away
GUIDE_POSITIONS = 2048  # guide features kept per layer (subsampled evenly)


def parse_channels(text: str | None, layers: Sequence[str]) -> dict[str, list[int]]:
    """``"3,17"`` (every layer) or ``"conv4_3=3,17;conv5_1=9"`` -> ``{layer: [channels]}``.

    >>> parse_channels("conv4_3=3,17;conv5_1=9", ["conv4_3", "conv5_1"])
    {'conv4_3': [3, 17], 'conv5_1': [9]}
    >>> parse_channels("5", ["relu3", "relu4"])
    {'relu3': [5], 'relu4': [5]}
    """
    if not text:
        return {}
    if "=" not in text:
        chosen = [int(c) for c in text.split(",") if c.strip()]
        return {layer: chosen for layer in layers}
    result = {}
    for group in text.split(";"):
        if group.strip():
            layer, _, chans = group.partition("=")
            if layer.strip() not in layers:
                raise ValueError(f"--channels names layer {layer.strip()!r}, not one of {layers}")
            result[layer.strip()] = [int(c) for c in chans.split(",") if c.strip()]
    return result


# --------------------------------------------------------------------------- image helpers
_BLUR = np.array([1, 4, 6, 4, 1], np.float32) / 16


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial blur of an NCHW array (edges reflected)."""
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (2, 2)
        p = np.pad(x, pad, mode="reflect" if x.shape[axis] > 2 else "edge")
        n = x.shape[axis]
        x = sum(_BLUR[i] * np.take(p, np.arange(i, i + n), axis=axis) for i in range(5)).astype(
            np.float32
        )
    return x


def laplacian_normalize(grad: np.ndarray, levels: int = 4, eps: float = 1e-8) -> np.ndarray:
    """Split an NCHW gradient into a Laplacian pyramid, scale each level to unit RMS, merge.

    Every band then contributes equally, so low frequencies (large smooth structures) are not
    drowned by pixel noise — Mordvintsev's ``lap_normalize``.

    >>> g = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    >>> out = laplacian_normalize(g, levels=3)
    >>> out.shape, out.dtype
    ((1, 3, 32, 32), dtype('float32'))
    """
    bands = []
    current = grad.astype(np.float32, copy=False)
    for _ in range(levels - 1):
        if min(current.shape[2:]) < 4:
            break
        low = _blur(current)[:, :, ::2, ::2]
        up = resize(low, current.shape[2:])
        bands.append(current - up)
        current = low
    bands.append(current)
    merged = None
    for band in reversed(bands):
        band = band / (np.sqrt(np.mean(band * band)) + eps)
        merged = band if merged is None else resize(merged, band.shape[2:]) + band
    assert merged is not None  # at least one band
    return merged.astype(np.float32, copy=False)


def zoom_in(image: np.ndarray, factor: float) -> np.ndarray:
    """Crop the centre ``1/factor`` of an H×W×C image and scale it back to H×W.

    >>> zoom_in(np.zeros((10, 20, 3), np.float32), 1.25).shape
    (10, 20, 3)
    """
    h, w = image.shape[:2]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top : top + ch, left : left + cw].transpose(2, 0, 1)[None]
    return resize(np.ascontiguousarray(crop), (h, w))[0].transpose(1, 2, 0)


def _mean_abs(x: np.ndarray, rows: int = 256) -> np.float32:
    """``np.abs(x).mean()`` a few rows at a time, without an image-sized temporary."""
    flat = x.reshape(-1, x.shape[-1])
    total = sum(float(np.abs(flat[i : i + rows]).sum()) for i in range(0, len(flat), rows))
    return np.float32(total / max(1, x.size))


def _splits(n: int, tile: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into equal-ish pieces of at most ``tile``.

    >>> _splits(10, 4)
    [(0, 3), (3, 7), (7, 10)]
    """
    count = max(1, math.ceil(n / tile)) if tile > 0 else 1
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


# --------------------------------------------------------------------------- the processor
class DeepDream:
    """The ``deepdream`` processor: ``DeepDream(config).process(image) -> image``.

    ``config`` is a :class:`DreamConfig`, a dict of its fields, or ``None`` for the defaults;
    keyword arguments override fields. ``network`` passes a ready network instead of loading
    weights (tests and benchmarks use random weights this way); it is moved to
    ``config.device`` in place, as ``Module.to`` does.

    After :meth:`process`, ``history`` holds the objective at every step of every octave.
    """

    Config = DreamConfig

    def __init__(
        self,
        config: DreamConfig | Mapping[str, Any] | None = None,
        network: nn.Module | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = DreamConfig()
        elif isinstance(config, Mapping):
            config = DreamConfig(**config)
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        cfg = self.config
        self.spec = networks.get_spec(cfg.model)
        self.weights_source = "given network"
        self.network = (network if network is not None else self._load_network()).eval()
        self.network.to(cfg.device)
        self.network.requires_grad_(False)
        self.layers = networks.parse_layers(cfg.layers) or dict(self.spec.default_layers)
        self.extractor = networks.FeatureExtractor(self.network, self.spec, list(self.layers))
        self.channels = parse_channels(cfg.channels, list(self.layers))
        self._check_channels()
        self.guide = None
        if cfg.guide:
            from minigan.images import read_image

            self.guide = as_rgb_float(read_image(cfg.guide))
        self.history: list[list[float]] = []

    # ----- set-up
    def _load_network(self) -> nn.Module:
        cfg, spec = self.config, self.spec
        path: Path | None = Path(cfg.weights) if cfg.weights else None
        if path is None and spec.name == "shapes":
            from minigan.plugins.deepdream.shapes_classifier import WEIGHTS_PATH

            path = WEIGHTS_PATH
        if path is None:
            path = weights_io.find_weights(spec.name)
            if path is None:
                raise weights_io.WeightsNotFoundError(weights_io.missing_weights_message(spec.name))
        model = spec.build()
        networks.load_weights(model, weights_io.read_weights(path), spec)
        self.weights_source = path.name
        return model

    def _check_channels(self) -> None:
        if not self.channels:
            return
        with minigan.no_grad():
            probe = np.zeros((1, 3, 64, 64), np.float32)
            acts = self.extractor(minigan.tensor(probe, device=self.config.device))
        for layer, chans in self.channels.items():
            width = acts[layer].shape[1]
            bad = [c for c in chans if not 0 <= c < width]
            if bad or not chans:
                raise ValueError(
                    f"channels {bad or chans} out of range for {layer} ({width} channels)"
                )

    def metadata(self) -> dict[str, Any]:
        """The parameters that made an output image (stored in its PNG)."""
        meta = {"processor": "deepdream", **dataclasses.asdict(self.config)}
        meta.pop("progress")
        meta["layers"] = ",".join(f"{k}:{v:g}" for k, v in self.layers.items())
        meta["weights"] = self.weights_source
        meta["minigan"] = minigan.__version__
        return {k: v for k, v in meta.items() if v is not None}

    # ----- objective and gradient
    def _guide_features(self, shape: tuple[int, int]) -> dict[str, minigan.Tensor]:
        """Per layer, guide features (C, M) from the guide resized to about ``shape``, on the
        network's device."""
        assert self.guide is not None
        h, w = shape
        side = self.config.tile or max(h, w)
        scale = min(1.0, side / max(h, w))
        size = (max(16, round(h * scale)), max(16, round(w * scale)))
        guide = resize(np.ascontiguousarray(self.guide.transpose(2, 0, 1)[None]), size)
        with minigan.no_grad():
            acts = self.extractor(minigan.tensor(guide, device=self.config.device))
        feats = {}
        for layer, act in acts.items():
            a = act[0]
            if layer in self.channels:
                a = a[self.channels[layer]]
            a = F.reshape(a, (a.shape[0], -1))
            step = max(1, math.ceil(a.shape[1] / GUIDE_POSITIONS))
            feats[layer] = a[:, ::step].detach()
        return feats

    def objective(
        self,
        x: minigan.Tensor,
        fraction: float = 1.0,
        guide: Mapping[str, minigan.Tensor] | None = None,
    ) -> minigan.Tensor:
        """The dream objective of an NCHW tile ``x`` in [0, 1] that is ``fraction`` of the
        whole image: per layer, the mean square activation (or, with ``guide``, the mean best
        match ``max_j <a_i, g_j>`` with the guide's features), times the layer's weight.
        Summed over the tiles of an image, it is the objective of the whole image."""
        acts = self.extractor(x)
        total = None
        for layer, weight in self.layers.items():
            a = acts[layer]
            if layer in self.channels:
                a = a[:, self.channels[layer]]
            if guide is not None:
                flat = F.reshape(a, (a.shape[1], -1))  # (C, N)
                match = F.amax(F.matmul(F.transpose(flat, 0, 1), guide[layer]), 1)
                term = F.sum(match) * (fraction / flat.shape[1])
            else:
                term = F.sum(a * a) * (fraction / a.numel())
            term = term * float(weight)
            total = term if total is None else total + term
        assert total is not None  # at least one layer
        return total

    def gradient(
        self, image: np.ndarray, guide: Mapping[str, minigan.Tensor] | None = None
    ) -> tuple[np.ndarray, float]:
        """Gradient of the objective w.r.t. an NCHW image, computed tile by tile (tiles of at
        most ``config.tile`` pixels a side); returns ``(gradient, objective)``."""
        h, w = image.shape[2:]
        grad = np.empty_like(image)
        value = 0.0
        for top, bottom in _splits(h, self.config.tile):
            for left, right in _splits(w, self.config.tile):
                part = np.ascontiguousarray(image[:, :, top:bottom, left:right])
                x = minigan.tensor(part, device=self.config.device, requires_grad=True)
                objective = self.objective(x, part[0, 0].size / (h * w), guide)
                (g,) = minigan.grad(objective, x)
                assert g is not None  # x was used: grad() raised otherwise
                grad[:, :, top:bottom, left:right] = g.numpy()
                value += float(objective.item())
        return grad, value

    def step(
        self,
        image: np.ndarray,
        rng: np.random.Generator,
        guide: Mapping[str, minigan.Tensor] | None = None,
    ) -> tuple[np.ndarray, float]:
        """One ascent step on an NCHW image in [0, 1]: roll, tiled gradient, unroll,
        normalise, update, clip. Returns ``(new image, objective before the step)``."""
        cfg = self.config
        h, w = image.shape[2:]
        dy, dx = (
            (int(v) for v in rng.integers(-cfg.jitter, cfg.jitter + 1, 2)) if cfg.jitter else (0, 0)
        )
        if cfg.tile and (h > cfg.tile or w > cfg.tile):  # move the tile seams every step
            dy, dx = dy + int(rng.integers(cfg.tile)), dx + int(rng.integers(cfg.tile))
        rolled = np.roll(image, (dy, dx), axis=(2, 3)) if dy or dx else image
        grad, value = self.gradient(rolled, guide)
        del rolled
        if dy or dx:
            grad = np.roll(grad, (-dy, -dx), axis=(2, 3))
        if cfg.laplacian > 1:
            grad = laplacian_normalize(grad, cfg.laplacian)
            grad *= np.float32(cfg.lr)
        else:
            grad *= np.float32(cfg.lr) / (_mean_abs(grad) + np.float32(1e-8))
        grad += image  # the new image, in the gradient's buffer (one image-sized array less)
        np.clip(grad, 0, 1, out=grad)
        return grad, value

    # ----- the whole dream
    def octave_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """Image sizes from full size down, ``octave_scale`` apart, none below 32 pixels.

        >>> DeepDream(octaves=3).octave_sizes(100, 200)
        [(100, 200), (71, 143), (51, 102)]
        """
        sizes = [(h, w)]
        for i in range(1, self.config.octaves):
            f = self.config.octave_scale**i
            size = (round(h / f), round(w / f))
            if min(size) < MIN_OCTAVE_SIDE:
                break
            sizes.append(size)
        return sizes

    @staticmethod
    def check_size(image: np.ndarray) -> None:
        """Refuse (``ValueError``) an image smaller than ``MIN_IMAGE_SIDE`` pixels a side."""
        h, w = np.shape(image)[:2]
        if min(h, w) < MIN_IMAGE_SIDE:
            raise ValueError(
                f"a {w}x{h} image is too small to dream on: at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels are needed"
            )

    def process(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Dream on an H×W×C image (float in [0, 1], or ``uint8``); returns H×W×3 float32."""
        from tqdm.auto import tqdm

        cfg = self.config
        rng = np.random.default_rng(cfg.seed if seed is None else seed)
        self.check_size(image)
        base = np.ascontiguousarray(as_rgb_float(image).transpose(2, 0, 1)[None])
        sizes = self.octave_sizes(*base.shape[2:])
        bases = [base] + [resize(base, size) for size in sizes[1:]]
        detail: np.ndarray | None = None  # what the octaves so far added to their base
        self.history = []
        current = base
        for index, octave_base in enumerate(reversed(bases)):
            if detail is None:
                current = octave_base.copy()
            else:
                if detail.shape != octave_base.shape:
                    detail = resize(detail, octave_base.shape[2:])
                current = np.add(octave_base, detail, out=detail)
                np.clip(current, 0, 1, out=current)
            detail = None
            guide = self._guide_features(octave_base.shape[2:]) if self.guide is not None else None
            values = []
            h, w = octave_base.shape[2:]
            desc = f"octave {index + 1}/{len(bases)} {w}x{h}"
            for _ in tqdm(range(cfg.steps), desc=desc, disable=not cfg.progress, leave=False):
                current, value = self.step(current, rng, guide)
                values.append(value)
            self.history.append(values)
            if index + 1 < len(bases):
                detail = current - octave_base
        return np.ascontiguousarray(current[0].transpose(1, 2, 0))

    def zoom(self, image: np.ndarray, frames: int, factor: float = 1.05) -> list[np.ndarray]:
        """The zoom-feedback loop: dream, zoom into the centre by ``factor``, dream again…;
        returns the ``frames`` dreamt images (seed + frame number for each)."""
        seed = self.config.seed
        current, out = as_rgb_float(image), []
        for frame in range(frames):
            current = self.process(current, seed=seed + frame)
            out.append(current)
            current = zoom_in(current, factor)
        return out


def dream(image: np.ndarray, network: nn.Module | None = None, **options: Any) -> np.ndarray:
    """DeepDream one image (H×W×C, float in [0, 1] or ``uint8``) with :class:`DreamConfig`
    options, e.g. ``dream(img, model="vgg16", layers="conv4_3:1,conv5_1:0.5", octaves=4)``."""
    return DeepDream(DreamConfig(**options), network=network).process(image)
