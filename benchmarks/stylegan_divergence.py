"""Does minigan's float32 StyleGAN-lite training drift from PyTorch's, or only part from it
chaotically? Trains, on the same batches and the same latent / style-mixing draws (drawn from
minigan's generator each step), from the same initial weights:

- A: minigan's StyleGAN-lite (default config, seed 0);
- B: the PyTorch harness (:mod:`stylegan_recipes`, default recipe) in float32;
- C, C2: the harness from B's weights moved 1 ulp each (two random directions): the chaos
  baseline, how far two float32 runs of one implementation part;
- E64: the harness in float64, a rough "true" path;

and prints every 10 steps the relative parameter distances (all of G, all of D) A-B, C-B,
C2-B, A-E64, B-E64 and the losses. Systematic drift would show as A-B well above C-B, or
A-E64 well above B-E64. (Written by a reviewer for issue 15; research code.)

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/stylegan_divergence.py 250 [nor1]
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import stylegan_recipes as H
import torch
from stylegan_replay import discriminator_key, generator_key

import minigan
from minigan.data import DataLoader, open_dataset
from minigan.plugins.stylegan_lite import StyleGANLite
from minigan.plugins.stylegan_lite.model import broadcast_ws, mix_styles


def build(nor1: bool):
    """minigan's model (A) and the four harness trainers (B, C, C2, E64) from its weights."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    minigan.manual_seed(0)
    model = StyleGANLite(None, (3, 32, 32))
    if nor1:
        model.config.r1_gamma = 0.0
    flags = "--pad reflect --noise 0 --maplayers 2 --mix 0.5 --mbstd 32" + (
        " --r1 0" if nor1 else ""
    )
    args = H.parse_args(flags.split())
    B, C, C2, E = (H.Trainer(args, torch.zeros(1)) for _ in range(4))
    if nor1:
        for t in (B, C, C2, E):  # plain Adam for D as minigan without lazy R1
            t.opt_d = torch.optim.Adam(t.D.parameters(), args.lr, betas=(args.b1, args.b2))
    gm, dm = dict(model.generator.named_parameters()), dict(model.discriminator.named_parameters())
    with torch.no_grad():
        for t, perturb, rs in ((B, False, 0), (C, True, 12345), (C2, True, 999), (E, False, 0)):
            ulp_rng = np.random.default_rng(rs)
            for net, m, f in (
                (t.G, gm, generator_key),
                (t.D, dm, discriminator_key),
                (t.G_ema, gm, generator_key),
            ):
                for n, q in net.named_parameters():
                    a = np.array(m[f(n)].numpy(), np.float32)
                    if perturb and net is not t.G_ema:
                        d = np.where(ulp_rng.random(a.shape) < 0.5, np.inf, -np.inf)
                        a = np.nextafter(a, d.astype(np.float32)).astype(np.float32)
                    q.copy_(torch.from_numpy(a))
    E.G.double()
    E.D.double()
    E.G_ema.double()
    E.opt_g = torch.optim.Adam(E.G.parameters(), args.lr, betas=(args.b1, args.b2))
    cc = 1.0 if nor1 else 16 / 17
    E.opt_d = torch.optim.Adam(E.D.parameters(), args.lr * cc, betas=(args.b1**cc, args.b2**cc))
    return model, (B, C, C2, E)


class Snapshots:
    """All of G's and of D's parameters, in the harness's order, as float64 vectors."""

    def __init__(self, model, harness) -> None:
        self.gm = dict(model.generator.named_parameters())
        self.dm = dict(model.discriminator.named_parameters())
        self.names_g = [(n, generator_key(n)) for n, _ in harness.G.named_parameters()]
        self.names_d = [(n, discriminator_key(n)) for n, _ in harness.D.named_parameters()]
        assert len(self.names_g) == len(self.gm) and len(self.names_d) == len(self.dm)

    def of_harness(self, t):
        g, d = dict(t.G.named_parameters()), dict(t.D.named_parameters())
        return (
            [g[n].detach().numpy().astype(np.float64).ravel() for n, _ in self.names_g],
            [d[n].detach().numpy().astype(np.float64).ravel() for n, _ in self.names_d],
        )

    def of_minigan(self):
        return (
            [np.asarray(self.gm[m].numpy(), np.float64).ravel() for _, m in self.names_g],
            [np.asarray(self.dm[m].numpy(), np.float64).ravel() for _, m in self.names_d],
        )


