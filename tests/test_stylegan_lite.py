"""The StyleGAN-lite plugin: tests that it is StyleGAN and not a look-alike (modulated
convolutions against PyTorch's per-sample-weight form, demodulation, the synthesis network
against a PyTorch twin, truncation, style mixing, R1 with true second derivatives against
finite differences and PyTorch), the model contract, noise modes, its commands, resume, and
a short learning run."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import minigan
from minigan.data import DataLoader, open_dataset
from minigan.plugins import stylegan_lite
from minigan.plugins.stylegan_lite import (
    Discriminator,
    ModulatedConv2d,
    StyleGANLite,
    minibatch_stddev,
    mix_styles,
    r1_penalty,
)
from minigan.registry import get_registry
from minigan.testing import gradcheck, registered_plugin
from minigan.train import check_model, read_metrics, train

TINY = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2}


def tiny_model(shape=(3, 16, 16), seed: int = 0, **config) -> StyleGANLite:
    minigan.manual_seed(seed)
    return StyleGANLite({**TINY, **config}, image_shape=shape)


def randomise_noise_strengths(model: StyleGANLite, value: float = 0.5) -> None:
    """Noise strengths start at 0 (noise off); give them a value to make noise visible."""
    for net in (model.generator, model.generator_ema):
        for name, p in net.named_parameters():
            if name.endswith("noise.weight"):
                p.data[...] = value


# --------------------------------------------------------------------------- registration
def test_stylegan_lite_is_registered():
    registry = get_registry()
    if "stylegan-lite" in registry.names("model"):  # installed through the entry point
        assert registry.get("model", "stylegan-lite") is StyleGANLite
    else:
        with registered_plugin(stylegan_lite, "stylegan_lite_test") as reg:
            assert reg.get("model", "stylegan-lite") is StyleGANLite


def test_architecture_counts_layers_and_styles():
    model = tiny_model((3, 32, 32))
    G = model.generator
    assert model.num_ws == 8  # 1 styled layer at 4, 2 at each of 8, 16, 32; the last toRGB
    assert [layer.upsample for layer in G.synthesis.layers] == [False] + [True, False] * 3
    assert len(G.synthesis.to_rgbs) == 4  # one per resolution (skip generator)
    assert tuple(G.synthesis.const.shape) == (1, 8, 4, 4)
    assert len(G.mapping.layers) == 2 and G.mapping.layers[0].bias_gain == 0.01
    assert len(model.discriminator.blocks) == 3  # 32 -> 16 -> 8 -> 4
    # Adam betas (0, 0.99) for G; D's are adjusted for lazy R1 (c = k / (k + 1))
    cfg = model.config
    c = cfg.r1_every / (cfg.r1_every + 1)
    assert model.opt_g.param_groups[0]["betas"] == (0.0, 0.99)
    assert model.opt_d.param_groups[0]["lr"] == pytest.approx(cfg.lr * c)
    with pytest.raises(ValueError, match="power-of-two"):
        StyleGANLite(TINY, image_shape=(3, 28, 28))


def test_equalized_learning_rate_scales_weights_at_run_time():
    layer = stylegan_lite.EqualizedLinear(50, 7, lr_mul=0.01, gain=2.0, bias_init=3.0)
    assert layer.weight.numpy().std() == pytest.approx(100.0, rel=0.1)  # N(0, 1/lr_mul^2)
    x = minigan.randn(4, 50)
    with minigan.no_grad():
        y = layer(x).numpy()
    want = x.numpy() @ (layer.weight.numpy() * 2.0 / np.sqrt(50) * 0.01).T + 3.0
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- modulation
def torch_modulated_conv(layer: ModulatedConv2d, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """StyleGAN2's *fused* form, independent of ours: one weight per sample, scaled by the
    style and (if demodulating) normalised per output channel, applied as a grouped conv."""
    weight = torch.from_numpy(np.array(layer.weight.numpy(), np.float64)) * layer.weight_gain
    aff = layer.affine
    s = torch.from_numpy(w) @ torch.from_numpy(
        np.array(aff.weight.numpy(), np.float64) * aff.weight_gain
    ).T + torch.from_numpy(np.array(aff.bias.numpy(), np.float64) * aff.bias_gain)
    n, (o, i, k, _) = x.shape[0], weight.shape
    per_sample = weight[None] * s[:, None, :, None, None]  # (N, O, I, k, k)
    if layer.demodulate:
        per_sample = per_sample * (per_sample.square().sum((2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    inputs = torch.from_numpy(x).reshape(1, n * i, *x.shape[2:])
    if layer.padding_mode != "zeros" and k > 1:
        inputs = TF.pad(inputs, (k // 2,) * 4, mode=layer.padding_mode)
    pad = k // 2 if layer.padding_mode == "zeros" else 0
    y = TF.conv2d(inputs, per_sample.reshape(n * o, i, k, k), padding=pad, groups=n)
    return y.reshape(n, o, *y.shape[2:]).numpy()


@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 5),
    cout=st.integers(1, 5),
    k=st.sampled_from([1, 3]),
    demodulate=st.booleans(),
    padding=st.sampled_from(["zeros", "reflect", "replicate"]),
    seed=st.integers(0, 2**16),
)
def test_modulated_conv_equals_per_sample_weights_in_pytorch(
    n, cin, cout, k, demodulate, padding, seed
):
    minigan.manual_seed(seed)
    layer = ModulatedConv2d(cin, cout, k, w_dim=6, demodulate=demodulate, padding_mode=padding)
    layer.to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    layer.affine.bias.data[...] = rng.normal(0, 1, layer.affine.bias.shape)  # not all ones
    x, w = rng.normal(0, 1, (n, cin, 5, 5)), rng.normal(0, 1, (n, 6))
    with minigan.no_grad():
        ours = layer(minigan.tensor(x), minigan.tensor(w)).numpy()
    np.testing.assert_allclose(ours, torch_modulated_conv(layer, x, w), rtol=1e-9, atol=1e-12)


def test_demodulation_keeps_unit_variance_whatever_the_style():
    """Demodulation's purpose (StyleGAN2, eq. 3): i.i.d. unit-variance input -> unit-variance
    output for any style, so no layer can gain or lose signal by its style alone."""
    minigan.manual_seed(0)
    layer = ModulatedConv2d(64, 8, 3, w_dim=4)
    x = minigan.randn(4, 64, 16, 16)
    for style_scale in (0.1, 1.0, 30.0):
        layer.affine.weight.data[...] = np.random.default_rng(1).normal(0, style_scale, (64, 4))
        with minigan.no_grad():
            y = layer(x, minigan.randn(4, 4)).numpy()[:, :, 1:-1, 1:-1]  # away from the padding
        assert y.std(axis=(0, 2, 3)) == pytest.approx(np.ones(8), rel=0.1)
    layer.demodulate = False  # without it the style's scale passes through
    with minigan.no_grad():
        assert layer(x, minigan.randn(4, 4)).numpy().std() > 5


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zeros"])
def test_generator_padding_keeps_a_flat_map_flat_to_the_border(padding):
    """Why the default pads by reflection: a flat (background) feature map stays flat up to
    the border, where zero padding makes every 3×3 convolution darken edges and corners."""
    minigan.manual_seed(0)
    layer = ModulatedConv2d(3, 4, 3, w_dim=2, padding_mode=padding)
    x = minigan.ones(2, 3, 8, 8) * minigan.tensor(np.array([0.5, -1.0, 2.0], np.float32)).reshape(
        1, 3, 1, 1
    )
    with minigan.no_grad():
        y = layer(x, minigan.randn(2, 2)).numpy()
    spread = np.ptp(y, axis=(2, 3)).max()
    assert (spread < 1e-5) if padding != "zeros" else (spread > 0.05)


def test_style_affine_starts_at_scale_one():
    layer = ModulatedConv2d(4, 5, 3, w_dim=8)
    np.testing.assert_array_equal(layer.affine.bias.numpy() * layer.affine.bias_gain, [1.0] * 4)


def torch_synthesis(model: StyleGANLite, ws: np.ndarray) -> np.ndarray:
    """The EMA generator's synthesis network written with torch.nn.functional (float64),
    with its ``const`` noise buffers: the skip generator, nearest-upsampled features,
    bilinearly upsampled images."""
    net = model.generator_ema.synthesis
    p = {k: torch.from_numpy(np.array(v.numpy(), np.float64)) for k, v in net.state_dict().items()}
    layers, s2 = net.layers, np.sqrt(2)
    x = p["const"].expand(ws.shape[0], -1, -1, -1)
    img, wt = None, torch.from_numpy(ws)
    for i, layer in enumerate(layers):
        if layer.upsample:
            x = TF.interpolate(x, scale_factor=2, mode="nearest")
        x = torch.from_numpy(torch_modulated_conv(layer.conv, x.numpy(), ws[:, i]))
        x = x + p[f"layers.{i}.noise.noise_const"] * p[f"layers.{i}.noise.weight"][:, None, None]
        x = TF.leaky_relu(x + p[f"layers.{i}.bias"][:, None, None], 0.2) * s2
        if i % 2 == 0:
            rgb_layer = net.to_rgbs[i // 2]
            rgb = torch.from_numpy(torch_modulated_conv(rgb_layer.conv, x.numpy(), ws[:, i + 1]))
            rgb = rgb + p[f"to_rgbs.{i // 2}.bias"][:, None, None]
            if img is not None:
                img = TF.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = rgb if img is None else img + rgb
    assert img is not None and wt.shape[1] == net.num_ws
    return img.numpy()


def test_synthesis_equals_a_pytorch_twin():
    model = tiny_model((3, 16, 16))
    randomise_noise_strengths(model, 0.3)
    net = model.generator_ema
    net.to(dtype=np.float64)
    for name, q in net.synthesis.named_parameters():  # non-trivial biases and styles
        if name.endswith("bias"):
            q.data[...] = np.random.default_rng(len(name)).normal(0, 0.5, q.shape)
    ws = np.random.default_rng(2).normal(0, 1, (3, net.num_ws, 16))  # a different w per layer
    with minigan.no_grad():
        ours = net.synthesis(minigan.tensor(ws), noise_mode="const").numpy()
    np.testing.assert_allclose(ours, torch_synthesis(model, ws), rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------- truncation
def test_truncation_psi_zero_is_the_average_image_and_psi_one_changes_nothing():
    model = tiny_model()
    randomise_noise_strengths(model)
    model.generator_ema.mapping.w_avg.data[...] = np.random.default_rng(3).normal(0, 1, 16)
    z = model.latents(range(5))
    avg = model.sample(z, truncation=0.0).numpy()
    # one image for every seed, to float32 tolerance: rows of one batch may take different
    # BLAS code paths (7e-6 apart seen on AMD EPYC), a bug would differ by ~0.1
    assert np.ptp(avg, axis=0).max() < 1e-4
    ws = model.mapping(z, truncation=0.0).numpy()
    np.testing.assert_allclose(
        ws, np.broadcast_to(model.generator_ema.mapping.w_avg.numpy(), ws.shape)
    )
    with minigan.no_grad():
        w = model.generator_ema.mapping(z).numpy()
    np.testing.assert_allclose(model.mapping(z, truncation=1.0).numpy()[:, 3], w, atol=1e-6)
    half = model.mapping(z, truncation=0.5).numpy()[:, 0]
    np.testing.assert_allclose(
        half, 0.5 * (w + model.generator_ema.mapping.w_avg.numpy()), atol=1e-6
    )
    assert np.ptp(model.sample(z).numpy(), axis=0).max() > 0.1  # psi = 1: seeds differ


def test_w_avg_tracks_w_during_training():
    model = tiny_model()
    assert np.all(model.generator.mapping.w_avg.numpy() == 0)
    real = minigan.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 3, 16, 16)).astype("f4"))
    model.train_step(real)
    avg = model.generator.mapping.w_avg.numpy()
    assert np.abs(avg).max() > 0
    np.testing.assert_array_equal(model.generator_ema.mapping.w_avg.numpy(), avg)  # copied to EMA


# --------------------------------------------------------------------------- style mixing
def test_style_mixing_takes_coarse_styles_from_one_latent_and_fine_from_the_other():
    model = tiny_model()
    synthesis = model.generator_ema.synthesis
    seen: dict[int, np.ndarray] = {}  # w index -> the w that consumer received

    def record(module, index):
        original = module.forward

        def recording(x, w, *args, _f=original):
            seen[index] = w.numpy().copy()
            return _f(x, w, *args)

        module.forward = recording

    for i, layer in enumerate(synthesis.layers):  # styled layer i takes ws[:, i]
        record(layer, i)
    for j, to_rgb in enumerate(synthesis.to_rgbs):  # toRGB j, after layer 2j, takes ws[:, 2j + 1]
        record(to_rgb, 2 * j + 1)
    ws_a = model.mapping(model.latents([1]))
    ws_b = model.mapping(model.latents([2]))
    n = model.num_ws
    inputs, images = {}, {}
    for cutoff in (2, 3):
        seen.clear()
        images[cutoff] = model.synthesis(mix_styles(ws_a, ws_b, cutoff)).numpy()
        inputs[cutoff] = dict(seen)
        assert sorted(seen) == list(range(n))  # every w is used, by some layer or toRGB
        for i, w in seen.items():  # coarse (< cutoff) from a, fine from b
            want = ws_a if i < cutoff else ws_b
            np.testing.assert_array_equal(w, want.numpy()[:, i])
    changed = [i for i in range(n) if not np.array_equal(inputs[2][i], inputs[3][i])]
    assert changed == [2]  # moving the crossover by one changes exactly that layer's input
    assert not np.array_equal(images[2], images[3])


def test_training_uses_style_mixing_with_the_configured_probability():
    model = tiny_model(style_mixing_prob=0.9)
    mixed = 0
    for _ in range(40):
        ws = model.training_ws(2).numpy()
        mixed += not np.array_equal(ws[:, 0], ws[:, -1])
    assert 28 <= mixed <= 40
    never = tiny_model(style_mixing_prob=0.0)
    ws = never.training_ws(2).numpy()
    assert np.array_equal(ws[:, 0], ws[:, -1])


# --------------------------------------------------------------------------- noise
def test_noise_modes():
    model = tiny_model()
    randomise_noise_strengths(model)
    z = model.latents([0, 1])
    const = [model.sample(z, noise_mode="const").numpy() for _ in range(2)]
    rand = [model.sample(z, noise_mode="random").numpy() for _ in range(2)]
    none = [model.sample(z, noise_mode="none").numpy() for _ in range(2)]
    np.testing.assert_array_equal(*const)
    np.testing.assert_array_equal(*none)
    assert not np.array_equal(*rand)
    assert not np.array_equal(const[0], none[0])
    with pytest.raises(ValueError, match="noise_mode"):
        model.sample(z, noise_mode="loud")
    assert "synthesis.layers.0.noise.noise_const" in model.generator.state_dict()


def test_noise_inputs_train_only_when_enabled():
    real = minigan.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 3, 16, 16)).astype("f4"))

    def strengths(model):
        return np.concatenate(
            [q.numpy() for k, q in model.generator.named_parameters() if k.endswith("noise.weight")]
        )

    for noise in (False, True):
        model = tiny_model(noise=noise)
        for _ in range(2):
            model.train_step(real)
            model.steps += 1
        assert (np.abs(strengths(model)).max() > 0) == noise


# --------------------------------------------------------------------------- R1
def tiny_discriminator() -> Discriminator:
    minigan.manual_seed(5)
    D = Discriminator(img_channels=2, resolution=8, channels=3, mbstd_group=2)
    D.to(dtype=np.float64)
    for p in D.parameters():  # non-zero biases, so every path is exercised
        p.data[...] = np.random.default_rng(p.numel()).normal(0, 0.7, p.shape)
    return D


def real_batch(dtype=np.float64) -> minigan.Tensor:
    return minigan.tensor(np.random.default_rng(7).uniform(-1, 1, (4, 2, 8, 8)).astype(dtype))


def test_r1_gradient_equals_finite_differences():
    """The gradient of the R1 penalty w.r.t. D's weights is a second derivative of D: check it
    against central differences of the penalty itself (float64)."""
    D = tiny_discriminator()
    real = real_batch()
    params = list(D.parameters())
    assert gradcheck(lambda *_: r1_penalty(D, real)[0], params, eps=1e-6, atol=1e-6, rtol=1e-4)


def torch_discriminator(D: Discriminator, x: torch.Tensor) -> torch.Tensor:
    """The same discriminator written with torch.nn.functional, reading D's weights."""
    p = {k: torch.from_numpy(np.array(v.numpy())).requires_grad_() for k, v in D.named_parameters()}

    def conv(name, h, gain):
        w = p[f"{name}.weight"]
        scale = gain / np.sqrt(w[0].numel())
        return TF.conv2d(h, w * scale, p[f"{name}.bias"], padding=w.shape[-1] // 2)

    def lrelu(h):
        return TF.leaky_relu(h, 0.2)

    s2 = np.sqrt(2)
    h = lrelu(conv("from_rgb", x, s2))
    for i in range(len(D.blocks)):
        h = lrelu(conv(f"blocks.{i}.conv0", h, s2))
        h = TF.avg_pool2d(lrelu(conv(f"blocks.{i}.conv1", h, s2)), 2)
    n, c, hh, ww = h.shape
    g = 2
    y = h.reshape(g, n // g, c, hh, ww)
    y = ((y - y.mean(0, keepdim=True)).square().mean(0) + 1e-8).sqrt().mean((1, 2, 3))
    h = torch.cat([h, y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(n, 1, hh, ww)], 1)
    h = lrelu(conv("conv", h, s2))
    fc_w = p["fc.weight"]
    h = lrelu(TF.linear(h.flatten(1), fc_w * (s2 / np.sqrt(fc_w.shape[1])), p["fc.bias"]))
    out_w = p["out.weight"]
    return TF.linear(h, out_w / np.sqrt(out_w.shape[1]), p["out.bias"]).reshape(-1), p


def test_r1_gradient_equals_pytorch_double_backward():
    D = tiny_discriminator()
    real = real_batch()
    penalty, logits = r1_penalty(D, real)
    grads = minigan.grad(penalty, list(D.parameters()), allow_unused=True)

    x = torch.from_numpy(real.numpy().copy()).requires_grad_()
    t_logits, p = torch_discriminator(D, x)
    (gx,) = torch.autograd.grad(t_logits.sum(), x, create_graph=True)
    t_penalty = gx.square().sum((1, 2, 3)).mean()
    t_grads = torch.autograd.grad(t_penalty, list(p.values()), materialize_grads=True)

    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(penalty.item(), t_penalty.item(), rtol=1e-10)
    for (name, param), ours, theirs in zip(D.named_parameters(), grads, t_grads):
        # None: the penalty does not depend on it (a bias feeding only piecewise-linear paths)
        ours = np.zeros(param.shape) if ours is None else ours.numpy()
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    assert sum(np.abs(t.numpy()).max() > 0 for t in t_grads) >= 8  # most weights do matter


def test_minibatch_stddev_groups():
    x = minigan.tensor(np.arange(4 * 2 * 1 * 1, dtype=np.float32).reshape(4, 2, 1, 1))
    y = minibatch_stddev(x, group_size=2).numpy()
    assert y.shape == (4, 3, 1, 1)
    # groups {0, 2} and {1, 3}: every feature differs by 4 within a group -> std 2
    np.testing.assert_allclose(y[:, 2, 0, 0], [2.0, 2.0, 2.0, 2.0], rtol=1e-6)
    assert minibatch_stddev(minigan.randn(3, 2, 2, 2), group_size=4).shape == (3, 3, 2, 2)


def test_lazy_r1_runs_every_k_steps():
    model = tiny_model(r1_every=2)
    real = minigan.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 3, 16, 16)).astype("f4"))
    keys = []
    for _ in range(3):
        keys.append("r1" in model.train_step(real))
        model.steps += 1
    assert keys == [True, False, True]
    assert "r1" not in tiny_model(r1_gamma=0.0).train_step(real)


