"""Array backends: NumPy on the CPU, CuPy on the GPU.

CuPy is imported lazily — only when a CUDA tensor is asked for — so ``import minigan``
works on any machine.

>>> import numpy as np
>>> get_array_module(np.zeros(3)) is np
True
>>> device_of(np.zeros(3))
'cpu'
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

DEVICES = ("cpu", "cuda")


def cupy() -> ModuleType:
    """Import CuPy, or explain what to install when it cannot be used."""
    try:
        import cupy as cp
    except ImportError as e:
        raise RuntimeError(
            "device 'cuda' needs CuPy and an NVIDIA GPU: install them with "
            "`pip install 'minigan[cuda]'`"
        ) from e
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError when no driver or no device
        raise RuntimeError(f"device 'cuda' is not available: CuPy found no usable GPU ({e})") from e
    return cp


def is_cupy_array(a: Any) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    return type(a).__module__.startswith("cupy") and "cupy" in sys.modules


def get_array_module(a: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) that owns ``a``."""
    return sys.modules["cupy"] if is_cupy_array(a) else np


def device_of(a: Any) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if is_cupy_array(a) else "cpu"


def parse_device(device: str | None) -> str | None:
    """Normalise ``"cpu"``, ``"cuda"`` or ``"cuda:0"``; ``None`` passes through."""
    if device is None:
        return None
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return name


def module_for(device: str) -> ModuleType:
    """The array module of ``device``: NumPy for ``"cpu"``, CuPy for ``"cuda"``."""
    return cupy() if parse_device(device) == "cuda" else np


def to_device(a: Any, device: str | None) -> Any:
    """Return ``a`` on ``device`` (a no-op when it is already there)."""
    device = parse_device(device)
    if device is None or device == device_of(a):
        return a
    if device == "cuda":
        return cupy().asarray(a)
    return a.get()
