"""A stand-in for CuPy on a machine without a GPU, for :func:`minigan.testing.fake_cuda`.

It is NumPy underneath, but it keeps the rules that make GPU code go wrong when they are
broken on a real GPU:

- a device array is not a NumPy array: ``numpy.asarray(a)`` raises (CuPy refuses implicit
  conversion), NumPy ufuncs and functions dispatch to this module (as they do to CuPy), and
  mixing a NumPy array into a device operation raises ``TypeError`` as CuPy does, and
  assigning one into a device array raises ``ValueError`` as CuPy's ``fill`` does;
- a reduction returns a 0-d device array, not a Python number;
- every device-to-host read (``.get()``, ``float(a)``, ``bool(a)``, ``a.item()``, a boolean
  mask index...) and every host-to-device upload is counted in :data:`transfers`, so a test
  can assert that a training step reads nothing back from the GPU.

Only the part of CuPy's API that minigan and its plugins use is modelled faithfully; other
NumPy functions are passed through with the same argument checks, except those CuPy does not
have (compared with CuPy 14.2: ``_NOT_IN_CUPY``), which raise as they would there.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["ndarray", "asarray", "asnumpy", "transfers", "Transfers"]


@dataclass
class Transfers:
    """Counts of host <-> device copies since the last :meth:`reset`."""

    device_to_host: int = 0
    host_to_device: int = 0
    reads: list[str] = field(default_factory=list)  # what each device-to-host read was

    def reset(self) -> None:
        self.device_to_host = self.host_to_device = 0
        self.reads.clear()

    def read(self, what: str) -> None:
        self.device_to_host += 1
        self.reads.append(what)


transfers = Transfers()

# NumPy functions and ndarray members that CuPy 14.2 does not have (dir() of both, compared)
_NOT_IN_CUPY = frozenset("""
    asmatrix block bmat busday_count busday_offset datetime_as_string datetime_data einsum_path
    frompyfunc fromregex geomspace get_include getbufsize geterr geterrcall histogram_bin_edges
    info insert is_busday isnat matvec nanpercentile nanquantile nested_iters polyder polydiv
    polyint setbufsize seterr seterrcall show_runtime spacing test unstack vecdot vecmat
