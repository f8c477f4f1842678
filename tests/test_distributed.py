"""Data-parallel training under ``mpirun -n 2`` (started here, as subprocesses, with a
timeout): the collectives against single-process and PyTorch references, the deterministic
scaling of DCGAN and StyleGAN-lite (2 processes with batch b == 1 process with batch 2b over
20 steps), faults, and resuming with another world size.

Skipped, with the reason, when mpi4py or the ``mpirun`` launcher is not installed
(``pip install "minigan[distributed]"`` brings both).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import minigan
from minigan import diffaugment as da
from minigan.data import DataLoader, Dataset
from minigan.train import load_checkpoint

pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'minigan[distributed]'")
MPIRUN = shutil.which(
    "mpirun", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
)
if MPIRUN is None:
    pytest.skip("no mpirun launcher: pip install 'minigan[distributed]'", allow_module_level=True)

HERE = Path(__file__).parent
WORKER = HERE / "mpi_worker.py"
sys.path.insert(0, str(HERE))
import mpi_worker  # noqa: E402


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",  # containers and CI often run as root
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        MINIGAN_NUM_THREADS="1",  # two processes on a small machine
        PYTHONPATH=os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]),
        **extra,
    )
    return env


def mpirun(n: int, args: list[str], timeout: float = 240, **env: str) -> subprocess.Popen:
    """Start ``mpirun -n N python ARGS`` (n=1: the plain process, no launcher)."""
    cmd = [sys.executable, *args]
    if n > 1:
        cmd = [MPIRUN, "-n", str(n), "--oversubscribe", *cmd]
    return subprocess.Popen(
        cmd, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s (a hang?):\n{out[-3000:]}")
    return proc.returncode, out


# --------------------------------------------------------------------------- collectives
def test_collectives_match_single_process_and_torch(tmp_path: Path) -> None:
    rc, out = finish(mpirun(2, [str(WORKER), "units", str(tmp_path)]), timeout=120)
    assert rc == 0, out
    ranks = [dict(np.load(tmp_path / f"rank-{r}.npz")) for r in range(2)]
    x, y = mpi_worker.global_data()

    for twice in (False, True):
        reference = mpi_worker.toy_net(seed=100)  # rank 0's weights, broadcast
        weights = np.concatenate([p.numpy().ravel() for p in reference.parameters()])
        grads = np.concatenate(
            [g.ravel() for g in mpi_worker.net_gradients(reference, x, y, twice)]
        )
        for r in ranks:
            np.testing.assert_array_equal(r[f"weights_{twice}"], weights)
            np.testing.assert_allclose(r[f"grads_{twice}"], grads, rtol=1e-5, atol=1e-7)
            assert int(r[f"buckets_{twice}"]) > 2  # a 64-byte cap: one bucket per tensor

    # SyncBatchNorm == torch BatchNorm2d over the global batch
    rng = np.random.default_rng(7)
    images = rng.standard_normal((8, 3, 4, 4)).astype(np.float32) * 2 + 1
    weights = rng.standard_normal(images.shape).astype(np.float32)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(ranks[0]["bn_weight"]))
    xt = torch.from_numpy(images).requires_grad_(True)
    yt = bn(xt)
    (yt * torch.from_numpy(weights)).sum().backward()
    for i, r in enumerate(ranks):
        rows = slice(4 * i, 4 * i + 4)
        np.testing.assert_allclose(r["bn_y"], yt.detach().numpy()[rows], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r["bn_gx"], xt.grad.numpy()[rows], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r["bn_mean"], bn.running_mean.numpy(), rtol=1e-5)
        np.testing.assert_allclose(r["bn_var"], bn.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        ranks[0]["bn_gw"] + ranks[1]["bn_gw"], bn.weight.grad.numpy(), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        ranks[0]["bn_gb"] + ranks[1]["bn_gb"], bn.bias.grad.numpy(), rtol=1e-4, atol=1e-5
    )

    # sharding: rank r's batches are the r-th halves of one process's batches of 6
    ds = Dataset(np.zeros((20, 1, 2, 2), np.float32), np.arange(20))
    whole = np.stack([lab.numpy() for _, lab in DataLoader(ds, 6, seed=5).iter_from(1)])
    np.testing.assert_array_equal(np.concatenate([r["shard"] for r in ranks], axis=1), whole)

    for r in ranks:
        assert float(r["metric_loss"]) == 1.5
        assert np.isnan(r["metric_d"])
        assert bool(r["stop"])


# --------------------------------------------------------------------------- equivalence
def _flat(tree: object, prefix: str = "") -> dict[str, np.ndarray]:
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list | tuple):
        items = enumerate(tree)
    else:
        value = tree.numpy() if hasattr(tree, "numpy") else tree
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            return {prefix: value}
        return {}
    out: dict[str, np.ndarray] = {}
    for k, v in items:
        out.update(_flat(v, f"{prefix}.{k}"))
    return out


def _compare_runs(a: Path, b: Path, steps: int) -> float:
    """The largest difference between two runs' final states (networks and optimizer
    state), relative to each tensor's largest value."""
    name = f"step-{steps:06d}.safetensors"
    sa, sb = (_flat(load_checkpoint(p / "checkpoints" / name)["state"]) for p in (a, b))
    assert sa.keys() == sb.keys() and len(sa) > 10
    worst = 0.0
    for key in sa:
        scale = max(float(np.abs(sb[key]).max()), 1e-3)
        worst = max(worst, float(np.abs(sa[key] - sb[key]).max()) / scale)
    return worst


