"""Activations, embeddings and losses with PyTorch's names and semantics: ``gelu`` (exact
and tanh), ``silu``, ``elu``, ``selu``, ``celu``, ``mish``, ``hardtanh``, ``relu6``,
``hardswish``, ``hardsigmoid``, ``softsign``, ``logsigmoid``; ``embedding``, ``one_hot``;
``nll_loss``, ``binary_cross_entropy``, ``cross_entropy`` (class weights, ``ignore_index``,
``label_smoothing``), ``smooth_l1_loss``, ``kl_div``.

Re-exported by :mod:`minigan.functional` (kept in their own module so that file stays
readable). ``inplace=`` is accepted where PyTorch has it, for compatibility; the result is
always a new tensor (safe for autograd), as with ``nn.ReLU(inplace=True)``. Each
activation is a :class:`~minigan.tensor.Function` whose ``backward`` is written with
differentiable ops, so second derivatives (gradient penalties) work; the losses are
compositions of differentiable ops, except ``binary_cross_entropy``, whose gradient is
PyTorch's formula rather than the derivative of its clamped logarithms.

>>> import minigan
>>> x = minigan.tensor([-1.0, 0.0, 2.0])
>>> [round(v, 4) for v in silu(x).tolist()]
[-0.2689, 0.0, 1.7616]
>>> nll_loss(minigan.tensor([[-1.0, -2.0], [-3.0, -0.5]]), minigan.tensor([0, -100]))
tensor(1.)
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from minigan import backend
from minigan.tensor import DeferredFunctional, Function, Tensor, no_grad
from minigan.tensor_ops import _erf_array, erf, gather

# minigan.functional (which re-exports this module's ops), imported on first use
F: Any = DeferredFunctional(globals())

__all__ = [
    "gelu", "silu", "elu", "selu", "celu", "mish", "hardtanh", "relu6", "hardswish",
    "hardsigmoid", "softsign", "logsigmoid", "embedding", "one_hot", "nll_loss",
    "binary_cross_entropy", "cross_entropy", "smooth_l1_loss", "kl_div",
]  # fmt: skip


def _xp(a: Any) -> Any:
    return backend.get_array_module(a)


def _const(x: Tensor, value: float) -> Tensor:
    return Tensor(_xp(x.data).asarray(value, dtype=x.dtype))


# --------------------------------------------------------------------------- activations

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_C = 0.044715


class GELU(Function):
    """``x * Phi(x)`` (``approximate="none"``) or its tanh approximation."""

    def __init__(self, approximate: str) -> None:
        self.approximate = approximate

    def forward(self, x):
        xp = _xp(x)
        if self.approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)
            return (0.5 * x * (1 + xp.tanh(inner))).astype(x.dtype, copy=False)
        cdf = 0.5 * (1 + _erf_array(x * x.dtype.type(math.sqrt(0.5))))
        return (x * cdf).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        if self.approximate == "tanh":
            t = F.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
            inner_grad = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
            return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner_grad)
        cdf = 0.5 * (1 + erf(x * math.sqrt(0.5)))
        pdf = F.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return gy * (cdf + x * pdf)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate="tanh"`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU(approximate)(x)


class SiLU(Function):
    def forward(self, x):
        return x * F.Sigmoid().forward(x)

    def backward(self, gy):
        x = self.inputs[0]
        s = F.sigmoid(x)
        return gy * s * (1 + x * (1 - s))


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    return SiLU()(x)


class ELU(Function):
    """``scale * x`` for ``x > 0``, ``scale * alpha * (exp(input_scale * x) - 1)`` otherwise
    -- PyTorch's one kernel behind ``elu``, ``selu`` and ``celu``."""

    def __init__(self, alpha: float, scale: float, input_scale: float) -> None:
        self.alpha, self.scale, self.input_scale = alpha, scale, input_scale

    def forward(self, x):
        xp = _xp(x)
        neg = self.scale * self.alpha * xp.expm1(xp.minimum(x, 0) * self.input_scale)
        return xp.where(x > 0, self.scale * x, neg).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        positive = x.data > 0
        # exp of the non-positive part only: no overflow (and no 0 * inf) where x > 0
        tail = F.exp(F.mask(x, ~positive) * self.input_scale)
        slope = F.where(
            Tensor(positive),
            _const(x, self.scale),
            tail * (self.scale * self.alpha * self.input_scale),
        )
        return gy * slope


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    return ELU(alpha, 1.0, 1.0)(x)


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    """Self-normalising ``scale * elu(x, alpha)`` with the constants of Klambauer et al."""
    return ELU(_SELU_ALPHA, _SELU_SCALE, 1.0)(x)


