"""Benchmark harness: ``pytest benchmarks/ --benchmark`` runs minigan's kernels against PyTorch.

Without ``--benchmark`` every test here is skipped, so a plain ``pytest`` stays fast. A test
writes one row with the ``bench`` fixture::

    def test_something(bench):
        bench.compare("name", ours, theirs, work=2.0 * flop, unit="GFLOP/s")

minigan's side is timed by pytest-benchmark (``benchmark.pedantic``, one warm-up round and
five rounds); before each round, pytest-benchmark's untimed ``setup`` times one PyTorch call,
so the two alternate and machine noise hits both alike. The PyTorch times, the ratio, the work,
the rate and its fraction of the machine's ceiling go into ``benchmark.extra_info``, so
pytest-benchmark's ``--benchmark-autosave``, ``--benchmark-save``, ``--benchmark-json`` and
``--benchmark-compare`` keep them. With ``--benchmark-compare``, the summary also compares every
row's ratio with the baseline's, and ``--benchmark-ratio-fail=20%`` fails the session when a
ratio got worse by more than that.

Once per session the ``calibration`` fixture measures the machine's float32 GEMM rate and memory
copy bandwidth (the ceilings). The summary prints them and the rows, and writes
``<results>/cpu-<date>.json`` with its ``.md`` table and ``.png`` ratio chart (report.py), where
``<results>`` is ``$MINIGAN_BENCH_RESULTS`` or ``benchmarks/results``.

The model-step rows also carry the peak memory of one step of each side (``memory=`` of
``compare``; measured by benchmarks/memory.py in a fresh process per side, after the timing).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
import torch
from machine import describe_blas, describe_machine, kernel_overrides, override_warning
from memory import Memory
from report import CALIBRATION, UNIT_SCALE, Row, Run, ceilings, save, text_table

import minigan

THREADS = int(os.environ.get("MINIGAN_BENCH_THREADS", os.cpu_count() or 1))
ROUNDS, WARMUP = 5, 1


def _fraction(text: str) -> float:
    """'20%' or '0.2' as 0.2."""
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def pytest_addoption(parser: pytest.Parser) -> None:
    # An exact option name: pytest-benchmark's options all start with "--benchmark-", and an
    # exact match is never treated as an abbreviation of them.
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the minigan-vs-PyTorch benchmarks in benchmarks/ (skipped otherwise)",
    )
    parser.addoption(
        "--benchmark-ratio-fail",
        metavar="FRACTION",
        type=_fraction,
        default=None,
        help="with --benchmark-compare: fail when a minigan/PyTorch ratio is more than FRACTION "
        "(0.2 or 20%%) above the baseline's (minigan benchmarks)",
    )


@dataclass
class Results:
    """What the session measured: calibration rows, then one row per benchmark test."""

    calibration: list[Row] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    path: Path | None = None  # the JSON written
    comparison: list[str] = field(default_factory=list)  # ratio-comparison lines
    regressions: list[str] = field(default_factory=list)


RESULTS = pytest.StashKey[Results]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = Results()


def pytest_sessionstart(session: pytest.Session) -> None:
    """After pytest-benchmark loaded the --benchmark-compare baselines (in its configure)."""
    config = session.config
    if config.getoption("benchmark_ratio_fail") is not None and not _baselines(config):
        raise pytest.UsageError(
            "--benchmark-ratio-fail needs a baseline: --benchmark-compare[=NUM] found no saved run"
        )


def _baselines(config: pytest.Config) -> dict[str, dict[str, dict[str, Any]]]:
    """{file: {test node id: saved benchmark}} of the runs --benchmark-compare loaded."""
    return config._benchmarksession.compared_mapping or {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason="benchmarks run only with --benchmark")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


# ----------------------------------------------------------------------------------- timing


def _median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


# Calls shorter than this are timed after at least WARM_S of untimed calls of the same side,
# so that each side is timed as it runs in a loop of its own calls (NOTES item 36).
SHORT_S, WARM_S = 0.1, 0.02


def _warm(fn: Callable[[], object]) -> None:
    """Call ``fn`` (at least once) until :data:`WARM_S` have passed."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARM_S:
        fn()


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _alternate(
    ours: Callable[[], object], theirs: Callable[[], object], times: list[float], short: bool
) -> None:
    """pedantic's setup before each timed call of ``ours``: time one PyTorch call. For short
    calls, each timed call follows 20 ms of untimed calls of its own side: thread pools spin for a
    while after a parallel region (libgomp, which PyTorch and Numba share, and OpenBLAS), so
    a side timed right after the other would share the cores with the other's spinning
    threads — or find its own pool already awake."""
    if short:
        _warm(theirs)
    times.append(_time(theirs))
    if short:
        _warm(ours)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """Same thread count for PyTorch, Numba (and OpenBLAS, via the environment)."""
    torch.set_num_threads(THREADS)
    minigan.set_num_threads(THREADS)  # minigan's worker threads (every CPU kernel)