def dist(x, ref):  # global relative distance, and worst per-tensor relative distance
    num = sum(((a - b) ** 2).sum() for a, b in zip(x, ref))
    den = sum((b**2).sum() for b in ref)
    worst = max(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30) for a, b in zip(x, ref))
    return np.sqrt(num / den), worst


def step_all(model, trainers, real_np: np.ndarray, step: int):
    """One step of A and of every harness trainer, on one set of draws (minigan's
    ``training_ws`` order); returns minigan's metrics."""
    nw = model.num_ws
    z1 = np.array(minigan.randn(32, 128).numpy(), np.float32)
    cut, z2 = 0, None
    if minigan.rand(1).item() < 0.5:
        cut = int(minigan.rand(1).item() * (nw - 1)) + 1
        z2 = np.array(minigan.randn(32, 128).numpy(), np.float32)

    def ws_m(n):
        G = model.generator
        ws = broadcast_ws(G.mapping(minigan.tensor(z1), update_w_avg=True), nw)
        if cut:
            ws = mix_styles(ws, broadcast_ws(G.mapping(minigan.tensor(z2)), nw), cut)
        return ws

    model.training_ws = ws_m
    model.steps = step
    met = model.train_step(minigan.tensor(real_np))
    for t in trainers:
        dt = np.float64 if t is trainers[-1] else np.float32

        def mk(n, t=t, dt=dt):
            w = t.G.mapping(torch.from_numpy(z1.astype(dt)))
            ws = w[:, None].expand(-1, nw, -1)
            if cut:
                w2 = t.G.mapping(torch.from_numpy(z2.astype(dt)))[:, None].expand(-1, nw, -1)
                ws = torch.cat([ws[:, :cut], w2[:, cut:]], 1)
            return ws, w

        t.make_ws = mk
        t.x = torch.from_numpy(real_np.astype(dt))
        t.step(step)
    return met


def main(argv: list[str]) -> None:
    nsteps = int(argv[0]) if argv else 200
    nor1 = "nor1" in argv
    ds = open_dataset("shapes", limit=8192)
    model, trainers = build(nor1)
    B, C, C2, E = trainers
    snaps = Snapshots(model, B)
    orig = torch.randint
    torch.randint = lambda *a, **k: torch.arange(a[2][0]) if "generator" in k else orig(*a, **k)
    loader = DataLoader(ds, 32, shuffle=True, seed=0, drop_last=True)
    print(
        "step  G: A-B C-B C2-B A-E64 B-E64 | D: A-B C-B C2-B A-E64 B-E64 "
        "| lossD A B C E | lossG A B C E",
        flush=True,
    )
    step, t0 = 0, time.time()
    it = iter(loader)
    while step < nsteps:
        real, _ = next(it)
        met = step_all(model, trainers, np.array(real.numpy(), np.float32), step)
        step += 1
        if step <= 10 or step % 10 == 0:
            ga, da = snaps.of_minigan()
            (gb, db), (gc, dc), (gc2, dc2), (ge, de) = (snaps.of_harness(t) for t in trainers)
            r = [dist(ga, gb)[0], dist(gc, gb)[0], dist(gc2, gb)[0], dist(ga, ge)[0]]
            r += [dist(gb, ge)[0], dist(da, db)[0], dist(dc, db)[0], dist(dc2, db)[0]]
            r += [dist(da, de)[0], dist(db, de)[0]]
            losses_d = [float(met["loss_d"])] + [x.loss_d.item() for x in (B, C, E)]
            losses_g = [float(met["loss_g"])] + [x.loss_g.item() for x in (B, C, E)]
            print(
                f"{step:4d} "
                + " ".join(f"{x:8.1e}" for x in r)
                + " | "
                + " ".join(f"{x:.3f}" for x in losses_d)
                + " | "
                + " ".join(f"{x:.3f}" for x in losses_g)
                + f" ({time.time() - t0:.0f}s)",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
