"""The DCGAN plugin: architectures against the spec and against equivalent PyTorch modules,
the model contract, and a short real training run on ``shapes`` that must show learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn as tnn

import minigan
from minigan.data import open_dataset
from minigan.plugins.dcgan import DCGAN, RECIPES
from minigan.registry import get_registry
from minigan.train import check_model, read_metrics


class Wrap(tnn.Module):
    """``main`` as in PyTorch's DCGAN example, so the state_dict keys are ``main.N.*``."""

    def __init__(self, *layers: tnn.Module) -> None:
        super().__init__()
        self.main = tnn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


def torch_seed_generator(nz=100, c=1):
    """The 28x28 seed generator, written in PyTorch from the spec."""
    return Wrap(
        tnn.Linear(nz, 7 * 7 * 256, bias=False),
        tnn.BatchNorm1d(7 * 7 * 256),
        tnn.LeakyReLU(0.3),
        tnn.Unflatten(1, (256, 7, 7)),
        tnn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False),
        tnn.BatchNorm2d(128),
        tnn.LeakyReLU(0.3),
        tnn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False),
        tnn.BatchNorm2d(64),
        tnn.LeakyReLU(0.3),
        tnn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=1, bias=False),
        tnn.Tanh(),
    )


def torch_seed_discriminator(c=1):
    return Wrap(
        tnn.Conv2d(c, 64, 5, 2, 2),
        tnn.LeakyReLU(0.3),
        tnn.Dropout(0.3),
        tnn.Conv2d(64, 128, 5, 2, 2),
        tnn.LeakyReLU(0.3),
        tnn.Dropout(0.3),
        tnn.Flatten(),
        tnn.Linear(128 * 7 * 7, 1),
    )


def torch_example_generator(nz=100, ngf=64, nc=3):
    """``Generator`` of github.com/pytorch/examples/blob/main/dcgan/main.py (64x64)."""
    return Wrap(
        tnn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        tnn.BatchNorm2d(ngf * 8),
        tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ngf * 4),
        tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ngf * 2),
        tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ngf),
        tnn.ReLU(True),
        tnn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        tnn.Tanh(),
    )


def torch_example_discriminator(ndf=64, nc=3):
    """``Discriminator`` of the PyTorch example, without the final Sigmoid (logits)."""
    return Wrap(
        tnn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
        tnn.LeakyReLU(0.2, inplace=True),
        tnn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ndf * 2),
        tnn.LeakyReLU(0.2, inplace=True),
        tnn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ndf * 4),
        tnn.LeakyReLU(0.2, inplace=True),
        tnn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(ndf * 8),
        tnn.LeakyReLU(0.2, inplace=True),
        tnn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
    )


def shapes_of(state) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- architecture
def test_dcgan_is_registered_through_the_entry_point():
    registry = get_registry()
    assert registry.get("model", "dcgan") is DCGAN
    assert registry.entry("model", "dcgan").plugin == "dcgan"


def test_seed_architecture_28x28_matches_the_spec_and_torch():
    model = DCGAN(None, image_shape=(1, 28, 28))
    assert (model.config.g_width, model.config.d_width) == (64, 64)
    assert (model.config.lr, model.config.beta1, model.config.beta2) == (1e-4, 0.9, 0.999)
    G, D = model.generator, model.discriminator
    # parameter counts worked out by hand from the spec
    g_params = 100 * 12544 + 2 * 12544 + 256 * 128 * 25 + 2 * 128 + 128 * 64 * 25 + 2 * 64 + 64 * 25
    d_params = (25 * 64 + 64) + (64 * 128 * 25 + 128) + (128 * 7 * 7 + 1)
    assert (count(G), count(D)) == (g_params, d_params) == (2_305_472, 212_865)

    tg, td = torch_seed_generator(), torch_seed_discriminator()
    assert shapes_of(G.state_dict()) == shapes_of(tg.state_dict())
    assert shapes_of(D.state_dict()) == shapes_of(td.state_dict())
    assert list(G.state_dict()) == list(tg.state_dict())

    # same weights -> same outputs (eval mode: BN running statistics, no dropout)
    for ours, theirs in ((G, tg), (D, td)):
        theirs.eval()
        state = theirs.state_dict()
        for key in state:
            if state[key].dtype.is_floating_point and key.endswith("running_var"):
                state[key].uniform_(0.5, 2.0)  # non-trivial statistics
            elif key.endswith("running_mean"):
                state[key].normal_(0, 0.1)
        ours.load_state_dict({k: v.numpy() for k, v in state.items()})
        ours.eval()
    z = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    with minigan.no_grad(), torch.no_grad():
        image = G(minigan.tensor(z)).numpy()
        assert image.shape == (3, 1, 28, 28)
        np.testing.assert_allclose(image, tg(torch.from_numpy(z)).numpy(), atol=2e-5)
        logits = D(minigan.tensor(image)).numpy()
        assert logits.shape == (3,)
        want = td(torch.from_numpy(image)).numpy().reshape(-1)
        np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-5)


