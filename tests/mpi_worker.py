"""What tests/test_distributed.py runs under ``mpirun -n 2``: ``python tests/mpi_worker.py
CASE OUT [ARGS]``. Every rank writes ``OUT/rank-R.npz`` (or a run directory); the test, in
the parent process, compares them with an independent reference (one process on the global
batch, PyTorch's BatchNorm).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import minigan
from minigan import nn, optim
from minigan.train import GAN, discriminator_loss, generator_loss, mean_sigmoid

GLOBAL_BATCH = 8
FEATURES = 5


def global_data() -> tuple[np.ndarray, np.ndarray]:
    """The global batch of the units case: inputs and targets."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((GLOBAL_BATCH, FEATURES)).astype(np.float32)
    return x, rng.standard_normal((GLOBAL_BATCH, 1)).astype(np.float32)


def toy_net(seed: int) -> nn.Module:
    minigan.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(FEATURES, 7), nn.Tanh(), nn.Linear(7, 3), nn.Tanh(), nn.Linear(3, 1)
    )


def net_gradients(net: nn.Module, x: np.ndarray, y: np.ndarray, twice: bool) -> list[np.ndarray]:
    """Gradients of the mean squared error (and, with ``twice``, of a second backward of
    half of it before the step: gradients accumulated over two backward passes)."""
    out = net(minigan.tensor(x))
    loss = ((out - minigan.tensor(y)) ** 2).mean()
    loss.backward(retain_graph=twice)
    if twice:
        (loss * 0.5).backward()
    return [np.array(p.grad.numpy()) for p in net.parameters()]


class _Holder:
    """The :class:`DataParallel` contract in miniature: networks() and optimizers()."""

    def __init__(self, nets: dict[str, nn.Module], opts: dict[str, Any]) -> None:
        self._nets, self._opts = nets, opts

    def networks(self) -> dict[str, nn.Module]:
        return self._nets

    def optimizers(self) -> dict[str, Any]:
        return self._opts


def case_units(out: Path) -> None:
    """Gradient buckets, broadcast, SyncBatchNorm, sharding and metrics on 2 ranks."""
    from minigan.data import DataLoader, Dataset
    from minigan.distributed import DataParallel, init_world

    world = init_world(True)
    r, n = world.rank, world.size
    b = GLOBAL_BATCH // n
    x, y = global_data()
    result: dict[str, Any] = {}

    # broadcast + bucketed all-reduce (a 64-byte bucket cap: several buckets), one and two
    # backward passes before the step
    for twice in (False, True):
        net = toy_net(seed=100 + r)  # different weights on each rank: rank 0's must win
        captured: list[np.ndarray] = []
        opt = optim.SGD(net.parameters(), lr=0.0)
        inner = opt.step

        def capture(
            *a: Any, _net: nn.Module = net, _inner: Any = inner, _out: list = captured, **k: Any
        ) -> Any:
            _out.extend(np.array(p.grad.numpy()) for p in _net.parameters())
            return _inner(*a, **k)

        opt.step = capture  # type: ignore[method-assign]
        dp = DataParallel(world, _Holder({"net": net}, {"net": opt}), bucket_bytes=64)
        result[f"weights_{twice}"] = np.concatenate([p.numpy().ravel() for p in net.parameters()])
        net_gradients(net, x[r * b : (r + 1) * b], y[r * b : (r + 1) * b], twice)
        opt.step()
        result[f"grads_{twice}"] = np.concatenate([g.ravel() for g in captured])
        result[f"buckets_{twice}"] = len(dp.reducers["net"].buckets)
        dp.close()

    # SyncBatchNorm: y, gradients and running statistics over the global batch
    rng = np.random.default_rng(7)
    images = rng.standard_normal((GLOBAL_BATCH, 3, 4, 4)).astype(np.float32) * 2 + 1
    weights = rng.standard_normal(images.shape).astype(np.float32)
    bn = nn.BatchNorm2d(3)
    minigan.nn.init.normal_(bn.weight, 1.0, 0.3)
    DataParallel(world, _Holder({"bn": bn}, {}), sync_bn=True)
    xs = minigan.tensor(images[r * b : (r + 1) * b], requires_grad=True)
    out_bn = bn(xs)
    (out_bn * minigan.tensor(weights[r * b : (r + 1) * b])).sum().backward()
    result.update(
        bn_weight=bn.weight.numpy(),
        bn_y=out_bn.numpy(),
        bn_gx=xs.grad.numpy(),
        bn_gw=bn.weight.grad.numpy(),
        bn_gb=bn.bias.grad.numpy(),
        bn_mean=bn.running_mean.numpy(),
        bn_var=bn.running_var.numpy(),
    )

    # data sharding: the global batches' slices, disjoint
    ds = Dataset(np.zeros((20, 1, 2, 2), np.float32), np.arange(20))
    loader = DataLoader(ds, batch_size=3, seed=5, rank=r, world_size=n)
    result["shard"] = np.stack([labels.numpy() for _, labels in loader.iter_from(1)])

    # metrics: averaged; a NaN on one rank is a NaN on all
    dp = DataParallel(world, _Holder({}, {}))
    metrics = [{"loss": float(r + 1), "d": 1.0 if r == 0 else float("nan")}]
    reduced = dp.reduce_metrics(metrics)[0]
    result["metric_loss"], result["metric_d"] = reduced["loss"], reduced["d"]
    result["stop"] = dp.agree(r == 1)
    np.savez(out / f"rank-{r}.npz", **result)