EQUIVALENCE = {
    # tiny widths, 20 steps. DCGAN 28x28: BatchNorm1d and 2d (synchronized), dropout in D.
    # StyleGAN-lite: R1 every 4 steps (5 of the 20), style mixing, noise, minibatch-stddev
    # groups of 1 (groups form per process); lr 5e-4 (at 2e-3 this tiny net is chaotic: a
    # 1e-7 relative change of its weights moves step 13's gradients by 4%, in one process)
    "dcgan": [
        "--resolution", "28", "--g-width", "4", "--d-width", "4", "--sync-bn",
    ],
    # the class-conditional 32x32 recipe: spectral norm, hinge loss, DiffAugment's draws, the
    # implicit mask. With a linear colours head: with the default MLP head this tiny net is
    # chaotic (after 1 step the two runs differ by 3e-4 of trunk.4.weight's scale, Adam
    # turning the reduction order's rounding of near-cancelling gradients into whole
    # steps; after 20 by O(1), also at lr 1e-4), while the parallel machinery is the same
    "dcgan:32": [
        "--resolution", "32", "--g-width", "4", "--d-width", "4", "--sync-bn",
        "--colours", "linear",
    ],
    "stylegan-lite": [
        "--resolution", "8", "--latent-dim", "8", "--w-dim", "8", "--g-channels", "8",
        "--d-channels", "8", "--mapping-layers", "2", "--mbstd-group", "1", "--r1-every", "4",
        "--lr", "0.0005",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(EQUIVALENCE))
def test_two_processes_equal_one_with_the_global_batch(tmp_path: Path, model: str) -> None:
    common = [
        "-m", "minigan", "train", model.split(":")[0], "--data", "shapes", "--channels", "1",
        "--limit", "64", "--max-steps", "20", "--no-progress", "--sample-every", "100",
        *EQUIVALENCE[model],
    ]  # fmt: skip
    procs = [
        mpirun(2, [*common, "--batch-size", "4", "--out", str(tmp_path / "two")]),
        mpirun(1, [*common, "--batch-size", "8", "--out", str(tmp_path / "one")]),
    ]
    for proc in procs:
        rc, out = finish(proc)
        assert rc == 0, out
    config = json.loads((tmp_path / "two" / "config.json").read_text())["training"]
    assert (config["world_size"], config["batch_size"], config["global_batch_size"]) == (2, 4, 8)
    assert _compare_runs(tmp_path / "two", tmp_path / "one", 20) < 1e-4
    # the per-step metrics (averaged over the ranks) follow the single process's too
    two, one = (
        [json.loads(s) for s in (tmp_path / d / "metrics.jsonl").open()] for d in ("two", "one")
    )
    assert [r["step"] for r in two] == list(range(1, 21))
    np.testing.assert_allclose([r["loss_d"] for r in two], [r["loss_d"] for r in one], rtol=1e-4)


def test_sharded_draws_are_slices_of_the_global_batchs() -> None:
    """Every batch-shaped draw (DiffAugment's shifts are ``integers``) is this rank's rows of
    the draw one process makes for the global batch."""
    for method, args in [("integers", (-4, 5)), ("random", ()), ("standard_normal", ())]:
        minigan.manual_seed(0)
        whole = getattr(minigan.random.generator(), method)(*args, size=(6, 2))
        for rank in range(3):
            minigan.manual_seed(0)
            with minigan.random.batch_shard(rank, 3, 2):
                part = getattr(minigan.random.generator(), method)(*args, size=(2, 2))
            np.testing.assert_array_equal(part, whole[2 * rank : 2 * rank + 2])
    # one sample per process: DiffAugment's draws are (n, 1) columns, still sliced per rank
    minigan.manual_seed(0)
    whole = da.draw("color,translation,cutout", (3, 3, 8, 8), minigan.random.generator())
    for rank in range(3):
        minigan.manual_seed(0)
        with minigan.random.batch_shard(rank, 3, 1):
            part = da.draw("color,translation,cutout", (1, 3, 8, 8), minigan.random.generator())
        for name in ("brightness", "shift_y", "cutout_x"):
            assert getattr(part, name)[0] == getattr(whole, name)[rank]


# --------------------------------------------------------------------------- faults, resume
def _records(directory: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("rank-*.txt"))
        for line in path.read_text().splitlines()
    ]


