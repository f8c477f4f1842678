"""DCGAN's implicit mask (plugins/dcgan/implicit.py): against an independent PyTorch version
(values and every gradient), against a closed-form ellipse drawn with chosen weights, and as
the auto choice of the layered output (``mask="conv"`` still available, older runs resuming
with the mask they were trained with)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import minigan
from minigan.data import Dataset
from minigan.plugins.dcgan import DCGAN
from minigan.plugins.dcgan.implicit import ImplicitMask
from minigan.plugins.dcgan.model import ColourMLP
from minigan.run import load_model
from minigan.train import train

SMALL = {"g_width": 4, "d_width": 4}


def torch_implicit(params: dict[str, torch.Tensor], units: int, side: int, z: torch.Tensor):
    """The implicit mask written out in PyTorch from its description: the trunk MLP, its
    output cut into each sample's weights and pose, the pixel centres moved into the sample's
    frame, and the two-layer ReLU network of (x, y, x², y², xy), in pixels."""
    h = z
    for i in (0, 2):
        h = torch.nn.functional.leaky_relu(
            h @ params[f"trunk.{i}.weight"].T + params[f"trunk.{i}.bias"], 0.2
        )
    out = h @ params["trunk.4.weight"].T + params["trunk.4.bias"]
    n, u = len(z), units
    sizes = [u * 6, u * u, u, u, 1, 2, 1, 2]
    a1, a2, b2, v, c, turn, log_scale, shift = torch.split(out, sizes, dim=1)
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    py, px = torch.meshgrid(centres, centres, indexing="ij")  # rows are y
    px, py = px.reshape(1, -1), py.reshape(1, -1)
    unit = turn / torch.linalg.vector_norm(turn, dim=1, keepdim=True).clamp(min=1e-3)
    dx, dy = px - shift[:, :1], py - shift[:, 1:]
    x = (unit[:, :1] * dx + unit[:, 1:] * dy) * torch.exp(-log_scale)
    y = (unit[:, :1] * dy - unit[:, 1:] * dx) * torch.exp(-log_scale)
    f = torch.stack([x, y, x * x, y * y, x * y], dim=2)
    a1 = a1.reshape(n, u, 6)  # the last column is the bias
    h1 = torch.relu(torch.einsum("npf,nuf->npu", f, a1[:, :, :5]) + a1[:, None, :, 5])
    h2 = torch.relu(torch.einsum("npu,nvu->npv", h1, a2.reshape(n, u, u)) + b2[:, None])
    logit = torch.einsum("npv,nv->np", h2, v) + c
    return (logit * side / 2).reshape(n, 1, side, side)


@pytest.mark.parametrize("side, units", [(32, 16), (12, 3)])
def test_implicit_mask_matches_torch_with_every_gradient(side, units):
    minigan.manual_seed(3)
    net = ImplicitMask(latent_dim=10, resolution=side, units=units, hidden=24)
    net.trunk[4].weight.data[...] *= 10  # far from the start: every pose part moves with z
    rng = np.random.default_rng(0)
    z = minigan.tensor(rng.normal(size=(5, 10)).astype(np.float32), requires_grad=True)
    zt = torch.tensor(z.numpy(), requires_grad=True)
    params = {k: torch.tensor(p.numpy(), requires_grad=True) for k, p in net.named_parameters()}
    ours, theirs = net(z), torch_implicit(params, units, side, zt)
    assert ours.shape == (5, 1, side, side)
    scale = float(theirs.detach().abs().max())
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), atol=1e-5 * scale)
    weights = rng.normal(size=ours.shape).astype(np.float32)
    (ours * minigan.tensor(weights)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    for name, mine, expected in [("z", z, zt)] + [
        (k, p, params[k]) for k, p in net.named_parameters()
    ]:
        g = expected.grad.numpy()
        np.testing.assert_allclose(mine.grad.numpy(), g, rtol=1e-3, atol=1e-5 * np.abs(g).max(),
                                   err_msg=name)  # fmt: skip


def _draw(net: ImplicitMask, parts: dict[str, list[float]]) -> np.ndarray:
    """The logits (side, side) with the trunk's output fixed to ``parts`` (its last weight
    zeroed, its bias the chosen per-sample network)."""
    last = net.trunk[4]
    last.weight.data[...] = 0
    last.bias.data[...] = np.concatenate([np.ravel(parts[k]) for k in net.shapes])
    return net(minigan.zeros(1, 4)).numpy()[0, 0].astype(np.float64)


@pytest.mark.parametrize(
    "angle, shift, log_scale", [(30, (0.2, -0.3), 0.0), (-70, (-0.1, 0.25), -0.4)]
)
def test_chosen_weights_draw_the_closed_form_ellipse(angle, shift, log_scale):
    """One unit computing r² - x² - 4y² (its weights, then its bias) draws an ellipse of
    semi-axes r and r/2 in the sample's frame: in the image it is centred at ``shift``, its
    long axis along ``angle``, scaled by exp(log_scale); the logit is (max(0, r² - q) - 0.05)
    · side/2 at each pixel centre."""
    side, r, theta = 24, 0.6, math.radians(angle)
    net = ImplicitMask(latent_dim=4, resolution=side, units=2, hidden=8)
    parts = {
        "A1": [[0, 0, -1, -4, 0, r * r], [0, 0, 0, 0, 0, 0]],
        "A2": [[1, 0], [0, 0]], "b2": [0, 0], "v": [1, 0], "c": [-0.05],
        "turn": [2 * math.cos(theta), 2 * math.sin(theta)],  # its length does not matter
        "log_scale": [log_scale], "shift": list(shift),
    }  # fmt: skip
    logits = _draw(net, parts)
    centres = (np.arange(side) + 0.5) / side * 2 - 1
    px, py = np.meshgrid(centres, centres)  # px[i, j] = x of column j; rows are y
    d = np.stack([px - shift[0], py - shift[1]], -1)
    along = d @ [math.cos(theta), math.sin(theta)]
    across = d @ [-math.sin(theta), math.cos(theta)]
    q = (along**2 + 4 * across**2) * math.exp(-2 * log_scale)
    expected = (np.maximum(0, r * r - q) - 0.05) * side / 2
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # and as geometry: the inside pixels' centroid is the shift, their long axis the angle
    inside = logits > 0
    points = np.stack([px[inside], py[inside]], 1)
    np.testing.assert_allclose(points.mean(0), shift, atol=1.0 / side)
    eigenvalues, vectors = np.linalg.eigh(np.cov(points.T))
    major = vectors[:, -1]
    assert abs(abs(major @ [math.cos(theta), math.sin(theta)]) - 1) < 0.01
    assert eigenvalues[-1] / eigenvalues[0] == pytest.approx(4, rel=0.15)
    long = math.sqrt(r * r - 0.05) * math.exp(log_scale)  # where the logit crosses 0
    area = math.pi * long * (long / 2) * (side / 2) ** 2  # in pixels
    assert inside.sum() == pytest.approx(area, rel=0.1)


def test_the_layered_output_draws_its_mask_implicitly_unless_asked_for_convolutions():
    model = DCGAN({**SMALL, "layered": True, "num_classes": 6}, (3, 32, 32))
    assert model.config.mask == "implicit" and isinstance(model.generator.main, ImplicitMask)
    conv = DCGAN({**SMALL, "layered": True, "mask": "conv"}, (3, 32, 32))
    assert conv.config.mask == "conv" and isinstance(conv.generator.main, minigan.nn.Sequential)
    assert DCGAN({**SMALL, "layered": False}, (3, 32, 32)).config.mask == "conv"
    with pytest.raises(ValueError, match="mask must be 'conv' or 'implicit', got 'mlp'"):
        DCGAN({**SMALL, "mask": "mlp"}, (3, 32, 32))
    # the layered output off, whether asked for or left to auto without data (numpy's
    # False too): the run would be saved with a config that cannot be built again
    for layered in (False, None, np.False_):
        with pytest.raises(ValueError, match="mask='implicit' .* the layered output is off"):
            DCGAN({**SMALL, "layered": layered, "mask": "implicit"}, (3, 32, 32))
    # every layout takes it (the pixel values: test_dcgan.py's blends-of-two-colours test)
    for shape in ((1, 28, 28), (3, 64, 64)):
        m = DCGAN({**SMALL, "layered": True}, shape)
        mask = m.generator.main
        assert isinstance(mask, ImplicitMask) and mask.resolution == shape[1]
        assert m.sample(m.latents(range(3))).shape == (3, *shape)


def test_the_implicit_mask_brings_mlp_colours_and_its_own_augmentation():
    """With the implicit mask the auto values are the MLP colours head and DiffAugment
    translation by at most 1/16 of the side without color (docs/quality/dcgan-recipes.md,
    "Eighth step"); the convolutional mask keeps the recipe's; chosen values win."""
    model = DCGAN({**SMALL, "layered": True, "num_classes": 6}, (3, 32, 32))
    cfg = model.config
    assert (cfg.colours, cfg.diffaugment, cfg.translation) == ("mlp", "translation", 1 / 16)
    assert isinstance(model.generator.colours, ColourMLP) and model.policy == ("translation",)
    conv = DCGAN({**SMALL, "layered": True, "mask": "conv", "num_classes": 6}, (3, 32, 32))
    cfg = conv.config
    assert (cfg.colours, cfg.diffaugment, cfg.translation) == ("linear", "color,translation", 0.125)
    assert isinstance(conv.generator.colours, minigan.nn.Linear)
    chosen = {**SMALL, "layered": True, "num_classes": 6, "colours": "linear"}
    cfg = DCGAN({**chosen, "translation": 0.25}, (3, 32, 32)).config
    assert (cfg.colours, cfg.diffaugment, cfg.translation) == ("linear", "translation", 0.25)
    # a policy chosen by hand keeps the paper's shift; without classes the recipe does not
    # augment, and the implicit mask does not change that
    cfg = DCGAN({**chosen, "diffaugment": "color,translation"}, (3, 32, 32)).config
    assert (cfg.diffaugment, cfg.translation) == ("color,translation", 0.125)
    for shape in ((1, 28, 28), (3, 32, 32), (3, 64, 64)):
        cfg = DCGAN({**SMALL, "layered": True, "num_classes": 0}, shape).config
        assert (cfg.mask, cfg.diffaugment, cfg.translation) == ("implicit", "", 0.125)
    # the MLP head under the conv mask, and every layout
    for shape in ((1, 28, 28), (3, 32, 32), (3, 64, 64)):
        m = DCGAN({**SMALL, "layered": True, "mask": "conv", "colours": "mlp"}, shape)
        assert isinstance(m.generator.colours, ColourMLP)
        assert m.sample(m.latents(range(2))).shape == (2, *shape)


