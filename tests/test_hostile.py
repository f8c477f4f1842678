"""Hostile and careless input (issue 13): no code from files, no hijacked names, one ``Error:``
line instead of a traceback, bounded memory for small files, options checked up front,
per-file processing, runs that clean up and fall back, plugins that cannot break the output.

Each case is built in a temporary folder. CLI cases run in-process through click's CliRunner
(a raw traceback shows up there as ``result.exception`` that is not ``SystemExit``); the memory
cases run ``python -m minigan`` in a subprocess whose peak RSS is read with ``getrusage``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from minigan import registry as registry_module
from minigan.cli import main

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_error(result) -> str:
    """The command failed cleanly: non-zero exit, exactly one ``Error:`` line on stderr, no
    traceback (CliRunner keeps an escaped exception in ``result.exception``)."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    err = result.stderr
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def fresh_cli(monkeypatch):
    """A process-wide registry and command list loaded afresh for this test (and after it)."""
    monkeypatch.setattr(registry_module, "_registry", None)
    monkeypatch.setattr(main, "_plugins_loaded", False)
    yield
    registry_module.set_registry(None)
    main._plugins_loaded = False


def make_distribution(
    site: Path, dist: str, version: str, entry_points: dict[str, str], files: dict[str, str]
) -> None:
    """An installed-looking distribution: modules in ``site`` and a dist-info folder."""
    site.mkdir(parents=True, exist_ok=True)
    for name, code in files.items():
        (site / name).write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[minigan]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for fake plugin distributions (their modules forgotten after)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("h13_"):
            del sys.modules[name]


def png_bomb(path: Path, side: int) -> None:
    """A valid grayscale PNG of ``side`` x ``side`` black pixels, written row by row (the file
    is tiny; decoding it is not)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + the pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


MEMORY_RUNNER = """
import json, resource, subprocess, sys
limit = 3 * 2**30  # a safety net for the machine: the test itself asks for < 1 GiB
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
runs = []
for args in json.loads(sys.argv[1]):
    r = subprocess.run([sys.executable, "-m", "minigan", *args], preexec_fn=cap,
                       capture_output=True, text=True)
    runs.append({"rc": r.returncode, "stderr": r.stderr})
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"runs": runs, "peak": peak}))
"""


def run_measured(cwd: Path, *commands: list[str]) -> tuple[list[dict], int]:
    """Run ``python -m minigan ARGS`` for each command in a child process; return each run's
    exit code and stderr, and the largest peak RSS (bytes) among them."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_RUNNER, json.dumps([list(map(str, c)) for c in commands])],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout)
    return result["runs"], result["peak"]


