"""An exact PyTorch twin of a minigan DCGAN training run, for the quality-parity benchmark
(``benchmarks/test_quality.py``).

:func:`train_twin` reproduces what ``minigan train dcgan`` does on the ``shapes`` data, in
PyTorch. The model is built by minigan as the Trainer builds it (``manual_seed(seed)``, the
config's ``num_classes`` filled from the data's labels and ``layered`` from
``DCGAN.config_for_data``, then ``DCGAN(config, shape)``), so
the initial weights are minigan's, and copied into PyTorch modules with the same layers and
state keys: spectral norm (``torch.nn.utils.spectral_norm``, minigan's u/v buffers loaded),
the projection discriminator's class embedding, the layered output's colours head,
BatchNorm statistics, the EMA generator.
Each step takes minigan's batch (its ``DataLoader`` with the run's seed, labels included)
and draws from minigan's global generator exactly as ``DCGAN.train_step`` does — z, the fake
images' classes, then the DiffAugment draws for D(real), D(fake) and G's D(fake), replayed
by a PyTorch port of :mod:`minigan.diffaugment` — then applies the same loss (hinge or BCE),
Adam updates (``lr`` / ``lr_d``, ``(beta1, beta2)``) and EMA. ``generate(seeds)`` samples as
``DCGAN.generate`` does (class ``seed % num_classes`` one-hot for a conditional model), and
``sample(z, label=k)`` as ``DCGAN.sample`` (for ``minigan.metrics``' class fidelity). Only
the arithmetic differs — so the two runs' sample quality can be compared directly.

With the defaults (``train_twin()``) that is the class-conditional 32×32 recipe (hinge loss,
projection D with spectral norm and a class loss, DiffAugment, Adam (0, 0.99), EMA 0.995,
the layered output, as ``shapes`` gets it);
``train_twin({"num_classes": 0})`` twins an unconditional run (BCE, BatchNorm D), as
``minigan train dcgan`` trains on unlabelled data. tests/test_dcgan_twin.py checks both
against minigan (losses, weights, samples). The 28×28 layout's Dropout draws from torch's
generator, not minigan's: that layout is not twinned (the shapes data is 32×32).

``python benchmarks/dcgan_twin.py --steps 1024 --eval-every 256 [--num-classes 0]
[--loss bce] [--spectral-norm off] [--diffaugment ""] [--lr-d ...] [--out g.npz]`` trains the
twin alone (useful to explore a recipe quickly), measures it with ``minigan.metrics.measure``
every ``--eval-every`` steps and at the end, and with ``--out`` saves its sampling
generator's weights in minigan's key layout.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as tnn

import minigan
from minigan.diffaugment import AugmentDraws, draw, parse_policy
from minigan.plugins.dcgan.implicit import ImplicitMask
from minigan.plugins.dcgan.model import ColourMLP

bce = tnn.functional.binary_cross_entropy_with_logits
relu = tnn.functional.relu


# =========================================================================== DiffAugment
# minigan.diffaugment's three ops in PyTorch, replaying minigan's draws (an AugmentDraws):
# the paper's DiffAugment_pytorch.py (rand_brightness ... rand_cutout) with each torch.rand /
# torch.randint replaced by the corresponding AugmentDraws field, line for line.
# tests/test_diffaugment.py checks minigan.diffaugment against these functions, and
# dcgan_recipes.py applies them with draws from its own torch generator.
def _column(values: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    dtype = np.float64 if x.dtype == torch.float64 else np.float32
    return torch.from_numpy(values.astype(dtype)).view(-1, 1, 1, 1)


def augment_color(x: torch.Tensor, d: AugmentDraws) -> torch.Tensor:
    """Brightness, saturation and contrast with the draws ``d.brightness`` ... ``d.contrast``."""
    assert d.brightness is not None and d.saturation is not None and d.contrast is not None
    x = x + (_column(d.brightness, x) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (_column(d.saturation, x) * 2) + mean
    mean = x.mean([1, 2, 3], keepdim=True)
    return (x - mean) * (_column(d.contrast, x) + 0.5) + mean


def augment_translation(x: torch.Tensor, d: AugmentDraws) -> torch.Tensor:
    """Shift sample i by ``(d.shift_y[i], d.shift_x[i])`` pixels, zero fill."""
    assert d.shift_y is not None and d.shift_x is not None
    n, _, h, w = x.shape
    ty = torch.from_numpy(d.shift_y).view(n, 1, 1)
    tx = torch.from_numpy(d.shift_x).view(n, 1, 1)
    gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = tnn.functional.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[gb, gy, gx].permute(0, 3, 1, 2)


def augment_cutout(x: torch.Tensor, d: AugmentDraws, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of half the size centred at ``(d.cutout_y[i], d.cutout_x[i])``."""
    assert d.cutout_y is not None and d.cutout_x is not None
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.from_numpy(d.cutout_y).view(n, 1, 1)
    ox = torch.from_numpy(d.cutout_x).view(n, 1, 1)
    gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(ch), torch.arange(cw), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


