"""The noise-prediction network: a small U-Net (Ho et al., 2020) written with minigan's
public layers — GroupNorm, SiLU, 3x3 convolutions, multi-head self-attention at 8x8 — and
sinusoidal time embeddings.

>>> import minigan
>>> net = UNet(channels=1, base=8, mult=(1, 2), attn_resolution=8, resolution=16)
>>> net(minigan.zeros(2, 1, 16, 16), np.array([0, 5])).shape
(2, 1, 16, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn
from minigan.tensor import Tensor


def silu(x: Tensor) -> Tensor:
    """``x·sigmoid(x)`` (minigan's own ``F.silu`` where it exists)."""
    fn = getattr(F, "silu", None)
    return fn(x) if fn is not None else x * F.sigmoid(x)


def timestep_embedding(t: np.ndarray, dim: int) -> np.ndarray:
    """Sinusoidal embeddings of the integer timesteps ``t`` (N,) -> (N, dim), float32:
    ``[sin(t·f_k), cos(t·f_k)]`` with frequencies ``f_k = 10000^(-k/(dim/2))``."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    args = np.asarray(t, dtype=np.float64)[:, None] * freqs[None]
    emb = np.concatenate([np.sin(args), np.cos(args)], axis=1)
    if dim % 2:
        emb = np.concatenate([emb, np.zeros((len(t), 1))], axis=1)
    return emb.astype(np.float32)


def _groups(channels: int) -> int:
    """GroupNorm's group count: up to 8, dividing the channels."""
    return math.gcd(channels, 8)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus the projected time embedding, GroupNorm → SiLU →
    dropout → conv; a 1x1 conv on the skip path when the width changes."""

    def __init__(self, cin: int, cout: int, temb: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(silu(self.norm1(x)))
        h = h + self.temb(silu(emb)).reshape(h.shape[0], -1, 1, 1)
        h = self.conv2(self.dropout(silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Self-attention over the pixels of a feature map (GroupNorm, multi-head attention,
    residual)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x).reshape(n, c, h * w).transpose(1, 2)  # (N, HW, C)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class UNet(nn.Module):
    """``levels = len(mult)`` resolutions, one ResBlock each way per level (attention where
    the feature map is ``attn_resolution`` wide), stride-2 convs down, nearest-neighbour
    upsampling + conv up, skip connections between the two sides."""

    def __init__(
        self,
        channels: int,
        base: int = 32,
        mult: Sequence[int] = (1, 2, 2),
        attn_resolution: int = 8,
        resolution: int = 32,
        heads: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.base = base
        temb = 4 * base
        self.time1, self.time2 = nn.Linear(base, temb), nn.Linear(temb, temb)
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        widths = [base * m for m in mult]
        cin, res = self._build_down(widths, temb, heads, dropout, attn_resolution, resolution)
        self.mid1 = ResBlock(cin, cin, temb, dropout)
        self.mid_attn = AttnBlock(cin, heads)
        self.mid2 = ResBlock(cin, cin, temb, dropout)
        cin = self._build_up(widths, cin, res, temb, heads, dropout, attn_resolution)
        self.out_norm = nn.GroupNorm(_groups(cin), cin)
        self.out = nn.Conv2d(cin, channels, 3, padding=1)

    def _build_down(self, widths, temb, heads, dropout, attn_res, res) -> tuple[int, int]:
        self.down, self.down_attn = nn.ModuleList(), nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = self.base
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            self.down.append(ResBlock(cin, w, temb, dropout))
            self.down_attn.append(AttnBlock(w, heads) if res == attn_res else nn.Identity())
            down = nn.Identity() if last else nn.Conv2d(w, w, 3, stride=2, padding=1)
            self.downsample.append(down)
            cin, res = w, res if last else res // 2
        return cin, res

    def _build_up(self, widths, cin, res, temb, heads, dropout, attn_res) -> int:
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            first = i == 0
            self.up.append(ResBlock(cin + w, w, temb, dropout))
            self.up_attn.append(AttnBlock(w, heads) if res == attn_res else nn.Identity())
            self.upsample.append(nn.Identity() if first else nn.Conv2d(w, w, 3, padding=1))
            cin, res = w, res if first else res * 2
        return cin

    def forward(self, x: Tensor, t: np.ndarray) -> Tensor:
        emb = minigan.tensor(timestep_embedding(t, self.base), device=x.device).to(dtype=x.dtype)
        emb = self.time2(silu(self.time1(emb)))
        h = self.stem(x)
        skips = []
        for block, attn, down in zip(self.down, self.down_attn, self.downsample):
            h = attn(block(h, emb))
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block, attn, up in zip(self.up, self.up_attn, self.upsample):
            h = attn(block(F.cat([h, skips.pop()], 1), emb))
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(silu(self.out_norm(h)))
