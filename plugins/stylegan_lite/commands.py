"""What StyleGAN-lite's commands do (``minigan style-mix``, ``truncation-sweep``,
``interpolate``): each reads a trained run and writes one figure.

The click commands themselves (their options) are declared in the hook module
:mod:`minigan.plugins.stylegan_lite`, which imports this module only when a command runs.
This module must not import another plugin.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import click
import numpy as np

import minigan
from minigan import images as imaging
from minigan.plugins.stylegan_lite.model import StyleGANLite

__all__ = ["interpolate", "load_stylegan", "parse_floats", "style_mix", "truncation_sweep"]


def parse_floats(text: str) -> list[float]:
    """``"1,0.7,-0.5"`` -> ``[1.0, 0.7, -0.5]``."""
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError as e:
        raise ValueError(f"{text!r} is not a comma-separated list of numbers") from e


def load_stylegan(source: str, command: str, device: str = "cpu") -> tuple[StyleGANLite, dict]:
    """The StyleGAN-lite model of a run or checkpoint, or a ``click.ClickException``
    saying why not (missing, unreadable, or another model's run)."""
    from minigan.run import load_model

    try:
        model, ckpt = load_model(source, device=device)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise click.ClickException(str(message)) from None
    if not isinstance(model, StyleGANLite):
        raise click.ClickException(
            f"{source} is a {ckpt.get('model')!r} run, not a stylegan-lite one: "
            f"`minigan {command}` needs a StyleGAN-lite run (its per-layer styles and w_avg)"
        )
    return model, ckpt


def seeds_of(text: str, option: str) -> list[int]:
    """Seeds from ``--option``'s text, or a ``click.BadParameter`` naming the option."""
    from minigan.cli import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def meta(ckpt: dict, **extra: Any) -> dict[str, Any]:
    """The PNG/GIF metadata of a figure: the run's model, checkpoint, step and config."""
    return {
        "model": ckpt["model"],
        "checkpoint": str(ckpt["path"]),
        "step": ckpt.get("step"),
        "config": ckpt["config"],
        "minigan_version": minigan.__version__,
        **extra,
    }


def style_mix(
    source: str,
    rows: str,
    cols: str,
    styles: str,
    truncation: float,
    noise_mode: str,
    device: str,
    output: str,
) -> None:
    """``minigan style-mix``: the row seeds' images with some layers' styles from the column
    seeds, as one grid."""
    model, ckpt = load_stylegan(source, "style-mix", device)
    row_seeds, col_seeds = seeds_of(rows, "--rows"), seeds_of(cols, "--cols")
    layers = seeds_of(styles, "--styles")
    try:
        images = model.style_mix_grid(row_seeds, col_seeds, layers, truncation, noise_mode)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--styles") from None
    grid = imaging.make_grid(images, nrow=len(col_seeds) + 1)
    imaging.save_image(
        output,
        grid,
        meta(
            ckpt,
            rows=rows,
            cols=cols,
            styles=styles,
            truncation=truncation,
            noise_mode=noise_mode,
        ),
    )
    click.echo(
        f"wrote a {len(row_seeds)}x{len(col_seeds)} style-mixing grid (layers {styles} "
        f"from the columns) to {output}"
    )


def truncation_sweep(
    source: str, seeds: str, psi: str, noise_mode: str, device: str, output: str
) -> None:
    """``minigan truncation-sweep``: each seed at several psi, one row per seed."""
    model, ckpt = load_stylegan(source, "truncation-sweep", device)
    seed_list = seeds_of(seeds, "--seeds")
    try:
        psis = parse_floats(psi)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--psi") from None
    images = model.truncation_grid(seed_list, psis, noise_mode)  # type: ignore[arg-type]
    grid = imaging.make_grid(images, nrow=len(psis))
    imaging.save_image(output, grid, meta(ckpt, seeds=seeds, psi=psi, noise_mode=noise_mode))
    click.echo(f"wrote {len(seed_list)} seeds x psi {psi} to {output}")


def interpolate(
    source: str,
    seeds: str,
    frames: int,
    space: str,
    truncation: float,
    noise_mode: str,
    device: str,
    fps: float,
    output: str,
) -> None:
    """``minigan interpolate``: a looping latent walk through the seeds, as a GIF."""
    model, ckpt = load_stylegan(source, "interpolate", device)
    seed_list = seeds_of(seeds, "--seeds")
    try:
        images = model.interpolation_frames(
            seed_list,
            frames,
            cast(Literal["z", "w"], space),
            truncation,
            noise_mode,  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    frames_u8 = imaging.to_uint8(images)
    if frames_u8.shape[-1] == 1:  # grayscale -> RGB for the GIF
        frames_u8 = np.repeat(frames_u8, 3, axis=-1)
    imaging.save_gif(output, list(frames_u8), seconds_per_frame=1.0 / fps)
    click.echo(f"wrote {frames} frames ({space} walk through seeds {seeds}) to {output}")
