"""Sample quality during training: ``minigan train ... --metric-every N``.

:class:`QualityCallback` is a training callback (``minigan.train(..., callbacks=[...])``):
every ``every`` steps it measures the model's samples — the sampling generator, i.e. the EMA
generator where there is one — with :func:`minigan.metrics.measure` (no held-out baseline:
that needs no re-measuring), appends the record to ``RUN/quality.jsonl``, and the run's
``losses.png`` gains subplots with the metrics over the steps (:func:`quality_records`,
drawn by :meth:`minigan.run.Run.write_losses`).

Measuring draws its latents from their own seeds, and minigan's global generator (which
building the feature network draws from) is restored afterwards, so a run with
``--metric-every`` trains exactly as one without (and resumes exactly).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["QualityCallback", "quality_records", "read_quality"]

#: the quality.jsonl keys plotted under the losses (FID on its own scale: see quality_chart)
PLOTTED = ("fid", "confident", "class_fidelity", "precision", "recall")


class QualityCallback:
    """Measure sample quality every ``every`` steps of a run in ``run_dir``."""

    def __init__(
        self,
        run_dir: str | Path,
        every: int,
        num: int = 1024,
        features: str = "shapes",
        device: str = "cpu",
        log: Any = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"--metric-every must be at least 1, got {every}")
        self.run_dir, self.every, self.num = Path(run_dir), every, num
        self.features, self.device = features, device
        self.log = log or _tqdm_write
        self._network: Any = None

    def __call__(self, record: Mapping[str, Any], model: Any) -> None:
        step = int(record["step"])
        if step % self.every:
            return
        import minigan.random

        state = minigan.random.get_state()  # building the feature network draws weights
        try:
            self._measure(step, model)
        finally:
            minigan.random.set_state(state)

    def _measure(self, step: int, model: Any) -> None:
        from minigan.metrics import get_network, measure

        if self._network is None:
            self._network = get_network(self.features, self.device)
        config = json.loads((self.run_dir / "config.json").read_text())
        data_info = config.get("data", {})
        data = data_info.get("spec") or data_info.get("name") or "shapes"
        options = {k: data_info[k] for k in ("path", "seed") if k in data_info}
        start = time.perf_counter()
        result = measure(
            model, data, num=self.num, network=self._network, data_options=options,
            progress=False, kid_subsets=10,
        )  # fmt: skip
        out = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "seconds": round(time.perf_counter() - start, 2), **result}  # fmt: skip
        with (self.run_dir / "quality.jsonl").open("a") as f:
            f.write(json.dumps(out) + "\n")
        extra = f", confident {result['confident']:.2f}" if "confident" in result else ""
        if "class_fidelity" in result:
            extra += f", class fidelity {result['class_fidelity']:.0%}"
        self.log(
            f"step {step}: {result['label']} {result['fid']:.3g}, precision "
            f"{result['precision']:.2f}, recall {result['recall']:.2f}{extra}"
        )


def _tqdm_write(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def read_quality(run_dir: str | Path, up_to: int | None = None) -> list[dict[str, Any]]:
    """The records of ``RUN/quality.jsonl`` (the last one per step; none after ``up_to``)."""
    path = Path(run_dir) / "quality.jsonl"
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if "step" in r and (up_to is None or r["step"] <= up_to):
                by_step[int(r["step"])] = r
    return [by_step[s] for s in sorted(by_step)]


def quality_records(
    run_dir: str | Path, up_to: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The quality.jsonl records as metric records for :func:`minigan.plots.plot_metrics`
    (``step`` and the plotted metrics only) and their subplot groups: the Frechet distance
    under its label, and the fractions (confident, class fidelity, precision, recall)
    together."""
    rows = read_quality(run_dir, up_to)
    records = [
        {"step": r["step"], **{k: r[k] for k in PLOTTED if isinstance(r.get(k), (int, float))}}
        for r in rows
    ]
    if not records:
        return [], {}
    label = str(rows[-1].get("label", "FID"))
    fractions = [k for k in PLOTTED[1:] if any(k in r for r in records)]
    return records, {label: ["fid"], "sample quality": fractions}
