"""What ``minigan metrics RUN`` does: measure a run's samples, print the numbers, append them
to ``RUN/quality.jsonl``. The command's options are declared in the hook module
:mod:`minigan.plugins.metrics`, which imports this module only when the command runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["metrics", "format_report", "append_record", "resolve_checkpoint"]


def resolve_checkpoint(run: Path, checkpoint: str | None) -> Path:
    """The checkpoint to measure: ``checkpoint`` as a path, or as a file name in
    ``RUN/checkpoints`` (``step-001024`` or ``step-001024.safetensors``), else the run's
    latest."""
    from minigan.run import latest_checkpoint

    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    if checkpoint is None:
        found = latest_checkpoint(run)
        if found is None:
            raise FileNotFoundError(f"{run}: no checkpoints/step-*.safetensors in this run")
        return found
    for candidate in (
        Path(checkpoint),
        run / "checkpoints" / checkpoint,
        run / "checkpoints" / f"{checkpoint}.safetensors",
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"--checkpoint {checkpoint}: no such file (nor in {run}/checkpoints)")


def _fraction_line(fractions: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0%}" for name, value in fractions.items())


def format_report(r: dict[str, Any]) -> str:
    """The human-readable lines ``minigan metrics`` prints for a record."""

    def base(key: str, fmt: str = "{:.4g}") -> str:
        value = r.get(f"baseline_{key}")
        return f"   (real vs held-out real: {fmt.format(value)})" if value is not None else ""

    lines = [
        f"{r['label']:<34} {r['fid']:.4g}{base('fid')}",
        f"{'KID (mean ± std over subsets)':<34} {r['kid_mean']:.4g} ± {r['kid_std']:.2g}"
        + base("kid_mean"),
        f"{'precision / recall (k=3)':<34} {r['precision']:.3f} / {r['recall']:.3f}"
        + (
            f"   (real: {r['baseline_precision']:.3f} / {r['baseline_recall']:.3f})"
            if "baseline_precision" in r
            else ""
        ),
    ]
    if "confident" in r:
        lines.append(
            f"{'confident fraction (p > 0.9)':<34} {r['confident']:.3f}"
            f"   (real: {r['real_confident']:.3f})"
        )
        lines.append(f"{'predicted classes':<34} {_fraction_line(r['class_fractions'])}")
    if "class_fidelity" in r:
        lines.append(
            f"{'class fidelity (asked -> named)':<34} {r['class_fidelity']:.0%} "
            f"(confidently {r['class_fidelity_confident']:.0%})"
            + (
                f"   (real: {r['baseline_class_fidelity']:.0%}, confidently "
                f"{r['baseline_class_fidelity_confident']:.0%})"
                if "baseline_class_fidelity" in r
                else ""
            )
        )
        lines.append(f"{'  per class':<34} {_fraction_line(r['class_recognised'])}")
    lines.append(
        f"{'border deviation (2 px)':<34} {r['border']:.4f}   (real: {r['real_border']:.4f})"
    )
    return "\n".join(lines)


def append_record(run: Path, record: dict[str, Any]) -> Path:
    """Append ``record`` as one JSON line to ``RUN/quality.jsonl``."""
    path = run / "quality.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return path


def metrics(
    run: str,
    checkpoint: str | None,
    num: int,
    real: str | None,
    features: str,
    inception_weights: str | None,
    baseline: bool,
    batch_size: int,
    device: str,
    cache: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """``minigan metrics`` (options in :mod:`minigan.plugins.metrics`): measure, print,
    append to ``RUN/quality.jsonl``; a bad input is one line and exit status 1."""
    run_dir = Path(run)
    try:
        record = _measure(
            run_dir,
            checkpoint,
            num,
            real,
            features,
            inception_weights,
            baseline,
            batch_size,
            device,
            cache,
            progress,
        )
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise click.ClickException(str(message)) from None
    path = append_record(run_dir, record)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(
            f"{run_dir}: {Path(record['checkpoint']).name} (step {record['step']}), "
            f"{num} samples vs {num} real images of {record['data']}, "
            f"{record['features']} features"
        )
        click.echo(format_report(record))
    click.echo(f"appended to {path}", err=True)


def _measure(
    run: Path,
    checkpoint: str | None,
    num: int,
    real: str | None,
    features: str,
    inception_weights: str | None,
    baseline: bool,
    batch_size: int,
    device: str,
    cache: bool,
    progress: bool,
) -> dict[str, Any]:
    from minigan.metrics import get_network, measure
    from minigan.run import load_model

    path = resolve_checkpoint(run, checkpoint)
    model, ckpt = load_model(path, device=device)
    config = (
        json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    )
    data_info = config.get("data", {})
    data = real or data_info.get("spec") or data_info.get("name") or "shapes"
    options = {} if real else {k: data_info[k] for k in ("path", "seed") if k in data_info}
    extra = {"weights": inception_weights} if features == "inception" else {}
    network = get_network(features, device, **extra)
    start = time.perf_counter()
    record = measure(
        model,
        data,
        num=num,
        network=network,
        data_options=options,
        batch_size=batch_size,
        cache=cache,
        progress=progress,
        baseline=baseline,
    )
    return {
        "step": int(ckpt.get("step", 0)),
        "checkpoint": str(path),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.perf_counter() - start, 2),
        **record,
    }
