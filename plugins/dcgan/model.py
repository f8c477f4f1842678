"""DCGAN (Radford et al., 2015), minigan's built-in GAN: the model (registered as ``dcgan`` by
the hook module :mod:`minigan.plugins.dcgan`, which imports this only when the model is used).

Three layouts, picked by the image size; channels (grayscale or RGB) come from the data:

- **28×28**, the seed architecture (TensorFlow's DCGAN tutorial): G is Dense(z -> 7·7·256,
  no bias) -> BN -> LeakyReLU -> ConvT 128 5×5 s1 -> BN -> LeakyReLU -> ConvT 64 5×5 s2 ->
  BN -> LeakyReLU -> ConvT C 5×5 s2 -> tanh; D is Conv 64 5×5 s2 -> LeakyReLU -> Dropout 0.3
  -> Conv 128 5×5 s2 -> LeakyReLU -> Dropout 0.3 -> Flatten -> Dense 1. Adam 1e-4.
- **32×32 and 64×64**, the PyTorch-examples layout: G is a stack of 4×4 stride-2 transposed
  convolutions with BN + ReLU from a 4×4 seed (channels halving at each doubling) and tanh;
  D mirrors it with 4×4 stride-2 convolutions, BN (not on the first) and LeakyReLU 0.2, ending
  in a 4×4 convolution to one logit. Adam 2e-4, betas (0.5, 0.999).

Weights are drawn from N(0, 0.02), BatchNorm scales from N(1, 0.02) (the DCGAN paper's
initialisation). Both layouts train with the non-saturating loss (BCE from logits) by
default, one D and one G update per step, optional one-sided label smoothing, and optionally
keep an exponential moving average of G's weights for sampling. The networks' ``state_dict``
keys are those of the equivalent PyTorch modules (``main.0.weight`` ...).

**Class-conditional** (``num_classes`` > 0; by default whenever the training data has
labels, as ``shapes`` and ``mnist`` do): G's input is z followed by the one-hot class, and D
is a projection discriminator (Miyato & Koyama, 2018: the logit gains ``<embed[y], sum over
positions of h>``, ``h`` being what D's last layer receives). Sample ``s`` gets class
``s % num_classes``; ``sample(z, label=k)`` (``minigan sample --class NAME``) picks one.
A conditional D can also be taught to name the classes: ``class_loss`` adds to its loss a
cross entropy of its projection scores ``<embed[k], sum h(x)>`` (over the classes k) against
the real images' labels (:meth:`Discriminator.judge`). Options any layout takes: ``loss``
(``bce`` or ``hinge``), ``spectral_norm`` on D's convolutions (D then has no BatchNorm), a
DiffAugment policy for every image D sees (:mod:`minigan.diffaugment`) and D's own learning
rate ``lr_d``; at 32×32 the conditional recipe turns them on (:data:`CONDITIONAL_RECIPES`).

**Layered output** (``layered``; any layout): G's last layer draws one mask logit per pixel
instead of the image, a head on G's input gives a foreground and a background colour (``colours``:
one linear layer, or with the implicit mask by default a small MLP, :class:`ColourMLP`), and the
image is ``bg + (fg - bg) * sigmoid(mask)``. On by default when the training images
are flat two-colour pictures (:func:`minigan.data.two_colour`, checked by
:meth:`DCGAN.config_for_data`), as ``shapes`` are; off for anything else, which it could not
draw. The mask is then drawn by default (``mask="implicit"``) not by G's convolutions but
by an :class:`~minigan.plugins.dcgan.implicit.ImplicitMask`: a small network of the pixel
coordinates whose weights and pose an MLP makes from G's input, so that edges are straight
and corners sharp; ``mask="conv"`` keeps the convolutions. In the class-conditional 32×32
recipe the implicit mask also makes D's augmentation milder (:data:`IMPLICIT_AUGMENT`).

This module must not import the CLI, the training loop or another plugin.

>>> model = DCGAN({"g_width": 8, "d_width": 8}, image_shape=(1, 32, 32))
>>> model.sample(model.latents([0, 1])).shape
(2, 1, 32, 32)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

import minigan
from minigan import diffaugment, nn, optim
from minigan import functional as F
from minigan.data import two_colour
from minigan.gan import (
    GAN,
    copy_module,
    discriminator_loss,
    ema_update,
    frozen,
    generator_loss,
    step_metrics,
)

from .implicit import ImplicitMask

__all__ = ["DCGAN", "Generator", "Discriminator"]


RESOLUTIONS = (28, 32, 64)
#: Hidden units of the layered output's ``"mlp"`` colours head (:class:`ColourMLP`).
COLOUR_HIDDEN = 64

#: What an "auto" (``None``) option becomes, per image size. 28×28 is the seed recipe and
#: 64×64 PyTorch's DCGAN example. 32×32 is tuned for the default run (shapes, 32×32 RGB):
#: narrow networks (D narrower than G: 56 ms per batch-32 step on one core), a 5x higher
#: learning rate than PyTorch's, and an EMA generator for smoother samples.
#:
#: The default run's data (``DCGAN.train_defaults``: 8,192 images; its length is set by the
#: conditional recipe's time, below) comes from measurements with ``minigan metrics``'
#: shapes-classifier features (1,024 samples; real vs held-out real: FID 0.24, confident
#: fraction 0.83), made with the exact PyTorch
#: twin (``benchmarks/dcgan_twin.py``: same weights, batches and draws) because the machine
#: was shared: the old default (2,048 images, 1,024 steps) scores FID 21.3 and a confident
#: fraction of 0.09; 2,048 images for 4,096 steps, 12.5 at 3,072 steps and 12.8 at 4,096
#: (confident 0.12); 8,192 images, 10.0 at 2,048 steps, 10.5 at 3,072 and 8.1 at 4,096
#: (confident 0.16, every class 5-26%, precision 0.19, recall 0.62). Still short of the
#: issue's targets
#: (FID <= 2.4, confident >= 0.75): the samples are shapes with soft edges, not crisp ones.
#: A lower learning rate with a longer EMA (5e-4, 0.995) was worse at 1,024 steps (FID 31.6,
#: 86% ellipses); wider D (32) with 5e-4 and EMA 0.999 worse still (47.5).
#: Fourteen more recipes (R1, no BN in D, minibatch stddev, wider nets, batch 64, class
#: conditioning, CoordConv, full-resolution layers, EMA 0.999, learning-rate decay,
#: truncation, 8,192 steps) all plateau at FID 9-12 / confident 0.09-0.14 after 2,048 steps:
#: docs/quality/dcgan-recipes.md (``benchmarks/dcgan_recipes.py``), so these stay for data
#: without labels. Labelled data trains with :data:`CONDITIONAL_RECIPES` instead.
RECIPES: dict[int, dict[str, Any]] = {
    28: {"g_width": 64, "d_width": 64, "lr": 1e-4, "beta1": 0.9, "ema": 0.0},
    32: {"g_width": 32, "d_width": 16, "lr": 1e-3, "beta1": 0.5, "ema": 0.99},
    64: {"g_width": 64, "d_width": 64, "lr": 2e-4, "beta1": 0.5, "ema": 0.0},
}
#: What every layout uses unless a conditional recipe says otherwise.
COMMON = {
    "beta2": 0.999,
    "translation": diffaugment.TRANSLATION_RATIO,
    "loss": "bce",
    "spectral_norm": False,
    "diffaugment": "",
    "class_loss": 0.0,
}

#: The class-conditional recipe at 32×32 (labelled data, e.g. the default ``shapes`` run):
#: search S3 of docs/quality/dcgan-recipes.md plus its fifth step: one-hot class into G, a
#: projection discriminator (Miyato & Koyama 2018) with spectral normalisation and no
#: BatchNorm, the hinge loss, a class loss that trains D's projection scores to name the real
#: images' classes (without it D named only 43% of them and never a square, so G drew one blob
#: for every convex class), DiffAugment ``color,translation`` on every image D sees (cutout
#: hides the shape D must name), Adam (0, 0.99) with D's learning rate twice G's, and a slower
#: EMA. The previous default run with it (plain output, 4,096 steps, 3 min 30 s on 2 cores)
#: scored FID (shapes) 5.55 / confident 0.52 / classes 4-38% (seed 1: 6.77 / 0.51 / 3-34%),
#: and drew the class it was asked for 62-68% of the time (``minigan metrics``' class
#: fidelity), against the recipe
#: without the class loss: 5.52 / 0.21 / 9-31% (seed 1: 5.10 / 0.24 / 10-36%), 36% — the confident
#: fraction 2.1-2.5x, FID equal for seed 0 and worse for seed 1, squares mostly drawn as
#: circles or ellipses (issue 15's targets, README "Sample quality", are still not met). At
#: other sizes a conditional model keeps the size's recipe.
#:
#: On ``shapes`` (flat two-colour images) the default run also gets the layered output (the
#: ``layered`` option, docs/quality/dcgan-recipes.md "Sixth step"), and then more steps keep
#: paying (``--epochs 24 --metric-every 1024``, seeds 0 / 1): FID 4.21 / 6.64 at 4,096 steps,
#: 4.67 / 4.57 at 5,120, 2.89 / 4.45 at 6,144; confident 0.50 / 0.50, 0.56 / 0.50, 0.54 /
#: 0.52; least class 5.8 / 9.1%, 9.1 / 9.4%, 9.9 / 8.4%. A step takes about 44 ms on 2 idle
#: cores, so the default is 20 epochs (5,120 steps, about 4 minutes; 6,144 would come too
#: close to the 5-minute budget on a slower day).
#:
#: The layered output's mask is drawn by an implicit network by default (``mask``; plugins/
#: dcgan/implicit.py; docs/quality/dcgan-recipes.md "Seventh step"): at 5,120 steps, seeds
#: 0 / 1, FID 6.68 / 7.17 (the convolutional mask: 4.67 / 4.57), confident 0.64 / 0.64
#: (0.56 / 0.50), least class 12.1 / 13.0% (9.1 / 9.4%), class fidelity 86 / 87% (80 /
#: 72%); at 6,144 steps 6.51 / 4.50. The step costs the same; the default stays at 20 epochs
#: (24 took 5 min 26 s on a slow afternoon of the same VM).
#:
#: With the implicit mask the colours come from a small MLP (``colours``) and D's
#: augmentation is milder (:data:`IMPLICIT_AUGMENT`; docs/quality/dcgan-recipes.md "Eighth
#: step"): over four runs FID 5.89 on average (3.66-9.79; the ``./run.sh`` run 5.30) against
#: 6.93, confident 0.634 (0.51-0.71) against 0.640, recall 0.81-0.85 against 0.72-0.75, and
#: 1.9% of the samples of low contrast instead of 17.6%.
CONDITIONAL_RECIPES: dict[int, dict[str, Any]] = {
    32: {
        "g_width": 32,
        "d_width": 16,
        "lr": 5e-4,
        "lr_d_scale": 2.0,  # D's learning rate: twice G's (an explicit --lr-d wins)
        "beta1": 0.0,
        "beta2": 0.99,
        "ema": 0.995,
        "loss": "hinge",
        "spectral_norm": True,
        "diffaugment": "color,translation",
        "class_loss": 1.0,
    },
}


#: What the implicit mask changes in a recipe that augments with translation (the
#: class-conditional one; docs/quality/dcgan-recipes.md, "Eighth step"): D's augmentation
#: keeps a smaller translation and no color op. With the mask's explicit pose, the paper's
#: shifts of up to 1/8 of the side hid where the shapes lie from D (the samples' centres
#: spread 1.9-2.2 pixels against the data's 3.0), and its brightness,
#: saturation and contrast changes hid how far apart the two colours must be (17-20% of the
#: samples had shape and background within 0.25 in luminance, which the data never has).
IMPLICIT_AUGMENT: dict[str, Any] = {"diffaugment": "translation", "translation": 1 / 16}


def recipe(resolution: int, conditional: bool) -> dict[str, Any]:
    """The auto values of the options at ``resolution``, with or without classes."""
    plain = {**COMMON, **RECIPES[resolution], "lr_d_scale": 1.0}
    tuned = CONDITIONAL_RECIPES.get(resolution, {}) if conditional else {}
    return {**plain, **tuned}


def _auto(key: str) -> str:
    def show(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else repr(v)

    values = ", ".join(f"{show(recipe(r, False)[key])} at {r}x{r}" for r in RESOLUTIONS)
    tuned = ", ".join(
        f"{show(c[key])} at {r}x{r}" for r, c in CONDITIONAL_RECIPES.items() if key in c
    )
    return f"auto: {values}" + (f"; with classes {tuned}" if tuned else "")


@dataclass
class DCGANConfig:
    """DCGAN's options (each one is also a ``minigan train dcgan`` option)."""

    latent_dim: int = field(default=100, metadata={"help": "size of the latent vector z"})
    g_width: int | None = field(
        default=None,
        metadata={
            "help": "generator width: channels of its last hidden layer (the layers before "
            "have 2x, 4x, ... as many)",
            "default_help": _auto("g_width"),
        },
    )
    d_width: int | None = field(
        default=None,
        metadata={
            "help": "discriminator width: channels of its first layer (then 2x, 4x, ...)",
            "default_help": _auto("d_width"),
        },
    )
    lr: float | None = field(
        default=None,
        metadata={"help": "Adam learning rate of both networks", "default_help": _auto("lr")},
    )
    beta1: float | None = field(
        default=None, metadata={"help": "Adam beta1", "default_help": _auto("beta1")}
    )
    lr_d: float | None = field(
        default=None,
        metadata={
            "help": "Adam learning rate of the discriminator",
            "default_help": "auto: --lr; with classes at 32x32 twice --lr",
        },
    )
    beta2: float | None = field(
        default=None, metadata={"help": "Adam beta2", "default_help": _auto("beta2")}
    )
    loss: Literal["bce", "hinge"] | None = field(
        default=None,
        metadata={
            "help": "'bce' (the non-saturating loss) or 'hinge'",
            "default_help": _auto("loss"),
        },
    )
    spectral_norm: bool | None = field(
        default=None,
        metadata={
            "help": "spectral normalisation of D's convolutions and linear layers (D then has "
            "no BatchNorm)",
            "default_help": _auto("spectral_norm"),
        },
    )
    diffaugment: str | None = field(
        default=None,
        metadata={
            "help": "DiffAugment policy for every image D sees: comma-separated ops from "
            "color, translation, cutout ('' = none)",
            "default_help": _auto("diffaugment")
            + "; with classes at 32x32 and the implicit mask 'translation'",
        },
    )
    translation: float | None = field(
        default=None,
        metadata={
            "help": "DiffAugment translation: the largest shift, as a fraction of the image "
            "side (the paper's 1/8)",
            "default_help": "auto: 1/16 with the implicit mask and an auto --diffaugment "
            "that translates, else 1/8",
            "min": 0.0,
            "max": 1.0,
        },
    )
    class_loss: float | None = field(
        default=None,
        metadata={
            "help": "class-conditional models: weight of a cross entropy that trains D's "
            "projection scores <embed[k], sum of h(x)> to name each real image's class (0 = off)",
            "default_help": _auto("class_loss"),
            "min": 0.0,
        },
    )
    layered: bool | None = field(
        default=None,
        metadata={
            "help": "layered output: G draws a mask and two colours (from its input), and "
            "each image is the background colour with the foreground blended in by the mask",
            "default_help": "auto: on when the training images are flat two-colour pictures "
            "(minigan.data.two_colour: shapes, digits, icons), off otherwise",
        },
    )
    mask: Literal["conv", "implicit"] | None = field(
        default=None,
        metadata={
            "help": "with the layered output, how G draws the mask: 'conv' (transposed "
            "convolutions) or 'implicit' (a per-sample ReLU network of the pixel coordinates "
            "whose weights come from G's input: sharp edges and corners)",
            "default_help": "auto: 'implicit' with the layered output, else 'conv'",
        },
    )
    colours: Literal["linear", "mlp"] | None = field(
        default=None,
        metadata={
            "help": "with the layered output, how G draws the two colours from its input: "
            "'linear' (one linear layer) or 'mlp' (one hidden layer of 64, LeakyReLU)",
            "default_help": "auto: 'mlp' with the implicit mask, else 'linear'",
        },
    )
    num_classes: int | None = field(
        default=None,
        metadata={
            "help": "class-conditional on this many classes (0 = unconditional); sample "
            "seed s has class s % num_classes",
            "default_help": "auto: the training data's classes, 0 without labels",
            "min": 0,
        },
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "one-sided label smoothing: D's target for real images is 1 - this"},
    )
    ema: float | None = field(
        default=None,
        metadata={
            "help": "decay of an exponential moving average of G's weights used for sampling "
            "(0 = off)",
            "default_help": _auto("ema"),
        },
    )


