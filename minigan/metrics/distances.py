"""Distances between two sets of feature vectors: Frechet distance, KID, precision/recall.

All three take features as ``(N, D)`` arrays (any float dtype; computed in float64) and are
independent of the network that produced them — so the same function gives "FID" on
Inception-v3 features and "FID (shapes-classifier features)" on the shapes classifier's.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 1.0
>>> mu_a, sigma_a = feature_statistics(a)
>>> round(frechet_distance(mu_a, sigma_a, mu_a, sigma_a), 6)
0.0
>>> 3.5 < frechet_distance(*feature_statistics(a), *feature_statistics(b)) < 4.5
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "KIDResult",
    "kernel_inception_distance",
    "polynomial_mmd2",
    "precision_recall",
    "knn_radii",
]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov``: unbiased, rows are samples) of ``features`` in
    float64 — what FID compares."""
    x = _features(features, "features", min_rows=2)
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)::

        d² = |mu1 - mu2|² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)

    computed as pytorch-fid / the TensorFlow FID code do, in float64:

    - ``(sigma1 sigma2)^½`` is :func:`scipy.linalg.sqrtm` of the product. The product of two
      covariance matrices is not symmetric, but its eigenvalues are real and non-negative, so
      its principal square root is real in exact arithmetic; rounding leaves small imaginary
      parts, which are dropped — unless an imaginary part on the diagonal exceeds 1e-3, which
      means the matrices are not valid covariances (an error).
    - A singular product (e.g. fewer samples than feature dimensions, or a constant feature)
      can make ``sqrtm`` return non-finite values; then, as pytorch-fid does, ``eps`` times
      the identity is added to both covariances and the root is taken again (a warning says
      so).
    """
    import scipy.linalg

    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: means differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance: covariances {sigma1.shape} and {sigma2.shape} do not match "
            f"means of size {mu1.size}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"frechet_distance: singular product of covariances; adding {eps:g} * I to both",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest > 1e-3:
            raise ValueError(
                f"frechet_distance: imaginary component {largest:.3g} in sqrtm(sigma1 sigma2): "
                "are both matrices covariances (symmetric, positive semi-definite)?"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


# --------------------------------------------------------------------------- KID
def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased estimate of MMD² between samples ``x`` (m, D) and ``y`` (n, D) under the
    polynomial kernel ``k(a, b) = (a·b / D + coef0) ** degree`` (KID's kernel)::

        MMD² = sum_{i≠j} k(x_i, x_j) / (m(m-1)) + sum_{i≠j} k(y_i, y_j) / (n(n-1))
               - 2 sum_{i,j} k(x_i, y_j) / (m n)
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]
    k_xx = (x @ x.T / d + coef0) ** degree
    k_yy = (y @ y.T / d + coef0) ** degree
    k_xy = (x @ y.T / d + coef0) ** degree
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


@dataclass(frozen=True)
class KIDResult:
    """KID over ``subsets`` random subsets of ``subset_size`` from each set: the mean of the
    per-subset MMD² estimates and their standard deviation (as torch-fidelity reports)."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = 0,
) -> KIDResult:
    """Kernel inception distance (Binkowski et al., 2018) as torch-fidelity and clean-fid
    compute it: for each of ``subsets`` rounds, draw ``subset_size`` rows of each set without
    replacement (``subset_size`` is capped at the smaller set's size) and take the unbiased
    polynomial-kernel MMD² (:func:`polynomial_mmd2`); report the mean and standard deviation
    over the rounds. Draws come from ``numpy.random.RandomState(seed)``."""
    real = _features(real, "real features", min_rows=2)
    fake = _features(fake, "fake features", min_rows=2)
    _same_width(real, fake)
    size = min(subset_size, len(real), len(fake))
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        values[i] = polynomial_mmd2(x, y, degree, coef0)
    return KIDResult(float(values.mean()), float(values.std()), subsets, size)


# --------------------------------------------------------------------------- precision/recall
def _pairwise_distances(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64, a chunk of rows at a time."""
    b2 = (b * b).sum(axis=1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        part = a[i : i + chunk]
        d2 = (part * part).sum(axis=1)[:, None] - 2.0 * part @ b.T + b2[None, :]
        out[i : i + chunk] = np.sqrt(np.maximum(d2, 0.0))
    return out


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance from each row to its ``k``-th nearest other row (the radius of its ball in
    the k-NN manifold estimate)."""
    x = _features(features, "features", min_rows=k + 1)
    d = _pairwise_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019).

    Each set's manifold is the union of balls around its samples, each ball's radius the
    distance to the sample's ``k``-th nearest neighbour in its own set. Precision is the
    fraction of fake samples inside the real manifold (are the samples realistic?), recall the
    fraction of real samples inside the fake manifold (is the data's variety covered?).
    """
    real = _features(real, "real features", min_rows=k + 1)
    fake = _features(fake, "fake features", min_rows=k + 1)
    _same_width(real, fake)
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = _pairwise_distances(fake, real)  # (n_fake, n_real)
    precision = float(np.mean((d <= real_r[None, :]).any(axis=1)))
    recall = float(np.mean((d <= fake_r[:, None]).any(axis=0)))
    return precision, recall


# --------------------------------------------------------------------------- helpers
def _features(x: np.ndarray, name: str, min_rows: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (samples, dims), got shape {a.shape}")
    if len(a) < min_rows:
        raise ValueError(f"{name}: need at least {min_rows} samples, got {len(a)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def _same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
