"""Differentiable operations, each with its forward and backward side by side.

Every op is a :class:`~minigan.tensor.Function` (or a short composition of them). Backward
passes are written with these same ops, so every op can be differentiated again.
Names and signatures follow ``torch`` / ``torch.nn.functional``.

>>> import minigan
>>> import minigan.functional as F
>>> x = minigan.tensor([[-1.0, 2.0]], requires_grad=True)
>>> F.leaky_relu(x, 0.1)
tensor([[-0.1,  2. ]], requires_grad=True)

Must not import ``nn``, ``optim``, the training modules or any plugin; it reaches the
kernels only through the dispatch functions of :mod:`minigan.kernels`.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

from minigan import backend, kernels
from minigan.random import generator, stream_offset
from minigan.tensor import Function, Tensor, is_grad_enabled

Dims = int | Sequence[int] | None


# --------------------------------------------------------------------------- helpers


def _xp(a: Any) -> Any:
    return backend.get_array_module(a)


def _as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """Wrap ``x`` in a Tensor; Python scalars take ``like``'s dtype (no float64 upcast)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)) and like.dtype.kind == "f":
        return Tensor(_xp(like.data).full((), x, dtype=like.dtype))  # on a GPU: no copy in
    return Tensor(np.asarray(x) if like is None else _xp(like.data).asarray(x))


# ----- type promotion: PyTorch's rule, used by every op with several operands

DEFAULT_FLOAT = np.dtype(np.float32)  # torch.get_default_dtype()


def _kind_rank(dtype: np.dtype) -> int:
    return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[dtype.kind]


def promote_types(a: Any, b: Any) -> np.dtype:
    """``torch.promote_types``: NumPy's table, except that an integer or bool meeting a
    floating type gives that floating type (int64 with float32 is float32, not float64)."""
    a, b = np.dtype(a), np.dtype(b)
    ra, rb = _kind_rank(a), _kind_rank(b)
    if ra == rb or (ra >= 2 and rb >= 2):
        return np.promote_types(a, b)
    return a if ra > rb else b


def _category_dtype(operands: list[Any]) -> np.dtype | None:
    result = None
    for d in operands:
        result = d if result is None else promote_types(result, d)
    return result


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """A lower-priority category changes the result only if it is of a higher kind."""
    if higher is None or lower is None:
        return higher if lower is None else lower
    if _kind_rank(higher) >= 2 and _kind_rank(higher) >= _kind_rank(lower):
        return higher
    if higher.kind == "b" or _kind_rank(lower) > _kind_rank(higher):
        return promote_types(higher, lower)
    return higher


def result_type(*operands: Any) -> np.dtype:
    """The dtype of an op on ``operands``, by PyTorch's rule: tensors with dimensions decide;
    0-d tensors and then Python numbers count only when of a higher kind (bool < integer <
    floating), and a Python float counts as the default dtype float32. So int32 + 0.5,
    int32 + float32 tensor and int64 / int64 (true division, see :func:`div`) are float32;
    float32 + float64 is float64, for every op (matmul and conv2d included).

    >>> result_type(Tensor(np.array([1, 2], np.int32)), 0.5)
    dtype('float32')
    >>> result_type(Tensor(np.ones(2, np.float32)), Tensor(np.array(2.0)))  # a 0-d float64
    dtype('float32')
    """
    dims: list[np.dtype] = []
    zero_dims: list[np.dtype] = []
    numbers: list[np.dtype] = []
    for x in operands:
        if isinstance(x, (Tensor, np.ndarray)) or backend.is_cupy_array(x):
            (dims if x.ndim else zero_dims).append(np.dtype(x.dtype))
        elif isinstance(x, (bool, np.bool_)):
            numbers.append(np.dtype(bool))
        elif isinstance(x, (int, np.integer)):
            numbers.append(np.dtype(np.int64))
        elif isinstance(x, (float, np.floating)):
            numbers.append(DEFAULT_FLOAT)
        elif isinstance(x, (complex, np.complexfloating)):
            numbers.append(np.dtype(np.complex64))
        else:
            dims.append(np.asarray(x).dtype)
    lower = _combine(_category_dtype(zero_dims), _category_dtype(numbers))
    result = _combine(_category_dtype(dims), lower)
    assert result is not None, "result_type needs at least one operand"
    return result


def _promoted(x: Any, dtype: np.dtype, like: Tensor) -> Tensor:
    """Operand ``x`` as a Tensor of ``dtype`` on ``like``'s device (numbers: no host copy)."""
    if isinstance(x, Tensor):
        return astype(x, dtype)
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and dtype.kind in "iu":
        # a Python int wraps into a narrower integer dtype, as in PyTorch (uint8 - 1: 255s)
        x = np.asarray(x).astype(dtype)
    if isinstance(x, (bool, int, float, complex, np.number, np.bool_)):
        return Tensor(_xp(like.data).full((), x, dtype=dtype))
    return Tensor(_xp(like.data).asarray(x, dtype=dtype))


def _floating(x: Tensor) -> Tensor:
    """Integer and bool tensors as the default float dtype (for exp, log, sqrt, …)."""
    return astype(x, DEFAULT_FLOAT) if x.dtype.kind in "biu" else x


def _reciprocal(n: int) -> float:
    """``1 / n`` for a count, inf for ``n <= 0`` (so an empty mean is 0 · inf = nan)."""
    return 1.0 / n if n > 0 else math.inf


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(i) for i in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t[0], t[1]


class DimensionError(IndexError):
    """An out-of-range dimension (an IndexError, as in PyTorch)."""


class ShapeError(ValueError, RuntimeError):
    """Shapes that do not fit an op: a ValueError, and a RuntimeError as PyTorch raises."""


class TargetIndexError(ValueError, IndexError):
    """A class index out of range in a loss: a ValueError, and an IndexError as in PyTorch."""


def canonical_dim(dim: int, ndim: int, op: str = "dim") -> int:
    """``dim`` counted from 0 for a tensor with ``ndim`` dims (negative dims count from the
    end). Out of range raises an IndexError with PyTorch's message; as in PyTorch a 0-d
    tensor accepts 0 and -1. Every op that takes a dim goes through this function (ops
    that insert a dim, such as unsqueeze and stack, pass ``ndim + 1``).

    >>> canonical_dim(-1, 3)
    2
    >>> try:
    ...     canonical_dim(3, 3, "sum")
    ... except IndexError as e:
    ...     print(e)
    sum: Dimension out of range (expected to be in range of [-3, 2], but got 3)
    """
    n = builtins.max(ndim, 1)
    d = operator.index(dim)
    if not -n <= d < n:
        raise DimensionError(
            f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
            f"but got {dim})"
        )
    return d % n


def canonical_dims(dim: Dims, ndim: int, op: str = "dim") -> tuple[int, ...]:
    """Reduction dims as sorted-free, checked, non-negative indices: None (or ``()``) means
    every dim; a repeated dim raises a RuntimeError and a 0-d tensor has no dim to reduce
    (it accepts 0 and -1, as in PyTorch)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if not isinstance(dim, Sequence) else tuple(dim)
    if not dims:
        return tuple(range(ndim))
    out = tuple(canonical_dim(d, ndim, op) for d in dims)
    if len(set(out)) != len(out):
        twice = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"{op}: dim {twice} appears multiple times in the list of dims")
    return out if ndim else ()


def _dims(dim: Dims, ndim: int, op: str = "dim") -> tuple[int, ...]:
    return canonical_dims(dim, ndim, op)


def _check_same_dtype(op: str, *tensors: Tensor) -> None:
    dtypes = [t.dtype for t in tensors]
    if builtins.any(d != dtypes[0] for d in dtypes):
        shown = ", ".join(f"{t.shape} {t.dtype}" for t in tensors)
        raise TypeError(f"{op}: tensors must have the same dtype, got {shown}")


def _binary_shapes(op: str, a: Tensor, b: Tensor) -> None:
    if a.data.shape == b.data.shape:  # the common case: np.broadcast_shapes costs ~3 µs
        return
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast") from None


# --------------------------------------------------------------------------- elementwise


class Add(Function):
    saved_inputs = ()

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    saved_inputs = ()

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, -gy


def _saved_crosswise(fn: Function) -> tuple[int, ...]:
    """For a product ``a * b`` (or ``a @ b``): ``b`` is needed for ``a``'s gradient, ``a`` for
    ``b``'s — PyTorch saves (and version-checks) only those."""
    a, b = fn.inputs
    return tuple(i for i, other in ((0, b), (1, a)) if other.requires_grad)


class Mul(Function):
    saved_indices = _saved_crosswise

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs  # a is saved only when b needs a gradient, and b likewise
        return (gy * b if self.needs_grad[0] else None), (gy * a if self.needs_grad[1] else None)


class Div(Function):
    def saved_indices(self) -> tuple[int, ...]:
        return (0, 1) if self.inputs[1].requires_grad else (1,)

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs  # a is saved only when b needs a gradient
        ga = gy / b
        return ga, (-ga * a / b if self.needs_grad[1] else None)


