"""The ``minigan`` command line.

Built-in commands live here; plugins add theirs through the ``register_commands`` hook (loaded
the first time the command list is needed). ``minigan demo`` trains a small convolutional
classifier on generated images — a quick check that an install works.

``minigan --help`` and ``minigan plugins`` must stay fast: this module must not import NumPy,
the kernels, the tensor library or any model at import time (commands import what they need
when they run).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import sys
import time
import traceback
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import minigan
from minigan.errors import debug_enabled, describe
from minigan.registry import get_registry

if TYPE_CHECKING:
    import numpy as np


class FiniteFloat(click.ParamType):
    """A float that is finite (no ``nan``/``inf``), optionally within ``[min, max]`` and, with
    ``positive``, above 0.

    >>> FiniteFloat(positive=True).convert("2e-4", None, None)
    0.0002
    """

    name = "float"

    def __init__(
        self, min: float | None = None, max: float | None = None, positive: bool = False
    ) -> None:
        self.min, self.max, self.positive = min, max, positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} must be greater than 0", param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"{value!r} must be at least {self.min:g}", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{value!r} must be at most {self.max:g}", param, ctx)
        return number


class PluginGroup(click.Group):
    """A click group that lets plugins add their commands before it lists or finds one, and
    reports any error of a command as one ``Error:`` line (see :mod:`minigan.errors`)."""

    _plugins_loaded = False

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug")) or debug_enabled()
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except click.ClickException as e:
            if debug and e.__cause__ is not None:
                traceback.print_exception(e.__cause__, file=sys.stderr)
            raise
        except Exception as e:
            if debug:
                raise
            raise click.ClickException(describe(e)) from e

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            builtin = self.__dict__.setdefault("_builtin_commands", set(self.commands))
            for name in set(self.commands) - builtin:  # a reload (tests): plugins add them again
                del self.commands[name]
            get_registry().add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugins()
        return super().get_command(ctx, name)


@click.group(
    cls=PluginGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(minigan.__version__, prog_name="minigan")
@click.option(
    "--debug",
    is_flag=True,
    help="show the full traceback of an error (also: MINIGAN_DEBUG=1)",
)
def main(debug: bool) -> None:
    """minigan: a from-scratch deep-learning toolkit for image generation."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """List plugins: version, import time, hooks, what each provides, name collisions, and
    what failed to load."""
    registry = get_registry()
    main._load_plugins()  # so that commands count as provided
    infos = registry.info()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(i) for i in infos], indent=2))
        return
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" ({info.distribution}{version})" if info.distribution else ""
        status = "disabled" if info.disabled else "FAILED" if info.error else "ok"
        took = f", imported in {info.import_seconds:.2f} s" if info.import_seconds else ""
        click.echo(f"{info.name}{dist}: {status}{took}")
        if info.hooks:
            click.echo(f"  hooks: {', '.join(info.hooks)}")
        for kind, names in info.provides.items():
            click.echo(f"  {kind}s: {', '.join(names)}")
        for collision in info.collisions:
            click.echo(f"  not used (name taken): {collision}")
        if info.error:
            click.echo(f"  error: {info.error}")
    collisions = registry.collisions()
    if collisions:
        click.echo(
            f"{len(collisions)} name collision(s): the first plugin keeps a name; choose "
            "another plugin's explicitly as PLUGIN:NAME"
        )


def plain(text: str) -> str:
    """Docstring text for a terminal: reST markup dropped (````x````, ``:class:`x```` -> x).

    >>> plain("The ``deepdream`` processor: :class:`DeepDream` (see `minigan datasets`)")
    'The deepdream processor: DeepDream (see `minigan datasets`)'
    """
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def _describe(kind: str) -> None:
    registry = get_registry()
    names = registry.names(kind)
    if not names:
        click.echo(f"no {kind}s registered")
    for name in names:
        entry = registry.entry(kind, name)
        try:
            doc = (entry.load().__doc__ or "").strip().splitlines()
        except Exception as e:  # a broken lazy target: say so, keep listing
            doc = [f"(cannot be loaded: {e})"]
        summary = plain(doc[0]) if doc else ""
        click.echo(f"{name:<16} {summary}  [plugin: {entry.plugin}]")


@main.command()
def models() -> None:
    """List the trainable models (generators) that plugins registered."""
    _describe("model")


@main.command()
def datasets() -> None:
    """List the datasets that plugins registered (use one as --data NAME; a path works too).

    Each line shows the first line of the dataset factory's docstring."""
    _describe("dataset")


def bars_dataset(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy ``size``×``size`` images of four classes: a horizontal bar, a vertical bar,
    a diagonal, or a filled square — at random positions. Returns float32 NCHW images in
    [-1, 1] and int64 labels.

    >>> import numpy as np
    >>> x, y = bars_dataset(8, 12, np.random.default_rng(0))
    >>> x.shape, x.dtype, y.shape
    ((8, 1, 12, 12), dtype('float32'), (8,))
    """
    import numpy as np

    images = np.zeros((n, size, size), np.float32)
    labels = rng.integers(0, 4, n)
    for img, label in zip(images, labels):
        a, b = rng.integers(1, size - 4, 2)
        if label == 0:
            img[a : a + 2, 1:-1] = 1
        elif label == 1:
            img[1:-1, b : b + 2] = 1
        elif label == 2:
            idx = np.arange(size)
            img[idx, (idx + a) % size] = 1
        else:
            img[a : a + 4, b : b + 4] = 1
    images += rng.normal(0, 0.3, images.shape).astype(np.float32)
    return (images * 2 - 1)[:, None], labels.astype(np.int64)


@main.command()
@click.option(
    "--epochs", type=click.IntRange(min=1), default=3, help="passes over the training set"
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64)
@click.option("--lr", type=FiniteFloat(positive=True), default=2e-3, help="Adam learning rate")
@click.option("--seed", default=0)
def demo(epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """Train a small CNN on generated bar/square images and report its test accuracy."""
    import numpy as np
    from tqdm import tqdm

    from minigan import functional as F
    from minigan import nn, optim

    minigan.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = bars_dataset(2048, 16, rng)
    x_test, y_test = bars_dataset(512, 16, rng)

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 4),
    )
    opt = optim.Adam(model.parameters(), lr=lr)
    click.echo(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(x_train))
        bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch}/{epochs}", unit="batch")
        for i in bar:
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(minigan.Tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with minigan.no_grad():
        logits = model(minigan.Tensor(x_test)).numpy()
    accuracy = float((logits.argmax(1) == y_test).mean())
    click.echo(
        f"test accuracy {accuracy:.1%} on {len(y_test)} held-out images "
        f"(chance 25%) after {time.perf_counter() - start:.1f} s"
    )


# --------------------------------------------------------------------------- train / sample
def _unwrap_optional(hint: Any) -> Any:
    """``int | None`` -> ``int`` (other hints unchanged)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _is_rate(name: str) -> bool:
    """Learning rates (``lr``, ``g_lr``, ``lr_mul`` ...) must be > 0."""
    return name == "lr" or name.endswith("_lr") or name.startswith("lr_")


def _number_type(hint: type, f: dataclasses.Field) -> click.ParamType | type[int]:
    """The click type of an int or float ``Config`` field: floats must be finite, learning
    rates > 0, and ``metadata["min"]``/``["max"]`` bound either."""
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if hint is int:
        return click.IntRange(min=low, max=high) if low is not None or high is not None else int
    return FiniteFloat(min=low, max=high, positive=_is_rate(f.name))


def config_options(config_cls: type[Any], prefix: str = "model__") -> list[click.Option]:
    """Command line options for the fields of a model's ``Config`` dataclass.

    ``latent_dim: int = 100`` becomes ``--latent-dim INTEGER [default: 100]``; the help is the
    field's ``metadata["help"]``; ``bool`` fields become ``--flag/--no-flag``, fixed-length
    tuples take several values, ``typing.Literal`` fields a choice. A ``None`` default is shown
    as ``metadata["default_help"]`` (or "none"). Parameter names get ``prefix``.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Config:
    ...     latent_dim: int = dataclasses.field(default=100, metadata={"help": "size of z"})
    ...     ema: bool = False
    >>> [(o.opts, o.default) for o in config_options(Config)]
    [(['--latent-dim'], 100), (['--ema'], False)]
    """
    try:
        hints = typing.get_type_hints(config_cls)
    except NameError:  # annotations naming something local to a function: judge by default
        hints = {}
    options = []
    for f in dataclasses.fields(config_cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{config_cls.__qualname__}.{f.name} needs a default to be an option")
        fallback = type(default) if default is not None else str
        hint = _unwrap_optional(hints.get(f.name, fallback))
        flag = "--" + f.name.replace("_", "-")
        extra: dict[str, Any] = {}
        help_text = f.metadata.get("help", "")
        if default is None or "default_help" in f.metadata:  # e.g. "auto: 64 at 28x28, ..."
            help_text += f"  [default: {f.metadata.get('default_help', 'none')}]"
            extra["show_default"] = False
        decls = [flag, prefix + f.name]
        if hint is bool:
            decls = [f"{flag}/--no-{flag[2:]}", prefix + f.name]
            extra["is_flag"] = True
        elif typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            if not args or Ellipsis in args:
                raise TypeError(f"{config_cls.__qualname__}.{f.name}: tuples need a fixed length")
            extra.update(nargs=len(args), type=args[0])
            if default is not None:
                default = tuple(default)
        elif typing.get_origin(hint) is typing.Literal:
            extra["type"] = click.Choice([str(a) for a in typing.get_args(hint)])
        elif hint in (int, float, str):
            extra["type"] = _number_type(hint, f) if hint is not str else str
        else:
            raise TypeError(
                f"{config_cls.__qualname__}.{f.name}: the command line supports int, float, str, "
                f"bool, Literal and fixed-length tuple fields, not {hint!r}"
            )
        option = click.Option(decls, default=default, help=help_text, **extra)
        options.append(option)
    return options


def _train_options(name: str, defaults: dict[str, Any]) -> list[click.Option]:
    """Every ``minigan train NAME`` option besides the model's own: the data and schedule,
    the run directory and its keeping, then logging and scale."""
    return [*_data_options(defaults), *_run_options(name), *_logging_and_scale_options()]


def _data_options(defaults: dict[str, Any]) -> list[click.Option]:
    """What to train on and for how long (defaults from the model's ``train_defaults``)."""
    limit = defaults.get("limit")
    return [
        click.Option(
            ["--data"],
            default="shapes",
            help="dataset: a registered name (see `minigan datasets`) or a path: a folder of "
            "images, a .npz file, MNIST IDX files",
        ),
        click.Option(
            ["--data-path"],
            type=click.Path(),
            help="where a named dataset's files are (e.g. the MNIST files)",
        ),
        click.Option(
            ["--resolution"],
            type=click.IntRange(min=8),
            help="image size in pixels [default: the dataset's own]",
        ),
        click.Option(
            ["--channels"],
            type=click.Choice(["1", "3"]),
            help="1 = grayscale, 3 = RGB [default: the dataset's own]",
        ),
        click.Option(
            ["--limit"],
            type=click.IntRange(min=0),
            default=limit or 0,
            help="use at most this many training images (0 = all)",
        ),
        click.Option(
            ["--epochs"],
            type=click.IntRange(min=1),
            default=defaults["epochs"],
            help="passes over the data",
        ),
        click.Option(["--batch-size"], type=click.IntRange(min=1), default=defaults["batch_size"]),
        click.Option(
            ["--seed"],
            type=click.IntRange(min=0),
            default=0,
            help="seed of the weights, noise and data order",
        ),
    ]


def _run_options(name: str) -> list[click.Option]:
    """Where the run lives, how it is kept and shown, and on which device it runs."""
    return [
        click.Option(
            ["--out"],
            type=click.Path(file_okay=False),
            default=os.path.join("runs", name),
            help="the run directory",
        ),
        click.Option(
            ["--resume"],
            is_flag=True,
            help="continue the run in --out from its latest checkpoint (with its settings)",
        ),
        click.Option(["--force"], is_flag=True, help="delete the run in --out and start over"),
        click.Option(["--device"], type=click.Choice(["cpu", "cuda"]), default="cpu"),
        click.Option(
            ["--checkpoint-every"],
            type=click.IntRange(min=0),
            default=0,
            help="also save a checkpoint every N steps (0: only at the end of each epoch)",
        ),
        click.Option(
            ["--keep"], type=click.IntRange(min=1), default=3, help="how many checkpoints to keep"
        ),
        click.Option(
            ["--sample-every"],
            type=click.IntRange(min=1),
            default=1,
            help="write a sample grid every N epochs",
        ),
        click.Option(
            ["--max-steps"],
            type=click.IntRange(min=1),
            help="stop (with a checkpoint) after this many steps in total; --resume continues",
        ),
        click.Option(
            ["--log-every"],
            type=click.IntRange(min=1),
            help="read the metrics back every N steps (default: 1 on the CPU, 20 on a GPU, "
            "where a read waits for the GPU); every step is still logged",
        ),
        click.Option(["--progress/--no-progress"], default=True, help="show a progress bar"),
        max_pixels_option(),
    ]


def _logging_and_scale_options() -> list[click.Option]:
    """``minigan train``'s TensorBoard, data-parallel and sample-quality options."""
    return [
        click.Option(
            ["--tensorboard"],
            is_flag=True,
            help="also log metrics, sample grids and the config to OUT/tensorboard/ "
            "(needs tensorboardX: pip install 'minigan[tensorboard]')",
        ),
        click.Option(
            ["--distributed/--no-distributed"],
            default=None,
            help="data-parallel over the processes of an MPI job (mpirun -n N minigan train "
            "...; --batch-size is per process) [default: when launched with N > 1]",
        ),
        click.Option(
            ["--sync-bn"],
            is_flag=True,
            help="when distributed, batch-norm statistics over the global batch (SyncBatchNorm)",
        ),
        click.Option(
            ["--metric-every"],
            type=click.IntRange(min=1),
            help="measure sample quality every N steps (`minigan metrics` with the shapes "
            "classifier): RUN/quality.jsonl, and subplots in losses.png",
        ),
        click.Option(
            ["--metric-num"],
            type=click.IntRange(min=10),
            default=1024,
            help="samples (and real images) per --metric-every measurement",
        ),
    ]


def _fail(error: BaseException) -> click.ClickException:
    """A user-facing error the command caught: one line (naming the plugin whose code raised
    it, if one did)."""
    return click.ClickException(describe(error, expected=True))


def _is_rank_zero() -> bool:
    """Whether this process speaks: rank 0 of an MPI job, or a lone process."""
    if "mpi4py" not in sys.modules:
        return True
    from minigan.distributed import current_world

    return current_world().rank == 0


def _abort_job(where: str, error: BaseException) -> None:
    """In a data-parallel job, an error on one rank ends every rank (the others may be
    waiting for it): print it with the rank and abort. A lone process returns."""
    if "mpi4py" not in sys.modules:
        return
    from minigan.distributed import current_world, describe_error

    world = current_world()
    if world.distributed:
        world.abort(describe_error(error, f"{where} (rank {world.rank} of {world.size})"))


def _quality_callbacks(kw: dict[str, Any]) -> list[Any]:
    """``--metric-every N``: a :class:`minigan.metrics.training.QualityCallback`."""
    if not kw.get("metric_every") or not _is_rank_zero():  # one process measures
        return []
    from minigan.metrics.training import QualityCallback

    return [
        QualityCallback(
            kw["out"],
            kw["metric_every"],
            num=kw["metric_num"],
            device=kw["device"],
            log=lambda msg: click.echo(msg, err=True),
        )  # fmt: skip
    ]


def _train_callback(name: str, model_cls: type[Any], field_names: list[str]) -> Any:
    def run(**kw: Any) -> None:
        from click.core import ParameterSource

        from minigan.train import RunExistsError, TrainingDiverged, train

        ctx = click.get_current_context()
        resume = kw["resume"]

        def given(param: str) -> bool:
            source = ctx.get_parameter_source(param)
            return source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)

        def pick(param: str) -> Any:
            """On --resume only what was typed counts: the rest comes from the run."""
            return kw[param] if not resume or given(param) else None

        config = {f: kw["model__" + f] for f in field_names if pick("model__" + f) is not None}
        limit = pick("limit")
        data_options = {
            "path": pick("data_path"),
            "resolution": pick("resolution"),
            "channels": None if pick("channels") is None else int(kw["channels"]),
        }
        data_options = {k: v for k, v in data_options.items() if v is not None}
        if limit is not None:  # typed, or a new run's default; 0 = all (None to open_dataset)
            data_options["limit"] = limit or None
        try:
            result = train(
                name,
                pick("data"),
                out=kw["out"],
                config=config or None,
                epochs=pick("epochs"),
                batch_size=pick("batch_size"),
                seed=pick("seed"),
                data_options=data_options,
                resume=resume,
                force=kw["force"],
                device=kw["device"],
                checkpoint_every=kw["checkpoint_every"] or None,
                keep=kw["keep"],
                sample_every=kw["sample_every"],
                max_steps=kw["max_steps"],
                log_every=kw["log_every"],
                callbacks=_quality_callbacks(kw),
                progress=kw["progress"],
                log=lambda msg: click.echo(msg, err=True),
                tensorboard=kw["tensorboard"],
                distributed=kw["distributed"],
                sync_bn=kw["sync_bn"],
            )
        except RunExistsError as e:  # the API's message names resume=True; ours the options
            message = (
                f"{e.path} already holds a training run; use --resume to continue it, --force "
                f"to delete it and start over, or another --out"
            )
            _abort_job(f"minigan train {name}", FileExistsError(message))
            raise click.ClickException(message) from e
        except TrainingDiverged as e:  # every rank stops at the same step, each exits
            raise _fail(e) from e
        except (FileNotFoundError, KeyError, ValueError, ImportError, RuntimeError) as e:
            _abort_job(f"minigan train {name}", e)  # e.g. --device cuda without a GPU
            raise _fail(e) from e
        if result.interrupted:
            ctx.exit(130)
        if not _is_rank_zero():
            return
        run = result.run_dir
        extra = ", tensorboard/" if kw["tensorboard"] else ""
        click.echo(
            f"{result.summary()}\n"
            f"run: {run}/ (samples/, progress.gif, losses.png, metrics.jsonl, checkpoints/"
            f"{extra})\n"
            f"{_latest_samples_line(Path(run))}"
            f"sample: minigan sample {run} --seeds 0-63 --grid {os.path.join(str(run), 'grid.png')}"
        )

    return run


def _latest_samples_line(run: Path) -> str:
    """``latest samples: RUN/samples/epoch-020.png (real: RUN/real_samples.png)`` and a newline,
    or nothing when the run has no sample grid yet."""
    grids = sorted((run / "samples").glob("*.png"), key=lambda p: (p.stat().st_mtime, p.name))
    if not grids:
        return ""
    real = run / "real_samples.png"
    beside = f" (real images: {real})" if real.exists() else ""
    return f"latest samples: {grids[-1]}{beside}\n"


def make_train_command(name: str, model_cls: type[Any]) -> click.Command:
    """The ``minigan train NAME`` command: the common options plus the model's own, made
    from its ``Config`` dataclass."""
    defaults = {"epochs": 10, "batch_size": 64, **getattr(model_cls, "train_defaults", {})}
    common = _train_options(name, defaults)
    model_options = config_options(model_cls.Config)
    taken = {opt for o in common for opt in o.opts}
    clash = [opt for o in model_options for opt in o.opts if opt in taken]
    if clash:
        raise TypeError(f"{model_cls.__name__}.Config fields clash with common options: {clash}")
    doc = plain(model_cls.__doc__ or "").strip().splitlines()
    field_names = [f.name for f in dataclasses.fields(model_cls.Config) if f.init]
    return click.Command(
        name,
        params=[*common, *model_options],
        callback=_train_callback(name, model_cls, field_names),
        help=f"{doc[0] if doc else 'Train ' + name + '.'}\n\nWrites a run directory (--out): "
        "config.json, checkpoints/, samples/, real_samples.png, progress.gif, metrics.jsonl, "
        "losses.png. Ctrl-C saves a checkpoint; --resume continues exactly.",
        short_help=doc[0] if doc else None,
    )


def _broken_command(name: str, error: BaseException, kind: str = "model") -> click.Command:
    try:
        owner = f" (from {get_registry().plugin_of(kind, name).label()})"
    except KeyError:
        owner = ""

    def fail() -> None:
        raise click.ClickException(
            f"{kind} {name!r}{owner} cannot be used: {type(error).__name__}: {error}"
        )

    return click.Command(name, callback=fail, help=f"(cannot be loaded: {error})")


class TrainGroup(click.Group):
    """One subcommand per registered model, its options made from the model's ``Config``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return get_registry().names("model")

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        registry = get_registry()
        if not registry.has("model", name):
            return None
        try:
            return make_train_command(name, registry.get("model", name))
        except Exception as e:  # a broken plugin: report it when used, keep the rest working
            return _broken_command(name, e)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and not get_registry().has("model", name):
            available = ", ".join(get_registry().names("model")) or "none"
            ctx.fail(f"unknown model {name!r}; available: {available} (see `minigan models`)")
        return super().resolve_command(ctx, args)


@main.group(cls=TrainGroup)
def train() -> None:
    """Train a registered model: minigan train MODEL [OPTIONS] (see `minigan train MODEL
    --help` for its options; `minigan models` lists the models)."""


def _count(n: int, noun: str) -> str:
    """``1 image``, ``3 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _folder(path: str) -> str:
    """A folder as written, with one trailing separator: ``d/`` for ``d`` and ``d/``.

    >>> _folder("out"), _folder("out/"), _folder("out//")
    ('out/', 'out/', 'out/')
    """
    return path.rstrip("/" + os.sep) + os.sep if path.rstrip("/" + os.sep) else path


def _names(names: list[str]) -> str:
    """The files written, shortened: ``a.png``, ``a.png, b.png``, ``a.png ... z.png``."""
    return (
        names[0]
        if len(names) == 1
        else ", ".join(names)
        if len(names) == 2
        else (f"{names[0]} ... {names[-1]}")
    )


def parse_seeds(text: str) -> list[int]:
    """Seeds from ranges and lists: ``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``.

    >>> parse_seeds("0-3,7")
    [0, 1, 2, 3, 7]
    >>> parse_seeds("5")
    [5]
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"{part!r} is not a seed or a range like 0-63")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi < lo:
            raise ValueError(f"range {part!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    return seeds


def class_index(value: str, num_classes: int, ckpt: dict[str, Any]) -> int:
    """``--class``: a class name the run recorded, or an index below ``num_classes``."""
    names = list(ckpt.get("classes") or [])
    if not num_classes:
        raise click.BadParameter(
            f"model {ckpt['model']!r} of this run is not class-conditional", param_hint="--class"
        )
    if value in names:
        return names.index(value)
    if value.isdecimal() and int(value) < num_classes:
        return int(value)
    known = f"0-{num_classes - 1}" + (f": {', '.join(names)}" if names else "")
    raise click.BadParameter(f"{value!r} is not one of the classes ({known})", param_hint="--class")


@main.command()
@click.argument("source", metavar="RUN|CHECKPOINT", type=click.Path())
@click.option("--seeds", default="0-63", help="seeds: numbers and ranges, e.g. 0-7,12")
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(dir_okay=False),
    help="write all samples as one grid image [default: samples.png, unless --outdir]",
)
@click.option(
    "--outdir", type=click.Path(file_okay=False), help="write one PNG per seed: DIR/seed0000.png"
)
@click.option(
    "--nrow", type=click.IntRange(min=1), help="images per grid row [default: a square grid]"
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, help="images generated at a time"
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option(
    "--truncation",
    type=FiniteFloat(),
    help="truncation psi toward the average latent (models that support it, e.g. stylegan-lite)",
)
@click.option(
    "--noise-mode",
    type=click.Choice(["const", "random", "none"]),
    help="per-layer noise (models that support it, e.g. stylegan-lite)",
)
@click.option(
    "--class",
    "class_",
    metavar="NAME|INDEX",
    help="the class of every sample (class-conditional models; default: seed s gets class "
    "s % classes)",
)
def sample(
    source: str,
    seeds: str,
    grid_path: str | None,
    outdir: str | None,
    nrow: int | None,
    batch_size: int,
    device: str,
    truncation: float | None,
    noise_mode: str | None,
    class_: str | None,
) -> None:
    """Generate images from a run (its latest checkpoint) or a checkpoint file.

    The same seed always gives the same image; PNGs record the model, checkpoint and seeds.
    """
    from minigan import images as imaging
    from minigan.train import load_model

    try:
        seed_list = parse_seeds(seeds)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--seeds") from e
    try:
        model, ckpt = load_model(
            source, device=device, warn=lambda m: click.echo(f"warning: {m}", err=True)
        )
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        raise _fail(e) from e
    label = None if class_ is None else class_index(class_, model.num_classes, ckpt)
    options = {"truncation": truncation, "noise_mode": noise_mode, "label": label}
    options = {key: value for key, value in options.items() if value is not None}
    accepted = inspect.signature(model.sample).parameters
    for key in options:
        if key not in accepted:
            flag = "--class" if key == "label" else "--" + key.replace("_", "-")
            raise click.UsageError(f"model {ckpt['model']!r} does not support {flag}")
    images = model.generate(seed_list, batch_size=batch_size, **options)
    meta = {
        **options,
        "model": ckpt["model"],
        "checkpoint": str(ckpt["path"]),
        "step": ckpt.get("step"),
        "config": ckpt["config"],
        "minigan_version": minigan.__version__,
    }
    if outdir:
        os.makedirs(outdir, exist_ok=True)
        names = [f"seed{seed:04d}.png" for seed in seed_list]
        for name, seed, image in zip(names, seed_list, images):
            imaging.save_image(os.path.join(outdir, name), image, {**meta, "seed": seed})
        click.echo(f"wrote {_count(len(names), 'image')} to {_folder(outdir)} ({_names(names)})")
    if grid_path or not outdir:
        grid_path = grid_path or "samples.png"
        grid = imaging.make_grid(images, nrow=nrow)
        imaging.save_image(grid_path, grid, {**meta, "seeds": seeds})
        click.echo(f"wrote a grid of {_count(len(seed_list), 'image')} to {grid_path}")


# --------------------------------------------------------------------------- process


def report_batch(report: Any, name: str) -> None:
    """Print a :class:`minigan.batch.BatchReport`: the summary, every failure on stderr; exit
    non-zero (one ``Error:`` line) if any input failed."""
    click.echo(report.summary(name))
    for job, reason in report.failed:
        reason = reason.removeprefix(f"{job.source}: ")
        click.echo(f"  failed: {job.source}: {reason}", err=True)
    if report.failed:
        total = len(report.done) + len(report.skipped) + len(report.failed)
        raise click.ClickException(
            f"{len(report.failed)} of {total} inputs failed (listed above); outputs that exist "
            f"are skipped on a re-run unless --overwrite"
        )


def _process_callback(name: str, processor_cls: type[Any], field_names: list[str]) -> Any:
    def run(
        inputs: tuple[str, ...], out: str | None, overwrite: bool, progress: bool, **kw: Any
    ) -> None:
        from minigan import images as imaging
        from minigan.batch import plan_jobs, run_jobs
        from minigan.data import IMAGE_EXTENSIONS
        from minigan.processing import ProcessorOutputError, process_image

        plugin = get_registry().entry("processor", name).plugin
        config = {f: kw["proc__" + f] for f in field_names if f != "progress"}
        if "progress" in field_names:
            config["progress"] = progress
        address, workers = kw.pop("dask"), kw.pop("workers")
        if address and workers is not None:
            raise click.UsageError("--dask and --workers exclude each other")
        if workers is not None and workers < 1:
            raise click.BadParameter("must be at least 1", param_hint="--workers")
        try:
            jobs = plan_jobs(inputs, out, name, IMAGE_EXTENSIONS)
        except ValueError as e:
            raise _fail(e) from e
        if address or workers:
            pairs = [(job.source, job.target) for job in jobs]
            _process_on_dask(name, config, processor_cls, pairs, address, workers)
            return
        try:
            processor = processor_cls(processor_cls.Config(**config))
        except (TypeError, ValueError, FileNotFoundError, KeyError, RuntimeError) as e:
            raise _fail(e) from e

        def work(source: Any, target: Any) -> None:
            image = imaging.read_image(source)
            try:
                result = process_image(processor, image, name, plugin)
            except ProcessorOutputError as e:  # the plugin's fault: say which, and what
                raise ProcessorOutputError(f"{source}: {e}") from e
            meta = {"processor": name, "source": str(source), **processor.metadata()}
            imaging.save_image(target, imaging.unit_to_uint8(result), meta)

        if len(jobs) == 1 and not os.path.isdir(inputs[0]):  # one file: always (re)written
            work(jobs[0].source, jobs[0].target)
            click.echo(f"wrote {jobs[0].target}")
            return
        report = run_jobs(jobs, work, overwrite=overwrite, progress=progress, desc=name)
        report_batch(report, name)

    return run


def max_pixels_option() -> click.Option:
    """``--max-pixels N``: the largest image (width x height x frames) read before decoding."""

    def apply(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
        from minigan import images

        images.set_max_pixels(value)

    return click.Option(
        ["--max-pixels"],
        type=click.IntRange(min=1),
        expose_value=False,
        callback=apply,
        help="refuse images with more pixels than this, checked before decoding "
        "[default: $MINIGAN_MAX_PIXELS or 50000000]",
    )


def batch_options(progress: bool = True) -> list[click.Option]:
    """``--overwrite`` (and ``--progress/--no-progress``) for commands that process many files."""
    options = [
        click.Option(
            ["--overwrite"],
            is_flag=True,
            help="with many inputs, redo outputs that already exist (default: skip them, so a "
            "re-run resumes)",
        )
    ]
    if progress:
        options.append(
            click.Option(["--progress/--no-progress"], default=True, help="show progress bars")
        )
    return options

def _process_on_dask(
    name: str,
    config: dict[str, Any],
    processor_cls: type[Any],
    jobs: list[Any],
    address: str | None,
    workers: int | None,
) -> None:
    """``minigan process ... --dask ADDRESS | --workers N``: one Dask task per file, the
    processor built once per worker; existing outputs skipped; failures listed at the end
    (exit status 1)."""
    import functools

    from minigan.cluster import map_files, process_image_file, processor_factory, summary

    try:
        processor_cls.Config(**config)  # bad options fail here, not on every worker
        results = map_files(
            functools.partial(process_image_file, name=name),
            processor_factory(name, config),
            jobs,
            address=address,
            workers=workers,
            desc=name,
        )
    except (TypeError, ValueError, ConnectionError) as e:
        raise _fail(e) from e
    except ImportError as e:
        raise click.ClickException(
            f"--dask/--workers need Dask ({e}): pip install 'minigan[distributed]'"
        ) from None
    first, *failures = summary(name, results)
    click.echo(first)
    for line in failures:
        click.echo(line, err=True)
    if failures:
        raise SystemExit(1)


def make_process_command(name: str, processor_cls: type[Any]) -> click.Command:
    """``minigan process NAME INPUT... [-o OUT]``: the processor's options come from its
    ``Config`` dataclass."""
    options = [
        o
        for o in config_options(processor_cls.Config, prefix="proc__")
        if o.name != "proc__progress"
    ]
    doc = plain(processor_cls.__doc__ or "").strip().splitlines()
    field_names = [f.name for f in dataclasses.fields(processor_cls.Config) if f.init]
    return click.Command(
        name,
        params=[
            click.Argument(["inputs"], nargs=-1, required=True, type=click.Path(exists=True)),
            click.Option(
                ["-o", "--out"],
                type=click.Path(),
                help="output file (one input) or folder [default: NAME-<processor>.png beside "
                "each input; a folder gets a sibling folder FOLDER-<processor>/]",
            ),
            *batch_options(),
            max_pixels_option(),
            click.Option(
                ["--dask"],
                metavar="ADDRESS",
                help="send one task per file to the Dask scheduler at ADDRESS "
                "(tcp://host:8786); workers write the outputs (shared storage)",
            ),
            click.Option(
                ["--workers"],
                type=int,
                help="process the files on a local Dask cluster of N processes",
            ),
            *options,
        ],
        callback=_process_callback(name, processor_cls, field_names),
        help=f"{doc[0] if doc else 'Run ' + name + '.'}\n\nProcesses image files or folders "
        "of images (recursively); each output PNG records the parameters in its metadata. "
        "With many inputs a bad file is reported and the rest go on; outputs that exist are "
        "skipped unless --overwrite.",
        short_help=doc[0] if doc else None,
    )


class ProcessGroup(click.Group):
    """One subcommand per registered processor, its options made from its ``Config``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return get_registry().names("processor")

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        registry = get_registry()
        if not registry.has("processor", name):
            available = ", ".join(registry.names("processor")) or "none"
            ctx.fail(f"unknown processor {name!r}; available: {available}")
        try:
            return make_process_command(name, registry.get("processor", name))
        except Exception as e:  # a broken plugin: say so when used, keep the rest working
            return _broken_command(name, e, "processor")


@main.group(cls=ProcessGroup)
def process() -> None:
    """Run a registered image processor over files or folders: minigan process NAME INPUT...
    (e.g. `minigan process deepdream photo.png -o dream.png`)."""
