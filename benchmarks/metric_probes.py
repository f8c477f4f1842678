"""What the shapes-classifier metric says about *perfect* shapes drawn slightly differently.

Issue 15's sample-quality targets are measured with the shipped shapes classifier (FID on its
pooled features, and the fraction of samples it classifies with a top softmax above 0.9). This
probe asks how demanding that instrument is: it takes the held-out real images
``minigan.metrics.measure`` uses for its baseline (the 1,024 ``shapes`` images after the
reference ones), with their exact classes, positions, sizes, rotations and colours, and draws
or degrades them in ways a person would call the same picture — an edge ramp half or twice as
wide as the renderer's, no antialiasing at all, supersampled antialiasing, a half-pixel shift,
mild noise or blur — and scores each set exactly as ``minigan metrics`` scores a run's samples.

Run it (about 20 s on 2 cores, once the real features are cached)::

    python benchmarks/metric_probes.py [--num 1024] [--markdown]

It prints one line per variant (FID (shapes), confident fraction, classes min-max), and with
``--markdown`` a table for docs/quality/dcgan-recipes.md. A research tool, not a test: it
asserts nothing, and needs nothing beyond minigan.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from minigan.data import to_float
from minigan.metrics import compare, real_features
from minigan.metrics.features import FeatureNetwork, extract, get_network
from minigan.plugins.datasets.sources import (
    SHAPE_CLASSES,
    ShapeParameters,
    blend,
    shape_parameters,
    signed_distances,
)

RESOLUTION = 32


def coverage(p: ShapeParameters, ramp: float = 1.0, supersample: int = 0) -> np.ndarray:
    """Each pixel's shape coverage (n, H, W): the renderer's ramp ``clip(0.5 - d / ramp)``
    over the signed distance ``d`` in pixels (``ramp`` 1 is the dataset's own; 0: a hard
    step, no antialiasing), or with ``supersample`` s > 0 the fraction of s x s sub-pixel
    centres inside the shape (box-filter antialiasing)."""
    if supersample:
        d = signed_distances(p.labels, p.centre, p.radius, p.angle, RESOLUTION, supersample)
        n, s = len(p.labels), supersample
        return (d < 0).reshape(n, RESOLUTION, s, RESOLUTION, s).mean((2, 4)).astype(np.float32)
    d = signed_distances(p.labels, p.centre, p.radius, p.angle, RESOLUTION)
    if ramp == 0:
        return (d < 0).astype(np.float32)
    return np.clip(0.5 - d / ramp, 0, 1)


def as_data(images01: np.ndarray) -> np.ndarray:
    """[0, 1] float images -> what the dataset serves: 8-bit values (rounded as ``shapes``
    rounds them), as float32 in [-1, 1] (:func:`minigan.data.to_float`)."""
    return to_float(np.rint(np.clip(images01, 0, 1) * 255).astype(np.uint8))


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (5 taps, edges replicated) of NCHW images."""
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
    taps /= taps.sum()
    pad = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    rows = sum(t * pad[:, :, i : i + x.shape[2], :] for i, t in enumerate(taps))
    return sum(t * rows[:, :, :, i : i + x.shape[3]] for i, t in enumerate(taps))


def half_pixel_shift(x: np.ndarray) -> np.ndarray:
    """Bilinear resampling half a pixel right and down (each pixel the mean of a 2x2 block)."""
    p = np.pad(x, ((0, 0), (0, 0), (1, 0), (1, 0)), mode="edge")
    return (p[:, :, :-1, :-1] + p[:, :, 1:, :-1] + p[:, :, :-1, 1:] + p[:, :, 1:, 1:]) / 4


def variants(p: ShapeParameters, seed: int) -> dict[str, Callable[[], np.ndarray]]:
    """Name -> images (float32 in [-1, 1]) of the same shapes, drawn or degraded that way."""
    fg, bg = p.foreground, p.background
    drawn = blend(coverage(p), fg, bg)  # = the dataset's images before 8-bit rounding
    rng = np.random.default_rng(seed)
    return {
        "unchanged (the renderer: 1 px ramp)": lambda: as_data(drawn),
        "edge ramp 0.5 px": lambda: as_data(blend(coverage(p, ramp=0.5), fg, bg)),
        "edge ramp 2 px": lambda: as_data(blend(coverage(p, ramp=2.0), fg, bg)),
        "no antialiasing (hard edges)": lambda: as_data(blend(coverage(p, ramp=0), fg, bg)),
        "supersampled 2x2": lambda: as_data(blend(coverage(p, supersample=2), fg, bg)),
        "supersampled 4x4": lambda: as_data(blend(coverage(p, supersample=4), fg, bg)),
        "shifted half a pixel (bilinear)": lambda: as_data(half_pixel_shift(drawn)),
        "Gaussian blur sigma 0.5 px": lambda: as_data(gaussian_blur(drawn, 0.5)),
        "noise sigma 0.01 (of [0, 1])": lambda: as_data(drawn + rng.normal(0, 0.01, drawn.shape)),
        "noise sigma 0.025 (of [0, 1])": lambda: as_data(drawn + rng.normal(0, 0.025, drawn.shape)),
    }


def score(net: FeatureNetwork, real: object, images: np.ndarray, batch: int = 128) -> dict:
    """The metrics ``minigan metrics`` reports, for ``images`` against the real features."""
    parts = (images[i : i + batch] for i in range(0, len(images), batch))
    fake = extract(net, parts, len(images), False, "features")
    return compare(real, fake, kid_subsets=10, class_names=list(SHAPE_CLASSES))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=1024, help="images per set (default 1024)")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = parser.parse_args(argv)
    net = get_network("shapes")
    shape = (3, RESOLUTION, RESOLUTION)
    real = real_features(net, "shapes", shape, args.num, None, 0, 128, True, False)
    every = shape_parameters(2 * args.num, RESOLUTION, 3, seed=0)  # the dataset's seed 0
    held_out = ShapeParameters(*(a[args.num :] for a in every))  # measure()'s baseline set
    rows = []
    for name, make in variants(held_out, seed=1).items():
        r = score(net, real, make())
        low, high = min(r["class_fractions"].values()), max(r["class_fractions"].values())
        rows.append((name, r["fid"], r["confident"], low, high))
        print(
            f"{name:38s} FID {r['fid']:6.2f}  confident {r['confident']:.3f}  "
            f"classes {low:.0%}-{high:.0%}",
            flush=True,
        )
    if args.markdown:
        print("\n| the held-out real shapes, drawn as | FID (shapes) | confident | classes |")
        print("| --- | ---: | ---: | ---: |")
        for name, fid, conf, low, high in rows:
            print(f"| {name} | {fid:.2f} | {conf:.3f} | {low:.0%}–{high:.0%} |")


if __name__ == "__main__":
    main()
