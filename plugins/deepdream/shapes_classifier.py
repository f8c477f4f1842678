"""The default DeepDream network: a small VGG-style classifier that minigan trains itself on
the built-in ``shapes`` dataset, so ``minigan dream photo.png`` works offline.

Its weights ship next to this file (``shapes_classifier.safetensors``, well under 2 MB).
They are reproduced, bit for bit on the same machine and library versions, by::

    python -m minigan.plugins.deepdream.shapes_classifier            # writes the shipped file
    python -m minigan.plugins.deepdream.shapes_classifier -o my.safetensors --epochs 4

Architecture (trained on 32×32 RGB; fully convolutional, so it dreams at any size)::

    features: conv1 3->16 · bn1 · relu1 · pool1 · conv2 16->32 · bn2 · relu2 · pool2 ·
              conv3 32->64 · bn3 · relu3 · pool3 · conv4 64->128 · bn4 · relu4
              (3×3 convs, BatchNorm, 2×2 max pools)
    classifier: global average pool · linear 128 -> 6 classes

>>> model = ShapesClassifier()
>>> sum(p.numel() for p in model.parameters())
98694
>>> import numpy as np, minigan
>>> model(minigan.tensor(np.zeros((2, 3, 64, 64), np.float32))).shape
(2, 6)

Must not import CuPy at import time; it is not imported by the plugin's hook module (only
by the DeepDream code that uses the classifier).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn

__all__ = ["ShapesClassifier", "WEIGHTS_PATH", "layer_names", "train", "evaluate", "main"]

WEIGHTS_PATH = Path(__file__).with_name("shapes_classifier.safetensors")
WIDTHS = (16, 32, 64, 128)
RESOLUTION = 32


class ShapesClassifier(nn.Module):
    """Four 3×3 conv + BatchNorm + ReLU blocks (2×2 max pools between), global average
    pool, linear."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i, width in enumerate(WIDTHS):
            if i:
                layers.append(nn.MaxPool2d(2, 2))
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(f"features.{i}", m) for i, m in enumerate(self.features)]

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        """Logits for images normalised to [-1, 1]."""
        return self.classifier(F.mean(self.features(x), dim=(2, 3)))


def layer_names() -> dict[str, str]:
    """Friendly names: ``conv1``, ``bn1``, ``relu1``, ``pool1``, …, ``conv4``, ``bn4``, ``relu4``.

    >>> list(layer_names())[:5]
    ['conv1', 'bn1', 'relu1', 'pool1', 'conv2']
    >>> layer_names()["relu4"]
    'features.14'
    """
    names, index = {}, 0
    for block in range(1, len(WIDTHS) + 1):
        if block > 1:
            names[f"pool{block - 1}"] = f"features.{index}"
            index += 1
        names[f"conv{block}"] = f"features.{index}"
        names[f"bn{block}"] = f"features.{index + 1}"
        names[f"relu{block}"] = f"features.{index + 2}"
        index += 3
    return dict(sorted(names.items(), key=lambda kv: int(kv[1].split(".")[1])))


def evaluate(model: ShapesClassifier, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on ``images`` (NCHW float32 in [-1, 1])."""
    model.eval()
    correct = 0
    with minigan.no_grad():
        for i in range(0, len(images), 256):
            logits = model(minigan.tensor(images[i : i + 256])).numpy()
            correct += int((logits.argmax(1) == labels[i : i + 256]).sum())
    return correct / len(images)


def train(
    epochs: int = 3,
    train_size: int = 6000,
    test_size: int = 1000,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    log: bool = True,
) -> tuple[ShapesClassifier, float]:
    """Train the classifier on ``shapes`` at 32×32 RGB; returns ``(model, test accuracy)``.

    The test images are the ``test_size`` images after the training ones (never trained on).
    Adam, cross entropy, learning rate decayed linearly to zero, random horizontal flips.
    """
    from minigan.data import open_dataset
    from minigan.optim import Adam

    minigan.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = open_dataset(
        "shapes", resolution=RESOLUTION, channels=3, limit=train_size + test_size, seed=seed
    )
    images, labels = data[:]
    x_train, y_train = images[:train_size], labels[:train_size]
    x_test, y_test = images[train_size:], labels[train_size:]

    assert data.classes is not None  # the shapes dataset names its classes
    model = ShapesClassifier(num_classes=len(data.classes))
    opt = Adam(model.parameters(), lr=lr)
    steps = epochs * ((train_size + batch_size - 1) // batch_size)
    step, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(train_size)
        total = 0.0
        for i in range(0, train_size, batch_size):
            idx = order[i : i + batch_size]
            x = x_train[idx]
            flip = rng.random(len(idx)) < 0.5
            x = np.where(flip[:, None, None, None], x[..., ::-1], x)
            for group in opt.param_groups:
                group["lr"] = lr * (1 - step / steps)
            loss = F.cross_entropy(model(minigan.tensor(np.ascontiguousarray(x))), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            step += 1
        if log:
            accuracy = evaluate(model, x_test, y_test)
            print(
                f"epoch {epoch}/{epochs}: loss {total / train_size:.3f}, "
                f"test accuracy {accuracy:.1%} ({time.perf_counter() - start:.0f} s)"
            )
    accuracy = evaluate(model, x_test, y_test)
    return model.eval(), accuracy


def load_shipped() -> ShapesClassifier:
    """The classifier with its shipped weights."""
    model = ShapesClassifier()
    model.load_state_dict(minigan.load(WEIGHTS_PATH))
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    """Reproduce the shipped weights (``python -m minigan.plugins.deepdream.shapes_classifier``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=str(WEIGHTS_PATH))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model, accuracy = train(args.epochs, args.train_size, args.test_size, seed=args.seed)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    meta = {
        "model": "shapes_classifier",
        "dataset": f"shapes {RESOLUTION}x{RESOLUTION} RGB, seed {args.seed}",
        "train_size": str(args.train_size),
        "epochs": str(args.epochs),
        "test_accuracy": f"{accuracy:.4f}",
        "minigan": minigan.__version__,
        "command": "python -m minigan.plugins.deepdream.shapes_classifier",
    }
    minigan.save(state, args.output, metadata=meta)
    print(f"test accuracy {accuracy:.1%}; wrote {args.output}")


if __name__ == "__main__":
    main()
