"""The ``minigan`` command line.

``minigan demo`` trains a small convolutional classifier on generated images, end to end on
minigan's own tensors, layers, kernels and optimizer — a quick check that an install works.
"""

from __future__ import annotations

import time

import click
import numpy as np

import minigan


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(minigan.__version__, prog_name="minigan")
def main() -> None:
    """minigan: a from-scratch deep-learning toolkit for image generation."""


def bars_dataset(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy ``size``×``size`` images of four classes: a horizontal bar, a vertical bar,
    a diagonal, or a filled square — at random positions. Returns float32 NCHW images in
    [-1, 1] and int64 labels.

    >>> x, y = bars_dataset(8, 12, np.random.default_rng(0))
    >>> x.shape, x.dtype, y.shape
    ((8, 1, 12, 12), dtype('float32'), (8,))
    """
    images = np.zeros((n, size, size), np.float32)
    labels = rng.integers(0, 4, n)
    for img, label in zip(images, labels):
        a, b = rng.integers(1, size - 4, 2)
        if label == 0:
            img[a : a + 2, 1:-1] = 1
        elif label == 1:
            img[1:-1, b : b + 2] = 1
        elif label == 2:
            idx = np.arange(size)
            img[idx, (idx + a) % size] = 1
        else:
            img[a : a + 4, b : b + 4] = 1
    images += rng.normal(0, 0.3, images.shape).astype(np.float32)
    return (images * 2 - 1)[:, None], labels.astype(np.int64)


@main.command()
@click.option("--epochs", default=3, help="passes over the training set")
@click.option("--batch-size", default=64)
@click.option("--lr", default=2e-3, help="Adam learning rate")
@click.option("--seed", default=0)
def demo(epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """Train a small CNN on generated bar/square images and report its test accuracy."""
    from tqdm import tqdm

    from minigan import functional as F
    from minigan import nn, optim

    minigan.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = bars_dataset(2048, 16, rng)
    x_test, y_test = bars_dataset(512, 16, rng)

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 4),
    )
    opt = optim.Adam(model.parameters(), lr=lr)
    click.echo(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(x_train))
        bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch}/{epochs}", unit="batch")
        for i in bar:
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(minigan.Tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with minigan.no_grad():
        logits = model(minigan.Tensor(x_test)).numpy()
    accuracy = float((logits.argmax(1) == y_test).mean())
    click.echo(
        f"test accuracy {accuracy:.1%} on {len(y_test)} held-out images "
        f"(chance 25%) after {time.perf_counter() - start:.1f} s"
    )
