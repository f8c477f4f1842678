"""The ``"cuda"`` device path: every op, layer, optimizer, loader, checkpoint, model, CLI
command and processor that follows the device runs on ``"cuda"`` and is compared with the
same computation on the CPU.

By default (CI, no GPU) through :func:`minigan.testing.fake_cuda`: CuPy is replaced by a
NumPy-backed stand-in that keeps CuPy's rules (no implicit conversion to NumPy, no mixing of
host and device arrays, 0-d reductions) and counts host <-> device copies, and the
Numba-CUDA conv and norm kernels run on the CPU kernels (they are checked themselves in
test_cuda_kernels.py) — so a training step is also checked to read nothing back from the
device. On a machine with a GPU, ``MINIGAN_TEST_CUDA=gpu pytest tests/test_cuda_device.py``
runs the same comparisons on real CuPy and the real CUDA kernels (copy counts and the
stand-in's own rules are then not checked, and the tolerances allow for float32 sums taken
in another order).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import minigan
import minigan.functional as F
from minigan import nn, optim
from minigan.backend import is_cupy_array
from minigan.testing import fake_cuda

REAL_GPU = os.environ.get("MINIGAN_TEST_CUDA") == "gpu"
stand_in_only = pytest.mark.skipif(REAL_GPU, reason="checks the CuPy stand-in itself")


@pytest.fixture
def cuda():
    """The copy counts of the stand-in, or None on a real GPU."""
    if REAL_GPU:
        minigan.backend.cupy()  # a clear error when CuPy or the GPU is missing
        yield None
        return
    with fake_cuda() as transfers:
        yield transfers


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, err_msg=""):
    """On the stand-in both sides run the same CPU kernels; on a GPU, float32 sums are taken
    in another order, so the bound is looser there (and scaled by the values)."""
    if REAL_GPU:
        scale = max(1.0, float(np.abs(np.asarray(expected)).max()))
        rtol, atol = max(rtol, 1e-3), max(atol, 1e-4 * scale)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


# ------------------------------------------------------------------------ the stand-in itself


@stand_in_only
def test_stand_in_keeps_cupys_rules(cuda):
    cp = pytest.importorskip("cupy")
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert cuda.host_to_device == 1
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="cannot be mixed"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="cannot be mixed"):
        np.ones(3) * a
    total = a.sum()
    assert is_cupy_array(total) and total.shape == ()  # 0-d, not a number
    assert is_cupy_array(np.exp(a))  # NumPy functions dispatch to the device
    assert cuda.device_to_host == 0
    assert float(total) == 15.0 and cuda.device_to_host == 1
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[...] = np.ones((2, 3))  # CuPy assigns through fill(): host arrays are refused
    a[0, 0] = np.float64(7.0)
    assert cuda.device_to_host == 1
    a[a > 6.0]  # a boolean mask waits for its count of True  # noqa: B018
    assert cuda.device_to_host == 2 and cuda.reads[-1].startswith("boolean index")
    with pytest.raises(AttributeError):
        cp.geomspace  # a NumPy function CuPy does not have  # noqa: B018
    with pytest.raises(TypeError):
        np.insert(a, 0, 1.0)  # no CuPy implementation to dispatch to
    expected = np.arange(6.0).reshape(2, 3)
    expected[0, 0] = 7.0
    np.testing.assert_array_equal(a.get(), expected)
    assert cuda.device_to_host == 3


def test_tensor_device_round_trip(cuda):
    x = minigan.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    assert x.device == "cuda" and is_cupy_array(x.data) and x.dtype == np.float32
    assert "device='cuda'" in repr(x)
    back = x.to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), [[1, 2], [3, 4]])
    assert minigan.zeros(2, 3, device="cuda").device == "cuda"
    assert minigan.randn(2, 3, device="cuda").device == "cuda"
    assert minigan.zeros_like(x).device == "cuda"


def test_gradient_flows_back_across_devices(cuda):
    x = minigan.randn(3, 4, requires_grad=True)
    y = (x.to("cuda") * 2.0).sum()
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0, np.float32))


def test_mixing_devices_names_the_op(cuda):
    a = minigan.randn(2, 2, device="cuda")
    with pytest.raises(ValueError, match="different devices"):
        a + minigan.randn(2, 2)
    layer = nn.Linear(2, 3)
    with pytest.raises(RuntimeError, match=r"Linear.*device 'cuda'.*\.to\(device"):
        layer(a)


# ------------------------------------------------------------------- every op: cuda == cpu

rng = np.random.default_rng(0)


def _r(*shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


IMG = _r(2, 3, 6, 5)
OPS = {
    "add": (lambda a, b: a + b, [_r(2, 3), _r(3)]),
    "sub_mul_div": (lambda a, b: (a - b) * a / (b * b + 1.0), [_r(2, 3), _r(2, 1)]),
    "pow_exp_log_sqrt": (lambda a: F.sqrt(F.log(a) ** 2 + F.exp(-a)), [_r(4, positive=True)]),
    "abs_clip_where": (
        lambda a, b: F.where(a > b, F.abs(a), F.clip(b, -0.5, 0.5)),
        [_r(3, 4), _r(3, 4)],
    ),  # fmt: skip
    "maximum_minimum": (lambda a, b: F.maximum(a, b) + F.minimum(a, 0.1), [_r(5), _r(5)]),
    "reductions": (
        lambda a: a.sum(1) + a.mean(1) + F.var(a, 1) + F.std(a, 1) + F.max(a, 1) + F.min(a, 1),
        [_r(3, 4)],
    ),  # fmt: skip
    "logsumexp_softmax": (
        lambda a: F.logsumexp(a, 1) + F.log_softmax(a, 1)[:, 0] + F.softmax(a, 0)[:, 0],
        [_r(3, 4)],
    ),  # fmt: skip
    "matmul_linear": (lambda a, w, b: F.linear(a @ w, w.T, b), [_r(2, 3), _r(3, 3), _r(3)]),
    "shapes": (
        lambda a: (
            F.flatten(F.permute(a.reshape(2, 3, 2), (2, 0, 1)).unsqueeze(0)).squeeze(0)[:2]
            + F.transpose(a.reshape(2, 6), 0, 1).reshape(-1)[:2]
        ),
        [_r(12)],
    ),
    "broadcast_sum_to": (lambda a: F.sum_to(F.broadcast_to(a, (4, 3)) * 2.0, (1, 3)), [_r(3)]),
    "getitem": (
        lambda a: a[1:, ::2] + a[np.array([0, 2])][:, 1:3] + a[a.detach() > 0].sum(),
        [_r(3, 4)],
    ),  # fmt: skip
    "cat_stack_split": (
        lambda a, b: F.stack([*F.split(F.cat([a, b], 1), 2, 1)], 0),
        [_r(2, 2), _r(2, 2)],
    ),  # fmt: skip
    "pad": (lambda a: F.pad(a, (1, 2, 0, 1), value=0.5), [IMG]),
    "activations": (
        lambda a: F.relu(a) + F.leaky_relu(a, 0.2) + F.tanh(a) + F.sigmoid(a) + F.softplus(a),
        [_r(3, 5)],
    ),  # fmt: skip
    "conv2d": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        [IMG, _r(4, 3, 3, 3), _r(4)],
    ),  # fmt: skip
    "conv_transpose2d": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
        [IMG, _r(3, 2, 4, 4)],
    ),  # fmt: skip
    "batch_norm": (
        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
        [IMG, _r(3), _r(3)],
    ),  # fmt: skip
    "adain": (lambda x, s, b: F.adain(x, s, b), [IMG, _r(2, 3), _r(2, 3)]),
    "instance_norm": (lambda x: F.instance_norm(x), [IMG]),
    "pools": (lambda x: F.max_pool2d(x, 2) + F.avg_pool2d(x, 2), [IMG]),
    "upsample": (
        lambda x: (
            F.upsample(x, scale_factor=2, mode="nearest")[..., :5, :4]
            + F.upsample(x, size=(5, 4), mode="bilinear")
        ),
        [IMG],
    ),  # fmt: skip
    "losses": (
        lambda a, t: (
            F.binary_cross_entropy_with_logits(a, t.detach().sigmoid())
            + F.mse_loss(a, t)
            + F.l1_loss(a, t)
        ),
        [_r(4, 3), _r(4, 3)],
    ),  # fmt: skip
    "cross_entropy": (lambda a: F.cross_entropy(a, np.array([0, 2, 1, 2])), [_r(4, 3)]),
}


def _run(fn, arrays, device):
    minigan.manual_seed(7)
    xs = [minigan.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = fn(*xs)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(minigan.tensor(gy, device=device))
    return [y.numpy()] + [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_on_cuda_matches_cpu(cuda, name):
    fn, arrays = OPS[name]
    expected = _run(fn, arrays, "cpu")
    actual = _run(fn, arrays, "cuda")
    for what, a, e in zip(["output"] + [f"grad {i}" for i in range(len(arrays))], actual, expected):
        assert_close(a, e, rtol=1e-5, atol=1e-6, err_msg=f"{name}: {what}")


def test_indices_scalars_and_targets_from_the_host(cuda):
    x = minigan.randn(3, 4, device="cuda")
    if cuda is not None:
        cuda.reset()
    x[np.int64(1)], x[1, np.int32(2)]  # NumPy integers stay basic indices: no copy  # noqa: B018
    assert cuda is None or cuda.host_to_device == 0
    w = F.where(x > 0, 1.0, 0.0)  # two scalars take the condition's device
    assert w.device == "cuda"
    assert_close(w.numpy(), (x.numpy() > 0).astype(w.dtype))
    cp = minigan.backend.cupy()
    loss = F.cross_entropy(x, cp.asarray(np.array([0, 3, 1])))  # a raw CuPy target
    expected = F.cross_entropy(x.to("cpu"), np.array([0, 3, 1]))
    assert_close(loss.numpy(), expected.numpy())


def test_dropout_on_cuda_draws_the_cpu_mask(cuda):
    x = np.ones((4, 50), np.float32)
    minigan.manual_seed(3)
    cpu = F.dropout(minigan.tensor(x), 0.3).numpy()
    minigan.manual_seed(3)
    gpu = F.dropout(minigan.tensor(x, device="cuda"), 0.3).numpy()
    np.testing.assert_array_equal(gpu, cpu)


def test_second_derivatives_on_cuda(cuda):
    """An R1-style penalty: the gradient of a gradient norm, through conv and leaky ReLU."""

    def penalty(device):
        x = minigan.tensor(IMG, device=device, requires_grad=True)
        w = minigan.tensor(_r(4, 3, 3, 3) * 0 + OPS["conv2d"][1][1], device=device,
                           requires_grad=True)  # fmt: skip
        y = F.leaky_relu(F.conv2d(x, w, padding=1), 0.2).sum()
        (gx,) = minigan.grad(y * y, [x], create_graph=True)
        p = (gx * gx).sum()
        p.backward()
        return p.numpy(), w.grad.numpy()

    for a, e in zip(penalty("cuda"), penalty("cpu")):
        assert_close(a, e, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- modules and optimizers


def _model() -> nn.Module:
    minigan.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Dropout(0.2),
        nn.Flatten(), nn.Linear(4 * 6 * 5, 2),
    )  # fmt: skip


@pytest.mark.parametrize("make_opt", [lambda p: optim.Adam(p, lr=1e-2, betas=(0.5, 0.9)),
                                      lambda p: optim.SGD(p, lr=0.1, momentum=0.9)])  # fmt: skip
def test_module_and_optimizer_follow_the_device(cuda, make_opt):
    def train(device):
        model = _model().to(device)
        opt = make_opt(model.parameters())
        minigan.manual_seed(5)
        for _ in range(3):
            loss = F.mse_loss(model(minigan.tensor(IMG, device=device)),
                              minigan.zeros(2, 2, device=device))  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model, opt

    gpu_model, gpu_opt = train("cuda")
    cpu_model, _ = train("cpu")
    assert all(t.device == "cuda" for t in gpu_model.state_dict().values())
    states = [v for s in gpu_opt.state_dict()["state"].values() for v in s.values()]
    assert any(is_cupy_array(v) for v in states)  # moment buffers live on the device
    for (name, a), b in zip(gpu_model.state_dict().items(), cpu_model.state_dict().values()):
        assert_close(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_state_dict_and_files_cross_devices(cuda, tmp_path):
    model = _model().cuda()
    path = tmp_path / "m.safetensors"
    minigan.save(model.state_dict(), path)
    cpu_model = _model()
    cpu_model.load_state_dict(minigan.load(path))
    for (name, a), b in zip(model.state_dict().items(), cpu_model.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    again = _model().cuda()
    again.load_state_dict(cpu_model.state_dict())  # CPU values into CUDA parameters
    assert all(t.device == "cuda" for t in again.state_dict().values())


def test_optimizer_state_moves_to_the_parameters_device(cuda):
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters())
    model(minigan.randn(4, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    gpu_model = nn.Linear(3, 2).cuda()
    gpu_opt = optim.Adam(gpu_model.parameters())
    gpu_opt.load_state_dict(saved)
    gpu_model(minigan.randn(4, 3, device="cuda")).sum().backward()
    gpu_opt.step()  # fails if the loaded moments stayed on the host


@pytest.mark.parametrize("make_opt", [lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
                                      lambda p: optim.SGD(p, lr=0.1, momentum=0.9)])  # fmt: skip
def test_optimizer_state_follows_a_module_moved_after_some_steps(cuda, make_opt):
    x = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)

    def run(move_after):
        minigan.manual_seed(0)
        model = nn.Linear(3, 2)
        opt = make_opt(model.parameters())
        for step in range(4):
            if step == move_after:
                model.cuda()
            (model(minigan.tensor(x, device=model.weight.device)) ** 2).sum().backward()
            opt.step()
            opt.zero_grad()
        return model.weight.numpy(), opt

    expected, _ = run(move_after=None)
    moved, opt = run(move_after=2)
    assert_close(moved, expected)
    arrays = [v for s in opt.state.values() for v in s.values() if hasattr(v, "shape")]
    assert arrays and all(is_cupy_array(v) for v in arrays)


def test_data_loader_delivers_device_batches(cuda):
    from minigan.data import DataLoader, Dataset

    images = np.random.default_rng(0).integers(0, 255, (6, 1, 8, 8), dtype=np.uint8)
    loader = DataLoader(Dataset(images, np.arange(6)), 4, device="cuda")
    x, y = next(iter(loader))
    assert x.device == "cuda" and y.device == "cuda" and x.shape == (4, 1, 8, 8)


# ------------------------------------------------------------------------------- models


def _dcgan(device):
    from minigan.plugins.dcgan import DCGAN

    minigan.manual_seed(0)
    return DCGAN({"g_width": 4, "d_width": 4, "latent_dim": 8, "ema": 0.5}, (1, 28, 28), device)


def _dcgan_conditional(device):
    """The class-conditional 32x32 recipe: spectral norm, projection D, DiffAugment, hinge."""
    from minigan.plugins.dcgan import DCGAN

    minigan.manual_seed(0)
    return DCGAN({"g_width": 4, "d_width": 4, "latent_dim": 8, "num_classes": 3}, (3, 32, 32),
                 device)  # fmt: skip


def _dcgan_layered(device, mask="conv"):
    """The conditional recipe with the layered output (a mask blending two colours), the mask
    drawn by transposed convolutions (``mask="conv"``) or the implicit network."""
    from minigan.plugins.dcgan import DCGAN

    minigan.manual_seed(0)
    config = {"g_width": 4, "d_width": 4, "latent_dim": 8, "num_classes": 3, "layered": True,
              "mask": mask}  # fmt: skip
    return DCGAN(config, (3, 32, 32), device)


def _dcgan_implicit(device):
    """The layered output with the implicit mask (the default on shapes)."""
    return _dcgan_layered(device, "implicit")


def _stylegan(device):
    from minigan.plugins.stylegan_lite import StyleGANLite

    minigan.manual_seed(0)
    config = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "w_dim": 16,
              "mapping_layers": 2, "r1_every": 2, "style_mixing_prob": 0.5}  # fmt: skip
    return StyleGANLite(config, (3, 16, 16), device)


@pytest.mark.parametrize(
    "make",
    [_dcgan, _dcgan_conditional, _dcgan_layered, _dcgan_implicit, _stylegan],
    ids=["dcgan", "dcgan-cond", "dcgan-layered", "dcgan-implicit", "stylegan-lite"],
)
def test_training_steps_on_cuda_match_cpu_and_read_nothing_back(cuda, make):
    real = np.random.default_rng(0).uniform(-1, 1, (4, *make("cpu").image_shape))
    runs = {}
    for device in ("cpu", "cuda"):
        model = make(device)
        minigan.manual_seed(1)
        batch = minigan.tensor(real.astype(np.float32), device=device)
        extra = [minigan.tensor(np.array([0, 2, 1, 2]), device=device)] if model.num_classes else []
        if cuda is not None:
            cuda.reset()
        metrics = [model.train_step(batch, *extra) for _ in range(2)]
        if device == "cuda" and cuda is not None:
            assert cuda.device_to_host == 0, cuda.reads  # the steps never waited for the GPU
            if make is _dcgan:  # and copied in nothing but each step's latents (no constants)
                assert cuda.host_to_device == 2
        if device == "cuda":
            assert all(isinstance(v, minigan.Tensor) and v.device == "cuda"
                       for m in metrics for v in m.values())  # fmt: skip
        runs[device] = (
            [{k: float(v) for k, v in m.items()} for m in metrics],
            {k: t.numpy() for n in model.networks().values() for k, t in n.state_dict().items()},
        )
    (cpu_metrics, cpu_state), (gpu_metrics, gpu_state) = runs["cpu"], runs["cuda"]
    for a, b in zip(gpu_metrics, cpu_metrics):
        assert_close(list(a.values()), list(b.values()), rtol=1e-4, atol=1e-5)
    for name, value in cpu_state.items():
        assert_close(gpu_state[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_sampling_on_cuda_matches_cpu(cuda):
    gpu, cpu = _dcgan("cuda"), _dcgan("cpu")
    images = gpu.sample(gpu.latents([0, 1, 2]))
    assert images.device == "cuda"
    assert_close(images.numpy(), cpu.sample(cpu.latents([0, 1, 2])).numpy(),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_cli_trains_resumes_and_samples_on_cuda(cuda, tmp_path):
    """``minigan train --device cuda`` (stopped and resumed) gives the CPU run's losses."""
    import json

    from click.testing import CliRunner

    from minigan import images as imaging
    from minigan.cli import main

    def invoke(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    tiny = ["--g-width", 4, "--d-width", 4, "--batch-size", 16, "--limit", 64, "--no-progress"]
    cpu_run, gpu_run = tmp_path / "cpu", tmp_path / "gpu"
    invoke("train", "dcgan", *tiny, "--epochs", 2, "--out", cpu_run)
    invoke("train", "dcgan", *tiny, "--epochs", 2, "--max-steps", 5, "--device", "cuda",
           "--out", gpu_run)  # fmt: skip
    invoke("train", "dcgan", "--out", gpu_run, "--resume", "--device", "cuda", "--no-progress")

    def losses(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss_d"], r["loss_g"]) for r in map(json.loads, lines)]

    gpu, cpu = losses(gpu_run), losses(cpu_run)
    assert [s for s, *_ in gpu] == [s for s, *_ in cpu] == list(range(1, 9))
    assert_close([v for _, *v in gpu], [v for _, *v in cpu], rtol=1e-4)
    for run in (cpu_run, gpu_run):
        invoke("sample", run, "--seeds", "0-3", "--grid", tmp_path / f"{run.name}.png",
               "--device", "cuda")  # fmt: skip
    a, b = (imaging.read_image(tmp_path / f"{n}.png").astype(int) for n in ("gpu", "cpu"))
    assert np.abs(a - b).max() <= (2 if REAL_GPU else 1)


@pytest.mark.parametrize("guided", [False, True], ids=["plain", "guide"])
def test_deepdream_on_cuda_matches_cpu(cuda, tmp_path, guided):
    from minigan import images as imaging
    from minigan.plugins.deepdream.dream import DeepDream

    rng = np.random.default_rng(0)
    image = rng.random((40, 36, 3), dtype=np.float32)
    options = dict(octaves=2, steps=2, tile=24, jitter=4, laplacian=3, progress=False)
    if guided:
        imaging.save_image(tmp_path / "guide.png", (rng.random((20, 20, 3)) * 255).astype("u1"))
        options.update(guide=str(tmp_path / "guide.png"), channels="1,3")
    gpu = DeepDream(device="cuda", **options)
    assert {p.device for p in gpu.network.parameters()} == {"cuda"}
    out = gpu.process(image)
    cpu = DeepDream(device="cpu", **options)
    assert_close(out, cpu.process(image), rtol=1e-4, atol=1e-5)
    assert_close(gpu.history, cpu.history, rtol=1e-4)


def test_deepdream_googlenet_input_transform_on_cuda(cuda):
    from minigan.plugins.deepdream import networks
    from minigan.plugins.deepdream.dream import DeepDream

    image = np.random.default_rng(1).random((48, 48, 3), dtype=np.float32)
    options = dict(model="googlenet", octaves=1, steps=1, jitter=0, progress=False)
    minigan.manual_seed(0)
    net = networks.get_spec("googlenet").build()
    out = {d: DeepDream(network=net, device=d, **options).process(image) for d in ("cuda", "cpu")}
    assert_close(out["cuda"], out["cpu"], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------- the contract, on cuda


def test_check_model_passes_the_builtin_models_on_cuda(cuda):
    from minigan.plugins.dcgan import DCGAN
    from minigan.plugins.stylegan_lite import StyleGANLite
    from minigan.train import check_model

    check_model(DCGAN, (1, 28, 28), {"g_width": 4, "d_width": 4}, device="cuda")
    conditional = {"g_width": 4, "d_width": 4, "num_classes": 3}
    check_model(DCGAN, (3, 32, 32), conditional, device="cuda")
    tiny = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2}
    check_model(StyleGANLite, (3, 16, 16), tiny, device="cuda")


def test_check_model_finds_a_model_that_ignores_the_device(cuda):
    from test_train import ToyGAN

    from minigan.train import check_model

    with pytest.raises(AssertionError, match=r"ToyGAN.*generator\.0\.weight is on 'cpu'"):
        check_model(ToyGAN, (1, 8, 8), device="cuda")

    class NoiseOnTheHost(ToyGAN):  # moves its networks, but draws its latents on the CPU
        def __init__(self, config=None, image_shape=(1, 8, 8), device="cpu"):
            super().__init__(config, image_shape, device)
            for net in self.networks().values():
                net.to(device)

    with pytest.raises(AssertionError, match=r"train_step.*input is on device 'cpu'"):
        check_model(NoiseOnTheHost, (1, 8, 8), device="cuda")


def test_stylegan_figures_on_cuda_match_cpu(cuda, tmp_path):
    """Style mixing, truncation, latent walks and the ``--device cuda`` commands."""
    from click.testing import CliRunner

    from minigan.cli import main
    from minigan.train import train

    run = tmp_path / "run"
    tiny = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2}
    data_options = {"resolution": 16, "limit": 8}
    train("stylegan-lite", "shapes", out=run, config=tiny, batch_size=4, max_steps=2,
          data_options=data_options, progress=False, log=lambda m: None)  # fmt: skip

    def figures(device):
        m = minigan.train.load_model(run, device=device)[0]
        minigan.manual_seed(0)  # the same fresh noise for "random"
        return [
            m.style_mix_grid([1, 2], [3], [0, 1], 0.7, "const"),
            m.truncation_grid([0, 1], [1.0, 0.5], "random"),
            m.interpolation_frames([1, 2], 4, "z", 1.0, "none"),
            m.interpolation_frames([1, 2], 4, "w", 0.8, "const"),
            m.generate_from_z(np.ones((2, 16), np.float32), 0.5),
        ]

    outputs = {d: figures(d) for d in ("cpu", "cuda")}
    for i, (a, e) in enumerate(zip(outputs["cuda"], outputs["cpu"])):
        assert_close(a, e, rtol=1e-4, atol=1e-5, err_msg=f"figure {i}")
    for command in ("style-mix", "truncation-sweep", "interpolate"):
        out = tmp_path / f"{command}.{'gif' if command == 'interpolate' else 'png'}"
        args = [command, str(run), "--device", "cuda", "-o", str(out)]
        result = CliRunner().invoke(main, args + (["--frames", "3"] if command == "interpolate"
                                                  else []), catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert out.exists()
