"""Tensor and reverse-mode automatic differentiation.

A :class:`Tensor` wraps an array (NumPy on the CPU, CuPy on the GPU). Every differentiable
operation is a :class:`Function`: ``forward`` computes on raw arrays, ``backward`` maps the
output's gradient to the inputs' gradients *using Tensor operations*, so the backward pass
is itself differentiable and ``create_graph=True`` yields true second derivatives.

>>> import minigan
>>> x = minigan.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
tensor([2., 4., 6.])
>>> (g,) = minigan.grad((x ** 3).sum(), x, create_graph=True)
>>> (gg,) = minigan.grad(g.sum(), x)
>>> gg
tensor([ 6., 12., 18.])

Must not import :mod:`minigan.functional` at import time (functional imports this module;
see ``F`` below), nor ``nn``, ``optim``, the kernels or any plugin.
"""

from __future__ import annotations

import builtins
import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from minigan import backend
from minigan import random as _random


class DeferredFunctional:
    """Stands for :mod:`minigan.functional` as the name ``F`` of a module that functional
    imports (this one, and the op modules it re-exports: minigan.tensor_ops, minigan.nn_ops)
    until an operation is first used: ``F: Any = DeferredFunctional(globals())``.

    Tensor's methods (``x + y``, ``x.sum()``, ...) and the backward pass call the operations
    of minigan.functional as ``F.add``, ``F.sum_to``, .... functional imports these modules,
    so they do not import functional when they are loaded: the first ``F.<op>`` imports it
    (usually loaded already) and rebinds that module's ``F`` to it, so later calls cost a
    plain module attribute lookup. The one deferred import back up the graph, listed in
    tests/test_architecture.py.
    """

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        from minigan import functional

        self._namespace["F"] = functional
        return getattr(functional, name)


F: Any = DeferredFunctional(globals())

# --------------------------------------------------------------------------- grad mode

_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations currently record a graph."""
    return _grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Turn graph recording on or off inside a ``with`` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(mode)
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager (and decorator) that disables graph recording.

    >>> import minigan
    >>> w = minigan.tensor([1.0], requires_grad=True)
    >>> with minigan.no_grad():
    ...     (w * 2).requires_grad
    False
    """
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager that re-enables graph recording inside :func:`no_grad`."""
    return set_grad_enabled(True)


# --------------------------------------------------------------------------- version counters

_FLOAT_KINDS = "f"


class _DataSlot:
    """``Tensor.data``: read straight from the instance (no overhead); *assigning* it (which
    includes ``t.data -= lr * g``, an optimizer's update) counts as an in-place change and bumps
    the tensor's version, as every in-place operation does.

    Writing into the array (``t.data -= x`` hands back the same array) bumps the counter
    shared with views and ``detach()``ed tensors; assigning a *new* array bumps only this
    tensor's (it moves to a counter of its own), since views and detached tensors keep the
    old array and its unchanged values, as PyTorch's do after ``t.data = …``.

    A descriptor with ``__set__`` but no ``__get__``: reads find the instance's ``__dict__``.
    """

    def __set__(self, obj: Tensor, value: Any) -> None:
        d = obj.__dict__
        if "data" in d:
            if value is d["data"]:
                obj._version_box[0] += 1
            else:
                obj._version_box = [obj._version_box[0] + 1]
        d["data"] = value


def inplace_error(fn: Function, t: Tensor, saved: int, role: str) -> RuntimeError:
    """PyTorch's error for a tensor changed in place after ``fn`` saved it for backward."""
    kind = f", which is {role}," if role else ""
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [{t.dtype} {list(t.shape)}]{kind} is at version {t._version}; "
        f"expected version {saved} instead (saved by {fn.name} for its backward)"
    )


