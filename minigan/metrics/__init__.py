"""Sample quality: FID, KID, precision/recall, and the shapes classifier's verdicts.

``minigan metrics RUN`` (and ``--metric-every N`` during training) call :func:`measure`:
generate ``num`` samples with the run's sampling generator (EMA where present), pass them and
``num`` real images through a feature network (:mod:`minigan.metrics.features`), and compare:

- ``fid`` — Frechet distance of the feature Gaussians (:func:`frechet_distance`). With the
  default ``shapes`` network this is **"FID (shapes-classifier features)"**: minigan's offline
  measure, *not* comparable with Inception FID; ``--features inception`` gives the standard
  FID (pytorch-fid's network and weights).
- ``kid_mean`` / ``kid_std`` — KID (unbiased polynomial-kernel MMD², mean and standard
  deviation over random subsets), as torch-fidelity reports it.
- ``precision`` / ``recall`` — Kynkaanniemi et al.'s k-NN manifold estimates (k = 3).
- with the shapes classifier also ``confident`` (fraction of samples whose top softmax
  probability exceeds 0.9) and ``class_fractions`` (fraction predicted as each class).
- for a class-conditional model judged by a classifier of the data's own classes (the shapes
  classifier on ``shapes``): ``class_fidelity`` — how often a sample asked for a class
  (``sample(z, label=k)``) is classified as that class, mean over the classes, with
  ``class_fidelity_confident`` (and so with p > 0.9) and the per-class ``class_recognised``
  (:func:`class_fidelity`).
- ``border`` — the mean absolute colour deviation of the 2-pixel border from the interior's
  (median) colour (catches edge artifacts), with ``real_border`` for the real images.

Real-image features are cached (``$MINIGAN_CACHE/metrics``) per dataset, resolution, channels,
image count and feature network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minigan.metrics.distances import (
    KIDResult,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    knn_radii,
    polynomial_mmd2,
    precision_recall,
)
from minigan.metrics.features import NETWORKS, FeatureNetwork, FeatureSet, extract, get_network

__all__ = [
    "KIDResult",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "knn_radii",
    "polynomial_mmd2",
    "precision_recall",
    "NETWORKS",
    "FeatureNetwork",
    "FeatureSet",
    "extract",
    "get_network",
    "border_deviation",
    "class_fidelity",
    "compare",
    "real_features",
    "sample_features",
    "measure",
    "CONFIDENCE",
]

#: A sample is "confident" when the shapes classifier's top softmax probability exceeds this.
CONFIDENCE = 0.9


def border_deviation(images: np.ndarray, width: int = 2) -> float:
    """Mean absolute colour difference between the pixels of the ``width``-pixel border and
    the image's interior colour (the per-channel median of the pixels inside the border:
    the background, for images whose object does not fill them), in [0, 1] units, averaged
    over channels, border pixels and images (NCHW in [-1, 1]).

    Real ``shapes`` images score low (their border is background, apart from shapes that reach
    the edge); a generator that paints a line or corner along the edge scores higher.

    >>> flat = np.zeros((2, 3, 8, 8), np.float32)
    >>> border_deviation(flat)
    0.0
    >>> framed = flat.copy(); framed[:, :, -1, :] = 1.0  # a bright bottom row
    >>> round(border_deviation(framed), 4)  # 8 of 48 border pixels differ by 0.5
    0.0833
    """
    x = (np.asarray(images, np.float64) + 1.0) / 2.0
    w = width
    interior = np.median(x[:, :, w:-w, w:-w], axis=(2, 3), keepdims=True)
    mask = np.ones(x.shape[2:], bool)
    mask[w:-w, w:-w] = False
    return float(np.abs(x - interior)[:, :, mask].mean())


def compare(
    real: FeatureSet,
    fake: FeatureSet,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = 3,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """Every metric comparing ``fake`` to ``real`` features (see the module docstring)."""
    fid = frechet_distance(*feature_statistics(real.features), *feature_statistics(fake.features))
    kid = kernel_inception_distance(
        real.features, fake.features, subsets=kid_subsets, subset_size=kid_subset_size
    )
    precision, recall = precision_recall(real.features, fake.features, k=k)
    out: dict[str, Any] = {
        "fid": fid,
        "kid_mean": kid.mean,
        "kid_std": kid.std,
        "kid_subset_size": kid.subset_size,
        "precision": precision,
        "recall": recall,
    }
    for prefix, s in (("", fake), ("real_", real)):
        if s.logits is not None:
            out.update(
                {prefix + key: value for key, value in _verdicts(s.logits, class_names).items()}
            )
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _verdicts(logits: np.ndarray, class_names: list[str] | None) -> dict[str, Any]:
    p = _softmax(logits)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / len(p)
    names = class_names or [str(i) for i in range(p.shape[1])]
    return {
        "confident": float(np.mean(p.max(axis=1) > CONFIDENCE)),
        "class_fractions": {names[i]: float(c) for i, c in enumerate(counts)},
    }


# --------------------------------------------------------------------------- feature passes
def _batches(images: Any, num: int, batch_size: int) -> Iterator[np.ndarray]:
    for i in range(0, num, batch_size):
        yield np.asarray(images[i : min(i + batch_size, num)][0], np.float32)


def _cache_path(key: Mapping[str, Any]) -> Path:
    from minigan.plugins.datasets import cache_dir

    text = json.dumps(dict(key), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"{key['data']}-{key['network']}-{key['shape']}-n{key['num']}".replace("/", "_")
    return cache_dir() / "metrics" / f"{Path(name).name}-{digest}.npz"


def real_features(
    network: FeatureNetwork,
    data: str,
    image_shape: tuple[int, int, int],
    num: int,
    data_options: Mapping[str, Any] | None = None,
    offset: int = 0,
    batch_size: int = 128,
    cache: bool = True,
    progress: bool = True,
) -> FeatureSet:
    """Features of real images ``offset .. offset + num - 1`` of dataset ``data`` at the
    model's ``image_shape`` (cached on disk unless ``cache=False``)."""
    from minigan.data import open_dataset

    options = _data_options(data_options)
    channels, resolution = image_shape[0], image_shape[1]
    key = {
        "data": data,
        "options": options,
        "shape": f"{channels}x{resolution}x{resolution}",
        "network": network.name,
        "num": num,
        "offset": offset,
        "version": 1,
    }
    path = _cache_path(key)
    if cache and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            logits = f["logits"] if "logits" in f.files else None
            return FeatureSet(f["features"], logits, {"cache": str(path)})
    dataset = open_dataset(
        data, resolution=resolution, channels=channels, limit=offset + num, **options
    )
    if len(dataset) < offset + num:
        raise ValueError(
            f"{data}: has {len(dataset)} images at this size; {offset + num} are needed "
            f"(use a smaller --num)"
        )
    view = _Offset(dataset, offset)
    result = extract(network, _batches(view, num, batch_size), num, progress, "real features")
    result.meta["class_names"] = list(dataset.classes or [])
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        if result.logits is not None:
            np.savez(tmp, features=result.features, logits=result.logits)
        else:
            np.savez(tmp, features=result.features)
        tmp.replace(path)
    return result


