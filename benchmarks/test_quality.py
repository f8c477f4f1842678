"""Quality parity with PyTorch: the default ``minigan train dcgan`` run against its exact
PyTorch twin (:mod:`dcgan_twin`: the same initial weights, batches, labels and random draws —
latents, the fake images' classes, DiffAugment — of the default class-conditional recipe), each
trained for the default number of steps, then both measured with :func:`minigan.metrics.measure`
(shapes-classifier features, 1,024 samples against 1,024 real images) — so "minigan trains as
well as PyTorch, at this speed" is a measured row.

Run with ``pytest benchmarks/test_quality.py --benchmark -s``. The table is printed and
written to ``<results>/quality-<date>.md`` (``$MINIGAN_BENCH_RESULTS`` or
``benchmarks/results``). ``MINIGAN_QUALITY_STEPS=N`` shortens both runs (a smoke test).

The two runs start identical (asserted: the first step's losses agree to float32 rounding)
and then drift apart as rounding differences compound through training — as two PyTorch runs
on different hardware would — so the comparison is of quality and time, not of weights.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
import torch
from dcgan_twin import train_twin

from minigan.metrics import measure
from minigan.run import load_model

NUM = 1024
KEYS = ("fid", "confident", "precision", "recall", "kid_mean")


def _row(name: str, r: dict, seconds: float, steps: int) -> str:
    classes = " ".join(f"{v:.2f}" for v in r["class_fractions"].values())
    return (
        f"| {name} | {steps} | {seconds:.0f} | {r['fid']:.2f} | {r['confident']:.3f} | "
        f"{r['precision']:.2f} / {r['recall']:.2f} | {r['kid_mean']:.4f} | {classes} |"
    )


def test_dcgan_quality_parity(tmp_path: Path) -> None:
    from minigan.plugins.dcgan import DCGAN
    from minigan.train import train

    torch.set_num_threads(int(os.environ.get("MINIGAN_BENCH_THREADS", os.cpu_count() or 1)))
    steps = int(os.environ.get("MINIGAN_QUALITY_STEPS", "0")) or None
    ours = train("dcgan", out=tmp_path / "run", max_steps=steps, progress=False, log=print)
    model = load_model(tmp_path / "run")[0]
    twin, history, twin_seconds = train_twin(steps=ours.steps)
    assert len(history) == ours.steps

    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["loss_d"] == pytest.approx(history[0]["loss_d"], rel=1e-4)
    assert first["loss_g"] == pytest.approx(history[0]["loss_g"], rel=1e-4)

    mine = measure(model, "shapes", num=NUM, progress=False, baseline=True)
    theirs = measure(twin, "shapes", num=NUM, progress=False)
    defaults = DCGAN.train_defaults
    header = [
        f"# DCGAN quality parity: minigan vs PyTorch twin ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"`minigan train dcgan` defaults ({ours.steps} steps, batch {defaults['batch_size']}, "
        f"{defaults['limit']} shapes images), {NUM} samples vs {NUM} real images, "
        f"FID (shapes-classifier features). minigan's seconds are the whole `train()` call "
        f"(its per-epoch sample grids and checkpoints included); the twin's only its steps. "
        f"Command: "
        f"`pytest benchmarks/test_quality.py --benchmark -s`; torch threads "
        f"{torch.get_num_threads()}.",
        "",
        "| run | steps | seconds | FID (shapes) | confident | precision / recall | KID "
        "| class fractions |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    base = {k[len("baseline_") :]: v for k, v in mine.items() if k.startswith("baseline_")}
    lines = header + [
        _row("minigan", mine, ours.seconds, ours.steps),
        _row("PyTorch twin", theirs, twin_seconds, ours.steps),
        _row("real (held-out)", base, 0.0, 0),
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    results = Path(os.environ.get("MINIGAN_BENCH_RESULTS") or Path(__file__).with_name("results"))
    results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (results / f"quality-{stamp}.md").write_text(text)
    for key in KEYS:  # both measured, finite
        assert mine[key] == mine[key] and theirs[key] == theirs[key]
