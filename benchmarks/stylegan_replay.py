"""StyleGAN-lite's exploration harness replaying a minigan default run's random draws: is a
bad default run (``minigan train stylegan-lite``, seed 0: FID 26.2) minigan's arithmetic or
that seed's luck?

The harness (:mod:`stylegan_recipes`, default recipe) starts from minigan's initial weights for
``--seed`` (the model built as minigan's trainer builds it), trains on minigan's batches (its
``DataLoader``: 8,192 ``shapes`` images, shuffled epochs) with minigan's latent and
style-mixing draws in minigan's order, and scores its EMA generator as the harness does.
Its first step agrees with minigan's (float64: one step of every parameter to ~1e-13); from
there float32 rounding makes the runs part like two seeds, so what is compared is the
outcome of the same draws.

    OMP_NUM_THREADS=1 python benchmarks/stylegan_replay.py --seed 0 [--steps 768] [--eval 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stylegan_recipes as H  # noqa: E402

import minigan  # noqa: E402
from minigan.data import DataLoader, open_dataset  # noqa: E402
from minigan.plugins.stylegan_lite import StyleGANLite  # noqa: E402


def generator_key(name: str) -> str:
    """minigan's name of a harness generator parameter."""
    name = name.replace("synthesis.rgbs.", "synthesis.to_rgbs.")
    parts = name.split(".")
    if parts[:2] in (["synthesis", "layers"], ["synthesis", "to_rgbs"]):
        rename = {"weight": "conv.weight", "aff.weight": "conv.affine.weight",
                  "aff.bias": "conv.affine.bias", "bias": "bias", "nw": "noise.weight"}  # fmt: skip
        return ".".join(parts[:3]) + "." + rename[".".join(parts[3:])]
    return name


def discriminator_key(name: str) -> str:
    """minigan's name of a harness discriminator parameter."""
    name = name.replace("frgb", "from_rgb")
    for i in range(3):
        name = name.replace(f"blocks.{i}.0.", f"blocks.{i}.conv0.")
        name = name.replace(f"blocks.{i}.1.", f"blocks.{i}.conv1.")
    return name


def copy_weights(trainer: Any, model: StyleGANLite) -> None:
    """minigan's initial weights into the harness's G, D and EMA G."""
    ours = {"G": dict(model.generator.named_parameters()),
            "D": dict(model.discriminator.named_parameters())}  # fmt: skip
    with torch.no_grad():
        for net, side, key in ((trainer.G, "G", generator_key), (trainer.D, "D", discriminator_key),
                               (trainer.G_ema, "G", generator_key)):  # fmt: skip
            for name, p in net.named_parameters():
                p.copy_(torch.from_numpy(np.array(ours[side][key(name)].numpy())))


def replay_draws(trainer: Any, mix: float) -> None:
    """The harness's ``make_ws`` drawing from minigan's generator in minigan's order."""
    nw, zdim = trainer.num_ws, trainer.args.zdim

    def make_ws(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.from_numpy(np.array(minigan.randn(n, zdim).numpy()))
        w = trainer.G.mapping(z)
        ws = w[:, None].expand(-1, nw, -1)
        if minigan.rand(1).item() < mix:
            cut = int(minigan.rand(1).item() * (nw - 1)) + 1
            z2 = torch.from_numpy(np.array(minigan.randn(n, zdim).numpy()))
            ws = torch.cat(
                [ws[:, :cut], trainer.G.mapping(z2)[:, None].expand(-1, nw, -1)[:, cut:]], 1
            )
        return ws, w

    trainer.make_ws = make_ws


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=768)
    p.add_argument("--eval", type=int, default=256)
    o = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(o.seed)
    data = open_dataset("shapes", limit=8192)
    minigan.manual_seed(o.seed)  # as minigan's trainer: the model's init draws come first
    model = StyleGANLite(None, data.shape)
    args = H.parse_args(
        f"--steps {o.steps} --pad reflect --noise 0 --maplayers 2 --mix 0.5 --mbstd 32 "
        f"--seed {o.seed} --limit 8192 --eval {o.eval} --tag RP{o.seed}".split()
    )
    trainer = H.Trainer(args, torch.zeros(1))
    copy_weights(trainer, model)
    replay_draws(trainer, args.mix)
    # the harness draws its batch with torch.randint(len(x), (batch,), generator=...): give it
    # minigan's batch as x and make that draw pick every row once, in order
    randint = torch.randint

    def whole_batch(*a: Any, **k: Any) -> torch.Tensor:
        return torch.arange(a[2][0]) if "generator" in k else randint(*a, **k)

    loader = DataLoader(data, args.batch, shuffle=True, seed=o.seed, drop_last=True)
    step, seconds, t0 = 0, 0.0, time.perf_counter()
    while step < o.steps:
        for real, _ in loader:
            trainer.x = torch.from_numpy(np.array(real.numpy()))
            torch.randint = whole_batch
            try:
                trainer.step(step)
            finally:
                torch.randint = randint
            step += 1
            if step % o.eval == 0 or step == o.steps:
                seconds += time.perf_counter() - t0
                H.evaluate(trainer, step, seconds)
                t0 = time.perf_counter()
            if step >= o.steps:
                break


if __name__ == "__main__":
    main()
