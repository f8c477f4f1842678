"""Benchmark harness: ``pytest benchmarks/ --benchmark`` runs minigan's kernels against PyTorch.

Without ``--benchmark`` every test here is skipped, so a plain ``pytest`` stays fast. Each
benchmark times minigan and PyTorch on the same inputs, in the same process, with the same
thread count, alternating the two after a warm-up; the ``bench`` fixture records the rows, and
the terminal summary prints the ratio table and writes it as JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

RESULTS_DIR = Path(__file__).parent / "results"
THREADS = int(os.environ.get("MINIGAN_BENCH_THREADS", os.cpu_count() or 1))
_ROWS: list[Row] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    # An exact option name: pytest-benchmark's options all start with "--benchmark-", and an
    # exact match is never treated as an abbreviation of them.
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the minigan-vs-PyTorch benchmarks in benchmarks/ (skipped otherwise)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason="benchmarks run only with --benchmark")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


@dataclass
class Row:
    """One benchmark result: best and median seconds of each side, and the work done."""

    name: str
    minigan_s: float
    torch_s: float
    minigan_median_s: float
    torch_median_s: float
    work: float  # FLOP or bytes
    unit: str  # "GFLOP/s" or "GB/s"

    @property
    def ratio(self) -> float:
        return self.minigan_s / self.torch_s


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Bench:
    """Times minigan against torch: ``warmup`` calls each, then ``reps`` alternating pairs."""

    def __init__(self, reps: int = 5, warmup: int = 1) -> None:
        self.reps, self.warmup = reps, warmup

    def compare(
        self,
        name: str,
        minigan_fn: Callable[[], object],
        torch_fn: Callable[[], object],
        work: float,
        unit: str,
    ) -> Row:
        for _ in range(self.warmup):
            minigan_fn()
            torch_fn()
        ours, theirs = [], []
        for _ in range(self.reps):  # alternate, so machine noise hits both sides alike
            ours.append(_time(minigan_fn))
            theirs.append(_time(torch_fn))
        row = Row(
            name,
            min(ours),
            min(theirs),
            float(np.median(ours)),
            float(np.median(theirs)),
            work,
            unit,
        )
        _ROWS.append(row)
        return row


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """Same thread count for PyTorch, Numba (and OpenBLAS, via the environment)."""
    torch.set_num_threads(THREADS)
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


@pytest.fixture
def bench() -> Bench:
    return Bench()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("minigan / PyTorch (CPU), best of repetitions")
    write(f"{'benchmark':<46} {'minigan ms':>10} {'torch ms':>9} {'ratio':>6} {'minigan':>15}")
    for r in _ROWS:
        rate = r.work / r.minigan_s / 1e9
        write(
            f"{r.name:<46} {r.minigan_s * 1e3:10.1f} {r.torch_s * 1e3:9.1f} "
            f"{r.ratio:6.2f} {rate:8.1f} {r.unit}"
        )
    stamp = dt.datetime.now().astimezone()
    report = {
        "device": _cpu_model(),
        "date": stamp.isoformat(timespec="seconds"),
        "threads": THREADS,
        "command": " ".join(["pytest", *sys.argv[1:]]),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "torch": torch.__version__,
        },
        "rows": [{**asdict(r), "ratio": r.ratio} for r in _ROWS],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"cpu-{stamp:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    write(f"results written to {path}")
