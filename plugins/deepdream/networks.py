"""The networks DeepDream climbs: VGG16, GoogLeNet (Inception v1) and the small ``shapes``
classifier, with friendly layer names and a feature extractor.

VGG16 and GoogLeNet are written with torchvision's layer layout, so the ``state_dict`` keys of
torchvision's ImageNet weights (``features.0.weight``, ``inception4c.branch2.1.bn.running_var``
…) are exactly this module's keys. Only the convolutional trunk is built: the classifier heads
(``classifier.*``, ``fc.*``, ``aux1.*``, ``aux2.*``), which dreaming never reaches, are skipped
when weights are loaded (VGG16's classifier alone is 120 M parameters).

Each network is described by a :class:`NetworkSpec`: how to build it, its input preprocessing
(torchvision's ImageNet mean/std), its default dream layers, and its *stages*, the modules run
one after the other. A friendly layer name (``conv4_3``, ``relu4_3``, ``inception4c``) names the
output of one stage; :class:`FeatureExtractor` runs the stages only up to the deepest layer it
needs.

>>> spec = get_spec("vgg16")
>>> spec.layers()["relu4_3"]
'features.22'
>>> import minigan, numpy as np
>>> extractor = FeatureExtractor(build("shapes"), spec=get_spec("shapes"), layers=["relu2"])
>>> acts = extractor(minigan.tensor(np.zeros((1, 3, 32, 32), np.float32)))
>>> acts["relu2"].shape
(1, 32, 16, 16)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import minigan
import minigan.functional as F
from minigan import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG16",
    "GoogLeNet",
    "BasicConv2d",
    "Inception",
    "CeilMaxPool2d",
    "NetworkSpec",
    "FeatureExtractor",
    "LayerError",
    "SPECS",
    "get_spec",
    "build",
    "load_weights",
    "describe_layers",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LayerError(KeyError):
    """An unknown layer name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# --------------------------------------------------------------------------- layers
class CeilMaxPool2d(nn.Module):
    """``torch.nn.MaxPool2d(kernel_size, stride, padding, ceil_mode=True)``.

    With ``ceil_mode`` the last window may run past the input; it is padded with ``-inf``
    on the bottom/right (torchvision's GoogLeNet pools this way).

    >>> x = minigan.tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    >>> CeilMaxPool2d(2, 2)(x).numpy()[0, 0].tolist()
    [[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]
    """

    def __init__(self, kernel_size: int, stride: int, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def _out(self, size: int) -> int:
        k, s, p = self.kernel_size, self.stride, self.padding
        out = math.ceil((size + 2 * p - k) / s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input
            out -= 1
        return out

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        k, s, p = self.kernel_size, self.stride, self.padding
        h, w = x.shape[2:]
        extra_h = max(0, (self._out(h) - 1) * s + k - (h + 2 * p))
        extra_w = max(0, (self._out(w) - 1) * s + k - (w + 2 * p))
        if p or extra_h or extra_w:
            x = F.pad(x, (p, p + extra_w, p, p + extra_h), value=-np.inf)
        return F.max_pool2d(x, k, s)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            "ceil_mode=True"
        )


# --------------------------------------------------------------------------- VGG16
#: torchvision's configuration "D": channels per conv, "M" for a 2×2 max pool.
VGG16_CFG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip


class VGG16(nn.Module):
    """VGG16's convolutional trunk, ``features`` numbered exactly as torchvision's
    ``vgg16().features`` (conv, ReLU, …, max pool). The classifier is not built.

    ``cfg`` (channels per conv, ``"M"`` for a pool) builds other VGG-shaped trunks, e.g.
    smaller ones for tests.
    """

    def __init__(self, cfg: Sequence[int | str] = tuple(VGG16_CFG)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU()]
                channels = int(v)
        self.features = nn.Sequential(*layers)

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(f"features.{i}", m) for i, m in enumerate(self.features)]

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        return self.features(x)


def _vgg16_layers() -> dict[str, str]:
    names: dict[str, str] = {}
    block, conv, index = 1, 1, 0
    for v in VGG16_CFG:
        if v == "M":
            names[f"pool{block}"] = f"features.{index}"
            block, conv, index = block + 1, 1, index + 1
        else:
            names[f"conv{block}_{conv}"] = f"features.{index}"
            names[f"relu{block}_{conv}"] = f"features.{index + 1}"
            conv, index = conv + 1, index + 2
    return names


