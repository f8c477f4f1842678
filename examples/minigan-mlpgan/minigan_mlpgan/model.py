"""MLPGAN: the original fully connected GAN (Goodfellow et al., 2014) — small enough to read
in one go, written only with minigan's public API."""

from __future__ import annotations

import dataclasses
import math

import minigan
from minigan import nn, optim
from minigan.train import GAN, GANConfig, discriminator_loss, frozen, generator_loss, mean_sigmoid


@dataclasses.dataclass
class Config(GANConfig):
    latent_dim: int = dataclasses.field(default=64, metadata={"help": "size of the latent z"})
    hidden: int = dataclasses.field(default=256, metadata={"help": "width of the hidden layers"})
    lr: float = dataclasses.field(default=2e-4, metadata={"help": "Adam learning rate"})


class MLPGAN(GAN):
    """A fully connected GAN: z → 2 hidden layers → image, image → 2 hidden layers → logit."""

    Config = Config
    train_defaults = {"epochs": 2, "batch_size": 64, "limit": 4096}

    def __init__(self, config=None, image_shape=(1, 28, 28), device="cpu") -> None:
        super().__init__(config, image_shape, device)
        c, h = self.config, self.config.hidden
        pixels = math.prod(self.image_shape)
        self.generator = nn.Sequential(
            nn.Linear(c.latent_dim, h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, pixels),
            nn.Tanh(),
            nn.Unflatten(1, self.image_shape),
        ).to(device)
        self.discriminator = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pixels, h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, h),
            nn.LeakyReLU(0.2),
            nn.Linear(h, 1),
        ).to(device)
        self.opt_g = optim.Adam(self.generator.parameters(), lr=c.lr, betas=(0.5, 0.999))
        self.opt_d = optim.Adam(self.discriminator.parameters(), lr=c.lr, betas=(0.5, 0.999))

    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def train_step(self, real):
        z = minigan.randn(real.shape[0], self.config.latent_dim, device=self.device)
        fake = self.generator(z)

        # discriminator: real → 1, fake → 0 (the fake is detached: no generator gradients)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()

        # generator: make D call the fake real (D's weights frozen for this pass)
        with frozen(self.discriminator):
            loss_g = generator_loss(self.discriminator(fake))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": mean_sigmoid(real_logits),
            "d_fake": mean_sigmoid(fake_logits),
        }
