"""DeepDream, minigan's built-in image processor — registered as ``deepdream``.

Registers the ``deepdream`` processor (``minigan process deepdream …``) and adds two commands:

- ``minigan dream INPUT... -o OUT.png [--model shapes|vgg16|googlenet] [--layers …] …``
- ``minigan weights download NAME`` / ``minigan weights list``

Importing this module is cheap: the networks and the algorithm (:mod:`.dream`,
:mod:`.networks`, :mod:`.weights`) are imported only when a command runs or the processor is
used. This module must import nothing at module level but ``minigan.hookimpl`` (no NumPy, no
network code); ``register_commands`` may import click, :mod:`minigan.cli` and :mod:`.config`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from minigan import hookimpl

__all__ = ["register_processors", "register_commands"]


@hookimpl
def register_processors(register: Callable[[str, Any], None]) -> None:
    """Register ``deepdream`` lazily (nothing is imported until it is used)."""
    register("deepdream", "minigan.plugins.deepdream.dream:DeepDream")


# --------------------------------------------------------------------------- CLI helpers
def _output_paths(output: Path) -> tuple[Path, Path, Path]:
    """OUT.png -> (OUT.png, OUT_frames/, OUT.gif)."""
    return output, output.with_name(output.stem + "_frames"), output.with_suffix(".gif")


# --------------------------------------------------------------------------- commands
@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``minigan dream`` and ``minigan weights`` (``download``, ``list``)."""
    import click

    cli.add_command(
        click.Command(
            "dream", callback=dream_command, params=_dream_params(click), help=dream_command.__doc__
        )
    )
    _add_weights(cli, click)


def dream_command(
    inputs: tuple[str, ...],
    output: str | None,
    list_layers: bool,
    zoom_frames: int,
    zoom: float,
    overwrite: bool,
    dask: str | None,
    workers: int | None,
    **options: Any,
) -> None:
    """DeepDream images: amplify what a network's layers see in them.

    Runs offline with the shipped shapes classifier; --model vgg16 / googlenet use
    torchvision's ImageNet weights (see `minigan weights download`). With --zoom-frames N,
    the dream is fed back through a zoom N times: frames go to OUT_frames/ and OUT.gif.
    The output PNG records every parameter in its metadata. Several inputs or folders
    (-o: the output folder) are dreamed one by one — a bad file is reported and the rest go
    on, outputs that exist are skipped unless --overwrite — or in parallel on a local Dask
    cluster (--workers N) or an existing one (--dask ADDRESS).
    """
    import click

    from minigan.batch import Job, plan_jobs, run_jobs
    from minigan.cli import report_batch
    from minigan.data import IMAGE_EXTENSIONS
    from minigan.plugins.deepdream import networks

    if list_layers:
        click.echo(networks.describe_layers(options["model"]))
        return
    if not inputs:
        raise click.UsageError("missing INPUT image (or use --list-layers)")
    many = len(inputs) > 1 or Path(inputs[0]).is_dir()
    if (many or dask or workers is not None) and zoom_frames > 0:
        raise click.UsageError("--zoom-frames takes a single INPUT image")
    if dask or workers is not None:
        _dream_many(inputs, output, dask, workers, options)
        return
    if many:
        jobs = plan_jobs(inputs, output, "dream", IMAGE_EXTENSIONS, sep="_")
    else:
        source = Path(inputs[0])
        jobs = [Job(source, Path(output or source.with_name(source.stem + "_dream.png")))]
    processor = _processor(options)

    def work(source: Path, out: Path) -> None:
        _dream_one(processor, source, out, zoom_frames, zoom, quiet=many)

    if not many:
        work(jobs[0].source, jobs[0].target)
        return
    report = run_jobs(jobs, work, overwrite=overwrite, progress=options["progress"], desc="dream")
    report_batch(report, "dream")


def _dream_one(
    processor: Any, source: Path, out: Path, zoom_frames: int, zoom: float, quiet: bool
) -> None:
    """Dream one image file into ``out`` (and, with zoom frames, OUT_frames/ and OUT.gif)."""
    import click

    from minigan.images import read_image, save_image, unit_to_uint8

    image = read_image(source)
    try:
        processor.check_size(image)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    meta = {**processor.metadata(), "input": source.name}
    if zoom_frames > 0:
        result = _zoom(processor, image, out, zoom_frames, zoom, meta, quiet)
    else:
        result = processor.process(image)
    save_image(out, unit_to_uint8(result), meta)
    if not quiet:
        click.echo(f"wrote {out}")


