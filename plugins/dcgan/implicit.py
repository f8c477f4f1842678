"""The implicit mask: a per-sample ReLU network of the pixel coordinates (DCGAN's ``mask``
option ``"implicit"``, docs/quality/dcgan-recipes.md "Seventh step").

A layered generator draws one mask per image. Transposed convolutions draw it as a grid of
values, and edges and corners come out soft. Here a small trunk network maps G's input to
the weights of a second, tiny network that is evaluated at every pixel::

    f(x, y) = (x, y, x², y², xy, 1)              in the sample's own frame (below)
    h1 = relu(A1 f),  h2 = relu(A2 h1 + b2),  mask logit = (v · h2 + c) · resolution / 2

(the last column of ``A1`` is the first layer's bias).

The level sets of a ReLU network of (x, y) are polygons, and of (x², y², xy) conics, so
straight edges, sharp corners and ellipses need no convolution, and the ``· resolution / 2``
puts the logit in pixels, so the sigmoid's ramp is about a pixel wide whatever the size.
Before ``f``, the coordinates (``[-1, 1]`` at the pixel centres) are shifted by ``t``,
rotated by ``(cos, sin) = r / |r|`` and divided by ``exp(s)``, with ``r, s, t`` also from
the trunk: a shape's pose is three numbers, not a pattern spread over all of its weights.

The trunk's last bias holds the weights every sample starts from (a random network drawing
random polygons), its last weight (scaled by 0.1 at the start) the part that depends on the
input.

>>> import minigan
>>> mask = ImplicitMask(latent_dim=8, resolution=16, units=4, hidden=32)
>>> mask(minigan.randn(3, 8)).shape
(3, 1, 16, 16)
"""

from __future__ import annotations

import math

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn

#: Units in each of the per-sample network's two hidden layers (docs/quality/dcgan-recipes.md).
UNITS = 16
#: Width of the trunk's two hidden layers.
HIDDEN = 256


class ImplicitMask(nn.Module):
    """Latents (N, latent_dim) -> mask logits (N, 1, resolution, resolution), in pixels."""

    def __init__(
        self, latent_dim: int, resolution: int, units: int = UNITS, hidden: int = HIDDEN
    ) -> None:
        super().__init__()
        self.resolution, self.units = resolution, units
        axis = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution * 2 - 1
        y, x = np.meshgrid(axis, axis, indexing="ij")
        grid = minigan.tensor(np.stack([x.ravel(), y.ravel()]))  # (2, P): x, then y
        self.register_buffer("grid", grid, persistent=False)  # a constant: not saved
        # the per-sample weights, in the order the trunk gives them
        self.shapes = {
            "A1": (units, 6), "A2": (units, units), "b2": (units,),
            "v": (units,), "c": (1,), "turn": (2,), "log_scale": (1,), "shift": (2,),
        }  # fmt: skip
        size = sum(math.prod(s) for s in self.shapes.values())
        self.trunk = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, size),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default init for the trunk, then its last layer: weight x 0.1 and the
        bias a random per-sample network (the identity pose)."""
        for layer in self.trunk:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        last = self.trunk[-1]
        u = self.units
        rng = minigan.random.generator()
        start = {
            "A1": np.concatenate(
                [rng.standard_normal((u, 5)), 0.5 * rng.standard_normal((u, 1))], 1
            ),
            "A2": rng.standard_normal((u, u)) / math.sqrt(u),
            "b2": np.zeros(u),
            "v": rng.standard_normal(u) / math.sqrt(u),
            "c": np.zeros(1),
            "turn": np.array([1.0, 0.0]),
            "log_scale": np.zeros(1),
            "shift": np.zeros(2),
        }
        flat = np.concatenate([start[k].ravel() for k in self.shapes]).astype(np.float32)
        last.weight.data[...] *= 0.1
        last.bias.data[...] = minigan.tensor(flat, device=last.bias.device).data
        last.weight.bump_version()
        last.bias.bump_version()

    def forward(self, z: minigan.Tensor) -> minigan.Tensor:
        n = z.shape[0]
        flat = self.trunk(z.reshape(n, -1))
        w, i = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            w[name] = flat[:, i : i + size].reshape(n, *shape)
            i += size
        x, y = self._pose(w)
        one = minigan.ones(x.shape, device=x.device)
        f = F.stack([x, y, x * x, y * y, x * y, one], dim=2)  # (N, P, 6)
        h = F.relu(f @ w["A1"].transpose(1, 2))
        h = F.relu(h @ w["A2"].transpose(1, 2) + w["b2"].reshape(n, 1, -1))
        logit = (h @ w["v"].reshape(n, -1, 1)).reshape(n, -1) + w["c"]
        side = self.resolution
        return (logit * (side / 2)).reshape(n, 1, side, side)

    def _pose(self, w: dict[str, minigan.Tensor]) -> tuple[minigan.Tensor, minigan.Tensor]:
        """The pixel coordinates (N, P) in each sample's frame: shifted, rotated, scaled."""
        turn = w["turn"]
        turn = turn / F.clip(F.vector_norm(turn, dim=1, keepdim=True), min=1e-3)
        cos, sin = turn[:, :1], turn[:, 1:]
        dx = self.grid[0:1] - w["shift"][:, :1]
        dy = self.grid[1:2] - w["shift"][:, 1:]
        scale = F.exp(-w["log_scale"])
        return (cos * dx + sin * dy) * scale, (cos * dy - sin * dx) * scale
