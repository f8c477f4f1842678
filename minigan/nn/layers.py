"""The layers: thin :class:`Module` wrappers around :mod:`minigan.functional`.

A layer owns its parameters (created float32 and initialised exactly as PyTorch does, from
:func:`minigan.random.generator`), checks its input -- rank, channels or features, dtype,
device -- and raises an error that names the layer and both shapes, then calls the
functional op. The functional ops themselves do not validate layer-level semantics.

Must not import ``optim``, the training modules, the kernels (layers call
:mod:`minigan.functional`) or any plugin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import minigan.functional as F
from minigan.nn import init
from minigan.nn.module import Module, Parameter
from minigan.tensor import Tensor

__all__ = [
    "Identity",
    "Linear",
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "InstanceNorm2d",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "Dropout",
    "Flatten",
    "Unflatten",
    "Upsample",
    "AvgPool2d",
    "MaxPool2d",
    "GELU",
    "SiLU",
    "Mish",
    "ELU",
    "SELU",
    "CELU",
    "Hardtanh",
    "ReLU6",
    "Hardswish",
    "Hardsigmoid",
    "Softsign",
    "LogSigmoid",
    "Embedding",
]

_IntPair = int | tuple[int, int]


# --------------------------------------------------------------------------- helpers


def _pair(value: _IntPair, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; a 2-sequence passes through as a tuple."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (pair[0], pair[1])


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _uniform_fan_in_init(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and convolutions: kaiming_uniform(a=√5) for the weight,
    which is U(-1/√fan_in, 1/√fan_in), and the same bound for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


def _check_tensor(layer: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected a minigan Tensor as input, got {type(x).__name__}")


def _check_dtype_and_device(layer: str, x: Tensor, param: Tensor) -> None:
    """The input must have the parameters' dtype and live on their device."""
    if x.dtype != param.dtype:
        raise TypeError(
            f"{layer}: input dtype is {x.dtype}, but the layer's parameters are {param.dtype}; "
            f"convert the input with x.to(dtype=...) or the layer with layer.to(dtype=...)"
        )
    if x.device != param.device:
        raise RuntimeError(
            f"{layer}: input is on device '{x.device}', but the layer's parameters are on "
            f"'{param.device}'; move one of them with .to(device=...)"
        )


def _check_floating(layer: str, x: Tensor) -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{layer}: expected a floating-point input, got dtype {x.dtype}")


def _check_rank(layer: str, x: Tensor, ranks: Sequence[int], layout: str) -> None:
    if x.ndim not in ranks:
        wanted = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{layer}: expected a {wanted} input {layout}, got shape {x.shape}")


def _check_channels(layer: str, x: Tensor, expected: int, noun: str = "channel") -> None:
    if x.shape[1] != expected:
        raise ValueError(
            f"{layer}: input has {_plural(x.shape[1], noun)}, expected {expected}; "
            f"input shape {x.shape}"
        )


