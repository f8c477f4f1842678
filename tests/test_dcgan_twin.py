"""The exact PyTorch twin of ``minigan train dcgan`` (benchmarks/dcgan_twin.py, used by the
quality-parity benchmark) against minigan itself: a few steps of a small run of each, for the
class-conditional default recipe (hinge loss, projection D with spectral norm, DiffAugment,
EMA) and the unconditional one (BCE, BatchNorm D). The per-step losses must agree to float32
rounding, and so must every weight and buffer afterwards (G, D with its spectral-norm u/v and
class embedding, the EMA generator) and the sampled images (class ``seed % K`` one-hot).

Measured minigan-vs-twin differences on this run (batch 8, width 4): at most 7e-7 relative in
the losses over the first 8 steps, both recipes; after 5 steps at most 1.2e-7 in D's weights,
u/v and embedding and in the EMA generator, 2e-9 in the samples, 4e-6 in one of G's weights
for the default recipe and 2.4e-5 unconditionally (see the comment in the test). (Longer,
the unconditional BCE run is chaotic: a float64 twin leaves the float32 twin by 1e-2 within
30 steps, so only a few steps are compared.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import minigan
from minigan import diffaugment as da
from minigan.run import load_model
from minigan.train import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the twin lives with the benchmarks
import dcgan_twin  # noqa: E402

STEPS = 5
SMALL = {"g_width": 4, "d_width": 4}
LIMIT, BATCH = 64, 8


def _train_both(tmp_path: Path, extra: dict) -> tuple[list[dict], list[dict], object, object]:
    config = {**SMALL, **extra}
    train(
        "dcgan", out=tmp_path / "run", max_steps=STEPS, config=config,
        data_options={"limit": LIMIT}, batch_size=BATCH, progress=False, log_every=1,
    )  # fmt: skip
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ours = [json.loads(line) for line in lines]
    model = load_model(tmp_path / "run")[0]
    twin, history, _ = dcgan_twin.train_twin(config, steps=STEPS, batch_size=BATCH, limit=LIMIT)
    return ours, history, model, twin


def _assert_same_state(
    ours: minigan.nn.Module, theirs: torch.nn.Module, what: str, atol: float = 1e-6
) -> None:
    mine = {k: np.asarray(v.numpy()) for k, v in ours.state_dict().items()}
    other = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert sorted(mine) == sorted(other), what
    for key, value in mine.items():
        np.testing.assert_allclose(other[key], value, rtol=1e-4, atol=atol, err_msg=f"{what} {key}")


@pytest.mark.parametrize(
    "extra, loss, classes",
    [
        ({}, "hinge", 6),
        ({"mask": "conv"}, "hinge", 6),
        ({"layered": False}, "hinge", 6),
        ({"num_classes": 0}, "bce", 0),
    ],
    ids=[
        "conditional-default",
        "conditional-conv-mask",
        "conditional-plain-output",
        "unconditional",
    ],  # fmt: skip
)
def test_twin_follows_minigan(tmp_path, extra, loss, classes):
    ours, history, model, twin = _train_both(tmp_path, extra)
    # the recipe the twin was built with is the one minigan trained with
    assert model.config.loss == twin.cfg.loss == loss
    assert model.num_classes == twin.num_classes == classes
    assert [r["step"] for r in ours] == list(range(1, STEPS + 1)) and len(history) == STEPS
    for step, (a, b) in enumerate(zip(ours, history), 1):
        for key in ("loss_d", "loss_g", "d_real", "d_fake"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (step, key)

    # G's weights: Adam turns a rounding difference in a gradient that is a sum of cancelling
    # terms into a larger one in the update (at step 1 with beta1 = 0 the update is
    # lr * g / |g|): measured 4e-6 after 5 steps (1% of the 5e-4 step) for the default and
    # 2.4e-5 in one of 99,840 weights (2.4% of the 1e-3 step) unconditional, so 5% of a step
    # here; a wrong gradient moves weights by whole steps
    _assert_same_state(model.generator, twin.G, "G", atol=0.05 * model.config.lr)
    _assert_same_state(model.discriminator, twin.D, "D")
    assert (model.generator_ema is None) == (twin.G_ema is None)
    if twin.G_ema is not None:
        _assert_same_state(model.generator_ema, twin.G_ema, "G_ema")

    seeds = [0, 1, 5, 6, 11]  # classes 0, 1, 5, 0, 5 for a conditional model
    np.testing.assert_allclose(
        twin.generate(seeds, batch_size=2), model.generate(seeds), rtol=1e-5, atol=1e-6
    )
    if classes:  # a chosen class, as minigan.metrics.class_fidelity asks for it
        z = model.latents(seeds)
        ours_2, theirs_2 = model.sample(z, label=2), twin.sample(torch.tensor(z.numpy()), label=2)
        np.testing.assert_allclose(theirs_2.numpy(), ours_2.numpy(), rtol=1e-5, atol=1e-6)
        moved = np.abs(ours_2.numpy() - model.sample(z).numpy()).max()  # seeds 0, 1, ... moved
        assert moved > 20 * np.abs(theirs_2.numpy() - ours_2.numpy()).max(), moved


def test_conditional_default_recipe_is_what_the_twin_runs():
    """The twin builds the model as the Trainer does: labelled shapes give the conditional
    32x32 recipe, with spectral norm (torch's u/v = minigan's) and a projection head."""
    dataset = minigan.data.open_dataset("shapes", limit=LIMIT)
    model, twin = dcgan_twin.build_twin(SMALL, dataset)
    cfg = model.config
    assert (cfg.num_classes, cfg.loss, cfg.spectral_norm) == (6, "hinge", True)
    # the implicit mask's augmentation: translation by at most 1/16 of the side, no color
    assert twin.policy == ("translation",) and twin.D.embed is not None
    assert cfg.translation == twin.cfg.translation == 1 / 16
    assert cfg.colours == "mlp" and isinstance(twin.G.colours, torch.nn.Sequential)
    assert cfg.class_loss == twin.cfg.class_loss == 1.0
    assert cfg.layered and twin.G.colours is not None  # shapes are two-colour images
    assert cfg.mask == "implicit" and isinstance(twin.G.main, dcgan_twin.TorchImplicitMask)
    assert twin.opt_d.param_groups[0]["lr"] == cfg.lr_d == 2 * cfg.lr
    assert twin.opt_g.param_groups[0]["betas"] == (cfg.beta1, cfg.beta2) == (0.0, 0.99)
    assert "main.0.weight_u" in twin.D.state_dict()


def test_twin_augmentation_matches_minigan(rng):
    """The twin's PyTorch DiffAugment replays minigan.diffaugment's draws (forward and
    gradient)."""
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    draws = da.draw("color,translation,cutout", x.shape, rng)
    mx = minigan.tensor(x, requires_grad=True)
    (da.apply(mx, draws) * minigan.tensor(g)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = dcgan_twin.augment(tx, draws)
    (ty * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(ty.detach().numpy(), da.apply(minigan.tensor(x), draws).numpy(),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(tx.grad.numpy(), mx.grad.numpy(), rtol=1e-5, atol=1e-5)
