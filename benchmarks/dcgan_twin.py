"""An exact PyTorch twin of a minigan DCGAN training run, for the quality-parity benchmark
(``benchmarks/test_quality.py``).

:func:`train_twin` reproduces what ``minigan train dcgan`` does, in PyTorch: the model is
built by minigan under the run's seed (so the initial weights are minigan's), copied into
PyTorch modules with the same layers, and trained on the same batches (minigan's
``DataLoader`` with the run's seed) with the same latent draws (``minigan.randn`` from the
global generator, seeded as the trainer seeds it), the same losses, Adam settings and EMA.
Only the arithmetic differs — so the two runs' sample quality can be compared directly.

``python benchmarks/dcgan_twin.py --steps 1024 --out twin.npz [--g-width ...]`` trains the
twin alone (useful to explore a recipe quickly) and saves its sampling generator's weights
in minigan's key layout.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as tnn

import minigan

bce = tnn.functional.binary_cross_entropy_with_logits


def _layer(m: Any) -> tnn.Module:
    kind = type(m).__name__
    if kind == "Linear":
        return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    if kind in ("Conv2d", "ConvTranspose2d"):
        extra = (m.output_padding,) if kind == "ConvTranspose2d" else ()
        cls = getattr(tnn, kind)
        return cls(
            m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, *extra,
            bias=m.bias is not None,
        )  # fmt: skip
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(tnn, kind)(m.num_features, eps=m.eps, momentum=m.momentum)
    if kind == "LeakyReLU":
        return tnn.LeakyReLU(m.negative_slope)
    if kind == "Dropout":
        return tnn.Dropout(m.p)
    if kind == "Unflatten":
        return tnn.Unflatten(m.dim, m.unflattened_size)
    return getattr(tnn, kind)()


def torch_twin(net: minigan.nn.Module) -> tnn.Sequential:
    """The PyTorch ``Sequential`` with ``net.main``'s layers and weights."""
    twin = tnn.Sequential(*[_layer(m) for m in net.main])
    state = {
        k[len("main.") :]: torch.tensor(np.array(v.numpy())) for k, v in net.state_dict().items()
    }
    twin.load_state_dict(state)
    return twin


class TorchDCGAN:
    """PyTorch twin of a built :class:`minigan.plugins.dcgan.DCGAN` (weights copied)."""

    def __init__(self, model: Any) -> None:
        cfg = model.config
        self.cfg, self.spatial = cfg, model.generator.spatial_input
        self.image_shape = tuple(model.image_shape)
        self.latent_dim = cfg.latent_dim
        self.G, self.D = torch_twin(model.generator), torch_twin(model.discriminator)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        self.G_ema = copy.deepcopy(self.G) if cfg.ema > 0 else None

    def _g(self, net: tnn.Module, z: torch.Tensor) -> torch.Tensor:
        return net(z.reshape(len(z), -1, 1, 1) if self.spatial else z)

    def train_step(self, real: torch.Tensor, z: torch.Tensor) -> dict[str, float]:
        fake = self._g(self.G, z)
        real_logits, fake_logits = self.D(real).reshape(-1), self.D(fake.detach()).reshape(-1)
        target = torch.full_like(real_logits, 1.0 - self.cfg.label_smoothing)
        loss_d = bce(real_logits, target) + bce(fake_logits, torch.zeros_like(fake_logits))
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)
        logits = self.D(fake).reshape(-1)
        loss_g = bce(logits, torch.ones_like(logits))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            with torch.no_grad():
                for e, p in zip(self.G_ema.parameters(), self.G.parameters()):
                    e += (1.0 - self.cfg.ema) * (p - e)
                for e, b in zip(self.G_ema.buffers(), self.G.buffers()):
                    e.copy_(b)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    # the sampling interface minigan.metrics.measure uses
    def generate(self, seeds: Any, batch_size: int = 128) -> np.ndarray:
        net = (self.G_ema or self.G).eval()
        z = np.stack(
            [np.random.default_rng(s).standard_normal(self.latent_dim, dtype=np.float32)
             for s in seeds]
        )  # fmt: skip
        with torch.no_grad():
            out = self._g(net, torch.from_numpy(z)).numpy()
        net.train()
        return out


def train_twin(
    config: Mapping[str, Any] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    log_every: int = 0,
    callback: Any = None,
) -> tuple[TorchDCGAN, list[dict[str, float]], float]:
    """Train the twin as ``minigan train dcgan`` would (its defaults unless given); returns
    ``(twin, per-step losses, seconds)``."""
    from minigan.data import DataLoader, open_dataset
    from minigan.plugins.dcgan import DCGAN

    defaults = DCGAN.train_defaults
    batch = batch_size or defaults["batch_size"]
    dataset = open_dataset("shapes", limit=limit if limit is not None else defaults["limit"])
    minigan.manual_seed(seed)  # as the Trainer: the model's init draws come first
    model = DCGAN(DCGAN.make_config(dict(config or {})), dataset.shape)
    twin = TorchDCGAN(model)
    loader = DataLoader(dataset, batch, shuffle=True, seed=seed, drop_last=True)
    total = steps or (epochs or defaults["epochs"]) * len(loader)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    while len(history) < total:
        for real, _ in loader:
            z = minigan.randn(batch, twin.latent_dim).numpy()
            history.append(twin.train_step(torch.from_numpy(np.asarray(real.numpy())),
                                           torch.from_numpy(z)))  # fmt: skip
            if log_every and len(history) % log_every == 0:
                print(f"step {len(history)}: {history[-1]} ({time.perf_counter() - start:.0f} s)")
                if callback is not None:
                    callback(len(history), twin, time.perf_counter() - start)
            if len(history) >= total:
                break
    return twin, history, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=0, help="measure every N steps")
    parser.add_argument("--num", type=int, default=1024)
    parser.add_argument("--grid", help="save a 64-sample grid at each measurement (STEP: step)")
    for key in ("g_width", "d_width", "lr", "beta1", "ema", "label_smoothing"):
        parser.add_argument("--" + key.replace("_", "-"), type=float)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = {k: v for k in ("g_width", "d_width", "lr", "beta1", "ema", "label_smoothing")
              if (v := getattr(args, k)) is not None}  # fmt: skip
    for k in ("g_width", "d_width"):
        if k in config:
            config[k] = int(config[k])
    from minigan.metrics import measure

    def report(step: int, twin: TorchDCGAN, seconds: float) -> None:
        r = measure(twin, "shapes", num=args.num, progress=False, kid_subsets=10)
        if args.grid:
            from minigan import images as imaging

            grid = imaging.make_grid(twin.generate(range(64)))
            imaging.save_image(args.grid.replace("STEP", f"{step:06d}"), grid, {"step": step})
        print(
            f"{config} step {step} batch {args.batch_size}: {seconds:.0f} s | "
            f"fid {r['fid']:.2f} conf {r['confident']:.3f} prec {r['precision']:.2f} "
            f"rec {r['recall']:.2f} border {r['border']:.3f} classes "
            + " ".join(f"{v:.2f}" for v in r["class_fractions"].values()),
            flush=True,
        )

    train_twin(config, args.steps, None, args.batch_size, args.limit, args.seed,
               log_every=args.eval_every or args.steps, callback=report)  # fmt: skip


if __name__ == "__main__":
    main()
