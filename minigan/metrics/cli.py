"""``minigan metrics RUN``: measure a run's samples, print the numbers, append them to
``RUN/quality.jsonl``. Registered by the built-in ``metrics`` plugin; the metrics code is
imported only when the command runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["metrics_command", "format_report", "append_record", "resolve_checkpoint"]


def resolve_checkpoint(run: Path, checkpoint: str | None) -> Path:
    """The checkpoint to measure: ``checkpoint`` as a path, or as a file name in
    ``RUN/checkpoints`` (``step-001024`` or ``step-001024.safetensors``), else the run's
    latest."""
    from minigan.train import latest_checkpoint

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


@click.command("metrics")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--checkpoint", help="a checkpoint file, or its name in RUN/checkpoints "
              "[default: the latest]")
@click.option("--num", default=1024, type=click.IntRange(min=10),
              help="samples generated, and real images compared with")
@click.option("--real", "real", help="the real data: a dataset name or path "
              "[default: the run's training data]")
@click.option("--features", type=click.Choice(["shapes", "inception"]), default="shapes",
              help="feature network: the shipped shapes classifier (offline; reported as "
              "'FID (shapes-classifier features)') or the FID Inception-v3 (standard FID)")
@click.option("--inception-weights", type=click.Path(dir_okay=False, exists=True),
              help="the FID Inception weights file [default: the hub cache]")
@click.option("--baseline/--no-baseline", default=True,
              help="also score held-out real images (what a perfect generator gets)")
@click.option("--batch-size", default=128, type=click.IntRange(min=1))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--cache/--no-cache", default=True,
              help="cache the real images' features (under $MINIGAN_CACHE/metrics)")
@click.option("--progress/--no-progress", default=True, help="progress bars for the feature pass")
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON")
def metrics_command(
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
    as_json: bool,
) -> None:
    """Measure the sample quality of RUN (a run directory of `minigan train`).

    Generates --num samples with the run's sampling generator (the EMA generator where there
    is one) and compares them with as many real images: FID, KID, precision/recall, and with
    the shapes classifier the confident fraction and predicted classes. Prints the numbers and
    appends them to RUN/quality.jsonl.
    """
    try:
        record = _measure(
            run, checkpoint, num, real, features, inception_weights, baseline, batch_size,
            device, cache, progress,
        )
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise click.ClickException(str(message)) from None
    path = append_record(run, record)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(
            f"{run}: {Path(record['checkpoint']).name} (step {record['step']}), "
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
    from minigan.train import load_model

    path = resolve_checkpoint(run, checkpoint)
    model, ckpt = load_model(path, device=device)
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    data_info = config.get("data", {})
    data = real or data_info.get("spec") or data_info.get("name") or "shapes"
    options = {} if real else {k: data_info[k] for k in ("path", "seed") if k in data_info}
    extra = {"weights": inception_weights} if features == "inception" else {}
    network = get_network(features, device, **extra)
    start = time.perf_counter()
    record = measure(
        model, data, num=num, network=network, data_options=options, batch_size=batch_size,
        cache=cache, progress=progress, baseline=baseline,
    )
    return {
        "step": int(ckpt.get("step", 0)),
        "checkpoint": str(path),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.perf_counter() - start, 2),
        **record,
    }