# =========================================================================== networks
class Generator(nn.Module):
    """``main`` maps a latent batch to images; 4×4 layouts first reshape z to (N, z, 1, 1).

    With ``colours`` (the *layered* output) ``main`` gives one mask logit per pixel and
    ``colours`` maps z to a foreground and a background colour (tanh of its 2·C outputs):
    the image is ``bg + (fg - bg) * sigmoid(mask)`` — flat colours exactly, with the mask
    drawing the outline and its antialiasing. ``main`` is then transposed convolutions or an
    :class:`~minigan.plugins.dcgan.implicit.ImplicitMask`."""

    def __init__(
        self, main: nn.Module, spatial_input: bool, colours: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.main = main
        self.spatial_input = spatial_input
        self.colours = colours

    def forward(self, z: minigan.Tensor) -> minigan.Tensor:
        x = z.reshape(z.shape[0], z.shape[1], 1, 1) if self.spatial_input else z
        out = self.main(x)
        if self.colours is None:
            return out
        both = F.tanh(self.colours(z.reshape(z.shape[0], -1)))  # (N, 2C): fg, then bg
        c = both.shape[1] // 2
        fg = both[:, :c].reshape(-1, c, 1, 1)
        bg = both[:, c:].reshape(-1, c, 1, 1)
        return bg + (fg - bg) * F.sigmoid(out)


class Discriminator(nn.Module):
    """``main`` maps images to one logit each; returns shape (N,).

    With ``num_classes`` it is a *projection* discriminator (Miyato & Koyama, 2018): the
    logit of image ``x`` of class ``y`` gains ``<embed[y], sum over positions of h(x)>``,
    where ``h`` is what ``main``'s last layer receives."""

    def __init__(self, main: nn.Sequential, num_classes: int = 0) -> None:
        super().__init__()
        self.main = main
        self.embed: nn.Embedding | None = None
        if num_classes:
            features = _in_features(list(main)[-1])
            self.embed = nn.Embedding(num_classes, features)

    def forward(self, x: minigan.Tensor, labels: minigan.Tensor | None = None) -> minigan.Tensor:
        return self.judge(x, labels)[0]

    def judge(
        self, x: minigan.Tensor, labels: minigan.Tensor | None = None
    ) -> tuple[minigan.Tensor, minigan.Tensor | None]:
        """The logits (N,) and, for a projection discriminator, every class's projection
        score ``<embed[k], sum over positions of h(x)>`` (N, num_classes): what the logit
        gains for each class the image could be said to have (None when unconditional)."""
        if self.embed is None:
            return self.main(x).reshape(-1), None
        if labels is None:
            raise ValueError("a class-conditional discriminator needs the images' labels")
        *body, head = list(self.main)
        for layer in body:
            x = layer(x)
        logits = head(x).reshape(-1)
        pooled = x.sum((2, 3)) if x.ndim == 4 else x
        embedded = one_hot(labels, self.embed.num_embeddings) @ self.embed.weight  # = embed(y)
        scores = pooled @ self.embed.weight.T
        return logits + (embedded * pooled).sum(1), scores


def one_hot(labels: minigan.Tensor, num_classes: int) -> minigan.Tensor:
    """float32 one-hot rows of ``labels``, built on their device without reading them back
    (unlike :func:`minigan.functional.one_hot`, which checks the range: labels here come
    from data the trainer has checked, or from the model's own draws)."""
    classes = minigan.arange(num_classes, device=labels.device)
    return (labels.reshape(-1, 1) == classes).float()


def _in_features(layer: nn.Module) -> int:
    """The channels (or features) ``layer`` takes."""
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels
    raise TypeError(f"a projection head needs a Linear or Conv2d last layer, got {layer}")


def seed_generator(
    latent_dim: int,
    channels: int,
    width: int = 64,
    layered: bool = False,
    colours: str = "linear",
) -> Generator:
    """The 28×28 seed generator (``width=64`` gives 256, 128, 64 channels); ``layered``: a
    mask logit (with a bias) instead of the tanh image, and a ``colours`` head."""
    w4, w2 = 4 * width, 2 * width
    out = 1 if layered else channels
    return Generator(
        nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * w4, bias=False),
            nn.BatchNorm1d(7 * 7 * w4),
            nn.LeakyReLU(0.3),
            nn.Unflatten(1, (w4, 7, 7)),
            nn.ConvTranspose2d(w4, w2, 5, stride=1, padding=2, bias=False),
            nn.BatchNorm2d(w2),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(w2, width, 5, stride=2, padding=2, output_padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(width, out, 5, stride=2, padding=2, output_padding=1, bias=layered),
            *([] if layered else [nn.Tanh()]),
        ),
        spatial_input=False,
        colours=colour_head(latent_dim, channels, colours) if layered else None,
    )


