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
        ((3, 32, 32), {"g_width": 4, "d_width": 4, "layered": True, "num_classes": 3}),
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


# --------------------------------------------------------------------------- conditional
def torch_projection_discriminator(model):
    """The conditional 32x32 D in PyTorch from the spec (spectral norm on every conv, no
    BatchNorm, a projection head), with ``model``'s weights, power-iteration vectors
    included."""
    w, c = model.config.d_width, model.image_shape[0]
    sn = tnn.utils.spectral_norm
    body = Wrap(
        sn(tnn.Conv2d(c, w, 4, 2, 1, bias=False)),
        tnn.LeakyReLU(0.2),
        sn(tnn.Conv2d(w, 2 * w, 4, 2, 1)),
        tnn.LeakyReLU(0.2),
        sn(tnn.Conv2d(2 * w, 4 * w, 4, 2, 1)),
        tnn.LeakyReLU(0.2),
        sn(tnn.Conv2d(4 * w, 1, 4, 1, 0, bias=False)),
    )
    body.embed = tnn.Embedding(model.num_classes, 4 * w)
    state = {
        k: torch.tensor(np.array(v.numpy())) for k, v in model.discriminator.state_dict().items()
    }
    body.load_state_dict(state)

    def forward(x, y):
        h = body.main[:-1](x)
        return body.main[-1](h).reshape(-1) + (body.embed(y) * h.sum((2, 3))).sum(1)

    return body, forward


def test_conditional_recipe_resolves_and_explicit_options_win():
    cfg = DCGAN({"num_classes": 6}, (3, 32, 32)).config
    assert (cfg.loss, cfg.spectral_norm, cfg.diffaugment, cfg.class_loss) == (
        "hinge", True, "color,translation", 1.0
    )  # fmt: skip
    assert (cfg.lr, cfg.lr_d, cfg.beta1, cfg.beta2, cfg.ema) == (5e-4, 1e-3, 0.0, 0.99, 0.995)
    cfg = DCGAN({"num_classes": 6, "lr": 1e-4, "loss": "bce"}, (3, 32, 32)).config
    assert (cfg.lr, cfg.lr_d, cfg.loss) == (1e-4, 2e-4, "bce")  # D's rate follows G's
    assert DCGAN({"num_classes": 6, "lr_d": 3e-4}, (3, 32, 32)).config.lr_d == 3e-4
    plain = DCGAN(None, (3, 32, 32)).config  # unconditional: the recipe of RECIPES[32]
    assert (plain.num_classes, plain.loss, plain.spectral_norm, plain.diffaugment) == (
        0, "bce", False, ""
    )  # fmt: skip
    assert plain.class_loss == 0
    numpy_weight = DCGAN({"num_classes": 6, "class_loss": np.float32(0.5)}, (3, 32, 32)).config
    assert numpy_weight.class_loss == 0.5 and type(numpy_weight.class_loss) is float
    assert (plain.lr_d, plain.beta2) == (plain.lr, 0.999)
    conditional_64 = DCGAN({"num_classes": 3, "g_width": 4, "d_width": 4}, (1, 64, 64)).config
    assert (conditional_64.lr, conditional_64.loss) == (RECIPES[64]["lr"], "bce")
    with pytest.raises(ValueError, match="flip"):
        DCGAN({"diffaugment": "color,flip"}, (3, 32, 32))
    for bad, words in [
        ({"loss": "Hinge"}, "loss must be 'bce' or 'hinge'"),
        ({"spectral_norm": "no"}, "spectral_norm must be True or False"),
        ({"num_classes": 2.5}, "num_classes must be an int >= 0"),
        ({"num_classes": 6, "class_loss": -1.0}, "class_loss must be a number >= 0"),
        ({"num_classes": 6, "class_loss": float("nan")}, "class_loss must be a number >= 0"),
        ({"num_classes": 6, "class_loss": True}, "class_loss must be a number >= 0"),
        ({"class_loss": 1.0}, "class_loss .* needs a class-conditional model"),
    ]:
        with pytest.raises(ValueError, match=words):
            DCGAN(bad, (3, 32, 32))
    with pytest.raises(ValueError, match="label_smoothing applies to the bce loss, not to 'hinge'"):
        DCGAN({"num_classes": 6, "label_smoothing": 0.1}, (3, 32, 32))


