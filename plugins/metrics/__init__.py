"""The metrics plugin's hook module: declares ``minigan metrics RUN`` (sample quality: FID,
KID, precision/recall, the shapes classifier's verdicts).

What the command does (:mod:`.commands`, then :mod:`minigan.metrics`, SciPy and the feature
networks) is imported only when it runs. This module must import nothing but
``minigan.hookimpl`` and, inside ``register_commands``, click.
"""

from __future__ import annotations

import importlib
from typing import Any

from minigan import hookimpl

__all__ = ["register_commands"]

COMMANDS = "minigan.plugins.metrics.commands"
FEATURES = ("shapes", "inception")  # = minigan.metrics.NETWORKS (checked by the tests)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``minigan metrics``."""
    import click

    @cli.command("metrics")
    @click.argument("run", type=click.Path())
    @click.option(
        "--checkpoint",
        help="a checkpoint file, or its name in RUN/checkpoints [default: the latest]",
    )
    @click.option(
        "--num",
        default=1024,
        show_default=True,
        type=click.IntRange(min=10),
        help="samples generated, and real images compared with",
    )
    @click.option(
        "--real", help="the real data: a dataset name or path [default: the run's training data]"
    )
    @click.option(
        "--features",
        type=click.Choice(list(FEATURES)),
        default="shapes",
        show_default=True,
        help="feature network: the shipped shapes classifier (offline; reported as "
        "'FID (shapes-classifier features)') or the FID Inception-v3 (standard FID)",
    )
    @click.option(
        "--inception-weights",
        type=click.Path(dir_okay=False),
        help="the FID Inception weights file [default: the hub cache]",
    )
    @click.option(
        "--baseline/--no-baseline",
        default=True,
        show_default=True,
        help="also score held-out real images (what a perfect generator gets)",
    )
    @click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
    @click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
    @click.option(
        "--cache/--no-cache",
        default=True,
        show_default=True,
        help="cache the real images' features (under $MINIGAN_CACHE/metrics)",
    )
    @click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="progress bars for the feature pass",
    )
    @click.option("--json", "as_json", is_flag=True, help="print the record as JSON")
    def metrics(**options: Any) -> None:
        """Measure the sample quality of RUN (a run directory of `minigan train`).

        Generates --num samples with the run's sampling generator (the EMA generator where
        there is one) and compares them with as many real images: FID, KID,
        precision/recall, and with the shapes classifier the confident fraction, the
        predicted classes and, for a class-conditional run, the class fidelity (how often a
        sample asked for a class is classified as that class). Prints the numbers and appends
        them to RUN/quality.jsonl.
        """
        importlib.import_module(COMMANDS).metrics(**options)
