"""StyleGAN-lite: a small StyleGAN (Karras et al., 2019, with StyleGAN2's synthesis network)
— the model, registered as ``stylegan-lite`` by the hook module
:mod:`minigan.plugins.stylegan_lite` (which imports this only when the model or one of its
commands is used).

The generator is StyleGAN's, at a size that trains on one CPU at 32×32 (and on a GPU at 64×64):

- **Mapping network** z -> w: pixel norm on z, then ``mapping_layers`` equalised-learning-rate
  fully connected layers (LeakyReLU 0.2) whose learning rate is multiplied by 0.01. It tracks
  ``w_avg``, the running mean of w during training, the centre of the *truncation trick*:
  ``w' = w_avg + psi * (w - w_avg)``.
- **Synthesis network** (StyleGAN2's, Karras et al., 2020): a learned 4×4 constant, then
  one *styled layer* at 4×4 and two at each resolution 8, ..., R, each ``[upsample 2×,
  nearest ->] modulated conv 3×3 -> noise -> bias -> LeakyReLU``. The style of a layer,
  ``s = A(w)`` (A a learned affine map of w), scales the convolution's input channels per
  sample and *demodulation* renormalises its output channels (:class:`ModulatedConv2d`).
  A *toRGB* (a modulated 1×1 convolution) at every resolution adds its colours to the
  bilinearly upsampled image so far (the "skip" generator). The noise is a single-channel
  image per layer, scaled by a learned per-channel strength; it is ``random`` (fresh every
  call), ``const`` (fixed buffers: reproducible images) or ``none``, and trained only with
  ``noise=True`` (off by default: the shapes data has no stochastic detail). Each styled layer
  and toRGB takes its own w: feeding different w's to different layers is *style mixing*.
  The 3×3 convolutions pad by reflection (``padding``; StyleGAN2 pads with zeros).
- **Discriminator**: fromRGB, per resolution two 3×3 convolutions and a 2×2 average pool, then
  at 4×4 the *minibatch standard deviation* feature, a 3×3 convolution and two dense layers.

Every convolution and dense layer uses the *equalised learning rate*: weights are drawn from
N(0, 1) and scaled at run time by ``gain / sqrt(fan_in)`` (times the layer's ``lr_mul``), so
Adam's per-parameter step moves every layer at the same relative speed.

Training (:meth:`StyleGANLite.train_step`) is StyleGAN2's: the non-saturating logistic loss,
the *R1 penalty* ``gamma / 2 * E ||grad_x D(x)||^2`` on real images, computed with true second
derivatives (``minigan.grad(..., create_graph=True)``) every ``r1_every`` steps and scaled by
``r1_every`` (*lazy regularisation*, with the discriminator's Adam adjusted to match), style
mixing regularisation (probability ``style_mixing_prob``), Adam with betas (0, 0.99), and an
exponential moving average of the generator's weights (``generator_ema``) that makes the samples.

The plugin also adds three commands (``minigan style-mix``, ``minigan truncation-sweep``,
``minigan interpolate``: :mod:`.commands`) that draw StyleGAN's figures from a trained run.

This module must not import the CLI, the training loop or another plugin.

>>> model = StyleGANLite({"g_channels": 8, "d_channels": 8}, image_shape=(3, 16, 16))
>>> model.generator.synthesis.num_ws   # w's: 5 styled layers (4: 1, 8: 2, 16: 2), last toRGB
6
>>> model.sample(model.latents([0, 1]), truncation=0.7).shape
(2, 3, 16, 16)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import minigan
from minigan import functional as F
from minigan import nn, optim
from minigan.gan import GAN, copy_module, discriminator_loss, ema_update, step_metrics
from minigan.tensor import Tensor

__all__ = [
    "Discriminator",
    "EqualizedConv2d",
    "EqualizedLinear",
    "Generator",
    "MappingNetwork",
    "NoiseInput",
    "StyleGANLite",
    "StyleGANLiteConfig",
    "StyledLayer",
    "SynthesisNetwork",
    "ModulatedConv2d",
    "ToRGB",
    "minibatch_stddev",
    "pixel_norm",
]

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES = ("const", "random", "none")
#: Padding of the generator's 3×3 convolutions. ``zeros`` is StyleGAN2's; with ``reflect`` (the
#: default here) or ``replicate`` a flat feature map stays flat up to the border.
PADDING_MODES = ("reflect", "replicate", "zeros")
SQRT2 = math.sqrt(2.0)  # the gain of layers followed by LeakyReLU (He initialisation)
LRELU_SLOPE = 0.2


# =========================================================================== config
#: Why the defaults are what they are (issue 15: a default 32×32 ``shapes`` run that finishes in
#: at most 10 minutes on 2 idle cores, with recognisable samples and no edge artifact). Measured
#: with ``minigan.metrics.measure`` (shapes-classifier features, 1,024 samples of the EMA
#: generator; real vs held-out real: FID 0.24, confident 0.83, border 0.027) on an exact
#: PyTorch re-implementation (``benchmarks/stylegan_recipes.py``, whose flags the rows use)
#: trained on minigan's ``shapes`` data (batch 32 unless noted; one
#: seed each, on a machine shared with other jobs). FID is "FID (shapes-classifier features)";
#: "classes" is the least and most frequent predicted class; "border" the mean colour
#: deviation of the 2-pixel border from the image's interior (real: 0.027):
#:
#: ====================================================  =====  =====  =====  =======  ======
#: recipe                                                steps   FID   conf.  classes  border
#: ====================================================  =====  =====  =====  =======  ======
#: old default (AdaIN, zero padding, mapping 4, style      192   32.9   0.18   1-41%    0.190
#: mixing 0.9, mbstd group 4, noise)                       384   27.3   0.43   0-76%    0.111
#: StyleGAN2 synthesis (modulated convs, skip toRGBs),     256   27.3   0.35   0-65%    0.175
#: otherwise old recipe                                    768   42.1   0.56   0-96%    0.093
#: + channels 64/64/32/16 by resolution, mapping 2,        512   21.0   0.11   0-46%    0.100
#: mixing 0.5, lr 2.5e-3                                   768   31.3   0.36   0-86%    0.068
#: the same, lr 1e-3, R1 gamma 1 every 4 (noisy texture)   512   27.7   0.45   0-56%    0.154
#: StyleGAN2 synthesis, mapping 2, mixing 0.5,             512   24.4   0.39   0-66%    0.097
#: mbstd group 32 (32 channels)                            768   20.5   0.25   3-64%    0.147
#:                                                        1024   13.4   0.15   5-46%    0.162
#: the same, batch 16 (steps x 16 images)                 1024   21.5   0.20   2-55%    0.150
#: the same, reflect padding                               512   26.6   0.51   1-83%    0.109
#: **+ no noise (the default)**                            512   42.1   0.42   0-34%    0.097
#:                                                         768   10.2   0.23   5-41%    0.108
#:                                                        1024    9.7   0.20   5-27%    0.093
#: the same, another seed, 8,192 images                    768    9.4   0.19   6-28%    0.128
#: + DiffAugment color,translation,cutout (``--diffaug``,  384   45.9   0.75   0-97%    0.138
#: the DCGAN default's; seed 0)                            768   23.1   0.41   0-68%    0.068
#: the same, seed 1, 8,192 images                          768   24.7   0.35   0-41%    0.094
#: default + class-conditional (StyleGAN2-ADA: class        512   14.8   0.20   7-52%    0.127
#: embedding into the mapping, projection D; ``--cond 1``)  768   11.0   0.29   3-34%    0.112
#: the same, seed 1, 8,192 images                          768   36.3   0.46   0-91%    0.075
#: the same plus the DCGAN default's class loss on D        512   10.1   0.16   4-44%    0.113
#: (``--cond 1 --projcls 1``; seed 0, 8,192 images)         1024   13.6   0.18   7-38%    0.066
#: default + DCGAN's layered output (toRGBs draw a mask    512    8.1   0.23   5-38%    0.074
#: logit, colours from the first w; ``--layered 1``;       1024    9.7   0.28   6-33%    0.047
#: seed 0, 8,192 images)
#: the same, seed 1                                       1024   12.3   0.27   4-30%    0.050
#: ====================================================  =====  =====  =====  =======  ======
#:
#: - *StyleGAN2's synthesis* (modulated convolutions with demodulation, toRGB skips): the old
#:   AdaIN layers normalise each feature map by its *own* mean and variance, which StyleGAN2
#:   (section 2) shows makes the generator plant a strong local spike to control those
#:   statistics (the "droplet" artifact); at 32×32 with zero padding the spike sat on the
#:   border (the old default's saturated lines along the bottom edge and bottom-left corner,
#:   in minigan and in its PyTorch twin alike). Demodulation normalises by the statistics the
#:   *weights* imply, so nothing is gained by a spike; the saturated edge lines are gone.
#: - *Reflect padding*: with zero padding every 3×3 convolution sees zeros past the border, so
#:   a flat background map comes out darker along the edges and most at the corners (a
#:   pattern the generator has to unlearn at every layer). Per-ring deviation of the samples
#:   from their interior colour, outermost ring vs the ring 4 pixels in: zero padding 0.121
#:   vs 0.096 with corners up to 0.17 (batch 16, 512 steps); reflect 0.110 vs 0.100, corners
#:   0.10-0.13 (512 steps); reflect + no noise 0.097 vs 0.096 (1,024 steps); real 0.024 vs
#:   0.056. The remaining border deviation is blotchy backgrounds and shapes that reach the
#:   edge (under-training), not an edge band.
#: - *No noise inputs*: shapes have flat colours and no stochastic detail; with noise the
#:   early samples are speckled and the backgrounds blotchy (compare the last rows: FID 10.2 vs
#:   20.5 at 768 steps, though that pair also differs in padding).
#: - *Mapping 2 layers, style mixing 0.5, minibatch-stddev group 32*: StyleGAN2-ADA's CIFAR-10
#:   settings use 2 mapping layers and group 32; with group 4 (and mapping 4, mixing 0.9)
#:   the StyleGAN2 synthesis collapsed to ellipses (96% at 768 steps), with all three
#:   changed every class stayed above 3% (not tested one at a time). Style
#:   mixing is a regulariser for disentanglement that slows a short run; 0.5 keeps it.
#: - *Unconditional*: StyleGAN2-ADA's class conditioning leads at 512 steps but not at 768
#:   (11.0 vs 10.2; seed 1: 36.3 vs 9.4, 91% ellipses), and its samples match their class
#:   only 16-21% of the time (chance: 17%): 768 steps are too few for G to learn to use it.
#:   The class loss that made the conditional DCGAN follow its classes (D's projection
#:   trained to name the real classes) does not change that here: at 1,024 steps FID 13.6
#:   against the unconditional 9.7, and apart from ellipses (95%) and squares (59%) the
#:   samples match their class 4-28% of the time.
#: - *Plain RGB output*: the layered output that DCGAN's default uses for two-colour data (a
#:   mask blending two flat colours) raises the confident fraction here too (0.27-0.28
#:   against 0.20 at 1,024 steps) and halves the border deviation (0.047-0.050 against
#:   0.093), but not to the target (0.04), FID is no better (9.7 / 12.3 against 9.7), and
#:   the samples are blobs trailing stray mask fragments: at 1,024 steps the mask is not yet
#:   clean, so it stays a harness probe (``stylegan_recipes.py --layered 1``).
#: - *No DiffAugment*: it helps the class-conditional DCGAN over 4,096 steps, but in
#:   StyleGAN-lite's 768 it more than doubles FID (23-25 against 9-10) and drops circles
#:   and squares entirely: augmentation slows a run this short.
#: - *8,192 images, 4 epochs, batch 32 = 1,024 steps*: the time budget. Until the faster
#:   small-layer kernels (benchmarks/NOTES.md item 38) the default was 3 epochs (768 steps,
#:   8 min 13 s on 2 quiet cores); a step now takes about 0.39 s, so 1,024 steps take about
#:   7 minutes, and three of the four minigan runs measured improved from 768 to 1,024 steps
#:   (FID 13.2 -> 10.2 and 9.25 -> 9.47, seeds 0 and 1; before a change of convolution
#:   routing 11.5 -> 9.8 and 13.1 -> 9.7; in PyTorch 10.2 -> 9.7). Batch 16 was no better
#:   per image seen.
#:
#: Still short of issue 15's targets (FID <= 2.4, confident >= 0.75, every class >= 10%,
#: border <= 0.04): the default minigan run (``minigan train stylegan-lite``, then
#: ``minigan metrics RUN --num 1024``) scores FID 10.2, confident 0.16, classes 5-30%, border
#: 0.102 (seed 1: 9.5 / 0.20 / 8-29% / 0.101) — flat-coloured blobs, many classified as
#: ellipses. Runs this short vary a lot with the random draws: at 768 steps, with the
#: earlier kernels, the same recipe gave FID 26.2 (seed 0, 0-76% of classes), 12.0 (seed 1)
#: and 35.2 (seed 2), PyTorch's runs 9.4-15.5 (the networks, gradients and Adam agree with
#: PyTorch where checked; see the README's StyleGAN-lite section).
@dataclass
class StyleGANLiteConfig:
    """StyleGAN-lite's options (each one is also a ``minigan train stylegan-lite`` option).
    Widths are the same at every resolution; the image size comes from the data."""

    latent_dim: int = field(default=128, metadata={"help": "size of the latent vector z"})
    w_dim: int = field(default=128, metadata={"help": "size of the intermediate latent w"})
    mapping_layers: int = field(
        default=2, metadata={"help": "fully connected layers of the mapping network z -> w"}
    )
    mapping_lr_mul: float = field(
        default=0.01, metadata={"help": "learning-rate multiplier of the mapping network"}
    )
    g_channels: int = field(
        default=32, metadata={"help": "channels of every synthesis layer (all resolutions)"}
    )
    padding: str = field(
        default="reflect",
        metadata={"help": "padding of the generator's 3x3 convolutions: reflect, replicate, zeros"},
    )
    d_channels: int = field(
        default=32, metadata={"help": "channels of every discriminator layer (all resolutions)"}
    )
    mbstd_group: int = field(
        default=32, metadata={"help": "group size of the minibatch standard deviation layer"}
    )
    lr: float = field(default=0.002, metadata={"help": "Adam learning rate of G and D"})
    beta1: float = field(default=0.0, metadata={"help": "Adam beta1"})
    beta2: float = field(default=0.99, metadata={"help": "Adam beta2"})
    r1_gamma: float = field(
        default=0.1, metadata={"help": "R1 penalty weight gamma (0 = no R1 penalty)"}
    )
    r1_every: int = field(
        default=16, metadata={"help": "lazy R1: penalise every this many steps (x this weight)"}
    )
    style_mixing_prob: float = field(
        default=0.5, metadata={"help": "probability of style mixing regularisation per batch"}
    )
    noise: bool = field(
        default=False,
        metadata={"help": "train with the per-layer noise inputs (stochastic detail)"},
    )
    ema: float = field(
        default=0.99, metadata={"help": "decay of the EMA generator used for sampling"}
    )
    w_avg_beta: float = field(
        default=0.995, metadata={"help": "decay of the running average w_avg (truncation)"}
    )


# =========================================================================== building blocks
class EqualizedLinear(nn.Module):
    """A dense layer with the *equalised learning rate*: ``y = x W^T * (gain / sqrt(fan_in))
    * lr_mul + b * lr_mul``, with ``W ~ N(0, 1 / lr_mul^2)`` stored unscaled.

    ``bias_init`` (a number or one value per output) is the bias's effective initial value.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float | Sequence[float] = 0.0,
        lr_mul: float = 1.0,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(minigan.randn(out_features, in_features) * (1.0 / lr_mul))
        self.weight_gain = gain / math.sqrt(in_features) * lr_mul
        self.bias_gain = lr_mul
        if bias:
            init = np.broadcast_to(np.asarray(bias_init, np.float32), (out_features,))
            self.bias: nn.Parameter | None = nn.Parameter(np.array(init / lr_mul, np.float32))
        else:
            self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        b = self.bias * self.bias_gain if self.bias is not None else None
        return F.linear(x, self.weight * self.weight_gain, b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, weight_gain={self.weight_gain:.4g}"


class EqualizedConv2d(nn.Module):
    """A 'same'-padded convolution with the equalised learning rate: the weight (O, C, k, k)
    ~ N(0, 1) is multiplied by ``gain / sqrt(C * k * k)`` at run time."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, gain: float = 1.0
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            minigan.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(np.zeros(out_channels, np.float32))
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        k = self.weight.shape[-1]
        return f"{self.in_channels}, {self.out_channels}, kernel_size={k}"


def lrelu(x: Tensor) -> Tensor:
    """StyleGAN's activation, LeakyReLU with slope 0.2 (its gain sqrt(2) is in the weights)."""
    return F.leaky_relu(x, LRELU_SLOPE)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale each row of ``x`` (N, D) to unit root mean square: the mapping network's input
    normalisation, which puts every z on a sphere of radius sqrt(D)."""
    return x / ((x * x).mean(1, keepdim=True) + eps).sqrt()


# =========================================================================== mapping network
class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then ``num_layers`` equalised dense layers with LeakyReLU and the
    learning rate multiplied by ``lr_mul``. Keeps ``w_avg``, the running mean of w."""

    def __init__(
        self,
        latent_dim: int,
        w_dim: int,
        num_layers: int = 4,
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the mapping network needs at least one layer, got {num_layers}")
        self.latent_dim, self.w_dim, self.w_avg_beta = latent_dim, w_dim, w_avg_beta
        dims = [latent_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            [EqualizedLinear(a, b, lr_mul=lr_mul, gain=SQRT2) for a, b in zip(dims, dims[1:])]
        )
        self.register_buffer("w_avg", np.zeros(w_dim, np.float32))

    def forward(self, z: Tensor, update_w_avg: bool = False) -> Tensor:
        """w (N, w_dim) for z (N, latent_dim). ``update_w_avg``: move ``w_avg`` toward this
        batch's mean w (done once per training step)."""
        x = pixel_norm(z)
        for layer in self.layers:
            x = lrelu(layer(x))
        if update_w_avg:
            batch_mean = x.data.mean(axis=0)
            avg = self.w_avg.data
            avg += (1.0 - self.w_avg_beta) * (batch_mean - avg)  # in place: lerp toward w
        return x

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """The truncation trick: ``w_avg + psi * (w - w_avg)``. psi = 1 leaves w unchanged,
        psi = 0 gives ``w_avg`` (the "average image"), psi < 0 the "opposite" image."""
        if psi == 1.0:
            return w
        avg = self.w_avg.reshape(1, -1)
        return avg + (w - avg) * float(psi)


# =========================================================================== synthesis network
class NoiseInput(nn.Module):
    """Per-layer noise: a one-channel Gaussian image (N, 1, H, W) times a learned per-channel
    strength (initially 0), added to the layer's features. ``noise_const`` is the fixed
    noise of the ``const`` mode (a buffer, saved with the weights)."""

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.weight = nn.Parameter(np.zeros(channels, np.float32))  # per-channel strength
        self.register_buffer("noise_const", minigan.randn(1, 1, resolution, resolution))

    def forward(self, x: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        if noise_mode == "none":
            return x
        if noise_mode == "random":
            noise = minigan.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
        elif noise_mode == "const":
            noise = self.noise_const
        else:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return x + noise * self.weight.reshape(1, -1, 1, 1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's *modulated convolution* (Karras et al., 2020, section 2.2): the style
    ``s = A(w)`` (N, in_channels) scales the convolution's input channels per sample, and
    *demodulation* divides each output channel by the norm its per-sample weight would have,

        y[n, o] = (sum_i,k  W[o, i, k] * s[n, i] * x[n, i, . + k]) * d[n, o]
        d[n, o] = 1 / sqrt(sum_i,k (W[o, i, k] * s[n, i])^2 + eps),

    so that unit-variance inputs give unit-variance outputs whatever the style. Written as
    ``conv(x * s, W) * d`` (StyleGAN2's ``fused_modconv=False`` form): one shared-weight
    convolution, no per-sample weights. The weight is equalised (``N(0, 1)`` times
    ``1 / sqrt(in_channels * k * k)`` at run time); A's bias starts at 1 (scale 1).
    Without ``demodulate`` (the toRGB layers) the output keeps the style's scale.
    ``padding_mode`` is ``zeros`` (StyleGAN2's) or ``reflect``/``replicate``, with which a
    flat input gives a flat output up to the border (see :data:`PADDING_MODES`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        eps: float = 1e-8,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.demodulate, self.eps, self.padding = demodulate, eps, kernel_size // 2
        self.padding_mode = padding_mode
        self.weight = nn.Parameter(
            minigan.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        n = x.shape[0]
        s = self.affine(w)  # (N, in_channels)
        weight = self.weight * self.weight_gain
        x = x * s.reshape(n, -1, 1, 1)
        if self.padding and self.padding_mode != "zeros":
            p = self.padding
            y = F.conv2d(F.pad(x, (p, p, p, p), mode=self.padding_mode), weight, None)
        else:
            y = F.conv2d(x, weight, None, padding=self.padding)
        if not self.demodulate:
            return y
        # |W[o] * s[n]|^2 = sum_i s[n, i]^2 * sum_k W[o, i, k]^2: an (N, in) @ (in, out) product
        d = ((s * s) @ (weight * weight).sum((2, 3)).T + self.eps).rsqrt()
        return y * d.reshape(n, -1, 1, 1)

    def extra_repr(self) -> str:
        k = self.weight.shape[-1]
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={k}, "
            f"demodulate={self.demodulate}, padding_mode={self.padding_mode!r}"
        )


class StyledLayer(nn.Module):
    """One styled layer (StyleGAN2's): ``[upsample ->] modulated conv 3×3 -> noise -> bias ->
    LeakyReLU × sqrt(2)``. The style enters through the modulation (no AdaIN: see the module
    docstring for why)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        upsample: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.upsample, self.channels = upsample, out_channels
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, padding_mode=padding_mode)
        self.noise = NoiseInput(out_channels, resolution)
        self.bias = nn.Parameter(np.zeros(out_channels, np.float32))

    def forward(self, x: Tensor, w: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        if self.upsample:
            x = F.upsample(x, scale_factor=2, mode="nearest")
        x = self.noise(self.conv(x, w), noise_mode)
        return lrelu(x + self.bias.reshape(1, -1, 1, 1)) * SQRT2


class ToRGB(nn.Module):
    """A modulated 1×1 convolution without demodulation, plus a bias: features -> colours."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(np.zeros(img_channels, np.float32))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias.reshape(1, -1, 1, 1)


class SynthesisNetwork(nn.Module):
    """Per-layer w's (N, num_ws, w_dim) -> images (N, C, R, R), StyleGAN2's "skip" generator:
    a learned 4×4 constant, one styled layer at 4×4 and two at each of 8, ..., R, and a toRGB
    at every resolution whose image is added to the bilinearly upsampled image so far.

    w's: layer ``i`` takes ``ws[:, i]``; the toRGB after layer ``i`` (the last of a
    resolution) takes ``ws[:, i + 1]``, as the next resolution's first layer does. So
    ``num_ws = 2 log2(R) - 2`` (8 at 32×32), and ``ws[:, :4]`` are the coarse (4×4, 8×8) styles.
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channels: int,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.resolution, self.w_dim = resolution, w_dim
        self.const = nn.Parameter(minigan.randn(1, channels, 4, 4))  # the learned input
        pm = padding_mode
        layers = [StyledLayer(channels, channels, w_dim, 4, padding_mode=pm)]
        res = 8
        while res <= resolution:
            layers += [
                StyledLayer(channels, channels, w_dim, res, upsample=True, padding_mode=pm),
                StyledLayer(channels, channels, w_dim, res, padding_mode=pm),
            ]
            res *= 2
        self.layers = nn.ModuleList(layers)
        self.to_rgbs = nn.ModuleList(
            [ToRGB(channels, img_channels, w_dim) for _ in range(len(layers) // 2 + 1)]
        )
        self.num_ws = len(layers) + 1

    def forward(self, ws: Tensor, noise_mode: NoiseMode = "random") -> Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(
                f"synthesis expects w's of shape (N, {self.num_ws}, {self.w_dim}), got {ws.shape}"
            )
        n = ws.shape[0]
        x = self.const.expand(n, *self.const.shape[1:])
        img: Tensor | None = None
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], noise_mode)
            if i % 2 == 0:  # the last layer of a resolution: add its colours to the image
                rgb = self.to_rgbs[i // 2](x, ws[:, i + 1])
                img = rgb if img is None else upsample_image(img) + rgb
        assert img is not None
        return img


def upsample_image(img: Tensor) -> Tensor:
    """The skip path's 2× upsampling: bilinear (half-pixel centres, edges clamped), so that a
    flat low-resolution colour stays flat up to the border."""
    return F.upsample(img, scale_factor=2, mode="bilinear", align_corners=False)


class Generator(nn.Module):
    """The StyleGAN generator: ``mapping`` (z -> w) and ``synthesis`` (w's -> image)."""

    def __init__(
        self,
        latent_dim: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channels: int,
        mapping_layers: int = 4,
        mapping_lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers, mapping_lr_mul, w_avg_beta)
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channels, padding_mode)
        self.num_ws = self.synthesis.num_ws

    def ws(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """The per-layer w's (N, num_ws, w_dim) of z: the same (truncated) w for every layer."""
        w = self.mapping.truncate(self.mapping(z), truncation)
        return broadcast_ws(w, self.num_ws)

    def forward(
        self, z: Tensor, truncation: float = 1.0, noise_mode: NoiseMode = "random"
    ) -> Tensor:
        return self.synthesis(self.ws(z, truncation), noise_mode)


def broadcast_ws(w: Tensor, num_ws: int) -> Tensor:
    """One w (N, w_dim) repeated for every styled layer: (N, num_ws, w_dim)."""
    return w.reshape(w.shape[0], 1, w.shape[1]).expand(w.shape[0], num_ws, w.shape[1])


def mix_styles(ws_a: Tensor, ws_b: Tensor, cutoff: int) -> Tensor:
    """Style mixing: layers ``< cutoff`` (coarse: low resolutions) take their w from
    ``ws_a``, layers ``>= cutoff`` (fine) from ``ws_b``. Both are (N, num_ws, w_dim)."""
    if cutoff <= 0:
        return ws_b
    if cutoff >= ws_a.shape[1]:
        return ws_a
    return F.cat([ws_a[:, :cutoff], ws_b[:, cutoff:]], dim=1)


# =========================================================================== discriminator
def minibatch_stddev(x: Tensor, group_size: int = 4, eps: float = 1e-8) -> Tensor:
    """Append the *minibatch standard deviation* channel: in groups of ``group_size`` samples
    (sample n is in group ``n % (N / G)``), the standard deviation of every feature over the
    group, averaged to one number per group and broadcast as an extra (N, 1, H, W) channel.
    It lets D see the variety of a batch (and so punish mode collapse)."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)  # a divisor of N
    m = n // g
    y = x.reshape(g, m, c, h, w)
    y = y - y.mean(0, keepdim=True)
    y = ((y * y).mean(0) + eps).sqrt()  # (m, c, h, w): std over the group
    y = y.mean((1, 2, 3))  # (m,)
    y = y.reshape(1, m, 1, 1, 1).expand(g, m, 1, h, w).reshape(n, 1, h, w)
    return F.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """conv 3×3 -> LeakyReLU -> conv 3×3 -> LeakyReLU -> 2×2 average pool (halves the size)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(channels, channels, 3, gain=SQRT2)
        self.conv1 = EqualizedConv2d(channels, channels, 3, gain=SQRT2)

    def forward(self, x: Tensor) -> Tensor:
        x = lrelu(self.conv1(lrelu(self.conv0(x))))
        return F.avg_pool2d(x, 2)


class Discriminator(nn.Module):
    """Images (N, C, R, R) -> logits (N,): fromRGB 1×1, one block per resolution R ... 8,
    then at 4×4 minibatch stddev, conv 3×3, dense and the output dense layer."""

    def __init__(
        self, img_channels: int, resolution: int, channels: int, mbstd_group: int = 4
    ) -> None:
        super().__init__()
        self.mbstd_group = mbstd_group
        self.from_rgb = EqualizedConv2d(img_channels, channels, 1, gain=SQRT2)
        self.blocks = nn.ModuleList(
            [DiscriminatorBlock(channels) for _ in range(int(math.log2(resolution // 4)))]
        )
        self.conv = EqualizedConv2d(channels + 1, channels, 3, gain=SQRT2)
        self.fc = EqualizedLinear(channels * 16, channels, gain=SQRT2)
        self.out = EqualizedLinear(channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = lrelu(self.from_rgb(x))
        for block in self.blocks:
            x = block(x)
        x = minibatch_stddev(x, self.mbstd_group)
        x = lrelu(self.conv(x))
        x = lrelu(self.fc(x.reshape(x.shape[0], -1)))
        return self.out(x).reshape(-1)


def r1_penalty(D: nn.Module, real: Tensor) -> tuple[Tensor, Tensor]:
    """The R1 penalty ``E_x ||grad_x D(x)||^2`` (Mescheder et al., 2018) on real images, with
    the gradient kept in the graph (``create_graph=True``) so that the penalty can itself be
    differentiated with respect to D's weights: a true second derivative.

    Returns ``(penalty, logits)``: D's logits on ``real`` can be reused for the main loss."""
    x = real.detach().requires_grad_(True)
    logits = D(x)
    (g,) = minigan.grad(logits.sum(), x, create_graph=True)
    assert g is not None  # x was used: grad() raised otherwise
    return (g * g).sum((1, 2, 3)).mean(), logits


# =========================================================================== the model
class StyleGANLite(GAN):
    """A small StyleGAN: mapping network, StyleGAN2 synthesis (modulated convolutions; noise
    optional), lazy R1, style mixing."""

    Config = StyleGANLiteConfig
    # 1,024 steps: see the comment above StyleGANLiteConfig
    train_defaults = {"epochs": 4, "batch_size": 32, "limit": 8192}

    def __init__(
        self,
        config: Any = None,
        image_shape: Sequence[int] = (3, 32, 32),
        device: str = "cpu",
    ) -> None:
        super().__init__(config, image_shape, device)
        cfg = self.config
        channels, height, width = self.image_shape
        if height != width or height < 8 or height & (height - 1):
            raise ValueError(
                f"StyleGAN-lite makes square images with a power-of-two side of at least 8 "
                f"(32 or 64 typically); the data is {height}x{width} (pass --resolution 32 or 64)"
            )
        if cfg.mbstd_group < 1 or cfg.r1_every < 0:
            raise ValueError("mbstd_group must be at least 1 and r1_every at least 0")
        if cfg.padding not in PADDING_MODES:
            modes = ", ".join(PADDING_MODES)
            raise ValueError(f"padding must be one of {modes}, got {cfg.padding!r}")
        self.generator = Generator(
            cfg.latent_dim,
            cfg.w_dim,
            height,
            channels,
            cfg.g_channels,
            cfg.mapping_layers,
            cfg.mapping_lr_mul,
            cfg.w_avg_beta,
            cfg.padding,
        )
        self.discriminator = Discriminator(channels, height, cfg.d_channels, cfg.mbstd_group)
        for net in (self.generator, self.discriminator):
            net.to(device)
        self.generator_ema = copy_module(self.generator)
        self.opt_g = optim.Adam(
            self.generator.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        # Lazy regularisation (StyleGAN2, appendix B): D takes r1_every + 1 "steps' worth" of
        # updates per r1_every steps, so its lr and betas are rescaled by c = k / (k + 1).
        c = cfg.r1_every / (cfg.r1_every + 1) if self.lazy_r1 else 1.0
        self.opt_d = optim.Adam(
            self.discriminator.parameters(), lr=cfg.lr * c, betas=(cfg.beta1**c, cfg.beta2**c)
        )

    @property
    def lazy_r1(self) -> bool:
        """Whether an R1 penalty is applied at all."""
        return self.config.r1_gamma > 0 and self.config.r1_every > 0

    @property
    def num_ws(self) -> int:
        """The number of styled layers (each takes its own w): 2 per resolution 4 ... R."""
        return self.generator.num_ws

    def networks(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "generator_ema": self.generator_ema,
        }

    def optimizers(self) -> dict[str, optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    # ----- training
    def training_ws(self, n: int) -> Tensor:
        """w's for a training batch of ``n``: mapped from fresh z (updating ``w_avg``) and,
        with probability ``style_mixing_prob``, mixed with a second z's w's from a random
        crossover layer on (style mixing regularisation: stops the network from assuming
        that neighbouring layers' styles are correlated)."""
        G, cfg = self.generator, self.config
        z = minigan.randn(n, cfg.latent_dim, device=self.device)
        ws = broadcast_ws(G.mapping(z, update_w_avg=True), self.num_ws)
        if cfg.style_mixing_prob > 0 and minigan.rand(1).item() < cfg.style_mixing_prob:
            cutoff = int(minigan.rand(1).item() * (self.num_ws - 1)) + 1  # 1 .. num_ws - 1
            z2 = minigan.randn(n, cfg.latent_dim, device=self.device)
            ws = mix_styles(ws, broadcast_ws(G.mapping(z2), self.num_ws), cutoff)
        return ws

    def train_step(self, real: Tensor) -> dict[str, Tensor]:
        G, D, cfg = self.generator, self.discriminator, self.config
        # without cfg.noise the noise strengths get no gradient and stay 0: every noise mode
        # then gives the same images
        mode: NoiseMode = "random" if cfg.noise else "none"
        fake = G.synthesis(self.training_ws(real.shape[0]), noise_mode=mode)

        # D: non-saturating logistic loss; every r1_every steps also the R1 penalty, with the
        # gradient w.r.t. the real images kept in the graph (double backward through D)
        do_r1 = self.lazy_r1 and self.steps % cfg.r1_every == 0
        if do_r1:
            r1, real_logits = r1_penalty(D, real)
        else:
            real_logits = D(real)
        fake_logits = D(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        total_d = loss_d + r1 * (cfg.r1_gamma / 2 * cfg.r1_every) if do_r1 else loss_d
        self.update(self.opt_d, total_d)

        # G: non-saturating loss on the same fakes, through the updated (frozen) D
        loss_g = self.generator_update(self.opt_g, D, fake)

        # EMA generator, with a warm-up so that it follows quickly early on
        decay = min(cfg.ema, (1 + self.steps) / (10 + self.steps))
        ema_update(self.generator_ema, G, decay)
        metrics = step_metrics(loss_d, loss_g, real_logits, fake_logits)
        if do_r1:
            metrics["r1"] = r1.detach()
        return metrics

    # ----- sampling
    def _run(self, fn: Callable[[Generator], Tensor]) -> Tensor:
        """``fn(generator_ema)`` in eval mode without gradients, clipped to [-1, 1]."""
        net = self.sampling_generator()
        was_training = net.training
        net.eval()
        try:
            with minigan.no_grad():
                return fn(net).clip(-1.0, 1.0)  # type: ignore[arg-type]
        finally:
            net.train(was_training)

    def mapping(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        """Per-layer w's (N, num_ws, w_dim) of the EMA generator for latents z, truncated
        toward ``w_avg`` by ``truncation`` (psi)."""
        net = self.sampling_generator()
        with minigan.no_grad():
            return net.ws(z, truncation)

    def synthesis(self, ws: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        """Images (NCHW in [-1, 1]) of the EMA generator for per-layer w's (N, num_ws, w_dim)
        (e.g. style-mixed with :func:`mix_styles`)."""
        return self._run(lambda net: net.synthesis(ws, noise_mode))

    def sample(self, z: Tensor, truncation: float = 1.0, noise_mode: NoiseMode = "const") -> Tensor:
        """Images (NCHW in [-1, 1]) of the EMA generator for latents z: w truncated toward
        ``w_avg`` by ``truncation`` (psi), noise ``const`` (reproducible), ``random`` or
        ``none``."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return self._run(lambda net: net(z, truncation, noise_mode))

    # ----- figures
    def style_mix_grid(
        self,
        row_seeds: Sequence[int],
        col_seeds: Sequence[int],
        styles: Sequence[int],
        truncation: float = 1.0,
        noise_mode: NoiseMode = "const",
    ) -> np.ndarray:
        """StyleGAN's style-mixing figure as NCHW images, laid out ``(1 + rows) x (1 + cols)``:
        a blank corner, the column seeds' images along the top, the row seeds' images down the
        left, and in cell (r, c) row seed r's image with the layers ``styles`` taken from
        column seed c."""
        bad = [s for s in styles if not 0 <= s < self.num_ws]
        if bad:
            raise ValueError(
                f"styles {bad} out of range: this model has layers 0-{self.num_ws - 1}"
            )
        ws_rows = self.mapping(self.latents(row_seeds), truncation)
        ws_cols = self.mapping(self.latents(col_seeds), truncation)
        top = np.asarray(self.synthesis(ws_cols, noise_mode).numpy())
        left = np.asarray(self.synthesis(ws_rows, noise_mode).numpy())
        take = np.zeros(self.num_ws, bool)
        take[list(styles)] = True
        blank = np.ones((1, *self.image_shape), np.float32)  # white corner
        rows = [np.concatenate([blank, top])]
        rows_w, cols_w = ws_rows.numpy(), ws_cols.numpy()  # one read each, not one per row
        for r in range(len(row_seeds)):
            mixed = np.repeat(rows_w[r : r + 1], len(col_seeds), axis=0)
            mixed[:, take] = cols_w[:, take]
            cells = self.synthesis(minigan.tensor(mixed, device=self.device), noise_mode).numpy()
            rows.append(np.concatenate([left[r : r + 1], cells]))
        return np.concatenate(rows)

    def truncation_grid(
        self, seeds: Sequence[int], psis: Sequence[float], noise_mode: NoiseMode = "const"
    ) -> np.ndarray:
        """The truncation figure as NCHW images: one row per seed, one column per psi."""
        z = self.latents(seeds)
        per_psi = [np.asarray(self.sample(z, psi, noise_mode).numpy()) for psi in psis]
        return np.stack(per_psi, axis=1).reshape(-1, *self.image_shape)

    def interpolation_frames(
        self,
        seeds: Sequence[int],
        frames: int,
        space: Literal["z", "w"] = "z",
        truncation: float = 1.0,
        noise_mode: NoiseMode = "const",
    ) -> np.ndarray:
        """``frames`` images (NCHW) of a closed walk through the seeds' latents, back to the
        first: spherical interpolation (slerp) between z's, or linear (lerp) between w's."""
        if len(seeds) < 2 or frames < 2:
            raise ValueError("an interpolation needs at least 2 seeds and 2 frames")
        z = self.latents(seeds).numpy()
        k = len(seeds)
        t = np.arange(frames) * k / frames  # position along the loop, in segments
        i = np.floor(t).astype(int) % k
        j = (i + 1) % k
        f = (t - np.floor(t)).astype(np.float32)[:, None]
        if space == "z":
            zs = slerp(z[i], z[j], f)
            return self.generate_from_z(zs, truncation, noise_mode)
        w = self.mapping(minigan.tensor(z, device=self.device), truncation).numpy()[:, 0]
        ws = (w[i] + (w[j] - w[i]) * f).astype(np.float32)
        ws = np.repeat(ws[:, None], self.num_ws, axis=1)
        return self.synthesis(minigan.tensor(ws, device=self.device), noise_mode).numpy()

    def generate_from_z(
        self, z: np.ndarray, truncation: float = 1.0, noise_mode: NoiseMode = "const"
    ) -> np.ndarray:
        """Images for an array of latents, 64 at a time."""
        parts = [
            self.sample(minigan.tensor(z[i : i + 64], device=self.device), truncation, noise_mode)
            .numpy()
            for i in range(0, len(z), 64)
        ]
        return np.concatenate(parts)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between rows of ``a`` and ``b`` (Gaussian latents live near a
    sphere; a straight line would pass through its low-probability inside)."""
    na = a / np.linalg.norm(a, axis=-1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=-1, keepdims=True)
    omega = np.arccos(np.clip((na * nb).sum(-1, keepdims=True), -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    return (wa * a + wb * b).astype(np.float32)
