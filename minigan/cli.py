"""The ``minigan`` command line.

Built-in commands live here; plugins add theirs through the ``register_commands`` hook (loaded
the first time the command list is needed). ``minigan demo`` trains a small convolutional
classifier on generated images — a quick check that an install works.
"""

from __future__ import annotations

import dataclasses
import json
import time

import click
import numpy as np

import minigan
from minigan.registry import get_registry


class PluginGroup(click.Group):
    """A click group that lets plugins add their commands before it lists or finds one."""

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            get_registry().add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugins()
        return super().get_command(ctx, name)


@click.group(
    cls=PluginGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(minigan.__version__, prog_name="minigan")
def main() -> None:
    """minigan: a from-scratch deep-learning toolkit for image generation."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """List plugins: version, hooks, what each provides, and what failed to load."""
    registry = get_registry()
    main._load_plugins()  # so that commands count as provided
    infos = registry.info()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(i) for i in infos], indent=2))
        return
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" ({info.distribution}{version})" if info.distribution else ""
        status = "disabled" if info.disabled else "FAILED" if info.error else "ok"
        click.echo(f"{info.name}{dist}: {status}")
        if info.hooks:
            click.echo(f"  hooks: {', '.join(info.hooks)}")
        for kind, names in info.provides.items():
            click.echo(f"  {kind}s: {', '.join(names)}")
        if info.error:
            click.echo(f"  error: {info.error}")


def _describe(kind: str) -> None:
    registry = get_registry()
    names = registry.names(kind)
    if not names:
        click.echo(f"no {kind}s registered")
    for name in names:
        entry = registry.entry(kind, name)
        try:
            doc = (entry.load().__doc__ or "").strip().splitlines()
        except Exception as e:  # a broken lazy target: say so, keep listing
            doc = [f"(cannot be loaded: {e})"]
        summary = doc[0] if doc else ""
        click.echo(f"{name:<16} {summary}  [plugin: {entry.plugin}]")


@main.command()
def models() -> None:
    """List the trainable models (generators) that plugins registered."""
    _describe("model")


@main.command()
def datasets() -> None:
    """List the datasets that plugins registered (``--data NAME``; a path works too)."""
    _describe("dataset")


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