def test_an_exception_on_one_rank_ends_the_job_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    start = time.monotonic()
    proc = mpirun(
        2,
        [str(WORKER), "record", str(tmp_path / "run"), "50"],
        RECORD_DIR=str(tmp_path / "rec"),
        FAIL_AT="1:3:raise",
    )
    rc, out = finish(proc, timeout=60)  # rank 0 would otherwise wait forever at step 4
    assert rc != 0
    assert "minigan train (rank 1 of 2): RuntimeError: boom at step 3" in out, out
    assert "mpi_worker.py" in out  # where it happened
    assert time.monotonic() - start < 60
    assert max(r["step"] for r in _records(tmp_path / "rec")) <= 4


def test_a_nan_on_one_rank_stops_every_rank_at_that_step(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    proc = mpirun(
        2,
        [str(WORKER), "record", str(tmp_path / "run"), "50"],
        RECORD_DIR=str(tmp_path / "rec"),
        FAIL_AT="1:5:nan",
    )
    rc, out = finish(proc, timeout=60)
    assert rc != 0
    assert "rank 0: diverged at step 5" in out and "rank 1: diverged at step 5" in out, out
    steps = {r["step"] for r in _records(tmp_path / "rec")}
    assert max(steps) == 5
    # the last good checkpoint (rank 0 wrote it) is before the NaN
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())[-1] == (
        "step-000004.safetensors"
    )


def test_resume_from_two_processes_into_one_sees_exactly_the_remaining_samples(
    tmp_path: Path,
) -> None:
    rec, run = tmp_path / "rec", tmp_path / "run"
    rec.mkdir()
    # 2 processes, 2 images each: 4 per step; 3 steps -> samples 0..11 of epoch 0
    rc, out = finish(
        mpirun(2, [str(WORKER), "record", str(run), "3"], RECORD_DIR=str(rec)), timeout=90
    )
    assert rc == 0, out
    ckpt = load_checkpoint(run / "checkpoints" / "step-000003.safetensors")
    assert (int(ckpt["epoch"]), int(ckpt["sample"]), int(ckpt["world_size"])) == (0, 12, 2)
    # 1 process, 2 images per step, to the end of epoch 1 (40 images per epoch)
    rc, out = finish(
        mpirun(1, [str(WORKER), "record", str(run), "100", "resume"], RECORD_DIR=str(rec)),
        timeout=90,
    )
    assert rc == 0, out
    assert json.loads((run / "config.json").read_text())["training"]["world_size"] == 1
    records = _records(rec)
    first = [i for r in records if r["step"] <= 3 for i in r["index"]]
    after = [r for r in records if r["step"] > 3]
    order = DataLoader(mpi_worker.indexed_data(), 2, seed=0).order
    assert sorted(first) == sorted(order(0)[:12].tolist())  # the two ranks' shards
    seen = [i for r in sorted(after, key=lambda r: r["step"]) for i in r["index"]]
    assert seen == order(0)[12:].tolist() + order(1).tolist()  # exactly the rest, in order
    assert [r["step"] for r in after] == list(range(4, 4 + 14 + 20))
    state = minigan.load(run / "checkpoints" / "step-000037.safetensors")
    assert (int(state["epoch"]), int(state["sample"]), int(state["world_size"])) == (1, 40, 1)