def seed_discriminator(channels: int, width: int = 64, num_classes: int = 0) -> Discriminator:
    """The 28×28 seed discriminator (``width=64`` gives 64, 128 channels)."""
    return Discriminator(
        nn.Sequential(
            nn.Conv2d(channels, width, 5, stride=2, padding=2),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.3),
            nn.Conv2d(width, 2 * width, 5, stride=2, padding=2),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        ),
        num_classes,
    )


def conv_generator(
    latent_dim: int,
    channels: int,
    resolution: int,
    width: int,
    layered: bool = False,
    colours: str = "linear",
) -> Generator:
    """PyTorch-examples DCGAN generator for ``resolution`` = 4·2^k (32: k=3, 64: k=4);
    ``layered``: a mask logit (with a bias) instead of the tanh image, and a ``colours``
    head."""
    k = int(math.log2(resolution // 4))
    widths = [width * 2 ** (k - 1 - i) for i in range(k)]  # e.g. 256, 128, 64 for 32x32
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(latent_dim, widths[0], 4, stride=1, padding=0, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
    ]
    for w_in, w_out in zip(widths, widths[1:]):
        layers += [
            nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w_out),
            nn.ReLU(),
        ]
    out = 1 if layered else channels
    layers += [nn.ConvTranspose2d(widths[-1], out, 4, stride=2, padding=1, bias=layered)]
    layers += [] if layered else [nn.Tanh()]
    head = colour_head(latent_dim, channels, colours) if layered else None
    return Generator(nn.Sequential(*layers), spatial_input=True, colours=head)


class ColourMLP(nn.Sequential):
    """The layered output's ``"mlp"`` colours head: Linear -> LeakyReLU(0.2) -> Linear, with
    PyTorch's default initialisation (:meth:`reset_parameters`; DCGAN's N(0, 0.02) init is
    too small for it). One hidden layer lets the colour pairs fall into separate groups,
    as the data's do (a light shape on a dark ground or a dark one on a light ground), where
    one linear layer of a Gaussian z gives every contrast in between: docs/quality/
    dcgan-recipes.md, "Eighth step".

    >>> import minigan
    >>> ColourMLP(8, 6)(minigan.randn(2, 8)).shape
    (2, 6)
    """

    def __init__(self, latent_dim: int, outputs: int, hidden: int = COLOUR_HIDDEN) -> None:
        super().__init__(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, outputs)
        )

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation of both layers."""
        for layer in self:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()


def colour_head(latent_dim: int, channels: int, kind: str) -> nn.Module:
    """The layered output's colours head, latents -> 2·channels (foreground, background
    before the tanh): ``"linear"`` or ``"mlp"`` (:class:`ColourMLP`)."""
    if kind == "mlp":
        return ColourMLP(latent_dim, 2 * channels)
    return nn.Linear(latent_dim, 2 * channels)


def conv_discriminator(
    channels: int, resolution: int, width: int, num_classes: int = 0, batchnorm: bool = True
) -> Discriminator:
    """PyTorch-examples DCGAN discriminator (without the final sigmoid: it returns logits).
    Without ``batchnorm`` the hidden convolutions get biases instead (for spectral norm)."""
    k = int(math.log2(resolution // 4))
    widths = [width * 2**i for i in range(k)]  # e.g. 64, 128, 256 for 32x32
    layers: list[nn.Module] = [
        nn.Conv2d(channels, widths[0], 4, stride=2, padding=1, bias=False),
        nn.LeakyReLU(0.2),
    ]
    for w_in, w_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(w_in, w_out, 4, stride=2, padding=1, bias=not batchnorm)]
        layers += [nn.BatchNorm2d(w_out)] if batchnorm else []
        layers += [nn.LeakyReLU(0.2)]
    layers += [nn.Conv2d(widths[-1], 1, 4, stride=1, padding=0, bias=False)]
    return Discriminator(nn.Sequential(*layers), num_classes)


def dcgan_init_(module: nn.Module) -> None:
    """The DCGAN initialisation: conv, linear and embedding weights ~ N(0, 0.02), biases 0,
    BatchNorm scales ~ N(1, 0.02) and shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)