class Neg(Function):
    saved_inputs = ()

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, x):
        if x.dtype.kind == "f" and self.c in (0.5, -0.5):  # PyTorch's sqrt / rsqrt paths:
            root = _xp(x).sqrt(x)  # (-inf) ** 0.5 is nan and (-0) ** 0.5 is -0, as there
            return root if self.c == 0.5 else 1 / root
        return (x**self.c).astype(x.dtype, copy=False)  # bool ** bool: bool, not int8

    def backward(self, gy):
        (x,) = self.inputs
        if self.c == 0:  # as PyTorch: 0, not 0 · x**-1 (nan at x = 0)
            return Tensor(_xp(x.data).zeros(x.shape, dtype=gy.dtype))
        return gy * self.c * x ** (self.c - 1)


class Pow(Function):
    """``x ** y`` with a tensor exponent, elementwise (negative bases with integral
    exponents included). Gradients as PyTorch's: ``y·x**(y-1)`` (0 where ``y == 0``) and
    ``x**y·log x`` (0 where ``x == 0`` and ``y >= 0``)."""

    saves_output = True

    def forward(self, x, y):
        return _xp(x).power(x, y).astype(x.dtype, copy=False)

    def backward(self, gy):
        x, y = self.inputs
        gx = gyy = None
        if self.needs_grad[0]:
            gx = where(y.data == 0, 0.0, gy * y * x ** (y - 1))
        if self.needs_grad[1]:
            gyy = where((x.data == 0) & (y.data >= 0), 0.0, gy * self.output() * log(x))
        return gx, gyy


