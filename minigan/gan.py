"""The model contract: what a model that ``minigan train NAME`` can train looks like, and the
pieces every model shares (losses, update steps, EMA, metric reads).

Two levels. :class:`Trainable` is any generator of images that the run folder, the trainer,
the checkpoints and ``minigan sample`` handle: a ``Config``, ``networks()`` /
``optimizers()`` with a ``"generator"`` (what sampling runs), ``train_step(real) ->
metrics``, per-seed ``latents`` and ``sample``. It declares the networks it must have
(:attr:`Trainable.required_networks`), so a diffusion model or a VAE is trained exactly as a
GAN is (examples/minigan-ddpm); without a ``latent_dim`` its latents are image-shaped noise.
:class:`GAN` extends it with a required ``"discriminator"`` and :meth:`GAN.generator_update`.
Most models are GANs, and what follows describes them; all of it holds for a Trainable.

A model is a subclass of :class:`GAN` (registered through the ``register_models`` hook) with

- ``Config``: a ``@dataclass`` whose fields all have defaults; each field becomes a command
  line option (``latent_dim`` -> ``--latent-dim``) with ``metadata={"help": ...}`` as its
  help text (and ``metadata={"default_help": "auto: ..."}`` to describe a ``None`` default);
- ``__init__(config, image_shape, device)``: build networks and optimizers for images of
  ``image_shape = (C, H, W)``;
- ``networks()`` / ``optimizers()``: name -> module / optimizer (``"generator"`` is required;
  ``"generator_ema"``, if present, is what :meth:`GAN.sample` uses). :meth:`GAN.state_dict`
  saves them all;
- ``train_step(real) -> dict``: one training step (typically a discriminator and a
  generator update) on a batch of real images (NCHW in [-1, 1]); returns its metrics by
  name, each a float or a 0-d tensor. Returning the (detached) tensors is what lets a GPU
  step run without waiting for the GPU: the training loop reads them back every
  ``log_every`` steps, all in one copy (:func:`read_metrics`).

A **class-conditional** model has a ``num_classes`` field in its ``Config``. Left ``None``,
the trainer sets it from the training data (its number of classes, or 0 when the data has no
labels); ``0`` means unconditional. While it is above 0 (:attr:`Trainable.num_classes`) the
trainer calls ``train_step(real, labels)`` with the batch's class indices (an int64 tensor of
shape (N,); lists of them with ``batches_per_step > 1``), and the model encodes a class in
each latent it returns from :meth:`Trainable.latents` (so that sampling needs no labels) —
DCGAN gives seed ``s`` class ``s % num_classes`` and takes ``sample(z, label=k)`` to choose.
Such a latent is longer than :attr:`Trainable.latent_shape` (which stays the noise part's
shape): pass :meth:`Trainable.latents`' output to ``sample``.

Metrics are the model's own: any names, all written to metrics.jsonl, plotted in
losses.png and shown in the progress bar and summary. The :data:`STANDARD_METRICS` of a BCE
GAN (:func:`step_metrics`) are optional; if a model returns ``d_real`` / ``d_fake`` they are
probabilities (the mean of sigmoid(D's logits) on real and generated images, shown as
``D(x)`` and ``D(G(z))``) — a critic's raw scores go under other names (``critic_real``,
``wasserstein``, ``gp`` ...). Class attributes tune what is shown:

- ``progress_metrics``: the metrics in the progress bar and the final summary, in order
  (default ``None``: all of them, in the order ``train_step`` returns them);
- ``plot_groups``: ``{"title": ("key", ...)}``, metrics drawn in one subplot of losses.png
  (default: ``loss*`` keys together, ``d_real`` / ``d_fake`` together, each other metric
  alone; see :func:`minigan.plots.metric_groups`);
- ``batches_per_step``: how many real batches one step consumes (default 1). With ``k > 1``
  ``train_step`` receives a list of ``k`` batches, each a fresh draw from the data (e.g.
  WGAN-GP's 5 critic updates per generator update, each on its own batch); the data position
  (and so an exact resume) counts every batch, an epoch is ``len(loader) // k`` steps and a
  last incomplete group is skipped.

:meth:`GAN.latents`, :meth:`GAN.sample`, :meth:`GAN.state_dict`, the update steps
(:meth:`GAN.update`, :meth:`GAN.generator_update`, :func:`step_metrics`) and the helpers
below (:func:`discriminator_loss`, :func:`generator_loss`, :func:`ema_update`) are shared, so
a new model (DCGAN, StyleGAN-lite, a third party's) writes only its networks and its step.
:func:`minigan.testing.check_model` verifies the contract.

Every optimizer update goes through :meth:`GAN.update` (``zero_grad``, ``backward``, the
model's ``gradient_hooks``, ``step``): a trainer that needs to touch the gradients between
backward and step (data-parallel training all-reducing them) appends a hook there.

This module must not import the run folder (:mod:`minigan.run`), the loop
(:mod:`minigan.trainer`), the CLI, kernels directly, or any plugin.

>>> import minigan
>>> real, fake = minigan.tensor([3.0, 2.0]), minigan.tensor([-3.0, -2.0])
>>> round(discriminator_loss(real, fake).item(), 4), round(generator_loss(fake).item(), 4)
(0.1755, 2.5878)
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

import minigan
from minigan import functional as F
from minigan import nn
from minigan.optim import Optimizer
from minigan.plots import LABELS as METRIC_LABELS
from minigan.tensor import Tensor

__all__ = [
    "GAN",
    "GANConfig",
    "Trainable",
    "TrainableConfig",
    "REQUIRED_METRICS",
    "STANDARD_METRICS",
    "copy_module",
    "discriminator_loss",
    "ema_update",
    "frozen",
    "generator_loss",
    "mean_sigmoid",
    "metrics_text",
    "read_metrics",
    "step_metrics",
]

#: the metrics of a BCE GAN (:func:`step_metrics`); optional since models may log anything
STANDARD_METRICS = ("loss_d", "loss_g", "d_real", "d_fake")
#: nothing is required any more (the former name of :data:`STANDARD_METRICS`, kept as an alias)
REQUIRED_METRICS = STANDARD_METRICS

#: Called as ``hook(optimizer)`` after ``backward`` and before ``optimizer.step()``.
GradientHook = Callable[[Optimizer], None]


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


def metrics_text(record: Mapping[str, float], keys: Sequence[str], sep: str = " ") -> str:
    """``keys`` of ``record`` as text for the progress bar or a summary (missing keys
    skipped; ``d_real`` / ``d_fake`` shown as ``D(x)`` / ``D(G(z))`` with 2 decimals).

    >>> metrics_text({"loss_d": 1.3862, "d_real": 0.5, "gp": 12345.0}, ["loss_d", "d_real", "gp"])
    'loss_d=1.386 D(x)=0.50 gp=1.23e+04'
    >>> metrics_text({"wasserstein": -0.25, "loss_g": 3.0}, ["wasserstein", "loss_g"], ", ")
    'wasserstein=-0.250, loss_g=3.000'
    """
    parts = []
    for key in keys:
        if key not in record:
            continue
        value = float(record[key])
        if key in METRIC_LABELS:
            text = f"{value:.2f}"
        elif value == 0 or 1e-3 <= abs(value) < 1e4:
            text = f"{value:.3f}"
        else:
            text = f"{value:.3g}"
        parts.append(f"{METRIC_LABELS.get(key, key)}={text}")
    return sep.join(parts)


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
        ema_params[name].bump_version()
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].data[...] = b.data
        ema_buffers[name].bump_version()


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


def step_metrics(
    loss_d: Tensor, loss_g: Tensor, real_logits: Tensor, fake_logits: Tensor
) -> dict[str, Tensor]:
    """The four metrics every ``train_step`` returns, as detached 0-d tensors (no GPU wait).

    >>> m = step_metrics(minigan.tensor(1.0), minigan.tensor(2.0),
    ...                  minigan.tensor([0.0]), minigan.tensor([0.0]))
    >>> sorted(m), float(m["d_real"])
    (['d_fake', 'd_real', 'loss_d', 'loss_g'], 0.5)
    """
    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_real": mean_sigmoid(real_logits),
        "d_fake": mean_sigmoid(fake_logits),
    }


# =========================================================================== the contract
@dataclasses.dataclass
class TrainableConfig:
    """The base of a non-GAN model's ``Config`` (no fields of its own)."""


