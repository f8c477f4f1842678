"""Hypothesis strategies shared by the tests: shapes, broadcastable shape pairs, reduction
dims, convolution configurations that are always valid (for PyTorch as for minigan), dtypes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

float_dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 4):
    """Array shapes, e.g. ``()``, ``(3,)``, ``(2, 1, 4)``."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_pairs(max_dims: int = 4, max_side: int = 4):
    """``(shape_a, shape_b)`` that broadcast together (sizes 1, missing leading dims, ``()``)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda s: s.input_shapes)


@st.composite
def shape_and_dims(
    draw, min_dims: int = 1, max_dims: int = 4, max_side: int = 4, min_count: int = 1
):
    """``(shape, dims)`` with ``dims`` None, an int or a tuple of distinct dims (some given as
    negative numbers) over which at least ``min_count`` elements are reduced."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side))
    picked = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    if not picked:
        dims = None
        count = math.prod(shape)
    else:
        signed = [d - len(shape) if draw(st.booleans()) else d for d in picked]
        dims = signed[0] if len(signed) == 1 and draw(st.booleans()) else tuple(signed)
        count = math.prod(shape[d] for d in picked)
    if count < min_count:  # make the first reduced dim long enough
        first = picked[0] if picked else 0
        shape = shape[:first] + (shape[first] + min_count,) + shape[first + 1 :]
    return shape, dims


@dataclass(frozen=True)
class ConvConfig:
    """One 2-D (transposed) convolution: input (n, c, h, w), weight for o output channels."""

    n: int
    c: int
    o: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    output_padding: tuple[int, int] = (0, 0)
    bias: bool = True

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(O, C, kh, kw) for conv2d."""
        return (self.o, self.c, *self.kernel)

    @property
    def transposed_weight_shape(self) -> tuple[int, int, int, int]:
        """(C_in, C_out, kh, kw) for conv_transpose2d (input has c channels)."""
        return (self.c, self.o, *self.kernel)

    @property
    def terms(self) -> int:
        """Products summed per output element (scales the float32 tolerance)."""
        return max(self.c, self.o) * self.kernel[0] * self.kernel[1]

    def conv_kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def transpose_kwargs(self) -> dict:
        return dict(self.conv_kwargs(), output_padding=self.output_padding)


@st.composite
def conv_configs(
    draw,
    max_batch: int = 2,
    max_channels: int = 3,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_dilation: int = 2,
    max_padding: int = 2,
):
    """Valid conv2d configurations: the output has at least one pixel per dimension."""
    per_dim = []
    for _ in range(2):
        k = draw(st.integers(1, max_kernel))
        s = draw(st.integers(1, max_stride))
        d = draw(st.integers(1, max_dilation))
        p = draw(st.integers(0, max_padding))
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        size = draw(st.integers(smallest, smallest + 4))
        per_dim.append((k, s, d, p, size))
    (kh, sh, dh, ph, h), (kw, sw, dw, pw, w) = per_dim
    return ConvConfig(
        n=draw(st.integers(1, max_batch)),
        c=draw(st.integers(1, max_channels)),
        o=draw(st.integers(1, max_channels)),
        h=h,
        w=w,
        kernel=(kh, kw),
        stride=(sh, sw),
        padding=(ph, pw),
        dilation=(dh, dw),
        bias=draw(st.booleans()),
    )


@st.composite
def conv_transpose_configs(
    draw,
    max_batch: int = 2,
    max_channels: int = 3,
    max_kernel: int = 3,
    max_stride: int = 3,
    max_dilation: int = 2,
    max_padding: int = 2,
    max_size: int = 4,
):
    """Valid conv_transpose2d configurations: ``output_padding < max(stride, dilation)``
    and a non-empty output."""
    per_dim = []
    for _ in range(2):
        k = draw(st.integers(1, max_kernel))
        s = draw(st.integers(1, max_stride))
        d = draw(st.integers(1, max_dilation))
        op = draw(st.integers(0, max(s, d) - 1))
        size = draw(st.integers(1, max_size))
        full = (size - 1) * s + d * (k - 1) + op  # output size minus 1 without padding
        p = min(draw(st.integers(0, max_padding)), full // 2)
        per_dim.append((k, s, d, p, op, size))
    (kh, sh, dh, ph, oph, h), (kw, sw, dw, pw, opw, w) = per_dim
    return ConvConfig(
        n=draw(st.integers(1, max_batch)),
        c=draw(st.integers(1, max_channels)),
        o=draw(st.integers(1, max_channels)),
        h=h,
        w=w,
        kernel=(kh, kw),
        stride=(sh, sw),
        padding=(ph, pw),
        dilation=(dh, dw),
        output_padding=(oph, opw),
        bias=draw(st.booleans()),
    )