# --------------------------------------------------------------------------- the contract
def test_check_model():
    check_model(StyleGANLite, image_shape=(3, 16, 16), config={**TINY, "r1_every": 1})


def test_check_model_grayscale_8x8():
    check_model(StyleGANLite, image_shape=(1, 8, 8), config={**TINY, "mbstd_group": 2})


# --------------------------------------------------------------------------- runs and commands
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "sg"
    data = open_dataset("shapes", resolution=16, limit=16)
    train(
        StyleGANLite,
        data,
        out=out,
        config=TINY,
        epochs=1,
        batch_size=8,
        progress=False,
        num_samples=4,
        log=lambda m: None,
    )
    return out


def commands() -> click.Group:
    group = click.Group()
    stylegan_lite.register_commands(group)
    return group


def test_commands_are_added():
    assert {"style-mix", "truncation-sweep", "interpolate"} <= set(commands().commands)


def test_style_mix_command(tiny_run, tmp_path):
    out = tmp_path / "mix.png"
    result = CliRunner().invoke(
        commands(),
        [
            "style-mix",
            str(tiny_run),
            "--rows",
            "1,2,3",
            "--cols",
            "4,5",
            "--styles",
            "0-3",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    image = minigan.images.read_image(out)
    assert image.shape[:2] == (4 * 18 + 2, 3 * 18 + 2)  # (1 + rows) x (1 + cols) tiles of 16
    meta = minigan.images.read_metadata(out)
    assert meta["styles"] == "0-3" and meta["model"]
    bad = CliRunner().invoke(commands(), ["style-mix", str(tiny_run), "--styles", "0-9"])
    assert bad.exit_code != 0 and "out of range" in bad.output


def test_truncation_sweep_command(tiny_run, tmp_path):
    out = tmp_path / "trunc.png"
    result = CliRunner().invoke(
        commands(),
        ["truncation-sweep", str(tiny_run), "--seeds", "0-2", "--psi", "1,0.5,0", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    grid = minigan.images.read_image(out)
    assert grid.shape[:2] == (3 * 18 + 2, 3 * 18 + 2)
    column = [grid[2 + r * 18 : 18 + r * 18, 2 + 2 * 18 : 18 + 2 * 18] for r in range(3)]
    assert all(np.array_equal(column[0], c) for c in column)  # psi = 0: the same image


def test_interpolate_command(tiny_run, tmp_path):
    import imageio.v3 as iio

    for space in ("z", "w"):
        out = tmp_path / f"walk-{space}.gif"
        result = CliRunner().invoke(
            commands(),
            [
                "interpolate",
                str(tiny_run),
                "--seeds",
                "1,2,3",
                "--frames",
                "6",
                "--space",
                space,
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        frames = iio.imread(out)
        assert frames.shape[0] == 6
    model, _ = minigan.train.load_model(tiny_run)
    walk = model.interpolation_frames([1, 2, 3], 6)
    np.testing.assert_allclose(
        walk[[0, 2, 4]], model.generate([1, 2, 3]), atol=1e-5
    )  # through the seeds


def test_commands_refuse_other_models(tmp_path):
    run = tmp_path / "dcgan"
    train(
        "dcgan",
        open_dataset("shapes", resolution=32, limit=4),
        out=run,
        config={"g_width": 4, "d_width": 4},
        epochs=1,
        batch_size=4,
        progress=False,
        num_samples=1,
        log=lambda m: None,
    )
    for argv in (
        ["style-mix", str(run)],
        ["truncation-sweep", str(run)],
        ["interpolate", str(run)],
    ):
        result = CliRunner().invoke(commands(), argv)
        assert result.exit_code != 0
        assert "not a stylegan-lite" in result.output
    missing = CliRunner().invoke(commands(), ["style-mix", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and "no such run" in missing.output


def test_same_seed_same_image_from_a_run(tiny_run):
    model, _ = minigan.train.load_model(tiny_run)
    a = model.generate([7, 3])
    b = model.generate([3])
    np.testing.assert_array_equal(a, model.generate([7, 3]))
    np.testing.assert_allclose(a[1], b[0], atol=1e-5)  # up to GEMM blocking, batch-independent


def test_a_stylegan_run_resumes_exactly(tmp_path):
    data = open_dataset("shapes", resolution=8, limit=16)
    config = {**TINY, "r1_every": 2}
    kw = dict(config=config, batch_size=4, progress=False, num_samples=1, log=lambda m: None)
    train(StyleGANLite, data, out=tmp_path / "full", epochs=2, **kw)
    train(StyleGANLite, data, out=tmp_path / "part", epochs=2, max_steps=3, **kw)
    train(StyleGANLite, data, out=tmp_path / "part", epochs=2, resume=True, **kw)

    def records(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(x).items() if k not in ("seconds", "images_per_s")}
            for x in lines
        ]

    assert records(tmp_path / "full") == records(tmp_path / "part")


# --------------------------------------------------------------------------- learning
def image_statistics(x: np.ndarray) -> np.ndarray:
    """Contrast, colourfulness and roughness of NCHW images in [-1, 1] (as in test_dcgan)."""
    contrast = x.std(axis=(1, 2, 3)).mean()
    colour = x.std(axis=1).mean()
    n, c, h, w = x.shape
    p = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    dx = np.abs(np.diff(p, axis=3)).mean(axis=(1, 2, 3))
    dy = np.abs(np.diff(p, axis=2)).mean(axis=(1, 2, 3))
    roughness = ((dx + dy) / (2 * p.std(axis=(1, 2, 3)) + 1e-6)).mean()
    return np.array([contrast, colour, roughness])


@pytest.mark.slow
def test_stylegan_lite_learns_shapes():
    """A short run on 16x16 shapes: D must separate real from generated images, and the
    samples' statistics must move toward the data's."""
    data = open_dataset("shapes", resolution=16, limit=60 * 16)
    real_stats = image_statistics(data[np.arange(256)][0])
    model = tiny_model((3, 16, 16), g_channels=16, d_channels=16, lr=0.003)
    seeds = range(128)
    before = image_statistics(model.generate(seeds))
    history = []
    for real, _ in DataLoader(data, 16, seed=0):
        history.append(model.train_step(real))
        model.steps += 1
    after = image_statistics(model.generate(seeds))
    history = read_metrics(history)
    assert len(history) == 60 and all(np.isfinite(m["loss_g"]) for m in history)
    separation = np.mean([m["d_real"] - m["d_fake"] for m in history[-10:]])
    assert separation > 0.1, f"D(x) - D(G(z)) = {separation:.3f} over the last 10 steps"
    # the total distance, not the mean of per-statistic ratios: the untrained skip generator's
    # roughness is already near the data's, so its ratio alone would swing on noise
    gap_ratio = np.abs(after - real_stats).sum() / np.abs(before - real_stats).sum()
    assert gap_ratio < 0.85, (
        f"contrast, colour, roughness: data {real_stats}, untrained {before}, trained {after}"
    )