def augment(x: torch.Tensor, d: AugmentDraws | None) -> torch.Tensor:
    """``minigan.diffaugment.apply`` in PyTorch: color, translation, cutout, each where drawn."""
    if d is None:
        return x
    if d.brightness is not None:
        x = augment_color(x, d)
    if d.shift_y is not None:
        x = augment_translation(x, d)
    if d.cutout_y is not None:
        x = augment_cutout(x, d)
    return x


# =========================================================================== networks
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


def _state(net: minigan.nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(np.array(v.numpy())) for k, v in net.state_dict().items()}


class TorchImplicitMask(tnn.Module):
    """minigan's ``dcgan.implicit.ImplicitMask``: the trunk gives each sample's pose and the
    weights of its two-layer ReLU network of the pixel coordinates."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.trunk = tnn.Sequential(*[_layer(m) for m in net.trunk])
        self.register_buffer("grid", torch.tensor(np.array(net.grid.numpy())), persistent=False)
        self.shapes, self.resolution = dict(net.shapes), net.resolution

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = len(z)
        flat, w, i = self.trunk(z.reshape(n, -1)), {}, 0
        for name, shape in self.shapes.items():
            w[name] = flat[:, i : i + int(np.prod(shape))].reshape(n, *shape)
            i += int(np.prod(shape))
        turn = w["turn"] / w["turn"].norm(dim=1, keepdim=True).clamp(min=1e-3)
        cos, sin = turn[:, :1], turn[:, 1:]
        dx, dy = self.grid[0:1] - w["shift"][:, :1], self.grid[1:2] - w["shift"][:, 1:]
        scale = torch.exp(-w["log_scale"])
        x, y = (cos * dx + sin * dy) * scale, (cos * dy - sin * dx) * scale
        f = torch.stack([x, y, x * x, y * y, x * y, torch.ones_like(x)], dim=2)
        h = relu(f @ w["A1"].transpose(1, 2))
        h = relu(h @ w["A2"].transpose(1, 2) + w["b2"].reshape(n, 1, -1))
        logit = (h @ w["v"].reshape(n, -1, 1)).reshape(n, -1) + w["c"]
        side = self.resolution
        return (logit * (side / 2)).reshape(n, 1, side, side)


class TorchGenerator(tnn.Module):
    """minigan's ``dcgan.Generator``: ``main`` on z (reshaped to (N, z, 1, 1) for 4×4 layouts);
    with ``colours`` (the layered output) ``bg + (fg - bg) * sigmoid(main(z))``, the two
    colours the tanh of ``colours(z)``."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.main: tnn.Module = (
            TorchImplicitMask(net.main)
            if isinstance(net.main, ImplicitMask)
            else tnn.Sequential(*[_layer(m) for m in net.main])
        )
        self.spatial = bool(net.spatial_input)
        self.colours: tnn.Module | None = None
        if isinstance(net.colours, ColourMLP):  # Linear, LeakyReLU, Linear
            self.colours = tnn.Sequential(*[_layer(m) for m in net.colours])
        elif net.colours is not None:
            self.colours = _layer(net.colours)
        self.load_state_dict(_state(net))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.main(z.reshape(len(z), -1, 1, 1) if self.spatial else z)
        if self.colours is None:
            return out
        fg, bg = torch.tanh(self.colours(z.reshape(len(z), -1)))[:, :, None, None].chunk(2, 1)
        return bg + (fg - bg) * torch.sigmoid(out)


