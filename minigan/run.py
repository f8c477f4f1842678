"""The run folder: one training run on disk, and reading models back from it.

A run is a directory::

    config.json         model name and config, data, training options, minigan version
    checkpoints/        step-000300.safetensors ... (the last few; the highest step is latest)
    samples/            epoch-000.png, epoch-001.png ... fixed-noise grids (seeds 0..63)
    real_samples.png    a grid of training images, for comparison
    progress.gif        the epoch grids, animated
    metrics.jsonl       one JSON object per step: the model's metrics, seconds, images/s
    losses.png          every metric over the steps (matplotlib; one subplot per group)
    tensorboard/        TensorBoard events (with ``tensorboard=True`` / ``--tensorboard``)

:class:`Run` opens one (new, resumed or forced over), writes its config, checkpoints, metrics
and images, and cleans it up; :func:`checkpoints`, :func:`latest_checkpoint`,
:func:`load_checkpoint` and :func:`load_model` read it back.

This module knows files, not training: it must not import the loop (:mod:`minigan.trainer`),
the CLI or any plugin (models are found through the registry, by name).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import minigan
from minigan import images as imaging
from minigan.gan import Trainable
from minigan.tensor import Tensor

__all__ = [
    "Run",
    "RunExistsError",
    "as_saved",
    "checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "model_class",
    "newest_readable_checkpoint",
]

PathLike = str | os.PathLike[str]
CHECKPOINT_RE = re.compile(r"^step-(\d+)\.safetensors$")
#: what minigan's atomic writes leave behind when killed mid-write
STALE_RE = re.compile(r"^\..+\.tmp(\.[a-z]+)?$")
RUN_FILES = (
    "config.json",
    "checkpoints",
    "samples",
    "real_samples.png",
    "progress.gif",
    "metrics.jsonl",
    "losses.png",
    "tensorboard",
)


class RunExistsError(FileExistsError):
    """The output directory already holds a run (and neither resume nor force was asked).

    The message speaks the Python API (``resume=True``, ``force=True``); the command line
    words its own from :attr:`path` (``--resume``, ``--force``, ``--out``).

    >>> e = RunExistsError("runs/x")
    >>> str(e.path), "resume=True" in str(e), "--resume" in str(e)
    ('runs/x', True, False)
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} already holds a training run; pass resume=True to continue it, "
            f"force=True to delete it and start over, or another out directory"
        )