# --------------------------------------------------------------------------- basic layers


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored, as in PyTorch).

    >>> import minigan
    >>> Identity()(minigan.tensor([1.0, 2.0]))
    tensor([1., 2.])
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dimension; weight has shape ``(out, in)``.

    >>> import minigan
    >>> layer = Linear(3, 2)
    >>> layer(minigan.tensor([[1.0, 2.0, 3.0]])).shape
    (1, 2)
    >>> layer.weight.shape, layer.bias.shape
    ((2, 3), (2,))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_fan_in_init(self.weight, self.bias)

    def _name(self) -> str:
        return f"Linear({self.in_features}→{self.out_features})"

    def forward(self, x: Tensor) -> Tensor:
        name = self._name()
        _check_tensor(name, x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            features = x.shape[-1] if x.ndim else 0
            raise ValueError(
                f"{name}: input has {_plural(features, 'feature')}, expected "
                f"{self.in_features}; input shape {x.shape}"
            )
        _check_dtype_and_device(name, x, self.weight)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


# --------------------------------------------------------------------------- convolutions


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: hyper-parameters, init, checks and repr."""

    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntPair,
        stride: _IntPair,
        padding: _IntPair | str,
        dilation: _IntPair,
        output_padding: _IntPair,
        bias: bool,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(
                f"{name}: channels must be positive, "
                f"got in_channels={in_channels}, out_channels={out_channels}"
            )
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels={in_channels} and out_channels={out_channels} must both "
                f"be divisible by groups={groups}"
            )
        modes = ("zeros",) if self.transposed else ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(f"{name}: padding_mode must be one of {modes}, got {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.padding_mode = padding_mode
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.padding = self._padding(padding)
        self.output_padding = _pair(output_padding, "output_padding")
        # PyTorch's layouts: (out, in/groups, kh, kw) for a convolution, (in, out/groups, kh,
        # kw) transposed.
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _padding(self, padding: _IntPair | str) -> Any:
        if not isinstance(padding, str):
            return _pair(padding, "padding")
        if self.transposed or padding not in ("same", "valid"):
            raise ValueError(
                f"{type(self).__name__}: padding must be an int or a pair"
                + ("" if self.transposed else ", 'same' or 'valid'")
                + f", got {padding!r}"
            )
        if padding == "same" and self.stride != (1, 1):
            raise ValueError(
                f"{type(self).__name__}: padding='same' is not supported for strided "
                f"convolutions (stride {self.stride})"
            )
        return padding

    def reset_parameters(self) -> None:
        _uniform_fan_in_init(self.weight, self.bias)

    def _name(self) -> str:
        return f"{type(self).__name__}({self.in_channels}→{self.out_channels})"

    def _check_input(self, x: Tensor) -> None:
        name = self._name()
        _check_tensor(name, x)
        _check_rank(name, x, (4,), "(N, C, H, W)")
        _check_channels(name, x, self.in_channels)
        _check_dtype_and_device(name, x, self.weight)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as in PyTorch) of an ``(N, C, H, W)`` input.

    >>> import numpy as np, minigan
    >>> conv = Conv2d(3, 8, kernel_size=3, padding=1)
    >>> conv(minigan.tensor(np.zeros((2, 3, 16, 16), dtype=np.float32))).shape
    (2, 8, 16, 16)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntPair,
        stride: _IntPair = 1,
        padding: _IntPair | str = 0,
        dilation: _IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, 0, bias, groups,
            padding_mode,
        )

    def _pad_widths(self) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` of the padding, PyTorch's split for ``"same"``."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            total = [self.dilation[i] * (self.kernel_size[i] - 1) for i in (0, 1)]
            h, w = total[0] // 2, total[1] // 2
            return (w, total[1] - w, h, total[0] - h)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        left, right, top, bottom = self._pad_widths()
        padded = (x.shape[2] + top + bottom, x.shape[3] + left + right)
        extent = tuple(self.dilation[i] * (self.kernel_size[i] - 1) + 1 for i in (0, 1))
        if padded[0] < extent[0] or padded[1] < extent[1]:
            raise ValueError(
                f"{self._name()}: the padded input ({padded[0]} x {padded[1]}) is smaller than "
                f"the (dilated) kernel ({extent[0]} x {extent[1]}); input shape {x.shape}"
            )
        padding: Any = self.padding
        if self.padding_mode != "zeros":
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, (left, right, top, bottom), mode=mode)
            padding = 0
        return F.conv2d(
            x,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=padding,
            dilation=self.dilation,
            groups=self.groups,
        )


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the gradient of Conv2d): upsamples by ``stride``.

    Output size per axis: ``(H - 1) * stride - 2 * padding + dilation * (k - 1)
    + output_padding + 1``. The weight has PyTorch's shape ``(in, out, kh, kw)``.

    >>> import numpy as np, minigan
    >>> up = ConvTranspose2d(8, 3, kernel_size=4, stride=2, padding=1)
    >>> up(minigan.tensor(np.zeros((2, 8, 8, 8), dtype=np.float32))).shape
    (2, 3, 16, 16)
    """

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntPair,
        stride: _IntPair = 1,
        padding: _IntPair = 0,
        output_padding: _IntPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: _IntPair = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            output_padding,
            bias,
            groups,
            padding_mode,
        )
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= s and op >= d:
                raise ValueError(
                    f"{self._name()}: output_padding {self.output_padding} must be smaller "
                    f"than either stride {self.stride} or dilation {self.dilation}"
                )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv_transpose2d(
            x,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            dilation=self.dilation,
        )


# --------------------------------------------------------------------------- normalisation


