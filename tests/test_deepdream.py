"""DeepDream: the algorithm, the networks, weights without PyTorch, and the commands."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

import minigan
from minigan.images import as_rgb_float
from minigan.plugins import deepdream
from minigan.plugins.deepdream import networks
from minigan.plugins.deepdream import weights as W
from minigan.plugins.deepdream.dream import DeepDream, DreamConfig, dream

torch = pytest.importorskip("torch")

SMALL_CFG = [8, "M", 16, 16, "M", 32]  # a VGG-shaped trunk small enough for quick tests


def photo(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image in [0, 1] (H, W, 3)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, h // 8 + 1, w // 8 + 1)).astype(np.float32)
    img = np.kron(coarse, np.ones((8, 8), np.float32))[:, :h, :w]
    return np.ascontiguousarray(img.transpose(1, 2, 0))


def quiet(**options) -> DreamConfig:
    return DreamConfig(progress=False, **options)


# --------------------------------------------------------------------------- algorithm
def test_objective_rises_in_every_octave_and_output_keeps_size_and_range():
    image = photo(72, 96)
    processor = DeepDream(quiet(octaves=3, steps=6, jitter=0, lr=0.02))
    out = processor.process(image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert np.abs(out - image).mean() > 1e-3
    assert len(processor.history) == 3
    for values in processor.history:
        assert len(values) == 6
        assert values[-1] > values[0] * 1.05, values
        # an ascent: most steps increase the objective
        assert sum(b > a for a, b in zip(values, values[1:])) >= 4, values


def test_objective_rises_with_jitter_laplacian_channels_and_two_layers():
    processor = DeepDream(
        quiet(octaves=2, steps=5, laplacian=3, layers="relu3:1,relu2:0.5", channels="relu3=1,5")
    )
    out = processor.process(photo())
    for values in processor.history:
        assert values[-1] > values[0], values
    assert out.shape == (64, 80, 3)


def test_gradient_matches_finite_differences():
    processor = DeepDream(quiet(layers="relu2"))
    rng = np.random.default_rng(1)
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    grad, value = processor.gradient(x)
    for _ in range(3):
        i = tuple(int(rng.integers(n)) for n in x.shape)
        eps = 1e-2
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (processor.gradient(up)[1] - processor.gradient(down)[1]) / (2 * eps)
        assert numeric == pytest.approx(grad[i], rel=0.05, abs=1e-3 * float(np.abs(grad).max()))


def test_same_seed_same_dream_and_grayscale_uint8_input():
    gray = (photo()[:, :, 0] * 255).astype(np.uint8)
    a = dream(gray, octaves=2, steps=2, progress=False)
    b = dream(gray, octaves=2, steps=2, progress=False)
    c = dream(gray, octaves=2, steps=2, progress=False, seed=1)
    assert a.shape == (64, 80, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_tiled_equals_untiled_when_one_tile_covers_the_image():
    image = photo(90, 110)
    untiled = DeepDream(quiet(octaves=2, steps=3, tile=0)).process(image)
    tiled = DeepDream(quiet(octaves=2, steps=3, tile=128)).process(image)
    np.testing.assert_allclose(tiled, untiled, atol=1e-6)


def test_several_tiles_cover_the_image_and_sum_the_objective():
    processor = DeepDream(quiet(tile=100))
    x = np.ascontiguousarray(photo(200, 200).transpose(2, 0, 1)[None])
    grad, value = processor.gradient(x)
    whole, whole_value = DeepDream(quiet(tile=0)).gradient(x)
    assert np.count_nonzero(grad) > 0.9 * grad.size  # every tile got its gradient
    assert value == pytest.approx(whole_value, rel=0.2)  # tiles only differ at their borders


def test_large_image_runs_in_memory_bounded_by_the_tile():
    side, tile = 2048, 256
    image = np.full((side, side, 3), 0.5, np.float32)
    processor = DeepDream(quiet(octaves=1, steps=1, tile=tile, jitter=0, layers="relu2"))
    image_bytes = image.nbytes  # 48 MiB
    tracemalloc.start()
    try:
        out = processor.process(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == image.shape
    # What one untiled pass up to relu2 would hold at the least: conv1, bn1 and relu1 outputs
    # (16 channels each, kept for the backward pass) and conv1's packed im2row buffer (27
    # values per pixel), all at full size, 4 bytes a value.
    untiled_floor = (3 * 16 + 27) * side * side * 4  # 1200 MiB
    # tiled: a handful of image-sized arrays (input, current image, gradient) and one tile
    assert peak < untiled_floor / 3, f"peak {peak / 2**20:.0f} MiB"
    assert peak < 8 * image_bytes, f"peak {peak / 2**20:.0f} MiB"


def test_guide_image(tmp_path):
    from minigan.images import save_image

    guide = tmp_path / "guide.png"
    save_image(guide, (photo(48, 48, seed=7) * 255).astype(np.uint8))
    processor = DeepDream(quiet(octaves=2, steps=4, guide=str(guide), jitter=0))
    out = processor.process(photo(64, 64, seed=3))
    for values in processor.history:
        assert values[-1] > values[0], values
    plain = DeepDream(quiet(octaves=2, steps=4, jitter=0)).process(photo(64, 64, seed=3))
    assert np.abs(out - plain).max() > 1e-3


def test_zoom_loop_gives_frames():
    frames = DeepDream(quiet(octaves=1, steps=1)).zoom(photo(), 3, 1.1)
    assert len(frames) == 3 and all(f.shape == (64, 80, 3) for f in frames)
    assert np.abs(frames[0] - frames[2]).max() > 0


def test_processor_contract():
    registered = {}
    deepdream.register_processors(lambda name, target: registered.update({name: target}))
    module, _, attr = registered["deepdream"].partition(":")
    cls = getattr(__import__(module, fromlist=[attr]), attr)
    assert cls is DeepDream
    import dataclasses

    for f in dataclasses.fields(cls.Config):
        assert f.metadata.get("help"), f.name
    processor = cls(None)
    out = processor.process(np.zeros((33, 40, 1), np.float32) + 0.3)
    assert out.shape == (33, 40, 3) and out.dtype == np.float32
    meta = processor.metadata()
    assert meta["model"] == "shapes" and meta["layers"] == "relu3:1,relu4:0.5"
    assert meta["weights"] == "shapes_classifier.safetensors"


def test_as_rgb_float_drops_alpha():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    assert as_rgb_float(rgba).shape == (2, 2, 3) and as_rgb_float(rgba).max() == 0


# --------------------------------------------------------------------------- layers
def test_layer_listing():
    text = networks.describe_layers("vgg16")
    for name in ("conv1_1", "relu4_3", "pool5", "conv5_1"):
        assert name in text
    assert networks.get_spec("vgg16").layers()["conv5_1"] == "features.24"
    names = networks.get_spec("googlenet").layers()
    assert "inception4c" in names and "maxpool4" in names


def test_bad_layer_name_lists_valid_names():
    with pytest.raises(networks.LayerError) as info:
        DeepDream(quiet(layers="relu9"))
    message = str(info.value)
    assert "relu9" in message and "relu3" in message and "conv1" in message


def test_bad_channel_is_refused():
    with pytest.raises(ValueError, match="out of range"):
        DeepDream(quiet(layers="relu2", channels="999"))


def test_feature_extractor_stops_at_the_deepest_layer():
    spec = networks.get_spec("vgg16")
    extractor = networks.FeatureExtractor(networks.VGG16(), spec, ["relu2_2"])
    assert len(extractor.stages) == 9  # features.0 … features.8


# --------------------------------------------------------------------------- weights
class TorchVGG(torch.nn.Module):
    """A torchvision-style VGG (features + classifier) in PyTorch."""

    def __init__(self, cfg) -> None:
        super().__init__()
        layers, channels = [], 3
        for v in cfg:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(channels, v, 3, padding=1), torch.nn.ReLU()]
                channels = v
        self.features = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Linear(channels, 10)


def _run_without_torch(code: str) -> None:
    """Run ``code`` in a fresh interpreter where ``import torch`` fails."""
    prelude = "import sys\nsys.modules['torch'] = None  # any import of torch now fails\n"
    subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], check=True, timeout=120)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pth_loads_without_pytorch_and_matches_pytorch_activations(tmp_path, zip_format):
    torch.manual_seed(0)
    reference = TorchVGG(SMALL_CFG).eval()
    path = tmp_path / "small_vgg.pth"
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=zip_format)

    out = tmp_path / "arrays.npz"
    _run_without_torch(
        f"""
        import numpy as np
        from minigan.plugins.deepdream.weights import read_pth
        state = read_pth({str(path)!r})
        assert 'torch' not in sys.modules or sys.modules['torch'] is None
        np.savez({str(out)!r}, **state)
        """
    )
    state = dict(np.load(out))
    assert set(state) == set(reference.state_dict())

    model = networks.VGG16(SMALL_CFG)
    networks.load_weights(model, W.read_weights(path), networks.get_spec("vgg16"))
    model.eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 20, 24)).astype(np.float32)
    with torch.no_grad():
        expected = reference.features(torch.from_numpy(x)).numpy()
    with minigan.no_grad():
        got = model(minigan.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_pth_parameters_half_bfloat16_and_strided_views(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    saved = {
        "param": torch.nn.Parameter(torch.ones(3)),
        "half": torch.linspace(0, 1, 5).half(),
        "bf16": torch.tensor([1.5, -2.0]).bfloat16(),
        "view": base[1:, ::2],
        "transposed": base.t(),
        "long": torch.arange(3),
    }
    path = tmp_path / "mixed.pth"
    torch.save(saved, path)
    state = W.read_pth(path)
    for key, value in saved.items():
        expected = value.detach().float().numpy() if key == "bf16" else value.detach().numpy()
        np.testing.assert_array_equal(state[key], expected)


def test_safetensors_and_npz_weights_give_the_same_dream(tmp_path):
    from minigan.plugins.deepdream.shapes_classifier import WEIGHTS_PATH

    state = W.read_weights(WEIGHTS_PATH)
    npz = tmp_path / "w.npz"
    np.savez(npz, **state)
    image = photo(40, 40)
    a = DeepDream(quiet(octaves=1, steps=2)).process(image)
    b = DeepDream(quiet(octaves=1, steps=2, weights=str(npz))).process(image)
    np.testing.assert_array_equal(a, b)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_pth_is_refused_and_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"features.0.weight": _Payload(marker)}, protocol=2)
    pickle.loads(payload)  # the payload works when unpickled naively…
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pth"
    if zip_format:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("evil/data.pkl", payload)
            z.writestr("evil/version", "3\n")
    else:
        with open(path, "wb") as f:
            for header in (W.LEGACY_MAGIC, 1001, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(payload)
    with pytest.raises(W.UnsafePickleError, match="posix.system|os.system|nt.system"):
        W.read_weights(path)
    with pytest.raises(W.UnsafePickleError):
        DeepDream(quiet(weights=str(path)))
    assert not marker.exists()


def test_non_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(pickle.UnpicklingError, match="neither a zip nor a legacy"):
        W.read_pth(path)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(W.WeightsNotFoundError) as info:
        DeepDream(quiet(model="vgg16"))
    message = str(info.value)
    assert "minigan weights download vgg16" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message


def test_hub_cache_is_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert W.find_weights("googlenet") is None
    target = tmp_path / "hub" / "checkpoints" / "googlenet-1378be20.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert W.find_weights("googlenet") == target


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.mark.parametrize("corrupt", [False, True])
def test_download_checks_the_hash_and_writes_atomically(tmp_path, monkeypatch, corrupt):
    data = b"pretend weights" * 1000
    prefix = hashlib.sha256(data).hexdigest()[:8]
    info = W.WeightsFile(f"vgg16-{prefix}.pth", "https://example.invalid/vgg16.pth")
    monkeypatch.setitem(W.WEIGHTS, "vgg16", info)
    served = data + (b"!" if corrupt else b"")
    opened = []

    def opener(url):
        opened.append(url)
        return _FakeResponse(served)

    if corrupt:
        with pytest.raises(ValueError, match="corrupt"):
            W.download("vgg16", tmp_path, progress=False, opener=opener)
        assert list(tmp_path.iterdir()) == []
    else:
        path = W.download("vgg16", tmp_path, progress=False, opener=opener)
        assert path == tmp_path / info.filename and path.read_bytes() == data
        assert [p.name for p in tmp_path.iterdir()] == [info.filename]
    assert opened == [info.url]


# --------------------------------------------------------------------------- networks
def test_googlenet_has_torchvision_keys_and_runs():
    model = networks.GoogLeNet().eval()
    keys = model.state_dict()
    for key in (
        "conv1.conv.weight",
        "conv1.bn.running_var",
        "inception3a.branch2.1.conv.weight",
        "inception4c.branch4.1.bn.bias",
        "inception5b.branch3.1.conv.weight",
    ):
        assert key in keys
    assert keys["inception5b.branch3.1.conv.weight"].shape == (128, 48, 3, 3)
    assert model.conv1.bn.eps == 0.001 and model.conv1.conv.bias is None
    spec = networks.get_spec("googlenet")
    extractor = networks.FeatureExtractor(model, spec, ["inception4c"])
    with minigan.no_grad():
        act = extractor(minigan.tensor(np.zeros((1, 3, 64, 64), np.float32)))["inception4c"]
    assert act.shape == (1, 512, 4, 4)


def test_ceil_mode_pool_matches_pytorch():
    x = np.random.default_rng(0).normal(size=(1, 2, 11, 14)).astype(np.float32)
    for k, s, p in [(3, 2, 0), (3, 1, 1), (2, 2, 0)]:
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=True)
        got = networks.CeilMaxPool2d(k, s, p)(minigan.tensor(x)).numpy()
        np.testing.assert_array_equal(got, expected.numpy())


def test_frozen_conv_gradient_matches_pytorch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 9, 10)).astype(np.float32)
    conv = minigan.nn.Conv2d(4, 6, 3, padding=1).requires_grad_(False)
    t_conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    t_conv.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in conv.state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_()
    (t_conv(tx) ** 2).sum().backward()
    mx = minigan.tensor(x, requires_grad=True)
    (g,) = minigan.grad((conv(mx) ** 2).sum(), mx)
    np.testing.assert_allclose(g.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- commands
@pytest.fixture
def cli() -> click.Group:
    group = click.Group("minigan")
    deepdream.register_commands(group)
    return group


def test_dream_command_writes_png_with_parameters(tmp_path, cli):
    from minigan.images import read_metadata, save_image

    source = tmp_path / "in.png"
    save_image(source, (photo() * 255).astype(np.uint8))
    out = tmp_path / "out.png"
    args = [str(source), "-o", str(out), "--octaves", "2", "--steps", "2", "--no-progress"]
    result = CliRunner().invoke(cli, ["dream", *args, "--layers", "relu3:1,relu4:0.5"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["layers"] == "relu3:1,relu4:0.5" and meta["octaves"] == "2"
    assert meta["model"] == "shapes" and meta["input"] == "in.png"


def test_dream_command_zoom_frames_and_gif(tmp_path, cli):
    from minigan.images import save_image

    source = tmp_path / "in.png"
    save_image(source, (photo(40, 40) * 255).astype(np.uint8))
    out = tmp_path / "z.png"
    args = ["dream", str(source), "-o", str(out), "--octaves", "1", "--steps", "1"]
    result = CliRunner().invoke(cli, [*args, "--zoom-frames", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "z.gif").exists()
    assert sorted(p.name for p in (tmp_path / "z_frames").iterdir()) == ["0000.png", "0001.png"]


def test_dream_list_layers_and_errors(tmp_path, cli, monkeypatch):
    result = CliRunner().invoke(cli, ["dream", "--list-layers", "--model", "vgg16"])
    assert result.exit_code == 0 and "relu4_3" in result.output and "features.22" in result.output
    from minigan.images import save_image

    source = tmp_path / "in.png"
    save_image(source, np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(cli, ["dream", str(source), "--layers", "nope"])
    assert result.exit_code != 0 and "valid layers" in result.output and "relu4" in result.output
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["dream", str(source), "--model", "googlenet"])
    assert result.exit_code != 0 and "minigan weights download googlenet" in result.output


def test_weights_list_command(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["weights", "list"])
    assert result.exit_code == 0
    assert "vgg16" in result.output and "missing" in result.output and "shipped" in result.output


def test_shipped_weights_are_small_and_classify_shapes():
    from minigan.data import open_dataset
    from minigan.plugins.deepdream import shapes_classifier as sc

    assert sc.WEIGHTS_PATH.stat().st_size < 2 * 2**20
    data = open_dataset("shapes", resolution=sc.RESOLUTION, channels=3, limit=300, seed=1)
    images, labels = data[:]
    assert sc.evaluate(sc.load_shipped(), images, labels) > 0.6
