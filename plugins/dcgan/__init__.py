"""The DCGAN plugin's hook module: registers the ``dcgan`` model as a lazy string.

This is all minigan imports to list plugins or show ``minigan --help``; the model itself
(:mod:`minigan.plugins.dcgan.model`) is imported only when it is used. Its names are
importable from here too (``from minigan.plugins.dcgan import DCGAN``), on first use.
This module must import nothing but ``minigan.hookimpl`` (no NumPy, no model code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from minigan import hookimpl

__all__ = ["register_models"]

MODEL = "minigan.plugins.dcgan.model"


@hookimpl
def register_models(register: Callable[[str, Any], None]) -> None:
    """Register ``dcgan`` (lazily: nothing is imported until it is used)."""
    register("dcgan", f"{MODEL}:DCGAN")


def __getattr__(name: str) -> Any:
    """The model module's names (``DCGAN``, ``RECIPES`` ...), imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(MODEL), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
