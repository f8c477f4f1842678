"""The benchmark harness: reports from results JSON (benchmarks/report.py), the bar chart they
draw (minigan.plots.bar_chart, matplotlib), and one real run of a tiny benchmark through
pytest."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from minigan.images import read_image
from minigan.plots import BarChart, bar_chart

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(ROOT / "benchmarks"))  # report.py imports its sibling machine.py
import machine  # noqa: E402
import memory  # noqa: E402


def _load_report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks/report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


report = _load_report()
Row = report.Row


def bars_drawn(chart: BarChart) -> list[tuple[float, tuple]]:
    """(length, colour) of every bar in the chart's matplotlib axes, top to bottom."""
    (ax,) = chart.figure.axes
    bars = sorted(ax.patches, key=lambda p: p.get_y())
    return [(p.get_width(), tuple(p.get_facecolor())) for p in bars]


def texts_drawn(chart: BarChart) -> list[str]:
    (ax,) = chart.figure.axes
    return [t.get_text().strip() for t in ax.texts]


def draw(tmp_path: Path, bars, **options) -> BarChart:
    """bar_chart into a PNG; checks that the PNG has the size the chart reports."""
    path = tmp_path / "chart.png"
    chart = bar_chart(path, bars, **options)
    height, width = read_image(path).shape[:2]
    assert (width, height) == chart.size
    return chart


BLUE, ORANGE = to_rgba("C0"), to_rgba("C1")


# ------------------------------------------------------------------------------- reports

CALIBRATION_ROWS = [  # GEMM: numpy 100, torch 200 GFLOP/s; copy: numpy 10, torch 5 GB/s
    Row("calibration: GEMM", 0.2, 0.1, 0.2, 0.1, 2e10, "GFLOP/s"),
    Row("calibration: copy", 0.1, 0.2, 0.1, 0.2, 1e9, "GB/s"),
]
ROWS = [
    Row("conv2d forward  N8", 0.05, 0.04, 0.05, 0.04, 1e10, "GFLOP/s"),  # 200 GFLOP/s: 100%
    Row("batch_norm (8, 4)", 0.001234, 0.002468, 0.0013, 0.0025, 4.936e6, "GB/s"),  # 4 GB/s
    Row("dcgan step", 7.87894, 3.0, 8.0, 3.1, 64, "img/s", "benchmarks/x.py::test_step"),
]


@pytest.fixture
def saved(tmp_path, monkeypatch) -> Path:
    """A CPU run written by report.save, as the harness writes it, into a tmp results dir."""
    monkeypatch.setenv("MINIGAN_BENCH_RESULTS", str(tmp_path / "results"))
    rows = CALIBRATION_ROWS + ROWS
    best = report.ceilings(rows)
    data = {
        "device": "Test CPU",
        "date": "2026-01-02T03:04:05+00:00",
        "threads": 2,
        "command": "pytest benchmarks/ --benchmark",
        "versions": {"numpy": "2.4"},
        "ceilings": best,
        "rows": [r.to_json(best) for r in rows],
    }
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5)
    return report.save(data, "cpu", stamp)


def test_report_markdown_rows_ratios_and_ceilings(saved):
    assert saved == saved.parent / "cpu-20260102-030405.json"
    md = saved.with_suffix(".md").read_text()
    assert "Test CPU, 2026-01-02T03:04:05+00:00, 2 threads, numpy 2.4." in md
    assert "`pytest benchmarks/ --benchmark`" in md
    assert "200.0 GFLOP/s, 10.0 GB/s" in md  # the ceilings: best side of each calibration row
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table == [
        "| benchmark | minigan ms | torch ms | ratio | minigan rate | of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        "| calibration: GEMM | 200.0 | 100.0 | 2.00 | 100.0 GFLOP/s | 50% |",
        "| calibration: copy | 100.0 | 200.0 | 0.50 | 10.0 GB/s | 100% |",
        "| conv2d forward N8 | 50.0 | 40.0 | 1.25 | 200.0 GFLOP/s | 100% |",
        "| batch_norm (8, 4) | 1.23 | 2.47 | 0.50 | 4.00 GB/s | 40% |",
        "| dcgan step | 7878.9 | 3000.0 | 2.63 | 8.12 img/s |  |",
    ]
    assert "![minigan / PyTorch time ratios](cpu-20260102-030405.png)" in md
    rows = json.loads(saved.read_text())["rows"]
    assert rows[3]["ceiling_fraction"] == pytest.approx(0.4)
    assert rows[4]["ceiling_fraction"] is None and rows[4]["test"] == "benchmarks/x.py::test_step"


