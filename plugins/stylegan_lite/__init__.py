"""The StyleGAN-lite plugin's hook module: registers the ``stylegan-lite`` model as a lazy
string and declares its three commands (``minigan style-mix``, ``truncation-sweep``,
``interpolate``).

The model (:mod:`.model`) and what the commands do (:mod:`.commands`) are imported only when
the model is used or a command runs, so listing plugins and ``minigan --help`` stay fast.
The model's names are importable from here too (``from minigan.plugins.stylegan_lite import
StyleGANLite``), on first use. This module must import nothing but ``minigan.hookimpl`` and,
inside ``register_commands``, click (no NumPy, no model code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from minigan import hookimpl

__all__ = ["register_commands", "register_models"]

MODEL = "minigan.plugins.stylegan_lite.model"
COMMANDS = "minigan.plugins.stylegan_lite.commands"
NOISE_MODES = ("const", "random", "none")  # = model.NOISE_MODES (checked by the tests)


@hookimpl
def register_models(register: Callable[[str, Any], None]) -> None:
    """Register ``stylegan-lite`` (lazily: the class is looked up only when it is used)."""
    register("stylegan-lite", f"{MODEL}:StyleGANLite")


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``minigan style-mix``, ``minigan truncation-sweep`` and ``minigan interpolate``."""
    import click

    common = {
        "noise": click.option(
            "--noise-mode",
            type=click.Choice(list(NOISE_MODES)),
            default="const",
            show_default=True,
            help="per-layer noise: fixed, fresh, or off",
        ),
        "truncation": click.option(
            "--truncation", type=float, default=1.0, show_default=True, help="truncation psi"
        ),
        "device": click.option(
            "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
        ),
        "source": click.argument("source", metavar="RUN|CHECKPOINT", type=click.Path()),
    }
    _add_style_mix(cli, click, common)
    _add_truncation_sweep(cli, click, common)
    _add_interpolate(cli, click, common)


def _run(command: str, **options: Any) -> None:
    """Run ``commands.<command>(**options)`` (importing the model only now)."""
    getattr(importlib.import_module(COMMANDS), command)(**options)


def _add_style_mix(cli: Any, click: Any, common: dict[str, Any]) -> None:
    @cli.command("style-mix")
    @common["source"]
    @click.option("--rows", default="1,2,3", show_default=True, help="seeds of the rows")
    @click.option("--cols", default="4,5,6", show_default=True, help="seeds of the columns")
    @click.option(
        "--styles",
        default="0-3",
        show_default=True,
        help="layers whose styles come from the column seeds (0-3: coarse, 4x4 and 8x8)",
    )
    @common["truncation"]
    @common["noise"]
    @common["device"]
    @click.option("-o", "--output", default="style_mix.png", show_default=True)
    def style_mix(**options: Any) -> None:
        """The style-mixing figure: row seeds' images with some layers' styles from column
        seeds (coarse layers carry pose and shape, fine ones colour and texture)."""
        _run("style_mix", **options)


def _add_truncation_sweep(cli: Any, click: Any, common: dict[str, Any]) -> None:
    @cli.command("truncation-sweep")
    @common["source"]
    @click.option("--seeds", default="0-5", show_default=True, help="one row per seed")
    @click.option("--psi", default="1,0.7,0.5,0,-0.5", show_default=True, help="one column per psi")
    @common["noise"]
    @common["device"]
    @click.option("-o", "--output", default="truncation.png", show_default=True)
    def truncation_sweep(**options: Any) -> None:
        """The truncation figure: each seed at several psi (1: unchanged, 0: the average
        image w_avg, negative: the "opposite" of the seed's image)."""
        _run("truncation_sweep", **options)


def _add_interpolate(cli: Any, click: Any, common: dict[str, Any]) -> None:
    @cli.command("interpolate")
    @common["source"]
    @click.option("--seeds", default="1,2,3", show_default=True, help="the seeds to walk through")
    @click.option("--frames", default=60, show_default=True, help="frames in the whole loop")
    @click.option(
        "--space",
        type=click.Choice(["z", "w"]),
        default="z",
        show_default=True,
        help="slerp between z's or lerp between w's",
    )
    @common["truncation"]
    @common["noise"]
    @common["device"]
    @click.option("--fps", default=20.0, show_default=True, help="frames per second")
    @click.option("-o", "--output", default="walk.gif", show_default=True)
    def interpolate(**options: Any) -> None:
        """A looping latent walk through the seeds (and back to the first) as a GIF."""
        _run("interpolate", **options)


def __getattr__(name: str) -> Any:
    """The model's and the commands' names (``StyleGANLite``, ``slerp``, ``load_stylegan``
    ...), imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    for module in (MODEL, COMMANDS):
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