def checkpoints(run_dir: PathLike) -> list[Path]:
    """The checkpoints of a run, oldest (lowest step) first."""
    directory = Path(run_dir) / "checkpoints"
    if not directory.is_dir():
        return []
    found = [(_step_of(p), p) for p in directory.iterdir() if CHECKPOINT_RE.match(p.name)]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: PathLike) -> Path | None:
    """The checkpoint with the highest step in ``run_dir/checkpoints`` (``None`` if none)."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def model_name(cls: type) -> str:
    """The registered name of a model class (for a class no plugin registers: its import
    path, a label only — nothing ever imports what a file says)."""
    from minigan.registry import get_registry

    registry = get_registry()
    for name in registry.names("model"):
        entry = registry.entry("model", name)
        target = entry.target
        if target is cls or (isinstance(target, str) and target == class_path(cls)):
            return name
    return class_path(cls)


def model_class(name: str) -> type:
    """The model class registered as ``name`` (or ``plugin:name``) by an installed plugin.

    Only the plugin registry is asked: a name read from a checkpoint or config.json never
    becomes an import, so a file cannot choose what code runs."""
    from minigan.registry import get_registry

    registry = get_registry()
    if not isinstance(name, str) or not registry.has("model", name):
        available = ", ".join(registry.names("model")) or "none"
        plugins = ", ".join(i.name for i in registry.info() if not i.error) or "none"
        raise KeyError(
            f"model {name!r} is not provided by any installed plugin (models: {available}; "
            f"plugins: {plugins}); install the plugin that registers it, or load the file "
            f"in Python with load_model(path, cls=TheModelClass)"
        )
    return registry.get("model", name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """A checkpoint file written by :func:`train`, as a dict (``model``, ``config``,
    ``image_shape``, ``state``, ``rng``, ``epoch``, ``batch``, ``step`` ...)."""
    path = Path(path)
    try:
        ckpt = minigan.load(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable minigan checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or "state" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: a safetensors file, but not a minigan training checkpoint")
    return ckpt


def newest_readable_checkpoint(
    run_dir: PathLike, warn: Callable[[str], None] | None = None
) -> Path | None:
    """The newest checkpoint of a run that can be read (``None`` if the run has none).

    A newer one that is truncated or corrupt (say, a kill during a write on a file system
    without atomic renames, or a bad copy) is passed over with a warning naming it; when no
    checkpoint is readable, ``ValueError`` lists them all."""
    found = checkpoints(run_dir)
    problems = []
    for path in reversed(found):
        try:
            load_checkpoint(path)
        except ValueError as e:
            problems.append(str(e))
            continue
        for problem in problems:
            (warn or _warn)(f"skipping an unreadable checkpoint: {problem}; using {path.name}")
        return path
    if problems:
        raise ValueError(f"no readable checkpoint in {run_dir}: " + "; ".join(problems))
    return None


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def as_saved(cls: type[Trainable], saved: Any) -> Any:
    """A saved config, completed for the fields the model's ``Config`` gained since the run
    was written, with the values the run trained with: ``num_classes`` 0 (it predates
    classes, so it was unconditional) and the model's ``added_config_fields``. A value the
    saved config has is kept; anything but a mapping is returned as it is."""
    if not isinstance(saved, Mapping):
        return saved
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    before = {"num_classes": 0, **cls.added_config_fields}
    return {**{k: v for k, v in before.items() if k in fields and k not in saved}, **saved}


def load_model(
    source: PathLike,
    device: str = "cpu",
    cls: type[Trainable] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[Trainable, dict[str, Any]]:
    """The model saved in a checkpoint file, or in the newest readable checkpoint of a run
    directory. Returns ``(model, checkpoint)``; the model is ready to :meth:`Trainable.sample`.

    The checkpoint's ``model`` name is looked up among the installed plugins' models
    (:func:`model_class`); ``cls`` skips the lookup for code that has the class itself.
    ``warn`` receives the warning about a newer, unreadable checkpoint (default: a Python
    warning)."""
    path = Path(source)
    if path.is_dir():
        found = newest_readable_checkpoint(path, warn)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoints/step-*.safetensors in this directory")
        path = found
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint file")
    ckpt = load_checkpoint(path)
    if cls is None:
        cls = model_class(ckpt["model"])
    elif not (isinstance(cls, type) and issubclass(cls, Trainable)):
        raise TypeError(f"cls must be a GAN (or Trainable) subclass, got {cls!r}")
    model = cls(cls.make_config(as_saved(cls, ckpt["config"])), tuple(ckpt["image_shape"]), device)
    model.load_state_dict(ckpt["state"])
    ckpt["path"] = path
    return model, ckpt


def _step_of(path: Path) -> int:
    m = CHECKPOINT_RE.match(path.name)
    return int(m.group(1)) if m else -1


class Run:
    """The files of one run directory (see the module docstring).

    :meth:`open` starts a new run, or finds the checkpoint and config to resume;
    :meth:`write_config`, :meth:`save_checkpoint`, :meth:`write_samples`, :meth:`write_gif`,
    :meth:`write_losses` and :meth:`truncate_metrics` write it. Only the process that owns
    the run (rank 0 in data-parallel training) should call the writers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path = root / "config.json"
        self.checkpoint_dir = root / "checkpoints"
        self.sample_dir = root / "samples"
        self.metrics_path = root / "metrics.jsonl"

    @classmethod
    def open(
        cls,
        out: PathLike,
        resume: bool = False,
        force: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> tuple[Run, Path | None, dict[str, Any] | None]:
        """The run at ``out``, the checkpoint to resume from and the saved config.json.

        An existing run is an error unless ``resume`` (continue from its latest checkpoint)
        or ``force`` (delete its files and start over); ``resume`` with nothing to resume is
        an error too. Stale temporary files of interrupted writes are removed; ``resume`` uses
        the newest *readable* checkpoint, telling ``warn`` about newer broken ones."""
        run = cls(Path(out))
        if run.exists() and not resume:
            if not force:
                raise RunExistsError(run.root)
            run.clear()
        run.remove_stale_files()
        ckpt_path = newest_readable_checkpoint(run.root, warn) if resume else None
        if resume and ckpt_path is None:
            raise FileNotFoundError(
                f"nothing to resume in {run.root}: no checkpoints/step-*.safetensors "
                f"(start a new run without resume)"
            )
        saved = _read_json(run.config_path) if resume and run.config_path.exists() else None
        return run, ckpt_path, saved

    def write_config(self, config: Mapping[str, Any], saved: Mapping[str, Any] | None) -> None:
        """Write config.json: ``config`` plus the minigan version and the creation time (kept
        from ``saved``, the run's previous config, when resuming)."""
        self.root.mkdir(parents=True, exist_ok=True)
        created = (saved or {}).get(
            "created", datetime.datetime.now().isoformat(timespec="seconds")
        )
        _write_json(
            self.config_path,
            {**config, "minigan_version": minigan.__version__, "created": created},
        )

    def write_real_samples(self, images: np.ndarray, dataset_name: str) -> None:
        """real_samples.png: a grid of training images."""
        path = self.root / "real_samples.png"
        imaging.save_image(path, imaging.make_grid(images), {"dataset": dataset_name})

    def exists(self) -> bool:
        return self.config_path.exists() or bool(checkpoints(self.root))

    def remove_stale_files(self) -> list[Path]:
        """Delete the temporary files (``.NAME.tmp``, ``.NAME.<id>.tmp[.png]``) that a write
        killed half-way left in the run (they are never used again); returns them."""
        stale = [
            p
            for folder in (self.root, self.checkpoint_dir, self.sample_dir)
            if folder.is_dir()
            for p in folder.iterdir()
            if STALE_RE.match(p.name) and p.is_file()
        ]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def clear(self) -> None:
        """Delete the run's own files (nothing else in the directory)."""
        for name in RUN_FILES:
            p = self.root / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate_metrics(self, step: int) -> None:
        """Drop the records after ``step`` (steps done after the checkpoint we resume from)."""
        kept = [r for r in self.metrics() if r["step"] <= step]
        tmp = self.metrics_path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.metrics_path)

    def save_checkpoint(
        self,
        model: Trainable,
        info: Mapping[str, Any],
        position: tuple[int, int],
        keep: int,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """checkpoints/step-NNNNNN.safetensors: ``info``, the model's state, the random
        state, the data ``position`` (epoch, batches drawn in it) and ``extra`` (e.g. the
        run's total training ``seconds``); only the ``keep`` latest are kept."""
        epoch, batch = position
        state = {
            **(extra or {}),
            **info,
            "state": model.state_dict(),
            "rng": minigan.random.get_state(),
            "epoch": epoch,
            "batch": batch,
            "step": model.steps,
        }
        metadata = {
            "model": str(info["model"]),
            "config": json.dumps(info["config"]),
            "image_shape": json.dumps(list(model.image_shape)),
            "minigan_version": minigan.__version__,
            "step": str(model.steps),
            "epoch": str(epoch),
            "batch": str(batch),
        }
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step-{model.steps:06d}.safetensors"
        minigan.save(state, path, metadata=metadata)
        for old in checkpoints(self.root)[:-keep]:
            old.unlink()
        return path

    def write_samples(
        self, model: Trainable, z: Tensor, epoch: int, meta: Mapping[str, Any]
    ) -> np.ndarray:
        """samples/epoch-NNN.png: the grid of ``model``'s samples for ``z`` (returned, RGB
        ``uint8``)."""
        images = np.asarray(model.sample(z).numpy())
        grid = imaging.make_grid(images)
        imaging.save_image(
            self.sample_dir / f"epoch-{epoch:03d}.png",
            grid,
            {**meta, "epoch": epoch, "step": model.steps, "seeds": f"0-{len(images) - 1}"},
        )
        return grid

    def write_gif(self) -> None:
        frames = [imaging.read_image(p) for p in sorted(self.sample_dir.glob("epoch-*.png"))]
        frames = [f if f.ndim == 3 else np.repeat(f[..., None], 3, -1) for f in frames]
        if frames:
            imaging.save_gif(self.root / "progress.gif", [f[..., :3] for f in frames])

    def write_losses(
        self, title: str, groups: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, Any]:
        """losses.png: every metric in metrics.jsonl over the steps, one subplot per group
        (``groups`` as declared by the model and the trainer; the rest grouped by
        :func:`minigan.plots.metric_groups`), drawn by matplotlib. Returns what was plotted
        (group title -> series)."""
        from minigan.plots import plot_metrics

        records = self.metrics()
        if not records:
            return {}
        if (self.root / "quality.jsonl").is_file():  # --metric-every: quality subplots too
            from minigan.metrics.training import quality_records

            extra, extra_groups = quality_records(self.root, up_to=records[-1]["step"])
            records = [*records, *extra]
            groups = {**(groups or {}), **extra_groups}
        return plot_metrics(self.root / "losses.png", records, groups, title=title)


def resumed_settings(
    saved: dict[str, Any],
    model_name: str,
    config: Any,
    given: Mapping[str, Any],
    data: Any,
    data_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The settings of a resumed run: the saved ones; a given value that differs is an error
    (except ``epochs``, which may grow)."""
    conflicts = []
    if saved.get("model") not in (model_name, None):
        conflicts.append(f"model {model_name!r} (the run trains {saved['model']!r})")
    training = saved.get("training", {})
    for key in ("batch_size", "seed"):
        if given[key] is not None and given[key] != training.get(key):
            conflicts.append(f"{key}={given[key]} (the run has {training.get(key)})")
    saved_config = saved.get("config", {})
    if config is not None:
        wanted = config if isinstance(config, Mapping) else dataclasses.asdict(config)
        wanted = json.loads(json.dumps(dict(wanted)))
        for key, value in wanted.items():
            if value is not None and saved_config.get(key) != value:
                conflicts.append(f"{key}={value!r} (the run has {saved_config.get(key)!r})")
    saved_data = saved.get("data", {})
    options = {k: saved_data.get(k) for k in ("path", "resolution", "channels", "limit", "seed")}
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(data, str) and data != saved_data.get("spec"):
        conflicts.append(f"data {data!r} (the run used {saved_data.get('spec')!r})")
    for key, value in (data_options or {}).items():
        if value is not None and options.get(key) != value:
            conflicts.append(f"data option {key}={value!r} (the run has {options.get(key)!r})")
    if conflicts:
        raise ValueError(
            "a resumed run keeps its settings (config.json), but these differ: "
            + "; ".join(conflicts)
            + ". Start a new run (another --out) to change them."
        )
    if data is None or isinstance(data, str):
        if saved_data.get("spec") is None:
            raise ValueError(
                "this run was trained on a Dataset object, not a named dataset: pass the same "
                "dataset again to resume it"
            )
        data = saved_data["spec"]
    return {
        "epochs": int(given["epochs"] if given["epochs"] is not None else training["epochs"]),
        "batch_size": int(training["batch_size"]),
        "seed": int(training["seed"]),
        "config": saved_config,
        "data": data,
        "data_options": options,
    }
