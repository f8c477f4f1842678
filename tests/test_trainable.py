"""The generalised model contract: a :class:`minigan.train.Trainable` that is not a GAN (one
network, one optimizer, its own metrics, latents shaped like its images) is checked by
``check_model`` against what it declares, and trained, resumed and sampled by the same run
machinery as the GANs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import minigan
import minigan.functional as F
from minigan import nn, optim
from minigan.testing import check_model
from minigan.train import GAN, Trainable, TrainableConfig, load_model, train


@dataclasses.dataclass
class Config(TrainableConfig):
    lr: float = dataclasses.field(default=0.05, metadata={"help": "SGD learning rate"})


class Denoiser(Trainable):
    """Learns to map noisy images to clean ones; samples by denoising the latent noise."""

    Config = Config
    progress_metrics = ("loss", "noise")
    plot_groups = {"denoising": ("loss",)}

    def __init__(self, config=None, image_shape=(1, 8, 8), device="cpu") -> None:
        super().__init__(config, image_shape, device)
        c = image_shape[0]
        self.net = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.Tanh(),
                                 nn.Conv2d(4, c, 3, padding=1), nn.Tanh()).to(device)  # fmt: skip
        self.opt = optim.SGD(self.net.parameters(), lr=self.config.lr)

    def networks(self):
        return {"generator": self.net}

    def optimizers(self):
        return {"generator": self.opt}

    def train_step(self, real):
        noise = minigan.randn(*real.shape, device=self.device) * 0.3
        loss = F.mse_loss(self.net(real + noise), real)
        self.update(self.opt, loss)
        return {"loss": loss.detach(), "noise": 0.3}


def test_a_non_gan_model_passes_check_model_against_what_it_declares():
    check_model(Denoiser, image_shape=(1, 8, 8))
    model = Denoiser()
    assert model.latent_shape == (1, 8, 8)  # no latent_dim: latents are image-shaped
    assert not issubclass(Denoiser, GAN) and issubclass(GAN, Trainable)
    assert Denoiser.required_networks == ("generator",)
    assert GAN.required_networks == ("generator", "discriminator")


def test_check_model_names_a_missing_declared_metric():
    class Forgetful(Denoiser):
        progress_metrics = ("loss", "psnr")

    with pytest.raises(AssertionError, match=r"Forgetful.*missing \['psnr'\]"):
        check_model(Forgetful, image_shape=(1, 8, 8))


def test_a_non_gan_model_trains_resumes_and_samples_in_a_run_folder(tmp_path):
    data = np.random.default_rng(0).uniform(-1, 1, (32, 1, 8, 8)).astype(np.float32)
    from minigan.data import Dataset

    ds = Dataset(data, name="noise")
    kw = dict(batch_size=8, out=tmp_path / "run", progress=False, num_samples=4)
    train(Denoiser, ds, epochs=1, **kw)
    result = train(Denoiser, ds, epochs=2, resume=True, **kw)
    assert result.steps == 8 and set(result.last_metrics) >= {"loss", "noise"}
    records = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert (tmp_path / "run/losses.png").exists()
    model, _ = load_model(tmp_path / "run", cls=Denoiser)  # not a registered plugin model
    assert isinstance(model, Denoiser)
    assert model.generate([0, 1]).shape == (2, 1, 8, 8)
