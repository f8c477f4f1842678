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

NSTEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NOR1 = "nor1" in sys.argv
torch.set_num_threads(1)
torch.manual_seed(0)
ds = open_dataset("shapes", limit=8192)
minigan.manual_seed(0)
model = StyleGANLite(None, (3, 32, 32))
if NOR1:
    model.config.r1_gamma = 0.0
flags = "--pad reflect --noise 0 --maplayers 2 --mix 0.5 --mbstd 32" + (" --r1 0" if NOR1 else "")
args = H.parse_args(flags.split())
B = H.Trainer(args, torch.zeros(1))
C = H.Trainer(args, torch.zeros(1))
C2 = H.Trainer(args, torch.zeros(1))
E = H.Trainer(args, torch.zeros(1))
if NOR1:
    for t in (B, C, C2, E):  # plain Adam for D as minigan without lazy R1
        t.opt_d = torch.optim.Adam(t.D.parameters(), args.lr, betas=(args.b1, args.b2))


mname, dname = generator_key, discriminator_key  # minigan's names of the harness's parameters
gm, dm = dict(model.generator.named_parameters()), dict(model.discriminator.named_parameters())
ulp_rng = np.random.default_rng(12345)
with torch.no_grad():
    for t, perturb, rs in ((B, False, 0), (C, True, 12345), (C2, True, 999), (E, False, 0)):
        ulp_rng = np.random.default_rng(rs)
        for net, m, f in ((t.G, gm, mname), (t.D, dm, dname), (t.G_ema, gm, mname)):
            for n, q in net.named_parameters():
                a = np.array(m[f(n)].numpy(), np.float32)
                if perturb and net is not t.G_ema:
                    d = np.where(ulp_rng.random(a.shape) < 0.5, np.inf, -np.inf).astype(np.float32)
                    a = np.nextafter(a, d).astype(np.float32)
                q.copy_(torch.from_numpy(a))
E.G.double()
E.D.double()
E.G_ema.double()
E.opt_g = torch.optim.Adam(E.G.parameters(), args.lr, betas=(args.b1, args.b2))
cc = 1.0 if NOR1 else 16 / 17
E.opt_d = torch.optim.Adam(E.D.parameters(), args.lr * cc, betas=(args.b1**cc, args.b2**cc))
names_g = [(n, mname(n)) for n, _ in B.G.named_parameters()]
names_d = [(n, dname(n)) for n, _ in B.D.named_parameters()]
assert len(names_g) == len(gm) and len(names_d) == len(dm)


def snap_t(t):
    g = dict(t.G.named_parameters())
    d = dict(t.D.named_parameters())
    return (
        [g[n].detach().numpy().astype(np.float64).ravel() for n, _ in names_g],
        [d[n].detach().numpy().astype(np.float64).ravel() for n, _ in names_d],
    )


def snap_m():
    return (
        [np.asarray(gm[m].numpy(), np.float64).ravel() for _, m in names_g],
        [np.asarray(dm[m].numpy(), np.float64).ravel() for _, m in names_d],
    )


def dist(x, ref):  # global relative distance, and worst per-tensor relative distance
    num = sum(((a - b) ** 2).sum() for a, b in zip(x, ref))
    den = sum((b**2).sum() for b in ref)
    worst = max(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-30) for a, b in zip(x, ref))
    return np.sqrt(num / den), worst


orig = torch.randint
torch.randint = lambda *a, **k: torch.arange(a[2][0]) if "generator" in k else orig(*a, **k)
nw = model.num_ws
loader = DataLoader(ds, 32, shuffle=True, seed=0, drop_last=True)
print(
    "step  G: A-B C-B C2-B A-E64 B-E64 | D: A-B C-B C2-B A-E64 B-E64 "
    "| lossD A B C E | lossG A B C E",
    flush=True,
)
step, t0 = 0, time.time()
it = iter(loader)
while step < NSTEPS:
    real, _ = next(it)
    real_np = np.array(real.numpy(), np.float32)
    # one set of draws per step, in minigan's training_ws order
    z1 = np.array(minigan.randn(32, 128).numpy(), np.float32)
    cut, z2 = 0, None
    if minigan.rand(1).item() < 0.5:
        cut = int(minigan.rand(1).item() * (nw - 1)) + 1
        z2 = np.array(minigan.randn(32, 128).numpy(), np.float32)

    def ws_m(n, z1=z1, z2=z2, cut=cut):
        G = model.generator
        ws = broadcast_ws(G.mapping(minigan.tensor(z1), update_w_avg=True), nw)
        if cut:
            ws = mix_styles(ws, broadcast_ws(G.mapping(minigan.tensor(z2)), nw), cut)
        return ws

    model.training_ws = ws_m
    model.steps = step
    met = model.train_step(minigan.tensor(real_np))
    for t in (B, C, C2, E):
        dt = np.float64 if t is E else np.float32

        def mk(n, t=t, dt=dt, z1=z1, z2=z2, cut=cut):
            w = t.G.mapping(torch.from_numpy(z1.astype(dt)))
            ws = w[:, None].expand(-1, nw, -1)
            if cut:
                w2 = t.G.mapping(torch.from_numpy(z2.astype(dt)))[:, None].expand(-1, nw, -1)
                ws = torch.cat([ws[:, :cut], w2[:, cut:]], 1)
            return ws, w

        t.make_ws = mk
        t.x = torch.from_numpy(real_np.astype(dt))
        t.step(step)
    step += 1
    if step <= 10 or step % 10 == 0:
        ga, da = snap_m()
        gb, db = snap_t(B)
        gc, dc = snap_t(C)
        gc2, dc2 = snap_t(C2)
        ge, de = snap_t(E)
        r = [
            dist(ga, gb)[0],
            dist(gc, gb)[0],
            dist(gc2, gb)[0],
            dist(ga, ge)[0],
            dist(gb, ge)[0],
            dist(da, db)[0],
            dist(dc, db)[0],
            dist(dc2, db)[0],
            dist(da, de)[0],
            dist(db, de)[0],
        ]
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