def test_64x64_is_the_pytorch_example():
    model = DCGAN({"g_width": 64, "d_width": 64}, image_shape=(3, 64, 64))
    tg, td = torch_example_generator(), torch_example_discriminator()
    assert shapes_of(model.generator.state_dict()) == shapes_of(tg.state_dict())
    assert shapes_of(model.discriminator.state_dict()) == shapes_of(td.state_dict())
    # the numbers the PyTorch example prints for its networks
    assert count(model.generator) == count(tg) == 3_576_704
    assert count(model.discriminator) == count(td) == 2_765_568
    assert (model.config.lr, model.config.beta1) == (2e-4, 0.5)


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 28, 28)])
def test_channels_and_sizes_follow_the_data(shape):
    model = DCGAN({"g_width": 4, "d_width": 4, "latent_dim": 10}, image_shape=shape)
    z = model.latents(range(2))
    assert tuple(z.shape) == (2, 10)
    assert model.sample(z).shape == (2, *shape)
    with minigan.no_grad():
        assert model.discriminator(model.generator(z)).shape == (2,)


def test_32x32_layout():
    model = DCGAN({"g_width": 8, "d_width": 4}, image_shape=(3, 32, 32))
    g = [tuple(v.shape) for k, v in model.generator.state_dict().items() if k.endswith("weight")]
    d = [
        tuple(v.shape) for k, v in model.discriminator.state_dict().items() if k.endswith("weight")
    ]
    assert g == [(100, 32, 4, 4), (32,), (32, 16, 4, 4), (16,), (16, 8, 4, 4), (8,), (8, 3, 4, 4)]
    assert d == [(4, 3, 4, 4), (8, 4, 4, 4), (8,), (16, 8, 4, 4), (16,), (1, 16, 4, 4)]


def test_dcgan_initialisation():
    model = DCGAN({"g_width": 32, "d_width": 32}, image_shape=(3, 64, 64))
    conv = model.generator.main[3].weight.numpy()
    assert abs(conv.mean()) < 2e-3 and conv.std() == pytest.approx(0.02, rel=0.05)
    bn = model.generator.main[1].weight.numpy()
    assert bn.mean() == pytest.approx(1.0, abs=0.01) and bn.std() == pytest.approx(0.02, rel=0.3)
    assert np.all(model.generator.main[1].bias.numpy() == 0)


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(ValueError, match="28x28, 32x32 or 64x64.*--resolution"):
        DCGAN(None, image_shape=(3, 48, 48))


def test_auto_options_resolve_per_resolution_and_explicit_ones_win():
    for res in (28, 32, 64):
        cfg = DCGAN(
            {"g_width": 4, "d_width": 4} if res != 28 else None, image_shape=(1, res, res)
        ).config
        assert (cfg.lr, cfg.beta1) == (RECIPES[res]["lr"], RECIPES[res]["beta1"])
    cfg = DCGAN({"lr": 5e-4, "beta1": 0.3, "g_width": 4, "d_width": 8}, (1, 32, 32)).config
    assert (cfg.lr, cfg.beta1, cfg.g_width, cfg.d_width) == (5e-4, 0.3, 4, 8)
    assert DCGAN({"g_width": 4, "d_width": 4, "beta2": 0.99}, (1, 32, 32)).opt_g.param_groups[0][
        "betas"
    ] == (0.5, 0.99)


# --------------------------------------------------------------------------- the contract
def test_check_model_seed_architecture():
    check_model(DCGAN, image_shape=(1, 28, 28))