def test_report_png_has_a_bar_per_row_of_its_ratio(saved, tmp_path):
    png = saved.with_suffix(".png")
    n = len(CALIBRATION_ROWS + ROWS)
    run = report.load(saved)
    chart = report.chart(run, tmp_path / "again.png")
    assert read_image(png).shape[:2] == (chart.size[1], chart.size[0]) == (140 + 30 * n, 960)
    ratios = [r.ratio for r in CALIBRATION_ROWS + ROWS]  # 2.0, 0.5, 1.25, 0.5, 2.63
    drawn = bars_drawn(chart)
    np.testing.assert_allclose([length for length, _ in drawn], ratios)
    assert [colour for _, colour in drawn] == [ORANGE if r > 1 else BLUE for r in ratios]
    assert chart.labels[2] == "conv2d forward N8" and chart.xmax == 3.0  # ticks of 0.5


def test_report_reads_older_cpu_files_and_gpu_files(tmp_path):
    old = {  # before calibration: no "rate", and work / 1e9 per second was every row's rate
        "device": "Old CPU",
        "date": "2026-11-22T18:55:52+00:00",
        "rows": [
            {"name": "DCGAN step", "minigan_s": 2.0, "torch_s": 1.0, "minigan_median_s": 2.0,
             "torch_median_s": 1.0, "work": 256e9, "unit": "img/s", "ratio": 2.0},
        ],
    }  # fmt: skip
    gpu = {
        "device": "Test GPU",
        "date": "2026-11-23T10:00:00+00:00",
        "rows": [
            {"name": "calibration: SGEMM", "minigan_ms": 2.0, "torch_ms": 1.0, "work": 1e10,
             "unit": "GFLOP/s", "ratio": 2.0, "rate": 5000.0, "strategy": None},
            {"name": "conv2d forward", "minigan_ms": 0.5, "torch_ms": 0.25, "work": 2.5e9,
             "unit": "GFLOP/s", "ratio": 2.0, "rate": 5000.0, "torch_tf32_ms": 0.1},
        ],
    }  # fmt: skip
    (tmp_path / "cpu-old.json").write_text(json.dumps(old))
    (tmp_path / "gpu-new.json").write_text(json.dumps(gpu))
    subprocess.run(
        [sys.executable, ROOT / "benchmarks/report.py", tmp_path / "cpu-old.json",
         tmp_path / "gpu-new.json"],
        check=True, capture_output=True,
    )  # fmt: skip
    md = (tmp_path / "cpu-old.md").read_text()
    assert "| DCGAN step | 2000.0 | 1000.0 | 2.00 | 128.0 img/s |  |" in md
    assert "No calibration rows" in md
    md = (tmp_path / "gpu-new.md").read_text()
    assert "10000.0 GFLOP/s" in md  # the ceiling: torch's SGEMM
    assert "| conv2d forward | 0.500 | 0.250 | 2.00 | 5000.0 GFLOP/s | 50% |" in md
    assert read_image(tmp_path / "gpu-new.png").shape[:2] == (140 + 2 * 30, 960)