@dataclasses.dataclass
class GANConfig(TrainableConfig):
    """The base of every GAN's ``Config``: the latent size."""

    latent_dim: int = dataclasses.field(
        default=100, metadata={"help": "size of the latent (noise) vector z"}
    )


class Trainable:
    """The base class of every trainable image generator (see the module docstring).

    Subclasses set ``Config``, build their networks and optimizers in ``__init__`` (after
    calling ``super().__init__``), return them from :meth:`networks` and :meth:`optimizers`,
    and implement :meth:`train_step` and — unless one call of the generator maps latents to
    images — :meth:`sample`.

    ``train_defaults`` suggests training options for the command line (``epochs``,
    ``batch_size``, ``limit``: the number of training images).
    """

    Config: ClassVar[type] = TrainableConfig
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 10, "batch_size": 64}
    #: networks :func:`minigan.testing.check_model` requires (and expects a step to train)
    required_networks: ClassVar[tuple[str, ...]] = ("generator",)
    #: how far a seed's sample may move when the other seeds in its batch change (float32
    #: sums taken in another order); an iterative sampler that divides by small numbers
    #: amplifies that and says so here
    sample_atol: ClassVar[float] = 1e-5
    #: metrics in the progress bar and summary (``None``: all that ``train_step`` returns)
    progress_metrics: ClassVar[Sequence[str] | None] = None
    #: subplots of losses.png: title -> metrics drawn together (the rest grouped by default)
    plot_groups: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: real batches per ``train_step``: with k > 1 ``train_step`` gets a list of k batches
    batches_per_step: ClassVar[int] = 1
    #: ``Config`` fields added after runs were saved without them -> the value those runs
    #: trained with: ``--resume`` keeps it rather than the field's newer default
    #: (``num_classes`` is always read as 0 when missing: such runs were unconditional)
    added_config_fields: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self, config: Any = None, image_shape: Sequence[int] = (3, 32, 32), device: str = "cpu"
    ) -> None:
        self.config = self.make_config(config)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        self.image_shape: tuple[int, int, int] = tuple(int(s) for s in image_shape)  # type: ignore[assignment]
        self.device = device
        self.steps = 0  # completed train steps; counted by train() and kept in the state dict
        #: run between backward and step by :meth:`update` (e.g. a gradient all-reduce)
        self.gradient_hooks: list[GradientHook] = []

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

    @classmethod
    def config_for_data(cls, config: Any, dataset: Any) -> Any:
        """``config`` with the options a model derives from its training data filled in:
        only options left auto (``None``), so that what a user chose stands. The trainer
        calls it before it builds a new run's model, after filling ``num_classes`` (a resumed
        run keeps its saved values). The default changes nothing; DCGAN's ``layered`` output
        turns on for flat two-colour images here."""
        return config

    def config_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self.config)))

    @property
    def num_classes(self) -> int:
        """The classes the model is conditioned on: its config's ``num_classes`` (0, or a
        config without that field: unconditional). A conditional model's ``train_step`` gets
        ``(real, labels)``."""
        return int(getattr(self.config, "num_classes", None) or 0)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one latent: ``(config.latent_dim,)`` when the config has one, else the
        image shape (a diffusion model's starting noise)."""
        latent_dim = getattr(self.config, "latent_dim", None)
        return (int(latent_dim),) if latent_dim is not None else self.image_shape

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
    def train_step(self, real: Any) -> Mapping[str, float | Tensor]:
        """One training step on ``real`` (NCHW in [-1, 1]; a list of
        :attr:`batches_per_step` such batches when that is more than 1). A conditional model
        (:attr:`num_classes` > 0) is called as ``train_step(real, labels)``. Returns the step's
        metrics by name, as floats or as detached 0-d tensors (which a GPU step returns
        without waiting for the GPU)."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_step()")

    def update(self, optimizer: Optimizer, loss: Tensor) -> None:
        """One optimizer update: ``zero_grad``, ``loss.backward()``, each of
        :attr:`gradient_hooks` (``hook(optimizer)``), then ``optimizer.step()``."""
        optimizer.zero_grad()
        loss.backward()
        for hook in self.gradient_hooks:
            hook(optimizer)
        optimizer.step()

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


class GAN(Trainable):
    """The base class of GANs: a ``"generator"`` and a ``"discriminator"`` (see the module
    docstring for the contract)."""

    Config: ClassVar[type] = GANConfig
    required_networks: ClassVar[tuple[str, ...]] = ("generator", "discriminator")

    def generator_update(
        self, optimizer: Optimizer, discriminator: nn.Module, fake: Tensor
    ) -> Tensor:
        """The generator's update: the non-saturating loss of ``discriminator`` (frozen: its
        weights need no gradients) on ``fake``, minimised by ``optimizer``. Returns the loss."""
        with frozen(discriminator):
            loss_g = generator_loss(discriminator(fake))
            self.update(optimizer, loss_g)
        return loss_g
