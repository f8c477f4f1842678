"""``save`` / ``load``: state dicts and whole checkpoints as ``.safetensors`` files.

A safetensors file is a JSON header (tensor names, dtypes, shapes, plus a ``str -> str``
metadata table) followed by the raw tensor bytes. :func:`save` stores

* every array leaf of ``obj`` as a tensor, named by its key path
  (``{"generator": {"0.weight": w}}`` -> ``generator.0.weight``), and
* the shape of ``obj`` itself -- dicts, lists, tuples, ints, floats, strings, bools, None --
  as JSON in the metadata entry ``minigan.structure``,

so :func:`load` returns an equal structure, with arrays as NumPy arrays. A flat dict of arrays
becomes a plain safetensors file whose tensor names are exactly its keys (loadable with
``safetensors.torch.load_file``). Files are written atomically: to a temporary file in the same
directory, flushed to disk, then renamed over the target, so a crash never leaves a
half-written file under the final name.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
>>> save({"model": {"w": np.ones(2, np.float32)}, "step": 10}, path, metadata={"note": "hi"})
>>> load(path)
{'model': {'w': array([1., 1.], dtype=float32)}, 'step': 10}
>>> read_metadata(path)
{'note': 'hi'}
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from minigan.backend import is_cupy_array, to_device
from minigan.tensor import Tensor

__all__ = ["save", "load", "read_metadata"]

PathLike = str | os.PathLike[str]

STRUCTURE_KEY = "minigan.structure"  # metadata entry holding the JSON structure
FORMAT_KEY = "minigan.format"  # metadata entry holding the structure format version
FORMAT_VERSION = "1"
_RESERVED = (STRUCTURE_KEY, FORMAT_KEY)


# --------------------------------------------------------------------------- flattening
#
# The structure is JSON in which every node is either a plain JSON value (a leaf: None,
# bool, int, float, str) or an object with exactly one key saying what it stands for:
#   {"dict": [[key, node], ...]}     keys are str or int, order kept
#   {"list": [node, ...]}    {"tuple": [node, ...]}
#   {"tensor": name}                 an array, stored as the tensor ``name``
#   {"scalar": [dtype, value]}       a NumPy scalar such as numpy.float32(0.5)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or is_cupy_array(value)


class _Flattener:
    """Walks ``obj``, collecting arrays under dotted names and returning the JSON structure."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def node(self, value: Any, path: list[str | int]) -> Any:
        if isinstance(value, Tensor):
            value = value.data
        if _is_array(value):
            return {"tensor": self.add_tensor(value, path)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return {"scalar": [value.dtype.str, value.item()]}
        if isinstance(value, Mapping):
            items = []
            for key, item in value.items():
                if not (isinstance(key, str) or type(key) is int):
                    raise TypeError(
                        f"minigan.save: dict keys must be str or int, got {key!r} "
                        f"({type(key).__name__}) at {_show(path)}"
                    )
                items.append([key, self.node(item, [*path, key])])
            return {"dict": items}
        if isinstance(value, (list, tuple)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            return {kind: [self.node(item, [*path, i]) for i, item in enumerate(value)]}
        raise TypeError(
            f"minigan.save: cannot save a {type(value).__module__}.{type(value).__name__} "
            f"at {_show(path)}; leaves must be Tensors, arrays, numbers, strings, bools or None"
        )

    def add_tensor(self, array: Any, path: list[str | int]) -> str:
        # safetensors reads raw memory: C order (np.ascontiguousarray would turn 0-d into 1-d)
        array = np.asarray(to_device(array, "cpu"), order="C")
        if array.dtype.kind not in "biuf":
            raise TypeError(f"minigan.save: unsupported array dtype {array.dtype} at {_show(path)}")
        name = ".".join(str(part) for part in path) or "tensor"
        base, n = name, 1
        while name in self.tensors:  # e.g. {"a.b": x, "a": {"b": y}}; rare, but stay unique
            n += 1
            name = f"{base}~{n}"
        self.tensors[name] = array
        return name


def _show(path: list[str | int]) -> str:
    """A key path as Python indexing, e.g. ``obj['optimizer']['state'][0]``."""
    return "obj" + "".join(f"[{part!r}]" for part in path)


def _unflatten(node: Any, tensors: Mapping[str, np.ndarray]) -> Any:
    if not isinstance(node, dict):
        return node
    ((kind, payload),) = node.items()
    if kind == "tensor":
        return tensors[payload]
    if kind == "dict":
        return {key: _unflatten(item, tensors) for key, item in payload}
    if kind == "list":
        return [_unflatten(item, tensors) for item in payload]
    if kind == "tuple":
        return tuple(_unflatten(item, tensors) for item in payload)
    if kind == "scalar":
        dtype, value = payload
        return np.dtype(dtype).type(value)
    raise ValueError(f"unknown node {kind!r} in the minigan structure metadata")


# --------------------------------------------------------------------------- files


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is always either the old or the new file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # O_EXCL: never clobber; mode 0o666 lets the umask decide, as for a normal file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)  # make the rename itself durable


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(obj: Any, path: PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``obj`` -- a state dict or a nested checkpoint -- to ``path`` atomically.

    ``metadata`` (str -> str) is stored in the file header; read it back with
    :func:`read_metadata` without loading the tensors.
    """
    path = os.fspath(path)
    user_metadata = dict(metadata or {})
    for key, value in user_metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"minigan.save: metadata must map str to str, got {key!r}: {value!r} "
                f"(convert values with str() or json.dumps())"
            )
        if key in _RESERVED:
            raise ValueError(f"minigan.save: metadata key {key!r} is reserved by minigan")

    flattener = _Flattener()
    structure = flattener.node(obj, [])
    header = {
        **user_metadata,
        STRUCTURE_KEY: json.dumps(structure, separators=(",", ":")),
        FORMAT_KEY: FORMAT_VERSION,
    }
    data = safetensors.numpy.save(flattener.tensors, metadata=header)
    _atomic_write(path, data)


def _open(path: PathLike) -> Any:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"minigan.load: no such file: '{path}'")
    try:
        return safetensors.safe_open(path, framework="np")
    except Exception as e:  # safetensors raises SafetensorError (and others) on bad headers
        raise ValueError(f"minigan.load: '{path}' is not a valid safetensors file ({e})") from e


def load(path: PathLike) -> Any:
    """Read a file written by :func:`save` (or any safetensors file) back.

    Returns the saved structure, arrays as NumPy arrays. A safetensors file from elsewhere
    (no minigan structure) loads as a flat ``{name: array}`` dict.
    """
    with _open(path) as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        header = f.metadata() or {}
    if STRUCTURE_KEY not in header:
        return tensors
    try:
        structure = json.loads(header[STRUCTURE_KEY])
        return _unflatten(structure, tensors)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"minigan.load: '{os.fspath(path)}' has corrupt minigan metadata ({e})"
        ) from e


def read_metadata(path: PathLike) -> dict[str, str]:
    """The ``metadata`` given to :func:`save` (minigan's own entries left out), read from the
    header only."""
    with _open(path) as f:
        header = f.metadata() or {}
    return {key: value for key, value in header.items() if key not in _RESERVED}
