"""Training runs, shared by every GAN plugin: the model contract and the training loop.

**The model contract.** A model that ``minigan train NAME`` can train is a subclass of
:class:`GAN` (registered through the ``register_models`` hook) with

- ``Config``: a ``@dataclass`` whose fields all have defaults; each field becomes a command
  line option (``latent_dim`` -> ``--latent-dim``) with ``metadata={"help": ...}`` as its
  help text (and ``metadata={"default_help": "auto: ..."}`` to describe a ``None`` default);
- ``__init__(config, image_shape, device)``: build networks and optimizers for images of
  ``image_shape = (C, H, W)``;
- ``networks()`` / ``optimizers()``: name -> module / optimizer (``"generator"`` is required;
  ``"generator_ema"``, if present, is what :meth:`GAN.sample` uses). :meth:`GAN.state_dict`
  saves them all;
- ``train_step(real) -> dict``: one discriminator and one generator update on a batch of real
  images (NCHW in [-1, 1]); returns metrics, at least ``loss_d``, ``loss_g``, ``d_real`` and
  ``d_fake`` (the mean of sigmoid(D's logits) on real and generated images), each a float or
  a 0-d tensor. Returning the (detached) tensors is what lets a GPU step run without waiting
  for the GPU: the training loop reads them back every ``log_every`` steps, all in one copy
  (:func:`read_metrics`).

:meth:`GAN.latents`, :meth:`GAN.sample`, :meth:`GAN.state_dict` and the helpers below
(:func:`discriminator_loss`, :func:`generator_loss`, :func:`ema_update`) are shared, so a new
model (DCGAN, StyleGAN-lite, a third party's) writes only its networks and its step.
:func:`check_model` verifies the contract.

**A run** (:func:`train`) is a directory::

    config.json         model name and config, data, training options, minigan version
    checkpoints/        step-000300.safetensors ... (the last few; the highest step is latest)
    samples/            epoch-000.png, epoch-001.png ... fixed-noise grids (seeds 0..63)
    real_samples.png    a grid of training images, for comparison
    progress.gif        the epoch grids, animated
    metrics.jsonl       one JSON object per step: losses, D(x), D(G(z)), seconds, images/s
    losses.png          the losses and D outputs over the steps

Ctrl-C finishes the current step, saves a checkpoint and returns; ``resume=True`` continues
from the latest checkpoint with the same losses an uninterrupted run would have had. A NaN
or infinite loss stops the run with :class:`TrainingDiverged`, keeping the last good
checkpoint.

>>> import minigan
>>> real, fake = minigan.tensor([3.0, 2.0]), minigan.tensor([-3.0, -2.0])
>>> round(discriminator_loss(real, fake).item(), 4), round(generator_loss(fake).item(), 4)
(0.1755, 2.5878)
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import minigan
from minigan import functional as F
from minigan import images as imaging
from minigan import nn
from minigan.optim import Optimizer
from minigan.tensor import Tensor

__all__ = [
    "GAN",
    "RunResult",
    "TrainingDiverged",
    "RunExistsError",
    "check_model",
    "discriminator_loss",
    "ema_update",
    "generator_loss",
    "latest_checkpoint",
    "load_model",
    "mean_sigmoid",
    "read_metrics",
    "train",
]

PathLike = str | os.PathLike[str]
REQUIRED_METRICS = ("loss_d", "loss_g", "d_real", "d_fake")
CHECKPOINT_RE = re.compile(r"^step-(\d+)\.safetensors$")
RUN_FILES = (
    "config.json",
    "checkpoints",
    "samples",
    "real_samples.png",
    "progress.gif",
    "metrics.jsonl",
    "losses.png",
)


# =========================================================================== shared helpers
def discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, label_smoothing: float = 0.0
) -> Tensor:
    """The GAN discriminator loss with BCE from logits: real images are labelled
    ``1 - label_smoothing`` (one-sided label smoothing), generated ones ``0``."""
    real_target = minigan.ones_like(real_logits) * (1.0 - label_smoothing)
    return F.binary_cross_entropy_with_logits(
        real_logits, real_target
    ) + F.binary_cross_entropy_with_logits(fake_logits, minigan.zeros_like(fake_logits))


def generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss ``-log D(G(z))``: BCE of the discriminator's logits
    on generated images against the label "real"."""
    return F.binary_cross_entropy_with_logits(fake_logits, minigan.ones_like(fake_logits))


def mean_sigmoid(logits: Tensor) -> Tensor:
    """The mean of ``sigmoid(logits)``: the discriminator's average "real" probability, as a
    detached 0-d tensor on the logits' device (reading it is the caller's choice).

    >>> float(mean_sigmoid(minigan.tensor([0.0, 0.0])))
    0.5
    """
    return F.sigmoid(logits.detach()).mean()