class Exp(Function):
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        return _xp(x).exp(x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    def forward(self, x):
        return _xp(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        return _xp(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())


class Abs(Function):
    def forward(self, x):
        return _xp(x).abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor(_xp(x).sign(x))


class Mask(Function):
    """``x * mask`` for a constant mask (the backward of relu, clip, dropout, …)."""

    saved_inputs = ()

    def __init__(self, mask: Any) -> None:
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return mask(gy, self.mask)


def mask(x: Tensor, m: Any) -> Tensor:
    """Multiply by a constant array (cast to ``x``'s dtype)."""
    return Mask(m.astype(x.dtype, copy=False))(x)


class Where(Function):
    saved_inputs = ()

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def forward(self, a, b):
        return _xp(a).where(self.cond, a, b)

    def backward(self, gy):
        c = self.cond
        return mask(gy, c), mask(gy, ~c)


def add(a: Any, b: Any) -> Tensor:
    a, b = _operands(a, b)
    _binary_shapes("add", a, b)
    return Add()(a, b)


def sub(a: Any, b: Any) -> Tensor:
    a, b = _operands(a, b)
    _binary_shapes("sub", a, b)
    return Sub()(a, b)


def mul(a: Any, b: Any) -> Tensor:
    a, b = _operands(a, b)
    _binary_shapes("mul", a, b)
    return Mul()(a, b)


def div(a: Any, b: Any) -> Tensor:
    """True division: integer operands give the default float dtype, as in PyTorch."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype == DEFAULT_FLOAT:
        _binary_shapes("div", a, b)
        return Div()(a, b)  # the common case, kept fast
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    dtype = result_type(a, b)
    if dtype.kind in "biu":  # straight to float: uint8 / 300 divides by 300, not by 44
        dtype = DEFAULT_FLOAT
    if like is None:
        a, b = _operands(a, b)
        a, b = astype(a, dtype), astype(b, dtype)
    else:
        a, b = _promoted(a, dtype, like), _promoted(b, dtype, like)
    _binary_shapes("div", a, b)
    return Div()(a, b)


def _operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of their common dtype (:func:`result_type`)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        return _as_tensor(a), _as_tensor(b)
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype:
        return a, b  # the common case, kept fast
    dtype = result_type(a, b)
    return _promoted(a, dtype, like), _promoted(b, dtype, like)


def neg(x: Tensor) -> Tensor:
    return Neg()(x)


def pow(x: Any, exponent: Any) -> Tensor:
    """``x ** exponent`` elementwise, with PyTorch's values and gradients at the edges
    (``x ** 0 == 1`` for every x, negative bases with integral exponents, ``0 ** 0 == 1``).

    >>> import minigan
    >>> minigan.tensor([-2.0, -2.0, 0.0]) ** minigan.tensor([2.0, 3.0, 0.0])
    tensor([ 4., -8.,  1.])
    """
    if isinstance(exponent, Tensor):
        x, exponent = _operands(x, exponent)
        _binary_shapes("pow", x, exponent)
        return Pow()(x, exponent)
    return PowScalar(exponent)(astype(x, result_type(x, exponent)))


def exp(x: Tensor) -> Tensor:
    return Exp()(_floating(x))


def log(x: Tensor) -> Tensor:
    return Log()(_floating(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt()(_floating(x))


def abs(x: Tensor) -> Tensor:
    return Abs()(x)


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """Clamp to ``[min, max]``; the gradient passes where ``min <= x <= max`` (as in PyTorch)."""
    d = x.data
    inside = _xp(d).ones(d.shape, dtype=bool)
    if min is not None:
        inside &= d >= min
    if max is not None:
        inside &= d <= max
    return Where(inside)(x, _as_tensor(_xp(d).clip(d, min, max), x))


clamp = clip


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``a if condition else b`` (two scalars take the condition's device)."""
    c = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(_xp(c).asarray(a))  # two scalars: on the condition's device
    a, b = _operands(a, b)
    c = _xp(a.data).asarray(c, dtype=bool)
    shape = np.broadcast_shapes(c.shape, a.shape, b.shape)
    return Where(_xp(c).broadcast_to(c, shape))(broadcast_to(a, shape), broadcast_to(b, shape))


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; on ties the gradient is split evenly (as in PyTorch)."""
    return _extremum(a, b, np.greater, "maximum")


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; on ties the gradient is split evenly (as in PyTorch)."""
    return _extremum(a, b, np.less, "minimum")


class Select(Function):
    """``a`` where ``weight == 1``, ``b`` where ``weight == 0`` and either (they are equal)
    where ``weight == 0.5``; the gradient is split as ``weight``, ``1 - weight``."""

    saved_inputs = ()

    def __init__(self, weight: Any) -> None:
        self.weight = weight

    def forward(self, a, b):
        return _xp(a).where(self.weight > 0, a, b)  # not a·w + b·(1-w): inf·0 would be nan

    def backward(self, gy):
        return mask(gy, self.weight), mask(gy, 1 - self.weight)


def _extremum(a: Any, b: Any, better: Any, op: str) -> Tensor:
    a, b = _operands(a, b)
    _binary_shapes(op, a, b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = broadcast_to(a, shape), broadcast_to(b, shape)
    wins = better(a.data, b.data).astype(a.dtype)
    ties = (a.data == b.data).astype(a.dtype) * a.dtype.type(0.5)
    return Select(wins + ties)(a, b)


# --------------------------------------------------------------------------- reductions


class Sum(Function):
    saved_inputs = ()

    def __init__(self, dims: tuple[int, ...], keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        if not self.keepdim:
            gy = reshape(gy, tuple(1 if i in self.dims else n for i, n in enumerate(self.shape)))
        return broadcast_to(gy, self.shape)


class Amax(Function):
    """Maximum over ``dims``; the gradient is shared evenly among tied maxima."""

    pick = "max"

    def __init__(self, dims: tuple[int, ...], keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        return getattr(x, self.pick)(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0].data
        top = getattr(x, self.pick)(axis=self.dims, keepdims=True)
        hits = (x == top).astype(x.dtype)
        hits /= hits.sum(axis=self.dims, keepdims=True)
        if not self.keepdim:
            gy = reshape(gy, top.shape)
        return mask(broadcast_to(gy, x.shape), hits)


class Amin(Amax):
    """Minimum over ``dims`` (computed directly: ``-max(-x)`` wraps unsigned integers and
    fails on booleans); the gradient is shared evenly among tied minima."""

    pick = "min"


def sum(x: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    return Sum(canonical_dims(dim, x.ndim, "sum"), keepdim)(x)


def mean(x: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    dims = canonical_dims(dim, x.ndim, "mean")
    count = math.prod(x.shape[d] for d in dims)
    return sum(x, dims, keepdim) * _reciprocal(count)  # empty: 0 · inf = nan, as PyTorch


def var(x: Tensor, dim: Dims = None, correction: int = 1, keepdim: bool = False) -> Tensor:
    """Variance (two-pass: mean first, then squared deviations); ``correction=1`` is unbiased.
    Divides by ``N - correction``; where that is ≤ 0 the result is inf (nan when every
    deviation is 0, e.g. the ``std`` of one element), as in PyTorch."""
    dims = canonical_dims(dim, x.ndim, "var")
    count = math.prod(x.shape[d] for d in dims)
    centred = x - mean(x, dims, keepdim=True)
    return sum(centred * centred, dims, keepdim) * _reciprocal(count - correction)


class StdRoot(Sqrt):
    """The square root that ends ``std``: as PyTorch's std backward, the gradient is 0 where
    the std is 0 (a constant input), not ``0 / 0 = nan``."""

    def backward(self, gy):
        y = self.output()
        with np.errstate(divide="ignore"):
            return where(y.data == 0, 0.0, gy / (2 * y))


def std(x: Tensor, dim: Dims = None, correction: int = 1, keepdim: bool = False) -> Tensor:
    return StdRoot()(var(x, dim, correction, keepdim))


def max(x: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Largest value over ``dim`` (values only, like ``torch.amax``)."""
    return Amax(canonical_dims(dim, x.ndim, "max"), keepdim)(x)


def min(x: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Smallest value over ``dim`` (values only, like ``torch.amin``)."""
    return Amin(canonical_dims(dim, x.ndim, "min"), keepdim)(x)


amax, amin = max, min


def logsumexp(x: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` computed without overflow."""
    dims = canonical_dims(dim, x.ndim, "logsumexp")
    top = x.data.max(axis=dims, keepdims=True)
    top = Tensor(_xp(top).where(_xp(top).isinf(top), 0, top))  # ±inf maxima: no inf - inf
    out = log(sum(exp(x - top), dims, keepdim=True)) + top
    return out if keepdim else squeeze(out, dims)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    # (x - max) - log(sum(exp(x - max))): no large ``max`` is added back and subtracted
    dims = canonical_dims(dim, x.ndim, "log_softmax")  # () for a 0-d tensor
    shifted = x - Tensor(x.data.max(axis=dims, keepdims=True))
    return shifted - log(sum(exp(shifted), dims, keepdim=True))


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return exp(log_softmax(x, dim))


# --------------------------------------------------------------------------- matmul


class MatMul(Function):
    saved_indices = _saved_crosswise

    def forward(self, a, b):
        return kernels.matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = matmul(gy, transpose(b, -1, -2)) if self.needs_grad[0] else None
        gb = matmul(transpose(a, -1, -2), gy) if self.needs_grad[1] else None
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules (1-D operands, broadcast batch dimensions)."""
    a, b = _operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: both operands need at least 1 dimension, got {a.shape}, {b.shape}"
        )
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != k_b:  # checked before 1-D operands are reshaped: the user's shapes
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} ≠ {k_b})"
        )
    if a.ndim == 1 and b.ndim == 1:
        return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, -1)), ())
    if a.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    return MatMul()(a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features)."""
    if x.shape[-1:] != weight.shape[1:]:
        raise ShapeError(
            f"linear: input has {x.shape[-1] if x.ndim else 0} features, weight expects "
            f"{weight.shape[1]}; input shape {x.shape}, weight shape {weight.shape}"
        )
    y = matmul(x, transpose(weight, 0, 1))
    return y if bias is None else y + bias


# --------------------------------------------------------------------------- shapes


class Reshape(Function):
    saved_inputs = ()
    is_view = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)


class Permute(Function):
    saved_inputs = ()
    is_view = True

    def __init__(self, dims: tuple[int, ...]) -> None:
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        return permute(gy, tuple(np.argsort(self.dims)))


class BroadcastTo(Function):
    saved_inputs = ()
    is_view = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return _xp(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    """Sum a broadcast result back down to ``shape`` (the adjoint of broadcast_to)."""

    saved_inputs = ()
    is_view = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1
        )
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


class GetItem(Function):
    saved_inputs = ()
    is_view = True

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.inputs[0].shape)(gy)


class GetItemGrad(Function):
    """Scatter-add ``gy`` into zeros of the input's shape (the adjoint of indexing)."""

    saved_inputs = ()

    def __init__(self, index: Any, shape: tuple[int, ...]) -> None:
        self.index, self.shape = index, shape

    def forward(self, gy):
        xp = _xp(gy)
        gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy  # basic slices never repeat an element
        else:
            xp.add.at(gx, self.index, gy)
        return gx

    def backward(self, ggx):
        return getitem(ggx, self.index)


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return builtins.all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


class Concatenate(Function):
    saved_inputs = ()

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs):
        return _xp(xs[0]).concatenate(xs, axis=self.dim)

    def backward(self, gy):
        bounds = np.cumsum([0] + [int(x.shape[self.dim]) for x in self.inputs])
        lead = (slice(None),) * self.dim
        return tuple(getitem(gy, lead + (slice(s, e),)) for s, e in zip(bounds[:-1], bounds[1:]))


class Pad(Function):
    saved_inputs = ()

    def __init__(self, widths: tuple[tuple[int, int], ...], value: float) -> None:
        self.widths, self.value = widths, value

    def forward(self, x):
        return _xp(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        return getitem(gy, tuple(slice(lo, n - hi) for (lo, hi), n in zip(self.widths, gy.shape)))


class AsType(Function):
    saved_inputs = ()

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return astype(gy, self.in_dtype)


class ToDevice(Function):
    saved_inputs = ()

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.in_device)


def reshape(x: Tensor, shape: int | Sequence[int]) -> Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    try:
        target = _resolve_shape(x, shape)
    except ValueError:
        raise ShapeError(
            f"reshape: cannot reshape a tensor of shape {x.shape} to {shape}"
        ) from None
    return x if target == x.shape else Reshape(target)(x)


def _resolve_shape(x: Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Fill in a -1 and check the element count."""
    size = x.data.size
    known = math.prod(n for n in shape if n != -1)
    if shape.count(-1) > 1 or (-1 in shape and (known == 0 or size % known)):
        raise ValueError("bad -1")
    target = tuple(size // known if n == -1 else n for n in shape)
    if math.prod(target) != size:
        raise ValueError("size mismatch")
    return target


def permute(x: Tensor, dims: Sequence[int]) -> Tensor:
    if len(dims) != x.ndim:
        raise ShapeError(f"permute: {tuple(dims)} has {len(dims)} dims, the tensor {x.ndim}")
    dims = tuple(canonical_dim(d, x.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ShapeError(f"permute: {dims} is not a permutation of the {x.ndim} dims of {x.shape}")
    return Permute(dims)(x)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    dims = list(range(x.ndim))
    dim0, dim1 = canonical_dim(dim0, x.ndim, "transpose"), canonical_dim(dim1, x.ndim, "transpose")
    if x.ndim == 0:
        return x
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute(tuple(dims))(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    s, e = canonical_dim(start_dim, x.ndim, "flatten"), canonical_dim(end_dim, x.ndim, "flatten")
    if s > e:
        raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    dim = canonical_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x: Tensor, dim: Dims = None) -> Tensor:
    if dim is None:
        dims = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        dims = set(canonical_dims(dim, x.ndim, "squeeze"))
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return BroadcastTo(shape)(x)


def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``x`` down to ``shape`` (undoing broadcasting)."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape)(x)


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` for basic and advanced (integer/boolean array) indices, with PyTorch's
    placement of the indexed dims: integers select first, then the index arrays follow
    NumPy's rule (their dims stay in place when the arrays are adjacent, else go first).
    So on shape (2, 3, 4) ``x[0, :, [0, 2]]`` has shape (3, 2), as in PyTorch (NumPy: (2, 3)).
    """
    index = _expand_ellipsis(_raw_index(index, x.device), x.ndim)
    first, then = _torch_index(index)
    if then is not None:
        x = GetItem(first)(x)
        index = then
    return GetItem(index)(x)


def _expand_ellipsis(index: Any, ndim: int) -> Any:
    """With index arrays, ``...`` as the slices it stands for: an ellipsis of no dims then
    separates nothing, so arrays on either side of it stay adjacent, as in PyTorch (NumPy
    moves their dims first)."""
    if not isinstance(index, tuple) or not builtins.any(map(_is_index_array, index)):
        return index
    at = next((k for k, i in enumerate(index) if i is Ellipsis), None)
    if at is None:
        return index
    used = builtins.sum(_dims_indexed(i) for i in index if i is not Ellipsis)
    return index[:at] + (slice(None),) * (ndim - used) + index[at + 1 :]


def _dims_indexed(i: Any) -> int:
    """How many of the input's dims index item ``i`` consumes: a boolean mask its ndim (a
    Python or 0-d bool none: it adds a dim, as ``None`` does), anything else one."""
    if i is None or isinstance(i, (bool, np.bool_)):
        return 0
    if (isinstance(i, np.ndarray) or backend.is_cupy_array(i)) and i.dtype.kind == "b":
        return i.ndim
    return 1


def _is_index_array(i: Any) -> bool:
    return (isinstance(i, np.ndarray) or backend.is_cupy_array(i)) and i.ndim > 0


def _is_index_int(i: Any) -> bool:
    if isinstance(i, (bool, np.bool_)):
        return False
    if isinstance(i, (int, np.integer)):
        return True
    array = isinstance(i, np.ndarray) or backend.is_cupy_array(i)
    return array and i.ndim == 0 and i.dtype.kind in "iu"


def _torch_index(index: Any) -> tuple[Any, Any]:
    """Split an index that mixes integers (or 0-d integer tensors) with index arrays into
    ``(selections, rest)``: the integers (with the slices and Nones) applied first, then the
    arrays. NumPy would broadcast the integers with the arrays, which moves the result's
    dims. ``(index, None)`` when no split is needed (NumPy and PyTorch agree)."""
    items = index if isinstance(index, tuple) else (index,)
    if not builtins.any(map(_is_index_array, items)) or not builtins.any(map(_is_index_int, items)):
        return index, None
    first: list[Any] = []
    then: list[Any] = []
    for i in items:
        if _is_index_int(i):
            first.append(int(i))
        elif _is_index_array(i):
            first.extend([slice(None)] * (i.ndim if i.dtype.kind == "b" else 1))
            then.append(i)
        elif i is Ellipsis:
            first.append(i)
            then.append(i)
        else:  # a slice or None: applied first; its dim is then taken whole
            first.append(i)
            then.append(slice(None))
    return tuple(first), tuple(then)


def _raw_index(index: Any, device: str) -> Any:
    """Tensors and lists in ``index`` as arrays on ``device``: index arrays go to the data."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i, device) for i in index)
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, list):
        index = np.asarray(index)
        if index.size == 0:  # [] selects nothing (NumPy would read it as a float array)
            index = index.astype(np.int64)
    if isinstance(index, np.ndarray) or backend.is_cupy_array(index):
        return backend.to_device(index, device)
    return index  # ints, slices, None, Ellipsis and NumPy integer scalars stay basic indices


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: expected at least one tensor")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(
                f"cat: zero-dimensional tensor (at position {i}) cannot be concatenated"
            )
    dim = canonical_dim(dim, tensors[0].ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or builtins.any(
            a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != dim
        ):
            raise ShapeError(
                f"cat: shapes {tensors[0].shape} and {t.shape} differ outside dim {dim}"
            )
    return Concatenate(dim)(*tensors)


concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack along a new ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack: expected a non-empty list of tensors")
    if builtins.any(t.shape != tensors[0].shape for t in tensors):
        raise ShapeError(f"stack: all shapes must be equal, got {[t.shape for t in tensors]}")
    dim = canonical_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> list[Tensor]:
    """Split into chunks of ``split_size`` (or of the listed sizes) along ``dim``."""
    if x.ndim == 0:
        raise ShapeError("split: expected a tensor with at least 1 dimension, got a 0-d tensor")
    dim = canonical_dim(dim, x.ndim, "split")
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} do not add up to {n} (dim {dim} of {x.shape})")
    lead = (slice(None),) * dim
    starts = np.cumsum([0] + sizes)
    return [getitem(x, lead + (slice(s, s + k),)) for s, k in zip(starts, sizes)]


def pad(
    x: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> Tensor:
    """Pad (or, with negative widths, crop) ``x`` as ``torch.nn.functional.pad``: ``pad`` runs
    from the last dim backwards, ``(left, right, top, bottom, …)``; ``mode`` is ``"constant"``
    (``value``, default 0), ``"reflect"``, ``"replicate"`` or ``"circular"``.

    >>> import minigan
    >>> pad(minigan.tensor([[0.0, 1.0, 2.0]]), (2, 1), mode="reflect")
    tensor([[2., 1., 0., 1., 2., 1.]])
    """
    if isinstance(mode, (int, float)):  # pad(x, widths, value): the older positional form
        mode, value = "constant", float(mode)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {tuple(pad)} needs an even length ≤ 2·ndim for shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    for d, (lo, hi) in enumerate(widths):
        if x.shape[d] + lo + hi < 0:
            raise ShapeError(
                f"pad: widths {(lo, hi)} leave a negative size of dim {d} of {x.shape}"
            )
    if mode == "constant":
        crop = tuple(slice(builtins.max(-lo, 0), n - builtins.max(-hi, 0))
                     for (lo, hi), n in zip(widths, x.shape))
        if builtins.any(lo < 0 or hi < 0 for lo, hi in widths):
            x = getitem(x, crop)
        grow = tuple((builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in widths)
        if builtins.any(lo or hi for lo, hi in grow):
            x = Pad(grow, 0.0 if value is None else float(value))(x)
        return x
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    if value:
        raise ValueError(f"pad: a padding value applies to mode='constant' only, not {mode!r}")
    if x.ndim - len(pad) // 2 not in (1, 2):  # PyTorch's rule: (C, …) or (N, C, …) stay
        raise ValueError(
            f"pad: mode {mode!r} pads the last {x.ndim - 2} or {x.ndim - 1} dims of an input "
            f"of shape {x.shape} (one or two leading dims kept), got {tuple(pad)}"
        )
    for d, (lo, hi) in enumerate(widths):
        if lo or hi:
            x = PadIndex(_pad_index(mode, x.shape[d], lo, hi, d), d)(x)
    return x


def _pad_index(mode: str, n: int, lo: int, hi: int, dim: int) -> np.ndarray:
    """Source index along one dim for each output position of a non-constant pad (PyTorch's
    rules: reflect and replicate index the uncropped input, circular wraps the cropped one)."""
    if mode == "circular":
        start, stop = builtins.max(-lo, 0), n - builtins.max(-hi, 0)
        m = stop - start
        if builtins.max(lo, hi) > m:
            raise ValueError(
                f"pad: circular padding {(lo, hi)} of dim {dim} must be at most its size {m}"
            )
        left = builtins.max(lo, 0)
        return start + (np.arange(m + left + builtins.max(hi, 0)) - left) % m
    u = np.arange(n + lo + hi) - lo
    if mode == "replicate":
        return np.clip(u, 0, n - 1)
    if builtins.max(lo, hi) >= n:
        raise ValueError(
            f"pad: reflect padding {(lo, hi)} of dim {dim} must be smaller than its size {n}"
        )
    period = 2 * (n - 1) if n > 1 else 1
    u = np.abs(u) % period
    return np.where(u >= n, period - u, u)


class PadIndex(Function):
    """Gather along ``dim`` at fixed indices (a reflect/replicate/circular pad): the forward
    is ``take``, the backward scatter-adds into the input's shape (:class:`IndexAdd`)."""

    saved_inputs = ()  # the backward needs only the indices

    def __init__(self, index: np.ndarray, dim: int) -> None:
        self.index, self.dim = index, dim

    def forward(self, x):
        self.n = x.shape[self.dim]
        return _xp(x).take(x, backend.to_device(self.index, backend.device_of(x)), axis=self.dim)

    def backward(self, gy):
        return IndexAdd(self.index, self.dim, self.n)(gy)


class IndexAdd(Function):
    """``out[..., index[t], ...] += g[..., t, ...]`` along ``dim`` into ``n`` zeros: the
    adjoint of :class:`PadIndex` (and its backward is that gather again)."""

    saved_inputs = ()

    def __init__(self, index: np.ndarray, dim: int, n: int) -> None:
        self.index, self.dim, self.n = index, dim, n

    def forward(self, g):
        xp = _xp(g)
        if xp is not np:  # CuPy's add.at is an atomic scatter, fast on a GPU
            moved = xp.moveaxis(g, self.dim, 0)
            out = xp.zeros((self.n,) + moved.shape[1:], dtype=g.dtype)
            xp.add.at(out, backend.to_device(self.index, backend.device_of(g)), moved)
            return xp.ascontiguousarray(xp.moveaxis(out, 0, self.dim))
        # NumPy's add.at goes element by element. A pad's index hits most targets once:
        # gather each target's first source, then add the few repeats slice by slice
        first = np.full(self.n, len(self.index))
        np.minimum.at(first, self.index, np.arange(len(self.index)))  # a short index
        hit = np.flatnonzero(first < len(self.index))
        out = g.take(first[hit], axis=self.dim)
        if len(hit) < self.n:  # a cropping pad leaves positions without a source
            full = np.zeros(g.shape[: self.dim] + (self.n,) + g.shape[self.dim + 1 :], g.dtype)
            full[(slice(None),) * self.dim + (hit,)] = out
            out = full
        repeats = np.ones(len(self.index), dtype=bool)
        repeats[first[hit]] = False
        lead = (slice(None),) * self.dim
        for src in np.flatnonzero(repeats):
            out[lead + (self.index[src],)] += g[lead + (src,)]
        return out

    def backward(self, gg):
        return PadIndex(self.index, self.dim)(gg)


def astype(x: Tensor, dtype: Any) -> Tensor:
    return x if np.dtype(dtype) == x.dtype else AsType(dtype)(x)


def to_device(x: Tensor, device: str) -> Tensor:
    target = backend.parse_device(device)
    return x if target is None or target == x.device else ToDevice(target)(x)


# --------------------------------------------------------------------------- activations


class ReLU(Function):
    saved_inputs = ()  # the gradient mask is read from the output, as PyTorch saves it
    saves_output = True

    def forward(self, x):
        return _xp(x).maximum(x, x.dtype.type(0))  # not x * mask: -inf * 0 would be nan

    def backward(self, gy):
        # gy where the output is > 0 (i.e. x > 0), else gy * 0: leaky ReLU's fused gradient
        # with slope 0 (one pass, no mask arrays)
        return LeakyReLUGrad(self.output().data, 0.0)(gy)


def relu(x: Tensor) -> Tensor:
    return ReLU()(x)


class LeakyReLU(Function):
    """Keeps ``x > 0`` (one byte a value) for backward rather than ``x`` itself (four or
    eight): the gradient needs only the sign. Changing ``x`` in place still raises, as in
    PyTorch, which saves ``x``."""

    saved_inputs = ()
    version_checked = (0,)

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        self.positive = _xp(x).asarray(x > 0)  # an array even for a 0-d x
        return kernels.leaky_relu(x, self.slope)

    def backward(self, gy):
        return LeakyReLUGrad(self.positive, self.slope)(gy)


class LeakyReLUGrad(Function):
    """``gy`` where ``x > 0``, ``slope * gy`` elsewhere, for a constant ``x`` (or the boolean
    ``x > 0`` itself): linear and diagonal in ``gy``, so it is its own adjoint (and leaky
    ReLU's second derivative is 0)."""

    saved_inputs = ()

    def __init__(self, x: Any, negative_slope: float) -> None:
        self.x, self.slope = x, negative_slope

    def forward(self, gy):
        return kernels.leaky_relu_backward(gy, self.x, self.slope)

    def backward(self, g):
        return LeakyReLUGrad(self.x, self.slope)(g)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere (one fused kernel each way)."""
    return LeakyReLU(negative_slope)(x)


class Tanh(Function):
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        return _xp(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)


class Sigmoid(Function):
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        xp = _xp(x)
        # exp of a non-positive number only: no overflow for large |x|
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Softplus(Function):
    def forward(self, x):
        return _xp(x).logaddexp(x.dtype.type(0), x)

    def backward(self, gy):
        return gy * sigmoid(self.inputs[0])


def tanh(x: Tensor) -> Tensor:
    return Tanh()(_floating(x))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(_floating(x))


def softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))``, stable for large ``|x|``."""
    return Softplus()(_floating(x))


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    # One draw from minigan's generator seeds a counter-based stream that the kernel
    # evaluates per element (reproducible under manual_seed, nothing stored for backward).
    seed = int(generator().integers(0, 2**63, dtype=np.int64))
    return Dropout(stream_offset(seed, x.shape), p)(x)


class Dropout(Function):
    """``x / (1 - p)`` where element i's draw of the stream ``seed`` is ``>= p``, else 0:
    linear in ``x``, so the backward is the same operation (same seed) on ``gy``."""

    saved_inputs = ()

    def __init__(self, seed: int, p: float) -> None:
        self.seed, self.p = seed, p

    def forward(self, x):
        return kernels.dropout(x, self.seed, self.p)

    def backward(self, gy):
        return Dropout(self.seed, self.p)(gy)


# --------------------------------------------------------------------------- convolution


class Conv2d(Function):
    """y = conv2d(x, w); its gradients are the two adjoint convolutions below."""

    def __init__(self, stride, padding, dilation, groups: int = 1) -> None:
        self.args = (stride, padding, dilation, groups)

    def forward(self, x, w):
        return kernels.conv2d(x, w, *self.args)

    def backward(self, gy):
        x, w = self.inputs
        gx = gw = None
        # the smaller gradient first: the larger is then not yet alive while the other's
        # work buffers are (a lower peak of memory; the results do not depend on the order)
        if self.needs_grad[1] and math.prod(w.shape) <= math.prod(x.shape):
            gw = ConvGradWeight(w.shape, *self.args)(x, gy)
        if self.needs_grad[0]:
            gx = ConvGradInput(x.shape, *self.args)(gy, w)
        if self.needs_grad[1] and gw is None:
            gw = ConvGradWeight(w.shape, *self.args)(x, gy)
        return gx, gw


class ConvGradInput(Function):
    """gx = conv2d_grad_input(gy, w), i.e. conv_transpose2d; linear in gy and in w."""

    def __init__(self, x_shape, stride, padding, dilation, groups: int = 1) -> None:
        self.x_shape, self.args = tuple(x_shape), (stride, padding, dilation, groups)

    def forward(self, gy, w):
        return kernels.conv2d_grad_input(gy, w, self.x_shape, *self.args)

    def backward(self, ggx):
        gy, w = self.inputs
        g_w = ConvGradWeight(w.shape, *self.args)(ggx, gy) if self.needs_grad[1] else None
        g_gy = Conv2d(*self.args)(ggx, w) if self.needs_grad[0] else None  # after: see Conv2d
        return g_gy, g_w


class ConvGradWeight(Function):
    """gw = conv2d_grad_weight(x, gy); linear in x and in gy."""

    def __init__(self, w_shape, stride, padding, dilation, groups: int = 1) -> None:
        self.w_shape, self.args = tuple(w_shape), (stride, padding, dilation, groups)

    def forward(self, x, gy):
        return kernels.conv2d_grad_weight(x, gy, self.w_shape, *self.args)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = ConvGradInput(x.shape, *self.args)(gy, ggw) if self.needs_grad[0] else None
        g_gy = Conv2d(*self.args)(x, ggw) if self.needs_grad[1] else None
        return g_x, g_gy


def _conv_bias(y: Tensor, bias: Tensor | None, op: str) -> Tensor:
    if bias is None:
        return y
    if bias.shape != (y.shape[1],):
        raise ShapeError(f"{op}: bias has shape {bias.shape}, expected ({y.shape[1]},)")
    return y + reshape(bias, (1, -1, 1, 1))


def _check_conv_input(op: str, x: Tensor, w: Tensor, channels: int, groups: int = 1) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D weight, got shape {w.shape}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if x.shape[1] != channels:
        plural = "s" if x.shape[1] != 1 else ""
        raise ShapeError(
            f"{op}: input has {x.shape[1]} channel{plural}, weight expects {channels}"
            f"{f' ({groups} groups)' if groups > 1 else ''}; "
            f"input shape {x.shape}, weight shape {w.shape}"
        )


def _same_padding(op: str, k: Sequence[int], s: tuple[int, int], d: tuple[int, int]):
    """PyTorch's ``padding="same"``: ``d*(k-1)`` in total per axis, the odd one on the right.
    Returns the symmetric part and the extra ``(left, right, top, bottom)`` to pad first."""
    if s != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions {s}")
    total = [d[i] * (k[i] - 1) for i in range(2)]
    sym = (total[0] // 2, total[1] // 2)
    extra = (0, total[1] - 2 * sym[1], 0, total[0] - 2 * sym[0])
    return sym, extra


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation), NCHW, weight (O, C/groups, kh, kw), zero padding
    (``padding`` an int, a pair, ``"valid"`` or ``"same"``), as ``torch.nn.functional.conv2d``.
    With ``groups`` the channels split into that many independent convolutions (depthwise:
    ``groups == C``), computed in one kernel call.

    >>> import minigan
    >>> conv2d(minigan.ones(1, 4, 5, 5), minigan.ones(4, 1, 3, 3), padding="same", groups=4).shape
    (1, 4, 5, 5)
    """
    w_c = weight.shape[1] * groups if weight.ndim == 4 else -1
    _check_conv_input("conv2d", x, weight, w_c, groups)
    x, weight = _operands(x, weight)  # float32 with float64: float64, as everywhere
    if weight.shape[0] % groups:
        raise ShapeError(
            f"conv2d: weight {weight.shape} has {weight.shape[0]} output channels, not "
            f"divisible by groups={groups}"
        )
    s, d = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"conv2d: padding must be 'same', 'valid' or ints, got {padding!r}")
        p = (0, 0)
        if padding == "same":
            p, extra = _same_padding("conv2d", weight.shape[2:], s, d)
            x = pad(x, extra) if builtins.max(extra) else x
    else:
        p = _pair(padding, "padding")
    k = weight.shape[2:]
    out = [kernels.conv_output_size(x.shape[2 + i], k[i], s[i], p[i], d[i]) for i in range(2)]
    if builtins.min(out) < 1:
        raise ShapeError(
            f"conv2d: input {x.shape} is too small for kernel {weight.shape[2:]} with "
            f"padding {p} and dilation {d}"
        )
    return _conv_bias(Conv2d(s, p, d, int(groups))(x, weight), bias, "conv2d")


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> Tensor:
    """Transposed convolution, weight (C_in, C_out/groups, kh, kw): the gradient of conv2d
    w.r.t. its input, as in ``torch.nn.functional.conv_transpose2d`` (same argument order)."""
    op_name = "conv_transpose2d"
    _check_conv_input(op_name, x, weight, weight.shape[0] if weight.ndim == 4 else -1, groups)
    x, weight = _operands(x, weight)
    if weight.shape[0] % groups:
        raise ShapeError(
            f"{op_name}: weight {weight.shape} has {weight.shape[0]} input channels, not "
            f"divisible by groups={groups}"
        )
    s, p, d = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    op = _pair(output_padding, "output_padding")
    for i in range(2):
        if op[i] >= builtins.max(s[i], d[i]):
            raise ShapeError(
                f"{op_name}: output_padding {op} must be smaller than stride {s} "
                f"or dilation {d}"
            )
    size = [
        (x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (weight.shape[2 + i] - 1) + op[i] + 1
        for i in range(2)
    ]
    if builtins.min(size) < 1:
        raise ShapeError(f"{op_name}: output size {tuple(size)} for input {x.shape} is empty")
    g = int(groups)
    out_shape = (x.shape[0], weight.shape[1] * g, size[0], size[1])
    if op[0] >= s[0] or op[1] >= s[1]:
        # output_padding ≥ stride (allowed when smaller than dilation): the output is not the
        # input-gradient of a conv with this padding, so take the full unpadded transposed
        # conv, extend it with zeros and crop it to the output
        k = weight.shape[2:]
        full = [(x.shape[2 + i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(2)]
        y = ConvGradInput((*out_shape[:2], *full), s, (0, 0), d, g)(x, weight)
        extra = [builtins.max(0, p[i] + size[i] - full[i]) for i in range(2)]
        y = pad(y, (0, extra[1], 0, extra[0])) if builtins.max(extra) else y
        y = y[:, :, p[0] : p[0] + size[0], p[1] : p[1] + size[1]]
        return _conv_bias(y, bias, op_name)
    return _conv_bias(ConvGradInput(out_shape, s, p, d, g)(x, weight), bias, op_name)


# --------------------------------------------------------------------------- normalisation


def _normalize_backward(gy: Tensor, x: Tensor, scale: Tensor | None, dims, eps: float):
    """Gradients of ``y = scale * (x - mean) / sqrt(var + eps) + bias`` (statistics over
    ``dims``) written with differentiable ops — the path used when ``create_graph=True``.

    Returns ``(gx, g_scale_like_x, g_bias_like_x)`` with the parameter grads still shaped
    like the broadcast ``scale`` (kept dims); callers reshape them.
    """
    count = math.prod(x.shape[d] for d in dims)
    mu = mean(x, dims, keepdim=True)
    xc = x - mu
    invstd = (sum(xc * xc, dims, keepdim=True) * (1.0 / count) + eps) ** -0.5
    xhat = xc * invstd
    gxhat = gy if scale is None else gy * scale
    gx = invstd * (gxhat - mean(gxhat, dims, keepdim=True) - xhat * mean(gxhat * xhat, dims, True))
    return gx, sum(gy * xhat, dims, keepdim=True), sum(gy, dims, keepdim=True)


class BatchNorm(Function):
    """Training-mode batch norm over all axes but 1; inputs (x, gamma, beta)."""

    saved_inputs = (0, 1)

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def forward(self, x, gamma, beta):
        y, self.mean, self.invstd = kernels.batch_norm_forward(x, gamma, beta, self.eps)
        return y

    def backward(self, gy):
        x, gamma, _ = self.inputs
        if is_grad_enabled():  # create_graph: a differentiable backward
            dims = (0,) + tuple(range(2, x.ndim))
            shape = (1, -1) + (1,) * (x.ndim - 2)
            gx, gg, gb = _normalize_backward(gy, x, reshape(gamma, shape), dims, self.eps)
            return gx, reshape(gg, (-1,)), reshape(gb, (-1,))
        gx, gg, gb = kernels.batch_norm_backward(
            gy.data, x.data, gamma.data, self.mean, self.invstd
        )
        return Tensor(gx), Tensor(gg), Tensor(gb)


class AdaIN(Function):
    """Adaptive instance norm: per-(n, c) statistics over H, W; inputs (x, scale, bias)."""

    saved_inputs = (0, 1)

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def forward(self, x, scale, bias):
        y, self.mean, self.invstd = kernels.adain_forward(x, scale, bias, self.eps)
        return y

    def backward(self, gy):
        x, scale, _ = self.inputs
        if is_grad_enabled():
            n, c = scale.shape
            gx, gs, gb = _normalize_backward(gy, x, reshape(scale, (n, c, 1, 1)), (2, 3), self.eps)
            return gx, reshape(gs, (n, c)), reshape(gb, (n, c))
        gx, gs, gb = kernels.adain_backward(gy.data, x.data, scale.data, self.mean, self.invstd)
        return Tensor(gx), Tensor(gs), Tensor(gb)


def batch_norm(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1, as in PyTorch.

    In training mode the batch statistics are used and ``running_mean`` / ``running_var``
    (raw arrays, or None) are updated in place with ``momentum`` and the unbiased variance.
    Otherwise the running statistics are used.
    """
    if x.ndim < 2:
        raise ShapeError(
            f"batch_norm: expected an input of at least 2 dims (N, C, …), got {x.shape}"
        )
    c = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ShapeError(
                f"batch_norm: {name} has shape {t.shape}, expected ({c},) for {x.shape}"
            )
    shape = (1, c) + (1,) * (x.ndim - 2)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode needs running_mean and running_var")
        xp = _xp(x.data)
        invstd = 1 / xp.sqrt(xp.asarray(running_var, dtype=x.dtype) + x.dtype.type(eps))
        y = (x - Tensor(xp.asarray(running_mean, dtype=x.dtype).reshape(shape))) * Tensor(
            invstd.reshape(shape)
        )
        if weight is not None:
            y = y * reshape(weight, shape)
        return y if bias is None else y + reshape(bias, shape)
    if c == 0:  # no channels: nothing to normalise (PyTorch returns the empty input too)
        return x * 1.0
    count = x.data.size // c
    if count < 2:
        raise ShapeError(
            f"batch_norm: expected more than 1 value per channel when training, got input {x.shape}"
        )
    xp = _xp(x.data)
    gamma = weight if weight is not None else Tensor(xp.ones(c, dtype=x.dtype))
    beta = bias if bias is not None else Tensor(xp.zeros(c, dtype=x.dtype))
    fn = BatchNorm(eps)
    y = fn(x, gamma, beta)
    if running_mean is not None:
        var = 1 / (fn.invstd.astype(np.float64) ** 2) - eps
        running_mean *= 1 - momentum
        running_mean += momentum * fn.mean.astype(running_mean.dtype)
        running_var *= 1 - momentum
        running_var += (momentum * var * count / (count - 1)).astype(running_var.dtype)
    return y


def adain(x: Tensor, scale: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation: normalise each (sample, channel) plane over H, W,
    then apply a per-sample style ``scale`` and ``bias`` of shape (N, C).

    >>> import minigan
    >>> x = minigan.randn(2, 3, 4, 4)
    >>> y = adain(x, minigan.ones(2, 3) * 2, minigan.zeros(2, 3))
    >>> bool(np.abs(y.numpy().std(axis=(2, 3)) - 2).max() < 1e-3)
    True
    """
    if x.ndim != 4:
        raise ShapeError(f"adain: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    for name, t in (("scale", scale), ("bias", bias)):
        if t.shape != x.shape[:2]:
            raise ShapeError(
                f"adain: {name} has shape {t.shape}, expected {x.shape[:2]} for input {x.shape}"
            )
    _check_same_dtype("adain", x, scale, bias)
    return AdaIN(eps)(x, scale, bias)


def instance_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Instance normalisation (statistics per sample and channel over H, W); the optional
    per-channel affine ``weight``/``bias`` is AdaIN with the same style for every sample."""
    if x.ndim != 4:
        raise ShapeError(f"instance_norm: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    n, c = x.shape[:2]
    xp = _xp(x.data)
    scale = broadcast_to(weight, (n, c)) if weight is not None else Tensor(xp.ones((n, c), x.dtype))
    shift = broadcast_to(bias, (n, c)) if bias is not None else Tensor(xp.zeros((n, c), x.dtype))
    return AdaIN(eps)(x, scale, shift)


# --------------------------------------------------------------------------- pooling, resizing


def avg_pool2d(
    x: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Average pooling with PyTorch's arguments: zero padding counted in the average unless
    ``count_include_pad=False``; with ``ceil_mode`` the last partial windows are kept (and
    averaged over the part inside the padded input). A 3-D input is one unbatched
    (C, H, W) sample, as in PyTorch."""
    if x.ndim == 3:
        args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        return avg_pool2d(unsqueeze(x, 0), *args)[0]
    k, s, p, d, oh, ow = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    xpad = _pool_padded(x, k, s, p, d, oh, ow, 0.0)
    total = None
    for sl in _dilated_slices(k, s, d, oh, ow):
        part = getitem(xpad, (Ellipsis, *sl))
        total = part if total is None else total + part
    assert total is not None  # the kernel has at least one position
    if divisor_override:
        return total * (1.0 / divisor_override)
    counts = [
        _pool_counts(x.shape[2 + i], k[i], s[i], p[i], n, count_include_pad)
        for i, n in enumerate((oh, ow))
    ]
    divisor = np.outer(counts[0], counts[1]).astype(x.dtype)
    return total / Tensor(backend.to_device(divisor, x.device))


def _pool_counts(size: int, k: int, s: int, p: int, n: int, include_pad: bool) -> np.ndarray:
    """Per output position along one axis, the number of positions averaged (PyTorch's)."""
    start = np.arange(n) * s - p
    end = np.minimum(start + k, size + p)
    if include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


class MaxPool(Function):
    """Max over each window (``kernels.max_pool2d``: one pass, padding is no value), keeping
    which position won each window — PyTorch's choice — for the backward."""

    saved_inputs = ()

    def __init__(self, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
                 out_hw: tuple) -> None:  # fmt: skip
        self.geometry = (kernel, stride, padding, dilation)
        self.out_hw = out_hw

    def forward(self, x):
        self.in_shape = x.shape
        y, self.winner = kernels.max_pool2d(x, *self.geometry, self.out_hw)
        return y

    def backward(self, gy):
        return MaxPoolGrad(self)(gy)


class MaxPoolGrad(Function):
    """Route each window's gradient to its winning input position (adjoint of MaxPool)."""

    saved_inputs = ()

    def __init__(self, pool: MaxPool) -> None:
        self.pool = pool

    def forward(self, gy):
        pool = self.pool
        return kernels.max_pool2d_backward(gy, pool.winner, pool.in_shape, *pool.geometry)

    def backward(self, ggx):
        """Each output's gradient read back at its winner: ``ggx`` padded with zeros, then
        per window position the outputs it won."""
        k, s, p, d = self.pool.geometry
        oh, ow = self.pool.out_hw
        ggx = _pool_padded(ggx, k, s, p, d, oh, ow, 0.0)
        total = None
        for pos, sl in enumerate(_dilated_slices(k, s, d, oh, ow)):
            part = mask(getitem(ggx, (Ellipsis, *sl)), self.pool.winner == pos)
            total = part if total is None else total + part
        return total


@overload
def max_pool2d(
    x: Tensor,
    kernel_size,
    stride=...,
    padding=...,
    dilation=...,
    ceil_mode: bool = ...,
    return_indices: Literal[False] = ...,
) -> Tensor: ...


@overload
def max_pool2d(
    x: Tensor,
    kernel_size,
    stride=...,
    padding=...,
    dilation=...,
    ceil_mode: bool = ...,
    *,
    return_indices: Literal[True],
) -> tuple[Tensor, Tensor]: ...


@overload
def max_pool2d(
    x: Tensor,
    kernel_size,
    stride=...,
    padding=...,
    dilation=...,
    ceil_mode: bool = ...,
    return_indices: bool = ...,
) -> Tensor | tuple[Tensor, Tensor]: ...


def max_pool2d(
    x: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling with PyTorch's ``dilation``, ``ceil_mode`` and ``return_indices`` (flat
    ``h * W + w`` indices into each input plane, int64); padding is no value, and the gradient
    goes to each window's first maximum (the last NaN), as in PyTorch. A window that (with
    dilation) covers no input position gives the dtype's lowest value (-inf), index -1 and no
    gradient; PyTorch gives -inf too, but an index past the plane's end, and writes that
    window's gradient into the next plane. A 3-D input is one unbatched (C, H, W) sample,
    as in PyTorch.

    >>> import minigan
    >>> y, i = max_pool2d(minigan.ones(1, 1, 1, 2), 2, 1, padding=1, dilation=2,
    ...                   return_indices=True)
    >>> y.numpy().ravel().tolist(), i.numpy().ravel().tolist()
    ([-inf, -inf], [-1, -1])
    """
    if x.ndim == 3:
        args = (kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        out = max_pool2d(unsqueeze(x, 0), *args)
        return (out[0][0], out[1][0]) if isinstance(out, tuple) else out[0]
    k, s, p, d, oh, ow = _pool_geometry(
        "max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode
    )
    if k[0] * k[1] > 254:  # a window's winner is a uint8, 255 meaning "none"
        raise ValueError(f"max_pool2d: kernel {k} has more than 254 positions")
    fn = MaxPool(k, s, p, d, (oh, ow))
    y = fn(x)
    if not return_indices:
        return y
    xp = _xp(x.data)
    win = fn.winner.astype(np.int64)
    i, j = win // k[1], win % k[1]
    rows = xp.asarray(np.arange(oh) * s[0] - p[0]).reshape(-1, 1)
    cols = xp.asarray(np.arange(ow) * s[1] - p[1])
    r, c = rows + i * d[0], cols + j * d[1]
    return y, Tensor(xp.where(win == 255, -1, r * x.shape[3] + c))


def upsample(
    x: Tensor,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize NCHW images by ``nearest``, ``nearest-exact`` or ``bilinear`` interpolation
    (PyTorch's rules; ``interpolate`` is the same function).

    >>> import minigan
    >>> upsample(minigan.ones(1, 1, 2, 2), size=3, mode="nearest-exact").shape
    (1, 1, 3, 3)
    """
    if antialias:
        raise ValueError("upsample: antialias=True (a low-pass filter for downsampling) is "
                         "not available; resize with antialias=False")
    if mode not in ("nearest", "nearest-exact", "bilinear"):
        raise ValueError(
            f"upsample: unknown mode {mode!r}; expected 'nearest', 'nearest-exact' or "
            "'bilinear'"
        )
    if align_corners and mode != "bilinear":
        raise ValueError(f"upsample: align_corners applies to mode='bilinear', not {mode!r}")
    if x.ndim != 4:
        raise ShapeError(f"upsample: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError("upsample: give exactly one of size and scale_factor")
    h, w = x.shape[2:]
    if size is not None:
        oh, ow = _pair(size, "size")
        scales = (h / oh, w / ow)
    else:
        assert scale_factor is not None  # exactly one of the two is given (checked above)
        f = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        oh, ow = int(math.floor(h * f[0])), int(math.floor(w * f[1]))
        scales = (h / oh, w / ow) if recompute_scale_factor else (1 / f[0], 1 / f[1])
    if mode == "nearest-exact":
        ih = np.minimum(np.floor((np.arange(oh) + 0.5) * scales[0]).astype(np.int64), h - 1)
        iw = np.minimum(np.floor((np.arange(ow) + 0.5) * scales[1]).astype(np.int64), w - 1)
        return getitem(getitem(x, (slice(None), slice(None), ih)), (Ellipsis, iw))
    if mode == "nearest":
        if oh % h == 0 and ow % w == 0:  # integer factors: repeat by broadcasting (fast)
            a, b = oh // h, ow // w
            y = broadcast_to(reshape(x, (*x.shape[:2], h, 1, w, 1)), (*x.shape[:2], h, a, w, b))
            return reshape(y, (*x.shape[:2], oh, ow))
        ih = np.minimum(np.floor(np.arange(oh) * scales[0]).astype(np.int64), h - 1)
        iw = np.minimum(np.floor(np.arange(ow) * scales[1]).astype(np.int64), w - 1)
        return getitem(getitem(x, (slice(None), slice(None), ih)), (Ellipsis, iw))
    if x.dtype.kind in "biu":  # integer images: interpolate in float32, then round
        y = upsample(astype(x, np.float32), (oh, ow), None, mode, align_corners).data
        info = np.iinfo(x.dtype) if x.dtype.kind != "b" else np.iinfo(np.uint8)
        y = _xp(y).clip(_xp(y).floor(y + 0.5), info.min, info.max)
        return Tensor(y.astype(x.dtype))
    y = _lerp_axis(x, 2, oh, scales[0], bool(align_corners))
    return _lerp_axis(y, 3, ow, scales[1], bool(align_corners))


interpolate = upsample


def _lerp_axis(x: Tensor, axis: int, out: int, scale: float, align_corners: bool) -> Tensor:
    n_in = x.shape[axis]
    if align_corners:
        src = np.arange(out) * ((n_in - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = np.maximum((np.arange(out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = (src - i0).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = out
    frac_t = Tensor(backend.to_device(frac.reshape(shape), x.device))
    lead = (slice(None),) * axis
    lo, hi = getitem(x, lead + (i0,)), getitem(x, lead + (i1,))
    return lo + (hi - lo) * frac_t


# --------------------------------------------------------------------------- losses


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_target(op: str, x: Tensor, target: Tensor) -> None:
    if x.shape != target.shape:
        raise ShapeError(f"{op}: input shape {x.shape} and target shape {target.shape} differ")


def binary_cross_entropy_with_logits(
    logits: Tensor,
    target: Any,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """``-[t·log σ(x) + (1-t)·log(1-σ(x))]`` written as ``softplus(x) - t·x`` (stable for
    any logit size)."""
    op = "binary_cross_entropy_with_logits"
    target = _as_tensor(target, logits)
    _check_target(op, logits, target)
    if pos_weight is None:
        loss = softplus(logits) - target * logits
    else:  # (1 - t)·x + (1 + (p - 1)·t)·softplus(-x)
        loss = (1 - target) * logits + (1 + (pos_weight - 1) * target) * softplus(-logits)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, op)


def mse_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    target = _as_tensor(target, x)
    _check_target("mse_loss", x, target)
    diff = x - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    target = _as_tensor(target, x)
    _check_target("l1_loss", x, target)
    return _reduce(abs(x - target), reduction, "l1_loss")


# --------------------------------------------------------------------------- normalisation II
# GroupNorm and LayerNorm are the fused per-group normalisation of AdaIN (one kernel each way on
# CPU and GPU, a differentiable backward under create_graph) on a reshaped view: the groups
# become AdaIN's "planes", then the per-channel (per-element) affine is applied.


#: below this many elements GroupNorm/LayerNorm compose NumPy ops (the parallel kernel's
#: launch costs more than the work; measured on a loaded 2-core machine: 4x32x16x16 takes
#: 0.13 ms composed, 60 ms through the kernel); above it, the fused kernel
SMALL_NORM = 1 << 18


def _plane_norm(x: Tensor, rows: int, eps: float) -> Tensor:
    """Normalise each of ``rows`` consecutive blocks of ``x`` (mean 0, variance 1)."""
    if x.data.size < SMALL_NORM and backend.device_of(x.data) == "cpu":
        xr = reshape(x, (rows, -1))
        xc = xr - mean(xr, 1, keepdim=True)
        return reshape(xc * (mean(xc * xc, 1, keepdim=True) + eps) ** -0.5, x.shape)
    x4 = reshape(x, (1, rows, -1, 1))
    xp = _xp(x.data)
    ones = Tensor(xp.ones((1, rows), dtype=x.dtype))
    zeros = Tensor(xp.zeros((1, rows), dtype=x.dtype))
    return reshape(AdaIN(eps)(x4, ones, zeros), x.shape)


def group_norm(
    x: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalisation (``torch.nn.functional.group_norm``): the channels of each sample
    split into ``num_groups`` groups, each normalised over its channels and positions, then a
    per-channel ``weight`` and ``bias``.

    >>> import minigan
    >>> y = group_norm(minigan.randn(2, 4, 3, 3), 2)
    >>> bool(np.abs(y.numpy().reshape(2, 2, -1).mean(-1)).max() < 1e-5)
    True
    """
    if x.ndim < 2:
        raise ShapeError(f"group_norm: expected an input (N, C, …), got shape {x.shape}")
    n, c = x.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ShapeError(
            f"group_norm: {c} channels of input {x.shape} cannot be split into "
            f"{num_groups} groups"
        )
    _check_affine("group_norm", (c,), weight, bias)
    y = _plane_norm(x, n * num_groups, eps)
    return _affine(y, weight, bias, (1, c) + (1,) * (x.ndim - 2))


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims, then an elementwise
    ``weight`` and ``bias`` of that shape (``torch.nn.functional.layer_norm``)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape) :] != shape or len(shape) > x.ndim:
        raise ShapeError(
            f"layer_norm: normalized_shape {shape} does not match the trailing dims of the "
            f"input {x.shape}"
        )
    _check_affine("layer_norm", shape, weight, bias)
    rows = math.prod(x.shape[: x.ndim - len(shape)])
    if x.data.size == 0:
        return x * 1.0
    return _affine(_plane_norm(x, rows, eps), weight, bias, shape)


def _check_affine(op: str, shape: tuple[int, ...], weight: Any, bias: Any) -> None:
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ShapeError(f"{op}: {name} has shape {t.shape}, expected {shape}")


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape) -> Tensor:
    if weight is not None:
        y = y * reshape(weight, shape)
    return y if bias is None else y + reshape(bias, shape)


class LpNorm(Function):
    """``(sum |x|^p)^(1/p)`` over ``dims`` (kept); the gradient is 0 where the norm is 0
    (PyTorch's subgradient), and the backward is built from differentiable ops."""

    saves_output = True

    def __init__(self, p: float, dims: tuple[int, ...]) -> None:
        self.p, self.dims = p, dims

    def forward(self, x):
        xp = _xp(x)
        a = xp.abs(x)
        if self.p == 2:
            return xp.sqrt((x * x).sum(axis=self.dims, keepdims=True))
        if math.isinf(self.p):
            return a.max(axis=self.dims, keepdims=True)
        return (a**self.p).sum(axis=self.dims, keepdims=True) ** (1 / self.p)

    def backward(self, gy):
        (x,) = self.inputs
        n = self.output()
        if math.isinf(self.p):  # the gradient goes to the largest |x|, shared among ties
            a = abs(x)
            hits = (a.data == n.data).astype(x.dtype)
            hits /= hits.sum(axis=self.dims, keepdims=True)
            return mask(broadcast_to(gy, x.shape) * sign_of(x), hits)
        zero = n.data == 0
        safe = where(zero, 1.0, n)  # x is 0 wherever the norm is: the quotient is 0 there
        if self.p == 2:
            return gy * x / safe
        if self.p == 1:
            return gy * sign_of(x)
        return gy * sign_of(x) * abs(x) ** (self.p - 1) / safe ** (self.p - 1)


def sign_of(x: Tensor) -> Tensor:
    """``sign(x)`` as a constant (its derivative is 0 almost everywhere)."""
    return Tensor(_xp(x.data).sign(x.data))


def vector_norm(x: Tensor, ord: float = 2, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """The ``ord``-norm of ``x`` over ``dim`` (``torch.linalg.vector_norm``, ord > 0 or inf)."""
    if not (ord > 0):
        raise ValueError(f"vector_norm: ord must be positive or inf, got {ord}")
    dims = _dims(dim, x.ndim)
    out = LpNorm(float(ord), dims)(x)
    return out if keepdim else squeeze(out, dims) if dims else out


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim`` (``torch.nn.functional.normalize``).

    >>> import minigan
    >>> normalize(minigan.tensor([[3.0, 4.0]]))
    tensor([[0.6, 0.8]])
    """
    if x.ndim == 0:
        raise ShapeError("normalize: expected an input with at least 1 dim, got a scalar")
    norm = vector_norm(x, p, dim % x.ndim, keepdim=True)
    return x / clip(norm, min=eps)


# --------------------------------------------------------------------------- pixel shuffle


def pixel_shuffle(x: Tensor, upscale_factor: int) -> Tensor:
    """(…, C·r², H, W) -> (…, C, H·r, W·r), as ``torch.nn.functional.pixel_shuffle``."""
    r = int(upscale_factor)
    if x.ndim < 3 or r < 1 or x.shape[-3] % (r * r):
        raise ShapeError(
            f"pixel_shuffle: input {x.shape} needs (…, C·r², H, W) with r={upscale_factor}"
        )
    *lead, c, h, w = x.shape
    k = len(lead)
    y = reshape(x, (*lead, c // (r * r), r, r, h, w))
    y = permute(y, (*range(k), k, k + 3, k + 1, k + 4, k + 2))
    return reshape(y, (*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle(x: Tensor, downscale_factor: int) -> Tensor:
    """(…, C, H·r, W·r) -> (…, C·r², H, W): the inverse of :func:`pixel_shuffle`."""
    r = int(downscale_factor)
    if x.ndim < 3 or r < 1 or x.shape[-1] % r or x.shape[-2] % r:
        raise ShapeError(
            f"pixel_unshuffle: input {x.shape} needs H and W divisible by r={downscale_factor}"
        )
    *lead, c, h, w = x.shape
    k = len(lead)
    y = reshape(x, (*lead, c, h // r, r, w // r, r))
    y = permute(y, (*range(k), k, k + 2, k + 4, k + 1, k + 3))
    return reshape(y, (*lead, c * r * r, h // r, w // r))


# --------------------------------------------------------------------------- attention


def _attention_bias(
    attn_mask: Any, is_causal: bool, l: int, s: int, like: Tensor
) -> Tensor | None:
    """The additive score bias of a boolean (True = attend) or float mask and/or causality."""
    xp = _xp(like.data)
    bias = None
    if is_causal:
        keep = np.tril(np.ones((l, s), dtype=bool))
        bias = Tensor(xp.asarray(np.where(keep, 0.0, -np.inf).astype(like.dtype)))
    if attn_mask is not None:
        m = attn_mask if isinstance(attn_mask, Tensor) else Tensor(xp.asarray(attn_mask))
        if m.dtype == np.bool_:
            m = Tensor(xp.where(m.data, like.dtype.type(0), like.dtype.type(-np.inf)))
        else:
            m = astype(m, like.dtype)
        bias = m if bias is None else bias + m
    return bias


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """``softmax(q kᵀ · scale + mask) v`` over the last two dims, with PyTorch's arguments:
    a boolean ``attn_mask`` marks the keys that may be attended (True), a float one is added
    to the scores; ``is_causal`` masks the keys after each query; ``scale`` defaults to
    ``1/sqrt(E)``; ``dropout_p`` drops attention weights (always applied, as in PyTorch).

    >>> import minigan
    >>> q = minigan.randn(2, 3, 5, 4)
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 3, 5, 4)
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError("scaled_dot_product_attention: inputs need at least 2 dims (L, E)")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
            f"{value.shape} do not fit (q and k share E, k and v share S)"
        )
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    l, s = query.shape[-2], key.shape[-2]
    factor = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = matmul(query, transpose(key, -2, -1)) * factor
    bias = _attention_bias(attn_mask, is_causal, l, s, query)
    if bias is not None:
        scores = scores + bias
    weights = softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return matmul(weights, value)


# --------------------------------------------------------------------------- pooling II


def _pool_geometry(
    op: str, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool
) -> tuple:
    """Kernel, stride, padding, dilation pairs and output size, with PyTorch's ``ceil_mode``
    rule (the last window must start inside the input or its left padding)."""
    if x.ndim != 4:
        raise ShapeError(
            f"{op}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {x.shape}"
        )
    k = _pair(kernel_size, "kernel_size")
    s = _pair(stride if stride is not None and stride != [] else k, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {p} should be at most half the kernel size {k}")
    out = []
    for i in range(2):
        size = x.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        n = (-(-size // s[i]) if ceil_mode else size // s[i]) + 1
        if ceil_mode and (n - 1) * s[i] >= x.shape[2 + i] + p[i]:
            n -= 1
        out.append(n)
    if builtins.min(out) < 1:
        raise ShapeError(f"{op}: input {x.shape} is too small for kernel {k} (dilation {d})")
    return k, s, p, d, out[0], out[1]


def _pool_padded(x: Tensor, k, s, p, d, oh: int, ow: int, value: float) -> Tensor:
    """``x`` padded by ``p`` on the left and enough on the right for every window."""
    need = [(o - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i, o in enumerate((oh, ow))]
    right = [need[i] - x.shape[2 + i] - p[i] for i in range(2)]
    widths = (p[1], right[1], p[0], right[0])
    return pad(x, widths, value=value) if builtins.any(widths) else x


def _dilated_slices(k, s, d, oh: int, ow: int) -> list[tuple[slice, slice]]:
    return [
        (
            slice(i * d[0], i * d[0] + s[0] * (oh - 1) + 1, s[0]),
            slice(j * d[1], j * d[1] + s[1] * (ow - 1) + 1, s[1]),
        )
        for i in range(k[0])
        for j in range(k[1])
    ]


# --------------------------------------------------------------------------- more ops
# Kept in their own modules (this file stays readable): tensor creation, comparisons,
# indexing/scatter, shape ops, einsum, reductions and sorting, elementwise math
# (minigan.tensor_ops); activations, embedding, one_hot and the other losses, cross_entropy
# included (minigan.nn_ops).

from minigan.nn_ops import *  # noqa: E402, F403
from minigan.tensor_ops import *  # noqa: E402, F403
