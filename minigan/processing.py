"""The image-processor contract (``minigan process NAME``) and the check of what a processor
returns.

A processor is a class registered through the ``register_processors`` hook with

- ``Config``: a ``@dataclass`` whose fields all have defaults; each becomes an option of
  ``minigan process NAME`` (``metadata={"help": ...}`` is its help text);
- ``__init__(config)``: called once as ``cls(cls.Config(**options))`` before any image is
  processed (load weights here; raise ``ValueError`` / ``FileNotFoundError`` with a clear
  message for bad options: the command line shows it as one line);
- ``process(image) -> image``: ``image`` is H×W×3 ``float32`` in [0, 1], RGB, channels
  last. Every file arrives this way: 8- and 16-bit files are scaled to [0, 1], grayscale is
  repeated to three channels, an alpha channel is dropped. The result is a float H'×W'×3
  array in [0, 1] (the size may change; a gray H'×W' or H'×W'×1 or an RGBA H'×W'×4 result
  is written as such); it is checked by :func:`check_output`, which
  names the processor and its plugin when the result is ``None``, not an array, not
  floating point, not channels-last (a CHW array is recognised and named), contains NaN or
  infinity, or lies outside [0, 1] (a result in [0, 255] is recognised and named).
  Values within half a grey level of [0, 1] are clipped;
- ``metadata() -> dict``: what goes into each output PNG's text chunks (the parameters).

:func:`process_image` runs one image through a processor the way ``minigan process`` does.
This module imports NumPy only; never a plugin.

>>> class Invert:
...     def process(self, image):
...         return 1.0 - image
>>> out = process_image(Invert(), np.zeros((2, 2), np.uint8), "invert")   # gray uint8 in
>>> out.shape, out.dtype, float(out.min())
((2, 2, 3), dtype('float32'), 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ProcessorOutputError", "check_output", "process_image"]

#: how far outside [0, 1] a result may stray and be clipped: half a grey level
TOLERANCE = 0.5 / 255


class ProcessorOutputError(ValueError):
    """A processor returned something that is not an H×W×3 float image in [0, 1]."""


def _who(name: str, plugin: str | None) -> str:
    return f"processor {name!r}" + (f" (plugin {plugin!r})" if plugin else "")


def _as_array(result: Any, who: str) -> np.ndarray:
    if result is None:
        raise ProcessorOutputError(
            f"{who}: process() returned None; it must return the new image, an H×W×3 float "
            f"array in [0, 1]"
        )
    if hasattr(result, "numpy") and callable(result.numpy):  # a minigan Tensor
        result = result.numpy()
    if hasattr(result, "get") and type(result).__module__.startswith("cupy"):
        result = result.get()
    if not isinstance(result, np.ndarray):
        raise ProcessorOutputError(
            f"{who}: process() returned a {type(result).__name__}, not a NumPy array "
            f"(H×W×3 float in [0, 1])"
        )
    return result


#: channel counts of a channels-last result: gray, RGB, RGBA (written as such to the PNG)
CHANNELS = (1, 3, 4)


def _check_layout(result: np.ndarray, who: str) -> None:
    shape = result.shape
    if result.size == 0:
        raise ProcessorOutputError(f"{who}: returned an empty array of shape {shape}")
    if result.ndim == 2 or (result.ndim == 3 and shape[2] in CHANNELS):
        return
    if result.ndim == 3 and shape[0] in (1, 3) and shape[2] not in CHANNELS:
        raise ProcessorOutputError(
            f"{who}: returned an array of shape {shape}, which looks channels-first (C×H×W); "
            f"return H×W×3 (channels last, e.g. array.transpose(1, 2, 0))"
        )
    raise ProcessorOutputError(
        f"{who}: returned an array of shape {shape}; expected H×W×3 (RGB, channels last; "
        f"H×W or H×W×1 for gray, H×W×4 for RGBA)"
    )


def check_output(result: Any, name: str, plugin: str | None = None) -> np.ndarray:
    """``result`` of processor ``name`` (from ``plugin``) as ``float32`` in [0, 1], in its
    own channels-last layout (H×W×3; or gray H×W / H×W×1, or RGBA H×W×4), or a
    :class:`ProcessorOutputError` naming both and saying what is wrong.

    >>> check_output(np.full((1, 1, 3), 1.001, np.float32), "x").tolist()
    [[[1.0, 1.0, 1.0]]]
    >>> check_output(np.full((1, 1, 3), 255.0), "invert", "minigan-invert")
    Traceback (most recent call last):
    ...
    minigan.processing.ProcessorOutputError: processor 'invert' (plugin 'minigan-invert'): \
values in [255, 255], which looks like 0-255; return values in [0, 1] (divide by 255)
    """
    who = _who(name, plugin)
    result = _as_array(result, who)
    if not np.issubdtype(result.dtype, np.floating):
        raise ProcessorOutputError(
            f"{who}: returned dtype {result.dtype}; return a float array in [0, 1] "
            f"(e.g. image.astype(np.float32) / 255 for 8-bit values)"
        )
    _check_layout(result, who)
    finite = np.isfinite(result)
    if not finite.all():
        bad = result[~finite]
        kind = "NaN" if np.isnan(bad).any() else "infinity"
        raise ProcessorOutputError(
            f"{who}: the result contains {kind} ({bad.size} of {result.size} values)"
        )
    lo, hi = float(result.min()), float(result.max())
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        hint = (
            "which looks like 0-255; return values in [0, 1] (divide by 255)"
            if hi > 2 and lo >= -TOLERANCE
            else "expected [0, 1] (clip the result, or rescale it)"
        )
        raise ProcessorOutputError(f"{who}: values in [{lo:g}, {hi:g}], {hint}")
    return np.clip(result.astype(np.float32, copy=False), 0.0, 1.0)


def process_image(
    processor: Any, image: np.ndarray, name: str, plugin: str | None = None
) -> np.ndarray:
    """Run ``image`` (as read from a file: ``uint8`` / ``uint16`` / float, gray, RGB or RGBA)
    through ``processor.process`` the way ``minigan process`` does: the input as H×W×3
    ``float32`` RGB in [0, 1], the output checked by :func:`check_output`."""
    from minigan.images import as_rgb_float

    return check_output(processor.process(as_rgb_float(image)), name, plugin)