class _Offset:
    """``dataset[offset + i]`` slicing."""

    def __init__(self, dataset: Any, offset: int) -> None:
        self.dataset, self.offset = dataset, offset

    def __getitem__(self, s: slice) -> Any:
        return self.dataset[self.offset + s.start : self.offset + s.stop]


def sample_features(
    model: Any,
    network: FeatureNetwork,
    num: int,
    batch_size: int = 128,
    first_seed: int = 0,
    progress: bool = True,
    keep_images: int = 0,
) -> tuple[FeatureSet, float]:
    """Features of ``num`` samples of ``model`` (latent seeds ``first_seed ..``) and the
    samples' :func:`border_deviation`."""
    border_sum = 0.0

    def batches() -> Iterator[np.ndarray]:
        nonlocal border_sum
        for i in range(0, num, batch_size):
            seeds = range(first_seed + i, first_seed + min(i + batch_size, num))
            images = model.generate(seeds, batch_size=batch_size)
            border_sum += border_deviation(images) * len(images)
            yield images

    result = extract(network, batches(), num, progress, "sample features")
    return result, border_sum / max(num, 1)


def class_fidelity(
    model: Any,
    network: FeatureNetwork,
    class_names: list[str] | None,
    num: int,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Does a class-conditional model draw the class it is asked for? For each class ``k``,
    ``ceil(num / K)`` samples ``model.sample(z, label=k)`` (latent seeds 0, 1, ...) are
    classified by ``network``; returns ``class_recognised`` (per class name: the fraction
    classified as ``k``), ``class_recognised_confidently`` (classified as ``k`` with top
    softmax > :data:`CONFIDENCE`) and their means over the classes, ``class_fidelity`` and
    ``class_fidelity_confident``.

    Empty when it does not apply: an unconditional model, or a network that is not a
    classifier of exactly the data's classes (``network.classes == class_names``, as many as
    the model's ``num_classes``).
    """
    k = int(getattr(model, "num_classes", 0) or 0)
    names = list(class_names or [])
    if not k or not network.classes or list(network.classes) != names or len(names) != k:
        return {}
    per_class = -(-num // k)
    z = model.latents(range(per_class))
    parts = [
        network(np.asarray(model.sample(z[i : i + batch_size], label=c).numpy()))[1]
        for c in range(k)
        for i in range(0, per_class, batch_size)
    ]  # a classifier's logits (never None here: for the type checker)
    logits = np.concatenate([q for q in parts if q is not None])
    right, sure = _per_class(_softmax(logits), np.repeat(np.arange(k), per_class))
    return {
        "class_fidelity": float(np.mean(right)),
        "class_fidelity_confident": float(np.mean(sure)),
        "class_recognised": dict(zip(names, right)),
        "class_recognised_confidently": dict(zip(names, sure)),
    }


def _per_class(p: np.ndarray, labels: np.ndarray) -> tuple[list[float], list[float]]:
    """For each class in ``labels`` (in order): the fraction of its rows of softmax ``p``
    classified as it, and as it with top probability > :data:`CONFIDENCE`."""
    right = p.argmax(axis=1) == labels
    sure = right & (p.max(axis=1) > CONFIDENCE)
    classes = np.unique(labels)
    return (
        [float(right[labels == c].mean()) for c in classes],
        [float(sure[labels == c].mean()) for c in classes],
    )


def measure(
    model: Any,
    data: str,
    num: int = 1024,
    network: FeatureNetwork | str = "shapes",
    data_options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    batch_size: int = 128,
    cache: bool = True,
    progress: bool = True,
    baseline: bool = False,
    kid_subsets: int = 100,
) -> dict[str, Any]:
    """Every metric for ``num`` samples of ``model`` against ``num`` images of ``data``.

    With ``baseline``, also the same metrics for ``num`` *held-out* real images (the ``num``
    after the reference ones) as ``baseline_*`` — what a perfect generator would score.
    """
    net = get_network(network, device) if isinstance(network, str) else network
    shape = tuple(model.image_shape)
    real = real_features(net, data, shape, num, data_options, 0, batch_size, cache, progress)
    fake, border = sample_features(model, net, num, batch_size, progress=progress)
    names = real.meta.get("class_names") or _class_names(data, data_options)
    out = {"features": net.name, "label": net.label, "num": num, "data": data}
    out.update(compare(real, fake, kid_subsets=kid_subsets, class_names=names))
    out.update(class_fidelity(model, net, names, num, batch_size))
    out["border"] = border
    out["real_border"] = _real_border(data, shape, num, data_options)
    if baseline:
        held = real_features(net, data, shape, num, data_options, num, batch_size, cache, progress)
        base = compare(real, held, kid_subsets=kid_subsets, class_names=names)
        out.update({f"baseline_{k}": v for k, v in base.items() if not k.startswith("real_")})
        if "class_fidelity" in out and held.logits is not None:
            out.update(_real_class_fidelity(held.logits, data, shape, num, data_options))
    return out


def _real_class_fidelity(
    logits: np.ndarray,
    data: str,
    shape: tuple[int, ...],
    num: int,
    data_options: Mapping[str, Any] | None,
) -> dict[str, float]:
    """:func:`class_fidelity` of the held-out real images (``num`` .. ``2 num``), whose
    classes are their labels: what a generator that draws its classes perfectly scores."""
    from minigan.data import open_dataset

    options = _data_options(data_options)
    ds = open_dataset(data, resolution=shape[1], channels=shape[0], limit=2 * num, **options)
    right, sure = _per_class(_softmax(logits), np.asarray(ds.labels)[num : 2 * num])
    return {
        "baseline_class_fidelity": float(np.mean(right)),
        "baseline_class_fidelity_confident": float(np.mean(sure)),
    }


def _data_options(data_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dataset options that pick which images a real set holds (not how they are sized)."""
    return {k: v for k, v in (data_options or {}).items() if k in ("path", "seed")}


def _class_names(data: str, data_options: Mapping[str, Any] | None) -> list[str] | None:
    from minigan.data import open_dataset

    options = _data_options(data_options)
    try:
        return list(open_dataset(data, limit=1, **options).classes or []) or None
    except (ValueError, OSError):
        return None


def _real_border(
    data: str, shape: tuple[int, ...], num: int, data_options: Mapping[str, Any] | None
) -> float:
    from minigan.data import open_dataset

    options = _data_options(data_options)
    ds = open_dataset(data, resolution=shape[1], channels=shape[0], limit=num, **options)
    return border_deviation(ds[: min(num, len(ds))][0])
