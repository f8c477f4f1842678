"""One StyleGAN-lite training step at 32×32, batch 32 (default config): minigan against PyTorch.

Run with ``pytest benchmarks/test_stylegan_lite.py --benchmark``. Two rows: a plain step
(D update with the logistic loss, G update, EMA) and a lazy-R1 step (the same plus the R1
penalty through a double backward of D). The PyTorch side is the same step written by hand
with ``torch.nn.functional`` on parameters copied from the minigan model (same architecture,
equalised learning rate, modulated convolutions, skip toRGBs, style mixing, noise,
minibatch stddev, Adam (0, 0.99), EMA).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from memory import Memory

import minigan
from minigan.plugins.stylegan_lite import StyleGANLite, StyleGANLiteConfig

BATCH, RES = 32, 32
S2 = math.sqrt(2.0)


class TorchStyleGANLite:
    """StyleGAN-lite's networks and train step in plain PyTorch, weights from ``model``."""

    def __init__(self, model: StyleGANLite) -> None:
        self.cfg = cfg = model.config
        self.num_ws = model.num_ws
        self.n_blocks = len(model.discriminator.blocks)
        self.G = {
            k: torch.tensor(np.array(v.numpy()), requires_grad=True)
            for k, v in model.generator.named_parameters()
        }
        self.D = {
            k: torch.tensor(np.array(v.numpy()), requires_grad=True)
            for k, v in model.discriminator.named_parameters()
        }
        self.G_ema = {k: v.detach().clone() for k, v in self.G.items()}
        self.noise_const = {
            k: torch.tensor(np.array(v.numpy()))
            for k, v in model.generator.named_buffers()
            if "noise_const" in k
        }
        self.w_avg = torch.zeros(cfg.w_dim)
        self.opt_g = torch.optim.Adam(self.G.values(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        c = cfg.r1_every / (cfg.r1_every + 1)
        self.opt_d = torch.optim.Adam(
            self.D.values(), lr=cfg.lr * c, betas=(cfg.beta1**c, cfg.beta2**c)
        )
        self.steps = 0

    @staticmethod
    def linear(p, name, x, gain=1.0, lr_mul=1.0):
        w = p[f"{name}.weight"]
        return TF.linear(x, w * (gain / math.sqrt(w.shape[1]) * lr_mul), p[f"{name}.bias"] * lr_mul)

    @staticmethod
    def conv(p, name, x, gain=1.0):
        w = p[f"{name}.weight"]
        return TF.conv2d(
            x, w * (gain / math.sqrt(w[0].numel())), p[f"{name}.bias"], padding=w.shape[-1] // 2
        )

    def mapping(self, p, z):
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.cfg.mapping_layers):
            x = TF.leaky_relu(
                self.linear(p, f"mapping.layers.{i}", x, S2, self.cfg.mapping_lr_mul), 0.2
            )
        return x

    def modconv(self, p, name, x, w, demodulate=True):
        weight = p[f"{name}.weight"]
        weight = weight * (1 / math.sqrt(weight[0].numel()))
        s = self.linear(p, f"{name}.affine", w)
        x, pad = x * s[:, :, None, None], weight.shape[-1] // 2
        if pad and self.cfg.padding != "zeros":
            x, pad = TF.pad(x, (pad,) * 4, mode=self.cfg.padding), 0
        y = TF.conv2d(x, weight, padding=pad)
        if demodulate:
            d = (s.square() @ weight.square().sum((2, 3)).t() + 1e-8).rsqrt()
            y = y * d[:, :, None, None]
        return y

    def synthesis(self, p, ws):
        n = ws.shape[0]
        x = p["synthesis.const"].expand(n, -1, -1, -1)
        img = None
        for i in range(self.num_ws - 1):
            name = f"synthesis.layers.{i}"
            if i % 2 == 1:
                x = TF.interpolate(x, scale_factor=2, mode="nearest")
            x = self.modconv(p, f"{name}.conv", x, ws[:, i])
            if self.cfg.noise:
                noise = torch.randn(n, 1, x.shape[2], x.shape[3])
                x = x + noise * p[f"{name}.noise.weight"].reshape(1, -1, 1, 1)
            x = TF.leaky_relu(x + p[f"{name}.bias"].reshape(1, -1, 1, 1), 0.2) * S2
            if i % 2 == 0:
                rgb_name = f"synthesis.to_rgbs.{i // 2}"
                rgb = self.modconv(p, f"{rgb_name}.conv", x, ws[:, i + 1], demodulate=False)
                rgb = rgb + p[f"{rgb_name}.bias"].reshape(1, -1, 1, 1)
                if img is not None:
                    img = TF.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
                img = rgb if img is None else img + rgb
        return img

    def discriminator(self, x):
        p = self.D
        h = TF.leaky_relu(self.conv(p, "from_rgb", x, S2), 0.2)
        for i in range(self.n_blocks):
            h = TF.leaky_relu(self.conv(p, f"blocks.{i}.conv0", h, S2), 0.2)
            h = TF.avg_pool2d(TF.leaky_relu(self.conv(p, f"blocks.{i}.conv1", h, S2), 0.2), 2)
        n, c, hh, ww = h.shape
        g = min(self.cfg.mbstd_group, n)
        y = h.reshape(g, n // g, c, hh, ww)
        y = ((y - y.mean(0, keepdim=True)).square().mean(0) + 1e-8).sqrt().mean((1, 2, 3))
        y = y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(n, 1, hh, ww)
        h = TF.leaky_relu(self.conv(p, "conv", torch.cat([h, y], 1), S2), 0.2)
        h = TF.leaky_relu(self.linear(p, "fc", h.flatten(1), S2), 0.2)
        return self.linear(p, "out", h).reshape(-1)

    def train_step(self, real: torch.Tensor) -> None:
        cfg, n = self.cfg, real.shape[0]
        w = self.mapping(self.G, torch.randn(n, cfg.latent_dim))
        with torch.no_grad():
            self.w_avg.lerp_(w.mean(0), 1 - cfg.w_avg_beta)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if torch.rand(()) < cfg.style_mixing_prob:
            cutoff = int(torch.randint(1, self.num_ws, ()))
            w2 = self.mapping(self.G, torch.randn(n, cfg.latent_dim))[:, None]
            ws = torch.cat([ws[:, :cutoff], w2.expand(-1, self.num_ws - cutoff, -1)], 1)
        fake = self.synthesis(self.G, ws)
        do_r1 = self.steps % cfg.r1_every == 0
        x = real.detach().requires_grad_(do_r1)
        real_logits = self.discriminator(x)
        fake_logits = self.discriminator(fake.detach())
        loss_d = TF.softplus(-real_logits).mean() + TF.softplus(fake_logits).mean()
        if do_r1:
            (g,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            loss_d = loss_d + g.square().sum((1, 2, 3)).mean() * (cfg.r1_gamma / 2 * cfg.r1_every)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        for v in self.D.values():
            v.requires_grad_(False)
        loss_g = TF.softplus(-self.discriminator(fake)).mean()
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        for v in self.D.values():
            v.requires_grad_(True)
        with torch.no_grad():
            decay = min(cfg.ema, (1 + self.steps) / (10 + self.steps))
            for k, v in self.G.items():
                self.G_ema[k].lerp_(v, 1 - decay)


def steps(r1: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """The minigan and the PyTorch step (with the R1 penalty when ``r1``), same weights
    (also what benchmarks/memory.py measures)."""
    minigan.manual_seed(0)
    torch.manual_seed(0)
    model = StyleGANLite(None, image_shape=(3, RES, RES))
    theirs = TorchStyleGANLite(model)
    data = np.random.default_rng(0).uniform(-1, 1, (BATCH, 3, RES, RES)).astype(np.float32)
    real, real_t = minigan.tensor(data), torch.from_numpy(data)

    def ours_step() -> None:
        model.steps = 0 if r1 else 1  # step 0 of every r1_every has the R1 penalty
        model.train_step(real)

    def torch_step() -> None:
        theirs.steps = 0 if r1 else 1
        theirs.train_step(real_t)

    return ours_step, torch_step


@pytest.mark.parametrize("r1", [False, True], ids=["plain", "lazy-R1"])
def test_stylegan_lite_train_step_32x32(bench, r1):
    ours, theirs = steps(r1)
    k = StyleGANLiteConfig().r1_every
    bench.compare(
        f"stylegan-lite step 32x32 b{BATCH} {f'R1 (every {k})' if r1 else 'no R1'}",
        ours,
        theirs,
        work=BATCH,
        unit="img/s",
        memory=Memory("test_stylegan_lite", "steps", (r1,)),
    )
