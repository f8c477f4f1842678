"""One DeepDream octave step at 512×512 with VGG16 (random weights): minigan against PyTorch.

Run with ``pytest benchmarks/test_deepdream.py --benchmark``. The step is the whole of
:meth:`DeepDream.step` with the default VGG16 objective (mean square of ``relu4_3``): random
roll, forward through ``features.0``…``features.22``, gradient w.r.t. the image (no weight
gradients), roll back, normalise by the mean absolute gradient, update, clip. The PyTorch side
is the same step written by hand, on a hand-written VGG16 trunk holding the same weights;
the two gradients are checked to agree before anything is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from memory import Memory

from minigan.plugins.deepdream.dream import DeepDream
from minigan.plugins.deepdream.networks import IMAGENET_MEAN, IMAGENET_STD, VGG16, VGG16_CFG

SIZE = 512
DEPTH = 23  # features.0 … features.22 (relu4_3)


def torch_vgg16_trunk(depth: int) -> torch.nn.Sequential:
    """torchvision's ``vgg16().features[:depth]``, written out."""
    layers: list[torch.nn.Module] = []
    channels = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(channels, int(v), 3, padding=1), torch.nn.ReLU()]
            channels = int(v)
    return torch.nn.Sequential(*layers[:depth])


def vgg_flop(size: int, depth: int) -> float:
    """Multiply-adds ×2 of the convolutions in the first ``depth`` layers, ×2 again for the
    input-gradient pass (no weight gradients)."""
    flop, channels, side = 0.0, 3, size
    layers = []
    for v in VGG16_CFG:
        layers += ["M"] if v == "M" else [v, "R"]
    for v in layers[:depth]:
        if v == "M":
            side //= 2
        elif v != "R":
            flop += 2.0 * channels * int(v) * 9 * side * side
            channels = int(v)
    return 2 * flop


@dataclass
class Twins:
    """The minigan DeepDream step and its PyTorch twin on the same weights and image."""

    processor: DeepDream
    image: np.ndarray
    torch_gradient: Callable[[torch.Tensor], torch.Tensor]
    ours: Callable[[], object]
    theirs: Callable[[], object]


def twins(size: int) -> Twins:
    """VGG16 with He-normal random weights in minigan and in PyTorch, and the two steps."""
    network = VGG16()
    rng = np.random.default_rng(0)
    for name, param in network.state_dict().items():  # He-normal: activations keep their scale
        if name.endswith("weight"):
            fan_in = int(np.prod(param.shape[1:]))
            param.numpy()[...] = rng.normal(0, np.sqrt(2 / fan_in), param.shape)
        else:
            param.numpy()[...] = 0
    processor = DeepDream(model="vgg16", network=network, tile=512, jitter=32, progress=False)
    assert processor.layers == {"relu4_3": 1.0}

    trunk = torch_vgg16_trunk(DEPTH).eval().requires_grad_(False)
    state = {
        k.removeprefix("features."): torch.from_numpy(v.numpy().copy())
        for k, v in network.state_dict().items()
    }
    trunk.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < DEPTH})
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    lr, jitter = processor.config.lr, processor.config.jitter

    def torch_gradient(image: torch.Tensor) -> torch.Tensor:
        x = image.detach().requires_grad_()
        act = trunk((x - mean) / std)
        objective = (act * act).mean()
        (g,) = torch.autograd.grad(objective, x)
        return g

    def torch_step(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, 2))
        g = torch_gradient(torch.roll(image, (dy, dx), (2, 3)))
        g = torch.roll(g, (-dy, -dx), (2, 3))
        g = g / (g.abs().mean() + 1e-8)
        return (image + lr * g).clamp_(0, 1)

    image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    rng_ours, rng_theirs = np.random.default_rng(1), np.random.default_rng(1)
    timage = torch.from_numpy(image.copy())
    return Twins(
        processor,
        image,
        torch_gradient,
        lambda: processor.step(image, rng_ours),
        lambda: torch_step(timage, rng_theirs),
    )


def steps(size: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """The two steps (what benchmarks/memory.py measures)."""
    t = twins(size)
    return t.ours, t.theirs


@pytest.mark.parametrize("size", [SIZE])
def test_deepdream_octave_step_vgg16(bench, size):
    t = twins(size)
    ours, _ = t.processor.gradient(t.image)
    theirs = t.torch_gradient(torch.from_numpy(t.image)).numpy()
    error = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    # float32 rounding differs between the two, and a pre-activation that lands on the other
    # side of zero flips a ReLU's gradient; through ten ReLU layers that leaves ~3e-3
    assert error < 1e-2, f"gradients differ: relative L2 error {error:.2e}"
    bench.compare(
        f"deepdream step vgg16 relu4_3 {size}x{size}",
        t.ours,
        t.theirs,
        vgg_flop(size, DEPTH),
        "GFLOP/s",
        memory=Memory("test_deepdream", "steps", (size,)),
    )