def read_metrics(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """The metrics of several training steps as floats, with one read per device.

    Values may be floats or 0-d tensors; tensors on a GPU are stacked there and copied back
    together, so reading a hundred steps of metrics costs one wait for the GPU, not four
    hundred.

    >>> read_metrics([{"loss": minigan.tensor(0.5), "lr": 1e-3}, {"loss": 0.25, "lr": 1e-3}])
    [{'loss': 0.5, 'lr': 0.001}, {'loss': 0.25, 'lr': 0.001}]
    """
    out = [dict(m) for m in steps]
    by_device: dict[str, list[tuple[dict[str, Any], str, Tensor]]] = {}
    for metrics in out:
        for key, value in metrics.items():
            if isinstance(value, Tensor):
                by_device.setdefault(value.device, []).append((metrics, key, value))
            else:
                metrics[key] = float(value)
    for entries in by_device.values():
        values = F.stack([F.astype(v.detach().reshape(()), np.float64) for *_, v in entries])
        for (metrics, key, _), value in zip(entries, values.numpy().tolist()):
            metrics[key] = value
    return out


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with gradients off: the starting point of an EMA network."""
    clone = copy.deepcopy(module)
    clone.requires_grad_(False)
    for p in clone.parameters():
        p.grad = None
    return clone


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Move ``ema``'s parameters toward ``model``'s: ``ema = decay * ema + (1 - decay) *
    model``; buffers (BatchNorm statistics) are copied.

    >>> a, b = nn.Linear(1, 1), nn.Linear(1, 1)
    >>> _ = nn.init.constant_(a.weight, 0.0), nn.init.constant_(b.weight, 1.0)
    >>> ema_update(a, b, decay=0.75)
    >>> a.weight.item()
    0.25
    """
    ema_params = dict(ema.named_parameters())
    for name, p in model.named_parameters():
        target = ema_params[name].data
        target += (1.0 - decay) * (p.data - target)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].data[...] = b.data


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off the parameter gradients of ``modules`` inside the block (e.g. D during the
    generator's update: its weight gradients would be computed for nothing)."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad = flag


# =========================================================================== the contract
@dataclasses.dataclass
class GANConfig:
    """The base of every model's ``Config``: the latent size."""

    latent_dim: int = dataclasses.field(
        default=100, metadata={"help": "size of the latent (noise) vector z"}
    )


class GAN:
    """The base class of trainable generators (see the module docstring for the contract).

    Subclasses set ``Config``, build their networks and optimizers in ``__init__`` (after
    calling ``super().__init__``), return them from :meth:`networks` and :meth:`optimizers`,
    and implement :meth:`train_step`.

    ``train_defaults`` suggests training options for the command line (``epochs``,
    ``batch_size``, ``limit``: the number of training images).
    """

    Config: ClassVar[type] = GANConfig
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 10, "batch_size": 64}

    def __init__(
        self, config: Any = None, image_shape: Sequence[int] = (3, 32, 32), device: str = "cpu"
    ) -> None:
        self.config = self.make_config(config)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        self.image_shape: tuple[int, int, int] = tuple(int(s) for s in image_shape)  # type: ignore[assignment]
        self.device = device
        self.steps = 0  # completed train steps; counted by train() and kept in the state dict

    # ----- configuration
    @classmethod
    def make_config(cls, config: Any = None) -> Any:
        """``config`` as an instance of ``cls.Config``: ``None`` gives the defaults, a dict
        overrides some of them (unknown keys are an error)."""
        if config is None:
            return cls.Config()
        if isinstance(config, cls.Config):
            return config
        if isinstance(config, Mapping):
            known = {f.name for f in dataclasses.fields(cls.Config)}
            unknown = sorted(set(config) - known)
            if unknown:
                raise TypeError(
                    f"{cls.__name__}: unknown config option(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            return cls.Config(**config)
        raise TypeError(
            f"{cls.__name__}: config must be a {cls.Config.__name__}, a dict or None, "
            f"got {type(config).__name__}"
        )

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self.config)))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one latent vector (default ``(config.latent_dim,)``)."""
        return (int(self.config.latent_dim),)

    # ----- networks
    def networks(self) -> dict[str, nn.Module]:
        """Every network, by name; ``"generator"`` at least."""
        raise NotImplementedError(f"{type(self).__name__} must implement networks()")

    def optimizers(self) -> dict[str, Optimizer]:
        """Every optimizer, by name."""
        raise NotImplementedError(f"{type(self).__name__} must implement optimizers()")

    def sampling_generator(self) -> nn.Module:
        """The network :meth:`sample` runs: ``generator_ema`` if there is one, else
        ``generator``."""
        nets = self.networks()
        return nets.get("generator_ema") or nets["generator"]

    # ----- training
    def train_step(self, real: Tensor) -> dict[str, float | Tensor]:
        """One discriminator and one generator update on ``real`` (NCHW in [-1, 1]).
        Returns at least ``loss_d``, ``loss_g``, ``d_real``, ``d_fake``, as floats or as
        detached 0-d tensors (which a GPU step returns without waiting for the GPU)."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_step()")

    # ----- sampling
    def latents(self, seeds: Iterable[int]) -> Tensor:
        """One latent per seed, each drawn from its own ``numpy.random.default_rng(seed)``:
        the same seed always gives the same latent, whatever the global random state."""
        seeds = [int(s) for s in seeds]
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative, got {seeds}")
        z = (
            np.stack(
                [
                    np.random.default_rng(s).standard_normal(self.latent_shape, dtype=np.float32)
                    for s in seeds
                ]
            )
            if seeds
            else np.zeros((0, *self.latent_shape), np.float32)
        )
        return minigan.tensor(z, device=self.device)

    def sample(self, z: Tensor) -> Tensor:
        """Images (NCHW float32 in [-1, 1]) for latents ``z``: the sampling generator in
        eval mode, without gradients (its train/eval mode is restored afterwards)."""
        net = self.sampling_generator()
        was_training = net.training
        net.eval()
        try:
            with minigan.no_grad():
                return net(z)
        finally:
            net.train(was_training)

    def generate(
        self, seeds: Iterable[int], batch_size: int = 64, **sample_options: Any
    ) -> np.ndarray:
        """Images for ``seeds`` as a NumPy array, computed ``batch_size`` at a time;
        ``sample_options`` (e.g. ``truncation``) go to :meth:`sample`."""
        seeds = list(seeds)
        parts = [
            np.asarray(
                self.sample(self.latents(seeds[i : i + batch_size]), **sample_options).numpy()
            )
            for i in range(0, len(seeds), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, *self.image_shape), np.float32)

    # ----- state
    def state_dict(self) -> dict[str, Any]:
        """``{"networks": {name: state}, "optimizers": {name: state}, "steps": n}``: all a
        checkpoint needs to continue training exactly (save it with :func:`minigan.save`)."""
        return {
            "networks": {name: net.state_dict() for name, net in self.networks().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers().items()},
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (for example one read back by :func:`minigan.load`)."""
        nets, opts = self.networks(), self.optimizers()
        for kind, ours in (("networks", nets), ("optimizers", opts)):
            saved = state.get(kind, {})
            missing, unexpected = sorted(set(ours) - set(saved)), sorted(set(saved) - set(ours))
            if missing or unexpected:
                raise KeyError(
                    f"{type(self).__name__}.load_state_dict: {kind} differ: missing "
                    f"{missing or 'none'}, unexpected {unexpected or 'none'}"
                )
        for name, net in nets.items():
            net.load_state_dict(state["networks"][name])
        for name, opt in opts.items():
            opt.load_state_dict(state["optimizers"][name])
        self.steps = int(state.get("steps", 0))

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"{type(self).__name__}({self.config}, image_shape=({c}, {h}, {w}))"


# =========================================================================== check_model
def _fail(model_cls: type, prop: str, detail: str) -> AssertionError:
    return AssertionError(f"check_model({model_cls.__name__}): {prop}: {detail}")


def _params(model: GAN) -> dict[str, list[np.ndarray]]:
    return {
        name: [np.array(p.numpy(), copy=True) for p in net.parameters()]
        for name, net in model.networks().items()
    }


def check_model(
    model_cls: type,
    image_shape: Sequence[int] = (1, 32, 32),
    config: Mapping[str, Any] | None = None,
    batch_size: int = 4,
    device: str = "cpu",
) -> None:
    """Check that ``model_cls`` follows the model contract of :mod:`minigan.train`.

    Builds it with its default ``Config`` (fields overridden by ``config``, e.g. small
    widths), trains one step on random data and checks: the config dataclass (defaults and
    help for every field), the metrics (required keys, finite numbers — floats or
    one-element tensors —, probabilities in [0, 1]), that the generator's and the
    discriminator's parameters changed, that samples have the right shape, dtype (float32)
    and range, that the same seeds give the same samples whatever the global random state and
    the batch, and that a state dict saved with :func:`minigan.save` and loaded into a fresh
    model gives the same samples and the same next training step (optimizer state included).
    Raises ``AssertionError`` naming the model and the property that failed.

    ``device="cuda"`` runs it all on the GPU — or, inside :func:`minigan.testing.fake_cuda`,
    on its CPU stand-in, which also checks that the model keeps every tensor on the device.
    """
    Config = getattr(model_cls, "Config", None)
    if Config is None or not dataclasses.is_dataclass(Config):
        raise _fail(model_cls, "Config", "the class attribute Config must be a @dataclass")
    for f in dataclasses.fields(Config):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(model_cls, "Config", f"field {f.name!r} has no default")
        if not f.metadata.get("help"):
            raise _fail(model_cls, "Config", f"field {f.name!r} has no metadata['help'] text")
    shape = tuple(int(s) for s in image_shape)

    def build(seed: int) -> GAN:
        minigan.manual_seed(seed)
        try:
            return model_cls(model_cls.make_config(dict(config or {})), shape, device)
        except Exception as e:
            raise _fail(model_cls, "construction", f"{type(e).__name__}: {e}") from e

    model = build(0)
    nets = model.networks()
    for required in ("generator", "discriminator"):
        if required not in nets:
            raise _fail(model_cls, "networks()", f"no {required!r} in {sorted(nets)}")
    for net_name, net in nets.items():
        for key, t in net.state_dict().items():
            if t.device != minigan.backend.parse_device(device):
                raise _fail(
                    model_cls, "device", f"{net_name}.{key} is on {t.device!r}, not {device!r}"
                )
    data_rng = np.random.default_rng(0)
    real = data_rng.uniform(-1, 1, (batch_size, *shape)).astype(np.float32)
    real = minigan.tensor(real, device=device)

    before = _params(model)
    minigan.manual_seed(1)
    try:
        metrics = model.train_step(real)
    except Exception as e:  # e.g. a tensor made on the CPU meeting the model's on the GPU
        raise _fail(model_cls, "train_step", f"{type(e).__name__}: {e}") from e
    if not isinstance(metrics, dict):
        raise _fail(model_cls, "train_step", f"must return a dict, got {type(metrics).__name__}")
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise _fail(model_cls, "train_step metrics", f"missing {missing}; got {sorted(metrics)}")
    for key, value in metrics.items():
        scalar = isinstance(value, Tensor) and value.numel() == 1 and value.dtype.kind == "f"
        if not (scalar or isinstance(value, (float, int))) or isinstance(value, bool):
            raise _fail(
                model_cls,
                "train_step metrics",
                f"{key} is {value!r}, not a float or a one-element float tensor",
            )
    (metrics,) = read_metrics([metrics])
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise _fail(model_cls, "train_step metrics", f"{key} is {value} on random data")
    for key in ("d_real", "d_fake"):
        if not 0.0 <= metrics[key] <= 1.0:
            raise _fail(model_cls, "train_step metrics", f"{key}={metrics[key]} is not in [0, 1]")
    after = _params(model)
    for net in ("generator", "discriminator"):
        if not any(np.any(a != b) for a, b in zip(before[net], after[net])):
            raise _fail(model_cls, "train_step", f"the {net}'s parameters did not change")

    seeds = [0, 1, 2]
    out = model.sample(model.latents(seeds))
    if not isinstance(out, Tensor):
        raise _fail(model_cls, "sample", f"must return a Tensor, got {type(out).__name__}")
    x = np.asarray(out.numpy())
    if x.shape != (len(seeds), *shape):
        raise _fail(model_cls, "sample", f"shape {x.shape}, expected {(len(seeds), *shape)}")
    if x.dtype != np.float32:
        raise _fail(model_cls, "sample", f"dtype {x.dtype}, expected float32")
    if not np.all(np.isfinite(x)) or x.min() < -1 or x.max() > 1:
        raise _fail(model_cls, "sample", f"values in [{x.min()}, {x.max()}], expected [-1, 1]")
    if out.requires_grad:
        raise _fail(model_cls, "sample", "the result requires grad (sample under no_grad)")

    minigan.manual_seed(12345)
    again = np.asarray(model.sample(model.latents(seeds)).numpy())
    if not np.array_equal(x, again):
        raise _fail(model_cls, "determinism", "the same seeds gave different samples")
    single = np.asarray(model.sample(model.latents([2])).numpy())
    if not np.allclose(single[0], x[2], atol=1e-5):
        raise _fail(
            model_cls, "determinism", "a seed's sample depends on the other seeds in the batch"
        )

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.safetensors")
        try:
            minigan.save(model.state_dict(), path)
            state = minigan.load(path)
        except Exception as e:
            raise _fail(model_cls, "state_dict", f"minigan.save/load failed: {e}") from e
    clone = build(99)  # different initial weights
    try:
        clone.load_state_dict(state)
    except Exception as e:
        raise _fail(model_cls, "load_state_dict", f"{type(e).__name__}: {e}") from e
    if not np.array_equal(np.asarray(clone.sample(clone.latents(seeds)).numpy()), x):
        raise _fail(model_cls, "state_dict", "a reloaded model samples differently")
    results = []
    for m in (model, clone):
        minigan.manual_seed(2)
        results.append((m.train_step(real), _params(m)))
    (m1, p1), (m2, p2) = results
    m1, m2 = read_metrics([m1, m2])
    if m1 != m2 or any(not np.array_equal(a, b) for net in p1 for a, b in zip(p1[net], p2[net])):
        raise _fail(
            model_cls,
            "state_dict",
            f"the step after reloading differs ({m1} vs {m2}): is every optimizer's state in "
            f"state_dict()?",
        )


# =========================================================================== run directory
class RunExistsError(FileExistsError):
    """The output directory already holds a run (and neither resume nor force was asked)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclasses.dataclass
class RunResult:
    """What :func:`train` did."""

    run_dir: Path
    steps: int  # completed train steps in total (resumed runs included)
    epochs_done: int  # completed epochs
    interrupted: bool  # stopped by Ctrl-C (or a callback raising KeyboardInterrupt)
    checkpoint: Path | None  # the latest checkpoint
    seconds: float  # wall time of this call
    last_metrics: dict[str, float]


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


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _model_name(cls: type) -> str:
    """The registered name of a model class (or its import path if it is not registered)."""
    from minigan.registry import get_registry

    registry = get_registry()
    for name in registry.names("model"):
        entry = registry.entry("model", name)
        target = entry.target
        if target is cls or (isinstance(target, str) and target == _class_path(cls)):
            return name
    return _class_path(cls)


def _model_class(name: str, class_path: str | None = None) -> type:
    """A model class from its registered name, or from a ``module:Class`` path."""
    from minigan.registry import PluginError, get_registry

    registry = get_registry()
    if name in registry.names("model"):
        return registry.get("model", name)
    target = class_path or name
    if ":" in target:
        from minigan.registry import Entry

        try:
            return Entry("model", name, target, "?").load()
        except PluginError as e:
            raise KeyError(str(e)) from None
    available = ", ".join(registry.names("model")) or "none"
    raise KeyError(f"unknown model {name!r}; available: {available}")


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


def load_model(source: PathLike, device: str = "cpu") -> tuple[GAN, dict[str, Any]]:
    """The model saved in a checkpoint file, or in the latest checkpoint of a run directory.
    Returns ``(model, checkpoint)``; the model is ready to :meth:`GAN.sample`."""
    path = Path(source)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoints/step-*.safetensors in this directory")
        path = found
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint file")
    ckpt = load_checkpoint(path)
    cls = _model_class(ckpt["model"], ckpt.get("model_class"))
    model = cls(cls.make_config(ckpt["config"]), tuple(ckpt["image_shape"]), device)
    model.load_state_dict(ckpt["state"])
    ckpt["path"] = path
    return model, ckpt


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


def _progress_text(record: Mapping[str, float]) -> str:
    return (
        f"loss_d={record['loss_d']:.3f} loss_g={record['loss_g']:.3f} D(x)={record['d_real']:.2f}"
        f" D(G(z))={record['d_fake']:.2f} {record['images_per_s']:.0f} img/s"
    )


class _Run:
    """The files of one run directory (see the module docstring). With ``writer=False``
    (ranks other than 0 of a data-parallel job) nothing is written."""

    def __init__(self, root: Path, writer: bool = True) -> None:
        self.root, self.writer = root, writer
        self.config_path = root / "config.json"
        self.checkpoint_dir = root / "checkpoints"
        self.sample_dir = root / "samples"
        self.metrics_path = root / "metrics.jsonl"

    def exists(self) -> bool:
        return self.config_path.exists() or bool(checkpoints(self.root))

    def clear(self) -> None:
        """Delete the run's own files (nothing else in the directory)."""
        if not self.writer:
            return
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
        if not self.writer:
            return
        kept = [r for r in self.metrics() if r["step"] <= step]
        tmp = self.metrics_path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.metrics_path)

    def save_checkpoint(
        self, model: GAN, info: Mapping[str, Any], position: tuple[int, int], keep: int
    ) -> Path:
        epoch, sample = position  # sample: the global sample index reached in the epoch
        batch = sample // int(info.get("global_batch_size", 1))
        path = self.checkpoint_dir / f"step-{model.steps:06d}.safetensors"
        if not self.writer:
            return path
        state = {
            **info,
            "state": model.state_dict(),
            "rng": minigan.random.get_state(),
            "epoch": epoch,
            "batch": batch,
            "sample": sample,
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
            "sample": str(sample),
        }
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        minigan.save(state, path, metadata=metadata)
        for old in checkpoints(self.root)[:-keep]:
            old.unlink()
        return path

    def write_json(self, path: Path, obj: Any) -> None:
        if self.writer:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_json(path, obj)

    def write_samples(self, model: GAN, z: Tensor, epoch: int, meta: Mapping[str, Any]) -> None:
        if not self.writer:
            return
        images = np.asarray(model.sample(z).numpy())
        grid = imaging.make_grid(images)
        imaging.save_image(
            self.sample_dir / f"epoch-{epoch:03d}.png",
            grid,
            {**meta, "epoch": epoch, "step": model.steps, "seeds": f"0-{len(images) - 1}"},
        )

    def write_gif(self) -> None:
        if not self.writer:
            return
        frames = [imaging.read_image(p) for p in sorted(self.sample_dir.glob("epoch-*.png"))]
        frames = [f if f.ndim == 3 else np.repeat(f[..., None], 3, -1) for f in frames]
        if frames:
            imaging.save_gif(self.root / "progress.gif", [f[..., :3] for f in frames])

    def write_losses(self, title: str) -> None:
        if not self.writer:
            return
        records = self.metrics()
        if not records:
            return
        steps = [r["step"] for r in records]
        series = {
            key: (steps, [r[key] for r in records])
            for key in ("loss_d", "loss_g", "d_real", "d_fake")
            if key in records[0]
        }
        image = imaging.line_chart(series, title=title, xlabel="step")
        imaging.save_image(self.root / "losses.png", image, {"title": title})


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
    distributed: bool | None = None,
    sync_bn: bool = False,
) -> RunResult:
    """Train a GAN and write its run directory ``out`` (layout in the module docstring).

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
        progress: show a tqdm progress bar (on stderr).
        log: where messages go (default: stderr).
        distributed: data-parallel over the processes of an MPI job (``mpirun -n N``):
            ``None`` when launched with more than one process, ``True`` insists, ``False``
            opts out. ``batch_size`` is then per process, a step takes ``N * batch_size``
            images; only rank 0 writes files and messages; callbacks run on every rank with
            the metrics averaged over the ranks. See :mod:`minigan.distributed`.
        sync_bn: batch-norm statistics over the global batch (SyncBatchNorm) when
            distributed; otherwise each process normalises with its own batch's.

    Raises:
        RunExistsError: ``out`` holds a run and neither ``resume`` nor ``force`` was given.
        TrainingDiverged: a loss became NaN or infinite.
    """
    from tqdm.auto import tqdm

    from minigan.data import DataLoader, Dataset, open_dataset
    from minigan.distributed import DataParallel, describe_error, init_world

    started = time.perf_counter()
    world = init_world(distributed, device)
    writer = world.rank == 0  # only rank 0 writes files and talks
    say = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    if not writer:
        say, progress = (lambda msg: None), False
    run = _Run(Path(out), writer)
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if log_every is not None and log_every < 1:
        raise ValueError(f"log_every must be at least 1, got {log_every}")

    # ----- the run's settings: new, or read back for a resume
    if run.exists() and not resume:
        if not force:
            raise RunExistsError(
                f"{run.root} already holds a training run; use resume=True (--resume) to "
                f"continue it, force=True (--force) to delete it and start over, or another "
                f"output directory (--out)"
            )
        run.clear()
        world.barrier()
    ckpt_path = latest_checkpoint(run.root) if resume else None
    if resume and ckpt_path is None:
        raise FileNotFoundError(
            f"nothing to resume in {run.root}: no checkpoints/step-*.safetensors "
            f"(start a new run without resume)"
        )
    saved = _read_json(run.config_path) if resume and run.config_path.exists() else None

    if isinstance(model, GAN):
        model_cls, built = type(model), model
    else:
        model_cls = _model_class(model) if isinstance(model, str) else model
        built = None
    if not (isinstance(model_cls, type) and issubclass(model_cls, GAN)):
        raise TypeError(f"model must be a registered name, a GAN subclass or a GAN, got {model!r}")
    model_name = model if isinstance(model, str) else _model_name(model_cls)

    given = {"epochs": epochs, "batch_size": batch_size, "seed": seed}
    if saved is not None:
        settings = _resumed_settings(saved, model_name, config, given, data, data_options)
    else:
        defaults = {"seed": 0, **model_cls.train_defaults}
        settings = {
            "epochs": int(epochs if epochs is not None else defaults["epochs"]),
            "batch_size": int(batch_size if batch_size is not None else defaults["batch_size"]),
            "seed": int(seed if seed is not None else defaults["seed"]),
            "config": config,
            "data": data if data is not None else "shapes",
            "data_options": {
                "limit": defaults.get("limit"),
                **{k: v for k, v in (data_options or {}).items()},
            },
        }
    epochs_total, batch, run_seed = settings["epochs"], settings["batch_size"], settings["seed"]

    # ----- data
    dataset = settings["data"]
    data_spec: Any = None
    if not isinstance(dataset, Dataset):
        data_spec = str(dataset)
        dataset = open_dataset(data_spec, **settings["data_options"])
    loader = DataLoader(
        dataset,
        batch,
        shuffle=True,
        seed=run_seed,
        drop_last=True,
        device=device,
        rank=world.rank,
        world_size=world.size,
    )
    global_batch = loader.global_batch_size

    # ----- model
    minigan.manual_seed(run_seed)
    if built is None:
        built = model_cls(model_cls.make_config(settings["config"]), dataset.shape, device)
    elif tuple(built.image_shape) != tuple(dataset.shape):
        raise ValueError(
            f"the model was built for images of shape {built.image_shape}, but dataset "
            f"{dataset.name!r} has {dataset.shape}"
        )
    net = built
    info = {
        "model": model_name,
        "model_class": _class_path(model_cls),
        "config": net.config_dict(),
        "image_shape": list(net.image_shape),
    }
    position_info = {"global_batch_size": global_batch, "world_size": world.size}
    epoch, sample = 0, 0  # the data position: an epoch and a sample index in its order
    if ckpt_path is not None:
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["config"] != info["config"] or list(ckpt["image_shape"]) != info["image_shape"]:
            raise ValueError(
                f"{ckpt_path} was made by {ckpt['model']} {ckpt['config']} for images "
                f"{ckpt['image_shape']}, not {model_name} {info['config']} for "
                f"{info['image_shape']}"
            )
        net.load_state_dict(ckpt["state"])
        minigan.random.set_state(ckpt["rng"])
        epoch = int(ckpt["epoch"])
        sample = int(ckpt.get("sample", int(ckpt["batch"]) * int(ckpt.get("batch_size", batch))))
        if loader.steps_from(sample) == 0:
            epoch, sample = epoch + 1, 0
        run.truncate_metrics(net.steps)
        say(f"resuming {run.root} from {ckpt_path.name}: epoch {epoch + 1}, step {net.steps}")

    dp = DataParallel(world, net, sync_bn=sync_bn, device=device) if world.distributed else None
    if dp is not None:
        say(
            f"data-parallel over {world.size} processes: {batch} images per process, "
            f"{global_batch} per step{' (SyncBatchNorm)' if sync_bn else ''}"
        )
    run.write_json(
        run.config_path,
        {
            **info,
            "data": {
                "spec": data_spec,
                **({k: v for k, v in settings["data_options"].items()} if data_spec else {}),
                "name": dataset.name,
                "size": len(dataset),
                "shape": list(dataset.shape),
            },
            "training": {
                "epochs": epochs_total,
                "batch_size": batch,
                "world_size": world.size,
                "global_batch_size": global_batch,
                "sync_bn": bool(sync_bn),
                "seed": run_seed,
                "device": device,
                "checkpoint_every": checkpoint_every,
                "keep": keep,
                "sample_every": sample_every,
                "num_samples": num_samples,
            },
            "minigan_version": minigan.__version__,
            "created": (saved or {}).get(
                "created", datetime.datetime.now().isoformat(timespec="seconds")
            ),
        },
    )

    # ----- fixed things to look at
    fixed_z = net.latents(range(num_samples))
    meta = {"model": model_name, "config": info["config"], "run": str(run.root)}
    if writer and not (run.root / "real_samples.png").exists():
        real, _ = dataset[np.arange(min(num_samples, len(dataset)))]
        imaging.save_image(
            run.root / "real_samples.png", imaging.make_grid(real), {"dataset": dataset.name}
        )
    if not (run.sample_dir / "epoch-000.png").exists():
        run.write_samples(net, fixed_z, 0, meta)

    # ----- the loop
    if epoch >= epochs_total:
        say(f"{run.root} has already trained {epochs_total} epochs; ask for more epochs")
    title = f"{model_name} on {dataset.name}"
    last_saved = net.steps if ckpt_path is not None else -1
    latest = ckpt_path
    position = (epoch, sample)
    record: dict[str, Any] = {}
    interrupted = stopped = in_step = False
    total = net.steps + loader.steps_from(sample) * (epoch < epochs_total)
    total += max(0, epochs_total - epoch - 1) * len(loader)
    if max_steps is not None:
        total = min(total, max_steps)
    bar = tqdm(
        total=total,
        initial=min(net.steps, total),
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )

    reads_every = log_every or (1 if device == "cpu" else 20)
    pending: list[tuple[dict[str, Any], Mapping[str, Any]]] = []  # steps not yet read back
    busy = 0.0  # seconds spent in train_step since the last read

    def read_back() -> None:
        """Read the pending steps' metrics (one copy per device), check them, log them.

        The steps before a NaN are logged before :class:`TrainingDiverged` is raised; a
        callback's ``KeyboardInterrupt`` is raised once every step read has been logged."""
        nonlocal record, busy
        if not pending:
            return
        t0 = time.perf_counter()
        values = read_metrics([metrics for _, metrics in pending])
        if dp is not None:  # the average over the processes: a NaN anywhere stops all
            values = dp.reduce_metrics(values)
        seconds = (busy + time.perf_counter() - t0) / len(pending)  # the read waits for the GPU
        records, diverged = [], None
        for (where, _), metrics in zip(pending, values):
            bad = _finite(metrics)
            if bad is not None:
                good = latest_checkpoint(run.root)
                ok = f"{good} (step {_step_of(good)})" if good else "none had been written yet"
                diverged = TrainingDiverged(
                    f"{bad} became {metrics[bad]} at step {where['step']} (epoch "
                    f"{where['epoch']}, batch {where['batch']}); training stopped. Last good "
                    f"checkpoint: {ok}. Try a lower learning rate.",
                    where["step"],
                    good,
                )
                break
            images = where["images"]
            record = {
                **{k: v for k, v in where.items() if k != "images"},
                **metrics,
                "seconds": seconds,
                "images_per_s": images / max(seconds, 1e-9),
            }
            records.append(record)
        metrics_file.write("".join(json.dumps(r) + "\n" for r in records))
        metrics_file.flush()
        pending.clear()  # only now: a Ctrl-C above leaves them to the next read
        busy = 0.0
        if records:
            bar.set_postfix_str(_progress_text(record))
        stop = None
        for r in records:
            for callback in callbacks:
                try:
                    callback(r, net)
                except KeyboardInterrupt as e:  # a stop request: finish the steps read first
                    stop = e
        if diverged is not None:
            raise diverged
        if stop is not None:
            raise stop

    def checkpoint() -> Path | None:
        nonlocal last_saved, latest
        read_back()  # a diverged step must never reach a checkpoint
        if net.steps != last_saved:
            latest = run.save_checkpoint(net, {**info, **position_info}, position, keep)
            last_saved = net.steps
        return latest

    metrics_file = open(run.metrics_path, "a") if writer else open(os.devnull, "w")
    try:
        with _Interrupt() as interrupt:
            while epoch < epochs_total and not stopped:
                bar.set_description(f"epoch {epoch + 1}/{epochs_total}")
                for real, _ in loader.iter_from(epoch, 0, offset=sample):
                    in_step = True
                    t0 = time.perf_counter()
                    if dp is None:
                        metrics = net.train_step(real)
                    else:
                        with dp.step(len(real)):
                            metrics = net.train_step(real)
                    busy += time.perf_counter() - t0
                    in_step = False
                    net.steps += 1
                    sample += global_batch
                    position = (epoch, sample)
                    where = {"step": net.steps, "epoch": epoch + 1, "batch": sample // global_batch}
                    # copied (a metric may be a view of a weight the next step updates) and
                    # detached (no step's graph outlives it): on a GPU, no wait
                    metrics = {k: _snapshot(v) for k, v in metrics.items()}
                    pending.append(({**where, "images": global_batch}, metrics))
                    bar.update(1)
                    if len(pending) >= reads_every:
                        read_back()
                    if checkpoint_every and net.steps % checkpoint_every == 0:
                        checkpoint()
                    if max_steps is not None and net.steps >= max_steps:
                        stopped = True
                        break
                    if dp.agree(interrupt.requested) if dp else interrupt.requested:
                        raise KeyboardInterrupt  # every rank at the same step
                else:
                    epoch, sample = epoch + 1, 0
                    position = (epoch, 0)
                    read_back()
                    if epoch % sample_every == 0 or epoch == epochs_total:
                        run.write_samples(net, fixed_z, epoch, meta)
                        run.write_gif()
                    run.write_losses(title)
                    checkpoint()
            checkpoint()
    except KeyboardInterrupt:
        if in_step:  # a second Ctrl-C in the middle of a step: the state is half-updated
            bar.close()
            say(f"interrupted during step {net.steps + 1}; not saving. Last checkpoint: {latest}")
            if dp is not None:  # the other ranks may be inside a collective: end them too
                world.abort(f"rank {world.rank}: interrupted during step {net.steps + 1}")
            raise
        interrupted = True
        try:
            read_back()
        except KeyboardInterrupt:  # a callback asking to stop too: we are stopping
            pass
        checkpoint()
        bar.close()
        say(
            f"interrupted at step {net.steps} (epoch {position[0] + 1}, batch "
            f"{position[1] // global_batch}): "
            f"saved {latest}. Continue with: minigan train {model_name} --out {run.root} --resume"
        )
    except TrainingDiverged:  # found by every rank at the same step: each stops cleanly
        raise
    except Exception as e:  # this rank alone: end the job rather than leave the others waiting
        if dp is not None:
            world.abort(describe_error(e, f"minigan train (rank {world.rank} of {world.size})"))
        raise
    finally:
        metrics_file.close()
        bar.close()
        run.write_losses(title)
        if dp is not None:
            dp.close()
            stats = dp.stats()
            if stats.allreduces:
                say(
                    f"gradient all-reduce: {stats.bytes / max(net.steps, 1) / 2**20:.2f} MB per "
                    f"step in {stats.allreduces} buckets, {stats.comm_seconds:.2f} s "
                    f"communicating, {stats.overlap:.0%} of it overlapped with computation"
                )
    return RunResult(
        run_dir=run.root,
        steps=net.steps,
        epochs_done=epoch,
        interrupted=interrupted,
        checkpoint=latest,
        seconds=time.perf_counter() - started,
        last_metrics=record,
    )


def _step_of(path: Path) -> int:
    m = CHECKPOINT_RE.match(path.name)
    return int(m.group(1)) if m else -1


def _resumed_settings(
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