def _calibrate(
    name: str, ours: Callable[[], object], theirs: Callable[[], object], work: float, unit: str
) -> Row:
    """A calibration row: one warm-up call each, then three alternating pairs."""
    ours(), theirs()
    a, b = zip(*((_time(ours), _time(theirs)) for _ in range(3)))
    return Row(f"{CALIBRATION} {name}", min(a), min(b), _median(a), _median(b), work, unit)


@pytest.fixture(scope="session")
def calibration(request: pytest.FixtureRequest, _threads: None) -> dict[str, float]:
    """The ceilings, measured once per session: float32 GEMM 2048³ (NumPy/OpenBLAS against
    torch.mm) in GFLOP/s, and the bandwidth of a 256 MB copy (np.copyto against torch's
    ``copy_``, bytes read + written) in GB/s; the best side of each is the ceiling."""
    rows = request.config.stash[RESULTS].calibration
    options = request.config.getoption
    if rows or options("benchmark_disable") or options("benchmark_skip"):
        return ceilings(rows)
    n = 2048
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    gemm = f"GEMM {n}^3 f32, numpy vs torch.mm"
    rows.append(_calibrate(gemm, lambda: a @ b, lambda: torch.mm(ta, tb), 2.0 * n**3, "GFLOP/s"))
    src = np.ones(64 * 2**20, np.float32)
    dst = np.empty_like(src)
    tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)
    copy = "copy 256 MB, np.copyto vs torch copy_"
    rows.append(
        _calibrate(
            copy, lambda: np.copyto(dst, src), lambda: tdst.copy_(tsrc), 2.0 * src.nbytes, "GB/s"
        )
    )
    return ceilings(rows)


class Bench:
    """Writes one row per test: ``compare(name, ours, theirs, work, unit)`` (see the module)."""

    def __init__(self, benchmark: Any, ceilings: dict[str, float], results: Results) -> None:
        self.benchmark, self.ceilings, self.results = benchmark, ceilings, results

    def compare(
        self,
        name: str,
        ours: Callable[[], object],
        theirs: Callable[[], object],
        work: float,
        unit: str,
        memory: Memory | None = None,
    ) -> Row | None:
        """Time ``ours`` (minigan) against ``theirs`` (PyTorch), alternating. ``work`` is the
        work of one call in the base unit of ``unit``: FLOP for "GFLOP/s", bytes for "GB/s",
        images for "img/s", ops for "kop/s". With ``memory``, the peak memory of one call of
        each side is measured too, in fresh processes (benchmarks/memory.py). Returns the row
        (None under ``--benchmark-disable``)."""
        if unit not in UNIT_SCALE:
            raise ValueError(f"unit {unit!r}: expected one of {sorted(UNIT_SCALE)}")
        torch_s: list[float] = []
        ours(), theirs()  # first calls compile kernels: not what decides "short"
        short = _time(theirs) < SHORT_S and _time(ours) < SHORT_S
        self.benchmark.pedantic(
            ours,
            setup=lambda: _alternate(ours, theirs, torch_s, short),
            rounds=ROUNDS,
            warmup_rounds=WARMUP,
            iterations=1,
        )
        if self.benchmark.disabled:  # each side ran once, untimed
            return None
        mg, th, test = self.benchmark.stats.stats.data, torch_s[WARMUP:], self.benchmark.fullname
        row = Row(name, min(mg), min(th), _median(mg), _median(th), work, unit, test)
        if memory is not None:
            row.minigan_peak_mb = memory.measure("minigan", THREADS)
            row.torch_peak_mb = memory.measure("torch", THREADS)
        self.benchmark.extra_info.update(row.to_json(self.ceilings))
        self.results.rows.append(row)
        return row


