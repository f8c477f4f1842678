"""Network weights without PyTorch: torchvision ``.pth`` files, ``.safetensors`` and ``.npz``.

A ``.pth`` file written by ``torch.save`` is a pickle, and unpickling runs whatever callables
the file names — a crafted file can run any code. :func:`read_pth` therefore unpickles with a
restricted :class:`pickle.Unpickler` whose ``find_class`` accepts only the handful of globals
that a saved state dict uses (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, the ``torch.*Storage`` types, ``_codecs.encode``) and maps
each to a harmless NumPy stand-in; any other global is refused with
:class:`UnsafePickleError` naming it, before anything from the file is called. Tensor data is
never unpickled: storages are raw little-endian bytes (``data/N`` entries of the zip archive,
or the records after the pickle in the legacy format) turned into NumPy arrays with the saved
offset, shape and strides.

Both of ``torch.save``'s formats are read: the zip archive (PyTorch ≥ 1.6) and the legacy
format that torchvision's older ImageNet files (VGG16, GoogLeNet) use.

>>> import io, pickle, zipfile
>>> class Evil:
...     def __reduce__(self):
...         return (print, ("pwned",))
>>> buffer = io.BytesIO()
>>> with zipfile.ZipFile(buffer, "w") as z:
...     z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
>>> _ = buffer.seek(0)
>>> try:
...     read_pth(buffer)
... except UnsafePickleError as e:
...     print(e)  # doctest: +ELLIPSIS
refusing to load <BytesIO>: the pickle names the global '__builtin__.print', which a PyTorch...

Must not import minigan's tensors or CuPy: it reads files into NumPy arrays only.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import re
import struct
import sys
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "UnsafePickleError",
    "WeightsNotFoundError",
    "WeightsFile",
    "WEIGHTS",
    "read_pth",
    "read_weights",
    "hub_dir",
    "find_weights",
    "missing_weights_message",
    "download",
]

PathLike = str | os.PathLike[str]


class UnsafePickleError(pickle.UnpicklingError):
    """A ``.pth`` file names something other than tensor-rebuilding globals."""


class WeightsNotFoundError(FileNotFoundError):
    """No weights for a network; the message says how to get them."""

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------- .pth
#: torch storage class name -> NumPy dtype of its elements.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co. inside the pickle: only its name is used."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    """A storage record from a persistent id; ``array`` is filled in when its bytes are read."""

    key: str
    dtype: np.dtype
    bfloat16: bool
    array: np.ndarray | None = None


@dataclass
class _TensorRef:
    """A tensor described by the pickle: materialised into an array after the storages load."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        # checked here, at the last moment: a pickle's BUILD opcode can rewrite attributes
        data = getattr(self.storage, "array", None)
        if not isinstance(data, np.ndarray):
            raise pickle.UnpicklingError(f"storage {self.storage.key!r} has no data in the file")
        ints = [self.offset, *self.shape, *self.stride]
        if not all(type(i) is int and i >= 0 for i in ints) or len(self.shape) != len(self.stride):
            raise pickle.UnpicklingError("malformed .pth: bad tensor geometry")
        if 0 in self.shape:
            return np.zeros(self.shape, data.dtype)
        span = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if self.offset + span > data.size:
            raise pickle.UnpicklingError(
                f"tensor of shape {self.shape} runs past its storage {self.storage.key!r} "
                f"(offset {self.offset}, strides {self.stride}, {data.size} elements present)"
            )
        # Zero or overlapping strides would make a few stored bytes into a huge array (a
        # 40000x40000 view of one float): a state dict's tensors never have more elements
        # than the bytes behind them.
        if math.prod(self.shape) > data.size:
            raise pickle.UnpicklingError(
                f"tensor of shape {self.shape} has more elements than its storage "
                f"{self.storage.key!r} holds ({data.size}): zero or overlapping strides "
                f"{self.stride} are refused"
            )
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], self.shape, tuple(s * item for s in self.stride), writeable=False
        )
        out = np.array(view)  # own, contiguous copy
        if self.storage.bfloat16:  # bfloat16 is the top half of a float32
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` (and the v1 ``_rebuild_tensor``)."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("malformed .pth: a tensor without a storage")
    try:
        return _TensorRef(
            storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride)
        )
    except (TypeError, ValueError):
        raise pickle.UnpicklingError("malformed .pth: bad tensor size or stride") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: a Parameter is just its tensor."""
    return data


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to store ``bytes``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("malformed .pth: unexpected use of _codecs.encode")
    return text.encode(encoding)


class _Sealed:
    """A callable whose attributes cannot be set: what the allowed function globals are
    handed out as, so a pickle's BUILD opcode cannot tamper with them."""

    __slots__ = ("_fn",)
    _fn: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError("malformed .pth: it tries to set attributes of a function")

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


#: (module, name) -> the harmless object it is mapped to. Nothing else is accepted.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,  # a C type: its attributes are read-only
    ("torch._utils", "_rebuild_tensor_v2"): _Sealed(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Sealed(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Sealed(_rebuild_parameter),
    ("_codecs", "encode"): _Sealed(_encode),
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what a PyTorch state dict contains; storages become :class:`_Storage`."""

    def __init__(self, file: IO[bytes], source: str, storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="latin1")
        self.source, self.storages = source, storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self.source}: the pickle names the global "
                f"'{module}.{name}', which a PyTorch weights file never needs (only tensor "
                "rebuilding is allowed, so a crafted file cannot run code)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        # zip format: ('storage', StorageType, key, location, numel)
        # legacy:     ('storage', StorageType, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self.source}: unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self.source}: bad storage type in {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError(f"{self.source}: storage views are not supported")
        if key not in self.storages:
            bf16 = storage_type.name == "BFloat16Storage"
            self.storages[key] = _Storage(key, storage_type.dtype, bf16)
        return self.storages[key]


def _collect(obj: Any) -> Any:
    """Replace every :class:`_TensorRef` in a nested structure by its array."""
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _collect(v)) for k, v in obj.items()) if obj else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_collect(v) for v in obj)
    return obj


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def read_pth(source: PathLike | IO[bytes]) -> dict[str, np.ndarray]:
    """A ``torch.save``-d state dict (zip or legacy format) as ``{key: numpy array}``,
    without importing PyTorch and without running code from the file.

    Raises :class:`UnsafePickleError` for a pickle naming any global outside the allowlist,
    ``pickle.UnpicklingError`` for a malformed file.
    """
    name = _describe(source)
    fh: IO[bytes] = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source
    try:
        start = fh.tell()
        is_zip = zipfile.is_zipfile(fh)
        fh.seek(start)
        result = _read_zip(fh, name) if is_zip else _read_legacy(fh, name)
    except (UnsafePickleError, MemoryError):
        raise
    except Exception as e:  # a malformed archive or pickle: say which file
        if isinstance(e, pickle.UnpicklingError) and name in str(e):
            raise
        raise pickle.UnpicklingError(
            f"{name}: not a readable .pth file ({type(e).__name__}: {e})"
        ) from None
    finally:
        if fh is not source:
            fh.close()
    if (
        isinstance(result, dict)
        and "state_dict" in result
        and isinstance(result["state_dict"], dict)
    ):
        result = result["state_dict"]  # a checkpoint wrapping the state dict
    if not isinstance(result, dict):
        raise pickle.UnpicklingError(
            f"{name}: expected a state dict, found {type(result).__name__}"
        )
    arrays = {}
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            arrays[str(key).removeprefix("module.")] = value
    return arrays


def _read_zip(fh: IO[bytes], name: str) -> Any:
    with zipfile.ZipFile(fh) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pickles:
            raise pickle.UnpicklingError(f"{name}: a zip file without data.pkl is not a .pth file")
        root = pickles[0][: -len("data.pkl")]
        byteorder = f"{root}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise pickle.UnpicklingError(f"{name}: big-endian files are not supported")
        storages: dict[str, _Storage] = {}
        with archive.open(pickles[0]) as pkl:
            result = _RestrictedUnpickler(io.BytesIO(pkl.read()), name, storages).load()
        for key, storage in storages.items():
            try:
                entry = archive.getinfo(f"{root}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"{name}: storage data/{key} is missing") from None
            if entry.compress_type != zipfile.ZIP_STORED and entry.file_size > _MAX_RATIO * (
                entry.compress_size + 1024
            ):  # torch.save stores data uncompressed: this is a zip bomb
                raise pickle.UnpicklingError(
                    f"{name}: storage data/{key} would expand {entry.compress_size} bytes to "
                    f"{entry.file_size}; refused"
                )
            raw = archive.read(entry)
            usable = len(raw) - len(raw) % storage.dtype.itemsize
            storage.array = np.frombuffer(raw[:usable], storage.dtype)
        return _collect(result)


_MAX_RATIO = 64  # the largest expansion accepted for a compressed storage entry


def _remaining(fh: IO[bytes]) -> int:
    """Bytes left in ``fh`` after its position."""
    here = fh.tell()
    end = fh.seek(0, os.SEEK_END)
    fh.seek(here)
    return end - here


def _read_legacy(fh: IO[bytes], name: str) -> Any:
    storages: dict[str, _Storage] = {}

    def load() -> Any:
        return _RestrictedUnpickler(fh, name, storages).load()

    try:
        magic = load()
    except UnsafePickleError:
        raise
    except Exception as e:
        raise pickle.UnpicklingError(
            f"{name} is neither a zip nor a legacy torch.save file ({type(e).__name__}: {e})"
        ) from None
    if magic != LEGACY_MAGIC:
        raise pickle.UnpicklingError(
            f"{name} is not a torch.save file (very old tar-format files are not supported: "
            "re-save them with a recent PyTorch)"
        )
    load()  # protocol version
    sys_info = load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError(f"{name}: big-endian files are not supported")
    result = load()
    keys = load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError(f"{name}: malformed legacy file (no storage key list)")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise pickle.UnpicklingError(f"{name}: unknown storage {key!r}")
        head = fh.read(8)
        if len(head) != 8:
            raise pickle.UnpicklingError(f"{name}: truncated storage {key!r}")
        (count,) = struct.unpack("<q", head)
        nbytes = count * storage.dtype.itemsize
        if count < 0 or nbytes > _remaining(fh):  # checked before anything is allocated
            raise pickle.UnpicklingError(
                f"{name}: storage {key!r} claims {count} elements, more than the file holds"
            )
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise pickle.UnpicklingError(f"{name}: truncated storage {key!r}")
        storage.array = np.frombuffer(raw, storage.dtype)
    return _collect(result)


# --------------------------------------------------------------------------- any format
def read_weights(path: PathLike) -> dict[str, np.ndarray]:
    """A state dict from ``.pth``/``.pt`` (read without PyTorch), ``.safetensors`` or ``.npz``.

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(p, **{"features.0.weight": np.ones((2, 3, 3, 3), np.float32)})
    >>> {k: v.shape for k, v in read_weights(p).items()}
    {'features.0.weight': (2, 3, 3, 3)}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        import safetensors.numpy

        try:
            return dict(safetensors.numpy.load_file(str(path)))
        except Exception as e:  # SafetensorError on a malformed header, ...
            raise ValueError(f"{path}: not a valid .safetensors file ({e})") from None
    if suffix == ".npz":
        try:
            from minigan.data import check_npz

            with np.load(path, allow_pickle=False) as archive:
                check_npz(archive, path)
                return {k: archive[k] for k in archive.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            if str(e).startswith(str(path)):
                raise
            raise ValueError(f"{path}: not a readable .npz weights file ({e})") from None
    return read_pth(path)


# --------------------------------------------------------------------------- hub cache
@dataclass(frozen=True)
class WeightsFile:
    """torchvision's official weights file for one network."""

    filename: str
    url: str

    @property
    def sha256_prefix(self) -> str:
        """The hex digits in the file name: the start of the file's SHA-256 (torchvision's
        convention, checked by ``torch.hub`` with ``check_hash=True``).

        >>> WEIGHTS["vgg16"].sha256_prefix
        '397923af'
        """
        match = re.search(r"-([0-9a-f]{8,})\.", self.filename)
        if not match:
            raise ValueError(f"{self.filename} carries no hash prefix")
        return match.group(1)


WEIGHTS: dict[str, WeightsFile] = {
    "vgg16": WeightsFile(
        "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"
    ),
    "googlenet": WeightsFile(
        "googlenet-1378be20.pth", "https://download.pytorch.org/models/googlenet-1378be20.pth"
    ),
    # pytorch-fid's port of the TensorFlow FID Inception-v3 (minigan metrics --features inception)
    "fid_inception": WeightsFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    ),
}


def hub_dir() -> Path:
    """torch hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints``, where ``TORCH_HOME``
    defaults to ``$XDG_CACHE_HOME/torch`` and that to ``~/.cache/torch``."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(cache, "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def find_weights(name: str) -> Path | None:
    """The cached torchvision weights file of network ``name``, or ``None``."""
    info = WEIGHTS.get(name)
    if info is None:
        return None
    path = hub_dir() / info.filename
    return path if path.is_file() else None


def missing_weights_message(name: str) -> str:
    """What to tell a user who has no weights for ``name``."""
    info = WEIGHTS[name]
    target = hub_dir() / info.filename
    return (
        f"no weights for {name}: {target} does not exist.\n"
        f"Get torchvision's ImageNet weights with one of:\n"
        f"  minigan weights download {name}\n"
        f"  curl -L -o {target} {info.url}   (any machine; copy the file to that path)\n"
        f"or pass --weights FILE (.pth, .safetensors or .npz with torchvision's keys).\n"
        f"The default model, shapes, needs no download: minigan dream IMAGE --model shapes"
    )


Opener = Callable[..., Any]


def download(
    name: str,
    directory: PathLike | None = None,
    progress: bool = True,
    opener: Opener | None = None,
) -> Path:
    """Fetch torchvision's weights for ``name`` into the hub cache (or ``directory``).

    The file is streamed to a temporary file beside the target, its SHA-256 checked against
    the prefix in its name, then renamed into place (atomic: an interrupted or corrupt
    download never leaves a file under the final name). Returns the path. ``opener`` is
    ``urllib.request.urlopen`` unless given (tests pass a fake one).
    """
    import urllib.request

    from tqdm.auto import tqdm

    if name not in WEIGHTS:
        raise ValueError(f"no download for {name!r}; available: {', '.join(WEIGHTS)}")
    info = WEIGHTS[name]
    folder = Path(directory) if directory is not None else hub_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / info.filename
    opener = opener or urllib.request.urlopen
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, opener(info.url) as response:
            total = int(getattr(response, "headers", {}).get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=info.filename,
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if not actual.startswith(info.sha256_prefix):
            raise ValueError(
                f"download of {info.url} is corrupt: SHA-256 {actual[:16]}… does not start "
                f"with {info.sha256_prefix}; nothing was saved"
            )
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