def test_projection_discriminator_with_spectral_norm_matches_torch():
    minigan.manual_seed(3)
    model = DCGAN({"num_classes": 5, "g_width": 4, "d_width": 4}, (3, 32, 32))
    body, forward = torch_projection_discriminator(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    xm = minigan.tensor(x, requires_grad=True)
    ours = model.discriminator(xm, minigan.tensor(y))
    xt = torch.tensor(x, requires_grad=True)
    theirs = forward(xt, torch.tensor(y))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    embed = model.discriminator.embed.weight.grad.numpy()
    np.testing.assert_allclose(embed, body.embed.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    # the power iteration advanced the same way (train mode)
    u = model.discriminator.state_dict()["main.4.weight_u"].numpy()
    np.testing.assert_allclose(u, body.main[4].weight_u.numpy(), rtol=1e-4, atol=1e-6)


def test_class_scores_and_class_loss_match_torch():
    """D's class scores are <embed[k], sum over positions of h(x)> for every class k, the
    logit's projection term is the score of the image's own class, and the class loss is
    torch's cross entropy of the scores — values and gradients (D's weights, embedding)."""
    minigan.manual_seed(4)
    model = DCGAN({"num_classes": 5, "g_width": 4, "d_width": 4}, (3, 32, 32))
    body, forward = torch_projection_discriminator(model)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (7, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 5, 7)
    logits, scores = model.discriminator.judge(minigan.tensor(x), minigan.tensor(y))
    xt = torch.tensor(x)
    h = xt
    for layer in list(body.main)[:-1]:
        h = layer(h)
    expected = h.sum((2, 3)) @ body.embed.weight.t()  # (N, K)
    np.testing.assert_allclose(scores.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    head = body.main[-1](h).reshape(-1)
    own = expected[torch.arange(7), torch.tensor(y)]
    np.testing.assert_allclose(logits.numpy(), (head + own).detach().numpy(), rtol=1e-4, atol=1e-5)
    ours = model._class_loss(scores, minigan.tensor(y))
    theirs = torch.nn.functional.cross_entropy(expected, torch.tensor(y))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(
        model.discriminator.embed.weight.grad.numpy(),
        body.embed.weight.grad.numpy(),
        rtol=1e-4,
        atol=1e-6,
    )
    first = model.discriminator.main[0].weight_orig.grad.numpy()
    np.testing.assert_allclose(first, body.main[0].weight_orig.grad.numpy(), rtol=1e-3, atol=1e-6)


def test_class_loss_trains_d_to_name_the_classes_of_real_images():
    """With the class loss alone on, D's projection scores learn to name the classes of
    labelled images: top-1 accuracy on the training batch rises well above chance."""
    minigan.manual_seed(0)
    model = DCGAN({"num_classes": 3, "g_width": 4, "d_width": 8, "diffaugment": ""}, (1, 32, 32))
    ds = minigan.data.open_dataset("shapes", resolution=32, channels=1, limit=4000)
    images, labels = ds[:]
    keep = labels < 3  # circles, squares, triangles
    x, y = minigan.tensor(images[keep][:96]), minigan.tensor(labels[keep][:96])
    opt = minigan.optim.Adam(model.discriminator.parameters(), lr=3e-3)

    def accuracy() -> float:
        _, scores = model.discriminator.judge(x, y)
        return float((scores.numpy().argmax(1) == y.numpy()).mean())

    before = accuracy()
    for _ in range(60):
        loss = model._class_loss(model.discriminator.judge(x, y)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert accuracy() > max(0.8, before + 0.3)


def torch_layered_generator(model: DCGAN) -> tnn.Module:
    """The layered output written in PyTorch: the 32x32 example layout ending in one mask
    channel (with a bias), a Linear colours head on z, and bg + (fg - bg) * sigmoid(mask)."""
    g, c = model.config.g_width, model.image_shape[0]
    nz = model.config.latent_dim + model.num_classes

    class Layered(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = tnn.Sequential(
                tnn.ConvTranspose2d(nz, 4 * g, 4, 1, 0, bias=False),
                tnn.BatchNorm2d(4 * g),
                tnn.ReLU(),
                tnn.ConvTranspose2d(4 * g, 2 * g, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(2 * g),
                tnn.ReLU(),
                tnn.ConvTranspose2d(2 * g, g, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(g),
                tnn.ReLU(),
                tnn.ConvTranspose2d(g, 1, 4, 2, 1, bias=True),
            )
            self.colours = tnn.Linear(nz, 2 * c)

        def forward(self, z):
            fg, bg = torch.tanh(self.colours(z))[:, :, None, None].chunk(2, 1)
            return bg + (fg - bg) * torch.sigmoid(self.main(z[:, :, None, None]))

    net = Layered()
    net.load_state_dict(
        {k: torch.tensor(v.numpy()) for k, v in model.generator.state_dict().items()}
    )
    return net


def test_layered_generator_matches_torch():
    """Images, and gradients of every weight and of z, against the PyTorch layered generator."""
    minigan.manual_seed(5)
    config = {"num_classes": 6, "g_width": 4, "d_width": 4, "layered": True, "mask": "conv"}
    model = DCGAN(config, (3, 32, 32))
    rng = np.random.default_rng(0)
    for p in model.generator.parameters():  # the colours head and the mask bias away from 0
        p.data[...] += rng.normal(0, 0.3, p.shape).astype(np.float32)
    net = torch_layered_generator(model)
    z = model.latents(range(5))
    z.requires_grad = True
    ours = model.generator(z)
    zt = torch.tensor(z.numpy(), requires_grad=True)
    theirs = net(zt)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    weights = torch.tensor(np.random.default_rng(0).normal(size=ours.shape).astype(np.float32))
    (ours * minigan.tensor(weights.numpy())).sum().backward()
    (theirs * weights).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), zt.grad.numpy(), rtol=1e-3, atol=1e-5)
    grads = dict(net.named_parameters())
    for name, p in model.generator.named_parameters():
        expected = grads[name].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("mask", ["conv", "implicit"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 64, 64)])
def test_layered_images_are_blends_of_two_colours(shape, mask):
    """Every pixel is bg + (fg - bg) * s with one s in (0, 1) for all channels, fg and bg
    the image's own two colours (tanh of the colours head), in every layout, with either
    mask."""
    minigan.manual_seed(6)
    config = {"g_width": 4, "d_width": 4} if shape[1] != 28 else {}
    config = {**config, "layered": True, "mask": mask}
    model = DCGAN(config, shape)
    rng = np.random.default_rng(1)
    for name, p in model.generator.named_parameters():
        # the MLP colours head (64 hidden units) saturates its tanh at 0.3
        spread = 0.05 if name.startswith("colours.") and model.config.colours == "mlp" else 0.3
        p.data[...] += rng.normal(0, spread, p.shape).astype(np.float32)
    z = model.latents(range(4))
    images = model.generator(z).numpy().astype(np.float64)
    both = np.tanh(model.generator.colours(z).numpy().astype(np.float64))
    c = shape[0]
    fg, bg = both[:, :c, None, None], both[:, c:, None, None]
    assert np.abs(fg - bg).max((1, 2, 3)).min() > 0.02  # two colours that differ
    # the share of fg, read off each image's channel where fg and bg differ most, must
    # give back every channel
    widest = np.abs(fg - bg).argmax(1)[:, 0, 0]
    n = np.arange(len(images))
    share = (images[n, widest] - bg[n, widest]) / (fg[n, widest] - bg[n, widest])
    assert np.all((share >= -1e-5) & (share <= 1 + 1e-5))
    np.testing.assert_allclose(images, bg + (fg - bg) * share[:, None], atol=1e-5)
    assert share.std() > 0.01  # the mask varies over the image


def test_layered_is_on_for_two_colour_training_data_and_can_be_chosen(tmp_path):
    import json

    from minigan.data import Dataset
    from minigan.train import train

    shapes = open_dataset("shapes", limit=64)
    assert DCGAN.config_for_data(DCGAN.make_config(), shapes).layered is True
    rng = np.random.default_rng(0)
    photos = Dataset(rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8), name="noise")
    assert DCGAN.config_for_data(DCGAN.make_config(), photos).layered is False
    chosen = DCGAN.make_config({"layered": False})
    assert DCGAN.config_for_data(chosen, shapes).layered is False
    assert DCGAN(None, (3, 32, 32)).config.layered is False  # built without data: off
    for bad in ("yes", 1, 0.0):  # (1 == True in Python: still not a switch's value)
        with pytest.raises(ValueError, match=f"layered must be True or False, got {bad!r}"):
            DCGAN({"layered": bad}, (3, 32, 32))
    with pytest.raises(ValueError, match="spectral_norm must be True or False, got 1"):
        DCGAN({"spectral_norm": 1}, (3, 32, 32))
    assert DCGAN({"layered": np.bool_(True)}, (3, 32, 32)).config.layered is True
    options = dict(data_options={"limit": 64}, batch_size=16, progress=False, log=lambda m: None)
    small = {"g_width": 4, "d_width": 4}
    for name, config, expected in [
        ("auto", small, True),
        ("off", {**small, "layered": False}, False),
    ]:
        train("dcgan", out=tmp_path / name, config=config, max_steps=1, **options)
        saved = json.loads((tmp_path / name / "config.json").read_text())["config"]
        assert saved["layered"] is expected
        model = minigan.run.load_model(tmp_path / name)[0]
        assert (model.generator.colours is not None) is expected


def test_hinge_losses_are_the_closed_form():
    model = DCGAN({"num_classes": 2, "g_width": 4, "d_width": 4}, (3, 32, 32))
    real, fake = np.array([2.0, 0.5, -1.0], "f4"), np.array([-3.0, -0.25, 1.5], "f4")
    loss_d = model._d_loss(minigan.tensor(real), minigan.tensor(fake)).item()
    expected = np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean()
    assert loss_d == pytest.approx(expected, rel=1e-6)
    assert model._g_loss(minigan.tensor(fake)).item() == pytest.approx(-fake.mean(), rel=1e-6)


def test_conditional_latents_carry_the_class_and_sample_can_choose_it():
    minigan.manual_seed(0)
    model = DCGAN({"num_classes": 4, "g_width": 4, "d_width": 4}, (3, 32, 32))
    seeds = [0, 1, 6, 11]
    z = model.latents(seeds).numpy()
    plain = DCGAN({"g_width": 4, "d_width": 4}, (3, 32, 32)).latents(seeds).numpy()
    np.testing.assert_array_equal(z[:, :100], plain)  # the same z as unconditional
    np.testing.assert_array_equal(z[:, 100:].argmax(1), np.array(seeds) % 4)
    assert z[:, 100:].sum() == len(seeds)
    as_three = model.sample(model.latents(seeds), label=3).numpy()
    z[:, 100:] = np.eye(4, dtype="f4")[3]
    np.testing.assert_allclose(as_three, model.sample(minigan.tensor(z)).numpy(), atol=1e-6)
    own = model.sample(model.latents(seeds)).numpy()  # seeds 0, 1, 6: classes 0, 1, 2
    assert all(np.abs(as_three[i] - own[i]).max() > 0.01 * np.abs(own[i]).max() for i in range(3))
    np.testing.assert_allclose(as_three[3], own[3], rtol=1e-5, atol=1e-7)  # seed 11: class 3
    with pytest.raises(ValueError, match="not one of this model's 0-3"):
        model.sample(model.latents([0]), label=4)
    with pytest.raises(ValueError, match="not class-conditional"):
        DCGAN({"g_width": 4, "d_width": 4}, (3, 32, 32)).sample(model.latents([0])[:, :100], 1)


@pytest.mark.parametrize("config", [{}, {"spectral_norm": False, "diffaugment": "color"}])
def test_check_model_conditional(config):
    check_model(
        DCGAN,
        image_shape=(3, 32, 32),
        config={"num_classes": 3, "g_width": 4, "d_width": 4, **config},
    )
    check_model(
        DCGAN, image_shape=(1, 28, 28), config={"num_classes": 3, "g_width": 4, "d_width": 4}
    )


def test_conditional_step_augments_what_d_sees_with_the_global_generator():
    """D's logits in a step are those of the DiffAugmented images, drawn from minigan's
    global generator right after the latents and the fake labels."""
    from minigan import diffaugment

    minigan.manual_seed(0)
    model = DCGAN({"num_classes": 3, "g_width": 4, "d_width": 4}, (3, 32, 32))
    rng = np.random.default_rng(1)
    real = minigan.tensor(rng.uniform(-1, 1, (4, 3, 32, 32)).astype("f4"))
    labels = minigan.tensor(rng.integers(0, 3, 4))
    state = {k: v.numpy().copy() for k, v in model.discriminator.state_dict().items()}
    minigan.manual_seed(5)
    metrics = model.train_step(real, labels)

    minigan.manual_seed(5)
    gen = minigan.random.generator()
    gen.standard_normal((4, 100))  # z (minigan.randn draws float64)
    gen.random(4)  # the fake labels
    draws = diffaugment.draw(model.policy, real.shape, gen)
    twin = DCGAN({"num_classes": 3, "g_width": 4, "d_width": 4}, (3, 32, 32))
    twin.discriminator.load_state_dict({k: minigan.tensor(v) for k, v in state.items()})
    expected = twin.discriminator(diffaugment.apply(real, draws), labels)
    logits_real = float(minigan.functional.sigmoid(expected).mean().item())
    assert float(metrics["d_real"].item()) == pytest.approx(logits_real, rel=1e-5)


OLD_RUN_OPTIONS = dict(
    data_options={"limit": 64}, batch_size=16, progress=False, log=lambda m: None
)


def old_run(tmp_path, config: dict, new_keys: tuple[str, ...]):
    """An 8-step run ``whole`` and a 4-step run ``old`` of ``config``, with ``new_keys``
    deleted from old's config.json and checkpoints: a run saved before those options
    existed. Returns the two run directories."""
    import json

    from minigan.train import train

    for name, steps in (("whole", 8), ("old", 4)):
        train("dcgan", out=tmp_path / name, config=config, max_steps=steps, **OLD_RUN_OPTIONS)
    run = tmp_path / "old"
    saved = json.loads((run / "config.json").read_text())
    for key in new_keys:
        del saved["config"][key]
    (run / "config.json").write_text(json.dumps(saved))
    for path in (run / "checkpoints").glob("*.safetensors"):
        ckpt = minigan.load(path)
        ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k not in new_keys}
        minigan.save(ckpt, path)
    return tmp_path / "whole", run


def assert_same_losses(whole, *resumed) -> None:
    """Each resumed run logged 8 steps, with the losses of the uninterrupted run."""
    import json

    def losses(run):
        return [json.loads(line)["loss_d"] for line in (run / "metrics.jsonl").open()]

    for run in resumed:
        assert len(losses(run)) == 8
        np.testing.assert_allclose(losses(run), losses(whole), rtol=1e-5)


def test_a_run_from_before_classes_resumes_unconditionally(tmp_path):
    """A run written before DCGAN had num_classes, loss, ... (its config.json and checkpoint
    lack them) resumes as the unconditional model it was, with the losses an uninterrupted
    run has."""
    import json

    from minigan.train import train

    new_keys = ("num_classes", "lr_d", "loss", "spectral_norm", "diffaugment")
    config = {"g_width": 4, "d_width": 4, "num_classes": 0}
    whole, run = old_run(tmp_path, config, new_keys)
    train("dcgan", out=run, resume=True, max_steps=8, **OLD_RUN_OPTIONS)
    assert json.loads((run / "config.json").read_text())["config"]["num_classes"] == 0
    assert_same_losses(whole, run)


def test_a_conditional_run_from_before_the_class_loss_resumes_without_it(tmp_path):
    """A class-conditional run saved before DCGAN had ``class_loss`` trained without one:
    ``--resume`` keeps it so (``DCGAN.added_config_fields``) instead of turning the newer
    default on, and continues as an uninterrupted run without the class loss does."""
    import json

    from minigan.run import load_model
    from minigan.train import train

    options = OLD_RUN_OPTIONS
    whole, run = old_run(tmp_path, {"g_width": 4, "d_width": 4, "class_loss": 0.0}, ("class_loss",))
    # the old checkpoint loads as what it was (no class loss), for sampling or training on
    assert load_model(run)[0].config.class_loss == 0
    # asking for the value the run trained with is no conflict; asking for another is
    with pytest.raises(ValueError, match=r"class_loss=1\.0 \(the run has 0\.0\)"):
        train("dcgan", out=run, resume=True, max_steps=8, config={"class_loss": 1.0}, **options)
    train(
        "dcgan", out=run, resume=True, max_steps=8, config={"class_loss": 0.0}, **options
    )  # fmt: skip
    resumed = json.loads((run / "config.json").read_text())["config"]
    assert resumed["num_classes"] == 6 and resumed["class_loss"] == 0
    assert_same_losses(whole, run)
    # a new run of the same data gets the class loss
    small = {"g_width": 4, "d_width": 4}
    train("dcgan", out=tmp_path / "new", config=small, max_steps=1, **options)
    assert json.loads((tmp_path / "new" / "config.json").read_text())["config"]["class_loss"] == 1


def test_a_run_from_before_the_layered_output_resumes_with_the_plain_output(tmp_path):
    """A run on shapes saved before DCGAN had ``layered`` drew plain images: ``--resume``,
    ``load_model`` and a resume without config.json keep it so (``added_config_fields``)
    instead of letting the data turn the newer default on, and it continues exactly as an
    uninterrupted plain-output run."""
    import json
    import shutil

    from minigan.run import load_model
    from minigan.train import train

    small = {"g_width": 4, "d_width": 4}
    whole, run = old_run(tmp_path, {**small, "layered": False}, ("layered",))
    assert load_model(run)[0].config.layered is False
    bare = tmp_path / "bare"  # the same run without its config.json: only the checkpoints
    shutil.copytree(run, bare)
    (bare / "config.json").unlink()
    train("dcgan", out=run, resume=True, max_steps=8, **OLD_RUN_OPTIONS)
    assert json.loads((run / "config.json").read_text())["config"]["layered"] is False
    # without config.json the widths must be given again
    train("dcgan", out=bare, resume=True, max_steps=8, config=small, **OLD_RUN_OPTIONS)
    assert json.loads((bare / "config.json").read_text())["config"]["layered"] is False
    assert_same_losses(whole, run, bare)


def test_a_layered_run_from_before_the_implicit_mask_resumes_with_convolutions(tmp_path):
    """A run saved before DCGAN had ``mask`` drew its mask with convolutions: ``--resume``
    and ``load_model`` keep it so (``added_config_fields``) and it continues exactly as an
    uninterrupted run with ``mask="conv"``."""
    import json

    from minigan.run import load_model
    from minigan.train import train

    config = {"g_width": 4, "d_width": 4, "layered": True, "mask": "conv"}
    whole, run = old_run(tmp_path, config, ("mask",))
    assert load_model(run)[0].config.mask == "conv"
    train("dcgan", out=run, resume=True, max_steps=8, **OLD_RUN_OPTIONS)
    assert json.loads((run / "config.json").read_text())["config"]["mask"] == "conv"
    assert_same_losses(whole, run)


def test_an_implicit_run_from_before_the_mlp_colours_resumes_as_it_was(tmp_path):
    """A run saved before DCGAN had ``colours`` and ``translation`` drew its colours with
    one linear layer and shifted D's images by up to 1/8 of the side: ``--resume`` and
    ``load_model`` keep both (``added_config_fields``), and it continues exactly as an
    uninterrupted run with those values."""
    import json

    from minigan.run import load_model
    from minigan.train import train

    config = {
        "g_width": 4, "d_width": 4, "layered": True, "mask": "implicit",
        "colours": "linear", "translation": 0.125, "diffaugment": "color,translation",
    }  # fmt: skip
    whole, run = old_run(tmp_path, config, ("colours", "translation"))
    model = load_model(run)[0]
    assert (model.config.colours, model.config.translation) == ("linear", 0.125)
    assert isinstance(model.generator.colours, minigan.nn.Linear)
    train("dcgan", out=run, resume=True, max_steps=8, **OLD_RUN_OPTIONS)
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["colours"], saved["translation"]) == ("linear", 0.125)
    assert_same_losses(whole, run)