@pytest.fixture
def bench(benchmark: Any, calibration: dict[str, float], request: pytest.FixtureRequest) -> Bench:
    return Bench(benchmark, calibration, request.config.stash[RESULTS])


# ---------------------------------------------------------------------------------- report


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """The BLAS kernel in use, and a warning when the environment forces one."""
    if not config.getoption("--benchmark"):
        return None
    lines = [f"minigan benchmarks: BLAS {describe_blas(describe_machine()['blas'])}"]
    warning = override_warning(kernel_overrides())
    return lines + ([warning] if warning else [])


def pytest_benchmark_update_json(config: pytest.Config, output_json: dict[str, Any]) -> None:
    """pytest-benchmark's saved runs and --benchmark-json also get the calibration rows."""
    rows = config.stash[RESULTS].calibration
    output_json["minigan_calibration"] = [r.to_json(ceilings(rows)) for r in rows]


def _compare(config: pytest.Config, results: Results) -> None:
    """Each row's ratio against the baselines' (their extra_info), and the rows whose ratio grew
    by more than --benchmark-ratio-fail."""
    fail = config.getoption("benchmark_ratio_fail")
    now = {r.test: r for r in results.rows}
    width = max(len(" ".join(r.name.split())) for r in results.rows)
    lines = results.comparison
    for path, baseline in _baselines(config).items():
        lines += [f"against {path}:", f"{'benchmark':<{width}} baseline    now  change"]
        before = {}  # the ceilings of the baseline run
        for test, saved in baseline.items():
            info = saved.get("extra_info", {})
            if info.get("ceiling"):
                before[info["unit"]] = info["ceiling"]
            if test not in now or "ratio" not in info:
                continue
            row = now[test]
            change = row.ratio / info["ratio"] - 1
            regressed = fail is not None and change > fail
            if regressed:
                results.regressions.append(f"{row.name}: {info['ratio']:.2f} -> {row.ratio:.2f}")
            lines.append(
                f"{' '.join(row.name.split()):<{width}} {info['ratio']:8.2f} {row.ratio:6.2f} "
                f"{change:+7.0%}{'  REGRESSED' if regressed else ''}"
            )
        for unit, ceiling in ceilings(results.calibration).items():
            if unit in before:
                lines.append(f"ceiling {unit}: {before[unit]:.1f} -> {ceiling:.1f}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    results = config.stash.get(RESULTS, None)
    if results is None or not results.rows:
        return
    stamp = dt.datetime.now().astimezone()
    all_rows = results.calibration + results.rows
    best = ceilings(all_rows)
    report = {
        **describe_machine(),  # device, cpu_flags, blas, kernel_overrides
        "date": stamp.isoformat(timespec="seconds"),
        "threads": THREADS,
        "command": shlex.join(["pytest", *sys.argv[1:]]),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "torch": torch.__version__,
        },
        "ceilings": best,
        "rows": [r.to_json(best) for r in all_rows],
    }
    results.path = save(report, "cpu", stamp)
    _compare(config, results)
    if results.regressions and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, None)
    if results is None or results.path is None:
        return
    tr = terminalreporter
    tr.section(f"minigan / PyTorch (CPU, {THREADS} threads), best of {ROUNDS} alternating rounds")
    for line in text_table(Run("", "cpu", {}, results.calibration + results.rows)):
        tr.write_line(line)
    tr.write_line(f"BLAS: {describe_blas(describe_machine()['blas'])}")
    warning = override_warning(kernel_overrides())
    if warning:
        tr.write_line(warning, red=True)
    tr.write_line(f"results written to {results.path} (and .md, .png)")
    if results.comparison:
        tr.section("minigan / PyTorch ratio against the baseline (lower is better)")
        for line in results.comparison:
            tr.write_line(line)
    if results.regressions:
        fail = config.getoption("benchmark_ratio_fail")
        tr.write_line(f"ratio worse than the baseline by more than {fail:.1%}:", red=True)
        for line in results.regressions:
            tr.write_line(f"  {line}", red=True)
