"""A/B of Winograd F(2x2, 3x3) in one process: the conv2d dispatch with it on and off.

::

    python benchmarks/winograd_ab.py [--threads 2] [--reps 5] [--step]

For VGG16's 3x3 layer shapes (batch 1), times ``conv2d`` and the stride-1 ``conv2d_grad_input``
with Winograd allowed (``WINOGRAD_MIN_CHANNELS`` as shipped) and disallowed, alternating, and
prints the best of ``--reps`` of each and their ratio; ``--step`` adds the whole DeepDream
VGG16 512x512 step. Ratios in one process are the least load-sensitive figure on a busy
machine; still say how loaded it was (benchmarks/NOTES.md item 27).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import minigan
from minigan.kernels.cpu import conv

SHAPES = [(64, 64, 512), (64, 128, 256), (128, 128, 256), (128, 256, 128), (256, 256, 128)]


def ab(label: str, fn: Callable[[], object], reps: int) -> float:
    """Best-of-``reps`` time with Winograd on over off (printed with both times)."""
    shipped = conv.WINOGRAD_MIN_CHANNELS
    best = {"on": float("inf"), "off": float("inf")}
    try:
        for _ in range(reps):
            for mode in ("on", "off"):
                conv.WINOGRAD_MIN_CHANNELS = shipped if mode == "on" else 2**62
                start = time.perf_counter()
                fn()
                best[mode] = min(best[mode], time.perf_counter() - start)
    finally:
        conv.WINOGRAD_MIN_CHANNELS = shipped
    ratio = best["on"] / best["off"]
    off, on = best["off"] * 1e3, best["on"] * 1e3
    print(f"{label}: off {off:.0f} ms, on {on:.0f} ms, on/off {ratio:.2f}")
    return ratio


def layer(c: int, o: int, s: int, reps: int, rng: np.random.Generator) -> None:
    """conv2d and its stride-1 grad-input of a C -> O 3x3 layer at s x s, batch 1."""
    x = rng.standard_normal((1, c, s, s), dtype=np.float32)
    w = rng.standard_normal((o, c, 3, 3), dtype=np.float32)
    gy = rng.standard_normal((1, o, s, s), dtype=np.float32)
    one = (1, 1)
    ab(f"conv2d {c}->{o} {s}x{s}", lambda: conv.conv2d(x, w, one, one, one), reps)
    grad_input = lambda: conv.conv2d_grad_input(gy, w, x.shape, one, one, one)  # noqa: E731
    ab(f"grad-input {c}->{o} {s}x{s}", grad_input, reps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--step", action="store_true", help="also the DeepDream step")
    options = parser.parse_args(argv)
    minigan.set_num_threads(options.threads)
    rng = np.random.default_rng(0)
    for c, o, s in SHAPES:
        layer(c, o, s, options.reps, rng)
    if options.step:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from test_deepdream import steps

        ours, _ = steps(512)
        ours()  # warm-up
        ab("DeepDream VGG16 relu4_3 512x512 step", ours, max(1, options.reps // 2))


if __name__ == "__main__":
    main()
