"""Tensor ops with PyTorch's names: creation, comparisons, elementwise math, indexing and
scattering, shape ops, ``einsum``, reductions and sorting.

They live in their own module, re-exported by :mod:`minigan.functional` (``F.gather``,
``F.einsum`` ...) and as Tensor methods; the creation ops are also ``minigan.arange`` etc.
Each differentiable op is a :class:`~minigan.tensor.Function` -- or a composition of
differentiable ops -- whose ``backward`` is written with differentiable ops, so second
derivatives work. Comparisons, ``arg*`` and ``is*`` ops return tensors outside the graph
(bool or int64), as in PyTorch. Arrays are made with the input's array module (NumPy or
CuPy), so every op follows its input's device.

>>> import minigan
>>> x = minigan.arange(6.0).reshape(2, 3)
>>> (x > 2).tolist()
[[False, False, False], [True, True, True]]
>>> gather(x, 1, minigan.tensor([[2], [0]])).tolist()
[[2.0], [3.0]]
>>> einsum("ij,ij->i", x, x)
tensor([ 5., 50.])
"""

from __future__ import annotations

import builtins
import math
import string
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minigan import backend, kernels
from minigan import random as _random
from minigan.tensor import DeferredFunctional, Function, Tensor, is_grad_enabled

# minigan.functional (which re-exports this module's ops), imported on first use
F: Any = DeferredFunctional(globals())

__all__ = [
    "arange", "linspace", "eye", "full", "full_like", "empty", "empty_like", "randint",
    "eq", "ne", "lt", "le", "gt", "ge", "equal", "logical_and", "logical_or", "logical_xor",
    "logical_not", "isnan", "isinf", "isfinite",
    "sin", "cos", "erf", "sign", "floor", "ceil", "round", "rsqrt", "log2", "log10", "exp2",
    "lerp", "floor_divide", "remainder",
    "masked_fill", "gather", "scatter", "scatter_add", "index_select",
    "flip", "roll", "repeat", "repeat_interleave", "chunk", "tril", "triu", "unflatten",
    "einsum",
    "argmax", "argmin", "prod", "any", "all", "sort", "argsort", "topk", "cumsum",
]  # fmt: skip


def _xp(a: Any) -> Any:
    return backend.get_array_module(a)


def _dim(dim: int, ndim: int, op: str) -> int:
    """``dim`` as a non-negative axis (PyTorch's IndexError when out of range)."""
    return F.canonical_dim(dim, ndim, op)


def _pick_dim(dim: Any, axis: Any, op: str) -> Any:
    """PyTorch accepts ``axis=`` (NumPy's name) wherever it takes ``dim=``."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim or axis, not both")
        return axis
    return dim


def _same_device(op: str, *tensors: Tensor) -> None:
    if len({t.device for t in tensors}) > 1:
        shown = ", ".join(f"{t.device} {t.shape}" for t in tensors)
        raise ValueError(f"{op}: tensors are on different devices ({shown})")


def _check_index(op: str, index: Tensor) -> None:
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {index.dtype}")


# --------------------------------------------------------------------------- creation


def _scalar_dtype(*values: Any) -> np.dtype:
    """PyTorch's inference from Python numbers: a float gives float32, all-bool gives bool,
    otherwise int64."""
    if builtins.any(isinstance(v, (float, np.floating)) for v in values):
        return np.dtype(np.float32)
    if builtins.all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.dtype(bool)
    return np.dtype(np.int64)


def _shape(size: Sequence[Any]) -> tuple[int, ...]:
    """``f(2, 3)`` or ``f((2, 3))``."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    return tuple(int(n) for n in size)


def _make(array: np.ndarray, device: str, requires_grad: bool) -> Tensor:
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    *,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """``[start, start + step, ...)`` up to ``end`` (exclusive); ``arange(n)`` is ``0..n-1``.
    Integers give int64, any float gives float32.

    >>> arange(3).tolist(), arange(0, 1, 0.25).tolist()
    ([0, 1, 2], [0.0, 0.25, 0.5, 0.75])
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if (end - start) * step < 0:
        raise ValueError(
            f"arange: upper bound and step sign are inconsistent (start {start}, end {end}, "
            f"step {step})"
        )
    dt = np.dtype(dtype) if dtype is not None else _scalar_dtype(start, end, step)
    n = builtins.max(0, math.ceil((end - start) / step))
    exact = builtins.all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    steps: Any = np.arange(n, dtype=np.int64 if exact else np.float64)
    values = start + steps * step
    return _make(values.astype(dt), device, requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 by
    default); like PyTorch, the second half is counted back from ``end``, so both ends are
    exact.

    >>> linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    i = np.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    values = np.where(i < steps / 2, start + step * i, end - step * (steps - 1 - i))
    return _make(values.astype(dtype or np.float32), device, requires_grad)


def eye(
    n: int,
    m: int | None = None,
    *,
    dtype: Any = np.float32,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """The ``n x m`` identity matrix (``m = n`` by default)."""
    xp = backend.module_for(device)
    return Tensor(xp.eye(n, n if m is None else m, dtype=dtype), requires_grad=requires_grad)


def full(
    size: Any,
    fill_value: Any,
    *,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (dtype inferred as in PyTorch).

    >>> full((2,), 7).tolist(), full((2,), 0.5).dtype
    ([7, 7], dtype('float32'))
    """
    shape = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(n) for n in size)
    dt = np.dtype(dtype) if dtype is not None else _scalar_dtype(fill_value)
    xp = backend.module_for(device)
    return Tensor(xp.full(shape, fill_value, dtype=dt), requires_grad=requires_grad)


