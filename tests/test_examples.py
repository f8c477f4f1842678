"""The example third-party plugin in examples/minigan-mlpgan, installed the way a user
installs it, trains and samples through the CLI, and passes its own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minigan-mlpgan"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """pip-install the example into a private folder; the environment that sees it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    )
    env["MINIGAN_STRICT_PLUGINS"] = "1"  # a broken example plugin must fail loudly here
    return env


def minigan_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "minigan", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, (
        f"minigan {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.mark.slow
def test_installed_example_trains_and_samples_through_the_cli(installed, tmp_path):
    listing = json.loads(minigan_cli(installed, "plugins", "--json", cwd=tmp_path).stdout)
    mlp = next(p for p in listing if p["name"] == "mlpgan")
    assert mlp["distribution"] == "minigan-mlpgan" and mlp["error"] is None
    assert mlp["provides"] == {
        "model": ["mlpgan", "wgan-gp"],
        "processor": ["posterize"],
        "dataset": ["checkers"],
        "command": ["mlpgan-info"],
    }

    help_text = minigan_cli(installed, "train", "mlpgan", "--help", cwd=tmp_path).stdout
    assert "--hidden" in help_text and "256" in help_text  # the plugin's Config as options

    minigan_cli(
        installed,
        "train",
        "mlpgan",
        "--data",
        "shapes",
        "--resolution",
        "16",
        "--channels",
        "1",
        "--limit",
        "256",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--hidden",
        "32",
        "--out",
        "run",
        "--no-progress",
        cwd=tmp_path,
    )
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 * 256 // 32
    assert all(np.isfinite(m["loss_d"]) and np.isfinite(m["loss_g"]) for m in metrics)
    assert (run / "samples" / "epoch-002.png").exists() or list((run / "samples").glob("*.png"))

    minigan_cli(installed, "sample", "run", "--seeds", "0-3", "--outdir", "out", cwd=tmp_path)
    import imageio.v3 as iio

    first = iio.imread(tmp_path / "out" / "seed0000.png")
    assert first.shape[:2] == (16, 16)
    again = tmp_path / "again"
    minigan_cli(installed, "sample", "run", "--seeds", "0", "--outdir", str(again), cwd=tmp_path)
    np.testing.assert_array_equal(
        iio.imread(again / "seed0000.png"), first
    )  # same seed, same image

    info = minigan_cli(installed, "mlpgan-info", cwd=tmp_path).stdout
    assert "generator:" in info and "parameters" in info


@pytest.mark.slow
def test_installed_example_dataset_processor_and_wgan(installed, tmp_path):
    """The example's checkers dataset, posterize processor and WGAN-GP (5 critic batches per
    step, its own metrics) through the command line."""
    listing = minigan_cli(installed, "datasets", cwd=tmp_path).stdout
    assert "checkers" in listing and "Random two-colour checkerboards" in listing

    done = minigan_cli(
        installed, "train", "wgan-gp", "--data", "checkers", "--resolution", "8",
        "--channels", "1", "--limit", "320", "--batch-size", "32", "--epochs", "1",
        "--hidden", "16", "--out", "wgan", "--no-progress", cwd=tmp_path,
    ).stdout  # fmt: skip
    # 10 batches of 32, 5 per step: 2 steps; the summary shows the declared metrics
    assert "trained 2 steps, 1 epoch in" in done and "wasserstein=" in done
    assert "D(x)" not in done and "gp=" in done
    lines = (tmp_path / "wgan/metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["batch"] for r in records] == [5, 10]  # the data position counts every batch
    assert {"loss_d", "loss_g", "wasserstein", "gp"} <= set(records[0])

    import imageio.v3 as iio

    iio.imwrite(tmp_path / "in.png", np.full((4, 4, 3), 200, np.uint8))
    minigan_cli(installed, "process", "posterize", "in.png", "-o", "out.png", cwd=tmp_path)
    assert (iio.imread(tmp_path / "out.png") == 170).all()  # round(200 / 255 * 3) / 3 = 2/3


@pytest.mark.slow
def test_example_plugin_passes_its_own_tests(installed, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=installed,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
