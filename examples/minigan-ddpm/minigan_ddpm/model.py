"""DDPM: a denoising diffusion model trained and sampled by minigan's run machinery.

It is a :class:`minigan.train.Trainable` — not a GAN: one network (the noise-predicting
U-Net, ``"generator"``, with its EMA copy ``"generator_ema"``), one optimizer, one metric
(``loss``, the denoising MSE). Its latents are the starting noise x_T (image-shaped), so
``minigan sample RUN --seeds 0-63`` gives each seed its own image, and the fresh noise a
stochastic sampler needs at each step is drawn from a generator seeded by that latent: a
seed's image never depends on the other seeds in the batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal

import numpy as np

import minigan
import minigan.functional as F
from minigan import optim
from minigan.random import generator
from minigan.tensor import Tensor
from minigan.train import Trainable, TrainableConfig, copy_module, ema_update

from .diffusion import Schedule, q_sample, sample_loop
from .unet import UNet


def _f(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config(TrainableConfig):
    timesteps: int = _f(500, "diffusion steps T")
    schedule: Literal["linear", "cosine"] = _f("cosine", "noise schedule of the betas")
    base_channels: int = _f(32, "U-Net width at full resolution")
    channel_mult: tuple[int, int, int] = _f((1, 2, 2), "width multipliers of the 3 levels")
    attn_resolution: int = _f(8, "feature-map width that gets self-attention")
    heads: int = _f(2, "attention heads")
    dropout: float = _f(0.0, "dropout in the residual blocks")
    lr: float = _f(5e-4, "Adam learning rate")
    ema_decay: float = _f(0.995, "decay of the sampling network's moving average")
    sampler: Literal["ddim", "ddpm"] = _f("ddim", "sampler used by 'minigan sample'")
    sample_steps: int = _f(50, "DDIM steps (ddpm always takes all T)")
    eta: float = _f(0.0, "DDIM noise: 0 deterministic, 1 like DDPM")


class DDPM(Trainable):
    """A small DDPM (epsilon prediction, U-Net with GroupNorm, SiLU and attention at 8x8)
    with DDPM and DDIM sampling."""

    Config = Config
    train_defaults = {"epochs": 30, "batch_size": 32, "limit": 4096}
    required_networks = ("generator",)
    progress_metrics = ("loss",)
    # the first reverse step divides the network's output by sqrt(ᾱ_T) (~1e-3 for the
    # cosine schedule): float32 differences of the batch's sums grow by that factor
    sample_atol = 1e-3

    def __init__(self, config=None, image_shape=(1, 16, 16), device="cpu") -> None:
        super().__init__(config, image_shape, device)
        c = self.config
        channels, height, width = self.image_shape
        levels = len(c.channel_mult)
        if height != width or height % 2 ** (levels - 1):
            raise ValueError(
                f"ddpm: images must be square with a side divisible by {2 ** (levels - 1)} "
                f"({levels} levels), got {height}x{width}"
            )
        self.schedule = Schedule.make(c.schedule, c.timesteps)
        self.unet = UNet(
            channels, c.base_channels, c.channel_mult, c.attn_resolution, height, c.heads,
            c.dropout,
        ).to(device)
        self.unet_ema = copy_module(self.unet)
        self.opt = optim.Adam(self.unet.parameters(), lr=c.lr)

    def networks(self):
        return {"generator": self.unet, "generator_ema": self.unet_ema}

    def optimizers(self):
        return {"generator": self.opt}

    def train_step(self, real: Tensor) -> dict[str, Tensor]:
        """One denoising step: noise each image to a random timestep, predict the noise."""
        n = real.shape[0]
        t = generator().integers(0, self.schedule.timesteps, size=n)
        noise = minigan.randn(*real.shape, device=self.device)
        x_t = q_sample(self.schedule, real, t, noise)
        loss = F.mse_loss(self.unet(x_t, t), noise)
        self.update(self.opt, loss)
        ema_update(self.unet_ema, self.unet, self.config.ema_decay)
        return {"loss": loss.detach()}

    def sample(
        self,
        z: Tensor,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
    ) -> Tensor:
        """Images in [-1, 1] from the starting noise ``z`` (N, C, H, W), with the EMA
        network in eval mode and no gradients; options default to the config's."""
        c = self.config
        net = self.sampling_generator()
        rngs = [np.random.default_rng(_seed_of(z_i)) for z_i in np.asarray(z.numpy())]

        def noise(_k: int) -> Tensor:
            draw = np.stack([r.standard_normal(self.image_shape, dtype=np.float32) for r in rngs])
            return minigan.tensor(draw, device=self.device)

        was_training = net.training
        net.eval()
        try:
            with minigan.no_grad():
                x = sample_loop(
                    self.schedule, net, z, noise, sampler or c.sampler,
                    c.sample_steps if steps is None else steps, c.eta if eta is None else eta,
                )
        finally:
            net.train(was_training)
        return x.clip(-1.0, 1.0)


def _seed_of(latent: np.ndarray) -> int:
    """A seed derived from one latent's bytes (the same latent, the same noise stream)."""
    return int.from_bytes(hashlib.blake2b(latent.tobytes(), digest_size=8).digest(), "little")