class RecordingGAN(GAN):
    """A tiny GAN whose every step appends the indices of the images it trained on
    (encoded in the images) to ``$RECORD_DIR/rank-R.txt``."""

    train_defaults = {"epochs": 2, "batch_size": 2}

    def __init__(self, config: Any = None, image_shape: Any = (1, 2, 2), device: str = "cpu"):
        super().__init__(config, image_shape, device)
        self.config.latent_dim = 3
        self.generator = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Unflatten(1, (1, 2, 2)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0))
        self.opt_g = optim.Adam(self.generator.parameters(), lr=1e-2)
        self.opt_d = optim.Adam(self.discriminator.parameters(), lr=1e-2)

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, Any]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def train_step(self, real: minigan.Tensor) -> dict[str, Any]:
        import os

        from minigan.distributed import current_world

        index = np.rint((real.numpy()[:, 0, 0, 0] + 1) * 50).astype(int).tolist()
        rank = current_world().rank
        with open(Path(os.environ["RECORD_DIR"]) / f"rank-{rank}.txt", "a") as f:
            f.write(json.dumps({"step": self.steps + 1, "index": index}) + "\n")
        z = minigan.randn(real.shape[0], 3)
        fake = self.generator(z)
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        loss_g = generator_loss(self.discriminator(fake))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        fail = os.environ.get("FAIL_AT", "")
        if fail:  # "RANK:STEP:KIND": raise, or a NaN loss, on one rank at one step
            f_rank, f_step, kind = fail.split(":")
            if rank == int(f_rank) and self.steps + 1 == int(f_step):
                if kind == "raise":
                    raise RuntimeError(f"boom at step {f_step}")
                loss_d = loss_d * float("nan")
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": mean_sigmoid(real_logits),
            "d_fake": mean_sigmoid(fake_logits),
        }


def indexed_data(n: int = 40) -> Any:
    """Images whose pixel (0, 0, 0) encodes their index i as (i / 50 - 1)."""
    from minigan.data import Dataset

    images = np.zeros((n, 1, 2, 2), np.float32)
    images[:, 0, 0, 0] = np.arange(n) / 50 - 1
    return Dataset(images, name="indexed")


def case_record(out: Path, *args: str) -> None:
    """Train RecordingGAN: ``max_steps [resume]``."""
    from minigan.train import TrainingDiverged, train

    max_steps, resume = int(args[0]), len(args) > 1 and args[1] == "resume"
    try:
        result = train(
            RecordingGAN,
            indexed_data(),
            out=out,
            batch_size=2,
            epochs=2,
            max_steps=max_steps,
            resume=resume,
            progress=False,
            checkpoint_every=1,
        )
    except TrainingDiverged as e:
        from minigan.distributed import current_world

        print(f"rank {current_world().rank}: diverged at step {e.step}", flush=True)
        sys.exit(3)
    print(f"done at step {result.steps}", flush=True)


if __name__ == "__main__":
    case, out_dir, *rest = sys.argv[1:]
    {"units": case_units, "record": case_record}[case](Path(out_dir), *rest)
