"""``minigan train MODEL`` and ``minigan sample`` through click's CliRunner."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Literal

import numpy as np
import pytest
from click.testing import CliRunner
from test_train import ToyGAN

from minigan import hookimpl
from minigan import images as imaging
from minigan.cli import config_options, main, parse_seeds
from minigan.registry import Registry, get_registry, set_registry

TINY = ["--g-width", "4", "--d-width", "4", "--batch-size", "16", "--limit", "64"]


def invoke(*args: str, cwd=None):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def tiny_run(tmp_path):
    """A dcgan run on 64 shapes, 2 epochs of 4 steps."""
    out = tmp_path / "run"
    result = invoke("train", "dcgan", *TINY, "--epochs", "2", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    return out


def test_train_lists_the_registered_models():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    assert "dcgan" in result.output


def test_train_help_shows_model_options_with_defaults():
    result = invoke("train", "dcgan", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for expected in [
        "--latent-dim INTEGER",
        "[default: 100]",
        "--g-width",
        "auto: 64 at 28x28, 32 at 32x32, 64 at 64x64",
        "--label-smoothing",
        "--layered / --no-layered",
        "auto: on when the training images are flat two-colour pictures",
        "--mask [conv|implicit]",
        "auto: 'implicit' with the layered output, else 'conv'",
        "--ema",
        "--data TEXT",
        "[default: shapes]",
        "--epochs INTEGER",
        "--out DIRECTORY",
        "[default: runs/dcgan]",
        "--resume",
        "--device [cpu|cuda]",
        "--checkpoint-every",
        "--keep INTEGER",
    ]:
        assert expected in text, expected


def test_train_writes_a_run_and_refuses_to_overwrite_it(tiny_run):
    names = sorted(os.listdir(tiny_run))
    assert names == sorted(
        [
            "checkpoints",
            "config.json",
            "losses.png",
            "metrics.jsonl",
            "progress.gif",
            "real_samples.png",
            "samples",
        ]
    )
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["model"] == "dcgan" and config["config"]["g_width"] == 4
    assert config["config"]["lr"] == 5e-4  # "auto" resolved (32x32, with classes), recorded
    assert config["config"]["ema"] == 0.995
    assert config["data"]["spec"] == "shapes" and config["data"]["limit"] == 64
    assert len((tiny_run / "metrics.jsonl").read_text().splitlines()) == 8

    again = invoke("train", "dcgan", *TINY, "--out", str(tiny_run), "--no-progress")
    assert again.exit_code != 0
    assert "already holds a training run" in again.output and "--resume" in again.output
    assert "Traceback" not in again.output


def test_max_steps_then_resume_continues(tmp_path):
    out = str(tmp_path / "run")
    first = invoke(
        "train", "dcgan", *TINY, "--epochs", "2", "--max-steps", "3", "--out", out, "--no-progress"
    )
    assert first.exit_code == 0, first.output
    assert len(open(os.path.join(out, "metrics.jsonl")).readlines()) == 3
    conflict = invoke("train", "dcgan", "--batch-size", "8", "--out", out, "--resume")
    assert conflict.exit_code != 0 and "batch_size=8" in conflict.output
    # --resume takes every setting from the run: nothing else needs repeating
    second = invoke("train", "dcgan", "--out", out, "--resume", "--no-progress")
    assert second.exit_code == 0, second.output
    steps = [json.loads(line)["step"] for line in open(os.path.join(out, "metrics.jsonl"))]
    assert steps == list(range(1, 9))


def test_sample_grid_and_outdir_agree(tiny_run, tmp_path):
    grid_path = tmp_path / "grid.png"
    result = invoke("sample", str(tiny_run), "--seeds", "0-2,7", "--grid", str(grid_path))
    assert result.exit_code == 0, result.output
    grid = imaging.read_image(grid_path)
    assert grid.shape == (2 * 34 + 2, 2 * 34 + 2, 3)
    meta = imaging.read_metadata(grid_path)
    assert (
        meta["model"] == "dcgan"
        and meta["seeds"] == "0-2,7"
        and "step-000008" in meta["checkpoint"]
    )

    outdir = tmp_path / "each"
    ckpt = tiny_run / "checkpoints" / "step-000008.safetensors"
    result = invoke("sample", str(ckpt), "--seeds", "7,0", "--outdir", str(outdir))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(outdir)) == ["seed0000.png", "seed0007.png"]
    seed7 = imaging.read_image(outdir / "seed0007.png")
    assert seed7.shape == (32, 32, 3)
    assert imaging.read_metadata(outdir / "seed0007.png")["seed"] == "7"
    # the same seed gives the same image (in the grid, seed 7 is the fourth tile)
    assert np.abs(seed7.astype(int) - grid[36:68, 36:68].astype(int)).max() <= 1


def test_sample_errors_are_clean(tmp_path):
    missing = invoke("sample", str(tmp_path / "nope.safetensors"))
    assert missing.exit_code != 0 and "nope.safetensors" in missing.output
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    broken = invoke("sample", str(bad))
    assert broken.exit_code != 0 and "bad.safetensors" in broken.output
    seeds = invoke("sample", str(bad), "--seeds", "9-3")
    assert seeds.exit_code != 0 and "--seeds" in seeds.output
    for result in (missing, broken, seeds):
        assert "Traceback" not in result.output


def test_unknown_model_and_bad_data_are_clean_errors(tmp_path):
    unknown = invoke("train", "nosuchgan")
    assert unknown.exit_code != 0 and "unknown model 'nosuchgan'" in unknown.output
    assert "dcgan" in unknown.output
    bad_data = invoke("train", "dcgan", "--data", "nosuchdata", "--out", str(tmp_path / "r"))
    assert bad_data.exit_code != 0 and "nosuchdata" in bad_data.output
    bad_size = invoke("train", "dcgan", "--resolution", "48", "--out", str(tmp_path / "s"), *TINY)
    assert bad_size.exit_code != 0 and "--resolution" in bad_size.output
    bad_policy = invoke("train", "dcgan", "--diffaugment", "color,flip", "--out",
                        str(tmp_path / "p"), *TINY)  # fmt: skip
    assert bad_policy.exit_code != 0 and "unknown op 'flip'" in bad_policy.output
    bad_classes = invoke("train", "dcgan", "--num-classes", "4", "--out", str(tmp_path / "c"),
                         *TINY)  # fmt: skip
    assert bad_classes.exit_code != 0
    assert "num_classes is 4, but dataset 'shapes'" in bad_classes.output
    lone_class_loss = invoke("train", "dcgan", "--num-classes", "0", "--class-loss", "1",
                             "--out", str(tmp_path / "l"), *TINY)  # fmt: skip
    assert lone_class_loss.exit_code != 0
    assert "class_loss" in lone_class_loss.output and "class-conditional" in lone_class_loss.output
    for result in (unknown, bad_data, bad_size, bad_policy, bad_classes, lone_class_loss):
        assert "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1  # one line naming the fault (click may add usage hints)


def test_train_on_a_folder_of_images(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        imaging.save_image(folder / f"{i}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    out = tmp_path / "run"
    result = invoke(
        "train", "dcgan", "--data", str(folder), "--resolution", "28", "--channels", "1",
        "--g-width", "2", "--d-width", "2", "--batch-size", "8", "--epochs", "1",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["image_shape"] == [1, 28, 28] and config["data"]["size"] == 20
    assert imaging.read_image(out / "samples" / "epoch-001.png").ndim == 3
    assert config["config"]["num_classes"] == 0 and "classes" not in config  # no labels
    assert config["config"]["layered"] is False  # noise pictures are not two-colour images
    assert config["config"]["mask"] == "conv"
    no_classes = invoke("sample", str(out), "--class", "1")
    assert no_classes.exit_code == 2 and "not class-conditional" in no_classes.output
    forced = invoke(
        "train", "dcgan", "--data", str(folder), "--resolution", "28", "--num-classes", "3",
        "--batch-size", "8", "--epochs", "1", "--out", str(tmp_path / "forced"), "--no-progress",
    )  # fmt: skip
    assert forced.exit_code != 0 and "Traceback" not in forced.output
    assert "num_classes is 3" in forced.output and "has no labels" in forced.output


def test_a_labelled_run_is_class_conditional_and_sample_takes_a_class(tiny_run, tmp_path):
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["config"]["num_classes"] == 6 and config["config"]["loss"] == "hinge"
    assert config["config"]["layered"] is True  # shapes are flat two-colour images
    assert config["config"]["mask"] == "implicit"
    assert config["classes"] == ["circle", "square", "triangle", "star", "cross", "ellipse"]
    by_name, by_index, own = tmp_path / "name", tmp_path / "index", tmp_path / "own"
    assert invoke("sample", str(tiny_run), "--seeds", "0-5", "--class", "star",
                  "--outdir", str(by_name)).exit_code == 0  # fmt: skip
    assert invoke("sample", str(tiny_run), "--seeds", "0-5", "--class", "3",
                  "--outdir", str(by_index)).exit_code == 0  # fmt: skip
    assert invoke("sample", str(tiny_run), "--seeds", "0-5", "--outdir", str(own)).exit_code == 0
    name = "seed0000.png"
    assert np.array_equal(imaging.read_image(by_name / name), imaging.read_image(by_index / name))
    assert imaging.read_metadata(by_name / name)["label"] == "3"
    same = [
        np.array_equal(imaging.read_image(by_name / f), imaging.read_image(own / f))
        for f in sorted(os.listdir(own))
    ]
    assert same[3] and not all(same)  # seed 3 has class 3 (star) anyway
    bad = invoke("sample", str(tiny_run), "--class", "hexagon")
    assert bad.exit_code == 2
    assert "'hexagon' is not one of the classes (0-5: circle, square" in bad.output


class ToyPlugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register("toy", ToyGAN)


def test_a_plugin_model_gets_its_options_for_free(tmp_path):
    registry = Registry(load_entry_points=False, quiet=True)
    for name in ("datasets",):
        registry.add_plugin(get_registry().pm.get_plugin(name), name)
    registry.add_plugin(ToyPlugin, "toy-plugin")
    previous = set_registry(registry)
    try:
        help_text = invoke("train", "toy", "--help").output
        assert "--hidden INTEGER" in help_text and "hidden units" in help_text
        assert "[default: 2; x>=1]" in help_text  # ToyGAN.train_defaults["epochs"]
        models = invoke("models").output
        assert "toy" in models
    finally:
        set_registry(previous)


def test_config_options_types():
    @dataclasses.dataclass
    class Config:
        flag: bool = dataclasses.field(default=True, metadata={"help": "a switch"})
        betas: tuple[float, float] = (0.5, 0.9)
        mode: Literal["a", "b"] = "a"
        width: int | None = dataclasses.field(default=None, metadata={"default_help": "auto"})

    flag, betas, mode, width = config_options(Config)
    assert flag.opts == ["--flag"] and flag.secondary_opts == ["--no-flag"] and flag.default is True
    assert betas.nargs == 2 and betas.default == (0.5, 0.9)
    assert list(mode.type.choices) == ["a", "b"]
    assert width.default is None and "[default: auto]" in width.help


def test_parse_seeds():
    assert parse_seeds("0-2, 5,9-10") == [0, 1, 2, 5, 9, 10]
    with pytest.raises(ValueError):
        parse_seeds("a-b")


def test_sample_refuses_options_the_model_does_not_support(tmp_path):
    from minigan.cli import main

    runner = CliRunner()
    out = tmp_path / "run"
    trained = runner.invoke(
        main,
        [
            "train",
            "dcgan",
            "--resolution",
            "32",
            "--limit",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--g-width",
            "8",
            "--d-width",
            "8",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(main, ["sample", str(out), "--seeds", "0", "--truncation", "0.5"])
    assert result.exit_code != 0
    assert "model 'dcgan' does not support --truncation" in result.output


def test_limit_zero_means_all_of_the_data(tmp_path):
    """--limit 0 uses every image, not the model's default limit (shapes has 20,000)."""
    out = tmp_path / "run"
    args = [*TINY[:-2], "--limit", "0", "--max-steps", "1", "--out", str(out), "--no-progress"]
    result = invoke("train", "dcgan", *args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["limit"] is None and data["size"] == 20000


def test_train_ends_with_the_latest_sample_grid_and_the_real_images(tiny_run, tmp_path):
    out = tmp_path / "run"  # tiny_run trained 2 epochs there; one more epoch, resumed
    result = invoke("train", "dcgan", "--resume", "--epochs", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("latest samples: "))
    assert line == (
        f"latest samples: {out / 'samples' / 'epoch-003.png'} "
        f"(real images: {out / 'real_samples.png'})"
    )