def test_readme_section_replaced_between_markers_or_appended(saved, tmp_path):
    readme = tmp_path / "README.md"
    marker = "see `<!-- results:cpu -->` below\n"  # in prose: not a marker
    readme.write_text(marker + "<!-- results:cpu -->\nold table\n<!-- /results:cpu -->\nend\n")
    report.update_readme([saved], readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith(marker) and text.endswith("end\n")
    assert "### minigan / PyTorch: cpu-20260102-030405" in text
    assert "| conv2d forward N8 | 50.0 | 40.0 | 1.25 | 200.0 GFLOP/s | 100% |" in text
    assert "](results/cpu-20260102-030405.png)" in text
    readme.write_text("no markers\n")
    report.update_readme([saved], readme)
    assert "## Latest results (CPU)\n\n<!-- results:cpu -->" in readme.read_text()


# ----------------------------------------------------------------------------- bar_chart


def test_report_peak_memory_columns_only_when_measured(tmp_path):
    """Rows with peak MB get two more columns (empty for rows without); a run without any keeps
    the six columns, and a row's JSON round-trips with or without the peaks."""
    step = Row("dcgan step", 2.0, 1.0, 2.0, 1.0, 64, "img/s", "x.py::t", 301.6, 226.8)
    kernel = Row("conv2d forward N8", 0.05, 0.04, 0.05, 0.04, 1e10, "GFLOP/s")
    assert Row.from_json(step.to_json({})) == step
    assert Row.from_json(kernel.to_json({})).minigan_peak_mb is None
    old = {k: v for k, v in step.to_json({}).items() if not k.endswith("_peak_mb")}
    assert Row.from_json(old).torch_peak_mb is None  # files written before the column
    table = report.markdown(report.Run("r", "cpu", {}, [kernel, step])).splitlines()
    rows = [line for line in table if line.startswith("| ")]
    assert rows[0].endswith("| of ceiling | minigan peak MB | torch peak MB |")
    assert rows[2].endswith("|  |  |  |") and rows[3].endswith("|  | 302 | 227 |")
    assert any("*peak MB*" in line for line in table)
    assert report.text_table(report.Run("r", "cpu", {}, [kernel, step]))[0].endswith("peak MB")
    plain = report.markdown(report.Run("r", "cpu", {}, [kernel])).splitlines()
    assert "peak MB" not in "\n".join(plain)


@pytest.mark.slow
@pytest.mark.parametrize("side", memory.SIDES)
def test_peak_memory_of_a_step_with_a_known_peak(side):
    """memory.py in a fresh process, on a step that fills a fresh 160 MB array and drops it:
    the peak is those 160 MB (give or take a few MB of other pages), whatever ran before."""
    peak = memory.Memory("memory", "probe", (160,)).measure(side, threads=1, timeout=300)
    assert 160 - 2 <= peak < 160 + 24  # RSS moves by a page here and there


def test_peak_memory_errors_name_the_side_and_the_step():
    with pytest.raises(ValueError, match="side 'numpy'"):
        memory.Memory("memory", "probe", (1,)).measure("numpy")
    with pytest.raises(RuntimeError, match="no_such_factory.*minigan"):
        memory.Memory("memory", "no_such_factory").measure("minigan", timeout=300)


def test_machine_doctests():
    import doctest

    assert doctest.testmod(machine).failed == 0


def test_machine_reads_the_blas_kernel_in_use():
    libraries = machine.blas_libraries()  # NumPy is loaded: its BLAS is listed
    blas = [lib for lib in libraries if lib["user_api"] == "blas"]
    assert blas and all(lib["internal_api"] and lib["num_threads"] >= 1 for lib in blas)
    if blas[0]["internal_api"] == "openblas":
        assert blas[0]["architecture"]  # the kernel OpenBLAS picked, e.g. SkylakeX or Haswell
        assert blas[0]["architecture"] in machine.describe_blas(libraries)


def test_kernel_overrides_warn_and_reach_the_report(saved, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # a thread count forces no kernel
    found = machine.kernel_overrides()
    assert found == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    warning = machine.override_warning(found)
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in warning
    run = report.load(saved)
    run.meta.update(
        blas=[{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31",
               "architecture": "Haswell", "num_threads": 2}],
        cpu_flags=["avx2", "avx512f"],
        kernel_overrides=found,
    )
    text = report.markdown(run)
    assert "BLAS openblas 0.3.31 (Haswell kernel, 2 threads)" in text
    assert "CPU flags: avx2 avx512f" in text and "WARNING: OPENBLAS_CORETYPE=Haswell" in text
    assert machine.override_warning({}) is None


def test_cpu_model_and_flags_from_cpuinfo():
    info = "processor\t: 0\nmodel name\t: AMD EPYC 9R45\nflags\t\t: fpu avx2 avx512f sse4_2\n"
    assert machine.cpu_model(info) == "AMD EPYC 9R45"
    assert machine.cpu_flags(info) == ["avx2", "avx512f", "sse4_2"]
    arm = "Features\t: fp asimd sve crc32\n"
    assert machine.cpu_flags(arm) == ["asimd", "sve"]


def test_bar_chart_one_bar(tmp_path):
    chart = draw(tmp_path, [("only", 0.8)], title="one")
    assert chart.size == (960, 170)  # 1.4 inch + 0.3 a bar, at 100 dpi
    assert bars_drawn(chart) == [(pytest.approx(0.8), BLUE)]
    assert chart.xmax == 1.25  # the reference 1.0, rounded up to a tick of 0.25
    assert chart.figure.axes[0].get_title() == "one"


def test_bar_chart_zero_is_an_empty_bar_and_nan_draws_none(tmp_path):
    chart = draw(tmp_path, [("zero", 0.0), ("one", 1.0), ("nan", float("nan")), ("two", 2.0)])
    assert [length for length, _ in bars_drawn(chart)] == [0.0, 1.0, 0.0, 2.0]
    assert texts_drawn(chart) == ["0", "1", "n/a", "2"]
    assert [c for _, c in bars_drawn(chart)] == [BLUE, BLUE, BLUE, ORANGE]  # above 1: orange


def test_bar_chart_huge_value_keeps_the_scale_linear(tmp_path):
    chart = draw(tmp_path, [("huge", 1e6), ("one", 1.0), ("half", 5e5)])
    assert [length for length, _ in bars_drawn(chart)] == [1e6, 1.0, 5e5]
    (ax,) = chart.figure.axes
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0 and chart.xmax >= 1e6


def test_bar_chart_cuts_bars_beyond_xmax_and_infinite_ones(tmp_path):
    chart = draw(tmp_path, [("ok", 2.0), ("cut", 12.0), ("inf", float("inf"))], xmax=4)
    assert [length for length, _ in bars_drawn(chart)] == [2.0, 4.0, 4.0]  # to the edge
    assert chart.cut == [False, True, True]
    assert texts_drawn(chart) == ["2", "12", "inf"]  # the true values are written
    (ax,) = chart.figure.axes
    notches = [line for line in ax.lines if line.get_color() == "white"]
    assert len(notches) == 2  # one white notch per cut bar


def test_bar_chart_rejects_nothing_and_negative_values(tmp_path):
    with pytest.raises(ValueError, match="no bars"):
        bar_chart(tmp_path / "x.png", [])
    with pytest.raises(ValueError, match="negative"):
        bar_chart(tmp_path / "x.png", [("a", 1.0), ("b", -0.5)])


# ------------------------------------------------------------------------------- harness


def _baseline(test: str, ratio: float) -> dict:
    """A saved pytest-benchmark run holding one benchmark with ``ratio`` in its extra_info."""
    fields = ["min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "total"]
    stats = {k: 0.01 for k in fields}
    stats |= {"stddev": 0.0, "iqr": 0.0, "ops": 100.0, "rounds": 5, "iterations": 1}
    stats |= {"iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0"}
    bench = {"group": None, "name": test.split("::")[1], "fullname": test, "params": None,
             "param": None, "options": {}, "stats": stats,
             "extra_info": {"ratio": ratio, "unit": "GB/s", "ceiling": 1.0}}  # fmt: skip
    return {"machine_info": {}, "commit_info": {}, "benchmarks": [bench], "version": "5"}


@pytest.mark.slow
def test_benchmark_run_writes_reports_and_fails_on_a_worse_ratio(tmp_path):
    """One tiny row through pytest, compared with a baseline whose ratio no run can match.
    Run from tmp_path: pytest-benchmark 5.3 fails to warn about a different machine_info when
    its storage is outside the working directory."""
    from pytest_benchmark.utils import get_machine_id

    test = "benchmarks/test_kernels.py::test_batch_norm_fwd_bwd[(64, 512, 4, 4)]"
    storage = tmp_path / "storage"
    (storage / get_machine_id()).mkdir(parents=True)
    (storage / get_machine_id() / "0001_base.json").write_text(json.dumps(_baseline(test, 1e-6)))
    results, pb_json = tmp_path / "results", tmp_path / "pytest-benchmark.json"
    args = ["-k", "batch_norm and 512", "-p", "no:cacheprovider", "--benchmark-quiet"]
    args += ["--benchmark-storage=storage", "--benchmark-compare=0001"]
    args += ["--benchmark-ratio-fail=20%", f"--benchmark-json={pb_json}"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", ROOT / "benchmarks/test_kernels.py", "--benchmark", *args],
        cwd=tmp_path, env={**os.environ, "MINIGAN_BENCH_RESULTS": str(results)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the test passed, the ratio comparison failed
    assert "1 passed" in out and "REGRESSED" in out and "worse than the baseline" in out

    (path,) = results.glob("cpu-*.json")
    assert path.with_suffix(".md").exists()
    assert read_image(path.with_suffix(".png")).shape[1] == 960
    data = json.loads(path.read_text())
    calibration, row = data["rows"][:2], data["rows"][2]
    assert [r["unit"] for r in calibration] == ["GFLOP/s", "GB/s"]
    assert all(r["name"].startswith("calibration:") for r in calibration)
    assert set(data["ceilings"]) == {"GFLOP/s", "GB/s"}
    assert any(lib["user_api"] == "blas" for lib in data["blas"])  # the BLAS kernel in use
    assert isinstance(data["cpu_flags"], list) and "kernel_overrides" in data
    assert "minigan benchmarks: BLAS" in out  # in the session header
    assert row["test"] == test and row["unit"] == "GB/s"
    assert row["ratio"] == pytest.approx(row["minigan_s"] / row["torch_s"])
    assert row["ceiling_fraction"] == pytest.approx(row["rate"] / data["ceilings"]["GB/s"])

    (bench,) = json.loads(pb_json.read_text())["benchmarks"]  # pytest-benchmark's own file
    assert bench["extra_info"]["ratio"] == pytest.approx(row["ratio"])
    assert bench["stats"]["min"] == pytest.approx(row["minigan_s"])
    assert bench["stats"]["rounds"] == 5


def test_ratio_fail_without_a_baseline_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", ROOT / "benchmarks/test_kernels.py", "--benchmark",
         "-p", "no:cacheprovider", "--benchmark-storage=empty", "--benchmark-compare",
         "--benchmark-ratio-fail=20%", "-k", "no_such_test"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--benchmark-ratio-fail needs a baseline" in done.stderr


def test_every_benchmark_file_is_collectable_without_running():
    """``pytest benchmarks/ --benchmark`` (the README's command) imports every file there, for
    its doctests: a research script whose work runs at import (``stylegan_divergence.py`` did,
    reading ``sys.argv``) breaks the whole command. Collecting must succeed, and quickly."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         str(ROOT / "benchmarks")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "error" not in done.stdout.lower().split("collected")[-1]


def test_metric_probe_redraws_the_baseline_images_exactly():
    """benchmarks/metric_probes.py's "unchanged" set is the held-out real set ``measure``'s
    baseline scores (images num..2num of shapes seed 0), pixel for pixel; its other sets keep
    the shapes and change only how they are drawn."""
    from minigan.data import open_dataset

    probes = importlib.import_module("metric_probes")
    num = 40
    p = probes.shape_parameters(2 * num, probes.RESOLUTION, 3, seed=0)
    held_out = probes.ShapeParameters(*(a[num:] for a in p))
    sets = probes.variants(held_out, seed=1)
    real, _ = open_dataset("shapes", resolution=32, channels=3, limit=2 * num)[num : 2 * num]
    np.testing.assert_array_equal(sets["unchanged (the renderer: 1 px ramp)"](), real)
    hard = sets["no antialiasing (hard edges)"]()
    changed = np.any(hard != real, axis=1)  # only edge pixels differ, by less than a step
    assert 0.02 < changed.mean() < 0.3
    colours = [len(np.unique(image.reshape(3, -1), axis=1).T) for image in hard]
    assert max(colours) == 2, "no antialiasing: every pixel is the shape's or the background's"
