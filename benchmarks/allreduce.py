"""The gradient all-reduce of data-parallel training, measured with 2 ranks.

Run under MPI (2 processes; as root add ``--allow-run-as-root``)::

    mpirun -n 2 --oversubscribe python benchmarks/allreduce.py [--quick]

Writes ``benchmarks/results/allreduce-<date>.json`` and ``.md`` (or under
``$MINIGAN_BENCH_RESULTS``) with:

- **per model** (DCGAN 32x32 and 64x64, StyleGAN-lite 32x32, default widths): the gradient
  bytes one training step all-reduces (every optimizer's parameters, float32), the time of
  those all-reduces (25 MB buckets, blocking, best and median of the rounds), the algorithm
  bandwidth (bytes / time) and the bus bandwidth (x 2(N-1)/N, what a ring moves per link);
- **a training step** with :class:`minigan.distributed.DataParallel` (per-process batch 16):
  its time, the communication time of the gradient thread and the time the optimizer steps
  waited for it, i.e. the overlap achieved, with 25 MB buckets and with 1 MB buckets, and
  the window (the time from each bucket's start to the step that needs it: the computation
  there is to hide communication behind);
- **an alpha-beta fit** of ``t(n) = alpha + n * beta`` over all-reduces of 4 B .. 64 MB: the
  latency and inverse bandwidth of this machine's transport (shared memory between the two
  ranks here), the inputs of the cost model in benchmarks/NOTES.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import minigan
from minigan.distributed import BUCKET_BYTES, DataParallel, _buckets, init_world

MODELS = [  # (registered name, resolution, config overrides)
    ("dcgan", 32, {}),
    ("dcgan", 64, {}),
    ("stylegan-lite", 32, {}),
]


def build(name: str, resolution: int, config: dict[str, Any]) -> Any:
    from minigan.registry import get_registry

    cls = get_registry().get("model", name)
    minigan.manual_seed(0)
    return cls(cls.make_config(config), (3, resolution, resolution), "cpu")


def step_buffers(model: Any) -> list[np.ndarray]:
    """The float32 buffers one training step all-reduces: every optimizer's parameters, cut
    into DDP-sized buckets."""
    out = []
    for opt in model.optimizers().values():
        params = [p for g in opt.param_groups for p in g["params"]]
        for bucket in _buckets(params, BUCKET_BYTES):
            out.append(np.ones(sum(p.numel() for p in bucket.params), np.float32))
    return out


def time_allreduce(world: Any, buffers: list[np.ndarray], rounds: int) -> list[float]:
    comm, MPI = world.comm, world.MPI
    times = []
    for _ in range(rounds + 1):  # one warm-up
        comm.Barrier()
        t0 = time.perf_counter()
        for buf in buffers:
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t0)
    return times[1:]


def alpha_beta(world: Any, rounds: int) -> dict[str, Any]:
    sizes = [4 * 4**k for k in range(0, 13)]  # 4 B .. 64 MB
    points = []
    for n in sizes:
        buf = np.ones(n // 4, np.float32)
        reps = max(3, min(200, int(2e6 // n)))
        points.append((n, min(time_allreduce(world, [buf], reps))))
    x = np.array([p[0] for p in points], float)
    t = np.array([p[1] for p in points], float)
    beta, alpha = np.polyfit(x, t, 1, w=1 / t)  # relative error weighting
    return {
        "points": points,
        "alpha_s": float(max(alpha, t[0])),
        "beta_s_per_byte": float(beta),
        "bandwidth_GBps": float(1 / beta / 1e9),
    }


def training_overlap(world: Any, name: str, res: int, bucket_bytes: int, steps: int) -> dict:
    model = build(name, res, {})
    dp = DataParallel(world, model, bucket_bytes=bucket_bytes)
    rng = np.random.default_rng(world.rank)
    real = minigan.tensor(rng.uniform(-1, 1, (16, 3, res, res)).astype(np.float32))
    times = []
    for i in range(steps + 1):
        if i == 1:  # the first step compiles kernels: not counted
            for r in dp.reducers.values():
                r.stats = type(r.stats)()
        world.barrier()
        t0 = time.perf_counter()
        with dp.step(16):
            model.train_step(real)
        times.append(time.perf_counter() - t0)
    stats = dp.stats()
    dp.close()
    return {
        "model": f"{name} {res}x{res}",
        "bucket_MB": bucket_bytes / 2**20,
        "buckets_per_step": stats.allreduces / steps,
        "step_s": statistics.median(times[1:]),
        "comm_s_per_step": stats.comm_seconds / steps,
        "wait_s_per_step": stats.wait_seconds / steps,
        "window_s_per_step": stats.window_seconds / steps,
        "overlap": stats.overlap,
    }


def main() -> None:
    quick = "--quick" in sys.argv
    world = init_world(True)
    rounds = 5 if quick else 30
    rows = []
    for name, res, config in MODELS:
        model = build(name, res, config)
        buffers = step_buffers(model)
        nbytes = sum(b.nbytes for b in buffers)
        times = time_allreduce(world, buffers, rounds)
        best, median = min(times), statistics.median(times)
        rows.append(
            {
                "model": f"{name} {res}x{res}",
                "parameters": nbytes // 4,
                "bytes": nbytes,
                "allreduces": len(buffers),
                "best_s": best,
                "median_s": median,
                "algbw_GBps": nbytes / best / 1e9,
                "busbw_GBps": nbytes / best / 1e9 * 2 * (world.size - 1) / world.size,
            }
        )
    overlap = [
        training_overlap(world, name, res, cap, 2 if quick else 4)
        for name, res, _ in MODELS[1:]
        for cap in (BUCKET_BYTES, 2**20)
    ]
    fit = alpha_beta(world, rounds)
    if world.rank == 0:
        save(world, rows, overlap, fit)


def save(world: Any, rows: list[dict], overlap: list[dict], fit: dict) -> None:
    from mpi4py import MPI

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(os.environ.get("MINIGAN_BENCH_RESULTS", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{world.size} ranks, {MPI.Get_library_version().splitlines()[0]}, "
        f"{dt.datetime.now().isoformat(timespec='seconds')}. Command: "
        f"`mpirun -n {world.size} python benchmarks/allreduce.py`"
    )
    lines = [
        header,
        "",
        "| gradients of one step | parameters | MB | all-reduces | best ms | median ms | "
        "algbw GB/s | busbw GB/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['bytes'] / 2**20:.2f} | "
            f"{r['allreduces']} | {r['best_s'] * 1e3:.2f} | {r['median_s'] * 1e3:.2f} | "
            f"{r['algbw_GBps']:.2f} | {r['busbw_GBps']:.2f} |"
        )
    lines += [
        "",
        "| training step, batch 16 per rank | bucket cap | buckets/step | step ms | "
        "comm ms | exposed (waited) ms | overlap | window ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in overlap:
        lines.append(
            f"| {o['model']} | {o['bucket_MB']:.0f} MB | {o['buckets_per_step']:.0f} | "
            f"{o['step_s'] * 1e3:.0f} | {o['comm_s_per_step'] * 1e3:.1f} | "
            f"{o['wait_s_per_step'] * 1e3:.1f} | {o['overlap']:.0%} | "
            f"{o['window_s_per_step'] * 1e3:.1f} |"
        )
    lines += [
        "",
        f"alpha-beta fit over 4 B .. 64 MB: alpha = {fit['alpha_s'] * 1e6:.1f} us, "
        f"1/beta = {fit['bandwidth_GBps']:.2f} GB/s",
    ]
    (out / f"allreduce-{stamp}.md").write_text("\n".join(lines) + "\n")
    (out / f"allreduce-{stamp}.json").write_text(
        json.dumps({"header": header, "rows": rows, "overlap": overlap, "fit": fit}, indent=1)
    )
    print("\n".join(lines))


# --------------------------------------------------------------------------- cost model
def flops_per_image(name: str, res: int) -> float:
    """Training FLOP per image of one step, counted: the multiply-adds of every linear,
    convolution and transposed convolution the step's forward passes run, x 2 FLOP, x 3
    (the backward costs about twice the forward)."""
    from minigan import functional as F

    macs = [0]
    orig = F.linear, F.conv2d, F.conv_transpose2d

    def lin(x: Any, w: Any, b: Any = None) -> Any:
        macs[0] += int(np.prod(x.shape[:-1])) * w.shape[0] * w.shape[1]
        return orig[0](x, w, b)

    def conv(x: Any, w: Any, *a: Any, **k: Any) -> Any:
        y = orig[1](x, w, *a, **k)
        macs[0] += int(np.prod(y.shape)) * int(np.prod(w.shape[1:]))
        return y

    def convt(x: Any, w: Any, *a: Any, **k: Any) -> Any:
        macs[0] += int(np.prod(x.shape)) * int(np.prod(w.shape[1:]))
        return orig[2](x, w, *a, **k)

    F.linear, F.conv2d, F.conv_transpose2d = lin, conv, convt
    try:
        model, batch = build(name, res, {}), 4
        model.steps = 1  # StyleGAN-lite: not one of the lazy-R1 steps
        real = np.random.default_rng(0).uniform(-1, 1, (batch, 3, res, res))
        model.train_step(minigan.tensor(real.astype(np.float32)))
    finally:
        F.linear, F.conv2d, F.conv_transpose2d = orig
    return 6.0 * macs[0] / batch


def ring_allreduce_s(p: int, buckets: list[int], alpha: float, link_Bps: float) -> float:
    """Ring all-reduce of each bucket over p processes: 2(p-1) steps of latency alpha, and
    2(p-1)/p of the bucket's bytes through each process's link."""
    return sum(2 * (p - 1) * alpha + 2 * (p - 1) / p * n / link_Bps for n in buckets)


def cost_model(gpu_flops: float = 10e12, alpha: float = 10e-6) -> str:
    """The scaling table of benchmarks/NOTES.md: efficiency = compute / (compute + exposed
    all-reduce), per GPU batch 32, without overlap and with the backward (2/3 of the
    compute) hiding the all-reduce; and the per-GPU batch for 90% efficiency."""
    lines = [
        "| model | grad MB/step | GFLOP/img | GPUs | link | all-reduce ms | eff. b=32 "
        "(no overlap / overlap) | b for 90% (no overlap / overlap) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in (("dcgan", 64), ("stylegan-lite", 64)):
        model = build(name, res, {})
        buckets = [
            4 * sum(p.numel() for p in bucket.params)
            for opt in model.optimizers().values()
            for bucket in _buckets([p for g in opt.param_groups for p in g["params"]], BUCKET_BYTES)
        ]
        f_img = flops_per_image(name, res)
        for p in (8, 64):
            for gbit in (100, 400):
                t_ar = ring_allreduce_s(p, buckets, alpha, gbit / 8 * 1e9)
                t_c = 32 * f_img / gpu_flops
                eff_no = t_c / (t_c + t_ar)
                eff_ov = t_c / (t_c + max(0.0, t_ar - 2 / 3 * t_c))
                b_no = 9 * t_ar * gpu_flops / f_img
                b_ov = t_ar / 0.7 * 0.9 * gpu_flops / f_img
                lines.append(
                    f"| {name} {res}x{res} | {sum(buckets) / 2**20:.2f} | {f_img / 1e9:.2f} | "
                    f"{p} | {gbit} Gb/s | {t_ar * 1e3:.2f} | {eff_no:.0%} / {eff_ov:.0%} | "
                    f"{np.ceil(b_no):.0f} / {np.ceil(b_ov):.0f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    if "--cost-model" in sys.argv:
        print(cost_model())
    else:
        main()
