"""A full DCGAN training step (one D and one G update): minigan against the same step written
in PyTorch with the same architecture and the same weights.

Run with ``pytest benchmarks/test_dcgan_step.py --benchmark``. Rows: the 28×28 seed
architecture at batch 256 (the issue's headline figure), the 64×64 PyTorch-examples layout
at batch 64 (both sides draw their own noise; the work per step is the same), and the step
``minigan train dcgan`` runs by default: the class-conditional 32×32 recipe at batch 32
(spectral norm, projection D, DiffAugment, hinge loss, EMA), against its exact PyTorch twin
(``dcgan_twin.py``) replaying one set of minigan's draws every step (so PyTorch's side does
not pay for drawing z, the classes and the DiffAugment parameters, which minigan's step
draws each time: the row slightly favours PyTorch).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn as tnn
from memory import Memory

import minigan
from minigan.plugins.dcgan import DCGAN

bce = tnn.functional.binary_cross_entropy_with_logits


def torch_twin(net: minigan.nn.Module) -> tnn.Module:
    """The PyTorch module with ``net``'s layers and weights (state_dict keys are shared)."""
    layers = []
    for m in net.main:
        kind = type(m).__name__
        if kind == "Linear":
            layers.append(tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
        elif kind == "Conv2d":
            layers.append(
                tnn.Conv2d(
                    m.in_channels,
                    m.out_channels,
                    m.kernel_size,
                    m.stride,
                    m.padding,
                    bias=m.bias is not None,
                )
            )
        elif kind == "ConvTranspose2d":
            layers.append(
                tnn.ConvTranspose2d(
                    m.in_channels,
                    m.out_channels,
                    m.kernel_size,
                    m.stride,
                    m.padding,
                    m.output_padding,
                    bias=m.bias is not None,
                )
            )
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            layers.append(getattr(tnn, kind)(m.num_features))
        elif kind == "LeakyReLU":
            layers.append(tnn.LeakyReLU(m.negative_slope))
        elif kind == "Dropout":
            layers.append(tnn.Dropout(m.p))
        elif kind == "Unflatten":
            layers.append(tnn.Unflatten(m.dim, m.unflattened_size))
        else:
            layers.append(getattr(tnn, kind)())
    twin = tnn.Sequential(*layers)
    twin.load_state_dict(
        {k[len("main.") :]: torch.tensor(np.array(v.numpy())) for k, v in net.state_dict().items()}
    )
    return twin


def torch_train_step(model: DCGAN, real: torch.Tensor) -> Callable[[], None]:
    """The DCGAN training step in PyTorch eager, with ``model``'s layers, weights and Adam
    settings, on ``real``'s device (its noise drawn there too)."""
    G, D = (
        torch_twin(model.generator).to(real.device),
        torch_twin(model.discriminator).to(real.device),
    )
    cfg = model.config
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    batch, spatial = real.shape[0], model.generator.spatial_input

    def step() -> None:
        z = torch.randn(batch, cfg.latent_dim, device=real.device)
        fake = G(z.reshape(batch, -1, 1, 1) if spatial else z)
        real_logits, fake_logits = D(real).reshape(-1), D(fake.detach()).reshape(-1)
        loss_d = bce(real_logits, torch.ones_like(real_logits)) + bce(
            fake_logits, torch.zeros_like(fake_logits)
        )
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        logits = D(fake).reshape(-1)
        loss_g = bce(logits, torch.ones_like(logits))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    return step


def steps(resolution: int, batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """The minigan and the PyTorch training step of the DCGAN at ``resolution``, ``batch``
    (also what benchmarks/memory.py measures)."""
    minigan.manual_seed(0)
    channels = 1 if resolution == 28 else 3
    model = DCGAN(image_shape=(channels, resolution, resolution))
    real_np = np.random.default_rng(0).uniform(-1, 1, (batch, channels, resolution, resolution))
    real = minigan.tensor(real_np.astype(np.float32))
    return lambda: model.train_step(real), torch_train_step(model, torch.tensor(real.numpy()))


def conditional_steps(batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """The minigan and the PyTorch step of the default ``minigan train dcgan`` model (the
    class-conditional 32×32 recipe, built as the Trainer builds it for ``shapes``) on one
    batch of ``batch`` shapes images."""
    from dcgan_twin import build_twin

    from minigan.data import open_dataset

    data = open_dataset("shapes", limit=max(batch, 64))
    model, twin = build_twin(None, data)
    images, labels = data[:batch]  # float32 in [-1, 1]
    real = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int64)
    draws = twin.draw(batch)  # the PyTorch side replays one draw of z, classes, augmentation
    ours = (minigan.tensor(real), minigan.tensor(labels))
    theirs = (torch.from_numpy(real), torch.from_numpy(labels))
    return lambda: model.train_step(*ours), lambda: twin.train_step(*theirs, draws)


def test_dcgan_default_run_step(bench):
    ours, theirs = conditional_steps(32)
    bench.compare(
        "DCGAN default run step (32x32 class-conditional) batch 32",
        ours,
        theirs,
        work=32,
        unit="img/s",
        memory=Memory("test_dcgan_step", "conditional_steps", (32,)),
    )


@pytest.mark.parametrize("resolution, batch", [(28, 256), (64, 64)])
def test_dcgan_train_step(bench, resolution, batch):
    ours, theirs = steps(resolution, batch)
    bench.compare(
        f"DCGAN train step {resolution}x{resolution} batch {batch}",
        ours,
        theirs,
        work=batch,
        unit="img/s",
        memory=Memory("test_dcgan_step", "steps", (resolution, batch)),
    )
