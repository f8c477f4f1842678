"""Tests of the DDPM example plugin, written with minigan.testing as a plugin author would."""

import math

import minigan_ddpm
import numpy as np
import pytest
from minigan_ddpm.diffusion import Schedule, q_sample, sample_loop
from minigan_ddpm.model import DDPM
from minigan_ddpm.unet import timestep_embedding

import minigan
import minigan.functional as F
import minigan.train
from minigan.testing import check_model, fake_cuda, fresh_registry, registered_plugin

TINY = {"base_channels": 8, "timesteps": 20, "sample_steps": 4, "heads": 1}


def test_model_follows_the_contract():
    check_model(DDPM, image_shape=(1, 16, 16), config=TINY)


def test_model_follows_the_contract_on_the_gpu_path():
    """No GPU needed: fake_cuda runs the "cuda" device path on a CPU stand-in for CuPy."""
    with fake_cuda():
        check_model(DDPM, image_shape=(1, 16, 16), config=TINY, device="cuda")


def test_model_follows_the_contract_with_the_ddpm_sampler():
    check_model(DDPM, image_shape=(1, 16, 16), config={**TINY, "sampler": "ddpm"})


def test_schedules_match_their_closed_forms():
    lin = Schedule.make("linear", 1000)
    assert lin.betas[0] == pytest.approx(1e-4) and lin.betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(lin.alpha_bar, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))
    cos = Schedule.make("cosine", 100)
    f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(cos.alpha_bar[49], f(50) / f(0), rtol=1e-12)
    assert np.all(np.diff(cos.alpha_bar) < 0) and cos.alpha_bar[-1] < 1e-3
    with pytest.raises(ValueError, match="schedule must be"):
        Schedule.make("sigmoid", 10)


def test_forward_process_statistics():
    s = Schedule.make("linear", 100)
    x0 = minigan.ones(20000, 1, 1, 1) * 0.5
    noise = minigan.randn(20000, 1, 1, 1)
    x = q_sample(s, x0, np.full(20000, 70), noise).numpy()
    ab = s.alpha_bar[70]
    assert abs(x.mean() - 0.5 * math.sqrt(ab)) < 0.02
    assert abs(x.std() - math.sqrt(1 - ab)) < 0.02


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_samplers_recover_the_image_given_the_true_noise(sampler, eta):
    """With an oracle that knows x0, every reverse step's x0 estimate is exact, so each
    sampler must land on x0 (the noise it adds is then cancelled by the oracle)."""
    s = Schedule.make("cosine", 50)
    rng = np.random.default_rng(0)
    x0 = minigan.tensor(rng.uniform(-0.9, 0.9, (3, 1, 4, 4)).astype(np.float32))

    def oracle(x, t):
        ab = s.alpha_bar[t[0]]
        return (x - x0 * math.sqrt(ab)) * (1 / math.sqrt(1 - ab))

    start = minigan.randn(3, 1, 4, 4)
    out = sample_loop(s, oracle, start, lambda k: minigan.randn(3, 1, 4, 4), sampler, 10, eta)
    np.testing.assert_allclose(out.numpy(), x0.numpy(), atol=1e-4)


def test_timestep_embedding_closed_form():
    e = timestep_embedding(np.array([0, 3]), 8)
    assert e.shape == (2, 8) and e.dtype == np.float32
    np.testing.assert_allclose(e[0], [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(e[1, 1], math.sin(3 * 10000 ** (-1 / 4)), rtol=1e-6)


def test_denoising_loss_decreases():
    """A fixed evaluation batch (images, timesteps, noise): its loss after 60 steps on a small
    shapes set is well below the untrained network's."""
    from minigan.data import open_dataset

    minigan.manual_seed(0)
    data = open_dataset("shapes", resolution=16, channels=1, limit=64)
    images = minigan.tensor(data.images)
    model = DDPM({**TINY, "lr": 2e-3}, image_shape=(1, 16, 16))
    rng = np.random.default_rng(1)
    t = rng.integers(0, 20, 32)
    noise = minigan.tensor(rng.standard_normal((32, 1, 16, 16)).astype(np.float32))
    x_t = q_sample(model.schedule, images[:32], t, noise)

    def eval_loss():
        with minigan.no_grad():
            return F.mse_loss(model.unet(x_t, t), noise).item()

    before = eval_loss()
    for step in range(60):
        model.train_step(images[(step % 4) * 16 : (step % 4 + 1) * 16])
    after = eval_loss()
    assert after < 0.6 * before, (before, after)


def test_plugin_registers_the_model():
    registry = fresh_registry()
    assert registry.add_plugin(minigan_ddpm, "ddpm")
    assert registry.get("model", "ddpm") is DDPM


def test_registered_model_trains_resumes_and_samples_through_the_public_api(tmp_path):
    from minigan.data import open_dataset
    from minigan.train import train

    with registered_plugin(minigan_ddpm, "ddpm-under-test"):
        data = open_dataset("shapes", resolution=16, channels=1, limit=64)
        kw = dict(batch_size=16, out=tmp_path / "run", config=TINY, progress=False,
                  num_samples=4)  # fmt: skip
        first = train("ddpm", data, epochs=1, **kw)
        resumed = train("ddpm", data, epochs=2, resume=True, **kw)
    assert first.steps == 4 and resumed.steps == 8
    assert np.isfinite(resumed.last_metrics["loss"])
    model, _ = minigan.train.load_model(tmp_path / "run")
    assert isinstance(model, DDPM)
    x = model.generate([0, 1])
    assert x.shape == (2, 1, 16, 16) and -1 <= x.min() and x.max() <= 1
    # a seed is its own image (up to float32 sums taken in another order, amplified by the
    # sampler: DDPM.sample_atol)
    np.testing.assert_allclose(model.generate([1]), x[1:], atol=DDPM.sample_atol)