# --------------------------------------------------------------------------- GoogLeNet
class BasicConv2d(nn.Module):
    """torchvision's GoogLeNet unit: conv without bias, BatchNorm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """torchvision's Inception block: four branches concatenated along channels.

    As in torchvision (and its ImageNet weights), the "5×5" branch uses a 3×3 convolution.
    """

    def __init__(
        self,
        in_ch: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool: int,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_ch, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            CeilMaxPool2d(3, 1, 1), BasicConv2d(in_ch, pool, kernel_size=1)
        )

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        branches = [self.branch1, self.branch2, self.branch3, self.branch4]
        return F.cat([b(x) for b in branches], dim=1)


class TransformInput(nn.Module):
    """GoogLeNet's ``transform_input``: its ImageNet weights expect ``(x - 0.5) / 0.5``, so an
    input normalised with ImageNet mean/std is mapped back to that, per channel."""

    def __init__(self) -> None:
        super().__init__()
        std, mean = np.array(IMAGENET_STD), np.array(IMAGENET_MEAN)
        self.scale = (std / 0.5).astype(np.float32).reshape(1, 3, 1, 1)
        self.shift = ((mean - 0.5) / 0.5).astype(np.float32).reshape(1, 3, 1, 1)

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        return x * minigan.tensor(self.scale, device=x.device) + minigan.tensor(
            self.shift, device=x.device
        )


GOOGLENET_STAGES = [
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
    "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
    "maxpool4", "inception5a", "inception5b",
]  # fmt: skip


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1) as ``torchvision.models.googlenet``, without the aux and fc
    heads. ``transform_input=True`` is how torchvision's ImageNet weights are used."""

    def __init__(self, transform_input: bool = True) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = CeilMaxPool2d(3, 2)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = CeilMaxPool2d(3, 2)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = CeilMaxPool2d(3, 2)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = CeilMaxPool2d(2, 2)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

    def stages(self) -> list[tuple[str, nn.Module]]:
        first = [("transform_input", TransformInput())] if self.transform_input else []
        return first + [(name, getattr(self, name)) for name in GOOGLENET_STAGES]

    def forward(self, x: minigan.Tensor) -> minigan.Tensor:
        for _, stage in self.stages():
            x = stage(x)
        return x


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class NetworkSpec:
    """Everything DeepDream needs to know about one network.

    Attributes:
        name: the ``--model`` name.
        build: makes the (randomly initialised) network.
        default_layers: ``{layer: weight}`` used when no layers are given.
        mean, std: input normalisation of an RGB image in [0, 1].
        named_layers: friendly layer name -> stage path, in network order.
        weights_file: torchvision's file name in the torch hub cache (``None``: shipped).
        skip_prefixes: ``state_dict`` keys of parts not built (classifier heads).
        description: one line for listings.
    """

    name: str
    build: Callable[[], nn.Module]
    default_layers: Mapping[str, float]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    named_layers: Callable[[], dict[str, str]]
    weights_file: str | None = None
    skip_prefixes: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    def layers(self) -> dict[str, str]:
        """Friendly name -> stage path."""
        return self.named_layers()


def _shapes_spec() -> NetworkSpec:
    from minigan.plugins.deepdream import shapes_classifier as sc

    return NetworkSpec(
        name="shapes",
        build=sc.ShapesClassifier,
        default_layers={"relu3": 1.0, "relu4": 0.5},
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        named_layers=sc.layer_names,
        description="small classifier trained by minigan on the shapes dataset (shipped)",
    )


SPECS: dict[str, Callable[[], NetworkSpec]] = {
    "vgg16": lambda: NetworkSpec(
        name="vgg16",
        build=VGG16,
        default_layers={"relu4_3": 1.0},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        named_layers=_vgg16_layers,
        weights_file="vgg16-397923af.pth",
        skip_prefixes=("classifier.",),
        description="VGG16, torchvision layout and ImageNet weights",
    ),
    "googlenet": lambda: NetworkSpec(
        name="googlenet",
        build=GoogLeNet,
        default_layers={"inception4c": 1.0},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        named_layers=lambda: {name: name for name in GOOGLENET_STAGES},
        weights_file="googlenet-1378be20.pth",
        skip_prefixes=("fc.", "aux1.", "aux2."),
        description="GoogLeNet / Inception v1, torchvision layout and ImageNet weights",
    ),
    "shapes": _shapes_spec,
}


def get_spec(name: str) -> NetworkSpec:
    """The :class:`NetworkSpec` of ``name`` (``vgg16``, ``googlenet``, ``shapes``)."""
    try:
        return SPECS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(SPECS)}") from None


def build(name: str) -> nn.Module:
    """A randomly initialised network of kind ``name``."""
    return get_spec(name).build()


