"""StyleGAN-lite recipe search: the exploration harness behind the recipe table in the comment
above ``StyleGANLiteConfig`` in ``plugins/stylegan_lite/model.py``.

Trains a pure-PyTorch StyleGAN-lite at 32x32 on minigan's ``shapes`` data, in one of two
synthesis networks:

- ``--arch adain``: minigan's old StyleGAN-lite (AdaIN layers, one toRGB at the end);
- ``--arch mod``: StyleGAN2's synthesis (modulated convolutions with demodulation, optionally
  summed toRGB skips),

with a mapping network, style mixing, minibatch-stddev discriminator, lazy R1 penalty and an
EMA generator, and variants of them (upsampling modes, padding, per-resolution widths, noise
inputs, StyleGAN2-ADA's class conditioning with ``--cond 1``). It scores the EMA generator
with :func:`minigan.metrics.measure` on the shapes-classifier features. Written for minigan
issue 15, to find StyleGAN-lite's defaults.

Run it (from any directory, with the project's environment)::

    OMP_NUM_THREADS=1 python stylegan_recipes.py --steps 768 --eval 256 --pad reflect \\
        --noise 0 --maplayers 2 --mix 0.5 --mbstd 32 --tag E8

Every ``--eval`` steps (and at the last step) it prints two lines::

    TAG step S Ns ms/step M | fid F conf C prec P rec R bord B/RB cls c1 .. c6 | ld L lg L
    TAG   rings(0,1,2,4,8) r0 r1 r2 r4 r8 | corners TL TR BL BR tl tr bl br

(the seconds and ms/step count training only, not evaluation; ``ld``/``lg`` are the last
step's D and G losses). The second line is the mean absolute colour deviation of 512 samples
from each sample's interior median, on the pixel rings 0, 1, 2, 4 and 8 pixels in from the
edge and at the four corner pixels (edge artifacts show as outer rings above inner ones).
At each evaluation it also saves ``ck-TAG.pt`` (the EMA generator's ``state_dict`` and the
arguments) in the working directory, and ``--grid G`` writes 64 samples to ``G-STEP.png``.
The generator's and discriminator's parameter counts go to stderr.

``--cond 1`` with the default recipe (768 steps; seed 0 with 20,000 images, seed 1 with
``--limit 8192``; evaluation samples use class ``s % 6``) did not help: FID 11.0 and 36.3 at
step 768 against 10.2 and 9.4 unconditional, and the generator had not learnt to follow its
class (the shapes classifier agrees with the requested class for 16% and 21% of samples: chance
is 17%); ``--cmaplr 1`` gave FID 15.1 and 16.5, agreement 16% and 18%. Its cost per step is
within the load noise of ``--cond 0`` (+3,359 D and +17,280 G parameters). ``--projcls 1``
(D's projection trained to name the real classes, which made the conditional DCGAN follow
its classes) did not either: FID 10.1 / 15.6 / 13.6 at 512 / 768 / 1,024 steps (seed 0,
``--limit 8192``), samples matching their class 4-28% of the time except ellipses and squares.

This is a research tool, not part of minigan: it uses PyTorch, which is only a test/bench
dependency of the project. It runs single-threaded by design (``torch.set_num_threads(1)``)
so that ms/step figures are comparable with each other and with minigan's own CPU backend.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minigan.data import open_dataset
from minigan.metrics import measure

SQRT2 = math.sqrt(2)  # gain of layers followed by LeakyReLU
RES = 32  # image resolution
NUM_RES = int(math.log2(RES // 4))  # upsampling (G) / downsampling (D) stages: 4x4 <-> 32x32
RING_OFFSETS = (0, 1, 2, 4, 8)  # pixel rings reported in the second result line
CORNERS = ((0, 0), (0, RES - 1), (RES - 1, 0), (RES - 1, RES - 1))  # TL TR BL BR
NUM_CLASSES = 6  # the shapes data set's classes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (flag names are kept stable: recorded commands use them)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for group in (_generator_flags, _discriminator_flags, _training_flags):
        group(p.add_argument)
    return p.parse_args(argv)


def _generator_flags(add: Callable[..., Any]) -> None:
    add(
        "--arch",
        default="mod",
        choices=("mod", "adain"),
        help="synthesis: StyleGAN2 modulated convs, or AdaIN layers (old StyleGAN-lite)",
    )
    add("--skip", type=int, default=1, help="mod: 1: summed toRGB skips; 0: one toRGB at 32x32")
    add(
        "--layered",
        type=int,
        default=0,
        help="mod: 1: layered output: the toRGB layers draw one mask logit (summed as the "
        "images are), an equalised linear layer on the first w gives a foreground and a "
        "background colour (tanh), and the image is bg + (fg - bg) * sigmoid(mask)",
    )
    add(
        "--up",
        default="nearest",
        choices=("nearest", "bilinear"),
        help="x2 upsampling of the feature maps",
    )
    add(
        "--rgbup",
        default="bilinear",
        choices=("nearest", "bilinear"),
        help="mod with --skip 1: x2 upsampling of the skip images",
    )
    add(
        "--pad",
        default="zeros",
        choices=("zeros", "reflect", "replicate"),
        help="mod: padding of G's 3x3 convs (adain always pads with zeros)",
    )
    add("--gc", type=int, default=32, help="generator channels (adain: at every resolution)")
    add(
        "--cbase",
        type=int,
        default=0,
        help="mod (and D): >0: channels at resolution r = min(--gc or --dc, cbase // r)",
    )
    add("--zdim", type=int, default=128, help="latent z size")
    add("--wdim", type=int, default=128, help="intermediate latent w size")
    add("--maplayers", type=int, default=4, help="mapping network layers")
    add("--maplr", type=float, default=0.01, help="mapping network learning-rate multiplier")
    add("--mix", type=float, default=0.9, help="style-mixing probability")
    add("--noise", type=int, default=1, help="1: per-pixel noise inputs in G's layers")


def _discriminator_flags(add: Callable[..., Any]) -> None:
    add("--dc", type=int, default=32, help="discriminator channels (see --cbase)")
    add("--mbstd", type=int, default=4, help="minibatch-stddev group size")
    add(
        "--cond",
        type=int,
        default=0,
        help="1: class-conditional as StyleGAN2-ADA (class embedding into G's mapping, "
        "projection head on D's output through a mapping network of the class)",
    )
    add(
        "--cmaplr",
        type=float,
        default=0.01,
        help="--cond 1: learning-rate multiplier of D's class mapping layers (0.01 as ADA)",
    )
    add(
        "--projcls",
        type=float,
        default=0,
        help="--cond 1: weight of a cross entropy on the real images that makes D's projection "
        "scores (o * cmap(k)).sum / sqrt(cmap_dim), over the classes k, name their class "
        "(minigan DCGAN's class_loss; 0: none)",
    )


def _training_flags(add: Callable[..., Any]) -> None:
    """Training, then evaluation and output."""
    add("--steps", type=int, default=768, help="training steps (one D and one G update each)")
    add("--batch", type=int, default=32, help="batch size")
    add("--limit", type=int, default=20000, help="number of shapes training images to load")
    add("--seed", type=int, default=0, help="seed for weights, latents and training batches")
    add("--lr", type=float, default=2e-3, help="Adam learning rate")
    add("--b1", type=float, default=0.0, help="Adam beta1")
    add("--b2", type=float, default=0.99, help="Adam beta2")
    add("--r1", type=float, default=0.1, help="R1 penalty weight gamma (0: none)")
    add("--r1every", type=int, default=16, help="apply R1 (lazily, scaled up) every N steps")
    add("--ema", type=float, default=0.99, help="EMA decay of G's weights (ramped up early)")
    add(
        "--diffaug",
        default="",
        help="DiffAugment policy for every image D sees, real and fake (dcgan_recipes.py's "
        "ops: translation, color, cutout; empty: none)",
    )
    # evaluation and output
    add("--eval", type=int, default=256, help="evaluate every N steps (and at the last step)")
    add("--num", type=int, default=1024, help="samples per evaluation (measure's num)")
    add("--grid", default="", help="path prefix: write 64 samples to PREFIX-STEP.png per eval")
    add("--tag", default="", help="label starting each result line and naming ck-TAG.pt")


def load_shapes(limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` shapes images as an NCHW float tensor, and their class labels."""
    ds = open_dataset("shapes", limit=limit)
    images, labels = ds[: len(ds)]
    return torch.from_numpy(np.asarray(images, np.float32)), torch.from_numpy(labels).long()


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``x`` to unit mean square (StyleGAN's pixel norm of latents)."""
    return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()


def width(base: int, cbase: int, res: int) -> int:
    """Channels at resolution ``res``: ``base``, or ``min(base, cbase // res)`` if cbase > 0."""
    return min(base, cbase // res) if cbase else base


def upsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """x2 upsampling, ``mode`` "nearest" or "bilinear" (without corner alignment)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def add_noise(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Add one N(0, 1) noise map per sample, scaled per channel by ``strength``."""
    return x + torch.randn(x.shape[0], 1, *x.shape[2:]) * strength.view(1, -1, 1, 1)


# --------------------------------------------------------------------------- layers


class EqLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time) and lr_mul."""

    def __init__(
        self, i: int, o: int, bias_init: float = 0.0, lr_mul: float = 1.0, gain: float = 1.0
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i) / lr_mul)
        self.bias = nn.Parameter(torch.full((o,), float(bias_init)) / lr_mul)
        self.wg, self.bg = gain / math.sqrt(i) * lr_mul, lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.wg, self.bias * self.bg)


class EqConv(nn.Module):
    """k x k convolution ("same" zero padding) with equalised learning rate."""

    def __init__(self, i: int, o: int, k: int, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i, k, k))
        self.bias = nn.Parameter(torch.zeros(o))
        self.wg = gain / math.sqrt(i * k * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.wg, self.bias, padding=self.weight.shape[-1] // 2)


class Mapping(nn.Module):
    """z -> pixel norm -> ``maplayers`` LeakyReLU EqLinear layers (lr_mul ``maplr``) -> w.

    With ``--cond 1`` (StyleGAN2-ADA's ``MappingNetwork`` with ``c_dim``), the one-hot class
    goes through a linear ``embed`` layer (6 -> w size, lr_mul 1, no activation), is pixel-normed
    and concatenated after the normalised z. ``zdim`` and ``wdim`` default to ``--zdim`` and
    ``--wdim``, ``lr_mul`` to ``--maplr``; D's class mapping uses ``zdim=0`` (the class alone),
    ``wdim`` its cmap size and ``lr_mul`` ``--cmaplr``.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        zdim: int | None = None,
        wdim: int | None = None,
        lr_mul: float | None = None,
    ) -> None:
        super().__init__()
        zdim = args.zdim if zdim is None else zdim
        wdim = args.wdim if wdim is None else wdim
        lr_mul = args.maplr if lr_mul is None else lr_mul
        self.embed = EqLinear(NUM_CLASSES, wdim) if args.cond else None
        d = [zdim + (wdim if args.cond else 0)] + [wdim] * args.maplayers
        self.layers = nn.ModuleList(
            [EqLinear(i, o, lr_mul=lr_mul, gain=SQRT2) for i, o in zip(d, d[1:])]
        )

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None) -> torch.Tensor:
        """w for latents ``z`` (None: none) and, with --cond 1, integer class labels ``c``."""
        parts = [] if z is None else [normalize_2nd_moment(z)]
        if self.embed is not None:
            if c is None:
                raise ValueError("--cond 1: the mapping network needs class labels")
            onehot = F.one_hot(c, NUM_CLASSES).to(torch.float32)
            parts.append(normalize_2nd_moment(self.embed(onehot)))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
        return x


class AdaINLayer(nn.Module):
    """Old StyleGAN-lite layer: [up] -> [3x3 conv] -> noise -> LeakyReLU -> AdaIN(w).

    Without a conv (the first 4x4 layer) a learned bias is added before the activation.
    """

    def __init__(
        self, args: argparse.Namespace, ci: int, co: int, up: bool, conv: bool = True
    ) -> None:
        super().__init__()
        self.up, self.co = up, co
        self.up_mode, self.noise = args.up, bool(args.noise)
        self.conv = EqConv(ci, co, 3, SQRT2) if conv else None
        self.bias = nn.Parameter(torch.zeros(co))
        self.nw = nn.Parameter(torch.zeros(co))
        self.aff = EqLinear(args.wdim, 2 * co)
        self.aff.bias.data[:co] = 1  # style scales start at 1

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = upsample(x, self.up_mode)
        if self.conv is not None:
            x = self.conv(x)
        if self.noise:
            x = add_noise(x, self.nw)
        if self.conv is None:
            x = x + self.bias.view(1, -1, 1, 1)
        x = F.leaky_relu(x, 0.2)
        st = self.aff(w)
        sc, b = st[:, : self.co], st[:, self.co :]
        m = x.mean((2, 3), keepdim=True)
        v = x.var((2, 3), keepdim=True, unbiased=False)
        return (x - m) * (v + 1e-8).rsqrt() * sc[:, :, None, None] + b[:, :, None, None]


class ModConv(nn.Module):
    """StyleGAN2 modulated conv: x * style -> [up] -> conv -> * demod (fused_modconv=False form).

    With ``demod`` (the synthesis layers): noise, bias, LeakyReLU times sqrt(2). Without it
    (toRGB): the style is scaled by the weight gain, as in StyleGAN2, and only a bias added.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        ci: int,
        co: int,
        k: int,
        demod: bool = True,
        up: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(co, ci, k, k))
        self.bias = nn.Parameter(torch.zeros(co))
        self.wg = 1 / math.sqrt(ci * k * k)
        self.aff = EqLinear(args.wdim, ci, bias_init=1.0)
        self.demod, self.up, self.k = demod, up, k
        self.nw = nn.Parameter(torch.zeros(co)) if demod else None
        self.up_mode, self.pad, self.noise = args.up, args.pad, bool(args.noise)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        st = self.aff(w)  # (N, ci)
        if not self.demod:
            st = st * self.wg
        wt = self.weight * (self.wg if self.demod else 1.0)
        x = x * st[:, :, None, None]
        if self.up:
            x = upsample(x, self.up_mode)
        if self.pad != "zeros" and self.k > 1:
            x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=self.pad), wt, None)
        else:
            x = F.conv2d(x, wt, None, padding=self.k // 2)
        if not self.demod:
            return x + self.bias.view(1, -1, 1, 1)
        d = ((st.square() @ wt.square().sum((2, 3)).t()) + 1e-8).rsqrt()  # (N, co)
        x = x * d[:, :, None, None]
        if self.noise:
            x = add_noise(x, self.nw)
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * SQRT2


class Synthesis(nn.Module):
    """ws (N, num_ws, wdim) -> 32x32 RGB, from a learned 4x4 constant.

    adain: 2 layers at 4x4, then (up layer, layer) per resolution, one 1x1 toRGB at the end.
    mod: 1 layer at 4x4, then (up layer, layer) per resolution, with a toRGB per resolution;
    ``--skip 1`` sums the upsampled toRGB images, ``--skip 0`` uses only the last one. Every
    layer and toRGB takes its own w (toRGB shares the index after its resolution's layers).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.adain, self.skip, self.rgbup = args.arch == "adain", bool(args.skip), args.rgbup
        self.colours: EqLinear | None = None

        def ch(r: int) -> int:
            return width(args.gc, args.cbase, r)

        c = args.gc
        self.const = nn.Parameter(torch.randn(1, ch(4), 4, 4))
        if self.adain:
            layers = [AdaINLayer(args, c, c, False, conv=False), AdaINLayer(args, c, c, False)]
            for _ in range(NUM_RES):
                layers += [AdaINLayer(args, c, c, True), AdaINLayer(args, c, c, False)]
            self.layers = nn.ModuleList(layers)
            self.rgb = EqConv(c, 3, 1)
        else:
            out = 1 if args.layered else 3
            if args.layered:
                self.colours = EqLinear(args.wdim, 6)
            layers = [ModConv(args, ch(4), ch(4), 3)]
            rgbs = [ModConv(args, ch(4), out, 1, demod=False)]
            for i in range(NUM_RES):
                r = 8 << i
                layers += [
                    ModConv(args, ch(r // 2), ch(r), 3, up=True),
                    ModConv(args, ch(r), ch(r), 3),
                ]
                rgbs.append(ModConv(args, ch(r), out, 1, demod=False))
            self.layers, self.rgbs = nn.ModuleList(layers), nn.ModuleList(rgbs)
        self.num_ws = len(self.layers) + (0 if self.adain else 1)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        if self.adain:
            for i, layer in enumerate(self.layers):
                x = layer(x, ws[:, i])
            return self.rgb(x)
        x = self.layers[0](x, ws[:, 0])
        img = self.rgbs[0](x, ws[:, 1]) if self.skip else None
        for r in range(1, len(self.rgbs)):
            x = self.layers[2 * r - 1](x, ws[:, 2 * r - 1])
            x = self.layers[2 * r](x, ws[:, 2 * r])
            if self.skip:
                kw = {} if self.rgbup == "nearest" else {"align_corners": False}
                img = F.interpolate(img, scale_factor=2, mode=self.rgbup, **kw)
                img = img + self.rgbs[r](x, ws[:, 2 * r + 1])
        if not self.skip:
            img = self.rgbs[-1](x, ws[:, -1])
        if self.colours is not None:  # --layered: img is the mask logit
            fg, bg = torch.tanh(self.colours(ws[:, 0]))[:, :, None, None].chunk(2, 1)
            img = bg + (fg - bg) * torch.sigmoid(img)
        return img


class Generator(nn.Module):
    """Mapping and synthesis networks, plus the running average of w (tracked, unused)."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.mapping = Mapping(args)
        self.synthesis = Synthesis(args)
        self.register_buffer("w_avg", torch.zeros(args.wdim))


class Discriminator(nn.Module):
    """StyleGAN2-style D without residuals: fromRGB, (conv, conv, avg-pool) per resolution
    down to 4x4, minibatch-stddev channel, 3x3 conv, fully connected layer, one logit.

    With ``--cond 1`` (StyleGAN2-ADA's ``DiscriminatorEpilogue`` with ``cmap_dim``): the last
    layer gives ``cmap_dim`` (D's 4x4 width) features ``o`` and the logit is the projection
    ``(o * cmap).sum(1) / sqrt(cmap_dim)``, ``cmap`` being a mapping network of the class alone
    (``--maplayers`` layers, as G's, where ADA's D uses 8).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()

        def ch(r: int) -> int:
            return width(args.dc, args.cbase, r)

        c = ch(4)
        self.mbstd = args.mbstd
        self.frgb = EqConv(3, ch(RES), 1, SQRT2)
        self.blocks = nn.ModuleList(
            [
                nn.ModuleList([EqConv(ch(r), ch(r), 3, SQRT2), EqConv(ch(r), ch(r // 2), 3, SQRT2)])
                for r in (32, 16, 8)[:NUM_RES]
            ]
        )
        self.conv = EqConv(c + 1, c, 3, SQRT2)
        self.fc = EqLinear(c * 16, c, gain=SQRT2)
        self.out = EqLinear(c, c if args.cond else 1)
        self.cmap = Mapping(args, zdim=0, wdim=c, lr_mul=args.cmaplr) if args.cond else None
        self.projcls = bool(args.cond and args.projcls)

    def minibatch_std(self, h: torch.Tensor) -> torch.Tensor:
        """Append the mean feature stddev over groups of ``min(mbstd, N)`` samples."""
        n, c, hh, ww = h.shape
        g = min(self.mbstd, n)
        y = h.reshape(g, n // g, c, hh, ww)
        y = ((y - y.mean(0, keepdim=True)).square().mean(0) + 1e-8).sqrt().mean((1, 2, 3))
        y = y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(n, 1, hh, ww)
        return torch.cat([h, y], 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """One logit per image (conditioned on the labels ``c`` with --cond 1)."""
        h = F.leaky_relu(self.frgb(x), 0.2)
        for b0, b1 in self.blocks:
            h = F.avg_pool2d(F.leaky_relu(b1(F.leaky_relu(b0(h), 0.2)), 0.2), 2)
        h = F.leaky_relu(self.conv(self.minibatch_std(h)), 0.2)
        h = F.leaky_relu(self.fc(h.flatten(1)), 0.2)
        out = self.out(h)
        if self.cmap is None:
            return out.reshape(-1)
        cmap = self.cmap(None, c)
        if self.projcls:  # every class's projection score, for the class loss
            every = self.cmap(None, torch.arange(NUM_CLASSES))  # (K, cmap_dim)
            self.class_scores = out @ every.t() / math.sqrt(every.shape[1])
        return (out * cmap).sum(1) / math.sqrt(cmap.shape[1])


# --------------------------------------------------------------------------- training


class Trainer:
    """G, D, the EMA copy of G, their optimisers and the batch-sampling generator.

    ``y`` holds the labels of the images ``x`` (needed with --cond 1 only).
    """

    def __init__(
        self, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> None:
        self.args, self.x, self.y = args, x, y
        self.G, self.D = Generator(args), Discriminator(args)
        self.G_ema = copy.deepcopy(self.G)
        self.num_ws = self.G.synthesis.num_ws
        self.opt_g = torch.optim.Adam(self.G.parameters(), args.lr, betas=(args.b1, args.b2))
        # lazy R1: D's Adam hyper-parameters corrected for the extra regularisation steps
        c = args.r1every / (args.r1every + 1) if args.r1 > 0 else 1.0
        self.opt_d = torch.optim.Adam(
            self.D.parameters(), args.lr * c, betas=(args.b1**c, args.b2**c)
        )
        self.rng = torch.Generator().manual_seed(args.seed)
        self.loss_d = self.loss_g = torch.zeros(())
        self.policy = [p for p in args.diffaug.split(",") if p]
        self.aug_rng = torch.Generator().manual_seed(args.seed + 1)

    def critic(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits, on DiffAugmented images with --diffaug (given labels ``c``: --cond 1)."""
        if self.policy:
            from dcgan_recipes import diff_augment

            images = diff_augment(images, self.policy, self.aug_rng)
        return self.D(images) if c is None else self.D(images, c)

    def param_counts(self) -> str:
        n_g = sum(q.numel() for q in self.G.parameters())
        n_d = sum(q.numel() for q in self.D.parameters())
        return f"G params {n_g} D params {n_d} num_ws {self.num_ws}"

    def make_ws(self, n: int, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-layer ws for ``n`` fresh latents (style-mixed with probability --mix) and w.

        With labels ``c`` (--cond 1) both latents of a mixed sample map with the same class.
        """
        net, nw, zdim = self.G, self.num_ws, self.args.zdim
        w = net.mapping(torch.randn(n, zdim), c)
        ws = w[:, None].expand(-1, nw, -1)
        if torch.rand(()) < self.args.mix:
            cut = int(torch.randint(1, nw, ()))
            w2 = net.mapping(torch.randn(n, zdim), c)[:, None].expand(-1, nw, -1)
            ws = torch.cat([ws[:, :cut], w2[:, cut:]], 1)
        return ws, w

    def step(self, step: int) -> None:
        """One training step (0-based ``step``): a D update, a G update, the EMA update."""
        a = self.args
        idx = torch.randint(0, len(self.x), (a.batch,), generator=self.rng)
        real, real_c, fake_c = self.x[idx], None, None
        if a.cond:
            assert self.y is not None, "--cond 1 needs the training labels"
            real_c = self.y[idx]
            fake_c = torch.randint(0, NUM_CLASSES, (a.batch,), generator=self.rng)
            ws, w = self.make_ws(a.batch, fake_c)
        else:
            ws, w = self.make_ws(a.batch)
        with torch.no_grad():
            self.G.w_avg.lerp_(w.mean(0), 0.005)
        fake = self.G.synthesis(ws)

        # discriminator, with the lazy R1 penalty (gamma / 2 * |grad_x D(x)|^2, times r1every)
        do_r1 = a.r1 > 0 and step % a.r1every == 0
        x = real.detach().requires_grad_(do_r1)
        real_logits = self.critic(x, real_c)
        real_scores = self.D.class_scores if a.cond and a.projcls else None
        fake_logits = self.critic(fake.detach(), fake_c)
        loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if real_scores is not None:  # --projcls: D's projection names the real images' classes
            loss_d = loss_d + a.projcls * F.cross_entropy(real_scores, real_c)
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
            loss_d = loss_d + grad.square().sum((1, 2, 3)).mean() * (a.r1 / 2 * a.r1every)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()

        # generator, through a frozen D
        self.D.requires_grad_(False)
        loss_g = F.softplus(-self.critic(fake, fake_c)).mean()
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

        # EMA of G's parameters (not buffers), with the decay ramped up over the first steps
        with torch.no_grad():
            decay = min(a.ema, (1 + step) / (10 + step))
            for e, q in zip(self.G_ema.parameters(), self.G.parameters()):
                e.lerp_(q, 1 - decay)
        self.loss_d, self.loss_g = loss_d, loss_g


# --------------------------------------------------------------------------- evaluation


class SampleModel:
    """The model interface :func:`minigan.metrics.measure` samples from.

    Sample ``s`` uses the latent ``default_rng(s).standard_normal(zdim)`` (and with ``cond``
    the class ``s % 6``) with the same w in every layer (no truncation), so every evaluation
    scores the same latents.
    """

    image_shape = (3, RES, RES)

    def __init__(self, net: Generator, zdim: int, num_ws: int, cond: bool = False) -> None:
        self.net, self.zdim, self.num_ws, self.cond = net, zdim, num_ws, cond

    def generate(self, seeds: Iterable[int], batch_size: int = 128) -> np.ndarray:
        seeds = list(seeds)
        z = np.stack(
            [np.random.default_rng(s).standard_normal(self.zdim, dtype=np.float32) for s in seeds]
        )
        labels = torch.tensor([s % NUM_CLASSES for s in seeds]) if self.cond else None
        out = []
        with torch.no_grad():
            for i in range(0, len(z), batch_size):
                zz = torch.from_numpy(z[i : i + batch_size])
                c = None if labels is None else labels[i : i + batch_size]
                w = self.net.mapping(zz) if c is None else self.net.mapping(zz, c)
                ws = w[:, None].expand(-1, self.num_ws, -1)
                out.append(self.net.synthesis(ws).clamp(-1, 1).numpy())
        return np.concatenate(out)


def format_result(tag: str, step: int, seconds: float, r: dict, ld: float, lg: float) -> str:
    """The first result line (other notes parse this format: keep it)."""
    classes = " ".join(f"{v:.2f}" for v in r["class_fractions"].values())
    return (
        f"{tag} step {step} {seconds:.0f}s ms/step {1000 * seconds / step:.0f} | "
        f"fid {r['fid']:.2f} conf {r['confident']:.3f} prec {r['precision']:.2f} "
        f"rec {r['recall']:.2f} bord {r['border']:.3f}/{r['real_border']:.3f} cls {classes}"
        f" | ld {ld:.2f} lg {lg:.2f}"
    )


def edge_profile(samples: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean |pixel - sample's interior median| (colours in [0, 1]) on each ring in
    RING_OFFSETS and at each pixel in CORNERS, averaged over samples and channels."""
    xx = (samples + 1) / 2
    med = np.median(xx[:, :, 2:-2, 2:-2], axis=(2, 3), keepdims=True)
    dev = np.abs(xx - med).mean((0, 1))
    last = RES - 1
    rings = [
        np.concatenate(
            [
                dev[r, r : RES - r],
                dev[last - r, r : RES - r],
                dev[r : RES - r, r],
                dev[r : RES - r, last - r],
            ]
        ).mean()
        for r in RING_OFFSETS
    ]
    return rings, [dev[i, j] for i, j in CORNERS]


def format_edges(tag: str, rings: list[float], corners: list[float]) -> str:
    """The second result line (keep the format)."""
    return (
        f"{tag}   rings(0,1,2,4,8) "
        + " ".join(f"{v:.3f}" for v in rings)
        + " | corners TL TR BL BR "
        + " ".join(f"{v:.3f}" for v in corners)
    )


def evaluate(trainer: Trainer, step: int, seconds: float) -> None:
    """Score the EMA generator, print both lines, save ck-TAG.pt and (with --grid) a grid."""
    a = trainer.args
    model = SampleModel(trainer.G_ema, a.zdim, trainer.num_ws, bool(a.cond))
    r = measure(model, "shapes", num=a.num, progress=False, kid_subsets=10)
    ld, lg = trainer.loss_d.item(), trainer.loss_g.item()
    print(format_result(a.tag, step, seconds, r, ld, lg), flush=True)
    print(format_edges(a.tag, *edge_profile(model.generate(range(512)))), flush=True)
    if a.cond:  # does G draw the class it is asked for (seed s: class s % 6)?
        from dcgan_recipes import class_agreement

        print(f"{a.tag} step {step} {class_agreement(model.generate(range(1200)))}", flush=True)
    torch.save({"ge": trainer.G_ema.state_dict(), "args": vars(a)}, f"ck-{a.tag}.pt")
    if a.grid:
        from minigan import images

        images.save_image(f"{a.grid}-{step}.png", images.make_grid(model.generate(range(64))), {})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x, y = load_shapes(args.limit)
    trainer = Trainer(args, x, y)
    print(args.tag, trainer.param_counts(), file=sys.stderr)
    t0 = time.perf_counter()
    seconds = 0.0  # training time only: evaluations are excluded
    for step in range(args.steps):
        trainer.step(step)
        done = step + 1
        if done % args.eval == 0 or done == args.steps:
            seconds += time.perf_counter() - t0
            evaluate(trainer, done, seconds)
            t0 = time.perf_counter()


if __name__ == "__main__":
    main()
