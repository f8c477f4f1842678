"""WGAN-GP (Gulrajani et al., 2017) with MLP networks: a GAN whose discriminator is a critic
with unbounded scores, not probabilities — the model contract fits it as it is.

- ``batches_per_step = 5``: the training loop hands ``train_step`` a list of 5 fresh real
  batches; the critic takes one update on each, then the generator one (the paper's
  ``n_critic = 5``). The data position counts all 5, so ``--resume`` stays exact.
- The metrics are the model's own: ``loss_d`` (critic loss with the penalty), ``loss_g``,
  ``wasserstein`` (the critic's estimate E[D(x)] - E[D(G(z))]) and ``gp`` — no ``d_real`` /
  ``d_fake`` (those names mean probabilities).
- ``progress_metrics`` picks what the progress bar and summary show; ``plot_groups`` draws
  ``wasserstein`` and ``gp`` together in losses.png (the losses get their own subplot).
"""

from __future__ import annotations

import dataclasses
import math

import minigan
from minigan import nn, optim
from minigan.train import GAN, GANConfig, frozen


@dataclasses.dataclass
class Config(GANConfig):
    latent_dim: int = dataclasses.field(default=32, metadata={"help": "size of the latent z"})
    hidden: int = dataclasses.field(default=128, metadata={"help": "width of the hidden layers"})
    lr: float = dataclasses.field(default=1e-4, metadata={"help": "Adam learning rate"})
    gp_weight: float = dataclasses.field(
        default=10.0, metadata={"help": "gradient penalty weight (lambda)"}
    )


def mlp(sizes: list[int], last: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers, *([last] if last else []))


class WGANGP(GAN):
    """WGAN-GP with MLP networks: a critic, a gradient penalty, 5 critic batches per step."""

    Config = Config
    train_defaults = {"epochs": 2, "batch_size": 64, "limit": 4096}
    batches_per_step = 5
    progress_metrics = ("wasserstein", "gp", "loss_g")
    plot_groups = {"critic": ("wasserstein", "gp")}

    def __init__(self, config=None, image_shape=(1, 28, 28), device="cpu") -> None:
        super().__init__(config, image_shape, device)
        c, pixels = self.config, math.prod(self.image_shape)
        self.generator = nn.Sequential(
            mlp([c.latent_dim, c.hidden, c.hidden, pixels], nn.Tanh()),
            nn.Unflatten(1, self.image_shape),
        ).to(device)
        self.critic = nn.Sequential(nn.Flatten(), mlp([pixels, c.hidden, c.hidden, 1])).to(device)
        self.opt_g = optim.Adam(self.generator.parameters(), lr=c.lr, betas=(0.5, 0.9))
        self.opt_d = optim.Adam(self.critic.parameters(), lr=c.lr, betas=(0.5, 0.9))

    def networks(self):
        return {"generator": self.generator, "discriminator": self.critic}

    def optimizers(self):
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def gradient_penalty(self, real, fake):
        """E[(||grad D(x_hat)||_2 - 1)^2] at random points between real and fake images."""
        eps = minigan.rand(real.shape[0], 1, 1, 1, device=self.device)
        x_hat = (eps * real + (1 - eps) * fake).detach()
        x_hat.requires_grad = True
        (g,) = minigan.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
        norms = ((g * g).reshape(g.shape[0], -1).sum(1) + 1e-12).sqrt()
        return ((norms - 1) ** 2).mean()

    def train_step(self, real):  # real: a list of batches_per_step batches
        for batch in real:  # the critic: one update per fresh batch
            z = minigan.randn(batch.shape[0], self.config.latent_dim, device=self.device)
            with minigan.no_grad():
                fake = self.generator(z)
            wasserstein = self.critic(batch).mean() - self.critic(fake).mean()
            gp = self.gradient_penalty(batch, fake)
            loss_d = -wasserstein + self.config.gp_weight * gp
            self.update(self.opt_d, loss_d)
        z = minigan.randn(real[-1].shape[0], self.config.latent_dim, device=self.device)
        with frozen(self.critic):  # the generator: raise the critic's score of its images
            loss_g = -self.critic(self.generator(z)).mean()
            self.update(self.opt_g, loss_g)
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "wasserstein": wasserstein.detach(),
            "gp": gp.detach(),
        }
