"""``MultiheadAttention``: PyTorch's layer (parameter names, layout, masks and return values)
on the ops of :func:`minigan.functional.scaled_dot_product_attention`.

Parameters, as in PyTorch: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E) stack the
query, key and value projections (``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` instead
when ``kdim``/``vdim`` differ from E), and ``out_proj`` is a Linear(E, E) — so a PyTorch
state dict loads as it is.

>>> import minigan
>>> from minigan import nn
>>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
>>> x = minigan.randn(3, 5, 8)
>>> out, weights = mha(x, x, x)
>>> out.shape, weights.shape
((3, 5, 8), (3, 5, 5))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import minigan.functional as F
from minigan import backend
from minigan.nn import init
from minigan.nn.layers import Linear, _check_tensor
from minigan.nn.module import Module, Parameter
from minigan.tensor import Tensor

__all__ = ["MultiheadAttention"]


def _additive(mask: Any, like: Tensor, name: str) -> Tensor | None:
    """PyTorch's MHA masks: boolean True = *not* attended (-inf), floats are added."""
    if mask is None:
        return None
    m = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask))
    m = Tensor(backend.to_device(m.data, like.device))
    if m.dtype == np.bool_:
        xp = backend.get_array_module(m.data)
        return Tensor(xp.where(m.data, like.dtype.type(-np.inf), like.dtype.type(0)))
    if m.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {name} must be bool or float, got {m.dtype}")
    return F.astype(m, like.dtype)


class MultiheadAttention(Module):
    """Multi-head attention ``softmax(q kᵀ/√d + mask) v`` over ``num_heads`` heads of size
    ``embed_dim / num_heads``; inputs (L, N, E), or (N, L, E) with ``batch_first``, or
    unbatched (L, E). Returns ``(output, weights)``; ``weights`` (averaged over heads unless
    ``average_attn_weights=False``) is None when ``need_weights=False``."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                f"num_heads={num_heads}"
            )
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.batch_first = batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * e, e), dtype=np.float32))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((e, e), dtype=np.float32))
            self.k_proj_weight = Parameter(np.empty((e, self.kdim), dtype=np.float32))
            self.v_proj_weight = Parameter(np.empty((e, self.vdim), dtype=np.float32))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * e, dtype=np.float32))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, i: int) -> Tensor:
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * e : (i + 1) * e]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * e : (i + 1) * e]
        return F.linear(x, w, b)

    def _heads(self, x: Tensor) -> Tensor:
        """(N, L, E) -> (N, H, L, E/H)."""
        n, l, _ = x.shape
        return F.transpose(F.reshape(x, (n, l, self.num_heads, self.head_dim)), 1, 2)

    def _mask(self, attn_mask, key_padding_mask, is_causal, q: Tensor, n: int, l: int, s: int):
        bias = _additive(attn_mask, q, "attn_mask")
        if bias is None and is_causal:
            causal = np.where(np.tril(np.ones((l, s), dtype=bool)), 0.0, -np.inf)
            bias = Tensor(backend.to_device(causal.astype(q.dtype), q.device))
        if bias is not None and bias.ndim == 3:  # (N·H, L, S)
            bias = F.reshape(bias, (n, self.num_heads, l, s))
        pad = _additive(key_padding_mask, q, "key_padding_mask")
        if pad is not None:
            pad = F.reshape(pad, (n, 1, 1, s))
            bias = pad if bias is None else bias + pad
        return bias

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        name = f"MultiheadAttention({self.embed_dim}, heads={self.num_heads})"
        for t in (query, key, value):
            _check_tensor(name, t)
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (F.unsqueeze(t, 1) for t in (query, key, value))
            if key_padding_mask is not None:
                raw = getattr(key_padding_mask, "data", key_padding_mask)
                key_padding_mask = backend.get_array_module(raw).asarray(raw)[None]
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{name}: expected query (L, N, {self.embed_dim})"
                f"{' (batch_first: N, L, E)' if self.batch_first else ''}, got {query.shape}"
            )
        if not self.batch_first:
            query, key, value = (F.transpose(t, 0, 1) for t in (query, key, value))
        n, l, _ = query.shape
        s = key.shape[1]
        q, k, v = (self._heads(self._project(t, i)) for i, t in enumerate((query, key, value)))
        scores = F.matmul(q, F.transpose(k, -2, -1)) * (1 / math.sqrt(self.head_dim))
        bias = self._mask(attn_mask, key_padding_mask, is_causal, q, n, l, s)
        if bias is not None:
            scores = scores + bias
        weights = F.softmax(scores, dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = F.reshape(F.transpose(F.matmul(weights, v), 1, 2), (n, l, self.embed_dim))
        out = self.out_proj(out)
        if not self.batch_first:
            out = F.transpose(out, 0, 1)
        if unbatched:
            out = F.squeeze(out, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = F.mean(weights, 1)
        return out, F.squeeze(weights, 0) if unbatched else weights

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}"
        )
