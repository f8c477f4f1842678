"""Training runs, shared by every GAN plugin: :func:`train`, the public entry point.

The pieces live in their own modules, and are re-exported here so that ``from minigan.train
import X`` keeps working:

- :mod:`minigan.gan`: the model contract (:class:`GAN`, :class:`GANConfig`), the losses, the
  shared update steps, EMA, :func:`frozen`, :func:`read_metrics`;
- :mod:`minigan.run`: the run folder (:class:`Run`, :func:`checkpoints`,
  :func:`latest_checkpoint`, :func:`load_checkpoint`, :func:`load_model`);
- :mod:`minigan.trainer`: the loop (:class:`Trainer`), :class:`RunResult`,
  :class:`TrainingDiverged`;
- :mod:`minigan.testing`: :func:`check_model`, which verifies the model contract.

Ctrl-C finishes the current step, saves a checkpoint and returns; ``resume=True`` continues
from the latest checkpoint with the same losses an uninterrupted run would have had. A NaN
or infinite loss stops the run with :class:`TrainingDiverged`, keeping the last good
checkpoint.

This module must not import the CLI or any plugin.

>>> import minigan
>>> real, fake = minigan.tensor([3.0, 2.0]), minigan.tensor([-3.0, -2.0])
>>> round(discriminator_loss(real, fake).item(), 4), round(generator_loss(fake).item(), 4)
(0.1755, 2.5878)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from minigan.gan import (
    GAN,
    REQUIRED_METRICS,
    STANDARD_METRICS,
    GANConfig,
    copy_module,
    discriminator_loss,
    ema_update,
    frozen,
    generator_loss,
    mean_sigmoid,
    metrics_text,
    read_metrics,
    step_metrics,
)
from minigan.run import (
    PathLike,
    Run,
    RunExistsError,
    checkpoints,
    latest_checkpoint,
    load_checkpoint,
    load_model,
)
from minigan.testing import check_model
from minigan.trainer import RunResult, Trainer, TrainingDiverged

__all__ = [
    "GAN",
    "GANConfig",
    "REQUIRED_METRICS",
    "Run",
    "RunExistsError",
    "RunResult",
    "STANDARD_METRICS",
    "Trainer",
    "TrainingDiverged",
    "check_model",
    "checkpoints",
    "copy_module",
    "discriminator_loss",
    "ema_update",
    "frozen",
    "generator_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "mean_sigmoid",
    "metrics_text",
    "read_metrics",
    "step_metrics",
    "train",
]


def train(
    model: str | type[GAN] | GAN,
    data: Any = None,
    *,
    out: PathLike,
    config: Any = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
    checkpoint_every: int | None = None,
    keep: int = 3,
    sample_every: int = 1,
    num_samples: int = 64,
    max_steps: int | None = None,
    log_every: int | None = None,
    callbacks: Sequence[Callable[[dict[str, Any], GAN], None]] = (),
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    tensorboard: bool = False,
    distributed: bool | None = None,
    sync_bn: bool = False,
) -> RunResult:
    """Train a GAN and write its run directory ``out`` (layout in :mod:`minigan.run`).

    Args:
        model: a registered model name (``"dcgan"``), a :class:`GAN` subclass, or a built
            model (its own weights are the starting point).
        data: a :class:`minigan.data.Dataset`, or a spec for :func:`minigan.data.open_dataset`
            (a registered name or a path; default ``"shapes"``), opened with ``data_options``
            (``path``, ``resolution``, ``channels``, ``limit``, ``seed``).
        out: the run directory. An existing run there is an error unless ``resume`` (continue
            it) or ``force`` (delete its files and start over).
        config: the model's config (a ``Config``, a dict of overrides, or ``None``); ignored
            for a built model.
        epochs, batch_size, seed: training options; ``None`` takes the model's
            ``train_defaults`` (seed 0) — or, when resuming, the run's own (only ``epochs``
            may change on resume).
        device: ``"cpu"`` or ``"cuda"``.
        checkpoint_every: also checkpoint every this many steps (always at each epoch's end,
            at the end, and on Ctrl-C); ``keep`` checkpoints are kept.
        sample_every: write ``samples/epoch-NNN.png`` every this many epochs (and at the end).
        num_samples: the fixed seeds ``0 .. num_samples - 1`` of the sample grids.
        max_steps: stop (with a checkpoint) once the run has done this many steps in total.
        log_every: read the steps' metrics back every this many steps (default: every step on
            the CPU, every 20 on a GPU, where each read waits for the GPU to finish). Every
            step still gets its metrics.jsonl line; ``seconds`` is then the average over the
            steps read together, and a NaN is caught at the next read (always before a
            checkpoint is written).
        callbacks: called as ``callback(record, model)`` for every step, when its metrics are
            read (``record`` is the metrics.jsonl line): after each step with ``log_every=1``,
            else every ``log_every`` steps, so ``model`` may be a few steps further on.
            Raising ``KeyboardInterrupt`` acts as Ctrl-C (the run stops, with a checkpoint,
            at the step it has reached).
        progress: show a tqdm progress bar (on stderr): the model's ``progress_metrics``
            (default: every metric its ``train_step`` returns) and the speed.
        log: where messages go (default: stderr).
        tensorboard: also log every metric, the sample grids and the config (as
            hyper-parameters) to ``out/tensorboard`` (needs tensorboardX: the
            ``minigan[tensorboard]`` extra; see :mod:`minigan.tensorboard`).
        distributed: data-parallel over the processes of an MPI job (``mpirun -n N``):
            ``None`` when launched with more than one process, ``True`` insists, ``False``
            opts out. ``batch_size`` is then per process and a step takes ``N * batch_size``
            images; only rank 0 writes files and messages; callbacks run on every rank with
            the metrics averaged over the ranks. See :mod:`minigan.distributed`.
        sync_bn: when distributed, batch-norm statistics over the global batch
            (SyncBatchNorm); otherwise each process normalises with its own batch's.

    Returns:
        a :class:`RunResult`; ``result.summary()`` says what was done in one line.

    Raises:
        RunExistsError: ``out`` holds a run and neither ``resume`` nor ``force`` was given.
        ImportError: ``tensorboard=True`` without tensorboardX installed.
        TrainingDiverged: a loss became NaN or infinite.
    """
    options = dict(locals())  # exactly the parameters above
    distributed, sync_bn = options.pop("distributed"), options.pop("sync_bn")
    if distributed is not False:
        from minigan.distributed import data_parallel_trainer, init_world

        world = init_world(distributed, device)
        if world.distributed:
            return data_parallel_trainer(world, sync_bn, **options).fit()
    return Trainer(options.pop("model"), options.pop("data"), **options).fit()