class _NormBase(Module):
    """Per-channel affine parameters and (optionally) running statistics."""

    def __init__(
        self,
        num_features: int,
        eps: float,
        momentum: float | None,
        affine: bool,
        track_running_stats: bool,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
            if bias:
                self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0
            for buffer in (self.running_mean, self.running_var, self.num_batches_tracked):
                buffer.bump_version()

    def _name(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def _check_dtype(self, x: Tensor) -> None:
        name = self._name()
        _check_floating(name, x)
        reference = self.weight if self.weight is not None else self.running_mean
        if reference is not None:
            _check_dtype_and_device(name, x, reference)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    _ranks: tuple[int, ...] = ()
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias)

    def forward(self, x: Tensor) -> Tensor:
        name = self._name()
        _check_tensor(name, x)
        _check_rank(name, x, self._ranks, self._layout)
        _check_channels(name, x, self.num_features)
        self._check_dtype(x)
        if self.training and x.shape[1] and x.numel() // x.shape[1] <= 1:
            raise ValueError(
                f"{name}: expected more than 1 value per channel when training, "
                f"got input shape {x.shape}"
            )

        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())

        # Batch statistics while training, or when there are no running statistics to use;
        # F.batch_norm updates the running arrays in place when training.
        running_mean = self.running_mean.data if self.track_running_stats else None
        running_var = self.running_var.data if self.track_running_stats else None
        if self.training and self.track_running_stats:  # updated in place below
            self.running_mean.bump_version()
            self.running_var.bump_version()
        return F.batch_norm(
            x,
            running_mean,
            running_var,
            self.weight,
            self.bias,
            training=self.training or not self.track_running_stats,
            momentum=momentum,
            eps=self.eps,
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs, per channel C.

    Training mode normalises with the batch statistics and updates ``running_mean`` /
    ``running_var`` (unbiased variance) with ``momentum``; eval mode uses the running ones.

    >>> import numpy as np, minigan
    >>> bn = BatchNorm1d(4)
    >>> _ = bn(minigan.tensor(np.arange(8, dtype=np.float32).reshape(2, 4)))
    >>> bn.running_mean, bn.num_batches_tracked.item()
    (tensor([0.2, 0.3, 0.4, 0.5]), 1)
    """

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` inputs, statistics per channel over N, H, W.

    >>> import numpy as np, minigan
    >>> bn = BatchNorm2d(3)
    >>> y = bn(minigan.tensor(np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype("float32")))
    >>> bool(abs(y.numpy().mean()) < 1e-5), [k for k in bn.state_dict()]
    (True, ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'])
    """

    _ranks = (4,)
    _layout = "(N, C, H, W)"


class InstanceNorm2d(_NormBase):
    """Normalise each sample's channel over H, W. ``affine=False`` and
    ``track_running_stats=False`` by default, as in PyTorch. With running statistics, training
    updates them with the batch average of the per-instance mean and unbiased variance, and
    eval mode normalises with them.

    >>> import numpy as np, minigan
    >>> x = minigan.tensor(np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype("float32"))
    >>> y = InstanceNorm2d(3)(x)
    >>> bool(np.allclose(y.numpy().mean(axis=(2, 3)), 0, atol=1e-5))
    True
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: Tensor) -> Tensor:
        name = self._name()
        _check_tensor(name, x)
        _check_rank(name, x, (4,), "(N, C, H, W)")
        if self.affine or self.track_running_stats:  # otherwise any channel count works
            _check_channels(name, x, self.num_features)
        self._check_dtype(x)
        if not self.track_running_stats:
            return F.instance_norm(x, self.weight, self.bias, eps=self.eps)
        if not self.training:
            return F.batch_norm(
                x, self.running_mean.data, self.running_var.data, self.weight, self.bias,
                training=False, eps=self.eps,
            )
        momentum = 0.0 if self.momentum is None else self.momentum  # as PyTorch does
        d = x.data
        mean = d.mean(axis=(2, 3)).mean(axis=0)
        var = d.var(axis=(2, 3), ddof=1).mean(axis=0) if d.shape[2] * d.shape[3] > 1 else 0 * mean
        for buffer, batch in ((self.running_mean, mean), (self.running_var, var)):
            buffer.data *= 1 - momentum
            buffer.data += (momentum * batch).astype(buffer.data.dtype)
        return F.instance_norm(x, self.weight, self.bias, eps=self.eps)


# --------------------------------------------------------------------------- activations


class ReLU(Module):
    """``max(x, 0)``. ``inplace`` is accepted for PyTorch compatibility; the result is
    always a new tensor (safe for autograd).

    >>> import minigan
    >>> ReLU()(minigan.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
    True
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` if ``x > 0`` else ``negative_slope * x``.

    >>> import minigan
    >>> LeakyReLU(0.2)(minigan.tensor([-1.0, 2.0]))
    tensor([-0.2,  2. ])
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    """Hyperbolic tangent (a generator's usual last layer: images in [-1, 1]).

    >>> import minigan
    >>> Tanh()(minigan.tensor([0.0]))
    tensor([0.])
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``.

    >>> import minigan
    >>> Sigmoid()(minigan.tensor([0.0]))
    tensor([0.5])
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold`` (as in PyTorch).

    >>> import minigan
    >>> Softplus()(minigan.tensor([0.0, 30.0])).tolist()   # log(2); linear above the threshold
    [0.6931471824645996, 30.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tensor:
        scaled = x if self.beta == 1 else x * self.beta
        soft = F.softplus(scaled) if self.beta == 1 else F.softplus(scaled) / self.beta
        return F.where(scaled > self.threshold, x, soft)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


# --------------------------------------------------------------------------- regularisation


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by
    ``1 / (1 - p)``; the identity in eval mode.

    >>> import numpy as np, minigan
    >>> drop = Dropout(0.5).eval()
    >>> drop(minigan.tensor([1.0, 2.0]))
    tensor([1., 2.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p must be between 0 and 1, got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# --------------------------------------------------------------------------- shape layers


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` into one (by default all but the batch dim).

    >>> import numpy as np, minigan
    >>> Flatten()(minigan.tensor(np.zeros((2, 3, 4, 4), dtype=np.float32))).shape
    (2, 48)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (one entry may be -1).

    >>> import numpy as np, minigan
    >>> Unflatten(1, (16, 2, 2))(minigan.tensor(np.zeros((8, 64), dtype=np.float32))).shape
    (8, 16, 2, 2)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        dim = F.canonical_dim(self.dim, x.ndim, f"Unflatten(dim={self.dim})") if x.ndim else 0
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        size = x.shape[dim] if x.ndim else 1
        fits = size % known == 0 if -1 in sizes else size == known
        if x.ndim == 0 or not fits or list(sizes).count(-1) > 1:
            raise ValueError(
                f"Unflatten(dim={self.dim}, unflattened_size={sizes}): cannot split dimension "
                f"{self.dim} of size {size} into {sizes}; input shape {x.shape}"
            )
        return x.reshape(*x.shape[:dim], *sizes, *x.shape[dim + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Upsample(Module):
    """Resize ``(N, C, H, W)`` images by ``scale_factor`` or to ``size`` ("nearest" or
    "bilinear").

    >>> import numpy as np, minigan
    >>> Upsample(scale_factor=2)(minigan.tensor(np.zeros((1, 3, 4, 4), dtype=np.float32))).shape
    (1, 3, 8, 8)
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor")
        if mode not in ("nearest", "nearest-exact", "bilinear"):
            raise ValueError(
                f"Upsample: mode must be 'nearest', 'nearest-exact' or 'bilinear', got {mode!r}"
            )
        if mode != "bilinear" and align_corners:
            raise ValueError("Upsample: align_corners only applies to mode='bilinear'")
        self.size = tuple(size) if isinstance(size, (list, tuple)) else size
        self.scale_factor: tuple[float, ...] | float | None
        if isinstance(scale_factor, (list, tuple)):
            self.scale_factor = tuple(float(s) for s in scale_factor)
        else:
            self.scale_factor = None if scale_factor is None else float(scale_factor)
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor("Upsample", x)
        _check_rank(f"Upsample({self.extra_repr()})", x, (4,), "(N, C, H, W)")
        return F.interpolate(
            x,
            size=self.size,
            scale_factor=self.scale_factor,
            mode=self.mode,
            align_corners=self.align_corners if self.mode == "bilinear" else None,
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


# --------------------------------------------------------------------------- pooling


class _Pool2d(Module):
    def __init__(
        self, kernel_size: _IntPair, stride: _IntPair | None = None, padding: _IntPair = 0
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def _check_input(self, x: Tensor) -> None:
        name = f"{type(self).__name__}(kernel_size={self.kernel_size})"
        _check_tensor(name, x)
        _check_rank(name, x, (3, 4), "(N, C, H, W) or (C, H, W)")


class AvgPool2d(_Pool2d):
    """Average over ``kernel_size`` windows (stride defaults to the kernel size), with
    PyTorch's ``ceil_mode``, ``count_include_pad`` and ``divisor_override``.

    >>> import numpy as np, minigan
    >>> AvgPool2d(2)(minigan.tensor(np.ones((1, 1, 4, 4), dtype=np.float32))).shape
    (1, 1, 2, 2)
    """

    def __init__(
        self,
        kernel_size: _IntPair,
        stride: _IntPair | None = None,
        padding: _IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over ``kernel_size`` windows (stride defaults to the kernel size), with
    PyTorch's ``dilation``, ``return_indices`` and ``ceil_mode``.

    >>> import numpy as np, minigan
    >>> MaxPool2d(2)(minigan.tensor(np.ones((1, 1, 4, 4), dtype=np.float32))).shape
    (1, 1, 2, 2)
    """

    def __init__(
        self,
        kernel_size: _IntPair,
        stride: _IntPair | None = None,
        padding: _IntPair = 0,
        dilation: _IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> Any:
        self._check_input(x)
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


# --------------------------------------------------------------------------- more activations


class _Activation(Module):
    """An elementwise activation: ``forward`` applies the subclass's ``_fn`` (the
    functional op with the layer's arguments)."""

    _args: tuple[str, ...] = ()

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor(type(self).__name__, x)
        return self._fn(x)

    def extra_repr(self) -> str:
        shown = [f"{name}={getattr(self, name)!r}" for name in self._args]
        if getattr(self, "inplace", False):
            shown.append("inplace=True")
        return ", ".join(shown)


class GELU(_Activation):
    """``x * Phi(x)``; ``approximate="tanh"`` for the tanh approximation.

    >>> import minigan
    >>> GELU()(minigan.tensor([0.0, 10.0])).tolist()
    [0.0, 10.0]
    """

    _args = ("approximate",)

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _fn(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)


class SiLU(_Activation):
    """``x * sigmoid(x)`` (swish)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Mish(_Activation):
    """``x * tanh(softplus(x))``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.mish(x)


class ELU(_Activation):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""

    _args = ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)


class SELU(_Activation):
    """Self-normalising ELU (fixed ``alpha`` and ``scale``)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.selu(x)


class CELU(_Activation):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    _args = ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.celu(x, self.alpha)


class Hardtanh(_Activation):
    """``x`` clipped to ``[min_val, max_val]``.

    >>> import minigan
    >>> Hardtanh()(minigan.tensor([-3.0, 0.5, 3.0])).tolist()
    [-1.0, 0.5, 1.0]
    """

    _args: tuple[str, ...] = ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} must not exceed max_val {max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)


class ReLU6(Hardtanh):
    """``min(max(x, 0), 6)``."""

    _args = ()

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)


class Hardswish(_Activation):
    """``x * relu6(x + 3) / 6``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.hardswish(x)


class Hardsigmoid(_Activation):
    """``relu6(x + 3) / 6``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _fn(self, x: Tensor) -> Tensor:
        return F.hardsigmoid(x)


class Softsign(_Activation):
    """``x / (1 + |x|)``."""

    def _fn(self, x: Tensor) -> Tensor:
        return F.softsign(x)


class LogSigmoid(_Activation):
    """``log(sigmoid(x))``."""

    def _fn(self, x: Tensor) -> Tensor:
        return F.logsigmoid(x)


# --------------------------------------------------------------------------- embedding


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``: integer
    indices of any shape ``(*)`` give ``(*, embedding_dim)``. The weight starts as N(0, 1),
    with ``padding_idx``'s row zero (and it gets no gradient), as in PyTorch.

    >>> import minigan
    >>> table = Embedding(10, 3, padding_idx=0)
    >>> table(minigan.tensor([[0, 4], [9, 0]])).shape
    (2, 2, 3)
    >>> table.weight[0].tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
    ) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                    f"({num_embeddings})"
                )
            padding_idx %= num_embeddings
        if sparse:
            raise ValueError("Embedding: sparse gradients are not supported; use sparse=False")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=np.float32))
            self.reset_parameters()
        else:
            weight = _weight.data if isinstance(_weight, Tensor) else np.asarray(_weight)
            if weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"Embedding: _weight has shape {weight.shape}, expected "
                    f"{(num_embeddings, embedding_dim)}"
                )
            self.weight = Parameter(weight)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An Embedding holding a copy of ``embeddings`` (2-D), frozen unless ``freeze=False``."""
        weight = embeddings.data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if weight.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected a 2-D table, got {weight.shape}")
        rows, dim = weight.shape
        table = cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                    _weight=weight.copy())  # fmt: skip
        table.weight.requires_grad = not freeze
        return table

    def forward(self, input: Tensor) -> Tensor:
        name = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        if isinstance(input, Tensor) and input.device != self.weight.device:
            raise RuntimeError(
                f"{name}: input is on device '{input.device}', but the table is on "
                f"'{self.weight.device}'; move one of them with .to(device=...)"
            )
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq)  # fmt: skip

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