""".split())  # fmt: skip
_NDARRAY_NOT_IN_CUPY = frozenset("ctypes getfield resize setfield setflags to_device".split())


def _unwrap(x: Any, what: str) -> Any:
    """The NumPy array behind ``x``; NumPy arrays are refused, as CuPy refuses them."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(
            f"Unsupported type {type(x)} in {what}: a NumPy array cannot be mixed with a "
            "CuPy array (move it with cupy.asarray first)"
        )
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, what) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):
        return ndarray(np.asarray(x))  # CuPy reductions return 0-d arrays, not scalars
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(fn: Callable[..., Any], what: str, args: tuple, kwargs: dict) -> Any:
    out_arg = kwargs.get("out")
    result = fn(*_unwrap(args, what), **{k: _unwrap(v, what) for k, v in kwargs.items()})
    if isinstance(out_arg, ndarray) and result is out_arg._a:
        return out_arg  # `out=` keeps its identity
    return _wrap(result)


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: a NumPy array that refuses to be one implicitly."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # ------------------------------------------------------------------- host reads
    def get(self) -> np.ndarray:
        transfers.read(f"get() of {self._a.shape}")
        return self._a.copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def _scalar(self, kind: str) -> Any:
        transfers.read(f"{kind} of {self._a.shape}")
        return self._a

    def __float__(self) -> float:
        return float(self._scalar("float()"))

    def __int__(self) -> int:
        return int(self._scalar("int()"))

    def __index__(self) -> int:
        return operator.index(self._scalar("index").item())

    def __bool__(self) -> bool:
        return bool(self._scalar("bool()"))

    def item(self) -> Any:
        return self._scalar("item()").item()

    def tolist(self) -> Any:
        return self._scalar("tolist()").tolist()

    def __repr__(self) -> str:
        return "fake-cupy " + repr(self._scalar("repr()"))

    __str__ = __repr__

    # ------------------------------------------------------------------- structure
    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)  # rows, or 0-d arrays: no host reads

    def __getitem__(self, index: Any) -> ndarray:
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):  # CuPy assigns a host array through fill()
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            transfers.host_to_device += 1
        elif isinstance(value, ndarray):
            value = value._a
        self._a[_index(index)] = value

    def nonzero(self) -> tuple[ndarray, ...]:
        transfers.read(f"nonzero() of {self._a.shape}")  # the count sizes the result
        return _wrap(self._a.nonzero())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # not NumPy's __array_interface__ & co: no implicit copies
            raise AttributeError(name)
        if name in _NDARRAY_NOT_IN_CUPY:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _call(attr, f"ndarray.{name}", args, kwargs)
        return _wrap(attr)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _call(getattr(ufunc, method), f"cupy.{ufunc.__name__}", inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        impl = _module_function(func.__name__)
        if impl is None:
            return NotImplemented
        return impl(*args, **kwargs)


def _index(index: Any) -> Any:
    """Unwrap device arrays inside an index; NumPy index arrays are copied in (as CuPy does).
    A boolean mask is a read: the size of the result is its count of True, on the host."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, ndarray):
        if index._a.dtype == bool and index._a.ndim:
            transfers.read(f"boolean index of {index._a.shape}")
        return index._a
    if isinstance(index, np.ndarray):
        transfers.host_to_device += 1
    return index


def _binary(ufunc: np.ufunc, reflected: bool = False) -> Callable[[ndarray, Any], Any]:
    if reflected:
        return lambda self, other: _call(ufunc, f"cupy.{ufunc.__name__}", (other, self), {})
    return lambda self, other: _call(ufunc, f"cupy.{ufunc.__name__}", (self, other), {})


def _inplace(ufunc: np.ufunc) -> Callable[[ndarray, Any], ndarray]:
    def op(self: ndarray, other: Any) -> ndarray:
        _call(ufunc, f"cupy.{ufunc.__name__}", (self, other), {"out": self})
        return self

    return op


for _name, _ufunc in {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
    "lshift": np.left_shift, "rshift": np.right_shift,
}.items():  # fmt: skip
    setattr(ndarray, f"__{_name}__", _binary(_ufunc))
    setattr(ndarray, f"__r{_name}__", _binary(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in {
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "ne": np.not_equal,
}.items():  # fmt: skip
    setattr(ndarray, f"__{_name}__", _binary(_ufunc))
for _name, _ufunc in {
    "neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert
}.items():  # fmt: skip
    setattr(ndarray, f"__{_name}__", lambda self, _u=_ufunc: _wrap(_u(self._a)))
ndarray.__hash__ = None  # type: ignore[assignment]
ndarray.__module__ = "cupy"  # what minigan.backend looks at to recognise a CuPy array


# ------------------------------------------------------------------------ module functions


def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    """A device array from host data (counted as an upload) or a device array."""
    if isinstance(a, ndarray):
        return ndarray(np.asarray(a._a, dtype=dtype, order=order))
    transfers.host_to_device += 1
    return ndarray(np.array(_unwrap_host(a), dtype=dtype, order=order or "K"))


def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = None) -> ndarray:
    if isinstance(a, ndarray):
        return ndarray(np.array(a._a, dtype=dtype, copy=copy, order=order or "K"))
    return asarray(a, dtype=dtype, order=order)


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    if isinstance(a, ndarray):
        return ndarray(np.ascontiguousarray(a._a, dtype=dtype))
    return asarray(np.ascontiguousarray(_unwrap_host(a), dtype=dtype))


def asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def _unwrap_host(a: Any) -> Any:
    if isinstance(a, (list, tuple)):
        return type(a)(_unwrap_host(v) for v in a)
    if isinstance(a, ndarray):
        return a._a
    return a


_EXPLICIT = {"asarray": asarray, "array": array, "ascontiguousarray": ascontiguousarray,
             "asnumpy": asnumpy}  # fmt: skip


class _Ufunc:
    """A NumPy ufunc seen through this module (``cupy.add``, with ``cupy.add.at``)."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._u, f"cupy.{self.__name__}", args, kwargs)

    def __getattr__(self, method: str) -> Any:
        fn = getattr(self._u, method)
        if not callable(fn):
            return fn
        return lambda *a, **k: _call(fn, f"cupy.{self.__name__}.{method}", a, k)


def _module_function(name: str) -> Any:
    if name in _NOT_IN_CUPY:
        return None
    if name in _EXPLICIT:
        return _EXPLICIT[name]
    attr = getattr(np, name, None)
    if isinstance(attr, np.ufunc):
        return _Ufunc(attr)
    if callable(attr) and not isinstance(attr, type):
        return lambda *args, **kwargs: _call(attr, f"cupy.{name}", args, kwargs)
    return None


def __getattr__(name: str) -> Any:
    """``cupy.<name>``: dtypes and constants as NumPy's, functions through the checks above."""
    fn = _module_function(name)
    if fn is not None:
        return fn
    if name in _NOT_IN_CUPY:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    try:
        return getattr(np, name)  # float32, uint64, newaxis, pi...
    except AttributeError:
        raise AttributeError(f"the fake cupy module has no attribute {name!r}") from None


# ------------------------------------------------------------------------------- cupy.cuda


class _Event:
    def __init__(self) -> None:
        self.t = 0.0

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


class _Device:
    def __init__(self, device: int = 0) -> None:
        self.id = int(device)
        self.attributes = {"MultiProcessorCount": 4}

    def synchronize(self) -> None:
        pass


random = SimpleNamespace(seed=lambda seed=None: None)  # minigan.manual_seed seeds CuPy's too

_STREAM = SimpleNamespace(ptr=0, synchronize=lambda: None)
cuda = SimpleNamespace(
    runtime=SimpleNamespace(getDeviceCount=lambda: 1),
    get_current_stream=lambda: _STREAM,
    Device=_Device,
    Event=_Event,
    get_elapsed_time=lambda start, end: (end.t - start.t) * 1e3,
)