def build_networks(
    latent_dim: int,
    channels: int,
    resolution: int,
    g_width: int,
    d_width: int,
    num_classes: int = 0,
    batchnorm_d: bool = True,
    layered: bool = False,
    mask: str = "conv",
    colours: str = "linear",
) -> tuple[Generator, Discriminator]:
    """G and D for ``resolution``; with classes, G's input is z plus a one-hot class and D
    is a projection discriminator; ``layered``: G's layered output, its mask drawn by
    ``mask`` ("conv": the layout's convolutions; "implicit": an :class:`ImplicitMask`) and
    its colours by a ``colours`` head ("linear" or "mlp": :func:`colour_head`)."""
    z = latent_dim + num_classes
    if layered and mask == "implicit":
        g = Generator(ImplicitMask(z, resolution), False, colour_head(z, channels, colours))
    elif resolution == 28:
        g = seed_generator(z, channels, g_width, layered, colours)
    else:
        g = conv_generator(z, channels, resolution, g_width, layered, colours)
    if resolution == 28:
        return g, seed_discriminator(channels, d_width, num_classes)
    return g, conv_discriminator(channels, resolution, d_width, num_classes, batchnorm_d)


def resolve_config(config: DCGANConfig, resolution: int) -> DCGANConfig:
    """``config`` with every auto (``None``) option set from the recipe for ``resolution``
    (the conditional one when ``num_classes`` > 0; ``None`` classes mean 0 here: the
    trainer fills them from the data before building the model)."""
    classes = config.num_classes or 0
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
        raise ValueError(f"num_classes must be an int >= 0, got {config.num_classes!r}")
    if config.loss not in (None, "bce", "hinge"):
        raise ValueError(f"loss must be 'bce' or 'hinge', got {config.loss!r}")
    if config.mask not in (None, "conv", "implicit"):
        raise ValueError(f"mask must be 'conv' or 'implicit', got {config.mask!r}")
    if config.colours not in (None, "linear", "mlp"):
        raise ValueError(f"colours must be 'linear' or 'mlp', got {config.colours!r}")
    for name in ("spectral_norm", "layered"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    norm = config.spectral_norm  # auto (None) is set from the recipe below
    # an auto layered output left by now saw no data (the trainer fills it: config_for_data)
    layered = bool(config.layered)
    mask = config.mask or ("implicit" if layered else "conv")
    if mask == "implicit" and not layered:
        raise ValueError(
            "mask='implicit' draws the layered output's mask, and the layered output is off "
            "(auto turns it on only for flat two-colour training images; --layered forces it)"
        )
    if config.colours == "mlp" and not layered:
        raise ValueError(
            "colours='mlp' draws the layered output's colours, and the layered output is off "
            "(auto turns it on only for flat two-colour training images; --layered forces it)"
        )
    colours = config.colours or ("mlp" if mask == "implicit" else "linear")
    config = replace(config, spectral_norm=None if norm is None else bool(norm),
                     layered=layered, mask=mask, colours=colours)  # fmt: skip
    auto = recipe(resolution, classes > 0)
    # the implicit mask's augmentation where the recipe augments with translation, and only
    # for an auto policy: a policy chosen by hand keeps the paper's shift unless
    # --translation says otherwise (docs/quality/dcgan-recipes.md, "Eighth step")
    recipe_translates = "translation" in diffaugment.parse_policy(auto["diffaugment"])
    if mask == "implicit" and config.diffaugment is None and recipe_translates:
        auto.update(IMPLICIT_AUGMENT)
    scale = auto.pop("lr_d_scale")
    auto["num_classes"] = classes
    auto["lr_d"] = (auto["lr"] if config.lr is None else config.lr) * scale
    config = replace(config, **{k: v for k, v in auto.items() if getattr(config, k) is None})
    diffaugment.parse_policy(config.diffaugment or "")  # an unknown op is an error now
    shift: Any = config.translation
    number = isinstance(shift, numbers.Real) and not isinstance(shift, bool)
    if not (number and 0 <= float(shift) <= 1):
        raise ValueError(f"translation must be a number in [0, 1], got {shift!r}")
    config = replace(config, translation=float(shift))
    weight: Any = config.class_loss  # set by now (the recipe has it); checked for users' values
    number = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
    if not (number and 0 <= float(weight) < math.inf):
        raise ValueError(f"class_loss must be a number >= 0, got {weight!r}")
    config = replace(config, class_loss=float(weight))
    if config.class_loss and not config.num_classes:
        raise ValueError(
            "class_loss trains D's class projection: it needs a class-conditional model "
            "(num_classes > 0, or labelled data)"
        )
    if config.label_smoothing and config.loss != "bce":
        raise ValueError(f"label_smoothing applies to the bce loss, not to {config.loss!r}")
    return config


# =========================================================================== the model
class DCGAN(GAN):
    """DCGAN: the 28×28 seed architecture or the PyTorch DCGAN layout (32×32, 64×64)."""

    Config = DCGANConfig
    # 5,120 steps on 8,192 shapes: measured in the comments above RECIPES and
    # CONDITIONAL_RECIPES
    train_defaults = {"epochs": 20, "batch_size": 32, "limit": 8192}
    # runs saved before these options existed trained without them
    added_config_fields = {
        "class_loss": 0.0,
        "layered": False,
        "mask": "conv",
        "colours": "linear",
        "translation": diffaugment.TRANSLATION_RATIO,
    }

    def __init__(
        self, config: Any = None, image_shape: tuple[int, int, int] = (3, 32, 32), device="cpu"
    ) -> None:
        super().__init__(config, image_shape, device)
        channels, height, width = self.image_shape
        if height != width or height not in RESOLUTIONS:
            raise ValueError(
                f"DCGAN makes 28x28, 32x32 or 64x64 images; the data is {height}x{width} "
                f"(pass --resolution 28, 32 or 64)"
            )
        cfg: Any = resolve_config(self.config, height)  # every auto (None) option is set
        self.config = cfg
        classes, layout = cfg.num_classes, (channels, height, cfg.g_width, cfg.d_width)
        self.generator, self.discriminator = build_networks(
            cfg.latent_dim, *layout, classes, not cfg.spectral_norm, cfg.layered, cfg.mask,
            cfg.colours,
        )  # fmt: skip
        for net in (self.generator, self.discriminator):
            dcgan_init_(net)
            # dcgan_init_ drew N(0, 0.02) for every Linear: the implicit mask and the MLP
            # colours head take back their own initialisation (docs/quality/dcgan-recipes.md,
            # "Seventh step" and "Eighth step")
            for m in net.modules():
                if isinstance(m, (ImplicitMask, ColourMLP)):
                    m.reset_parameters()
            net.to(device)
        if cfg.spectral_norm:
            for m in self.discriminator.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.utils.spectral_norm(m)
        self.policy = diffaugment.parse_policy(cfg.diffaugment)
        self.opt_g = optim.Adam(
            self.generator.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        self.opt_d = optim.Adam(
            self.discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2)
        )
        self.generator_ema = copy_module(self.generator) if cfg.ema > 0 else None

    @classmethod
    def config_for_data(cls, config: Any, dataset: Any) -> Any:
        """An auto ``layered`` becomes True for flat two-colour training images."""
        if config.layered is None:
            config = replace(config, layered=two_colour(dataset.data))
        return config

    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.generator_ema is not None:
            nets["generator_ema"] = self.generator_ema
        return nets

    def optimizers(self) -> dict[str, optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    # ----- sampling: a conditional model's latent ends with its class, one-hot
    def latents(self, seeds: Iterable[int]) -> minigan.Tensor:
        """z for each seed, followed (for a conditional model) by the one-hot class
        ``seed % num_classes``."""
        seeds = [int(s) for s in seeds]
        z = super().latents(seeds)
        if not self.num_classes:
            return z
        labels = minigan.tensor(np.array(seeds, np.int64) % self.num_classes, device=self.device)
        return F.cat([z, one_hot(labels, self.num_classes)], dim=1)

    def sample(self, z: minigan.Tensor, label: int | None = None) -> minigan.Tensor:
        """Images for latents ``z`` (see :meth:`GAN.sample`); ``label`` gives every image
        that class instead of the one in its latent (conditional models only)."""
        if label is not None:
            if not self.num_classes:
                raise ValueError("this DCGAN is not class-conditional (num_classes is 0)")
            if not 0 <= label < self.num_classes:
                raise ValueError(
                    f"class {label} is not one of this model's 0-{self.num_classes - 1}"
                )
            labels = minigan.tensor(np.full(z.shape[0], label, np.int64), device=self.device)
            z = F.cat([z[:, : self.config.latent_dim], one_hot(labels, self.num_classes)], dim=1)
        return super().sample(z)

    # ----- training
    def train_step(
        self, real: minigan.Tensor, labels: minigan.Tensor | None = None
    ) -> dict[str, minigan.Tensor]:
        G, D = self.generator, self.discriminator
        n = real.shape[0]
        z = minigan.randn(n, *self.latent_shape, device=self.device)
        fake_labels = None
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional DCGAN trains on labelled images")
            # one uniform draw per image, as an (n, 1) column: each data-parallel process
            # draws its own slice of the global batch's, even with one image per process
            u = minigan.random.generator().random((n, 1)).ravel()
            fake_labels = minigan.tensor(
                np.minimum((u * self.num_classes).astype(np.int64), self.num_classes - 1),
                device=self.device,
            )
            z = F.cat([z, one_hot(fake_labels, self.num_classes)], dim=1)
        fake = G(z)

        # D: push D(x) up and D(G(z)) down (and, with class_loss, name the real classes)
        real_logits, real_scores = self._critic(real, labels)
        fake_logits, _ = self._critic(fake.detach(), fake_labels)
        loss_d = self._d_loss(real_logits, fake_logits)
        if self.config.class_loss and real_scores is not None and labels is not None:
            loss_d = loss_d + self.config.class_loss * self._class_loss(real_scores, labels)
        self.update(self.opt_d, loss_d)

        # G: make the (updated) D call its images real; D's weights need no gradients here
        with frozen(D):
            loss_g = self._g_loss(self._critic(fake, fake_labels)[0])
            self.update(self.opt_g, loss_g)

        if self.generator_ema is not None:
            ema_update(self.generator_ema, G, self.config.ema)
        return step_metrics(loss_d, loss_g, real_logits, fake_logits)

    def _critic(
        self, images: minigan.Tensor, labels: minigan.Tensor | None
    ) -> tuple[minigan.Tensor, minigan.Tensor | None]:
        """D's logits and class scores (:meth:`Discriminator.judge`) for ``images``
        (DiffAugmented, when the config says so)."""
        if self.policy:
            images = diffaugment.diff_augment(
                images, self.policy, minigan.random.generator(), self.config.translation
            )
        return self.discriminator.judge(images, labels)

    def _class_loss(self, scores: minigan.Tensor, labels: minigan.Tensor) -> minigan.Tensor:
        """Cross entropy of D's class scores (N, K) against the real images' classes, as
        ``torch.nn.functional.cross_entropy`` (mean over the batch). The classes go in as
        one-hot probabilities, built on the labels' device: class indices would be
        range-checked by a read of the device (the trainer has checked the data's labels)."""
        return F.cross_entropy(scores, one_hot(labels, scores.shape[1]))

    def _d_loss(self, real_logits: minigan.Tensor, fake_logits: minigan.Tensor) -> minigan.Tensor:
        if self.config.loss == "hinge":  # relu(1 - D(x)) + relu(1 + D(G(z)))
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        return discriminator_loss(real_logits, fake_logits, self.config.label_smoothing)

    def _g_loss(self, fake_logits: minigan.Tensor) -> minigan.Tensor:
        if self.config.loss == "hinge":
            return -fake_logits.mean()
        return generator_loss(fake_logits)
