"""Sample-quality metrics — a built-in plugin that adds ``minigan metrics RUN``.

Importing this module is cheap, and so is registering the command: SciPy, the feature
networks and their weights are imported only when the command runs.
"""

from __future__ import annotations

from typing import Any

from minigan import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``minigan metrics``."""
    from minigan.metrics.cli import metrics_command

    cli.add_command(metrics_command)