class TorchDiscriminator(tnn.Module):
    """minigan's ``dcgan.Discriminator``: ``main`` to one logit per image; with ``embed``
    (a conditional model) the projection ``logit = head(h) + <embed[y], sum_hw h>``. With
    ``spectral_norm`` every Conv2d / Linear is wrapped in ``torch.nn.utils.spectral_norm``
    (state keys ``weight_orig``, ``weight_u``, ``weight_v``, as minigan's)."""

    def __init__(self, net: Any, spectral_norm: bool) -> None:
        super().__init__()
        self.main = tnn.Sequential(*[_layer(m) for m in net.main])
        self.embed: tnn.Embedding | None = None
        if net.embed is not None:
            self.embed = tnn.Embedding(net.embed.num_embeddings, net.embed.embedding_dim)
        if spectral_norm:
            for m in self.main:
                if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                    tnn.utils.spectral_norm(m)
        self.load_state_dict(_state(net))  # u and v included: minigan's power-iteration state

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The logits and (conditional) every class's projection score, as ``judge``."""
        if self.embed is None:
            return self.main(x).reshape(-1), None
        assert labels is not None, "a class-conditional discriminator needs the labels"
        *body, head = list(self.main)
        for layer in body:
            x = layer(x)
        logits = head(x).reshape(-1)
        pooled = x.sum((2, 3)) if x.ndim == 4 else x
        scores = pooled @ self.embed.weight.t()
        return logits + (self.embed(labels) * pooled).sum(1), scores


@dataclass
class StepDraws:
    """Everything random about one ``DCGAN.train_step``, drawn from minigan's generator."""

    z: torch.Tensor  # (N, latent_dim) float32
    fake_labels: torch.Tensor | None  # (N,) int64, for a conditional model
    augment: tuple[AugmentDraws | None, AugmentDraws | None, AugmentDraws | None]
    # (D(real), D(fake.detach()), G's D(fake)); None without a DiffAugment policy