# --------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(array)`` keeps the array's dtype; use :func:`tensor` to build one from Python
    data (floats become float32, as in PyTorch).
    """

    __array_priority__ = 1000  # ``ndarray * Tensor`` defers to ``Tensor.__rmul__``

    data: Any = _DataSlot()  # reads: the array itself (Any for type checkers)
    # the tensor's node in the graph (its key there), set when a Function creates it
    _node: GraphNode | None = None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        elif not (isinstance(data, np.ndarray) or backend.is_cupy_array(data)):
            data = np.asarray(data)
        # the version counter: a one-element list, shared with detach()ed tensors and views
        self._version_box = [0]
        self.data = data
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self._requires_grad: bool = False
        if requires_grad:
            self.requires_grad = requires_grad  # checks the dtype

    # ----- attributes
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and self.data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"only floating-point tensors can require grad, not {self.dtype}")
        self._requires_grad = bool(flag)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def _version(self) -> int:
        """How many times this tensor (or a view sharing its data) was changed in place."""
        return self._version_box[0]

    def bump_version(self) -> Tensor:
        """Record an in-place change of ``self.data``'s values (call it after writing into the
        array, e.g. ``t.data[...] = v``): a backward that saved this tensor then raises
        instead of using the new values. Assigning ``t.data`` bumps by itself."""
        self._version_box[0] += 1
        return self

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = "" if self.dtype == np.float32 else f", dtype={self.dtype}"
        extra += "" if self.device == "cpu" else f", device='{self.device}'"
        extra += ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"

    # ----- conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host for CUDA tensors)."""
        return self.data.get() if self.device == "cuda" else self.data

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): tensor has {self.data.size} elements, expected 1")
        return self.data.reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data (and version counter), cut from the graph."""
        out = Tensor(self.data)
        out._version_box = self._version_box
        return out

    def to(self, device: str | None = None, dtype: Any = None) -> Tensor:
        """This tensor on another device and/or dtype (``self`` if nothing changes).

        Differentiable: gradients flow back to the original tensor.
        """
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = F.astype(out, dtype)
        if device is not None and backend.parse_device(device) != out.device:
            out = F.to_device(out, device)
        return out

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def zero_(self) -> Tensor:
        """Fill with zeros in place (on a tensor outside the graph)."""
        self.data[...] = 0
        return self.bump_version()

    # ----- autograd
    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward(): tensor does not require grad and has no creator")
        backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph)

    def register_post_accumulate_grad_hook(self, hook: Any) -> _HookHandle:
        """Call ``hook(self)`` each time a ``backward()`` has finished accumulating this leaf's
        gradient into ``.grad`` (PyTorch's name and semantics), while the rest of the backward
        is still to run: what data-parallel training uses to start a gradient all-reduce early.
        Returns a handle whose ``remove()`` unregisters the hook.

        >>> w = tensor([1.0, 2.0], requires_grad=True)
        >>> seen = []
        >>> handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
        >>> (w * w).sum().backward()
        >>> handle.remove(); (w * w).sum().backward()
        >>> seen
        [[2.0, 4.0]]
        """
        if self.creator is not None:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors")
        hooks = self.__dict__.setdefault("_post_accumulate_grad_hooks", {})
        handle = _HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    # ----- operators (implemented in minigan.functional)
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.div(other, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pow__(self, exponent: Any) -> Tensor:
        return F.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return F.pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    def __floordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return F.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return F.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return F.remainder(other, self)

    # Comparisons are elementwise and give bool tensors outside the graph, as in PyTorch.
    # Hashing stays by identity (``__hash__`` below), so Tensors and Parameters still key
    # dicts and fill sets (optimizer state); ``x in some_list`` compares elementwise, so
    # code that looks a tensor up in a list compares ids instead.
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other) if _comparable(other) else NotImplemented

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other) if _comparable(other) else NotImplemented

    def __lt__(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.ge(self, other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        """The truth of a one-element tensor (a read of the device); ambiguous otherwise."""
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of a Tensor with {self.data.size} values (shape {self.shape}) "
                "is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __invert__(self) -> Tensor:
        if self.dtype != np.bool_:
            raise TypeError(f"~ (logical not) needs a bool tensor, got dtype {self.dtype}")
        return F.logical_not(self)

    def __and__(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def __xor__(self, other: Any) -> Tensor:
        return F.logical_xor(self, other)

    # ----- methods (the same names as PyTorch)
    def sum(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return F.sum(self, dim, keepdim)

    def mean(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return F.mean(self, dim, keepdim)

    def var(self, dim: Any = None, correction: int = 1, keepdim: bool = False) -> Tensor:
        return F.var(self, dim, correction=correction, keepdim=keepdim)

    def std(self, dim: Any = None, correction: int = 1, keepdim: bool = False) -> Tensor:
        return F.std(self, dim, correction=correction, keepdim=keepdim)

    def max(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return F.max(self, dim, keepdim)

    def min(self, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> Tensor:
        return F.min(self, dim, keepdim)

    def reshape(self, *shape: Any) -> Tensor:
        return F.reshape(self, shape[0] if len(shape) == 1 else shape)

    view = reshape

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return F.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        single = len(dims) == 1 and not isinstance(dims[0], int)  # permute((1, 0)) or permute(1, 0)
        return F.permute(self, dims[0] if single else dims)

    @property
    def T(self) -> Tensor:
        return F.permute(self, tuple(reversed(range(self.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return F.flatten(self, start_dim, end_dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return F.unsqueeze(self, dim)

    def squeeze(self, dim: int | None = None) -> Tensor:
        return F.squeeze(self, dim)

    def expand(self, *shape: Any) -> Tensor:
        single = len(shape) == 1 and not isinstance(shape[0], int)  # expand((2, 3)) or expand(2, 3)
        return F.broadcast_to(self, shape[0] if single else shape)

    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def abs(self) -> Tensor:
        return F.abs(self)

    def clip(self, min: builtins.float | None = None, max: builtins.float | None = None) -> Tensor:
        return F.clip(self, min, max)

    clamp = clip

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    # ----- more methods (issue 17), PyTorch's names and arguments; reductions also take
    # NumPy's ``axis=`` for ``dim=``, as PyTorch does
    def matmul(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def softmax(self, dim: int = -1) -> Tensor:
        return F.softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return F.log_softmax(self, dim)

    def unflatten(self, dim: int, sizes: Sequence[int]) -> Tensor:
        return F.unflatten(self, dim, sizes)

    def flip(self, *dims: Any) -> Tensor:
        return F.flip(self, dims[0] if len(dims) == 1 else dims)

    def roll(self, shifts: Any, dims: Any = None) -> Tensor:
        return F.roll(self, shifts, dims)

    def repeat(self, *sizes: Any) -> Tensor:
        return F.repeat(self, *sizes)

    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> Tensor:
        return F.repeat_interleave(self, repeats, dim)

    def chunk(self, chunks: int, dim: int = 0) -> list[Tensor]:
        return F.chunk(self, chunks, dim)

    def split(self, split_size: Any, dim: int = 0) -> list[Tensor]:
        return F.split(self, split_size, dim)

    def tril(self, diagonal: int = 0) -> Tensor:
        return F.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return F.triu(self, diagonal)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        return F.masked_fill(self, mask, value)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        return F.gather(self, dim, index)

    def scatter(self, dim: int, index: Tensor, src: Any = None, *, value: Any = None) -> Tensor:
        return F.scatter(self, dim, index, src, value=value)

    def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        return F.scatter_add(self, dim, index, src)

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        return F.index_select(self, dim, index)

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return F.argmax(self, dim, keepdim, axis=axis)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return F.argmin(self, dim, keepdim, axis=axis)

    def prod(self, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None,
             axis: Any = None) -> Tensor:  # fmt: skip
        return F.prod(self, dim, keepdim, dtype=dtype, axis=axis)

    def any(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return F.any(self, dim, keepdim, axis=axis)

    def all(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return F.all(self, dim, keepdim, axis=axis)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
        return F.sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        return F.argsort(self, dim, descending, stable)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
        return F.topk(self, k, dim, largest, sorted)

    def cumsum(self, dim: int | None = None, *, dtype: Any = None, axis: Any = None) -> Tensor:
        return F.cumsum(self, dim, dtype=dtype, axis=axis)

    def sin(self) -> Tensor:
        return F.sin(self)

    def cos(self) -> Tensor:
        return F.cos(self)

    def erf(self) -> Tensor:
        return F.erf(self)

    def sign(self) -> Tensor:
        return F.sign(self)

    def floor(self) -> Tensor:
        return F.floor(self)

    def ceil(self) -> Tensor:
        return F.ceil(self)

    def round(self, decimals: int = 0) -> Tensor:
        return F.round(self, decimals)

    def rsqrt(self) -> Tensor:
        return F.rsqrt(self)

    def log2(self) -> Tensor:
        return F.log2(self)

    def log10(self) -> Tensor:
        return F.log10(self)

    def exp2(self) -> Tensor:
        return F.exp2(self)

    def lerp(self, end: Tensor, weight: Any) -> Tensor:
        return F.lerp(self, end, weight)

    def isnan(self) -> Tensor:
        return F.isnan(self)

    def isinf(self) -> Tensor:
        return F.isinf(self)

    def isfinite(self) -> Tensor:
        return F.isfinite(self)

    def eq(self, other: Any) -> Tensor:
        return F.eq(self, other)

    def ne(self, other: Any) -> Tensor:
        return F.ne(self, other)

    def lt(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def le(self, other: Any) -> Tensor:
        return F.le(self, other)

    def gt(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def ge(self, other: Any) -> Tensor:
        return F.ge(self, other)

    def equal(self, other: Tensor) -> bool:
        return F.equal(self, other)

    def logical_and(self, other: Any) -> Tensor:
        return F.logical_and(self, other)

    def logical_or(self, other: Any) -> Tensor:
        return F.logical_or(self, other)

    def logical_not(self) -> Tensor:
        return F.logical_not(self)

    def floor_divide(self, other: Any) -> Tensor:
        return F.floor_divide(self, other)

    def remainder(self, other: Any) -> Tensor:
        return F.remainder(self, other)


def _comparable(other: Any) -> bool:
    """What ``==`` compares elementwise: tensors, arrays and numbers (not None, strings...)."""
    return isinstance(other, (Tensor, int, float, bool, np.ndarray, np.generic)) or (
        backend.is_cupy_array(other)
    )


def _axis_alias(method: Any) -> Any:
    """Let a reduction method take ``axis=`` for ``dim=``, as PyTorch's do."""

    def reduction(self: Tensor, *args: Any, axis: Any = None, **kwargs: Any) -> Any:
        if axis is not None:
            if args or "dim" in kwargs:
                raise TypeError(f"{method.__name__}(): give dim or axis, not both")
            kwargs["dim"] = axis
        return method(self, *args, **kwargs)

    reduction.__name__, reduction.__doc__ = method.__name__, method.__doc__
    return reduction


for _name in ("sum", "mean", "var", "std", "max", "min"):
    setattr(Tensor, _name, _axis_alias(getattr(Tensor, _name)))


def _shares_memory(a: Any, b: Any) -> bool:
    """Whether array ``a`` may be a view of ``b`` (on a GPU: whether it is a view at all)."""
    if isinstance(a, np.ndarray):
        return a is b or bool(np.may_share_memory(a, b))
    return a is b or a.base is not None


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def tensor(
    data: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Build a tensor from Python data or an array (a copy), like ``torch.tensor``.

    Python floats become float32; arrays keep their dtype unless ``dtype`` is given.

    >>> tensor([[1, 2], [3, 4]]).dtype
    dtype('int64')
    >>> tensor([0.5, 1.5]).dtype
    dtype('float32')
    """
    if isinstance(data, Tensor):
        data = data.numpy()
    from_python = not hasattr(data, "__array__") and not backend.is_cupy_array(data)
    array = np.array(data, dtype=dtype) if not backend.is_cupy_array(data) else data.copy()
    if dtype is None and from_python and array.dtype == np.float64:
        array = array.astype(np.float32)
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def _filled(
    fill: Callable[[Any, tuple[int, ...], np.dtype], Any],
    size: tuple[Any, ...],
    dtype: Any,
    device: str,
    requires_grad: bool,
) -> Tensor:
    """A new tensor of shape ``size`` (``(2, 3)`` or ``((2, 3),)``) made by ``fill``."""
    shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
    array = fill(backend.module_for(device), shape, np.dtype(dtype))
    return Tensor(array, requires_grad=requires_grad)


def _randn(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return _random.generator().standard_normal(shape, dtype=np.float64).astype(dtype)


def _rand(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return _random.generator().random(shape, dtype=np.float64).astype(dtype)


# Random numbers come from minigan's one NumPy generator whatever the device (and are then
# copied there), so a seed gives the same noise, weights and samples on the CPU and the GPU.
def zeros(
    *size: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``, float32 by default.

    >>> zeros(2, 3).shape, zeros((2,), dtype=np.int64).dtype
    ((2, 3), dtype('int64'))
    """
    return _filled(lambda xp, shape, dt: xp.zeros(shape, dt), size, dtype, device, requires_grad)


def ones(
    *size: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``, float32 by default."""
    return _filled(lambda xp, shape, dt: xp.ones(shape, dt), size, dtype, device, requires_grad)


def randn(
    *size: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Standard normal samples from minigan's generator (see ``manual_seed``):
    ``randn(2, 3)`` or ``randn((2, 3))``, float32 by default."""
    return _filled(
        lambda xp, shape, dt: xp.asarray(_randn(shape, dt)), size, dtype, device, requires_grad
    )


def rand(
    *size: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Uniform [0, 1) samples from minigan's generator (see ``manual_seed``):
    ``rand(2, 3)`` or ``rand((2, 3))``, float32 by default."""
    return _filled(
        lambda xp, shape, dt: xp.asarray(_rand(shape, dt)), size, dtype, device, requires_grad
    )


def zeros_like(x: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(backend.get_array_module(x.data).zeros_like(x.data), requires_grad)


def ones_like(x: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(backend.get_array_module(x.data).ones_like(x.data), requires_grad)


def randn_like(x: Tensor) -> Tensor:
    return randn(x.shape, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------- Function


class GraphNode:
    """What the graph keeps of a tensor whose values no backward reads: its shape, dtype,
    ``requires_grad`` and creator — not its data, which is freed as soon as nothing else
    holds the tensor (PyTorch's graph likewise keeps only the tensors ``backward`` saves).

    Every tensor a :class:`Function` creates gets one (``Tensor._node``): the backward engine
    knows a tensor by its node, so a Function holding the tensor (it saves its values) and
    one holding just the node (``Add``, ``Reshape``, ``Dropout``, …) meet at the same place.
    Reading the values of a node is a bug in that Function's ``saved_inputs``: it fails.
    """

    __slots__ = ("shape", "dtype", "_requires_grad", "creator", "_version_box", "__weakref__")
    _node = None  # as a leaf's: a node's key is its own id (see _key)

    def __init__(self, t: Tensor) -> None:
        self.shape: tuple[int, ...] = t.data.shape
        self.dtype = t.data.dtype
        self._requires_grad: bool = t._requires_grad
        self.creator: Function | None = t.creator
        self._version_box = t._version_box  # shared: in-place changes stay visible (see
        # Function.version_checked)

    @property
    def _version(self) -> int:
        return self._version_box[0]

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def data(self) -> Any:
        creator = type(self.creator).__name__ if self.creator is not None else "a leaf"
        raise RuntimeError(
            f"a backward read the values of a tensor {list(self.shape)} (made by {creator}) "
            "that its Function did not save: add the input to that Function's saved_inputs"
        )

    def __repr__(self) -> str:
        return f"GraphNode(shape={self.shape}, dtype={self.dtype})"


def _key(t: Tensor | GraphNode) -> int:
    """A tensor's identity in the graph: its node's id (a leaf's, or a node's, own id). The
    backward engine spells it out inline, ``id(t._node or t)``, on its hot path."""
    return id(t._node or t)


class Function:
    """One differentiable operation with a single output.

    Subclasses implement ``forward(*arrays) -> array`` and ``backward(gy) -> grads``, where
    ``backward`` receives and returns Tensors and reads its inputs from ``self.inputs`` (and
    its output from ``self.output()``). ``self.needs_grad[i]`` tells whether input ``i``'s
    gradient is wanted, so expensive branches can be skipped (return ``None`` for them).

    In-place safety (PyTorch's version counters): the versions of the inputs are recorded at
    forward time; before ``backward`` runs, those whose *values* it reads (``saved_inputs``,
    all by default; ``()`` for ops such as add or reshape that only need shapes) and, when
    ``saves_output``, the output must be unchanged, or backward raises a RuntimeError.
    ``is_view`` ops (reshape, permute, basic indexing, …) give an output that shares the
    version counter of input 0 whenever it shares its memory.
    """

    # The inputs while the graph is kept (None before the call and once backward freed them:
    # backward() only runs in between, so it reads them as a tuple). An input whose values
    # backward does not read (not in saved_indices()) is kept as its GraphNode only.
    inputs: tuple[Tensor, ...] = None  # type: ignore[assignment]
    _out_ref: Callable[[], Any]  # a weak reference to the output
    # with saves_output: the output's data, version counter and (weakly: the node holds
    # this Function) node, to rebuild it from once the tensor itself is gone
    _out_saved: tuple[Any, list[int], Callable[[], Any]] | None = None
    needs_grad: tuple[bool, ...] = ()
    saved_inputs: tuple[int, ...] | None = None
    # inputs whose values backward does not read (it keeps a smaller stand-in, e.g. a sign
    # mask) but whose in-place change must still raise, because PyTorch saves them
    version_checked: tuple[int, ...] = ()
    saves_output: bool = False
    is_view: bool = False

    def __call__(self, *inputs: Any) -> Tensor:
        inputs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        if len(inputs) > 1:
            kind = type(inputs[0].data)
            if any(type(x.data) is not kind for x in inputs):
                devices = ", ".join(f"{x.device} {x.shape}" for x in inputs)
                raise ValueError(f"{self.name}: tensors are on different devices ({devices})")
        out = Tensor(self.forward(*(x.data for x in inputs)))
        if self.is_view and _shares_memory(out.data, inputs[0].data):
            out._version_box = inputs[0]._version_box
        grad_dtype = out.data.dtype.kind in _FLOAT_KINDS  # x.to(int32) ends the graph
        if _grad_enabled and grad_dtype and any(x._requires_grad for x in inputs):
            out._requires_grad = True
            out.creator = self
            out._node = GraphNode(out)
            self.inputs = inputs
            self._out_ref = weakref.ref(out)
            self._versions = tuple([x._version_box[0] for x in inputs])
            self._out_version = out._version_box[0]
            if self.saves_output:
                self._out_saved = (out.data, out._version_box, weakref.ref(out._node))
            keep: Sequence[int] | None = self.saved_inputs
            if keep is None and type(self).saved_indices is not Function.saved_indices:
                keep = self.saved_indices()  # it depends on which inputs require grad
            if keep is not None and len(keep) < len(inputs):  # drop what backward never reads
                # (typed as Tensors: backward reads only shape, dtype and the graph from a node)
                self.inputs = cast(
                    tuple[Tensor, ...],
                    tuple(
                        [
                            x if i in keep or (x._requires_grad and not x.creator) else _node_of(x)
                            for i, x in enumerate(inputs)
                        ]
                    ),
                )
        return out

    def output(self) -> Tensor:
        """The output tensor (rebuilt from the saved values if it was freed: a backward that
        reads its output must say ``saves_output``)."""
        out = self._out_ref()
        if out is None:
            if self._out_saved is None:
                raise RuntimeError(
                    f"{self.name}: backward read its output, which is gone: set saves_output"
                )
            data, box, node = self._out_saved
            out = Tensor(data)  # while backward runs, the engine holds the node
            out._version_box, out._requires_grad, out.creator, out._node = box, True, self, node()
        return out

    def saved_indices(self) -> Sequence[int]:
        """The inputs whose values ``backward`` reads (override when it depends on which
        inputs require grad, as for ``mul``: ``a`` is needed only for ``b``'s gradient)."""
        return range(len(self.inputs)) if self.saved_inputs is None else self.saved_inputs

    def check_versions(self) -> None:
        """Raise PyTorch's RuntimeError if a tensor saved for backward changed in place."""
        for i in (*self.saved_indices(), *self.version_checked):
            x = self.inputs[i]
            if x._version_box[0] != self._versions[i]:
                role = f"output 0 of {type(x.creator).__name__}" if x.creator else ""
                raise inplace_error(self, x, self._versions[i], role)
        out = self.output() if self.saves_output else None
        if out is not None and out._version_box[0] != self._out_version:
            raise inplace_error(self, out, self._out_version, f"output 0 of {type(self).__name__}")

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def backward(self, gy: Tensor) -> Tensor | None | tuple[Tensor | None, ...]:
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")


# --------------------------------------------------------------------------- backward engine


class _HookHandle:
    """Unregisters one hook (``handle.remove()``)."""

    _next = 0

    def __init__(self, hooks: dict[int, Any]) -> None:
        _HookHandle._next += 1
        self.id, self._hooks = _HookHandle._next, hooks

    def remove(self) -> None:
        self._hooks.pop(self.id, None)


def _node_of(x: Tensor) -> GraphNode:
    """``x``'s node (a fresh one for a tensor outside the graph, which no walk visits)."""
    return x._node if x._node is not None else GraphNode(x)


def _graph(roots: Sequence[Tensor]) -> list[Any]:
    """Tensors reachable from ``roots`` through their creators, in topological order
    (every tensor before the tensors it was computed from). Iterative: deep graphs are fine."""
    order: list[Any] = []  # Tensors and GraphNodes
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        k = id(t._node or t)  # its key (see _key)
        if k in seen:
            continue
        seen.add(k)
        stack.append((t, True))
        fn = t.creator
        if fn is not None:
            if fn.inputs is None:
                raise RuntimeError(
                    "trying to backward through the graph a second time (its buffers were "
                    "freed); pass retain_graph=True to the first backward() or grad()"
                )
            stack.extend(
                (x, False) for x in fn.inputs if x._requires_grad and id(x._node or x) not in seen
            )
    order.reverse()
    return order


def _leading_to_targets(order: list[Any], target_ids: set[int] | None) -> set[int]:
    """The keys (see :func:`_key`) of the tensors in ``order`` that lead to a target (every
    leaf when ``target_ids`` is None), found by a walk from the inputs side."""
    needed: set[int] = set()
    for t in reversed(order):
        k = id(t._node or t)
        if t.creator is None:
            if target_ids is None or k in target_ids:
                needed.add(k)
        elif (target_ids is not None and k in target_ids) or any(
            id(x._node or x) in needed for x in t.creator.inputs
        ):
            needed.add(k)
    return needed


def _run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor | None],
    targets: Sequence[Tensor] | None,
    retain_graph: bool,
    create_graph: bool,
    on_leaf: Any = None,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Propagate gradients from ``outputs`` back through the graph.

    Returns ``(tensor, total gradient)`` for every target (all leaves when ``targets`` is
    None), keyed by :func:`_key`. Only the part of the graph that leads to a target is
    evaluated.
    ``on_leaf(leaf, gradient)``, if given, is called as soon as a leaf's gradient is complete
    (instead of returning it).
    """
    order = _graph(outputs)
    target_ids = None if targets is None else {id(t._node or t) for t in targets}
    needed = _leading_to_targets(order, target_ids)

    grads: dict[int, Tensor] = {}
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; output has shape "
                    f"{out.shape}: pass grad_outputs / gradient"
                )
            g = Tensor(backend.get_array_module(out.data).ones_like(out.data))
        elif not isinstance(g, Tensor):
            g = Tensor(g)
        if g.shape != out.shape:
            raise ValueError(f"gradient has shape {g.shape}, but the output has shape {out.shape}")
        if g.dtype != out.dtype:  # as in PyTorch: the gradient takes the output's dtype
            g = F.astype(g, out.dtype)
        k = id(out._node or out)
        grads[k] = grads[k] + g if k in grads else g

    results: dict[int, tuple[Tensor, Tensor]] = {}
    with set_grad_enabled(create_graph):
        for i in range(len(order)):
            t, order[i] = order[i], None  # the engine stops holding it: freed once done
            k = id(t._node or t)
            if k not in needed or k not in grads:
                continue
            g = grads.pop(k)
            fn = t.creator
            if (fn is None) if target_ids is None else (k in target_ids):
                if on_leaf is not None:
                    on_leaf(t, g)
                else:
                    results[k] = (t, g)
            if fn is None:
                continue
            fn.needs_grad = tuple(
                [x._requires_grad and id(x._node or x) in needed for x in fn.inputs]
            )
            fn.check_versions()
            gxs = fn.backward(g)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx, wanted in zip(fn.inputs, gxs, fn.needs_grad):
                if gx is None or not wanted:
                    continue
                if gx.shape != x.shape:
                    gx = F.sum_to(gx, x.shape)  # the one place where broadcasting is undone
                kx = id(x._node or x)
                grads[kx] = grads[kx] + gx if kx in grads else gx
            if not retain_graph:
                fn.inputs = fn._out_saved = None  # free saved tensors
    return results


def backward(
    tensors: Sequence[Tensor],
    grad_tensors: Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate gradients of ``tensors`` into ``.grad`` of every leaf (``Tensor.backward``)."""
    grad_tensors = grad_tensors or [None] * len(tensors)
    retain = create_graph if retain_graph is None else retain_graph
    # a leaf's new .grad owns its array, as in PyTorch: ``a + b`` hands both leaves the same
    # gradient array, which may also be the caller's ``gradient``; writing into one .grad
    # (``a.grad.data *= 0.5``) must change neither the other nor the caller's tensor
    taken = {_root_id(_raw(g)) for g in grad_tensors if g is not None}

    def accumulate(leaf: Tensor, g: Tensor) -> None:  # as soon as the leaf's gradient is whole
        if not create_graph:
            g = g.detach()
            if leaf.grad is None:
                root = _root_id(g.data)
                if root in taken:
                    g = Tensor(g.data.copy())
                taken.add(root)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        for hook in list(leaf.__dict__.get("_post_accumulate_grad_hooks", {}).values()):
            hook(leaf)

    _run_backward(tensors, grad_tensors, None, retain, create_graph, on_leaf=accumulate)


def _root_id(array: Any) -> int:
    """``id`` of the array that owns ``array``'s memory (itself, or the base of a view)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return id(array)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, like ``torch.autograd.grad``.

    With ``create_graph=True`` the result is itself part of the graph, so it can be
    differentiated again (R1 and gradient penalties).

    >>> import minigan
    >>> x = minigan.tensor([3.0], requires_grad=True)
    >>> minigan.grad((x * x).sum(), x)
    (tensor([6.]),)
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad(): input {i} (shape {x.shape}) does not require grad")
    for i, y in enumerate(outputs):
        if not y.requires_grad:
            raise RuntimeError(
                f"grad(): output {i} (shape {y.shape}) does not require grad: "
                "it does not depend on any input that requires grad"
            )
    retain = create_graph if retain_graph is None else retain_graph
    results = _run_backward(outputs, list(grad_outputs), inputs, retain, create_graph)
    answer: list[Tensor | None] = []
    for i, x in enumerate(inputs):
        g = results[_key(x)][1] if _key(x) in results else None
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): input {i} (shape {x.shape}) was not used to compute the outputs; "
                "pass allow_unused=True"
            )
        if g is not None and not create_graph:
            g = g.detach()
        answer.append(g)
    return tuple(answer)

