"""The training loop: :class:`Trainer`, which :func:`minigan.train.train` runs.

A :class:`Trainer` is built with the options of :func:`minigan.train.train` and run with
:meth:`Trainer.fit`. Its phases are methods, in the order they run, so that a reader can
follow one run top to bottom and a subclass can replace one phase:

``fit()``
    ``setup()`` then ``loop()``, returning a :class:`RunResult`.
``setup()``
    ``Run.open`` (new / resume / force) -> ``_resolve_model`` (name, class or built model)
    -> ``_settings`` (options, or the run's own when resuming) -> ``_open_data`` (dataset
    and ``_make_loader``) -> ``_build_model`` -> ``_resume`` (checkpoint: weights, random
    state, position) -> ``_write_config`` -> ``_first_samples``.
``loop()``
    For each epoch ``_epoch()``: for each batch (or group of ``model.batches_per_step``
    batches) ``_step(real)`` (one ``model.train_step``; its metrics are kept on the device),
    then every ``log_every`` steps ``_log()`` (one read-back of the pending metrics, the NaN
    check, ``loggers`` and ``callbacks``), and every ``checkpoint_every`` steps
    ``_checkpoint()``. At an epoch's end ``_end_epoch()``: ``_log()``, ``_sample_epoch()``
    (sample grid, GIF, loss plot) and ``_checkpoint()``.
    Ctrl-C goes to ``_on_interrupt()``; ``_result()`` builds the :class:`RunResult`.

Extension points:

- ``callbacks``: ``callback(record, model)`` per step, when its metrics are read (raise
  ``KeyboardInterrupt`` to stop the run with a checkpoint);
- ``loggers``: objects with ``write(records)`` and ``close()`` (:class:`MetricsLogger`
  protocol); every read-back's records go to each (metrics.jsonl is the first;
  ``tensorboard=True`` adds :class:`minigan.tensorboard.TensorBoardLogger`). A logger with a
  ``write_images(tag, grid, step)`` method also gets each sample grid (RGB ``uint8``);
- ``plot_groups``: title -> metrics drawn together in losses.png (starts as the model's
  ``plot_groups``; add a group, e.g. quality metrics, before ``fit``);
- ``model.gradient_hooks``: run between backward and step by :meth:`minigan.gan.Trainable.update`
  (a data-parallel gradient all-reduce);
- ``_make_loader`` (sharded data), ``_write_config`` / ``_sample_epoch`` / ``_checkpoint``
  (only one process writing), ``_log`` (extra metrics), ``_reduce_metrics`` (metrics over
  processes), ``_stop_requested`` (processes agreeing on Ctrl-C): override in a subclass
  (:class:`minigan.distributed.DataParallelTrainer` does, for ``mpirun -n N``).

The position in the data is an epoch and a sample index in its order (``sample`` in the
checkpoint), so a run resumed with another global batch size (another number of processes)
continues exactly where it stopped.

This module must not import the CLI or any plugin; it imports tqdm and the data module only
when a run starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, cast

import numpy as np

import minigan
from minigan.gan import Trainable, metrics_text, read_metrics
from minigan.run import (
    PathLike,
    Run,
    _step_of,
    as_saved,
    latest_checkpoint,
    load_checkpoint,
    model_class,
    model_name,
    resumed_settings,
)
from minigan.tensor import Tensor

__all__ = ["MetricsLogger", "RunResult", "Trainer", "TrainingDiverged"]

Callback = Callable[[dict[str, Any], Trainable], None]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclasses.dataclass
class RunResult:
    """What :func:`minigan.train.train` did."""

    run_dir: Path
    steps: int  # completed train steps in total (resumed runs included)
    epochs_done: int  # completed epochs
    interrupted: bool  # stopped by Ctrl-C (or a callback raising KeyboardInterrupt)
    checkpoint: Path | None  # the latest checkpoint
    seconds: float  # wall time of this call
    last_metrics: dict[str, float]
    shown_metrics: list[str] = dataclasses.field(default_factory=list)  # for a summary
    steps_this_call: int = 0  # train steps done by this call (all of them unless resumed)
    seconds_total: float = 0.0  # wall time of the whole run, earlier calls included

    def summary(self) -> str:
        """One line: what was trained, in how long, and the last metrics.

        >>> r = RunResult(Path("r"), 128, 2, False, None, 5.2, {"loss_g": 1.0},
        ...               ["loss_g"], 6, 95.0)
        >>> r.summary()
        'trained 6 steps in 5 s (run total: 128 steps, 2 epochs, 95 s) (loss_g=1.000)'
        >>> RunResult(Path("r"), 1, 1, False, None, 2.0, {}, [], 1, 2.0).summary()
        'trained 1 step, 1 epoch in 2 s'
        """
        metrics = metrics_text(self.last_metrics, self.shown_metrics, ", ")
        done = f"{_count(self.steps, 'step')}, {_count(self.epochs_done, 'epoch')}"
        if self.steps_this_call == self.steps:
            text = f"trained {done} in {self.seconds:.0f} s"
        else:  # resumed: this call's part, and the whole run's
            text = (
                f"trained {_count(self.steps_this_call, 'step')} in {self.seconds:.0f} s "
                f"(run total: {done}, {self.seconds_total:.0f} s)"
            )
        return text + (f" ({metrics})" if metrics else "")


def _count(n: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``.

    >>> _count(1, "epoch"), _count(0, "step")
    ('1 epoch', '0 steps')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


class MetricsLogger(Protocol):
    """Where the metrics records of a run go (metrics.jsonl, TensorBoard ...)."""

    def write(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


class JsonlLogger:
    """Appends one JSON line per record to a file (the run's metrics.jsonl)."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = open(path, "a")

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.file.write("".join(json.dumps(r) + "\n" for r in records))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class _Interrupt:
    """While active (main thread only), the first Ctrl-C only sets :attr:`requested` — the
    loop finishes its step, saves a checkpoint and stops; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _json_read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _finite(metrics: Mapping[str, float]) -> str | None:
    """The name of the first non-finite metric, or ``None``."""
    for key, value in metrics.items():
        if not math.isfinite(float(value)):
            return key
    return None


def _snapshot(value: Any) -> Any:
    """A metric as it is now: a float64 copy of a 0-d tensor (on its device), else itself."""
    if isinstance(value, Tensor):
        return Tensor(value.data.astype(np.float64).reshape(()))
    return value


def data_classes(config: Any, dataset: Any) -> Any:
    """``config`` with an unset (``None``) ``num_classes`` field filled from ``dataset``: its
    number of classes, or 0 without labels. A set one is checked against the labels.

    >>> from dataclasses import dataclass
    >>> from minigan.data import Dataset
    >>> @dataclass
    ... class Config:
    ...     num_classes: int | None = None
    >>> data = Dataset(np.zeros((3, 1, 4, 4), np.uint8), [0, 2, 1], name="toy")
    >>> data_classes(Config(), data)
    Config(num_classes=3)
    >>> data_classes(Config(2), data)
    Traceback (most recent call last):
    ValueError: num_classes is 2, but dataset 'toy' has labels up to 2
    """
    if isinstance(config, type) or not dataclasses.is_dataclass(config):
        return config
    if "num_classes" not in {f.name for f in dataclasses.fields(config)}:
        return config
    labels = dataset.labels
    if labels is not None and len(labels) and int(labels.min()) < 0:
        raise ValueError(
            f"dataset {dataset.name!r} has negative labels ({int(labels.min())}): a "
            "conditional model needs class indices 0, 1, ..."
        )
    found = 0 if labels is None else len(dataset.classes or []) or int(labels.max(initial=-1)) + 1
    wanted = cast(Any, config).num_classes  # a field only some models' configs have
    if wanted is None:
        return dataclasses.replace(cast(Any, config), num_classes=found)
    if wanted < 0:
        raise ValueError(f"num_classes must be 0 (unconditional) or more, got {wanted}")
    if wanted and labels is None:
        raise ValueError(
            f"num_classes is {wanted}, but dataset {dataset.name!r} has no labels "
            "(use --num-classes 0 for an unconditional model)"
        )
    if wanted and len(labels) and int(labels.max()) >= wanted:
        raise ValueError(
            f"num_classes is {wanted}, but dataset {dataset.name!r} has labels up to "
            f"{int(labels.max())}"
        )
    return config


def _progress_text(record: Mapping[str, float], keys: Sequence[str]) -> str:
    """The progress bar's text: the ``keys`` of ``record`` and the speed.

    >>> _progress_text({"wasserstein": 0.5, "gp": 0.25, "images_per_s": 99.6}, ["wasserstein"])
    'wasserstein=0.500 100 img/s'
    """
    speed = f"{record['images_per_s']:.0f} img/s" if "images_per_s" in record else ""
    return " ".join(t for t in (metrics_text(record, keys), speed) if t)


class Trainer:
    """One training run (the phases and extension points are in the module docstring)."""

    def __init__(
        self,
        model: str | type[Trainable] | Trainable,
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
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        tensorboard: bool = False,
    ) -> None:
        if tensorboard:  # before anything is written: a missing extra fails at once
            from minigan.tensorboard import require_tensorboardx

            require_tensorboardx()
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        if log_every is not None and log_every < 1:
            raise ValueError(f"log_every must be at least 1, got {log_every}")
        self.model_arg, self.data_arg, self.out = model, data, out
        self.config, self.data_options = config, data_options
        self.given = {"epochs": epochs, "batch_size": batch_size, "seed": seed}
        self.resume, self.force, self.device = resume, force, device
        self.checkpoint_every, self.keep, self.max_steps = checkpoint_every, keep, max_steps
        self.sample_every, self.num_samples = sample_every, num_samples
        self.reads_every = log_every or (1 if device == "cpu" else 20)
        self.callbacks: list[Callback] = list(callbacks)
        self.loggers: list[MetricsLogger] = []
        self.plot_groups: dict[str, Sequence[str]] = {}
        self.tensorboard = tensorboard
        self.progress = progress
        self.say = log or self._tqdm_write

    @staticmethod
    def _tqdm_write(msg: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(msg, file=sys.stderr)

    def fit(self) -> RunResult:
        """Set the run up, train it, and say what was done."""
        self.started = time.perf_counter()
        self.setup()
        return self.loop()

    # =================================================================== setup
    def setup(self) -> None:
        """Open the run folder, decide the settings, open the data, build (or resume) the
        model, write config.json and the first sample grids."""
        self.run, self.ckpt_path, saved = Run.open(self.out, self.resume, self.force, warn=self.say)
        self._resolve_model()
        self.settings = self._settings(saved)
        self._open_data()
        self._build_model()
        self.epoch, self.batch_index = 0, 0
        self.offset = 0  # samples of this epoch consumed before batch 0 (a resumed run)
        self.seconds_before = 0.0  # the run's training time before this call
        if self.ckpt_path is not None:
            self._resume(self.ckpt_path)
        self._write_config(saved)
        self._first_samples()

    def _resolve_model(self) -> None:
        """``model_cls`` and ``model_name`` from a name, a class or a built model."""
        model = self.model_arg
        self.built: Trainable | None
        if isinstance(model, Trainable):
            cls, self.built = type(model), model
        else:
            cls = model_class(model) if isinstance(model, str) else model
            self.built = None
        if not (isinstance(cls, type) and issubclass(cls, Trainable)):
            raise TypeError(
                "model must be a registered name, a GAN (or Trainable) subclass or instance, "
                f"got {model!r}"
            )
        self.model_cls: type[Trainable] = cls
        k = getattr(cls, "batches_per_step", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{cls.__name__}.batches_per_step must be an int >= 1, got {k!r}")
        self.batches_per_step = k
        self.model_name = model if isinstance(model, str) else model_name(cls)

    def _settings(self, saved: dict[str, Any] | None) -> dict[str, Any]:
        """Epochs, batch size, seed, config and data: the given ones over the model's
        ``train_defaults``, or, when resuming, the run's own (checked against the given)."""
        if saved is not None:
            saved = {**saved, "config": as_saved(self.model_cls, saved.get("config", {}))}
            return resumed_settings(
                saved, self.model_name, self.config, self.given, self.data_arg, self.data_options
            )
        defaults = {"seed": 0, **self.model_cls.train_defaults}
        given = {k: v if v is not None else defaults[k] for k, v in self.given.items()}
        return {
            "epochs": int(given["epochs"]),
            "batch_size": int(given["batch_size"]),
            "seed": int(given["seed"]),
            "config": self.config,
            "data": self.data_arg if self.data_arg is not None else "shapes",
            "data_options": {
                "limit": defaults.get("limit"),
                **{k: v for k, v in (self.data_options or {}).items()},
            },
        }

    def _open_data(self) -> None:
        from minigan.data import Dataset, open_dataset, progress_bars

        dataset = self.settings["data"]
        self.data_spec: str | None = None
        if not isinstance(dataset, Dataset):
            self.data_spec = str(dataset)
            with progress_bars(self.progress):
                dataset = open_dataset(self.data_spec, **self.settings["data_options"])
        self.dataset = dataset
        self.loader = self._make_loader(dataset)
        k = self.batches_per_step
        self.steps_per_epoch = len(self.loader) // k
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.model_cls.__name__} takes {k} batches per step, but an epoch of "
                f"{len(dataset)} images in batches of {self.settings['batch_size']} has only "
                f"{len(self.loader)}: use more images or a smaller batch size"
            )

    def _make_loader(self, dataset: Any) -> Any:
        """The shuffled batches of an epoch (override to shard the data across processes)."""
        from minigan.data import DataLoader

        batch, seed = self.settings["batch_size"], self.settings["seed"]
        return DataLoader(
            dataset, batch, shuffle=True, seed=seed, drop_last=True, device=self.device
        )

    def _build_model(self) -> None:
        minigan.manual_seed(self.settings["seed"])
        cls, shape = self.model_cls, self.dataset.shape
        if self.built is None:
            # built from settings: a resumed run's config was completed by _settings (keep
            # what the run was); only a new run takes options from its data
            config = data_classes(cls.make_config(self.settings["config"]), self.dataset)
            if self.ckpt_path is None:
                config = cls.config_for_data(config, self.dataset)
            self.model = cls(config, shape, self.device)
        elif tuple(self.built.image_shape) != tuple(shape):
            raise ValueError(
                f"the model was built for images of shape {self.built.image_shape}, but "
                f"dataset {self.dataset.name!r} has {shape}"
            )
        else:
            self.model = self.built
            data_classes(self.model.config, self.dataset)  # checks the labels fit
        self.info: dict[str, Any] = {
            "model": self.model_name,  # a registered name: files never name code to import
            "config": self.model.config_dict(),
            "image_shape": list(self.model.image_shape),
        }
        if self.model.num_classes and self.dataset.classes:  # for `minigan sample --class`
            self.info["classes"] = list(self.dataset.classes)

    def _resume(self, ckpt_path: Path) -> None:
        """Load the checkpoint's weights, random state and position in the data."""
        ckpt, info = load_checkpoint(ckpt_path), self.info
        # options added to the model since the checkpoint was written are not in it: they
        # count with the values such runs trained with
        saved = as_saved(self.model_cls, ckpt["config"])
        changed = any(info["config"].get(k, v) != v for k, v in saved.items())
        if changed or list(ckpt["image_shape"]) != info["image_shape"]:
            raise ValueError(
                f"{ckpt_path} was made by {ckpt['model']} {ckpt['config']} for images "
                f"{ckpt['image_shape']}, not {self.model_name} {info['config']} for "
                f"{info['image_shape']}"
            )
        self.model.load_state_dict(ckpt["state"])
        minigan.random.set_state(ckpt["rng"])
        self.seconds_before = float(ckpt.get("seconds", 0.0))
        self.epoch = int(ckpt["epoch"])
        batch = int(getattr(self.loader, "global_batch_size", self.loader.batch_size))
        saved_batch = int(ckpt.get("global_batch_size", batch))  # older runs: one process
        sample = int(ckpt.get("sample", int(ckpt["batch"]) * saved_batch))
        self.batch_index, self.offset = divmod(sample, batch)
        if self.batch_index >= self._usable_batches():
            self.epoch, self.batch_index, self.offset = self.epoch + 1, 0, 0
        self.run.truncate_metrics(self.model.steps)
        self.say(
            f"resuming {self.run.root} from {ckpt_path.name}: epoch {self.epoch + 1}, "
            f"step {self.model.steps}"
        )

    def _write_config(self, saved: dict[str, Any] | None) -> None:
        s, dataset = self.settings, self.dataset
        self.run.write_config(
            {
                **self.info,
                "data": {
                    "spec": self.data_spec,
                    **(dict(s["data_options"]) if self.data_spec else {}),
                    "name": dataset.name,
                    "size": len(dataset),
                    "shape": list(dataset.shape),
                },
                "training": {
                    "epochs": s["epochs"],
                    "batch_size": s["batch_size"],
                    "world_size": int(getattr(self.loader, "world_size", 1)),
                    "seed": s["seed"],
                    "device": self.device,
                    "checkpoint_every": self.checkpoint_every,
                    "keep": self.keep,
                    "sample_every": self.sample_every,
                    "num_samples": self.num_samples,
                },
            },
            saved,
        )

    def _first_samples(self) -> None:
        """The fixed latents, real_samples.png and samples/epoch-000.png (once per run)."""
        run, dataset = self.run, self.dataset
        self.fixed_z = self.model.latents(range(self.num_samples))
        self.meta = {"model": self.model_name, "config": self.info["config"], "run": str(run.root)}
        if not (run.root / "real_samples.png").exists():
            real, _ = dataset[np.arange(min(self.num_samples, len(dataset)))]
            run.write_real_samples(real, dataset.name)
        if not (run.sample_dir / "epoch-000.png").exists():
            run.write_samples(self.model, self.fixed_z, 0, self.meta)
        self.first_step = self.model.steps  # where this call starts

    # =================================================================== the loop
    def loop(self) -> RunResult:
        """Train until the epochs (or ``max_steps``) are done, or Ctrl-C; always checkpoint."""
        epochs_total, model = self.settings["epochs"], self.model
        if self.epoch >= epochs_total:
            self.say(
                f"{self.run.root} has already trained {_count(epochs_total, 'epoch')}; ask for "
                "more epochs"
            )
        self.title = f"{self.model_name} on {self.dataset.name}"
        self.last_saved = model.steps if self.ckpt_path is not None else -1
        self.latest = self.ckpt_path
        self.position = (self.epoch, self.batch_index)
        self.record: dict[str, Any] = {}
        self.pending: list[tuple[dict[str, Any], Mapping[str, Any]]] = []  # not yet read back
        self.busy = 0.0  # seconds spent in train_step since the last read
        self.interrupted = self.stopped = self.in_step = False
        self.metric_keys: dict[str, None] = {}  # the model's metric names, in order seen
        self.plot_groups = {**dict(model.plot_groups), **self.plot_groups}
        self.bar = self._progress_bar()
        self.loggers.insert(0, JsonlLogger(self.run.metrics_path))
        if self.tensorboard:
            self.loggers.append(self._tensorboard_logger())
        try:
            with _Interrupt() as interrupt:
                while self.epoch < epochs_total and not self.stopped:
                    self.bar.set_description(f"epoch {self.epoch + 1}/{epochs_total}")
                    if self._epoch(interrupt):
                        self._end_epoch()
                self._checkpoint()
        except KeyboardInterrupt:
            if not self._on_interrupt():
                raise
        finally:
            for logger in self.loggers:
                logger.close()
            self.bar.close()
            self._write_losses()
        return self._result()

    def _write_losses(self) -> None:
        """losses.png; when the run is already ending with an error, a plotting failure is
        reported as a warning so that it does not hide that error."""
        if sys.exc_info()[0] is None:
            self.run.write_losses(self.title, self.plot_groups)
            return
        try:
            self.run.write_losses(self.title, self.plot_groups)
        except Exception as e:  # noqa: BLE001 - the error in flight is the one to report
            warnings.warn(f"losses.png was not drawn: {type(e).__name__}: {e}", stacklevel=2)

    def _tensorboard_logger(self) -> MetricsLogger:
        """A :class:`minigan.tensorboard.TensorBoardLogger` on RUN/tensorboard, with the run's
        config as hyper-parameters and the real images (a resumed run drops the events
        written after its checkpoint)."""
        from minigan.tensorboard import TensorBoardLogger

        resumed = self.ckpt_path is not None
        logger = TensorBoardLogger(
            self.run.root / "tensorboard",
            hparams=_json_read(self.run.config_path),
            purge_step=self.model.steps + 1 if resumed else None,
        )
        if not resumed:
            from minigan import images as imaging

            for tag, path in (
                ("real", self.run.root / "real_samples.png"),
                ("samples", self.run.sample_dir / "epoch-000.png"),
            ):
                if path.exists():
                    logger.write_images(tag, imaging.read_image(path), 0)
        return logger

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        total = self.settings["epochs"] * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        return tqdm(
            total=total,
            initial=min(self.model.steps, total),
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _epoch(self, interrupt: _Interrupt) -> bool:
        """The rest of the current epoch; ``True`` if it ran to its end. Each step takes
        ``batches_per_step`` batches (a last incomplete group is not drawn)."""
        k, group = self.batches_per_step, []
        usable = self._usable_batches()
        if self.batch_index >= usable:
            return True
        start = (self.epoch, self.batch_index) + ((self.offset,) if self.offset else ())
        for real, labels in self.loader.iter_from(*start):
            group.append((real, labels))
            if len(group) < k:
                continue
            images, classes = [g[0] for g in group], [g[1] for g in group]
            self._step(*((images[0], classes[0]) if k == 1 else (images, classes)))
            group = []
            if len(self.pending) >= self.reads_every:
                self._log()
            if self.checkpoint_every and self.model.steps % self.checkpoint_every == 0:
                self._checkpoint()
            if self.max_steps is not None and self.model.steps >= self.max_steps:
                self.stopped = True
                return False
            if self._stop_requested(interrupt):
                raise KeyboardInterrupt
            if self.batch_index >= usable:
                break
        return True

    def _usable_batches(self) -> int:
        """The loader batches of this epoch that complete a step (``batches_per_step`` each),
        counted from the epoch's first sample not consumed before a resume (``offset``)."""
        k = self.batches_per_step
        if not self.offset:
            return self.steps_per_epoch * k
        return self.loader.steps_from(self.offset) // k * k

    def _stop_requested(self, interrupt: _Interrupt) -> bool:
        """Whether to stop after this step (Ctrl-C)."""
        return interrupt.requested

    def _step(self, real: Tensor | list[Tensor], labels: Any = None) -> None:
        """One ``model.train_step`` on a batch (or a list of ``batches_per_step``), with
        their ``labels`` for a conditional model; its metrics wait (on the device) for the
        next ``_log``."""
        model = self.model
        batches = real if isinstance(real, list) else [real]
        self.in_step = True
        t0 = time.perf_counter()
        step: Any = model.train_step
        metrics = step(real, labels) if model.num_classes else step(real)
        self.busy += time.perf_counter() - t0
        self.in_step = False
        model.steps += 1
        self.batch_index += len(batches)  # the data position counts every batch drawn
        self.position = (self.epoch, self.batch_index)
        where = {"step": model.steps, "epoch": self.epoch + 1, "batch": self.batch_index}
        # copied (a metric may be a view of a weight the next step updates) and detached (no
        # step's graph outlives it): on a GPU, no wait
        metrics = {k: _snapshot(v) for k, v in metrics.items()}
        self.pending.append(({**where, "images": sum(len(b) for b in batches)}, metrics))
        self.bar.update(1)

    def _end_epoch(self) -> None:
        self.epoch, self.batch_index, self.offset = self.epoch + 1, 0, 0
        self.position = (self.epoch, 0)
        self._log()
        self._sample_epoch()
        self._checkpoint()

    def _sample_epoch(self) -> None:
        """The epoch's sample grid (every ``sample_every`` epochs and the last), the GIF and
        the loss plot."""
        epoch = self.epoch
        if epoch % self.sample_every == 0 or epoch == self.settings["epochs"]:
            grid = self.run.write_samples(self.model, self.fixed_z, epoch, self.meta)
            self.run.write_gif()
            for logger in self.loggers:
                if hasattr(logger, "write_images"):
                    logger.write_images("samples", grid, self.model.steps)
        self.run.write_losses(self.title, self.plot_groups)

    def _log(self) -> None:
        """Read the pending steps' metrics (one copy per device), check them, log them.

        The steps before a NaN are logged before :class:`TrainingDiverged` is raised; a
        callback's ``KeyboardInterrupt`` is raised once every step read has been logged."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        values = self._reduce_metrics(read_metrics([metrics for _, metrics in self.pending]))
        # the read waits for the GPU: the steps' time includes it
        seconds = (self.busy + time.perf_counter() - t0) / len(self.pending)
        records, diverged = self._records(values, seconds)
        for logger in self.loggers:
            logger.write(records)
        self.pending.clear()  # only now: a Ctrl-C above leaves them to the next read
        self.busy = 0.0
        if records:
            self.bar.set_postfix_str(_progress_text(self.record, self.shown_metrics()))
        stop = self._run_callbacks(records)
        if diverged is not None:
            raise diverged
        if stop is not None:
            raise stop

    def _reduce_metrics(self, values: list[dict[str, float]]) -> list[dict[str, float]]:
        """The metrics as logged (a data-parallel run averages them over the processes)."""
        return values

    def _records(
        self, values: list[dict[str, float]], seconds: float
    ) -> tuple[list[dict[str, Any]], TrainingDiverged | None]:
        """The metrics.jsonl records of the pending steps, up to the first non-finite one
        (returned as the error to raise)."""
        records: list[dict[str, Any]] = []
        for (where, _), metrics in zip(self.pending, values):
            bad = _finite(metrics)
            if bad is not None:
                return records, self._diverged(where, bad, metrics[bad])
            self.metric_keys.update(dict.fromkeys(metrics))
            self.record = {
                **{k: v for k, v in where.items() if k != "images"},
                **metrics,
                "seconds": seconds,
                "images_per_s": where["images"] / max(seconds, 1e-9),
            }
            records.append(self.record)
        return records, None

    def shown_metrics(self) -> list[str]:
        """The metrics in the progress bar and summary: the model's ``progress_metrics``, or
        every metric its steps returned."""
        declared = self.model.progress_metrics
        return list(declared) if declared is not None else list(self.metric_keys)

    def _diverged(self, where: Mapping[str, Any], key: str, value: float) -> TrainingDiverged:
        good = latest_checkpoint(self.run.root)
        ok = f"{good} (step {_step_of(good)})" if good else "none had been written yet"
        return TrainingDiverged(
            f"{key} became {value} at step {where['step']} (epoch {where['epoch']}, batch "
            f"{where['batch']}); training stopped. Last good checkpoint: {ok}. Try a lower "
            f"learning rate.",
            where["step"],
            good,
        )

    def _run_callbacks(self, records: list[dict[str, Any]]) -> KeyboardInterrupt | None:
        """Each callback on each record; a stop request waits until all have run."""
        stop = None
        for r in records:
            for callback in self.callbacks:
                try:
                    callback(r, self.model)
                except KeyboardInterrupt as e:  # a stop request: finish the steps read first
                    stop = e
        return stop

    def _checkpoint(self) -> Path | None:
        """Save a checkpoint unless this step has one (after reading the metrics: a
        diverged step must never reach a checkpoint)."""
        self._log()
        if self.model.steps != self.last_saved:
            self.latest = self.run.save_checkpoint(
                self.model,
                {**self.info, **self._position_info()},
                self.position,
                self.keep,
                {"seconds": self._seconds()},
            )
            self.last_saved = self.model.steps
        return self.latest

    def _position_info(self) -> dict[str, int]:
        """What a checkpoint records of the position besides (epoch, batch): the sample index
        reached in the epoch, the global batch size and the number of processes."""
        batch = int(getattr(self.loader, "global_batch_size", self.loader.batch_size))
        return {
            "sample": self.offset + self.batch_index * batch,
            "global_batch_size": batch,
            "world_size": int(getattr(self.loader, "world_size", 1)),
        }

    def _on_interrupt(self) -> bool:
        """Ctrl-C (or a callback's stop): save and say how to resume. A second Ctrl-C in the
        middle of a step saves nothing (the state is half-updated): ``False``, re-raise."""
        if self.in_step:
            self.bar.close()
            self.say(
                f"interrupted during step {self.model.steps + 1}; not saving. Last checkpoint: "
                f"{self.latest}"
            )
            return False
        self.interrupted = True
        try:
            self._log()
        except KeyboardInterrupt:  # a callback asking to stop too: we are stopping
            pass
        self._checkpoint()
        self.bar.close()
        epoch, batch = self.position
        self.say(
            f"interrupted at step {self.model.steps} (epoch {epoch + 1}, batch {batch}): saved "
            f"{self.latest}. Continue with: minigan train {self.model_name} --out "
            f"{self.run.root} --resume"
        )
        return True

    def _seconds(self) -> float:
        """The run's training time so far, earlier calls included."""
        return self.seconds_before + time.perf_counter() - self.started

    def _result(self) -> RunResult:
        return RunResult(
            run_dir=self.run.root,
            steps=self.model.steps,
            epochs_done=self.epoch,
            interrupted=self.interrupted,
            checkpoint=self.latest,
            seconds=time.perf_counter() - self.started,
            last_metrics=self.record,
            shown_metrics=self.shown_metrics(),
            steps_this_call=self.model.steps - self.first_step,
            seconds_total=self._seconds(),
        )
