"""The built-in datasets plugin's hook module: registers ``shapes``, ``mnist``, ``folder``
and ``npz`` as lazy strings, the way a third-party plugin would.

The datasets themselves (:mod:`minigan.plugins.datasets.sources`) are imported only when one
is opened; their names are importable from here too, on first use. This module must import
nothing but ``minigan.hookimpl`` (no NumPy, no dataset code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from minigan import hookimpl

__all__ = ["register_datasets"]

SOURCES = "minigan.plugins.datasets.sources"


@hookimpl
def register_datasets(register: Callable[[str, object], None]) -> None:
    """Register the built-in datasets as lazy ``"module:attribute"`` strings."""
    for name in ("shapes", "mnist", "folder", "npz"):
        register(name, f"{SOURCES}:{name}")


def __getattr__(name: str) -> Any:
    """The datasets module's names (``shapes``, ``read_idx`` ...), imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(SOURCES), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