def celu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return ELU(alpha, 1.0, 1.0 / alpha)(x)


class Mish(Function):
    def forward(self, x):
        return (x * _xp(x).tanh(F.Softplus().forward(x))).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        t = F.tanh(F.softplus(x))
        return gy * (t + x * F.sigmoid(x) * (1 - t * t))


def mish(x: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return Mish()(x)


class Hardtanh(Function):
    def __init__(self, min_val: float, max_val: float) -> None:
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return _xp(x).clip(x, self.min_val, self.max_val)

    def backward(self, gy):
        d = self.inputs[0].data
        return F.mask(gy, (d > self.min_val) & (d < self.max_val))  # PyTorch: open interval


def hardtanh(
    x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """``x`` clipped to ``[min_val, max_val]``; the gradient is 1 strictly inside."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}")
    return Hardtanh(min_val, max_val)(x)


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``."""
    return Hardtanh(0.0, 6.0)(x)


class Hardswish(Function):
    def forward(self, x):
        return (x * _xp(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        d = x.data
        middle = F.where(Tensor(d > 3), _const(x, 1.0), x * (1 / 3) + 0.5)
        return gy * F.where(Tensor(d < -3), _const(x, 0.0), middle)


def hardswish(x: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    return Hardswish()(x)


class Hardsigmoid(Function):
    def forward(self, x):
        return (_xp(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    def backward(self, gy):
        d = self.inputs[0].data
        return F.mask(gy, (d > -3) & (d < 3)) * (1 / 6)


def hardsigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return Hardsigmoid()(x)


class Softsign(Function):
    def forward(self, x):
        return x / (1 + _xp(x).abs(x))

    def backward(self, gy):
        denom = 1 + F.abs(self.inputs[0])
        return gy / (denom * denom)


def softsign(x: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return Softsign()(x)


class LogSigmoid(Function):
    def forward(self, x):
        return -_xp(x).logaddexp(x.dtype.type(0), -x)  # -softplus(-x): stable both ways

    def backward(self, gy):
        return gy * F.sigmoid(-self.inputs[0])


def logsigmoid(x: Tensor) -> Tensor:
    """``log(sigmoid(x))``, stable for large ``|x|``."""
    return LogSigmoid()(x)


# --------------------------------------------------------------------------- embeddings


class Embedding(Function):
    """Rows of ``weight`` picked by integer indices; the gradient adds each picked row's
    gradient back (none for ``padding_idx``; divided by the index's count in the batch with
    ``scale_grad_by_freq``)."""

    saved_inputs = ()  # only the table's shape

    def __init__(self, index: Any, padding_idx: int | None, scale_grad_by_freq: bool) -> None:
        self.index, self.padding_idx, self.freq = index, padding_idx, scale_grad_by_freq

    def forward(self, w):
        return w[self.index]

    def backward(self, gy):
        w = self.inputs[0]
        xp = _xp(gy.data)  # w may be kept as its GraphNode (no values)
        if self.freq:
            counts = xp.bincount(self.index.reshape(-1), minlength=w.shape[0])
            gy = F.mask(gy, (1 / counts[self.index])[..., None])
        gw = F.GetItemGrad(self.index, w.shape)(gy)
        if self.padding_idx is None:
            return gw
        keep = xp.ones((w.shape[0], 1), dtype=bool)
        keep[self.padding_idx] = False
        return F.mask(gw, keep)


def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """``weight[input]``: look up rows of the ``(num_embeddings, embedding_dim)`` table.

    ``padding_idx``'s row gets no gradient; ``max_norm`` renormalises (in place, as PyTorch
    does) each looked-up row whose ``norm_type``-norm exceeds it.
    """
    if sparse:
        raise ValueError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise F.ShapeError(
            f"embedding: weight must be 2-D (num_embeddings, dim), got {weight.shape}"
        )
    index = input.data if isinstance(input, Tensor) else np.asarray(input)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {index.dtype}")
    index = backend.to_device(index, weight.device)
    n = weight.shape[0]
    if index.size and bool(((index < 0) | (index >= n)).any()):
        raise IndexError(
            f"embedding: indices must be in [0, {n}), got {index.min()}..{index.max()}"
        )
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {n} rows")
        padding_idx %= n
    if max_norm is not None:
        _renorm_rows(weight, index, max_norm, norm_type)
    return Embedding(index, padding_idx, scale_grad_by_freq)(weight)


def _renorm_rows(weight: Tensor, index: Any, max_norm: float, norm_type: float) -> None:
    """PyTorch's ``embedding_renorm_``: scale the used rows down to ``max_norm``, in place."""
    xp = _xp(weight.data)
    rows = xp.unique(index.reshape(-1))
    w = weight.data[rows]
    norms = xp.sum(xp.abs(w) ** norm_type, axis=1, keepdims=True) ** (1 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1).astype(w.dtype)
    with no_grad():
        weight.data[rows] = w * scale
    weight.bump_version()  # an in-place change, as PyTorch's embedding_renorm_


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding along a new last dim (``num_classes=-1``: max + 1).

    >>> import minigan
    >>> one_hot(minigan.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    t = tensor.data
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer tensor, got dtype {t.dtype}")
    xp = _xp(t)
    if num_classes == -1:
        num_classes = int(t.max()) + 1 if t.size else 0
    if t.size and bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(
            f"one_hot: class values must be in [0, {num_classes}), got {t.min()}..{t.max()}"
        )
    return Tensor((t[..., None] == xp.arange(num_classes)).astype(np.int64))


# --------------------------------------------------------------------------- losses


def _class_target(op: str, input: Tensor, target: Any, class_dim: int) -> Tensor:
    """An integer class-index target on ``input``'s device, shape-checked."""
    if not isinstance(target, Tensor):
        raw = target if backend.is_cupy_array(target) else np.asarray(target)
        target = Tensor(backend.to_device(raw, input.device))
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.dtype.kind in "iu" and target.shape != expected:
        raise F.ShapeError(
            f"{op}: class-index target has shape {target.shape}, expected {expected} for "
            f"input {input.shape}"
        )
    return target


def _picked(
    op: str, logp: Tensor, t: Any, weight: Tensor | None, ignore_index: int, class_dim: int
) -> tuple[Tensor, Tensor]:
    """``logp`` at each target class and each target's weight (0 where ignored)."""
    k = logp.shape[class_dim]
    xp = _xp(t)
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    if safe.size and bool(((safe < 0) | (safe >= k)).any()):  # one read of the device
        bad = t[valid]
        raise F.TargetIndexError(
            f"{op}: class indices must be in [0, {k}), got {bad.min()}..{bad.max()}"
        )
    picked = F.squeeze(gather(logp, class_dim, Tensor(xp.expand_dims(safe, class_dim))), class_dim)
    if weight is not None:
        if weight.shape != (k,):
            raise F.ShapeError(f"{op}: weight has shape {weight.shape}, expected ({k},)")
        w = weight.data.astype(logp.dtype)[safe] * valid
    else:
        w = valid.astype(logp.dtype)
    return picked, Tensor(w)


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of class indices from log-probabilities ``(N, C, ...)`` or
    ``(C,)``; ``"mean"`` divides by the summed weights of the targets not ignored."""
    return _nll("nll_loss", input, target, weight, ignore_index, reduction)


def _nll(
    op: str, input: Tensor, target: Any, weight: Tensor | None, ignore_index: int, reduction: str
) -> Tensor:
    class_dim = 0 if input.ndim == 1 else 1
    target = _class_target(op, input, target, class_dim)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices, got dtype {target.dtype}")
    picked, w = _picked(op, input, target.data, weight, ignore_index, class_dim)
    loss = -picked * w
    if reduction == "mean":
        return _mean_over(loss, w)
    return F._reduce(loss, reduction, op)


def _mean_over(loss: Tensor, w: Tensor) -> Tensor:
    """``sum(loss) / sum(w)`` for constant weights ``w``: NaN when every target is ignored
    (0 / 0, as in PyTorch), with a zero gradient then (PyTorch's too), no read of the device."""
    xp = _xp(w.data)
    total = w.data.sum()
    some = total > 0
    inv = xp.where(some, 1 / xp.where(some, total, 1), 0).astype(loss.dtype)
    nan = xp.where(some, 0, xp.nan).astype(loss.dtype)
    return F.sum(loss) * Tensor(inv) + Tensor(nan)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy from logits ``(N, C, ...)`` or ``(C,)`` and class indices (with
    ``ignore_index``) or class probabilities shaped like the logits, with PyTorch's class
    ``weight``, ``label_smoothing`` and reductions (``"mean"`` over class indices divides
    by the summed weights of the targets not ignored).

    >>> import minigan
    >>> logits = minigan.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> round(cross_entropy(logits, minigan.tensor([0, 1])).item(), 4)
    0.1269
    """
    if input.ndim < 1:
        raise F.ShapeError(f"cross_entropy: expected logits (N, C, ...) or (C,), got {input.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    k = input.shape[class_dim]
    logp = F.log_softmax(input, dim=class_dim)
    target = _class_target("cross_entropy", input, target, class_dim)
    shape = [1] * input.ndim
    shape[class_dim] = k
    w_b = None if weight is None else F.reshape(Tensor(weight.data.astype(input.dtype)), shape)
    if target.dtype.kind not in "iu":  # class probabilities
        if target.shape != input.shape:
            raise F.ShapeError(
                f"cross_entropy: input shape {input.shape} and probability target shape "
                f"{target.shape} differ"
            )
        target = F.astype(target, input.dtype)
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / k
        weighted = logp if w_b is None else logp * w_b
        loss = -F.sum(weighted * target, class_dim)
        if reduction == "mean":
            return F.sum(loss) * (k / builtins.max(input.data.size, 1))
        return F._reduce(loss, reduction, "cross_entropy")
    nll = _nll("cross_entropy", logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    valid = Tensor(target.data != ignore_index)
    smooth = -F.sum(logp if w_b is None else logp * w_b, class_dim) * F.astype(valid, input.dtype)
    if reduction == "mean":
        _, w = _picked("cross_entropy", logp, target.data, weight, ignore_index, class_dim)
        smooth = _mean_over(smooth, w)
    else:
        smooth = F._reduce(smooth, reduction, "cross_entropy")
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / k)


class BinaryCrossEntropy(Function):
    """``-(t log x + (1 - t) log(1 - x))`` with each log clamped at -100, as PyTorch;
    inputs (x, t). The gradient is PyTorch's ``(x - t) / max(x (1 - x), 1e-12)`` (and
    ``log(1 - x) - log(x)`` for the target), not the zero slope of the clamp."""

    def forward(self, x, t):
        xp = _xp(x)
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 just below
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        return ((t - 1) * log_1mx - t * log_x).astype(x.dtype, copy=False)

    def backward(self, gy):
        x, t = self.inputs
        gx = gy * (x - t) / F.clip(x * (1 - x), min=1e-12) if self.needs_grad[0] else None
        gt = gy * (F.log(1 - x) - F.log(x)) if self.needs_grad[1] else None
        return gx, gt


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Binary cross entropy on probabilities in [0, 1] (use
    ``binary_cross_entropy_with_logits`` on logits: it is stabler)."""
    target = F._as_tensor(target, input)
    F._check_target("binary_cross_entropy", input, target)
    d = input.data
    if d.size and bool(((d < 0) | (d > 1)).any()):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    loss = BinaryCrossEntropy()(input, F.astype(target, input.dtype))
    if weight is not None:
        loss = loss * weight
    return F._reduce(loss, reduction, "binary_cross_entropy")


def smooth_l1_loss(
    input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """Huber-like loss: ``0.5 d^2 / beta`` where ``|d| < beta``, ``|d| - beta / 2``
    elsewhere (``d = input - target``; ``beta=0`` is the L1 loss)."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    target = F._as_tensor(target, input)
    F._check_target("smooth_l1_loss", input, target)
    d = input - target
    ad = F.abs(d)
    if beta == 0:
        return F._reduce(ad, reduction, "smooth_l1_loss")
    loss = F.where(Tensor(ad.data < beta), d * d * (0.5 / beta), ad - 0.5 * beta)
    return F._reduce(loss, reduction, "smooth_l1_loss")


def kl_div(
    input: Tensor,
    target: Any,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence ``target * (log target - input)`` with ``input`` given as
    log-probabilities (and ``target`` too when ``log_target``); 0 where ``target`` is 0.
    ``reduction="batchmean"`` divides the sum by the batch size (the true KL divergence);
    ``"mean"`` averages over every element, as PyTorch does."""
    target = F._as_tensor(target, input)
    F._check_target("kl_div", input, target)
    if log_target:
        loss = F.exp(target) * (target - input)
    else:
        positive = Tensor(target.data > 0)
        safe = F.where(positive, target, _const(target, 1.0))
        loss = F.where(positive, target * F.log(safe), _const(target, 0.0)) - target * input
    if reduction == "batchmean":
        return F.sum(loss) * (1.0 / (input.shape[0] if input.ndim else 1))
    return F._reduce(loss, reduction, "kl_div")