def full_like(
    x: Tensor, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """A tensor shaped like ``x``, on its device, with ``x``'s dtype unless given."""
    xp = _xp(x.data)
    return Tensor(xp.full(x.shape, fill_value, dtype=dtype or x.dtype), requires_grad)


def empty(
    *size: Any, dtype: Any = np.float32, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """An uninitialised tensor: ``empty(2, 3)`` or ``empty((2, 3))``."""
    xp = backend.module_for(device)
    return Tensor(xp.empty(_shape(size), dtype=dtype), requires_grad=requires_grad)


def empty_like(x: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor shaped like ``x``, on its device."""
    return Tensor(_xp(x.data).empty(x.shape, dtype=dtype or x.dtype), requires_grad)


def randint(
    low: int,
    high: Any = None,
    size: Any = None,
    *,
    dtype: Any = np.int64,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform integers in ``[low, high)`` from minigan's generator: ``randint(high, size)``
    or ``randint(low, high, size)``, as ``torch.randint``.

    >>> import minigan
    >>> _ = minigan.manual_seed(0)
    >>> t = randint(3, 7, (1000,))
    >>> (int(t.min()), int(t.max()), t.dtype)
    (3, 6, dtype('int64'))
    """
    if size is None and high is not None and not isinstance(high, (int, np.integer)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None:
        low, high = 0, low  # randint(high, size=...)
    if size is None:
        raise TypeError("randint: missing the size argument, e.g. randint(0, 10, (3,))")
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    shape = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(n) for n in size)
    values = _random.generator().integers(low, high, shape, dtype=np.int64)
    return _make(values.astype(dtype), device, requires_grad)


# --------------------------------------------------------------------------- comparisons


def _compare(op: str, ufunc: Any, a: Any, b: Any) -> Tensor:
    a, b = F._operands(a, b)
    F._binary_shapes(op, a, b)
    _same_device(op, a, b)
    return Tensor(ufunc(a.data, b.data))


def eq(a: Any, b: Any) -> Tensor:
    """Elementwise ``a == b`` as a bool tensor (also ``Tensor.__eq__``)."""
    return _compare("eq", np.equal, a, b)


def ne(a: Any, b: Any) -> Tensor:
    """Elementwise ``a != b`` as a bool tensor."""
    return _compare("ne", np.not_equal, a, b)


def lt(a: Any, b: Any) -> Tensor:
    """Elementwise ``a < b`` as a bool tensor."""
    return _compare("lt", np.less, a, b)


def le(a: Any, b: Any) -> Tensor:
    """Elementwise ``a <= b`` as a bool tensor."""
    return _compare("le", np.less_equal, a, b)


def gt(a: Any, b: Any) -> Tensor:
    """Elementwise ``a > b`` as a bool tensor."""
    return _compare("gt", np.greater, a, b)


def ge(a: Any, b: Any) -> Tensor:
    """Elementwise ``a >= b`` as a bool tensor."""
    return _compare("ge", np.greater_equal, a, b)


def equal(a: Tensor, b: Tensor) -> bool:
    """True when ``a`` and ``b`` have the same shape and the same values (``torch.equal``);
    a Python bool (one read of the device)."""
    return a.shape == b.shape and bool(_xp(a.data).all(eq(a, b).data))


def logical_and(a: Any, b: Any) -> Tensor:
    """Elementwise ``a and b`` (non-zero is true) as a bool tensor."""
    return _compare("logical_and", np.logical_and, a, b)


def logical_or(a: Any, b: Any) -> Tensor:
    """Elementwise ``a or b`` (non-zero is true) as a bool tensor."""
    return _compare("logical_or", np.logical_or, a, b)


def logical_xor(a: Any, b: Any) -> Tensor:
    """Elementwise ``a xor b`` (non-zero is true) as a bool tensor."""
    return _compare("logical_xor", np.logical_xor, a, b)


def logical_not(x: Tensor) -> Tensor:
    """Elementwise ``not x`` (zero is false) as a bool tensor."""
    return Tensor(np.logical_not(x.data))


def isnan(x: Tensor) -> Tensor:
    """Where ``x`` is NaN, as a bool tensor."""
    return Tensor(np.isnan(x.data))


def isinf(x: Tensor) -> Tensor:
    """Where ``x`` is +-inf, as a bool tensor."""
    return Tensor(np.isinf(x.data))


def isfinite(x: Tensor) -> Tensor:
    """Where ``x`` is neither NaN nor +-inf, as a bool tensor."""
    return Tensor(np.isfinite(x.data))


# --------------------------------------------------------------------------- elementwise math


class Sin(Function):
    def forward(self, x):
        return _xp(x).sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x):
        return _xp(x).cos(x)

    def backward(self, gy):
        return -gy * sin(self.inputs[0])


def _erf_array(x: Any) -> Any:
    """erf on NumPy or CuPy arrays (SciPy's or CuPy's ufunc; ``math.erf`` without SciPy)."""
    if _xp(x) is np:
        try:
            from scipy.special import erf as scipy_erf
        except ImportError:  # SciPy is optional: the C library's erf, element by element
            return np.vectorize(math.erf, otypes=[x.dtype])(x)
        return scipy_erf(x).astype(x.dtype, copy=False)
    try:
        from cupyx.scipy.special import erf as cupy_erf
    except ImportError:  # minigan.testing.fake_cuda: SciPy's ufunc dispatches to the stand-in
        from scipy.special import erf as cupy_erf
    return cupy_erf(x)


class Erf(Function):
    def forward(self, x):
        return _erf_array(x)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (2 / math.sqrt(math.pi)) * F.exp(-(x * x))


class Rsqrt(Function):
    saved_inputs, saves_output = (), True

    def forward(self, x):
        return 1 / _xp(x).sqrt(x)

    def backward(self, gy):
        y = self.output()
        return gy * -0.5 * y * y * y


class Log2(Function):
    def forward(self, x):
        return _xp(x).log2(x)

    def backward(self, gy):
        return gy / (self.inputs[0] * math.log(2))


class Log10(Function):
    def forward(self, x):
        return _xp(x).log10(x)

    def backward(self, gy):
        return gy / (self.inputs[0] * math.log(10))


class Exp2(Function):
    saved_inputs, saves_output = (), True

    def forward(self, x):
        return _xp(x).exp2(x)

    def backward(self, gy):
        return gy * self.output() * math.log(2)


class Flat(Function):
    """A piecewise-constant op (``sign``, ``floor``, ``ceil``, ``round``, ``//``): its
    derivative is zero wherever it exists, as PyTorch reports it."""

    saved_inputs = ()  # zero gradients: no values needed

    def __init__(self, name: str, fn: Any) -> None:
        self._name, self.fn = name, fn

    @property
    def name(self) -> str:
        return self._name

    def forward(self, *xs):
        return self.fn(*xs)

    def backward(self, gy):
        zero = Tensor(_xp(gy.data).zeros_like(gy.data))
        return (zero,) * len(self.inputs)


def sin(x: Tensor) -> Tensor:
    return Sin()(x)


def cos(x: Tensor) -> Tensor:
    return Cos()(x)


def erf(x: Tensor) -> Tensor:
    """The error function; its derivative is ``2/sqrt(pi) * exp(-x**2)``."""
    return Erf()(x)


def rsqrt(x: Tensor) -> Tensor:
    """``1 / sqrt(x)``."""
    return Rsqrt()(x)


def log2(x: Tensor) -> Tensor:
    return Log2()(x)


def log10(x: Tensor) -> Tensor:
    return Log10()(x)


def exp2(x: Tensor) -> Tensor:
    """``2 ** x``."""
    return Exp2()(x)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 (zero gradient)."""
    return Flat("sign", lambda a: _xp(a).sign(a))(x)


def _integral_or(fn_name: str) -> Any:
    def run(a: Any) -> Any:
        return a.copy() if a.dtype.kind in "iub" else getattr(_xp(a), fn_name)(a)

    return run


def floor(x: Tensor) -> Tensor:
    """Round down (zero gradient); integer tensors are returned as they are."""
    return Flat("floor", _integral_or("floor"))(x)


def ceil(x: Tensor) -> Tensor:
    """Round up (zero gradient); integer tensors are returned as they are."""
    return Flat("ceil", _integral_or("ceil"))(x)


def round(x: Tensor, decimals: int = 0) -> Tensor:
    """Round half to even, to ``decimals`` places (zero gradient), as ``torch.round``."""
    if decimals == 0:
        return Flat("round", _integral_or("round"))(x)
    return Flat("round", lambda a: _xp(a).round(a, decimals))(x)


class Lerp(Function):
    """``start + weight * (end - start)``, evaluated from the nearer end as PyTorch does
    (exact at ``weight`` 0 and 1); inputs (start, end, weight)."""

    def forward(self, a, b, w):
        xp = _xp(a)
        return xp.where(w < 0.5, a + w * (b - a), b - (b - a) * (1 - w)).astype(a.dtype)

    def backward(self, gy):
        a, b, w = self.inputs
        ga = gy * (1 - w) if self.needs_grad[0] else None
        gb = gy * w if self.needs_grad[1] else None
        gw = gy * (b - a) if self.needs_grad[2] else None
        return ga, gb, gw


def lerp(start: Tensor, end: Tensor, weight: Any) -> Tensor:
    """Linear interpolation ``start + weight * (end - start)``; ``weight`` is a number or a
    tensor (differentiable in all three)."""
    start, end = F._operands(start, end)
    weight = F._as_tensor(weight, start)
    shape = np.broadcast_shapes(start.shape, end.shape, weight.shape)
    F._check_same_dtype("lerp", start, end, weight)
    return Lerp()(*(F.broadcast_to(t, shape) for t in (start, end, weight)))


class Remainder(Function):
    """``a - floor(a / b) * b`` (the sign of ``b``, Python's ``%``)."""

    def forward(self, a, b):
        return _xp(a).remainder(a, b)

    def backward(self, gy):
        a, b = self.inputs
        gb = -gy * floor_divide(a, b) if self.needs_grad[1] else None
        return gy, gb


def floor_divide(a: Any, b: Any) -> Tensor:
    """``floor(a / b)`` (Python's ``//``, ``torch.floor_divide``); zero gradient."""
    a, b = F._operands(a, b)
    F._binary_shapes("floor_divide", a, b)
    return Flat("floor_divide", lambda u, v: _xp(u).floor_divide(u, v))(a, b)


def remainder(a: Any, b: Any) -> Tensor:
    """``a - floor(a / b) * b`` (Python's ``%``, ``torch.remainder``)."""
    a, b = F._operands(a, b)
    F._binary_shapes("remainder", a, b)
    return Remainder()(a, b)


# --------------------------------------------------------------------------- indexing


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """``value`` where the bool ``mask`` (broadcast to ``x``) is true, ``x`` elsewhere;
    ``value`` is a number or a 0-d tensor (both differentiable).

    >>> import minigan
    >>> masked_fill(minigan.zeros(3), minigan.tensor([True, False, True]), -1.0).tolist()
    [-1.0, 0.0, -1.0]
    """
    m = mask.data if isinstance(mask, Tensor) else _xp(x.data).asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        fits = np.broadcast_shapes(m.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {m.shape} does not broadcast to {x.shape}")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(
                f"masked_fill: value must be a number or a 0-d tensor, got {value.shape}"
            )
        value = F.astype(value, x.dtype)
    else:
        value = Tensor(_xp(x.data).asarray(value, dtype=x.dtype))
    return F.where(Tensor(m), value, x)


def _along(index: Any, dim: int) -> tuple[Any, ...]:
    """The advanced index that picks ``a[..., index[i, j, k], ...]`` along ``dim`` for every
    position (i, j, k) of ``index`` (the index behind gather / scatter)."""
    xp = _xp(index)
    nd = index.ndim
    grids = []
    for d in range(nd):
        if d == dim:
            grids.append(index)
        else:
            shape = [1] * nd
            shape[d] = index.shape[d]
            grids.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(grids)


def _check_gather(op: str, x: Tensor, dim: int, index: Tensor) -> int:
    _check_index(op, index)
    _same_device(op, x, index)
    if index.ndim != x.ndim:
        raise F.ShapeError(
            f"{op}: index must have as many dims as the input, got index {index.shape} "
            f"for input {x.shape}"
        )
    dim = _dim(dim, x.ndim, op)
    if builtins.any(i > n for d, (i, n) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ValueError(
            f"{op}: index {index.shape} is larger than the input {x.shape} outside dim {dim}"
        )
    return dim


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = x[index[i][j]][j]`` for ``dim=0`` (and likewise for other dims); the
    gradient is scattered back, adding where an index repeats."""
    dim = _check_gather("gather", x, dim, index)
    if x.ndim == 0:
        return F.getitem(x, ())
    return F.getitem(x, _along(index.data, dim))


class Scatter(Function):
    """``x`` with ``src`` written at the positions of an advanced index; inputs (x, src)."""

    saved_inputs = ()  # the index and the mask of written positions only

    def __init__(self, index: tuple[Any, ...]) -> None:
        self.index = index

    def forward(self, x, src):
        out = x.copy()
        out[self.index] = src
        self.keep = _xp(x).ones(x.shape, dtype=bool)
        self.keep[self.index] = False
        return out

    def backward(self, gy):
        gx = F.mask(gy, self.keep) if self.needs_grad[0] else None
        gsrc = F.getitem(gy, self.index) if self.needs_grad[1] else None
        return gx, gsrc


def _source(op: str, src: Any, x: Tensor, index: Tensor) -> Tensor:
    """``src`` cut to ``index``'s shape (a number becomes a constant of that shape)."""
    if not isinstance(src, Tensor):
        return Tensor(_xp(x.data).full(index.shape, src, dtype=x.dtype))
    if src.ndim != index.ndim or builtins.any(i > s for i, s in zip(index.shape, src.shape)):
        raise ValueError(f"{op}: src {src.shape} must be at least as large as index {index.shape}")
    _same_device(op, x, src)
    return F.getitem(src, tuple(slice(0, n) for n in index.shape))


def scatter(x: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None) -> Tensor:
    """A copy of ``x`` with ``out[index[i][j]][j] = src[i][j]`` (``dim=0``); ``src`` is a
    tensor or a number (``value=``). Where an index repeats, one of the writes wins."""
    dim = _check_gather("scatter", x, dim, index)
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter: give src (a tensor or a number) or value")
    return Scatter(_along(index.data, dim))(x, _source("scatter", src, x, index))


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of ``x`` with ``out[index[i][j]][j] += src[i][j]`` (``dim=0``), adding every
    write where an index repeats."""
    dim = _check_gather("scatter_add", x, dim, index)
    src = _source("scatter_add", src, x, index)
    F._check_same_dtype("scatter_add", x, src)
    return x + F.GetItemGrad(_along(index.data, dim), x.shape)(src)


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of ``x`` along ``dim`` at the positions in the 1-D ``index``."""
    _check_index("index_select", index)
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 0-D or 1-D, got shape {index.shape}")
    dim = _dim(dim, x.ndim, "index_select")
    _same_device("index_select", x, index)
    return F.getitem(x, (slice(None),) * dim + (index.data.reshape(-1),))


# --------------------------------------------------------------------------- shapes


def flip(x: Tensor, dims: int | Sequence[int]) -> Tensor:
    """Reverse the order of the entries along ``dims``."""
    flipped = {_dim(d, x.ndim, "flip") for d in ((dims,) if isinstance(dims, int) else dims)}
    return F.getitem(
        x, tuple(slice(None, None, -1) if d in flipped else slice(None) for d in range(x.ndim))
    )


class Roll(Function):
    saved_inputs = ()

    def __init__(self, shifts: tuple[int, ...], dims: tuple[int, ...]) -> None:
        self.shifts, self.dims = shifts, dims

    def forward(self, x):
        return _xp(x).roll(x, self.shifts, axis=self.dims)

    def backward(self, gy):
        return Roll(tuple(-s for s in self.shifts), self.dims)(gy)


def roll(x: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
    """Shift entries cyclically by ``shifts`` along ``dims`` (the flattened tensor when
    ``dims`` is None)."""
    if dims is None:
        if not isinstance(shifts, int):
            raise ValueError("roll: without dims, shifts must be one int")
        return F.reshape(Roll((shifts,), (0,))(F.reshape(x, (-1,))), x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    return Roll(shifts, tuple(_dim(d, x.ndim, "roll") for d in dims))(x)


def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """Tile ``x``: ``repeat(x, 2, 3)`` repeats it twice along dim 0 and thrice along dim 1
    (``Tensor.repeat``; extra leading sizes add dims)."""
    reps = _shape(sizes)
    if len(reps) < x.ndim:
        raise ValueError(
            f"repeat: {len(reps)} repeat counts for a {x.ndim}-D tensor {x.shape}; "
            f"give at least {x.ndim}"
        )
    shape = (1,) * (len(reps) - x.ndim) + x.shape
    interleaved = [n for pair in zip([1] * len(shape), shape) for n in pair]
    target = [n for pair in zip(reps, shape) for n in pair]
    y = F.broadcast_to(F.reshape(x, interleaved), target)
    return F.reshape(y, tuple(r * n for r, n in zip(reps, shape)))


def repeat_interleave(x: Tensor, repeats: Any, dim: int | None = None) -> Tensor:
    """Repeat each entry ``repeats`` times along ``dim`` (of the flattened tensor when
    ``dim`` is None); ``repeats`` is an int or one count per entry.

    >>> import minigan
    >>> repeat_interleave(minigan.tensor([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    """
    if dim is None:
        x, dim = F.reshape(x, (-1,)), 0
    dim = _dim(dim, x.ndim, "repeat_interleave")
    n = x.shape[dim] if x.ndim else 1
    if isinstance(repeats, (int, np.integer)):
        if x.ndim == 0:
            x = F.reshape(x, (1,))
        y = F.unsqueeze(x, dim + 1)
        shape = list(y.shape)
        shape[dim + 1] = int(repeats)
        return F.flatten(F.broadcast_to(y, shape), dim, dim + 1)
    counts = np.asarray(repeats.numpy() if isinstance(repeats, Tensor) else repeats).reshape(-1)
    if counts.size == 1:
        return repeat_interleave(x, int(counts[0]), dim)
    if counts.size != n or (counts < 0).any():
        raise ValueError(
            f"repeat_interleave: repeats must be {n} non-negative counts for dim {dim} of "
            f"{x.shape}, got {counts.tolist()}"
        )
    index = backend.to_device(np.repeat(np.arange(n), counts), x.device)
    return F.getitem(x, (slice(None),) * dim + (index,))


def chunk(x: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
    """Split into ``chunks`` pieces of ``ceil(n / chunks)`` along ``dim`` (the last one may
    be smaller and there may be fewer pieces, as in PyTorch)."""
    if chunks < 1:
        raise ValueError(f"chunk: chunks must be at least 1, got {chunks}")
    dim = _dim(dim, x.ndim, "chunk")
    n = x.shape[dim]
    return F.split(x, builtins.max(1, math.ceil(n / chunks)), dim) if n else [x]


def _triangle(x: Tensor, diagonal: int, upper: bool, op: str) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: expected a tensor of at least 2 dims, got shape {x.shape}")
    xp = _xp(x.data)
    rows, cols = x.shape[-2:]
    keep = (
        xp.triu(xp.ones((rows, cols), bool), diagonal)
        if upper
        else xp.tril(xp.ones((rows, cols), bool), diagonal)
    )
    zero = Tensor(xp.zeros((), dtype=x.dtype))
    return F.where(Tensor(keep), x, zero)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (entries above ``diagonal`` set to 0)."""
    return _triangle(x, diagonal, False, "tril")


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (entries below ``diagonal`` set to 0)."""
    return _triangle(x, diagonal, True, "triu")


def unflatten(x: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    dim = _dim(dim, x.ndim, "unflatten")
    sizes = tuple(int(s) for s in sizes)
    known = math.prod(s for s in sizes if s != -1)
    n = x.shape[dim]
    fits = (known and n % known == 0) if -1 in sizes else n == known
    if not fits or sizes.count(-1) > 1:
        raise ValueError(f"unflatten: cannot split dim {dim} of size {n} into {sizes} ({x.shape})")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
    return F.reshape(x, x.shape[:dim] + sizes + x.shape[dim + 1 :])


# --------------------------------------------------------------------------- einsum


def _einsum_parse(equation: str, ndims: Sequence[int]) -> tuple[list[str], str]:
    """Explicit subscripts: ``...`` replaced by unused letters, the implicit output (the
    letters seen once, in alphabetical order, after the ``...`` dims) written out."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(
            f"einsum: {equation!r} names {len(terms)} operands, but {len(ndims)} were given"
        )
    used = {c for c in eq if c.isalpha()}
    if builtins.any(not (c.isalpha() or c in ",.->") for c in eq):
        raise ValueError(f"einsum: {equation!r} may only contain letters, ',', '...' and '->'")
    free = [c for c in string.ascii_letters if c not in used]
    spans = [n - (len(t) - 3) for t, n in zip(terms, ndims) if "..." in t]
    ell = "".join(free[: builtins.max(spans, default=0)])
    subs = []
    for t, n in zip(terms, ndims):
        if "..." in t:
            t = t.replace("...", ell[len(ell) - (n - (len(t) - 3)) :])
        if len(t) != n:
            raise ValueError(f"einsum: subscripts {t!r} do not match an operand with {n} dims")
        subs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(subs)
        out = ell + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell)
        )
    return subs, out


class Einsum(Function):
    def __init__(self, subs: list[str], out: str) -> None:
        self.subs, self.out = subs, out

    def forward(self, *xs):
        if len(xs) == 2:
            product = _einsum_as_matmul(self.subs, self.out, *xs)
            if product is not None:
                return product
        return _xp(xs[0]).einsum(",".join(self.subs) + "->" + self.out, *xs, optimize=len(xs) > 2)

    def backward(self, gy):
        return tuple(
            self._grad(k, gy) if self.needs_grad[k] else None for k in range(len(self.subs))
        )

    def _grad(self, k: int, gy: Tensor) -> Tensor:
        """d out / d operand k: the einsum of the output gradient with the other operands,
        broadcast over letters only operand k has, and put on its diagonals."""
        x, sub = self.inputs[k], self.subs[k]
        others = [(s, t) for j, (s, t) in enumerate(zip(self.subs, self.inputs)) if j != k]
        avail = set(self.out).union(*(set(s) for s, _ in others))
        unique = "".join(dict.fromkeys(sub))
        size = {c: n for c, n in zip(sub, x.shape)}
        target = "".join(c for c in unique if c in avail)
        g = Einsum([self.out] + [s for s, _ in others], target)(gy, *(t for _, t in others))
        g = F.sum_to(g, tuple(size[c] for c in target))  # a size-1 dim broadcast in the forward
        g = F.reshape(g, tuple(size[c] if c in avail else 1 for c in unique))
        g = F.broadcast_to(g, tuple(size[c] for c in unique))
        if len(unique) == len(sub):
            return F.permute(g, tuple(unique.index(c) for c in sub)) if unique != sub else g
        # repeated letters (a diagonal): the first occurrence carries the data, the others
        # are new axes, and a 0/1 mask keeps the diagonal
        g = F.reshape(g, tuple(size[c] if sub.index(c) == p else 1 for p, c in enumerate(sub)))
        g = F.broadcast_to(g, x.shape)
        xp = _xp(gy.data)
        keep = xp.ones(x.shape, dtype=bool)
        for p, c in enumerate(sub):
            first = sub.index(c)
            if first != p:
                shape_a, shape_b = [1] * len(sub), [1] * len(sub)
                shape_a[first], shape_b[p] = size[c], size[c]
                ar = xp.arange(size[c])
                keep &= ar.reshape(shape_a) == ar.reshape(shape_b)
        return F.mask(g, keep)


def _einsum_as_matmul(subs: list[str], out: str, a: Any, b: Any) -> Any:
    """A two-operand einsum as one batched matrix product on the matmul kernel (as PyTorch
    does; NumPy's einsum does not use BLAS for batched contractions): letters only one
    operand has are summed first, then (batch, kept, contracted) x (batch, contracted, kept).
    None when the subscripts repeat a letter or broadcast a size-1 dim (left to einsum)."""
    sa, sb = subs
    size = {**dict(zip(sa, a.shape)), **dict(zip(sb, b.shape))}
    if len(set(sa)) < len(sa) or len(set(sb)) < len(sb):
        return None
    if builtins.any(a.shape[sa.index(c)] != b.shape[sb.index(c)] for c in set(sa) & set(sb)):
        return None
    xp = _xp(a)
    a = a.sum(axis=tuple(i for i, c in enumerate(sa) if c not in sb and c not in out))
    b = b.sum(axis=tuple(i for i, c in enumerate(sb) if c not in sa and c not in out))
    sa = "".join(c for c in sa if c in sb or c in out)
    sb = "".join(c for c in sb if c in sa or c in out)
    batch = [c for c in out if c in sa and c in sb]
    left = [c for c in out if c in sa and c not in sb]
    right = [c for c in out if c in sb and c not in sa]
    inner = [c for c in sa if c in sb and c not in out]

    def arrange(x: Any, sub: str, groups: list[list[str]]) -> Any:
        order = [sub.index(c) for group in groups for c in group]
        shape = [math.prod(size[c] for c in group) for group in groups]
        return xp.ascontiguousarray(x.transpose(order)).reshape(shape)

    product = kernels.matmul(
        arrange(a, sa, [batch, left, inner]), arrange(b, sb, [batch, inner, right])
    )
    product = product.reshape([size[c] for c in batch + left + right])
    return product.transpose([(batch + left + right).index(c) for c in out])


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation with PyTorch's (and NumPy's) notation, ``...`` and implicit
    output included; differentiable in every operand (twice, too).

    >>> import minigan
    >>> a = minigan.arange(4.0).reshape(2, 2)
    >>> einsum("ii", a), einsum("ij->ji", a).tolist()
    (tensor(3.), [[0.0, 2.0], [1.0, 3.0]])
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in operands]
    if not tensors:
        raise ValueError("einsum: expected at least one operand")
    F._check_same_dtype("einsum", *tensors)
    _same_device("einsum", *tensors)
    subs, out = _einsum_parse(equation, [t.ndim for t in tensors])
    sizes: dict[str, int] = {}
    for s, t in zip(subs, tensors):
        for c, n in zip(s, t.shape):
            if sizes.setdefault(c, n) != n and n != 1 and sizes[c] != 1:
                raise ValueError(
                    f"einsum: {equation!r}: subscript {c!r} has size {sizes[c]} and {n} "
                    f"(operand shapes {[t.shape for t in tensors]})"
                )
    if builtins.any(c not in sizes for c in out) or len(set(out)) != len(out):
        raise ValueError(f"einsum: bad output subscripts in {equation!r}")
    return Einsum(subs, out)(*tensors)


# --------------------------------------------------------------------------- reductions


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """Index of the largest entry along ``dim`` (of the flattened tensor when None); the
    first one on ties, as in PyTorch. int64, outside the graph."""
    return _arg("argmax", x, _pick_dim(dim, axis, "argmax"), keepdim)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """Index of the smallest entry along ``dim`` (of the flattened tensor when None)."""
    return _arg("argmin", x, _pick_dim(dim, axis, "argmin"), keepdim)


def _arg(op: str, x: Tensor, dim: int | None, keepdim: bool) -> Tensor:
    if x.data.size == 0:
        raise ValueError(f"{op}: expected a non-empty tensor, got shape {x.shape}")
    fn = getattr(_xp(x.data), op)
    if dim is None:
        out = fn(x.data.reshape(-1))
        out = out.reshape((1,) * x.ndim) if keepdim else out
    else:
        out = fn(x.data, axis=_dim(dim, x.ndim, op), keepdims=keepdim)
    return Tensor(_xp(x.data).asarray(out, dtype=np.int64))


class Prod(Function):
    """Product along one axis; the gradient is the product of the other entries."""

    def __init__(self, dim: int, keepdim: bool) -> None:
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        return x.prod(axis=self.dim, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        if not self.keepdim:
            gy = F.unsqueeze(gy, self.dim)
        if not is_grad_enabled():  # first order: exclusive products from both sides, O(n)
            return gy * Tensor(_products_of_others(x.data, self.dim))
        # create_graph: differentiable, O(n^2): row i of the n x n matrix is x with x_i = 1
        moved = F.unsqueeze(F.permute(x, _move_last(x.ndim, self.dim)), -2)
        n = x.shape[self.dim]
        xp = _xp(x.data)
        eye = Tensor(xp.eye(n, dtype=bool))
        others = prod(F.where(eye, Tensor(xp.ones((), x.dtype)), moved), -1)
        back = tuple(np.argsort(_move_last(x.ndim, self.dim)))
        return gy * F.permute(others, back)


def _products_of_others(a: Any, dim: int) -> Any:
    """For each entry of ``a``, the product of the other entries along ``dim`` (no division,
    so zeros are fine): exclusive running products from the left times from the right."""
    xp = _xp(a)

    def along(sl: slice) -> tuple[slice, ...]:
        return (slice(None),) * dim + (sl,)

    ones = xp.ones_like(a[along(slice(0, 1))])
    left = xp.cumprod(xp.concatenate([ones, a[along(slice(None, -1))]], dim), axis=dim)
    flipped = a[along(slice(None, 0, -1))]  # a reversed along dim, without its first entry
    right = xp.cumprod(xp.concatenate([ones, flipped], dim), axis=dim)[along(slice(None, None, -1))]
    return left * right


def _move_last(ndim: int, dim: int) -> tuple[int, ...]:
    return tuple(d for d in range(ndim) if d != dim) + (dim,)


def prod(
    x: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None, axis: Any = None
) -> Tensor:
    """Product of the entries along ``dim`` (of all entries when None); differentiable
    (twice, too) including at zeros. Integer and bool tensors give int64, as in PyTorch."""
    dim = _pick_dim(dim, axis, "prod")
    if dtype is not None:
        x = F.astype(x, dtype)
    elif x.dtype.kind in "iub":
        x = F.astype(x, np.int64)
    if dim is None:
        out = Prod(0, False)(F.reshape(x, (-1,)))
        return F.reshape(out, (1,) * x.ndim) if keepdim else out
    if x.ndim == 0:
        return x
    return Prod(_dim(dim, x.ndim, "prod"), keepdim)(x)


def any(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """Whether any entry along ``dim`` (int, tuple or None for all) is non-zero; bool."""
    dims = F._dims(_pick_dim(dim, axis, "any"), x.ndim)
    return Tensor(_xp(x.data).any(x.data, axis=dims, keepdims=keepdim))


def all(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
    """Whether every entry along ``dim`` (int, tuple or None for all) is non-zero; bool."""
    dims = F._dims(_pick_dim(dim, axis, "all"), x.ndim)
    return Tensor(_xp(x.data).all(x.data, axis=dims, keepdims=keepdim))


class SortResult(NamedTuple):
    """``(values, indices)``, as ``torch.sort`` and ``torch.topk`` return them."""

    values: Tensor
    indices: Tensor


def _order(x: Tensor, dim: int, descending: bool) -> Any:
    """Stable argsort along ``dim``; descending keeps equal entries in their order (and,
    like PyTorch, puts NaN first)."""
    xp = _xp(x.data)
    key = x.data
    if descending:
        key = -(key.astype(np.int64) if key.dtype.kind in "ub" else key)
        if key.dtype.kind == "f":  # NaN is the largest: first when descending
            key = xp.where(xp.isnan(key), -xp.inf, key)
    return xp.argsort(key, axis=dim, kind="stable")


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Indices that sort ``x`` along ``dim`` (equal entries keep their order: the sort is
    always stable). int64, outside the graph."""
    if x.ndim == 0:
        return Tensor(_xp(x.data).zeros((), np.int64))
    order = _order(x, _dim(dim, x.ndim, "argsort"), descending)
    return Tensor(order.astype(np.int64, copy=False))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
    """``(values, indices)`` of ``x`` sorted along ``dim`` (stable); the values are
    differentiable (the gradient goes back to where each value came from)."""
    indices = argsort(x, dim, descending)
    if x.ndim == 0:
        return SortResult(F.getitem(x, ()), indices)
    return SortResult(gather(x, dim, indices), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:
    """The ``k`` largest (``largest=False``: smallest) entries along ``dim`` and their
    indices, in sorted order; the values are differentiable."""
    dim = _dim(dim, x.ndim, "topk")
    n = x.shape[dim] if x.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {n} ({x.shape})")
    if x.ndim == 0:
        return sort(x)
    order = _order(x, dim, largest)
    indices = Tensor(_xp(x.data).take(order, _xp(x.data).arange(k), axis=dim).astype(np.int64))
    return SortResult(gather(x, dim, indices), indices)


class CumSum(Function):
    saved_inputs = ()

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        return _xp(x).cumsum(x, axis=self.dim)

    def backward(self, gy):  # the sum of gy from each position to the end
        return flip(cumsum(flip(gy, self.dim), self.dim), self.dim)


def cumsum(x: Tensor, dim: int | None = None, *, dtype: Any = None, axis: Any = None) -> Tensor:
    """Running sum along ``dim``; integer and bool tensors give int64, as in PyTorch."""
    dim = _pick_dim(dim, axis, "cumsum")
    if dim is None:
        raise TypeError("cumsum: missing the dim argument")
    if dtype is not None:
        x = F.astype(x, dtype)
    elif x.dtype.kind in "iub":
        x = F.astype(x, np.int64)
    if x.ndim == 0:
        return x
    return CumSum(_dim(dim, x.ndim, "cumsum"))(x)
