"""Benchmark reports: the markdown table and the PNG ratio chart of a results JSON.

::

    python benchmarks/report.py benchmarks/results/cpu-20261122-185735.json [more.json ...]
    python benchmarks/report.py benchmarks/results/cpu-*.json --readme

writes ``<name>.md`` and ``<name>.png`` next to each JSON; with ``--readme`` the given runs
also replace the "Latest results" section of their kind (cpu or gpu) in benchmarks/README.md,
between the marker lines ``<!-- results:cpu -->`` and ``<!-- /results:cpu -->``.

Reads the CPU JSON of benchmarks/conftest.py (older files too, without calibration) and the
GPU JSON of test_gpu.py; both write their reports through :func:`save`. Rows whose name starts
with ``calibration:`` measure the machine's ceilings: the best rate either side reached on
them is the ceiling of their unit, and every row of that unit gets its fraction of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from machine import describe_blas, override_warning

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
CALIBRATION = "calibration:"
# Row.work is in base units (FLOP, bytes, images, ops); the rate divides by the unit's scale.
UNIT_SCALE = {"GFLOP/s": 1e9, "GB/s": 1e9, "img/s": 1.0, "kop/s": 1e3}
HEADER = ["benchmark", "minigan ms", "torch ms", "ratio", "minigan rate", "of ceiling"]
MEMORY_HEADER = ["minigan peak MB", "torch peak MB"]  # when a row of the run has them


def results_dir() -> Path:
    """Where runs are written: ``$MINIGAN_BENCH_RESULTS``, else ``benchmarks/results``."""
    return Path(os.environ.get("MINIGAN_BENCH_RESULTS") or HERE / "results")


@dataclass
class Row:
    """One benchmark: best and median seconds of each side, and the work of one call."""

    name: str
    minigan_s: float
    torch_s: float
    minigan_median_s: float
    torch_median_s: float
    work: float  # FLOP, bytes or images, as ``unit`` says
    unit: str  # a key of UNIT_SCALE
    test: str = ""  # the pytest node id, when the row comes from one
    # peak MB of one call above the resident set before it, each side in a fresh process
    # (benchmarks/memory.py); None where not measured (kernel rows, older files)
    minigan_peak_mb: float | None = None
    torch_peak_mb: float | None = None

    @property
    def ratio(self) -> float:
        return self.minigan_s / self.torch_s

    @property
    def rate(self) -> float:
        return self.work / self.minigan_s / UNIT_SCALE[self.unit]

    @property
    def torch_rate(self) -> float:
        return self.work / self.torch_s / UNIT_SCALE[self.unit]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Row:
        if "minigan_ms" in d:  # test_gpu.py
            ms = ("minigan_ms", "torch_ms", "minigan_median_ms", "torch_median_ms")
            times = [(d.get(k) or 0.0) / 1e3 for k in ms]
            return cls(d["name"], *times, d["work"], d["unit"])
        work = d["work"]
        if "rate" not in d:  # older CPU files: every rate was work / 1e9 per second
            work *= UNIT_SCALE[d["unit"]] / 1e9
        keys = ("minigan_s", "torch_s", "minigan_median_s", "torch_median_s")
        peaks = (d.get("minigan_peak_mb"), d.get("torch_peak_mb"))
        return cls(d["name"], *(d[k] for k in keys), work, d["unit"], d.get("test", ""), *peaks)

    def to_json(self, ceilings: dict[str, float]) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio": self.ratio,
            "rate": self.rate,
            "ceiling": ceilings.get(self.unit),
            "ceiling_fraction": fraction(self, ceilings),
        }


def ceilings(rows: Sequence[Row]) -> dict[str, float]:
    """Per unit, the best rate either side reached on the calibration rows."""
    best: dict[str, float] = {}
    for r in rows:
        if r.name.startswith(CALIBRATION):
            best[r.unit] = max(best.get(r.unit, 0.0), r.rate, r.torch_rate)
    return best


def fraction(row: Row, ceilings: dict[str, float]) -> float | None:
    """minigan's rate on ``row`` over the ceiling of its unit (None: no ceiling)."""
    ceiling = ceilings.get(row.unit)
    return row.rate / ceiling if ceiling else None


@dataclass
class Run:
    """One results file: its kind ("cpu" or "gpu"), metadata and rows (calibration first)."""

    name: str
    kind: str
    meta: dict[str, Any]
    rows: list[Row]

    @property
    def ceilings(self) -> dict[str, float]:
        return ceilings(self.rows)


def load(path: Path) -> Run:
    data = json.loads(Path(path).read_text())
    rows = [Row.from_json(r) for r in data["rows"]]
    rows.sort(key=lambda r: not r.name.startswith(CALIBRATION))  # stable: calibration first
    kind = data.get("kind") or Path(path).stem.split("-")[0]
    meta = {k: v for k, v in data.items() if k != "rows"}
    return Run(Path(path).stem, kind, meta, rows)


# ------------------------------------------------------------------------------- formatting