def test_d_sees_images_shifted_by_at_most_the_translation(monkeypatch):
    """A training step hands the config's translation to DiffAugment for each of D's three
    batches, and the shifts it draws stay within it (0.25 of 32 pixels: 8)."""
    from minigan import diffaugment

    seen = []
    real_draw = diffaugment.draw

    def spy(policy, shape, rng, translation=diffaugment.TRANSLATION_RATIO):
        draws = real_draw(policy, shape, rng, translation)
        seen.append((translation, np.abs(draws.shift_y).max(), np.abs(draws.shift_x).max()))
        return draws

    monkeypatch.setattr(diffaugment, "draw", spy)
    minigan.manual_seed(0)
    model = DCGAN({**SMALL, "layered": True, "num_classes": 6, "translation": 0.25})
    real = minigan.rand(64, 3, 32, 32) * 2 - 1
    model.train_step(real, minigan.tensor(np.arange(64) % 6))
    assert len(seen) == 3 and all(t == 0.25 for t, _, _ in seen)
    assert max(max(y, x) for _, y, x in seen) == 8  # 64 draws each: the extremes appear


def test_colour_and_translation_options_are_checked():
    with pytest.raises(ValueError, match="colours must be 'linear' or 'mlp', got 'rgb'"):
        DCGAN({**SMALL, "layered": True, "colours": "rgb"}, (3, 32, 32))
    with pytest.raises(ValueError, match="colours='mlp' .* the layered output is off"):
        DCGAN({**SMALL, "layered": False, "colours": "mlp"}, (3, 32, 32))
    for bad in (-0.1, 1.5, float("nan"), True, "1/8"):
        with pytest.raises(ValueError, match="translation must be a number in \\[0, 1\\]"):
            DCGAN({**SMALL, "translation": bad}, (3, 32, 32))


