"""Folder processing on a Dask LocalCluster: one task per file, the processor made once per
worker, outputs written atomically, existing ones skipped, failures listed (not raised)."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip(
    "dask.distributed", reason="Dask is not installed: pip install 'minigan[distributed]'"
)

from minigan import images  # noqa: E402
from minigan.cli import main  # noqa: E402
from minigan.cluster import map_files  # noqa: E402


def make_state(marker_dir: str) -> str:
    """A "processor": records each construction (one file per call) and returns a prefix."""
    Path(marker_dir, f"{os.getpid()}-{uuid.uuid4().hex}").touch()
    return "processed:"


def process_text(state: str, source: str, target: str) -> None:
    text = Path(source).read_text()
    if "broken" in text:
        raise ValueError("this file is broken")
    Path(target).write_text(state + text.upper())


def test_map_files_on_a_local_cluster(tmp_path: Path) -> None:
    src, out, markers = tmp_path / "in", tmp_path / "out", tmp_path / "markers"
    for d in (src, out, markers):
        d.mkdir()
    names = [f"f{i}" for i in range(8)]
    for n in names:
        (src / n).write_text("broken" if n == "f3" else f"text {n}")
    jobs = [(src / n, out / n) for n in names]
    state = functools.partial(make_state, str(markers))

    results = map_files(process_text, state, jobs, workers=2, progress=False)
    assert [r.source for r in results] == [str(s) for s, _ in jobs]  # input order
    assert {r.status for r in results if r.source != str(src / "f3")} == {"written"}
    (bad,) = [r for r in results if r.status == "failed"]
    assert bad.source == str(src / "f3") and bad.error == "ValueError: this file is broken"
    for n in names:
        if n != "f3":
            assert (out / n).read_text() == f"processed:TEXT {n.upper()}"
    # made once per worker process, not once per file
    built = list(markers.iterdir())
    assert 1 <= len(built) <= 2 and len({p.name.split("-")[0] for p in built}) == len(built)

    # a re-run skips what exists and retries only the failure
    results = map_files(process_text, state, jobs, workers=2, progress=False)
    assert sorted(r.status for r in results) == ["failed"] + ["skipped"] * 7


def test_process_command_on_workers_lists_the_broken_file(tmp_path: Path) -> None:
    folder, out = tmp_path / "photos", tmp_path / "dreams"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.png"):
        images.save_image(folder / name, (rng.random((20, 20, 3)) * 255).astype(np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    args = ["process", "deepdream", str(folder), "-o", str(out), "--workers", "2"]
    args += ["--steps", "1", "--octaves", "1", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "wrote 2 images, skipped 0 existing, 1 failed" in result.output
    assert f"failed: {folder / 'broken.png'}: ValueError: cannot read this image" in result.output
    meta = images.read_metadata(out / "sub" / "b.png")
    assert meta["processor"] == "deepdream" and meta["steps"] == "1"
    dreamed = images.read_image(out / "a.png")
    assert dreamed.shape == (20, 20, 3)
    assert not np.array_equal(dreamed, images.read_image(folder / "a.png"))

    again = CliRunner().invoke(main, args)
    assert "wrote 0 images, skipped 2 existing, 1 failed" in again.output


def test_dream_over_a_folder_on_workers_then_here(tmp_path: Path) -> None:
    folder, out = tmp_path / "photos", tmp_path / "dreams"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        images.save_image(folder / name, (rng.random((16, 16, 3)) * 255).astype(np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    args = ["dream", str(folder), "-o", str(out), "--steps", "1", "--octaves", "1"]
    result = CliRunner().invoke(main, [*args, "--workers", "2", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "dream: wrote 2 images, skipped 0 existing, 1 failed" in result.output
    assert f"failed: {folder / 'broken.png'}: ValueError: cannot read this image" in result.output
    assert images.read_metadata(out / "b.png")["processor"] == "deepdream"
    # the same command without a cluster: here, one image at a time; a re-run resumes
    (out / "a.png").unlink()
    again = CliRunner().invoke(main, [*args, "--no-progress"])
    assert "dream: wrote 1 image, skipped 1 existing, 1 failed" in again.output
    zoom = CliRunner().invoke(main, [*args, "--zoom-frames", "2"])
    assert zoom.exit_code == 2 and "--zoom-frames takes a single INPUT image" in zoom.output