def number(x: float) -> str:
    """Three significant digits below 10, one decimal above: 0.0123, 4.00, 17.5, 7878.9."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:#.3g}"


def has_memory(rows: Sequence[Row]) -> bool:
    return any(r.minigan_peak_mb is not None or r.torch_peak_mb is not None for r in rows)


def header(run: Run) -> list[str]:
    """HEADER, and MEMORY_HEADER when some row has peak memory."""
    return HEADER + (MEMORY_HEADER if has_memory(run.rows) else [])


def _mb(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}"


def cells(row: Row, ceilings: dict[str, float], memory: bool = False) -> list[str]:
    """The HEADER columns of one row (and the MEMORY_HEADER ones when ``memory``)."""
    share = fraction(row, ceilings)
    peaks = [_mb(row.minigan_peak_mb), _mb(row.torch_peak_mb)] if memory else []
    return [
        " ".join(row.name.split()),
        number(row.minigan_s * 1e3),
        number(row.torch_s * 1e3),
        f"{row.ratio:.2f}",
        f"{number(row.rate)} {row.unit}",
        "" if share is None else f"{share:.0%}",
        *peaks,
    ]


def text_table(run: Run) -> list[str]:
    """The table as fixed-width lines, for the terminal."""
    memory = has_memory(run.rows)
    lines = [header(run), *(cells(r, run.ceilings, memory) for r in run.rows)]
    widths = [max(len(cs[0]) for cs in lines), 10, 9, 6, 16, 10, 15, 13]
    return [
        " ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cs, widths)))
        for cs in lines
    ]


def describe(run: Run) -> str:
    """Device, date, threads, versions and command, in one line."""
    meta = run.meta
    parts = [meta.get("device", "?"), meta.get("date", "?")]
    if "threads" in meta:
        parts.append(f"{meta['threads']} threads")
    parts += [f"{k} {v}" for k, v in meta.get("versions", {}).items()]
    if meta.get("blas"):
        parts.append(f"BLAS {describe_blas(meta['blas'])}")
    text = ", ".join(str(p) for p in parts) + "."
    if meta.get("cpu_flags"):
        text += f" CPU flags: {' '.join(meta['cpu_flags'])}."
    warning = override_warning(meta.get("kernel_overrides") or {})
    if warning:
        text += f" **{warning}**"
    return text + (f" Command: `{meta['command']}`" if meta.get("command") else "")


MEMORY_NOTE = (
    " *peak MB*: the resident memory one step needs above what the process held before it "
    "(model, weights, optimizer state), each side measured in a fresh process "
    "(benchmarks/memory.py)."
)


def describe_ceilings(run: Run) -> str:
    found = run.ceilings
    if not found:
        return "No calibration rows in this run: no fraction of ceiling."
    listed = ", ".join(f"{number(v)} {unit}" for unit, v in found.items())
    return (
        f"Ceilings measured in the same run (best side of the calibration rows, where the "
        f"minigan column is NumPy or CuPy): {listed}. *of ceiling*: minigan's rate over the "
        "ceiling of its unit."
    )


def markdown(run: Run, level: int = 1, image: str | None = None) -> str:
    """The run as markdown: a heading of ``level``, the description, the table, the chart."""
    memory, columns = has_memory(run.rows), header(run)
    lines = [
        f"{'#' * level} minigan / PyTorch: {run.name}",
        "",
        describe(run),
        "",
        describe_ceilings(run)
        + " Ratio: minigan / PyTorch best times; below 1 minigan is faster."
        + (MEMORY_NOTE if memory else ""),
        "",
        "| " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * (len(columns) - 1),
        *("| " + " | ".join(cells(r, run.ceilings, memory)) + " |" for r in run.rows),
    ]
    if image:
        lines += ["", f"![minigan / PyTorch time ratios]({image})"]
    return "\n".join(lines) + "\n"


def chart(run: Run, path: Path) -> Any:
    """The ratio of every row as a horizontal bar chart (matplotlib), written to ``path``;
    returns what was drawn (a :class:`minigan.plots.BarChart`)."""
    from minigan.plots import bar_chart

    bars = [(" ".join(r.name.split()), r.ratio) for r in run.rows]
    width = max(960, 8 * max(len(label) for label, _ in bars) + 560)
    return bar_chart(
        path,
        bars,
        width=width,
        title=f"minigan / PyTorch time, {run.kind.upper()} {run.meta.get('date', '')}",
        xlabel="ratio of best times (below 1: minigan faster)",
        reference=1.0,
    )


# ------------------------------------------------------------------------------------ files


def render(path: Path) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.png`` next to the results JSON ``path``."""
    path = Path(path)
    run = load(path)
    md, png = path.with_suffix(".md"), path.with_suffix(".png")
    chart(run, png)
    md.write_text(markdown(run, image=png.name))
    return md, png


def save(data: dict[str, Any], kind: str, stamp: dt.datetime) -> Path:
    """Write a run as ``<kind>-<date>.json`` with its .md and .png into :func:`results_dir`."""
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{stamp:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"kind": kind, **data}, indent=2) + "\n")
    render(path)
    return path


def update_readme(paths: Sequence[Path], readme: Path = README) -> None:
    """Replace each kind's "Latest results" section of ``readme`` by the tables of ``paths``."""
    text = readme.read_text()
    runs = [(Path(p), load(p)) for p in paths]
    for kind in dict.fromkeys(run.kind for _, run in runs):
        parts = []
        for path, run in runs:
            if run.kind == kind:
                png = path.with_suffix(".png")
                image = os.path.relpath(png, readme.parent) if png.exists() else None
                parts.append(markdown(run, level=3, image=image))
        start, end = f"<!-- results:{kind} -->", f"<!-- /results:{kind} -->"
        section = f"{start}\n\n" + "\n".join(parts) + f"\n{end}"
        marked = f"^{re.escape(start)}$.*?^{re.escape(end)}$"  # markers on lines of their own
        found = re.search(marked, text, re.S | re.M)
        if found:
            text = text[: found.start()] + section + text[found.end() :]
        else:
            text = text.rstrip("\n") + f"\n\n## Latest results ({kind.upper()})\n\n{section}\n"
    readme.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results JSON files")
    parser.add_argument(
        "--readme", action="store_true", help="also put the tables into benchmarks/README.md"
    )
    args = parser.parse_args(argv)
    for path in args.paths:
        for written in render(path):
            print(f"wrote {written}")
    if args.readme:
        update_readme(args.paths)
        print(f"updated {README}")


if __name__ == "__main__":
    main()
