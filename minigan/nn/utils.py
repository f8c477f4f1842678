"""``nn.utils``: :func:`spectral_norm` (and its inverse), PyTorch's weight reparametrisation
for SNGAN-style discriminators.

``spectral_norm(module)`` replaces the parameter ``weight`` by ``weight_orig`` and two buffers
``weight_u`` and ``weight_v`` — PyTorch's state-dict layout, so checkpoints move both ways —
and before every forward sets ``module.weight = weight_orig / sigma``, where ``sigma`` estimates
the largest singular value of ``weight_orig`` (reshaped to a matrix with ``dim`` first) as
``u · (W v)``. In training mode each forward first runs ``n_power_iterations`` steps of power
iteration, updating ``u`` and ``v`` in place; in eval mode the stored vectors are used as they
are. The gradient flows through ``sigma`` (u and v are constants), as in PyTorch.

>>> import minigan
>>> from minigan import nn
>>> layer = nn.utils.spectral_norm(nn.Linear(4, 3))
>>> sorted(layer.state_dict())
['bias', 'weight_orig', 'weight_u', 'weight_v']
"""

from __future__ import annotations

from typing import Any

import minigan.functional as F
from minigan import backend
from minigan.nn.module import Module, Parameter
from minigan.random import generator
from minigan.tensor import Tensor, no_grad

__all__ = ["spectral_norm", "remove_spectral_norm", "SpectralNorm"]


def _normalized(v: Any, eps: float) -> Any:
    """``v / max(||v||, eps)``, on v's device (nothing is read back from a GPU)."""
    xp = backend.get_array_module(v)
    return v / xp.maximum(xp.sqrt((v * v).sum()), v.dtype.type(eps))


class SpectralNorm:
    """The forward pre-hook that computes ``module.<name>`` (PyTorch's ``SpectralNorm``)."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        if n_power_iterations < 0:
            raise ValueError(
                f"spectral_norm: n_power_iterations must be >= 0, got {n_power_iterations}"
            )
        self.name, self.n_power_iterations, self.dim, self.eps = (
            name, n_power_iterations, dim, eps,
        )

    def _matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            order = [self.dim] + [d for d in range(weight.ndim) if d != self.dim]
            weight = F.permute(weight, order)
        return F.reshape(weight, (weight.shape[0], -1))

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Tensor:
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u").data
        v = getattr(module, self.name + "_v").data
        mat = self._matrix(weight)
        if do_power_iteration:
            m = mat.data
            for _ in range(self.n_power_iterations):  # in place: the buffers are the state
                v[...] = _normalized(m.T @ u, self.eps)
                u[...] = _normalized(m @ v, self.eps)
        uc, vc = Tensor(u.copy()), Tensor(v.copy())
        sigma = F.sum(uc * F.matmul(mat, vc))
        return weight / sigma

    def __call__(self, module: Module, args: tuple) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module, module.training))


def spectral_norm(
    module: Module,
    name: str = "weight",
    n_power_iterations: int = 1,
    eps: float = 1e-12,
    dim: int | None = None,
) -> Module:
    """Reparametrise ``module.<name>`` by its spectral norm (``torch.nn.utils.spectral_norm``);
    returns ``module``. ``dim`` defaults to 1 for transposed convolutions, else 0."""
    from minigan.nn.layers import ConvTranspose2d

    hooks = module.__dict__.get("_forward_pre_hooks", {})
    if any(isinstance(h, SpectralNorm) and h.name == name for h in hooks.values()):
        raise RuntimeError(f"spectral_norm: {type(module).__name__}.{name} already has one")
    weight = module._parameters.get(name)
    if not isinstance(weight, Parameter):
        raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter {name!r}")
    if dim is None:
        dim = 1 if isinstance(module, ConvTranspose2d) else 0
    fn = SpectralNorm(name, n_power_iterations, dim % weight.ndim, eps)
    h, w = fn._matrix(weight).shape
    rng = generator()
    xp = backend.get_array_module(weight.data)
    u = _normalized(rng.standard_normal(h).astype(weight.dtype), eps)
    v = _normalized(rng.standard_normal(w).astype(weight.dtype), eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    object.__setattr__(module, name, Tensor(weight.data))
    module.register_buffer(name + "_u", xp.asarray(u))
    module.register_buffer(name + "_v", xp.asarray(v))
    module.__dict__.setdefault("_spectral_norm_handles", {})[name] = (
        module.register_forward_pre_hook(fn)
    )
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Undo :func:`spectral_norm`: ``<name>`` becomes a Parameter again holding the current
    normalised weight (as PyTorch's ``remove_spectral_norm``)."""
    handles = module.__dict__.get("_spectral_norm_handles", {})
    if name not in handles:
        raise ValueError(f"remove_spectral_norm: {type(module).__name__}.{name} has none")
    handle = handles.pop(name)
    fn = handle.hooks[handle.key]
    with no_grad():
        weight = fn.compute_weight(module, do_power_iteration=False)
    handle.remove()
    module.__dict__.pop(name, None)
    for suffix in ("_orig", "_u", "_v"):
        delattr(module, name + suffix)
    module.register_parameter(name, Parameter(weight.data.copy()))
    return module