class TorchDCGAN:
    """PyTorch twin of a built :class:`minigan.plugins.dcgan.DCGAN` (weights copied)."""

    def __init__(self, model: Any) -> None:
        cfg = model.config
        self.cfg, self.num_classes = cfg, int(cfg.num_classes or 0)
        self.image_shape = tuple(model.image_shape)
        self.latent_shape = tuple(model.latent_shape)
        self.policy = parse_policy(cfg.diffaugment or "")
        self.G = TorchGenerator(model.generator)
        self.D = TorchDiscriminator(model.discriminator, bool(cfg.spectral_norm))
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        self.G_ema: TorchGenerator | None = None
        if model.generator_ema is not None:
            self.G_ema = TorchGenerator(model.generator_ema).requires_grad_(False)

    def draw(self, n: int) -> StepDraws:
        """Draw from minigan's global generator exactly as ``DCGAN.train_step`` does for a
        batch of ``n``: z, the fake images' classes, then DiffAugment's draws for D(real),
        D(fake.detach()) and G's D(fake)."""
        gen = minigan.random.generator()
        z = torch.from_numpy(np.asarray(minigan.randn(n, *self.latent_shape).numpy()))
        fake_labels = None
        if self.num_classes:
            k = self.num_classes
            u = gen.random(n)
            fake_labels = torch.from_numpy(np.minimum((u * k).astype(np.int64), k - 1))
        shape = (n, *self.image_shape)
        shift = self.cfg.translation
        drawn = [draw(self.policy, shape, gen, shift) if self.policy else None for _ in range(3)]
        return StepDraws(z, fake_labels, (drawn[0], drawn[1], drawn[2]))

    def _critic(
        self, images: torch.Tensor, labels: torch.Tensor | None, d: AugmentDraws | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.D(augment(images, d), labels if self.num_classes else None)

    def _latent(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return z
        assert labels is not None
        return torch.cat([z, tnn.functional.one_hot(labels, self.num_classes).float()], 1)

    def _d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "hinge":
            return relu(1.0 - real_logits).mean() + relu(1.0 + fake_logits).mean()
        target = torch.full_like(real_logits, 1.0 - self.cfg.label_smoothing)
        return bce(real_logits, target) + bce(fake_logits, torch.zeros_like(fake_logits))

    def _g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "hinge":
            return -fake_logits.mean()
        return bce(fake_logits, torch.ones_like(fake_logits))

    @staticmethod
    def _update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        opt.step()

    def train_step(
        self, real: torch.Tensor, labels: torch.Tensor | None, draws: StepDraws
    ) -> dict[str, float]:
        """One D and one G update with ``draws`` (from :meth:`draw`), as ``DCGAN.train_step``."""
        fake = self.G(self._latent(draws.z, draws.fake_labels))
        real_logits, real_scores = self._critic(real, labels, draws.augment[0])
        fake_logits, _ = self._critic(fake.detach(), draws.fake_labels, draws.augment[1])
        loss_d = self._d_loss(real_logits, fake_logits)
        if self.cfg.class_loss and real_scores is not None:  # D names the real classes
            names = tnn.functional.cross_entropy(real_scores, labels)
            loss_d = loss_d + self.cfg.class_loss * names
        self._update(self.opt_d, loss_d)
        self.D.requires_grad_(False)
        loss_g = self._g_loss(self._critic(fake, draws.fake_labels, draws.augment[2])[0])
        self._update(self.opt_g, loss_g)
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self._ema_update()
        return {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
        }

    def _ema_update(self) -> None:
        """``minigan.gan.ema_update``: parameters move toward G's, buffers are copied."""
        assert self.G_ema is not None
        decay = self.cfg.ema
        with torch.no_grad():
            params = dict(self.G.named_parameters())
            for name, e in self.G_ema.named_parameters():
                e += (1.0 - decay) * (params[name] - e)
            buffers = dict(self.G.named_buffers())
            for name, b in self.G_ema.named_buffers():
                b.copy_(buffers[name])

    def latents(self, seeds: Any) -> torch.Tensor:
        """``DCGAN.latents``: z from ``default_rng(seed)``, then (conditional) one-hot
        ``seed % num_classes``."""
        seeds = [int(s) for s in seeds]
        z = np.stack(
            [np.random.default_rng(s).standard_normal(self.latent_shape, dtype=np.float32)
             for s in seeds]
        )  # fmt: skip
        k = max(self.num_classes, 1)
        labels = torch.from_numpy(np.array(seeds, np.int64) % k)
        return self._latent(torch.from_numpy(z), labels)

    # the sampling interface minigan.metrics.measure uses
    def sample(self, z: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """``DCGAN.sample``: images of latents ``z`` from the EMA generator (else G) in eval
        mode; ``label`` gives every image that class instead of the one in its latent."""
        if label is not None:
            k, n = self.num_classes, len(z)
            one_hot = tnn.functional.one_hot(torch.full((n,), label), k).float()
            z = torch.cat([z[:, : z.shape[1] - k], one_hot], 1)
        net = (self.G_ema or self.G).eval()
        with torch.no_grad():
            images = net(z)
        net.train()
        return images

    def generate(self, seeds: Any, batch_size: int = 128) -> np.ndarray:
        seeds = list(seeds)
        parts = [
            self.sample(self.latents(seeds[i : i + batch_size])).numpy()
            for i in range(0, len(seeds), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, *self.image_shape), np.float32)


def build_twin(
    config: Mapping[str, Any] | None, dataset: Any, seed: int = 0
) -> tuple[Any, TorchDCGAN]:
    """minigan's model as the Trainer builds it for ``dataset`` under ``seed`` (``num_classes``
    filled from the data), and its twin: ``(model, twin)``."""
    from minigan.plugins.dcgan import DCGAN
    from minigan.trainer import data_classes

    minigan.manual_seed(seed)  # as the Trainer: the model's init draws come first
    resolved = data_classes(DCGAN.make_config(dict(config or {})), dataset)
    resolved = DCGAN.config_for_data(resolved, dataset)
    model = DCGAN(resolved, dataset.shape)
    return model, TorchDCGAN(model)


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
    """Train the twin as ``minigan train dcgan`` would (its defaults unless given) on the
    ``shapes`` data; returns ``(twin, per-step losses, seconds)``."""
    from minigan.data import DataLoader, open_dataset
    from minigan.plugins.dcgan import DCGAN

    defaults = DCGAN.train_defaults
    batch = batch_size or defaults["batch_size"]
    dataset = open_dataset("shapes", limit=limit if limit is not None else defaults["limit"])
    _, twin = build_twin(config, dataset, seed)
    loader = DataLoader(dataset, batch, shuffle=True, seed=seed, drop_last=True)
    total = steps or (epochs or defaults["epochs"]) * len(loader)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    while len(history) < total:
        for real, labels in loader:
            x = torch.from_numpy(np.asarray(real.numpy()))
            y = torch.from_numpy(np.asarray(labels.numpy())) if labels is not None else None
            history.append(twin.train_step(x, y, twin.draw(len(x))))
            if log_every and len(history) % log_every == 0:
                print(f"step {len(history)}: {history[-1]} ({time.perf_counter() - start:.0f} s)")
                if callback is not None:
                    callback(len(history), twin, time.perf_counter() - start)
            if len(history) >= total:
                break
    return twin, history, time.perf_counter() - start


#: the DCGAN options the CLI passes on (``--g-width`` ...), with their argument types
OPTIONS: dict[str, Any] = {
    "latent_dim": int, "g_width": int, "d_width": int, "lr": float, "lr_d": float,
    "beta1": float, "beta2": float, "ema": float, "label_smoothing": float,
    "num_classes": int, "loss": str, "diffaugment": str, "class_loss": float,
    "translation": float, "mask": str, "colours": str,
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="default: minigan's (20 epochs)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--limit", type=int, help="shapes images (default: minigan's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=0, help="measure every N steps")
    parser.add_argument("--num", type=int, default=1024, help="samples per measurement")
    parser.add_argument("--grid", help="save a 64-sample grid at each measurement (STEP: step)")
    parser.add_argument("--out", help="save the sampling generator's weights here (.npz)")
    for key, kind in OPTIONS.items():
        choices = {"loss": ("bce", "hinge"), "mask": ("conv", "implicit"),
                   "colours": ("linear", "mlp")}.get(key)  # fmt: skip
        parser.add_argument("--" + key.replace("_", "-"), type=kind, choices=choices,
                            help="as minigan train dcgan's (default: its auto value)")  # fmt: skip
    parser.add_argument("--spectral-norm", choices=("on", "off"), help="in D (default: auto)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = {k: v for k in OPTIONS if (v := getattr(args, k)) is not None}
    if args.spectral_norm is not None:
        config["spectral_norm"] = args.spectral_norm == "on"
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

    try:
        twin, history, seconds = train_twin(
            config, args.steps, None, args.batch_size, args.limit, args.seed,
            log_every=args.eval_every, callback=report,
        )  # fmt: skip
    except (ValueError, TypeError) as e:  # a bad option: one line, not a traceback
        raise SystemExit(f"dcgan_twin: {e}") from None
    if not args.eval_every or len(history) % args.eval_every:
        report(len(history), twin, seconds)
    if args.out:
        net = twin.G_ema or twin.G
        np.savez(args.out, **{k: v.numpy() for k, v in net.state_dict().items()})
        print(f"saved the sampling generator to {args.out}")


if __name__ == "__main__":
    main()
