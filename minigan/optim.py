"""Optimizers with PyTorch's update rules, hyper-parameters and ``state_dict`` layout.

An optimizer holds *param groups* (dicts with a ``"params"`` list and that group's
hyper-parameters) and a per-parameter *state* (momentum buffers, Adam's moments ...).
:meth:`Optimizer.step` updates ``p.data`` in place with raw array operations -- no graph is
recorded -- keeping every array's dtype (Python-float hyper-parameters never upcast float32
under NumPy 2) and device (``xp`` is NumPy or CuPy, whichever owns the parameter).

The arithmetic follows ``torch.optim`` operation by operation, so a minigan run and a
PyTorch run from the same weights and gradients follow the same trajectory.

>>> import minigan
>>> w = minigan.tensor([1.0, -2.0], requires_grad=True)
>>> opt = SGD([w], lr=0.1)
>>> (w * w).sum().backward()
>>> opt.step()
>>> w
tensor([ 0.8, -1.6], requires_grad=True)

Must not import ``nn``, ``functional``, the training modules, the kernels or any plugin:
optimizers update raw arrays.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from minigan import lr_scheduler  # imports nothing of optim at import time (no cycle)
from minigan.backend import device_of, get_array_module, is_cupy_array, to_device
from minigan.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]

ParamsArg = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: param groups, per-parameter state, ``zero_grad`` and ``state_dict``.

    Subclasses implement :meth:`step`. ``params`` is an iterable of Tensors or of dicts
    (param groups), each dict overriding some of ``defaults``.

    >>> import minigan
    >>> a, b = minigan.tensor([1.0], requires_grad=True), minigan.tensor([2.0], requires_grad=True)
    >>> opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    >>> [group["lr"] for group in opt.param_groups]
    [0.1, 0.01]
    """

    def __init__(self, params: ParamsArg, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        # Per-parameter state, keyed by the parameter object itself (Tensors hash by identity).
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or dicts, got a single Tensor")
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap each subclass's ``step`` so that it bumps the version of every parameter it
        updated (those with a gradient), whatever way it writes ``p.data``: a backward through
        a graph built before the step then raises, as in PyTorch, instead of using new values."""
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is None:
            return

        @functools.wraps(step)
        def step_and_bump(self: Optimizer, closure: Callable[[], Any] | None = None) -> Any:
            loss = step(self, closure)
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.bump_version()
            return loss

        cls.step = step_and_bump  # type: ignore[method-assign]

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters (e.g. a newly unfrozen layer) with its own settings."""
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        new_group = {**self.defaults, **group, "params": params}
        self.param_groups.append(new_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (or, with ``set_to_none=False``, fill it with zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters once (each optimizer defines its rule)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    @staticmethod
    def _gradients(group: dict[str, Any]) -> Iterator[tuple[Tensor, Any]]:
        """``(parameter, gradient array)`` for each parameter of ``group`` that has a gradient,
        the gradient negated when the group ``maximize``s (PyTorch's ``maximize=True``)."""
        for p in group["params"]:
            if p.grad is not None:
                yield p, (-p.grad.data if group["maximize"] else p.grad.data)

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout::

            {"state": {0: {"step": 3, "exp_avg": array, ...}, ...},
             "param_groups": [{"lr": 0.001, ..., "params": [0, 1, ...]}, ...]}

        Parameters are replaced by their index, counted across groups in order. Arrays are
        shared with the optimizer (as in PyTorch): save or copy them before stepping on.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            packed_groups.append(packed)
        state = {
            index_of[id(p)]: dict(self.state[p])
            for group in self.param_groups
            for p in group["params"]
            if p in self.state
        }
        return {"state": state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (this optimizer's, a loaded checkpoint's, or
        PyTorch's converted to arrays). Arrays are copied onto each parameter's device;
        floating-point state is cast to the parameter's dtype."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for i, (ours, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(ours["params"]) != len(saved["params"]):
                raise ValueError(
                    f"parameter group {i} has {len(ours['params'])} parameters, but the loaded "
                    f"state dict's group has {len(saved['params'])}"
                )

        param_of = {
            int(index): p
            for ours, saved in zip(self.param_groups, saved_groups, strict=True)
            for index, p in zip(saved["params"], ours["params"], strict=True)
        }
        self.state = {}
        for index, saved_state in state_dict["state"].items():
            p = param_of.get(int(index))
            if p is None:
                continue
            self.state[p] = {key: _state_value(key, value, p) for key, value in saved_state.items()}

        for i, saved in enumerate(saved_groups):
            params = self.param_groups[i]["params"]
            self.param_groups[i] = {**saved, "params": params}

    def state_of(self, p: Tensor) -> dict[str, Any]:
        """``p``'s state; arrays in it follow ``p`` to its device if it moved since (say by
        ``Module.to("cuda")`` after some steps on the CPU)."""
        state = self.state.setdefault(p, {})
        for key, value in state.items():
            if _is_array(value) and device_of(value) != p.device:
                state[key] = to_device(value, p.device)
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or is_cupy_array(value)


def _state_value(key: str, value: Any, p: Tensor) -> Any:
    """A loaded state entry, as the optimizer keeps it: ``step`` as a Python int, arrays as
    fresh arrays on the parameter's device (floating ones in the parameter's dtype)."""
    if isinstance(value, Tensor):
        value = value.data
    elif not _is_array(value) and hasattr(value, "__array__"):
        value = np.asarray(value)  # e.g. a torch tensor from a PyTorch state dict
    if key == "step":
        return int(to_device(value, "cpu")) if _is_array(value) else int(value)
    if not _is_array(value):
        return value  # None (an unused momentum buffer) or a plain number
    value = to_device(value, p.device)
    xp = get_array_module(value)
    dtype = p.dtype if value.dtype.kind == "f" else value.dtype
    return xp.array(value, dtype=dtype, copy=True)  # never alias the caller's arrays


def _float(value: Any) -> float:
    """Hyper-parameters as Python floats: a NumPy float64 scalar would upcast float32."""
    return float(value)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (heavy-ball or Nesterov),
    dampening and L2 weight decay -- exactly ``torch.optim.SGD``::

        g = grad + weight_decay * p
        buf = g                                   (first step)
        buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf   if nesterov   else   buf
        p = p - lr * g

    >>> import minigan
    >>> w = minigan.tensor([1.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> round(w.item(), 4)   # 1 - 0.2 = 0.8; then g = 1.6, buf = 0.9*2 + 1.6 = 3.4
    0.46
    """

    def __init__(
        self,
        params: ParamsArg,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr = _float(group["lr"])
            momentum = _float(group["momentum"])
            dampening = _float(group["dampening"])
            weight_decay = _float(group["weight_decay"])
            for p, g in self._gradients(group):
                if weight_decay != 0:
                    g = g + weight_decay * p.data
                if momentum != 0:
                    state = self.state_of(p)
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.copy()
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * g
                    g = g + momentum * buf if group["nesterov"] else buf
                p.data -= lr * g
        return loss


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction, L2 ``weight_decay`` and AMSGrad::

        g = grad + weight_decay * p
        m = m + (1 - beta1) * (g - m)             (torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                     (amsgrad: use v_max below)
        p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``t`` (``state["step"]``) is counted per parameter. :class:`AdamW` is this step with the
    weight decay applied to the parameters instead of the gradient.

    >>> import minigan
    >>> w = minigan.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 6) for v in w.tolist()]   # the first Adam step moves each coordinate by lr
    [0.9, -0.9]
    """

    _decoupled_weight_decay = False

    def __init__(
        self,
        params: ParamsArg,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"invalid epsilon value: {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid beta parameters: {betas} (each must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr = _float(group["lr"])
            beta1, beta2 = (_float(b) for b in group["betas"])
            eps = _float(group["eps"])
            weight_decay = _float(group["weight_decay"])
            for p, g in self._gradients(group):
                xp = get_array_module(p.data)
                state = self.state_of(p)
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

                if weight_decay != 0:
                    if self._decoupled_weight_decay:  # AdamW
                        p.data *= 1 - lr * weight_decay
                    else:
                        g = g + weight_decay * p.data
                _lerp_(exp_avg, g, 1 - beta1)
                exp_avg_sq *= beta2
                exp_avg_sq += (1 - beta2) * g * g

                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                bias_correction2_sqrt = math.sqrt(bias_correction2)
                if group["amsgrad"]:
                    max_exp_avg_sq = state["max_exp_avg_sq"]
                    xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
                    denom = xp.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
                else:
                    denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
                p.data += -step_size * exp_avg / denom
        return loss


def _lerp_(start: Any, end: Any, weight: float) -> None:
    """``start += weight * (end - start)`` in place, evaluated as ``torch.lerp`` does
    (from whichever end is closer, which keeps it exact at weight 0 and 1)."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), exactly ``torch.optim.AdamW``:
    the parameters are first shrunk, ``p = p * (1 - lr * weight_decay)``, then take an Adam
    step without L2 term. The default ``weight_decay`` is 0.01.

    >>> import minigan
    >>> w = minigan.tensor([1.0], requires_grad=True)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 6)   # 1 * (1 - 0.1 * 0.5) - 0.1
    0.85
    """

    def __init__(
        self,
        params: ParamsArg,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)

    _decoupled_weight_decay = True


class RMSprop(Optimizer):
    """RMSprop with PyTorch's update rule, momentum, ``centered`` variant and L2
    ``weight_decay`` -- exactly ``torch.optim.RMSprop``::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - m * m) + eps   with   m = m + (1 - alpha) * (g - m)   (centered)
        avg = sqrt(v) + eps                                                  (otherwise)
        buf = momentum * buf + g / avg;  p = p - lr * buf                    (momentum > 0)
        p = p - lr * g / avg                                                 (otherwise)

    >>> import minigan
    >>> w = minigan.tensor([1.0], requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01, alpha=0.99)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 4)   # 1 - 0.01 * 2 / sqrt(0.01 * 4)
    0.9
    """

    def __init__(
        self,
        params: ParamsArg,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        checks = {"learning rate": lr, "epsilon value": eps, "momentum value": momentum,
                  "weight_decay value": weight_decay, "alpha value": alpha}  # fmt: skip
        for name, value in checks.items():
            if value < 0.0:
                raise ValueError(f"invalid {name}: {value}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)  # fmt: skip
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, alpha, eps = _float(group["lr"]), _float(group["alpha"]), _float(group["eps"])
            weight_decay, momentum = _float(group["weight_decay"]), _float(group["momentum"])
            for p, g in self._gradients(group):
                xp = get_array_module(p.data)
                state = self.state_of(p)
                if not state:
                    state["step"] = 0
                    state["square_avg"] = xp.zeros_like(p.data)
                    if momentum > 0:
                        state["momentum_buffer"] = xp.zeros_like(p.data)
                    if group["centered"]:
                        state["grad_avg"] = xp.zeros_like(p.data)
                state["step"] += 1
                if weight_decay != 0:
                    g = g + weight_decay * p.data
                square_avg = state["square_avg"]
                square_avg *= alpha
                square_avg += (1 - alpha) * g * g
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    _lerp_(grad_avg, g, 1 - alpha)
                    avg = xp.sqrt(square_avg - grad_avg * grad_avg)
                else:
                    avg = xp.sqrt(square_avg)
                avg += eps
                if momentum > 0:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += g / avg
                    p.data -= lr * buf
                else:
                    p.data += -lr * (g / avg)
        return loss


# ``minigan.optim.lr_scheduler``, PyTorch's import path, for the module minigan/lr_scheduler.py
# (optim stays a single module; the alias makes ``import minigan.optim.lr_scheduler`` and
# ``from minigan.optim.lr_scheduler import StepLR`` work)
sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler
