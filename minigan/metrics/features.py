"""Feature networks for the quality metrics, and the feature pass over a set of images.

Two networks, by name:

- ``shapes`` — the shipped shapes classifier's 128-d global-average-pooled features (and its
  6-class logits, for the confident fraction and the class histogram). Offline and fast; its
  Frechet distance is reported as **"FID (shapes-classifier features)"** and is not
  comparable with Inception FID.
- ``inception`` — the FID Inception-v3 (:mod:`minigan.metrics.inception`) with pytorch-fid's
  published weights: the standard FID, KID and precision/recall features (2048-d).

Images go in as NCHW float32 in [-1, 1] (minigan's convention), grayscale or RGB, any size:
grayscale is repeated to RGB, and each network resizes to its own input size (32×32 for the
shapes classifier, 299×299 for Inception) by bilinear interpolation.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import minigan
import minigan.functional as F

__all__ = ["FeatureNetwork", "get_network", "NETWORKS", "extract", "FeatureSet"]

NETWORKS = ("shapes", "inception")


@dataclass
class FeatureSet:
    """Features of a set of images (float32 ``(N, D)``) and, for a classifier, its logits."""

    features: np.ndarray
    logits: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class FeatureNetwork(abc.ABC):
    """A network mapping images to feature vectors (and optionally class logits)."""

    name: str = ""
    label: str = ""  # how its Frechet distance is reported
    size: int = 0  # input resolution
    dim: int = 0
    resizes_itself = False  # the network resizes its input (Inception) -- else prepare() does
    classes: tuple[str, ...] = ()  # a classifier's class names, in the order of its logits

    def __init__(self, net: Any, device: str = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = device

    def prepare(self, images: np.ndarray) -> minigan.Tensor:
        """NCHW [-1, 1] images (1 or 3 channels, any size) as the network's RGB input."""
        x = np.asarray(images, np.float32)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected NCHW images with 1 or 3 channels, got shape {x.shape}")
        if x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        t = minigan.tensor(np.ascontiguousarray(x), device=self.device)
        if x.shape[2:] != (self.size, self.size) and not self.resizes_itself:
            t = F.interpolate(t, size=(self.size, self.size), mode="bilinear")
        return t

    @abc.abstractmethod
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(features, logits or None)`` for a batch of images."""


class ShapesFeatures(FeatureNetwork):
    """The shipped shapes classifier: pooled ``relu4`` features (128-d) and its logits."""

    name, label, size, dim = "shapes", "FID (shapes-classifier features)", 32, 128
    # the shapes dataset's SHAPE_CLASSES, in their order (written out: the core must not
    # import a plugin, tests/test_architecture.py; class_fidelity needs them equal)
    classes = ("circle", "square", "triangle", "star", "cross", "ellipse")

    def __init__(self, device: str = "cpu") -> None:
        from minigan.plugins.deepdream.shapes_classifier import load_shipped

        super().__init__(load_shipped(), device)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with minigan.no_grad():
            pooled = F.mean(self.net.features(self.prepare(images)), dim=(2, 3))
            logits = self.net.classifier(pooled)
        return np.asarray(pooled.numpy(), np.float32), np.asarray(logits.numpy(), np.float32)


class InceptionFeatures(FeatureNetwork):
    """The FID Inception-v3 (2048-d pool features), weights from ``weights`` or the cache."""

    name, label, size, dim = "inception", "FID", 299, 2048
    resizes_itself = True

    def __init__(self, device: str = "cpu", weights: str | Path | None = None) -> None:
        from minigan.metrics.inception import FIDInceptionV3, load_fid_weights
        from minigan.plugins.deepdream import weights as w

        path = Path(weights) if weights else w.find_weights("fid_inception")
        if path is None:
            raise FileNotFoundError(missing_inception_message())
        net = FIDInceptionV3()
        try:
            load_fid_weights(net, w.read_weights(path))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        super().__init__(net, device)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with minigan.no_grad():
            return np.asarray(self.net(self.prepare(images)).numpy(), np.float32), None


def missing_inception_message() -> str:
    """What to tell a user who has no FID Inception weights."""
    from minigan.plugins.deepdream import weights as w

    info = w.WEIGHTS["fid_inception"]
    target = w.hub_dir() / info.filename
    return (
        f"no FID Inception weights: {target} does not exist. Get pytorch-fid's published "
        f"weights with `minigan weights download fid_inception`, or on any machine "
        f"`curl -L -o {target.name} {info.url}` and copy the file there (or pass "
        "--inception-weights FILE). The offline default needs none: --features shapes"
    )


def get_network(name: str, device: str = "cpu", **options: Any) -> FeatureNetwork:
    """The feature network ``name`` (``"shapes"`` or ``"inception"``)."""
    if name == "shapes":
        return ShapesFeatures(device)
    if name == "inception":
        return InceptionFeatures(device, **options)
    raise ValueError(f"unknown feature network {name!r}; expected one of {', '.join(NETWORKS)}")


def extract(
    network: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    batches: Iterable[np.ndarray],
    total: int,
    progress: bool = True,
    desc: str = "features",
) -> FeatureSet:
    """Run ``network`` over ``batches`` of images (``total`` images in all), with a progress
    bar on stderr; returns the concatenated features (and logits, if the network has any)."""
    from tqdm.auto import tqdm

    feats: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, file=sys.stderr) as bar:
        for images in batches:
            f, lg = network(images)
            feats.append(f)
            if lg is not None:
                logits.append(lg)
            bar.update(len(images))
    features = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
    return FeatureSet(features, np.concatenate(logits) if logits else None)
