"""The diffusion process of DDPM (Ho et al., 2020) and the DDIM sampler (Song et al., 2021),
on plain NumPy schedules: noise schedules, the forward (noising) process and the reverse
steps. The network predicts the noise ``eps`` that was added (epsilon prediction).

>>> s = Schedule.make("linear", 100)
>>> s.betas.shape, bool(s.alpha_bar[-1] < 0.5 < s.alpha_bar[0])
((100,), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import minigan
from minigan.tensor import Tensor


@dataclass(frozen=True)
class Schedule:
    """``betas[t]`` for ``t = 0 .. T-1`` and the products ``alpha_bar[t] = prod(1 - betas)``."""

    betas: np.ndarray
    alpha_bar: np.ndarray

    @classmethod
    def make(cls, kind: str, timesteps: int) -> Schedule:
        """``"linear"``: betas from 1e-4 to 0.02, rescaled to ``timesteps`` steps (Ho et al.);
        ``"cosine"``: ``alpha_bar(t) = cos²((t/T + s)/(1 + s)·π/2)`` with s = 0.008, betas
        clipped at 0.999 (Nichol & Dhariwal, 2021)."""
        if timesteps < 2:
            raise ValueError(f"ddpm: timesteps must be at least 2, got {timesteps}")
        if kind == "linear":
            scale = 1000 / timesteps
            betas = np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps)
        elif kind == "cosine":
            s = 0.008
            f = np.cos((np.arange(timesteps + 1) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
        else:
            raise ValueError(f"ddpm: schedule must be 'linear' or 'cosine', got {kind!r}")
        return cls(betas, np.cumprod(1 - betas))

    @property
    def timesteps(self) -> int:
        return len(self.betas)


def _column(values: np.ndarray, like: Tensor) -> Tensor:
    """Per-sample scalars as an (N, 1, 1, 1) tensor on ``like``'s device and dtype."""
    arr = np.asarray(values, dtype=like.dtype).reshape(-1, 1, 1, 1)
    return minigan.tensor(arr, device=like.device)


def q_sample(schedule: Schedule, x0: Tensor, t: np.ndarray, noise: Tensor) -> Tensor:
    """The forward process: ``x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε``."""
    ab = schedule.alpha_bar[t]
    return _column(np.sqrt(ab), x0) * x0 + _column(np.sqrt(1 - ab), x0) * noise


EpsModel = Callable[[Tensor, np.ndarray], Tensor]
NoiseSource = Callable[[int], Tensor]


def sample_loop(
    schedule: Schedule,
    eps_model: EpsModel,
    x: Tensor,
    noise: NoiseSource,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
) -> Tensor:
    """Denoise ``x`` (pure noise x_T) to an image x_0.

    ``sampler="ddpm"``: ancestral sampling through every timestep (posterior variance
    β̃_t). ``sampler="ddim"``: ``steps`` evenly spaced timesteps; ``eta=0`` is deterministic,
    ``eta=1`` matches DDPM's variance. ``noise(k)`` gives the fresh noise of step k.
    Predicted x_0 is clipped to [-1, 1] at every step (as the reference implementations do).
    """
    T = schedule.timesteps
    if sampler == "ddpm":
        times = list(range(T - 1, -1, -1))
    elif sampler == "ddim":
        n = max(1, min(int(steps), T))
        times = sorted({int(round(v)) for v in np.linspace(0, T - 1, n)}, reverse=True)
    else:
        raise ValueError(f"ddpm: sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    ab = schedule.alpha_bar
    for k, t in enumerate(times):
        prev = times[k + 1] if k + 1 < len(times) else -1
        a_t, a_prev = ab[t], (ab[prev] if prev >= 0 else 1.0)
        eps = eps_model(x, np.full(x.shape[0], t))
        x0 = ((x - eps * math.sqrt(1 - a_t)) * (1 / math.sqrt(a_t))).clip(-1.0, 1.0)
        if sampler == "ddpm":
            var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)  # posterior variance β̃_t
        else:
            var = eta**2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        # the direction to x_t, from the noise the model saw (x0 clipped, eps re-derived)
        eps = (x - x0 * math.sqrt(a_t)) * (1 / math.sqrt(1 - a_t))
        x = x0 * math.sqrt(a_prev) + eps * math.sqrt(max(1 - a_prev - var, 0.0))
        if var > 0 and prev >= 0:
            x = x + noise(k) * math.sqrt(var)
    return x