def _dream_many(
    inputs: tuple[str, ...],
    output: str | None,
    address: str | None,
    workers: int | None,
    options: dict[str, Any],
) -> None:
    """Several images (files, folders searched recursively): INPUT_dream.png beside each
    file or in -o OUT; here, or one Dask task per file; failures listed, exit status 1."""
    import functools

    import click

    from minigan.cluster import map_files, process_image_file, processor_factory, summary
    from minigan.data import IMAGE_EXTENSIONS

    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    if address and workers is not None:
        raise click.UsageError("--dask and --workers exclude each other")
    jobs = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            target = Path(output) if output else item.with_name(item.name + "_dream")
            jobs += [(p, target / p.relative_to(item).with_suffix(".png")) for p in files]
        else:
            target = Path(output) if output else item.parent
            jobs.append((item, target / f"{item.stem}_dream.png"))
    _processor(options)  # bad options: one clear error here, not one per file
    try:
        results = map_files(
            functools.partial(process_image_file, name="deepdream"),
            processor_factory("deepdream", options),
            jobs,
            address=address,
            workers=0 if not (address or workers) else workers,
            desc="dream",
        )
    except (ConnectionError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    first, *failures = summary("dream", results)
    click.echo(first)
    for line in failures:
        click.echo(line, err=True)
    if failures:
        raise SystemExit(1)


def _processor(options: dict[str, Any]) -> Any:
    """A DeepDream processor for the command's options, or a ClickException saying why not."""
    import click

    from minigan.plugins.deepdream import networks
    from minigan.plugins.deepdream.config import DreamConfig
    from minigan.plugins.deepdream.dream import DeepDream
    from minigan.plugins.deepdream.weights import WeightsNotFoundError

    try:
        return DeepDream(DreamConfig(**options))
    except WeightsNotFoundError as e:
        raise click.ClickException(str(e)) from None
    except (networks.LayerError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    except RuntimeError as e:  # --device cuda without CuPy or a GPU
        raise click.ClickException(str(e)) from None


def _zoom(
    processor: Any,
    image: Any,
    out: Path,
    zoom_frames: int,
    zoom: float,
    meta: dict[str, Any],
    quiet: bool = False,
) -> Any:
    """The zoom-feedback frames, written to OUT_frames/ and OUT.gif; returns the last."""
    import click

    from minigan.images import save_gif, save_image, unit_to_uint8

    frames = processor.zoom(image, zoom_frames, zoom)
    _, frame_dir, gif = _output_paths(out)
    frame_dir.mkdir(parents=True, exist_ok=True)
    meta.update(zoom_frames=zoom_frames, zoom=zoom)
    for i, frame in enumerate(frames):
        save_image(frame_dir / f"{i:04d}.png", unit_to_uint8(frame), {**meta, "frame": i})
    save_gif(gif, [unit_to_uint8(f) for f in frames], seconds_per_frame=0.1)
    if not quiet:
        click.echo(f"wrote {len(frames)} frames to {frame_dir} and {gif}")
    return frames[-1]


def _dream_params(click: Any) -> list[Any]:
    """``minigan dream``'s arguments: the input, the output, zoom options and DreamConfig's."""
    from minigan.cli import FiniteFloat, batch_options, config_options, max_pixels_option
    from minigan.plugins.deepdream.config import DreamConfig

    return [
        click.Argument(["inputs"], nargs=-1, type=click.Path(exists=True)),
        click.Option(
            ["-o", "--output"],
            type=click.Path(),
            help="output PNG [default: INPUT_dream.png]; with several inputs or a folder, the "
            "output folder [default: beside each input; FOLDER_dream/ for a folder]",
        ),
        click.Option(
            ["--dask"],
            metavar="ADDRESS",
            help="several inputs: one task per image on the Dask scheduler at ADDRESS",
        ),
        click.Option(
            ["--workers"], type=int, help="several inputs: a local Dask cluster of N processes"
        ),
        *batch_options(progress=False),
        max_pixels_option(),
        click.Option(["--list-layers"], is_flag=True, help="list the layers of --model and exit"),
        click.Option(
            ["--zoom-frames"],
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="zoom-feedback frames (writes OUT_frames/ and OUT.gif)",
        ),
        click.Option(
            ["--zoom"],
            type=FiniteFloat(positive=True),
            default=1.05,
            show_default=True,
            help="zoom factor between frames",
        ),
        *config_options(DreamConfig, prefix=""),
    ]


def _add_weights(cli: Any, click: Any) -> None:
    @cli.group()
    def weights() -> None:
        """Network weights for DeepDream (torchvision's ImageNet files)."""

    @weights.command("download")
    @click.argument("name", type=click.Choice(["vgg16", "googlenet", "fid_inception"]))
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False),
        help="where to save [default: the torch hub cache]",
    )
    def download(name: str, directory: str | None) -> None:
        """Download weights for NAME (checksum-checked) into the hub cache: torchvision's
        ImageNet files, or pytorch-fid's FID Inception (for `minigan metrics`)."""
        from minigan.plugins.deepdream import weights as w

        try:
            path = w.download(name, directory)
        except OSError as e:
            raise click.ClickException(
                f"download failed: {e}\n{w.missing_weights_message(name)}"
            ) from None
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"saved {path}")

    @weights.command("list")
    def list_weights() -> None:
        """Show each network, where its weights are looked for, and whether they are there."""
        from minigan.plugins.deepdream import weights as w
        from minigan.plugins.deepdream.shapes_classifier import WEIGHTS_PATH

        click.echo(f"shapes     shipped    {WEIGHTS_PATH}")
        for name, info in w.WEIGHTS.items():
            found = w.find_weights(name)
            state = "found  " if found else "missing"
            click.echo(f"{name:<10} {state}    {found or w.hub_dir() / info.filename}")
        click.echo(f"(hub cache: {w.hub_dir()}; set TORCH_HOME to move it)", err=False)