def load_weights(model: nn.Module, state: Mapping[str, np.ndarray], spec: NetworkSpec) -> None:
    """Load a (torchvision-style) state dict into ``model``.

    Keys of the parts that are not built (``spec.skip_prefixes``) are ignored, and so are
    missing ``num_batches_tracked`` counters (old checkpoints lack them; eval mode never
    reads them). Anything else missing or unexpected is an error naming the keys.
    """
    kept = {k: v for k, v in state.items() if not k.startswith(spec.skip_prefixes)}
    own = model.state_dict()
    missing = [k for k in own if k not in kept and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in kept if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if unexpected:
            shown = ", ".join(unexpected[:8]) + (" …" if len(unexpected) > 8 else "")
            parts.append(f"unexpected: {shown}")
        raise ValueError(f"these weights do not fit the {spec.name} network ({'; '.join(parts)})")
    model.load_state_dict(kept, strict=False)


# --------------------------------------------------------------------------- extraction
def parse_layers(text: str | Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    """``"conv4_3:1.0,conv5_1:0.5"`` (or a mapping, or a list of names) -> ``{name: weight}``.

    >>> parse_layers("conv4_3:1.0, conv5_1:0.5")
    {'conv4_3': 1.0, 'conv5_1': 0.5}
    >>> parse_layers(["relu3"])
    {'relu3': 1.0}
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return {str(k): float(v) for k, v in text.items()}
    items = text.split(",") if isinstance(text, str) else list(text)
    layers: dict[str, float] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(
                f"bad layer weight in {item!r}: expected NAME or NAME:WEIGHT"
            ) from None
    return layers


class FeatureExtractor:
    """Runs a network's stages up to the deepest requested layer and returns the activations.

    Input: an NCHW RGB tensor in [0, 1]; the network's preprocessing (mean/std) is applied
    inside, so gradients are with respect to the [0, 1] image. ``layers`` are friendly names
    or stage paths (``features.22``); an unknown one raises :class:`LayerError` listing the
    valid names.
    """

    def __init__(self, model: nn.Module, spec: NetworkSpec, layers: Sequence[str]) -> None:
        self.model, self.spec = model, spec
        named = spec.layers()
        stages = model.stages()
        paths = [path for path, _ in stages]
        self.targets: dict[str, int] = {}  # layer name -> index of the stage that outputs it
        for layer in layers:
            path = named.get(layer, layer)
            if path not in paths:
                raise LayerError(
                    f"unknown layer {layer!r} for model {spec.name!r}; valid layers: "
                    f"{', '.join(named)}"
                )
            self.targets[layer] = paths.index(path)
        if not self.targets:
            raise LayerError(f"no layers given; valid layers for {spec.name!r}: {', '.join(named)}")
        self.stages = stages[: max(self.targets.values()) + 1]
        self.mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        self.invstd = (1 / np.asarray(spec.std, np.float32)).reshape(1, 3, 1, 1)
        self._normalisation: dict[str, tuple[minigan.Tensor, minigan.Tensor]] = {}

    def __call__(self, x: minigan.Tensor) -> dict[str, minigan.Tensor]:
        if x.device not in self._normalisation:  # copied to each device once
            self._normalisation[x.device] = (
                minigan.tensor(self.mean, device=x.device),
                minigan.tensor(self.invstd, device=x.device),
            )
        mean, invstd = self._normalisation[x.device]
        x = (x - mean) * invstd
        by_stage: dict[int, list[str]] = {}
        for layer, index in self.targets.items():
            by_stage.setdefault(index, []).append(layer)
        out: dict[str, minigan.Tensor] = {}
        for index, (_, stage) in enumerate(self.stages):
            x = stage(x)
            for layer in by_stage.get(index, ()):
                out[layer] = x
        return out


def iter_layers(name: str) -> Iterator[tuple[str, str, int]]:
    """``(friendly name, stage path, channels)`` of every named layer of model ``name``."""
    spec = get_spec(name)
    model = spec.build().eval()
    named = spec.layers()
    extractor = FeatureExtractor(model, spec, list(named))
    with minigan.no_grad():
        acts = extractor(minigan.tensor(np.zeros((1, 3, 64, 64), np.float32)))
    for layer, path in named.items():
        yield layer, path, acts[layer].shape[1]


def describe_layers(name: str) -> str:
    """A table of the layers of model ``name`` (what ``minigan dream --list-layers`` prints).

    >>> print(describe_layers("shapes").splitlines()[1])
    conv1  features.0     16 channels
    """
    spec = get_spec(name)
    rows = list(iter_layers(name))
    width = max(len(r[0]) for r in rows) + 2
    pwidth = max(len(r[1]) for r in rows) + 2
    defaults = ", ".join(f"{k}:{v:g}" for k, v in spec.default_layers.items())
    lines = [f"{spec.name}: {spec.description} (default layers {defaults})"]
    lines += [f"{n:<{width}}{p:<{pwidth}}{c:>4} channels" for n, p, c in rows]
    return "\n".join(lines)