def assert_clean_failure(run: dict) -> str:
    assert run["rc"] != 0, run
    assert "Traceback" not in run["stderr"], run["stderr"]
    lines = [line for line in run["stderr"].splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, run["stderr"]
    return lines[0]


def zero_stride_pth(path: Path) -> None:
    """A 1.7 KB torch.save file whose one tensor is a 40000x40000 view of a single float."""
    torch = pytest.importorskip("torch")
    torch.save({"features.0.weight": torch.zeros(1).expand(40000, 40000)}, path)


def write_image(path: Path, side: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    iio.imwrite(path, rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


class Marker:
    """A pickle that creates a file when it is loaded (if it ever is)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# =========================================================================== 2. name ownership
EVIL_PLUGIN = """
from minigan import hookimpl

print("h13 evil plugin loading")  # would corrupt `minigan plugins --json`

@hookimpl
def register_models(register):
    register("dcgan", "h13_evil:EvilGAN")
    register("evilgan", "h13_evil:EvilGAN")

@hookimpl
def register_datasets(register):
    register("shapes", "h13_evil:evil_shapes")

class EvilGAN:
    '''Not a model at all.'''

def evil_shapes(**options):
    raise RuntimeError("the evil shapes")
"""

SQUATTER = """
from minigan import hookimpl

@hookimpl
def register_datasets(register):
    register("mnist", "h13_squat:nothing")
"""


@pytest.fixture
def evil(site):
    make_distribution(
        site,
        "evil-gans",
        "6.6.6",
        {"evil": "h13_evil", "dcgan": "h13_squat"},  # also squats the plugin name "dcgan"
        {"h13_evil.py": EVIL_PLUGIN, "h13_squat.py": SQUATTER},
    )
    return site


def test_third_party_plugin_cannot_take_builtin_names(evil, fresh_cli, capsys):
    from minigan.plugins import datasets as builtin_datasets
    from minigan.plugins.dcgan import DCGAN
    from minigan.registry import get_registry

    registry = get_registry()
    err = capsys.readouterr().err
    assert registry.get("model", "dcgan") is DCGAN
    assert registry.get("dataset", "shapes") is builtin_datasets.shapes
    assert {"shapes", "mnist", "folder", "npz"} <= set(registry.names("dataset"))
    assert registry.names("model").count("evilgan") == 1  # the rest of the plugin is kept
    assert registry.get("model", "evil:dcgan").__name__ == "EvilGAN"  # explicit choice
    # one warning per taken name, naming both plugins, distributions and versions
    warning = [line for line in err.splitlines() if "model 'dcgan'" in line]
    assert len(warning) == 1
    assert "plugin 'evil' (evil-gans 6.6.6)" in warning[0]
    assert "plugin 'dcgan' (minigan " in warning[0] and "'evil:dcgan'" in warning[0]
    assert "skipped plugin 'dcgan' (evil-gans 6.6.6)" in err  # the squatted plugin name


def test_plugins_command_shows_collisions_and_stays_valid_json(evil, fresh_cli):
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    listing = {p["name"]: p for p in json.loads(result.stdout)}  # the print went to stderr
    assert "h13 evil plugin loading" in result.stderr
    assert any("model 'dcgan'" in c for c in listing["evil"]["collisions"])
    assert listing["evil"]["import_seconds"] is not None
    text = run_cli("plugins").stdout
    assert "not used (name taken): dataset 'shapes'" in text
    assert "imported in" in text
    line = one_error(run_cli("train", "evilgan"))  # a broken model says whose it is
    assert "model 'evilgan' (from plugin 'evil' (evil-gans 6.6.6)) cannot be used" in line


def test_train_dcgan_still_works_with_a_name_grabbing_plugin(evil, fresh_cli, tmp_path):
    result = run_cli(
        "train", "dcgan", "--epochs", "1", "--max-steps", "1", "--limit", "8",
        "--batch-size", "8", "--g-width", "4", "--d-width", "4", "--resolution", "28",
        "--no-progress", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "dcgan" and config["data"]["name"] == "shapes"


def test_a_plugin_cannot_replace_a_builtin_command(site, fresh_cli):
    make_distribution(
        site,
        "cmd-thief",
        "0.1",
        {"thief": "h13_thief"},
        {
            "h13_thief.py": """
            import click
            from minigan import hookimpl

            @hookimpl
            def register_commands(cli):
                @cli.command("plugins")
                def stolen():
                    click.echo("stolen")
            """
        },
    )
    result = run_cli("plugins")
    assert result.exit_code == 0 and "stolen" not in result.stdout
    assert "thief" in result.stdout and "command 'plugins'" in result.stdout


# =========================================================================== 3. plugin errors
BOOM_PLUGIN = """
import click
from minigan import hookimpl

@hookimpl
def register_datasets(register):
    register("boom", "h13_boom:boom")

@hookimpl
def register_commands(cli):
    @cli.command("h13-boom")
    def explode():
        1 / 0

def boom(**options):
    raise KeyError(28)
"""


def test_plugin_exceptions_name_the_plugin_and_debug_shows_the_traceback(site, fresh_cli, tmp_path):
    make_distribution(site, "boom-dist", "2.0", {"boom": "h13_boom"}, {"h13_boom.py": BOOM_PLUGIN})
    line = one_error(run_cli("train", "dcgan", "--data", "boom", "--out", tmp_path / "r"))
    assert "plugin 'boom' (boom-dist 2.0)" in line and "KeyError: 28" in line
    assert "--debug" in line
    line = one_error(run_cli("h13-boom"))
    assert "plugin 'boom' (boom-dist 2.0) failed: ZeroDivisionError: division by zero" in line
    debug = run_cli("--debug", "h13-boom")
    assert isinstance(debug.exception, ZeroDivisionError)  # the real exception, traceback and all
    env = run_cli("h13-boom", env={"MINIGAN_DEBUG": "1"})
    assert isinstance(env.exception, ZeroDivisionError)


def test_slow_plugin_is_named(site, fresh_cli):
    make_distribution(
        site,
        "slow-dist",
        "1.0",
        {"slowpoke": "h13_slow"},
        {"h13_slow.py": "import time\ntime.sleep(1.05)\n"},
    )
    result = run_cli("plugins")
    assert "plugin 'slowpoke' (slow-dist 1.0) took 1." in result.stderr
    assert "MINIGAN_DISABLE_PLUGINS=slowpoke" in result.stderr


# =========================================================================== 3. one clear line
@pytest.fixture
def bad_images(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    write_image(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    good = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    iio.imwrite(folder / "photo.jpg", np.zeros((32, 32, 3), np.uint8))
    jpeg = bytearray((folder / "photo.jpg").read_bytes())
    jpeg[200:] = bytes(len(jpeg) - 200)  # scan data wiped out
    (folder / "corrupt.jpg").write_bytes(bytes(jpeg[: len(jpeg) // 2]))
    (folder / "photo.jpg").unlink()
    iio.imwrite(folder / "dot.png", np.zeros((1, 1, 3), np.uint8))
    return folder


@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing.png", "does not exist"),
        ("empty.png", "not a readable image"),
        ("text.png", "not a readable image"),
        ("truncated.png", "truncated"),
        ("corrupt.jpg", "corrupt"),
        ("dot.png", "1x1 image is too small"),
    ],
)
def test_dream_on_bad_images_says_one_line(bad_images, name, expected, tmp_path):
    line = one_error(
        run_cli("dream", bad_images / name, "-o", tmp_path / "o.png", "--steps", "1",
                "--octaves", "1", "--no-progress")
    )  # fmt: skip
    assert name in line and expected in line


def test_unsafe_pickle_weights_are_refused_in_one_line_and_run_nothing(tmp_path, bad_images):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Marker(marker)}, protocol=2))
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    line = one_error(run_cli("dream", bad_images / "good.png", "--weights", tmp_path / "evil.pth"))
    assert "refusing to load" in line and "evil.pth" in line and "open'" in line
    assert not marker.exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notorch.pth", _zip({"archive/data.pkl": b"garbage"}), "not a readable .pth file"),
        ("text.pth", b"hello, I am text\n", "neither a zip nor a legacy torch.save file"),
        (
            "bad.safetensors",
            b"\xff\xff\xff\xff\x00\x00\x00\x00{garbage",
            "not a valid .safetensors",
        ),
    ],
)
def test_malformed_weights_say_one_line(tmp_path, bad_images, name, content, expected):
    (tmp_path / name).write_bytes(content)
    line = one_error(run_cli("dream", bad_images / "good.png", "--weights", tmp_path / name))
    assert name in line and expected in line


def test_unwritable_outputs_say_one_line(tmp_path, bad_images, monkeypatch):
    args = ["--steps", "1", "--octaves", "1", "--no-progress"]
    (tmp_path / "afile").write_text("I am a file")
    line = one_error(
        run_cli("dream", bad_images / "good.png", "-o", tmp_path / "afile" / "x.png", *args)
    )
    assert "afile" in line
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        line = one_error(run_cli("dream", bad_images / "good.png", "-o", locked / "x.png", *args))
        assert "permission denied" in line
        locked.chmod(0o700)

    def full_disk(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("minigan.images._atomic", full_disk)
    line = one_error(run_cli("dream", bad_images / "good.png", "-o", tmp_path / "o.png", *args))
    assert "o.png: no space left on the device" in line


# =========================================================================== 4. bounded work
def test_small_files_cannot_blow_up_memory(tmp_path):
    png_bomb(tmp_path / "bomb.png", 13000)  # 169 megapixels in ~170 KB
    (tmp_path / "data").mkdir()
    png_bomb(tmp_path / "data" / "bomb.png", 13000)
    zero_stride_pth(tmp_path / "w.pth")
    np.savez_compressed(tmp_path / "bomb.npz", images=np.zeros((4000, 100, 1000), np.uint8))
    write_image(tmp_path / "ok.png")
    assert max(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 1_000_000
    runs, peak = run_measured(
        tmp_path,
        ["dream", "bomb.png", "--no-progress"],
        [
            "train",
            "dcgan",
            "--data",
            "data",
            "--max-steps",
            "1",
            "--g-width",
            "4",
            "--d-width",
            "4",
            "--out",
            "run",
            "--no-progress",
        ],  # fmt: skip
        ["dream", "ok.png", "--weights", "w.pth", "--no-progress"],
        ["train", "dcgan", "--data", "bomb.npz", "--max-steps", "1", "--out", "run2"],
    )
    assert peak < 2**30, f"peak RSS {peak / 2**20:.0f} MiB"
    assert "13000x13000 pixels (169.0 MP) is over the limit of 50.0 MP" in assert_clean_failure(
        runs[0]
    )
    assert "bomb.png (13000x13000 pixels" in assert_clean_failure(runs[1])
    assert "zero or overlapping strides" in assert_clean_failure(runs[2])
    assert "bomb.npz: array 'images.npy' would expand" in assert_clean_failure(runs[3])


def test_pixel_limit_can_be_changed(tmp_path):
    write_image(tmp_path / "a.png", side=64)
    args = ["dream", tmp_path / "a.png", "-o", tmp_path / "o.png", "--steps", "1",
            "--octaves", "1", "--no-progress"]  # fmt: skip
    line = one_error(run_cli(*args, "--max-pixels", "1000"))
    assert "64x64 pixels" in line and "--max-pixels" in line and "MINIGAN_MAX_PIXELS" in line
    assert one_error(run_cli(*args, env={"MINIGAN_MAX_PIXELS": "4000"}))
    assert run_cli(*args, "--max-pixels", "5000").exit_code == 0
    assert run_cli(*args).exit_code == 0  # the option does not outlive its command
    (tmp_path / "data").mkdir()
    write_image(tmp_path / "data" / "b.png", side=64)
    train = ["train", "dcgan", "--data", tmp_path / "data", "--max-pixels", "1000",
             "--max-steps", "1", "--out", tmp_path / "run"]  # fmt: skip
    assert "b.png (64x64 pixels (0.0 MP) is over the limit" in one_error(run_cli(*train))


def test_training_folder_refuses_tiny_images_with_the_unreadable_ones(tmp_path):
    from minigan.plugins.datasets import folder

    write_image(tmp_path / "a.png", side=16)
    iio.imwrite(tmp_path / "dot.png", np.zeros((1, 1, 3), np.uint8))
    (tmp_path / "junk.png").write_text("junk")
    with pytest.warns(
        UserWarning, match=r"skipped 2 unreadable image file\(s\).*dot.png \(1x1 pixels is smaller"
    ):
        data = folder(str(tmp_path), resolution=8)
    assert len(data) == 1


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"images": np.ones((4, 8, 8), bool)}, "boolean"),
        ({"images": np.zeros((0, 8, 8), np.uint8)}, "holds no images"),
        ({"images": np.array([None, 1], dtype=object)}, "object arrays"),
    ],
)
def test_npz_datasets_refuse_what_is_not_an_image(tmp_path, arrays, expected):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    tiny = ["--max-steps", "1", "--g-width", "4", "--d-width", "4", "--no-progress"]
    line = one_error(run_cli("train", "dcgan", *tiny, "--data", path, "--out", tmp_path / "run"))
    assert "d.npz" in line and expected in line
    assert not (tmp_path / "run").exists()


def test_truncated_npz_says_so(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((16, 8, 8), np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    line = one_error(run_cli("train", "dcgan", "--data", path, "--out", tmp_path / "run"))
    assert "d.npz: not a readable .npz file" in line


# =========================================================================== 6. per file
def test_folder_processing_goes_on_past_bad_files_and_resumes(bad_images, tmp_path):
    (bad_images / "sub").mkdir()
    write_image(bad_images / "more0.png", seed=1)
    write_image(bad_images / "sub" / "more1.png", seed=2)
    out = tmp_path / "out"
    args = ["process", "deepdream", bad_images, "-o", out, "--steps", "1", "--octaves", "1",
            "--no-progress"]  # fmt: skip
    result = run_cli(*args)
    line = one_error(result)
    assert "5 of 8 inputs failed" in line
    good = {"good.png", "more0.png", "sub/more1.png"}
    assert {str(p.relative_to(out)) for p in out.rglob("*.png")} == good
    for bad in ("empty.png", "text.png", "truncated.png", "corrupt.jpg", "dot.png"):
        assert f"failed: {bad_images / bad}:" in result.stderr
    assert "it/s" not in result.stderr  # --no-progress hides the bar
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = run_cli(*args)
    one_error(again)
    assert "deepdream: wrote 0 images, skipped 3 existing, 5 failed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamp
    redo = run_cli(*args, "--overwrite")
    one_error(redo)
    assert "deepdream: wrote 3 images, skipped 0 existing, 5 failed" in redo.stdout


def test_dream_takes_many_inputs(bad_images, tmp_path):
    out = tmp_path / "dreams"
    result = run_cli("dream", bad_images / "good.png", bad_images / "text.png", "-o", out,
                     "--steps", "1", "--octaves", "1", "--no-progress")  # fmt: skip
    assert "1 of 2 inputs failed" in one_error(result)
    assert (out / "good_dream.png").is_file()


# =========================================================================== 5. options
@pytest.mark.parametrize(
    "option, value",
    [
        ("--epochs", "0"),
        ("--epochs", "-1"),
        ("--max-steps", "0"),
        ("--checkpoint-every", "-1"),
        ("--sample-every", "0"),
        ("--keep", "0"),
        ("--batch-size", "0"),
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "-0.1"),
        ("--beta2", "nan"),
    ],
)
def test_nonsense_train_options_are_refused_before_anything_is_written(tmp_path, option, value):
    out = tmp_path / "run"
    tiny = ["--max-steps", "1", "--limit", "8", "--batch-size", "8", "--g-width", "4",
            "--d-width", "4", "--no-progress", "--out", out]  # fmt: skip
    result = run_cli("train", "dcgan", *tiny, option, value)  # the last one counts
    assert result.exit_code == 2, result.output  # click's usage error
    line = one_error(result)
    assert option in line and value in line
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["dream", "--steps", "0"],
        ["dream", "--octaves", "0"],
        ["dream", "--lr", "nan"],
        ["dream", "--zoom-frames", "-1"],
        ["process", "deepdream", "--steps", "0"],
        ["demo", "--epochs", "0"],
    ],
)
def test_nonsense_options_of_other_commands_are_refused(bad_images, args):
    source = [] if args[0] == "demo" else [bad_images / "good.png"]
    one_error(run_cli(*args, *source))


# =========================================================================== 1. no code from files
MARKER_MODULE = """
import pathlib
pathlib.Path(__file__).with_name("MARKER").write_text("this module was imported")
s = "zen"
"""


def crafted_checkpoint(path: Path, model: str) -> None:
    """A checkpoint whose model name and ``model_class`` metadata name a module to import."""
    import minigan

    state = {"model": model, "model_class": model, "config": {}, "image_shape": [1, 8, 8]}
    minigan.save({**state, "state": {}, "step": 1}, path, metadata={"model": model})


@pytest.fixture
def marker_module(site):
    (site / "h13_marker.py").write_text(MARKER_MODULE)
    return site / "MARKER"


def test_a_checkpoint_cannot_choose_code_to_import(tmp_path, marker_module, fresh_cli):
    from minigan.train import load_model

    crafted_checkpoint(tmp_path / "ck.safetensors", "h13_marker:s")
    line = one_error(run_cli("sample", tmp_path / "ck.safetensors", "--seeds", "0"))
    assert "model 'h13_marker:s' is not provided by any installed plugin" in line
    assert "dcgan" in line  # the models there are
    with pytest.raises(KeyError, match="not provided by any installed plugin"):
        load_model(tmp_path / "ck.safetensors")
    crafted_checkpoint(tmp_path / "zen.safetensors", "this:s")  # any installed module, too
    zen = run_cli("sample", tmp_path / "zen.safetensors")
    assert "not provided by any installed plugin" in one_error(zen)
    assert "Beautiful is better than ugly" not in zen.output
    assert not marker_module.exists()


def test_a_run_folder_cannot_choose_code_to_import(tmp_path, marker_module, fresh_cli):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(
        json.dumps({"model": "h13_marker:s", "model_class": "h13_marker:s", "config": {}})
    )
    crafted_checkpoint(run / "checkpoints" / "step-000001.safetensors", "h13_marker:s")
    assert "not provided by any installed plugin" in one_error(run_cli("sample", run))
    assert not marker_module.exists()


def test_load_model_still_takes_the_class_itself(tmp_path):
    from minigan.plugins.dcgan import DCGAN
    from minigan.train import load_model

    run = tmp_path / "run"
    args = ["train", "dcgan", "--max-steps", "1", "--batch-size", "8", "--limit", "8",
            "--g-width", "4", "--d-width", "4", "--no-progress", "--out", run]  # fmt: skip
    assert run_cli(*args).exit_code == 0
    for option, value in (("--batch-size", "0"), ("--nrow", "0"), ("--truncation", "nan")):
        assert option in one_error(run_cli("sample", run, option, value))
    model, ckpt = load_model(run, cls=DCGAN)
    assert isinstance(model, DCGAN) and ckpt["model"] == "dcgan"
    assert "model_class" not in ckpt and "model_class" not in (run / "config.json").read_text()


# =========================================================================== 7. runs
def test_runs_clean_up_and_fall_back_to_the_newest_readable_checkpoint(tmp_path):
    run = tmp_path / "run"
    tiny = ["--batch-size", "8", "--limit", "8", "--g-width", "4", "--d-width", "4",
            "--no-progress", "--out", run]  # fmt: skip
    first = run_cli("train", "dcgan", "--max-steps", "2", "--checkpoint-every", "1", *tiny)
    assert first.exit_code == 0, first.output
    ckpts = run / "checkpoints"
    newest = ckpts / "step-000002.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk
    stale = [
        ckpts / ".step-000003.safetensors.0123456789ab.tmp",
        run / "samples" / ".epoch-002.89abcdef.tmp.png",
        run / ".metrics.jsonl.tmp",
    ]
    for path in stale:
        path.write_bytes(bytes(4096))
    (run / "notes.tmp").write_text("the user's own file")  # not minigan's: kept

    sampled = run_cli("sample", run, "--seeds", "0-3", "--grid", tmp_path / "g.png")
    assert sampled.exit_code == 0, sampled.output
    assert "step-000002.safetensors" in sampled.stderr and "step-000001" in sampled.stderr
    from minigan.images import read_metadata

    assert read_metadata(tmp_path / "g.png")["checkpoint"].endswith("step-000001.safetensors")

    resumed = run_cli("train", "dcgan", "--resume", "--out", run, "--max-steps", "3",
                      "--no-progress")  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert "step-000002.safetensors" in resumed.stderr  # named in the warning
    assert "from step-000001.safetensors" in resumed.stderr
    assert not any(path.exists() for path in stale)
    assert (run / "notes.tmp").exists()
    assert (ckpts / "step-000003.safetensors").is_file()
