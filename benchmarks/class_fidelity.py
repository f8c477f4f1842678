"""Does a class-conditional run draw the class it is asked for? Per class, by the shapes
classifier.

For each class k of a conditional run (``minigan train dcgan`` on labelled ``shapes``), it
samples ``--num`` images with ``model.sample(z, label=k)`` (latent seeds 0 ..), classifies
them with the shipped shapes classifier (the network of ``minigan metrics``' default
features) and prints how many are recognised as k, how many confidently (top softmax above
0.9), and what the rest are taken for::

    python benchmarks/class_fidelity.py RUN [--num 200] [--markdown]

The real images of each class are recognised 96-100% of the time (65-98% confidently), so
the numbers say how well the generator follows its class (docs/quality/dcgan-recipes.md,
"Fourth step" and "Fifth step"). A research tool: it asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np

from minigan.metrics.features import get_network
from minigan.run import load_model


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def class_fidelity(run: str, num: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(names, recognised, confident, verdicts)``: per asked class k, the fraction of its
    ``num`` samples the classifier names k, the fraction named k with p > 0.9, and the counts
    of every verdict (K x K)."""
    model, ckpt = load_model(run)
    k = model.num_classes
    if not k:
        raise SystemExit(f"{run}: not a class-conditional run (num_classes is 0)")
    net = get_network("shapes")
    names = list(ckpt.get("classes") or [str(i) for i in range(k)])
    recognised, confident, verdicts = np.zeros(k), np.zeros(k), np.zeros((k, k), int)
    z = model.latents(range(num))
    for c in range(k):
        images = model.sample(z, label=c).numpy()
        _, logits = net(np.asarray(images, np.float32))
        assert logits is not None  # the shapes classifier gives logits
        p = softmax(logits)
        guess = p.argmax(1)
        recognised[c] = (guess == c).mean()
        confident[c] = ((guess == c) & (p.max(1) > 0.9)).mean()
        verdicts[c] = np.bincount(guess, minlength=k)
    return names, recognised, confident, verdicts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory or checkpoint of a conditional model")
    parser.add_argument("--num", type=int, default=200, help="samples per class (default 200)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    names, recognised, confident, verdicts = class_fidelity(args.run, args.num)
    if args.markdown:
        print("| asked for | recognised | confidently | verdicts: " + " / ".join(names) + " |")
        print("| --- | ---: | ---: | --- |")
    for i, name in enumerate(names):
        counts = " / ".join(str(v) for v in verdicts[i])
        if args.markdown:
            print(f"| {name} | {recognised[i]:.0%} | {confident[i]:.0%} | {counts} |")
        else:
            print(f"{name:10s} recognised {recognised[i]:5.0%}  confidently {confident[i]:5.0%}"
                  f"  verdicts {counts}")  # fmt: skip
    print(f"mean: recognised {recognised.mean():.0%}, confidently {confident.mean():.0%}")


if __name__ == "__main__":
    main()