@pytest.mark.parametrize(
    "shape, config",
    [
        ((1, 32, 32), {"g_width": 8, "d_width": 8}),
        ((3, 32, 32), {"g_width": 4, "d_width": 4, "ema": 0.99, "label_smoothing": 0.1}),
        ((3, 64, 64), {"g_width": 4, "d_width": 4}),
    ],
)
def test_check_model_pytorch_layout(shape, config):
    check_model(DCGAN, image_shape=shape, config=config)


def test_ema_generator_is_used_for_sampling():
    model = DCGAN({"g_width": 4, "d_width": 4, "ema": 0.5}, image_shape=(1, 32, 32))
    assert set(model.networks()) == {"generator", "discriminator", "generator_ema"}
    real = minigan.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 1, 32, 32)).astype("f4"))
    for _ in range(2):
        model.train_step(real)
    g = model.generator.main[0].weight.numpy()
    ema = model.generator_ema.main[0].weight.numpy()
    assert not np.array_equal(g, ema)
    z = model.latents([0])
    model.generator.eval()
    with minigan.no_grad():
        plain = model.generator(z).numpy()
    model.generator.train()
    assert not np.allclose(model.sample(z).numpy(), plain)
    assert model.generator.training  # sample() restores the mode


def test_label_smoothing_changes_the_discriminator_loss():
    real = minigan.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 1, 32, 32)).astype("f4"))
    results = []
    for smoothing in (0.0, 0.2):
        model = DCGAN({"g_width": 4, "d_width": 4, "label_smoothing": smoothing}, (1, 32, 32))
        minigan.manual_seed(0)
        results.append(float(model.train_step(real)["loss_d"]))
    assert results[0] != results[1]


# --------------------------------------------------------------------------- learning
def image_statistics(x: np.ndarray) -> np.ndarray:
    """Colour and edge statistics of a batch of NCHW images in [-1, 1]: contrast (pixel std
    within an image), colourfulness (std across the channels) and roughness: the mean
    neighbour-to-neighbour difference relative to the image's std, measured on 2x2-averaged
    images (high for noise, low for flat shapes with clean edges; the averaging ignores the
    pixel-scale checkerboard of young transposed convolutions)."""
    contrast = x.std(axis=(1, 2, 3)).mean()
    colour = x.std(axis=1).mean()
    n, c, h, w = x.shape
    p = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    dx = np.abs(np.diff(p, axis=3)).mean(axis=(1, 2, 3))
    dy = np.abs(np.diff(p, axis=2)).mean(axis=(1, 2, 3))
    roughness = ((dx + dy) / (2 * p.std(axis=(1, 2, 3)) + 1e-6)).mean()
    return np.array([contrast, colour, roughness])


@pytest.mark.slow
def test_dcgan_learns_shapes_in_a_few_dozen_steps():
    """40 steps of a narrow DCGAN on shapes (about half a minute): the discriminator must
    separate real from generated images far beyond chance, and the samples' contrast, colour
    and edge statistics must each close at least 15% of their gap to the data's."""
    data = open_dataset("shapes", limit=40 * 32)
    real_stats = image_statistics(data[np.arange(256)][0])
    minigan.manual_seed(0)
    model = DCGAN({"g_width": 16, "d_width": 16, "lr": 1e-3, "ema": 0.0}, data.shape)
    seeds = range(128)
    before = image_statistics(model.generate(seeds))
    steps = [model.train_step(real) for real, _ in minigan.data.DataLoader(data, 32, seed=0)]
    history = read_metrics(steps)
    after = image_statistics(model.generate(seeds))

    assert len(history) == 40 and all(np.isfinite(m["loss_g"]) for m in history)
    first = history[0]["d_real"] - history[0]["d_fake"]
    separation = np.mean([m["d_real"] - m["d_fake"] for m in history[-10:]])
    assert abs(first) < 0.1  # the untrained discriminator cannot tell
    assert separation > 0.3, f"D(x) - D(G(z)) = {separation:.3f} over the last 10 steps"
    gap_ratio = np.abs(after - real_stats) / np.abs(before - real_stats)
    assert np.all(gap_ratio < 0.85), (
        f"contrast, colour, roughness: data {real_stats}, untrained {before}, trained {after}"
    )
