"""Lazy ``"package.module:attribute"`` references: the one resolver the plugin registry
(:mod:`minigan.registry`) and the CUDA kernel backend (:mod:`minigan.kernels.cuda`) share.

A lazy string names something to import only when it is first used, so that listing plugins
or importing a backend costs nothing. This module must import nothing but the standard
library (it sits below both the core and the kernels).

>>> resolve("os.path:basename")("/tmp/x.png")
'x.png'
>>> resolve("collections:OrderedDict.fromkeys")("ab")["b"] is None
True
>>> resolve("json:").__name__
'json'
"""

from __future__ import annotations

import importlib
from typing import Any


def is_lazy(target: object) -> bool:
    """Whether ``target`` is a lazy reference (a string with a ``:``)."""
    return isinstance(target, str) and ":" in target


def resolve(target: str) -> Any:
    """Import ``package.module`` and return its (dotted) ``attribute``; the module itself when
    the part after ``:`` is empty. Import errors propagate unchanged."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj
