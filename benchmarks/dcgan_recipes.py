"""DCGAN recipe search: the exploration harness behind ``docs/quality/dcgan-recipes.md``.

Trains a PyTorch model of minigan's 32x32 DCGAN layout (and variants of it: upsampling
style, CoordConv inputs, an extra full-resolution layer, minibatch-stddev, a projection
class-conditional discriminator, R1 penalty, hinge loss, learning-rate decay, EMA of the
generator) on minigan's ``shapes`` data, and scores it with :func:`minigan.metrics.measure`
on the shapes-classifier features at truncation psi 1.0, 0.7 and 0.5. Written for minigan
issue 15, to find which recipe the DCGAN default should use.

Run it (from any directory, with the project's environment)::

    OMP_NUM_THREADS=1 python dcgan_recipes.py --steps 4096 --eval 1024 --tag base

Every ``--eval`` steps (and at the last step) it prints, once per psi, one line::

    TAG psi P step S Ns ms/step M | fid F conf C prec P rec R bord B cls c1 .. c6

(the seconds and ms/step count training only, not evaluation), then one line of the means
since the previous evaluation of D's and G's losses and D's real and fake logits::

    TAG step S loss_d L loss_g L real R fake F

``--grid`` writes a PNG of 64 samples and ``--save`` the generator's ``state_dict`` at each
evaluation; ``--flops 1`` prints the FLOPs of one training step (to convert steps into minigan
time) and exits. Beyond the variants above: ``--sn 1`` (spectral normalisation in D),
``--diffaug`` (DiffAugment on everything D sees), ``--dsteps`` (D updates per G update).

This is a research tool, not part of minigan: it uses PyTorch, which is only a test/bench
dependency of the project. It runs single-threaded by design (``torch.set_num_threads(1)``)
so that ms/step figures are comparable with each other and with minigan's own CPU backend.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from dcgan_twin import augment
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from minigan.data import LUMA, open_dataset
from minigan.diffaugment import POLICY_OPS, AugmentDraws
from minigan.metrics import measure

NUM_CLASSES = 6  # the shapes data set's classes
PSIS = (1.0, 0.7, 0.5)  # truncation levels every evaluation reports (the --psis default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (flag names are kept stable: recorded commands use them)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    groups = (_training_flags, _generator_flags, _layered_flags, _implicit_flags)
    for group in (*groups, _discriminator_flags, _output_flags):
        group(p.add_argument)
    args = p.parse_args(argv)
    if not args.cond and (args.cbn or args.ac or args.projcls):
        p.error("--cbn, --ac and --projcls need --cond 1 (they condition on the class)")
    if args.implicit and not args.layered:
        p.error("--implicit draws the mask of the layered output: it needs --layered 1 or 2")
    if (args.pose or args.ilayers != 2 or args.template) and not args.implicit:
        p.error("--pose, --ilayers and --template shape the implicit mask: they need --implicit")
    if args.gainramp < 0 or (args.gainramp and not args.layered):
        p.error("--gainramp ramps the layered output's --maskgain: it needs --layered, >= 0")
    if args.posegain != 0.1 and not args.pose:
        p.error("--posegain scales the initial pose: it needs --pose 1")
    if not 0 <= args.shift <= 1:
        p.error("--shift is a fraction of the image size, in [0, 1]")
    if args.cmix and args.layered == 2:
        p.error("--cmix mixes two linear colour heads: it needs --layered 1")
    if args.template and not args.cond:
        p.error("--template adds a per-class part to the implicit mask: it needs --cond 1")
    if args.ilayers < 1:
        p.error("--ilayers must be at least 1")
    if args.ac < 0 or args.projcls < 0 or (args.acg or 0) < 0:
        p.error("--ac, --acg and --projcls must be >= 0")
    if args.acg and not args.ac:
        p.error("--acg weighs G's term of the auxiliary classifier: it needs --ac > 0")
    if args.acg is None:
        args.acg = args.ac
    return args


def _training_flags(add: Callable[..., Any]) -> None:
    add("--steps", type=int, default=4096, help="training steps (one D and one G update each)")
    add("--batch", type=int, default=32, help="batch size")
    add("--limit", type=int, default=20000, help="number of shapes training images to load")
    add("--seed", type=int, default=0, help="seed for weights and the training batches")
    add("--lr", type=float, default=1e-3, help="Adam learning rate of G (and of D without --lrd)")
    add("--lrd", type=float, default=0, help="Adam learning rate of D (0: same as --lr)")
    add("--b1", type=float, default=0.5, help="Adam beta1")
    add("--b2", type=float, default=0.999, help="Adam beta2")
    add("--decay", type=int, default=0, help="1: constant lr for half the run, then linear to 0")
    add("--ema", type=float, default=0.99, help="EMA decay of G's weights (0: no EMA copy)")
    add("--loss", default="ns", choices=("ns", "hinge"), help="non-saturating or hinge loss")
    add("--r1", type=float, default=0, help="R1 penalty weight gamma (0: none)")
    add("--r1every", type=int, default=16, help="apply R1 (lazily, scaled up) every N steps")


def _generator_flags(add: Callable[..., Any]) -> None:
    add("--z", type=int, default=100, help="latent size")
    add("--gw", type=int, default=32, help="generator base width (widths 4w, 2w, w)")
    add(
        "--gup",
        default="convt",
        choices=("convt", "up"),
        help="upsampling: 4x4 stride-2 transposed conv, or nearest x2 + 3x3 conv",
    )
    add(
        "--cbn",
        type=int,
        default=0,
        help="1 (with --cond): class-conditional BatchNorm in G (a per-class scale and shift "
        "after each normalisation; SNGAN-projection's generator)",
    )
    add("--coord", type=int, default=0, help="1: CoordConv (x, y channels) before G's upsamplers")
    add(
        "--gfull",
        type=int,
        default=0,
        help="width of an extra 3x3 conv layer at 32x32 ending G (0: none)",
    )


def _layered_flags(add: Callable[..., Any]) -> None:
    """The layered output: a mask and two colours (--layered and its options)."""
    add(
        "--layered",
        type=int,
        default=0,
        help="1: layered output: G's last layer gives a mask logit, a linear head on G's "
        "input gives a foreground and a background colour; image = bg + (fg - bg) * "
        "sigmoid(mask); 2: the same with the colours from a one-hidden-layer MLP (64 units)",
    )
    add("--chidden", type=int, default=64, help="--layered 2: the colour MLP's hidden units")
    add(
        "--cmix",
        type=int,
        default=0,
        help="--layered: 1 draws the colours from one of two linear heads, chosen by the "
        "sign of z_0 (a mixture: each head can learn one of two colour modes)",
    )
    add(
        "--csign",
        type=int,
        default=0,
        help="--layered: K > 0 appends sign(z_0 .. z_{K-1}) to the colour head's input, K "
        "binary latent features (the data's colour pairs: dark on light or light on dark)",
    )
    add(
        "--maskgain",
        type=float,
        default=1.0,
        help="with --layered: the mask logit is multiplied by this before the sigmoid",
    )
    add(
        "--gainramp",
        type=int,
        default=0,
        help="with --maskgain: raise the gain linearly from 1 over this many steps (0: "
        "the full gain from the start)",
    )
    add(
        "--maskfn",
        choices=("sigmoid", "ramp"),
        default="sigmoid",
        help="with --layered: how the mask logit becomes coverage: sigmoid, or ramp: "
        "clamp(0.5 + logit, 0, 1), the renderer's one-pixel ramp of a signed distance",
    )


def _implicit_flags(add: Callable[..., Any]) -> None:
    """The layered output's mask drawn by an implicit network (--implicit)."""
    add(
        "--implicit",
        type=int,
        default=0,
        help="with --layered 1: the mask from a per-sample two-layer ReLU network of the pixel "
        "coordinates (x, y, x^2, y^2, xy), this many units a layer, whose weights an MLP makes "
        "from G's input (a hypernetwork; replaces the convolutions)",
    )
    add("--ilayers", type=int, default=2, help="--implicit: hidden layers of the network")
    add(
        "--posegain",
        type=float,
        default=0.1,
        help="--pose: the initial scale of the trunk's last weights for the pose outputs (the "
        "other outputs' is 0.1): how much the initial pose varies with the input",
    )
    add(
        "--template",
        type=int,
        default=0,
        help="1 (with --implicit and --cond): a learnt per-class template (from 0) added to "
        "the trunk's output: each class's common network, its pose and weights, directly",
    )
    add(
        "--pose",
        type=int,
        default=0,
        help="1 (with --implicit): the trunk also gives a rotation, scale and shift applied "
        "to the pixel coordinates first (the network draws in the shape's own frame)",
    )


def _discriminator_flags(add: Callable[..., Any]) -> None:
    add("--dw", type=int, default=16, help="discriminator base width (widths w, 2w, 4w)")
    add("--dbn", type=int, default=1, help="1: BatchNorm in D's 2nd and 3rd conv layers")
    add("--dfull", type=int, default=0, help="width of an extra 3x3 conv starting D (0: none)")
    add(
        "--shift",
        type=float,
        default=0.125,
        help="--diffaug translation: the largest shift, as a fraction of the size (the paper's "
        "1/8)",
    )
    add(
        "--mbstd",
        type=int,
        default=0,
        help="1: minibatch-stddev channel before D's last conv (with --cond, before the "
        "projection D's output conv; until session 11 --cond ignored it)",
    )
    add("--sn", type=int, default=0, help="1: spectral normalisation on every conv of D")
    add(
        "--diffaug",
        default="",
        help="DiffAugment policy for every image D sees, real and fake (comma-separated: "
        "translation, color, cutout; empty: none)",
    )
    add("--dsteps", type=int, default=1, help="D updates per G update (fresh batches each)")
    add(
        "--topk",
        type=float,
        default=1.0,
        help="top-k training (Sinha et al. 2020): G's loss uses only the fraction of its batch "
        "D rates most real, annealed linearly from 1 to this fraction over the run (1: all)",
    )
    add(
        "--ac",
        type=float,
        default=0,
        help="with --cond: weight of an auxiliary classifier loss (AC-GAN): a linear head on D's "
        "pooled features learns the real images' classes, and G is pushed to make its images "
        "classified as the class asked for (0: none)",
    )
    add(
        "--acg",
        type=float,
        default=None,
        help="with --ac: G's weight of the auxiliary-classifier term (default: --ac's; 0: only D "
        "learns to classify, G sees the class through the projection alone)",
    )
    add(
        "--projcls",
        type=float,
        default=0,
        help="with --cond: weight of a cross entropy on the real images that makes the "
        "projection term <embed(y), sum h> itself a classifier (softmax over y); G's loss is "
        "unchanged (0: none)",
    )
    add(
        "--cond",
        type=int,
        default=0,
        help="1: class-conditional (one-hot class in G's input, projection D; ignores --mbstd)",
    )


def _output_flags(add: Callable[..., Any]) -> None:
    """Evaluation and output."""
    add("--eval", type=int, default=1024, help="evaluate every N steps (and at the last step)")
    add("--num", type=int, default=1024, help="samples per evaluation (measure's num)")
    add(
        "--psi",
        type=float,
        default=1.0,
        help="no effect (kept for recorded commands): every evaluation uses psi 1.0, 0.7, 0.5",
    )
    add(
        "--psis",
        default=",".join(str(p) for p in PSIS),
        help="comma-separated truncation levels each evaluation reports",
    )
    add("--tag", default="", help="label starting each result line")
    add("--grid", default="", help="PNG path for a grid of 64 samples (psi 1.0) at each eval")
    add("--save", default="", help="path for the (EMA) generator's state_dict at each eval")
    add("--flops", type=int, default=0, help="1: print FLOPs of one training step and exit")


def load_shapes(limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` shapes images (NCHW float in [-1, 1]) and their class labels."""
    ds = open_dataset("shapes", limit=limit)
    images, labels = ds[: len(ds)]
    x = torch.from_numpy(np.asarray(images, np.float32))
    y = torch.from_numpy(np.asarray(labels)).long()
    if x.max() > 1.5:  # stored as 0..255
        x = x / 127.5 - 1
    print("data", x.shape, float(x.min()), float(x.max()), file=sys.stderr)
    return x, y


# --------------------------------------------------------------------------- networks


class Coord(nn.Module):
    """CoordConv: append two channels holding the x and y coordinates in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([x, xs, ys], 1)


class MinibatchStd(nn.Module):
    """Append one channel: the mean feature stddev over groups of (up to) 4 samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(4, n)
        y = x.reshape(g, -1, c, h, w)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean([1, 2, 3])  # (n / g,)
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], 1)


class ProjectionD(nn.Module):
    """Class-conditional discriminator head: ``out(h) + <embed(y), sum_hw h>`` (projection D)."""

    def __init__(
        self, body: nn.Module, width: int, classifier: bool = False, mbstd: bool = False
    ) -> None:
        super().__init__()
        self.body = body
        self.out = nn.Conv2d(4 * width + mbstd, 1, 4, 1, 0, bias=False)
        self.mbstd = MinibatchStd() if mbstd else None  # --mbstd: before the output conv
        self.emb = nn.Embedding(NUM_CLASSES, 4 * width)
        nn.init.normal_(self.emb.weight, 0, 0.02)
        # --ac only (created only then: recorded runs keep their random draws)
        self.classifier = nn.Linear(4 * width, NUM_CLASSES) if classifier else None
        self.class_logits: torch.Tensor | None = None  # of the last forward
        self.projection_logits: torch.Tensor | None = None  # <embed(k), sum h> for every k

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        pooled = h.sum([2, 3])
        if self.classifier is not None:
            self.class_logits = self.classifier(pooled / (h.shape[2] * h.shape[3]))
        self.projection_logits = pooled @ self.emb.weight.t()
        head = self.out(h if self.mbstd is None else self.mbstd(h))
        return head.flatten() + (self.emb(y) * pooled).sum(1)


class Layered(nn.Module):
    """--layered: ``body`` maps G's input to a mask logit (N, 1, H, W); ``colours`` maps the
    same input to a foreground and a background colour in [-1, 1]; the image is the background
    with the foreground blended in by the sigmoid of the mask."""

    def __init__(
        self,
        body: nn.Module,
        inputs: int,
        hidden: int = 0,
        gain: float = 1.0,
        ramp: bool = False,
        signs: int = 0,
        mix: int = 0,
    ) -> None:
        super().__init__()
        self.body, self.gain, self.ramp, self.signs = body, gain, ramp, signs
        self.colours: nn.Module = nn.Linear(inputs + signs, 6)
        # --cmix: a second colour head, used where z_0 < 0 (a mixture of two heads)
        self.colours2 = nn.Linear(inputs + signs, 6) if mix else None
        if hidden:  # --layered 2: the colours from a one-hidden-layer MLP
            self.colours = nn.Sequential(
                nn.Linear(inputs + signs, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 6)
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = z.flatten(1)
        if self.signs:  # --csign: binary features sign(z_0 .. z_{K-1}), a discrete latent
            c = torch.cat([c, torch.sign(c[:, : self.signs])], 1)
        both = self.colours(c)
        if self.colours2 is not None:
            both = torch.where(c[:, :1] > 0, both, self.colours2(c))
        fg, bg = torch.tanh(both)[:, :, None, None].split(3, 1)
        logit = self.gain * self.body(z)
        mask = torch.clamp(0.5 + logit, 0, 1) if self.ramp else torch.sigmoid(logit)
        return bg + (fg - bg) * mask


class ImplicitMask(nn.Module):
    """--implicit: G's input -> (trunk MLP) -> the weights of a per-sample network
    ``relu(A2 relu(A1 f + b1) + b2) . v + c`` of the pixel features ``f = (x, y, x^2, y^2, xy)``
    (x, y in [-1, 1] at pixel centres): a mask logit (N, 1, H, W) in pixels (x 16 at 32x32).

    The level sets of a ReLU network of (x, y) are polygons, and of x^2, y^2, xy conics, so
    straight edges, sharp corners and ellipses need no convolution to draw. With ``pose``
    the trunk also gives a rotation, a scale and a shift of the coordinates. The trunk's last
    bias holds every sample's common weights (its initial values: a random network), its
    last weight (scaled by 0.1 at the start) the part that depends on the input."""

    def __init__(
        self,
        inputs: int,
        units: int,
        size: int = 32,
        hidden: int = 256,
        pose: bool = False,
        layers: int = 2,
        template: bool = False,
        posegain: float = 0.1,
    ) -> None:
        super().__init__()
        self.layers = layers
        axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("xy", torch.stack([xx.flatten(), yy.flatten()], 1))  # (P, 2)
        self.size, self.pose = size, pose
        base = [
            torch.randn(units, 5),  # A1
            torch.randn(units) * 0.5,  # b1
        ]
        for _ in range(layers - 1):
            base += [torch.randn(units, units) / units**0.5, torch.zeros(units)]  # A_k, b_k
        base += [
            torch.randn(units) / units**0.5,  # v
            torch.zeros(1),  # c
        ]
        if pose:  # rotation (cos, sin) before normalising, log scale, shift
            base += [torch.tensor([1.0, 0.0]), torch.zeros(1), torch.zeros(2)]
        self.shapes = [tuple(b.shape) for b in base]
        flat = torch.cat([b.flatten() for b in base])
        self.trunk = nn.Sequential(
            nn.Linear(inputs, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2), nn.Linear(hidden, len(flat)),
        )  # fmt: skip
        with torch.no_grad():
            self.trunk[-1].weight.mul_(0.1)
            self.trunk[-1].bias.copy_(flat)
            if pose and posegain != 0.1:  # --posegain: the pose rows' scale instead of 0.1
                self.trunk[-1].weight[-5:].mul_(posegain / 0.1)
        # --template: zeros, so that the initial network and the random draws are unchanged
        self.template = nn.Parameter(torch.zeros(NUM_CLASSES, len(flat))) if template else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        flat = self.trunk(z.flatten(1))
        if self.template is not None:  # the one-hot class is the input's tail
            flat = flat + z.flatten(1)[:, -NUM_CLASSES:] @ self.template
        parts, i = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(flat[:, i : i + size].reshape(n, *shape))
            i += size
        k = 2 + 2 * self.layers  # A1, b1, (A_k, b_k) ..., v, c
        a1, b1, v, c = parts[0], parts[1], parts[k - 2], parts[k - 1]
        x, y = self.xy[None, :, 0], self.xy[None, :, 1]  # (1, P)
        if self.pose:
            turn, log_scale, shift = parts[k:]
            turn = turn / turn.norm(dim=1, keepdim=True).clamp_min(1e-3)
            cos, sin = turn[:, :1], turn[:, 1:]
            dx, dy = x - shift[:, :1], y - shift[:, 1:]
            scale = torch.exp(-log_scale)
            x, y = (cos * dx + sin * dy) * scale, (cos * dy - sin * dx) * scale
        else:
            x, y = x.expand(n, -1), y.expand(n, -1)
        f = torch.stack([x, y, x * x, y * y, x * y], 2)  # (N, P, 5)
        h = F.relu(torch.bmm(f, a1.transpose(1, 2)) + b1[:, None])
        for a, b in zip(parts[2 : k - 2 : 2], parts[3 : k - 2 : 2]):
            h = F.relu(torch.bmm(h, a.transpose(1, 2)) + b[:, None])
        logit = torch.bmm(h, v[:, :, None])[:, :, 0] + c
        return (logit * (self.size / 2)).reshape(n, 1, self.size, self.size)


class ClassBatchNorm(nn.Module):
    """--cbn: BatchNorm without affine parameters, then the class's own scale (from 1) and
    shift (from 0); the class comes from the one-hot tail of G's input (:class:`WithClass`)."""

    def __init__(self, channels: int, context: dict) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Parameter(torch.ones(NUM_CLASSES, channels))
        self.bias = nn.Parameter(torch.zeros(NUM_CLASSES, channels))
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.context["y"]
        return self.bn(x) * (y @ self.gain)[:, :, None, None] + (y @ self.bias)[:, :, None, None]


class WithClass(nn.Module):
    """Hands the one-hot class (the last NUM_CLASSES inputs) to the --cbn layers."""

    def __init__(self, body: nn.Module, context: dict) -> None:
        super().__init__()
        self.body, self.context = body, context

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.context["y"] = z.flatten(1)[:, -NUM_CLASSES:]
        return self.body(z)


def build_generator(args: argparse.Namespace) -> nn.Module:
    """z (plus one-hot class with --cond) as 1x1 -> 4x4 -> 8x8 -> 16x16 -> 32x32 RGB in [-1, 1]."""
    w, coord = args.gw, args.coord
    context: dict = {}

    def norm(c: int) -> nn.Module:
        return ClassBatchNorm(c, context) if args.cbn else nn.BatchNorm2d(c)

    layers: list[nn.Module] = [
        nn.ConvTranspose2d(args.z + NUM_CLASSES * args.cond, 4 * w, 4, 1, 0, bias=False),
        norm(4 * w),
        nn.ReLU(),
    ]
    for ci, co in ((4 * w, 2 * w), (2 * w, w)):
        if coord:
            layers += [Coord()]
            ci += 2
        if args.gup == "convt":
            layers += [nn.ConvTranspose2d(ci, co, 4, 2, 1, bias=False)]
        else:
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(ci, co, 3, 1, 1, bias=False)]
        layers += [norm(co), nn.ReLU()]
    if coord:
        layers += [Coord()]
    last = w + 2 * coord  # the last upsampler's input: with --coord, two more channels
    out = 1 if args.layered else 3
    if args.gfull:
        f = args.gfull
        layers += [
            nn.ConvTranspose2d(last, f, 4, 2, 1, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(),
            nn.Conv2d(f, out, 3, 1, 1),
        ]
    elif args.gup == "convt":
        layers += [nn.ConvTranspose2d(last, out, 4, 2, 1, bias=args.layered == 1)]
    else:
        layers += [nn.Upsample(scale_factor=2), nn.Conv2d(last, out, 3, 1, 1)]
    if args.layered:
        hidden = args.chidden if args.layered == 2 else 0
        inputs = args.z + NUM_CLASSES * args.cond
        body = (
            ImplicitMask(
                inputs,
                args.implicit,
                pose=bool(args.pose),
                layers=args.ilayers,
                template=bool(args.template),
                posegain=args.posegain,
            )
            if args.implicit
            else nn.Sequential(*layers)
        )
        net: nn.Module = Layered(
            body, inputs, hidden, args.maskgain, args.maskfn == "ramp", args.csign, args.cmix
        )
    else:
        net = nn.Sequential(*layers, nn.Tanh())
    return WithClass(net, context) if args.cbn else net


def build_discriminator(args: argparse.Namespace) -> nn.Module:
    """32x32 -> 16x16 -> 8x8 -> 4x4 -> one logit per image (a ProjectionD with --cond)."""
    w, dfull = args.dw, args.dfull
    layers: list[nn.Module] = []
    if dfull:
        layers += [nn.Conv2d(3, dfull, 3, 1, 1), nn.LeakyReLU(0.2)]
    layers += [nn.Conv2d(dfull or 3, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for ci, co in ((w, 2 * w), (2 * w, 4 * w)):
        layers += [nn.Conv2d(ci, co, 4, 2, 1, bias=not args.dbn)]
        if args.dbn:
            layers += [nn.BatchNorm2d(co)]
        layers += [nn.LeakyReLU(0.2)]
    if args.cond:
        return ProjectionD(nn.Sequential(*layers), w, args.ac > 0, bool(args.mbstd))
    if args.mbstd:
        layers += [MinibatchStd(), nn.Conv2d(4 * w + 1, 1, 4, 1, 0, bias=False)]
    else:
        layers += [nn.Conv2d(4 * w, 1, 4, 1, 0, bias=False)]
    return nn.Sequential(*layers, nn.Flatten())


def add_spectral_norm(model: nn.Module) -> None:
    """--sn: spectral normalisation (one power iteration per step) on every conv of ``model``."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        spectral_norm(conv)


def dcgan_init(model: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02) and bias 0."""
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0, 0.02)
        if isinstance(mod, nn.BatchNorm2d) and mod.affine:
            nn.init.normal_(mod.weight, 1, 0.02)
            nn.init.zeros_(mod.bias)


# --------------------------------------------------------------------------- DiffAugment
# Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", their policy
# "color,translation,cutout" (github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py)
# with a seeded generator: the draws come from it, the ops are dcgan_twin's port of the paper's
# functions (which minigan.diffaugment is tested against). Every op is differentiable in the
# images, so G learns through it; D sees only augmented images, real and fake alike.


AUGMENTS = POLICY_OPS  # the paper's order: color, translation, cutout


def draw_augment(
    x: torch.Tensor, policy: list[str], gen: torch.Generator, shift: float = 0.125
) -> AugmentDraws:
    """The policy's random parameters for the batch ``x``, from the harness's own torch
    generator in the order the recorded runs drew them (brightness, saturation, contrast;
    shift y, x of at most ``shift`` of the size, the paper's 1/8 by default; cutout centre
    y, x)."""
    n, _, h, w = x.shape
    drawn: dict[str, np.ndarray] = {}

    def ints(low: int, high: int) -> np.ndarray:
        return torch.randint(low, high, (n, 1, 1), generator=gen).reshape(n).numpy()

    if "color" in policy:
        for name in ("brightness", "saturation", "contrast"):
            drawn[name] = torch.rand(n, 1, 1, 1, generator=gen).reshape(n).numpy()
    if "translation" in policy:
        sh, sw = int(h * shift + 0.5), int(w * shift + 0.5)
        drawn["shift_y"], drawn["shift_x"] = ints(-sh, sh + 1), ints(-sw, sw + 1)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        drawn["cutout_y"] = ints(0, h + (1 - ch % 2))
        drawn["cutout_x"] = ints(0, w + (1 - cw % 2))
    return AugmentDraws(**drawn)


def diff_augment(
    x: torch.Tensor, policy: list[str], gen: torch.Generator, shift: float = 0.125
) -> torch.Tensor:
    """Apply the policy's ops in the paper's order (color, translation, cutout), with the
    PyTorch port the exact twin uses (``dcgan_twin.augment``); translation by at most
    ``shift`` of the size."""
    return augment(x, draw_augment(x, policy, gen, shift))


# --------------------------------------------------------------------------- losses


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator loss on real and fake logits (``kind``: "ns" or "hinge")."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator loss on fake logits (``kind``: "ns" or "hinge")."""
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()


# --------------------------------------------------------------------------- training


class Trainer:
    """G, D, the optional EMA copy of G, their optimisers and the batch-sampling generator."""

    def __init__(self, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor) -> None:
        self.args, self.x, self.y = args, x, y
        self.G, self.D = build_generator(args), build_discriminator(args)
        dcgan_init(self.G)
        dcgan_init(self.D)
        if args.sn:
            add_spectral_norm(self.D)
        self.policy = [p for p in args.diffaug.split(",") if p]
        unknown = set(self.policy) - set(AUGMENTS)
        if unknown:
            raise SystemExit(f"--diffaug: unknown op(s) {sorted(unknown)}; use {list(AUGMENTS)}")
        self.aug_rng = torch.Generator().manual_seed(args.seed + 1)
        self.G_ema = copy.deepcopy(self.G) if args.ema > 0 else None
        betas = (args.b1, args.b2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), args.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), args.lrd or args.lr, betas=betas)
        self.rng = torch.Generator().manual_seed(args.seed)
        self.sums = np.zeros(4)  # loss_d, loss_g, mean real logit, mean fake logit (D updates)
        self.counts = np.zeros(4)

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample from: the EMA copy if there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    def set_lr(self, step: int) -> None:
        """--decay: full lr for the first half of the run, then linear down to 0."""
        scale = min(1.0, 2 * (1 - (step - 1) / self.args.steps))
        for opt, base in ((self.opt_g, self.args.lr), (self.opt_d, self.args.lrd or self.args.lr)):
            for group in opt.param_groups:
                group["lr"] = base * scale

    def critic(self, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """D as a function of images alone (conditioned on ``labels`` with --cond)."""

        def d(images: torch.Tensor) -> torch.Tensor:
            if self.policy:
                images = diff_augment(images, self.policy, self.aug_rng, self.args.shift)
            return self.D(images, labels) if self.args.cond else self.D(images)

        return d

    def log(self, i: int, value: Tensor) -> None:
        """Add ``value`` to running sum ``i`` (see :meth:`losses`)."""
        self.sums[i] += float(value.detach())
        self.counts[i] += 1

    def losses(self) -> str:
        """Mean D loss, G loss, real and fake logit since the last call (then reset)."""
        means = self.sums / np.maximum(self.counts, 1)
        self.sums[:], self.counts[:] = 0, 0
        return "loss_d {:.3f} loss_g {:.3f} real {:.2f} fake {:.2f}".format(*means)

    def batch(self) -> tuple[torch.Tensor, ...]:
        """Real images, their labels, G's input (latents, plus one-hot with --cond), fake labels."""
        a = self.args
        idx = torch.randint(0, len(self.x), (a.batch,), generator=self.rng)
        real, y_real = self.x[idx], self.y[idx]
        z = torch.randn(a.batch, a.z, 1, 1, generator=self.rng)
        y_fake = torch.randint(0, NUM_CLASSES, (a.batch,), generator=self.rng)  # drawn always
        if a.cond:
            z = torch.cat([z, F.one_hot(y_fake, NUM_CLASSES).float()[:, :, None, None]], 1)
        return real, y_real, z, y_fake

    def d_update(
        self, step: int, real: Tensor, y_real: Tensor, fake: Tensor, y_fake: Tensor
    ) -> None:
        """One D update (``fake`` detached here), with the lazy R1 penalty (gamma / 2 *
        |grad_x D(x)|^2, times r1every)."""
        a = self.args
        r1 = a.r1 and step % a.r1every == 0
        if r1:
            real.requires_grad_(True)
        real_logits = self.critic(y_real)(real).flatten()
        real_classes = self.D.class_logits if a.ac else None
        projected = self.D.projection_logits if a.projcls else None
        fake_logits = self.critic(y_fake)(fake.detach()).flatten()
        self.log(3, fake_logits.mean())
        loss_d = d_loss(real_logits, fake_logits, a.loss)
        if real_classes is not None:  # --ac: D's classifier learns the real images' classes
            loss_d = loss_d + a.ac * F.cross_entropy(real_classes, y_real)
        if projected is not None:  # --projcls: the projection term classifies the real images
            loss_d = loss_d + a.projcls * F.cross_entropy(projected, y_real)
        if r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            loss_d = loss_d + a.r1 / 2 * a.r1every * grad.pow(2).sum([1, 2, 3]).mean()
        self.log(0, loss_d)
        self.log(2, real_logits.mean())
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()

    def step(self, step: int) -> None:
        """One training step (1-based ``step``): --dsteps D updates, a G update, the EMA update."""
        a = self.args
        if a.decay:
            self.set_lr(step)
        if a.gainramp:  # --gainramp: the mask gain from 1 to --maskgain over N steps
            gain = 1 + (a.maskgain - 1) * min(1.0, step / a.gainramp)
            for net in (self.G, self.G_ema):
                for m in net.modules() if net is not None else ():
                    if isinstance(m, Layered):
                        m.gain = gain
        for _ in range(a.dsteps):
            real, y_real, z, y_fake = self.batch()
            fake = self.G(z)
            self.d_update(step, real, y_real, fake, y_fake)

        # generator, through a frozen D
        self.D.requires_grad_(False)
        fake_logits = self.critic(y_fake)(fake).flatten()
        if a.topk < 1:  # --topk: only the k fakes D finds most real teach G
            keep = 1 - (1 - a.topk) * step / a.steps
            fake_logits = fake_logits.topk(max(1, round(keep * len(fake_logits)))).values
        loss_g = g_loss(fake_logits, a.loss)
        if a.acg:  # --ac: G's images should be classified as the class they were asked for
            loss_g = loss_g + a.acg * F.cross_entropy(self.D.class_logits, y_fake)
        self.log(1, loss_g)
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

        if self.G_ema is not None:
            with torch.no_grad():
                for e, q in zip(self.G_ema.parameters(), self.G.parameters()):
                    e.lerp_(q, 1 - a.ema)
                for e, b in zip(self.G_ema.buffers(), self.G.buffers()):
                    e.copy_(b)


# --------------------------------------------------------------------------- evaluation


class SampleModel:
    """The model interface :func:`minigan.metrics.measure` samples from.

    Sample ``s`` uses the latent ``default_rng(s).standard_normal(z) * psi`` (and, with
    --cond, class ``s % 6``), so every evaluation scores the same latents.
    """

    image_shape = (3, 32, 32)

    def __init__(self, net: nn.Module, z_dim: int, cond: bool, psi: float) -> None:
        self.net, self.z_dim, self.cond, self.psi = net, z_dim, cond, psi

    def generate(self, seeds: Iterable[int], batch_size: int = 128) -> np.ndarray:
        seeds = list(seeds)
        z = np.stack(
            [np.random.default_rng(s).standard_normal(self.z_dim, dtype=np.float32) for s in seeds]
        )
        zz = torch.from_numpy(z * self.psi)
        if self.cond:
            labels = torch.tensor([s % NUM_CLASSES for s in seeds])
            zz = torch.cat([zz, F.one_hot(labels, NUM_CLASSES).float()], 1)
        self.net.eval()
        with torch.no_grad():
            out = self.net(zz[:, :, None, None]).numpy()
        self.net.train()
        return out


def format_result(tag: str, psi: float, step: int, seconds: float, r: dict) -> str:
    """One result line (other notes parse this format: keep it)."""
    classes = " ".join(f"{v:.2f}" for v in r["class_fractions"].values())
    return (
        f"{tag} psi {psi} step {step} {seconds:.0f}s ms/step {1000 * seconds / step:.1f} | "
        f"fid {r['fid']:.2f} conf {r['confident']:.3f} prec {r['precision']:.2f} "
        f"rec {r['recall']:.2f} bord {r['border']:.3f} cls {classes}"
    )


def projection_accuracy(trainer: Trainer) -> str:
    """With --cond: how often D's projection term alone, argmax over y of <embed(y), sum h(x)>,
    names the class of the first 1,024 training images (unaugmented) — whether D's class signal
    can tell the classes apart at all."""
    if not trainer.args.cond:
        return ""
    trainer.D.eval()  # spectral norm: no power iteration (the run stays as without this line)
    with torch.no_grad():
        trainer.D(trainer.x[:1024], trainer.y[:1024])
        guess = trainer.D.projection_logits.argmax(1)
    trainer.D.train()
    return f" dproj {float((guess == trainer.y[:1024]).float().mean()):.3f}"


def asked_and_recognised(net: nn.Module, z_dim: int, num: int = 1200) -> str:
    """With --cond: :func:`class_agreement` of ``num`` samples (seed s asks for class s % 6)."""
    images = SampleModel(net, z_dim, True, 1.0).generate(range(num))
    return class_agreement(images)


def class_agreement(images: np.ndarray) -> str:
    """For each class, the fraction of its samples (image s was asked for class s % 6) that
    the shapes classifier names as that class, and the fraction named so with a top softmax
    above 0.9 — whether a conditional generator draws the class it is asked for."""
    from minigan.metrics.features import get_network

    _, logits = get_network("shapes")(images)
    assert logits is not None
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    asked = np.arange(len(images)) % NUM_CLASSES
    right = p.argmax(1) == asked
    sure = right & (p.max(1) > 0.9)
    per = [f"{right[asked == k].mean():.2f}/{sure[asked == k].mean():.2f}" for k in range(6)]
    low = shape_contrast(images) < 0.25
    return (
        "asked->recognised/confidently " + " ".join(per) + f" | low contrast {low.mean():.3f}"
        f" (confident {(sure[low].mean() if low.any() else 0):.2f}) | {pose_spread(images)}"
    )


def pose_spread(images: np.ndarray) -> str:
    """How varied the shapes' positions and sizes are: the standard deviation of the shape's
    centroid (pixels, x and y pooled) and the 10th / 90th percentiles of its area (pixels),
    from a coverage estimate (each pixel's position between the border colour and the pixel
    farthest from it). The shapes data at 32x32 (1,024 images): centroid std 3.01, area
    102 / 329."""
    x = (images + 1) / 2
    n = len(x)
    bg = np.concatenate([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], 2).mean(2)
    d = x - bg[:, :, None, None]
    far = np.sqrt((d * d).sum(1)).reshape(n, -1).argmax(1)
    fg_d = d.reshape(n, 3, -1)[np.arange(n), :, far]  # (n, 3)
    cov = np.einsum("nchw,nc->nhw", d, fg_d) / np.maximum((fg_d * fg_d).sum(1), 1e-6)[:, None, None]
    cov = np.clip(cov, 0, 1)
    area = cov.sum((1, 2))
    grid = np.arange(x.shape[-1]) + 0.5
    cx = (cov.sum(1) * grid).sum(1) / np.maximum(area, 1e-6)
    cy = (cov.sum(2) * grid).sum(1) / np.maximum(area, 1e-6)
    std = np.sqrt((cx.var() + cy.var()) / 2)
    p10, p90 = np.percentile(area, [10, 90])
    return f"centroid std {std:.2f} area p10/p90 {p10:.0f}/{p90:.0f}"


def shape_contrast(images: np.ndarray) -> np.ndarray:
    """Each image's luminance contrast between its shape and its background, in [0, 1]: the
    97th percentile of the pixels' luma distance from the mean luma of the outermost ring
    (the shapes data: at least 0.30 by construction, 5th percentile about 0.40)."""
    luma = np.einsum("nchw,c->nhw", (images + 1) / 2, LUMA)
    ring = np.concatenate([luma[:, 0], luma[:, -1], luma[:, :, 0], luma[:, :, -1]], 1)
    distance = np.abs(luma - ring.mean(1)[:, None, None]).reshape(len(images), -1)
    return np.percentile(distance, 97, axis=1)


def evaluate(trainer: Trainer, step: int, seconds: float) -> None:
    """Score the sampler at each psi in --psis, print the lines; write --grid and --save."""
    a = trainer.args
    net = trainer.sampler
    for psi in (float(v) for v in a.psis.split(",")):
        model = SampleModel(net, a.z, bool(a.cond), psi)
        r = measure(model, "shapes", num=a.num, progress=False, kid_subsets=10)
        print(format_result(a.tag, psi, step, seconds, r), flush=True)
    print(f"{a.tag} step {step} {trainer.losses()}{projection_accuracy(trainer)}", flush=True)
    if a.cond:
        print(f"{a.tag} step {step} {asked_and_recognised(net, a.z)}", flush=True)
    if a.grid:
        from minigan import images

        samples = SampleModel(net, a.z, bool(a.cond), 1.0).generate(range(64))
        images.save_image(a.grid, images.make_grid(samples), {})
    if a.save:
        torch.save(net.state_dict(), a.save)


def print_flops(trainer: Trainer) -> None:
    """--flops: count one training step's FLOPs (PyTorch's counter: convolutions and matmuls,
    forward and backward) and its parameter counts; compare variants' cost per step with it."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer.step(1)  # warm-up (lazy state)
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step(2)
    params_g = sum(p.numel() for p in trainer.G.parameters())
    params_d = sum(p.numel() for p in trainer.D.parameters())
    flops = counter.get_total_flops()
    print(f"{trainer.args.tag} flops/step {flops / 1e6:.1f} M params G {params_g} D {params_d}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x, y = load_shapes(args.limit)
    trainer = Trainer(args, x, y)
    if args.flops:
        print_flops(trainer)
        return
    t0 = time.perf_counter()  # training time only: evaluations are excluded
    for step in range(1, args.steps + 1):
        trainer.step(step)
        if step % args.eval == 0 or step == args.steps:
            seconds = time.perf_counter() - t0
            evaluate(trainer, step, seconds)
            t0 = time.perf_counter() - seconds


if __name__ == "__main__":
    main()