def test_the_mlp_colours_head_keeps_pytorchs_initialisation():
    """DCGAN's N(0, 0.02) init is taken back for the MLP head: PyTorch's default, weights
    uniform in +-1/sqrt(fan_in) (std 1/sqrt(3 fan_in)), as the measured harness runs had."""
    minigan.manual_seed(0)
    head = DCGAN({**SMALL, "layered": True, "num_classes": 6}, (3, 32, 32)).generator.colours
    assert isinstance(head, ColourMLP)
    for layer in (head[0], head[2]):
        w, fan_in = layer.weight.numpy(), layer.in_features
        assert np.abs(w).max() <= 1 / math.sqrt(fan_in)
        assert w.std() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.1)


def test_runs_on_shapes_get_the_implicit_mask_and_noise_does_not(tmp_path):
    options = dict(data_options={"limit": 64}, batch_size=16, progress=False, log=lambda m: None)
    train("dcgan", out=tmp_path / "shapes", config=SMALL, max_steps=2, **options)
    saved = json.loads((tmp_path / "shapes" / "config.json").read_text())["config"]
    assert saved["layered"] is True and saved["mask"] == "implicit"
    model = load_model(tmp_path / "shapes")[0]
    assert isinstance(model.generator.main, ImplicitMask)
    assert "main.grid" not in model.generator.state_dict()  # a constant, not saved
    rng = np.random.default_rng(0)
    noise = Dataset(rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8), name="noise")
    config = DCGAN.config_for_data(DCGAN.make_config(), noise)
    assert DCGAN(config, (3, 32, 32)).config.mask == "conv"
