"""minigan.nn against PyTorch: state-dict layout, forward/backward parity, init, errors.

Tolerances (float32): forward outputs rtol=1e-4, atol=1e-5; gradients rtol=1e-4, atol=1e-5
(after BatchNorm, gradients are differences of nearly equal sums, hence atol); running
statistics rtol=1e-5, atol=1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn

import minigan
from minigan import nn
from minigan.nn import init

FWD = dict(rtol=1e-4, atol=1e-5)
GRAD = dict(rtol=1e-4, atol=1e-5)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(np.float32)


def dcgan_like(lib, p_drop: float = 0.3):
    """The same DCGAN-style stack in torch.nn or minigan.nn (``lib``)."""
    return lib.Sequential(
        lib.Linear(8, 64),
        lib.BatchNorm1d(64),
        lib.ReLU(),
        lib.Unflatten(1, (16, 2, 2)),
        lib.ConvTranspose2d(16, 8, 4, stride=2, padding=1, bias=False),
        lib.BatchNorm2d(8),
        lib.LeakyReLU(0.2),
        lib.Conv2d(8, 4, 3, stride=1, padding=1),
        lib.Dropout(p_drop),
        lib.Flatten(),
        lib.Linear(4 * 4 * 4, 1),
    )


def copy_torch_weights(ours: nn.Module, theirs: tnn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def assert_close(ours, theirs, **tol) -> None:
    ours = ours.numpy() if isinstance(ours, minigan.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, **tol)


def both(x: np.ndarray, requires_grad: bool = False):
    return (
        minigan.tensor(x, requires_grad=requires_grad),
        torch.tensor(x, requires_grad=requires_grad),
    )


# --------------------------------------------------------------------------- state dict layout


def test_state_dict_keys_and_shapes_match_torch():
    ours, theirs = dcgan_like(nn), dcgan_like(tnn)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in theirs_sd:
        assert ours_sd[key].shape == tuple(theirs_sd[key].shape), key
        assert ours_sd[key].dtype == theirs_sd[key].numpy().dtype, key
    assert ours_sd["1.num_batches_tracked"].dtype == np.int64
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]


def _custom(lib):
    class Discriminator(lib.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = lib.Sequential(lib.Conv2d(3, 8, 3), lib.LeakyReLU(0.2))
            self.bn = lib.BatchNorm2d(8)
            self.blocks = lib.ModuleList([lib.Linear(4, 4), lib.Linear(4, 4, bias=False)])
            self.head = lib.Linear(8, 1)

    return Discriminator()


def test_custom_module_names_match_torch():
    ours, theirs = _custom(nn), _custom(tnn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [type(m).__name__ for m in ours.children()] == [
        type(m).__name__ for m in theirs.children()
    ]


def test_repr_matches_torch():
    def stack(lib):
        return lib.Sequential(
            dcgan_like(lib),
            lib.Tanh(),
            lib.Sigmoid(),
            lib.Softplus(),
            lib.ReLU(inplace=True),
            lib.LeakyReLU(0.2, inplace=True),
            lib.InstanceNorm2d(3),
            lib.Identity(),
            lib.Upsample(scale_factor=2),
            lib.Upsample(size=(4, 5), mode="bilinear"),
            lib.Conv2d(3, 3, (3, 5), dilation=2, bias=False),
            lib.ConvTranspose2d(3, 3, 3, 2, 1, output_padding=1),
            lib.ModuleList([lib.ReLU()]),
            lib.AvgPool2d(2),
            lib.MaxPool2d(2),
        )

    ours, theirs = repr(stack(nn)), repr(stack(tnn))
    if "bias=True, track" not in theirs:  # torch < 2.13 has no BatchNorm(bias=...)
        ours = ours.replace(", bias=True, track", ", track").replace(
            ", bias=False, track", ", track"
        )
    assert ours == theirs


# --------------------------------------------------------------------------- forward/backward


def test_dcgan_like_train_eval_and_gradients_match_torch():
    torch.manual_seed(0)
    theirs = dcgan_like(tnn, p_drop=0.0)  # dropout randomness cannot match; tested separately
    ours = dcgan_like(nn, p_drop=0.0)
    copy_torch_weights(ours, theirs)

    # A few training-mode forwards: outputs, running stats, num_batches_tracked.
    for step in range(3):
        x_ours, x_theirs = both(randn(6, 8, seed=step) * (step + 1) + step)
        assert_close(ours(x_ours), theirs(x_theirs), **FWD)
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert ours[1].num_batches_tracked.item() == 3

    # Gradients of a weighted sum, in training mode, w.r.t. parameters and input.
    x_ours, x_theirs = both(randn(6, 8, seed=10), requires_grad=True)
    weights = randn(6, 1, seed=11)
    (ours(x_ours) * minigan.tensor(weights)).sum().backward()
    (theirs(x_theirs) * torch.tensor(weights)).sum().backward()
    for (name, p_ours), (_, p_theirs) in zip(
        ours.named_parameters(), theirs.named_parameters(), strict=True
    ):
        assert p_ours.grad is not None, name
        assert_close(p_ours.grad, p_theirs.grad, **GRAD)
    assert_close(x_ours.grad, x_theirs.grad, **GRAD)

    # Eval mode uses the running statistics.
    ours.eval()
    theirs.eval()
    assert not ours[1].training and not ours.training
    x_ours, x_theirs = both(randn(5, 8, seed=20))
    assert_close(ours(x_ours), theirs(x_theirs), **FWD)
    assert ours[1].num_batches_tracked.item() == 4  # the gradient forward was a training one


def test_load_state_dict_accepts_torch_tensors_directly():
    torch.manual_seed(1)
    theirs = dcgan_like(tnn).eval()
    ours = dcgan_like(nn).eval()
    ours.load_state_dict(theirs.state_dict())  # torch tensors go through numpy.asarray
    x_ours, x_theirs = both(randn(4, 8))
    assert_close(ours(x_ours), theirs(x_theirs), **FWD)


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        lambda lib: lib.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1),
        lambda lib: lib.ConvTranspose2d(3, 5, 3, stride=2, padding=0, dilation=2, bias=False),
        lambda lib: lib.InstanceNorm2d(3),
        lambda lib: lib.InstanceNorm2d(3, affine=True),
        lambda lib: lib.BatchNorm2d(3, momentum=None),
        lambda lib: lib.BatchNorm2d(3, affine=False, track_running_stats=False),
        lambda lib: lib.Upsample(scale_factor=2),
        lambda lib: lib.Upsample(size=(9, 5), mode="bilinear"),
        lambda lib: lib.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        lambda lib: lib.Softplus(beta=2.0, threshold=3.0),
        lambda lib: lib.Softplus(),
        lambda lib: lib.Sigmoid(),
        lambda lib: lib.Tanh(),
        lambda lib: lib.LeakyReLU(0.1),
        lambda lib: lib.AvgPool2d(2),
        lambda lib: lib.MaxPool2d(2),
        lambda lib: lib.Flatten(1, 2),
    ],
)
def test_layer_forward_backward_match_torch(make):
    torch.manual_seed(2)
    theirs, ours = make(tnn), make(nn)
    if theirs.state_dict():
        with torch.no_grad():  # non-trivial affine parameters
            for p in theirs.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        copy_torch_weights(ours, theirs)
    x = randn(2, 3, 6, 4, seed=3) * 3
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x_ours, x_theirs = both(x, requires_grad=True)
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        assert_close(y_ours, y_theirs, **FWD)
        weights = randn(*y_theirs.shape, seed=4)
        (y_ours * minigan.tensor(weights)).sum().backward()
        (y_theirs * torch.tensor(weights)).sum().backward()
        assert_close(x_ours.grad, x_theirs.grad, **GRAD)
        for p_ours, p_theirs in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert_close(p_ours.grad, p_theirs.grad, **GRAD)
            p_ours.grad, p_theirs.grad = None, None
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_batchnorm1d_3d_input_matches_torch():
    torch.manual_seed(3)
    theirs, ours = tnn.BatchNorm1d(4, momentum=0.3), nn.BatchNorm1d(4, momentum=0.3)
    for seed in range(2):
        x_ours, x_theirs = both(randn(3, 4, 5, seed=seed) * 2 + 1)
        assert_close(ours(x_ours), theirs(x_theirs), **FWD)
    assert_close(ours.running_var, theirs.running_var, rtol=1e-5, atol=1e-6)
    ours.eval()
    theirs.eval()
    x_ours, x_theirs = both(randn(3, 4, 5, seed=9))
    assert_close(ours(x_ours), theirs(x_theirs), **FWD)


def test_dropout_statistics_and_eval_identity():
    minigan.manual_seed(0)
    drop = nn.Dropout(0.25)
    x = minigan.tensor(np.ones((200, 500), dtype=np.float32), requires_grad=True)
    y = drop(x).numpy()
    zero_fraction = (y == 0).mean()
    assert abs(zero_fraction - 0.25) < 0.01  # 100k Bernoulli draws: std 0.0014
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_unflatten_and_identity():
    x = minigan.tensor(randn(2, 24))
    assert nn.Unflatten(1, (2, -1, 3))(x).shape == (2, 2, 4, 3)
    assert nn.Unflatten(-1, (4, 6))(x).shape == (2, 4, 6)
    assert nn.Identity(54, unused=1)(x) is x


# --------------------------------------------------------------------------- Module API


def test_train_eval_zero_grad_requires_grad():
    model = dcgan_like(nn)
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())

    x = minigan.tensor(randn(4, 8))
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())

    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    assert model.num_parameters() == sum(p.numel() for p in dcgan_like(tnn).parameters())


def test_to_dtype_keeps_identity_and_integer_buffers():
    model = dcgan_like(nn)
    params = list(model.parameters())
    assert model.to(dtype=np.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="floating point"):
        model.to(dtype=np.int32)


def test_linear_float64_matches_torch_closely():
    theirs = tnn.Linear(5, 3).double()
    ours = nn.Linear(5, 3).to(dtype="float64")
    copy_torch_weights(ours, theirs)
    x = rng(5).standard_normal((4, 5))
    assert_close(ours(minigan.tensor(x)), theirs(torch.tensor(x)), rtol=1e-12, atol=1e-12)


def test_shared_parameters_listed_once_but_saved_under_each_name():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_containers():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    assert list(seq[1:]) == layers[1:] and list(seq[1:]._modules) == ["1", "2"]
    with pytest.raises(IndexError):
        seq[3]
    named = nn.Sequential({"fc": nn.Linear(2, 2), "act": nn.Tanh()})
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert named.fc is named[0]

    blocks = nn.ModuleList([nn.Linear(2, 2)])
    blocks.append(nn.Linear(2, 2))
    blocks += [nn.Linear(2, 3)]
    blocks.insert(0, nn.Tanh())
    assert [type(b).__name__ for b in blocks] == ["Tanh", "Linear", "Linear", "Linear"]
    assert list(blocks.state_dict())[:2] == ["1.weight", "1.bias"]
    del blocks[0]
    assert list(blocks.state_dict())[0] == "0.weight" and len(blocks) == 3


def test_attribute_registration_rules():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
            self.register_buffer("steps", np.zeros(1, dtype=np.int64))
            self.plain = [nn.Linear(2, 2)]  # a plain list hides its modules (as in torch)

    net = Net()
    assert list(net.state_dict()) == ["scale", "steps", "fc.weight", "fc.bias"]
    assert isinstance(net.steps, minigan.Tensor)
    with pytest.raises(TypeError, match="Parameter or None"):
        net.scale = minigan.tensor([1.0])
    net.fc = None
    assert list(net.state_dict()) == ["scale", "steps"]
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        net.missing  # noqa: B018

    class Early(nn.Module):
        def __init__(self) -> None:
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Early()


# --------------------------------------------------------------------------- load_state_dict


def test_load_state_dict_keeps_dtype_identity_and_reports_keys():
    model = nn.Linear(3, 2)
    weight = model.weight
    new = {"weight": np.arange(6, dtype=np.float64).reshape(2, 3), "bias": [1, 2]}
    result = model.load_state_dict(new)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert model.weight is weight and weight.dtype == np.float32
    np.testing.assert_array_equal(weight.numpy(), new["weight"].astype(np.float32))
    np.testing.assert_array_equal(model.bias.numpy(), [1.0, 2.0])

    with pytest.raises(RuntimeError, match=r"Missing key\(s\): bias") as info:
        model.load_state_dict({"weight": new["weight"], "extra": np.zeros(1)})
    assert "Unexpected key(s): extra" in str(info.value)
    result = model.load_state_dict({"weight": np.zeros((2, 3)), "extra": 0}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert not model.weight.numpy().any()


def test_load_state_dict_shape_mismatch_names_both_shapes_and_changes_nothing():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    bad = {k: v.numpy() + 1 for k, v in model.state_dict().items()}
    bad["0.weight"] = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(
        RuntimeError,
        match=r"0\.weight: checkpoint has shape \(4, 3\), the model has shape \(2, 3\)",
    ):
        model.load_state_dict(bad, strict=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


# --------------------------------------------------------------------------- errors


def test_conv_channel_error():
    conv = nn.Conv2d(3, 64, 3)
    x = minigan.tensor(np.zeros((8, 1, 28, 28), dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"^Conv2d\(3→64\): input has 1 channel, expected 3; input shape \(8, 1, 28, 28\)$",
    ):
        conv(x)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(3→64\): input has 5 channels"):
        nn.ConvTranspose2d(3, 64, 4)(minigan.tensor(np.zeros((1, 5, 4, 4), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"Conv2d\(3→64\): expected a 4-D input \(N, C, H, W\)"):
        conv(minigan.tensor(np.zeros((3, 28, 28), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"Conv2d\(3→64\): the padded input \(2 x 2\) is smaller"):
        conv(minigan.tensor(np.zeros((1, 3, 2, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(3, 3, 3, stride=1, output_padding=1)


def test_linear_feature_error():
    with pytest.raises(
        ValueError,
        match=r"^Linear\(100→256\): input has 64 features, expected 100; input shape \(8, 64\)$",
    ):
        nn.Linear(100, 256)(minigan.tensor(np.zeros((8, 64), dtype=np.float32)))


def test_batchnorm_rank_channel_and_batch_errors():
    with pytest.raises(
        ValueError,
        match=r"^BatchNorm2d\(64\): expected a 4-D input \(N, C, H, W\), got shape \(8, 64\)$",
    ):
        nn.BatchNorm2d(64)(minigan.tensor(np.zeros((8, 64), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(64\): input has 32 channels, expected 64"):
        nn.BatchNorm1d(64)(minigan.tensor(np.zeros((8, 32), dtype=np.float32)))
    with pytest.raises(
        ValueError, match=r"BatchNorm1d\(4\): expected more than 1 value per channel"
    ):
        nn.BatchNorm1d(4)(minigan.tensor(np.zeros((1, 4), dtype=np.float32)))


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Linear(3, 2), (4, 3)),
        (nn.Conv2d(3, 2, 1), (1, 3, 2, 2)),
        (nn.ConvTranspose2d(3, 2, 1), (1, 3, 2, 2)),
        (nn.BatchNorm2d(3), (2, 3, 2, 2)),
    ],
)
def test_wrong_dtype_is_a_type_error_naming_both_dtypes(layer, shape):
    name = type(layer).__name__
    with pytest.raises(TypeError, match=rf"^{name}\(.*input dtype is float64.*float32"):
        layer(minigan.tensor(np.zeros(shape, dtype=np.float64)))
    with pytest.raises(TypeError, match=rf"^{name}\(.*int64"):
        layer(minigan.tensor(np.zeros(shape, dtype=np.int64)))


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"Linear\(3→2\): expected a minigan Tensor"):
        nn.Linear(3, 2)(np.zeros((1, 3), dtype=np.float32))


def test_unflatten_error():
    with pytest.raises(ValueError, match=r"cannot split dimension 1 of size 10 into \(3, 3\)"):
        nn.Unflatten(1, (3, 3))(minigan.tensor(np.zeros((2, 10), dtype=np.float32)))


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize(
    "make, fan_in",
    [
        (lambda lib: lib.Linear(400, 300), 400),
        (lambda lib: lib.Conv2d(16, 64, 3), 16 * 9),
        (lambda lib: lib.ConvTranspose2d(16, 64, 4), 64 * 16),  # torch reads dim 1 as fan_in
    ],
)
def test_default_init_matches_torch_distribution(make, fan_in):
    minigan.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = make(nn), make(tnn)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=√5): gain √(1/3) · √3 / √fan_in
    for p_ours, p_theirs in ((ours.weight, theirs.weight), (ours.bias, theirs.bias)):
        assert p_ours.dtype == np.float32
        w, t = p_ours.numpy(), p_theirs.detach().numpy()
        for sample in (w, t):  # both are U(-bound, bound)
            assert np.abs(sample).max() <= bound
            if sample.size > 1000:
                assert np.abs(sample).max() > 0.99 * bound
                assert abs(sample.mean()) < 0.02 * bound
                assert sample.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        if w.size > 1000:
            assert w.std() == pytest.approx(t.std(), rel=0.03)


def test_init_is_reproducible_with_manual_seed():
    minigan.manual_seed(123)
    a = nn.Conv2d(3, 4, 3).weight.numpy().copy()
    minigan.manual_seed(123)
    b = nn.Conv2d(3, 4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, nn.Conv2d(3, 4, 3).weight.numpy())


def test_norm_init():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(5))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(5))
    assert bn.num_batches_tracked.item() == 0 and bn.running_mean.dtype == np.float32
    assert nn.InstanceNorm2d(5).state_dict() == {}


@pytest.mark.parametrize(
    "name",
    ["linear", "conv2d", "conv_transpose2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"],
)
def test_calculate_gain_matches_torch(name):
    assert init.calculate_gain(name) == pytest.approx(tnn.init.calculate_gain(name), rel=1e-15)
    if name == "leaky_relu":
        assert init.calculate_gain(name, 0.2) == pytest.approx(
            tnn.init.calculate_gain(name, 0.2), rel=1e-15
        )


def _param(*shape: int, dtype=np.float32) -> nn.Parameter:
    return nn.Parameter(np.empty(shape, dtype=dtype))


@pytest.mark.parametrize(
    "fill, expected_std, uniform_bound",
    [
        # weight (256, 128, 3, 3): fan_in = 128·9 = 1152, fan_out = 256·9 = 2304
        (
            lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
            math.sqrt(2 / 2304),
            None,
        ),
        (lambda w: init.kaiming_normal_(w, a=0.2), math.sqrt(2 / 1.04 / 1152), None),
        (
            lambda w: init.kaiming_uniform_(w, nonlinearity="relu"),
            math.sqrt(2 / 1152),
            math.sqrt(6 / 1152),
        ),
        (
            lambda w: init.xavier_uniform_(w, gain=2.0),
            2 * math.sqrt(2 / 3456),
            2 * math.sqrt(6 / 3456),
        ),
        (lambda w: init.xavier_normal_(w), math.sqrt(2 / 3456), None),
        (lambda w: init.normal_(w, 1.0, 0.02), 0.02, None),
        (lambda w: init.uniform_(w, -0.5, 0.5), 1 / math.sqrt(12), 0.5),
    ],
)
def test_init_functions_match_formulas(fill, expected_std, uniform_bound):
    w = _param(256, 128, 3, 3)
    assert fill(w) is w and w.dtype == np.float32
    data = w.numpy()
    assert data.std() == pytest.approx(expected_std, rel=0.01)  # 295k samples
    if uniform_bound is not None:
        assert np.abs(data).max() <= uniform_bound
        assert np.abs(data).max() > 0.999 * uniform_bound
        assert abs(data.mean()) < 0.01 * uniform_bound


def test_init_constants_keep_dtype_and_fan_errors():
    w = _param(3, 4, dtype=np.float64)
    init.kaiming_uniform_(w)
    assert w.dtype == np.float64
    init.constant_(w, 0.5)
    np.testing.assert_array_equal(w.numpy(), np.full((3, 4), 0.5))
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert (w.numpy() == 1).all()
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(_param(5))
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_normal_(_param(3, 3), mode="fan_avg")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_running_stats_match_torch(momentum):
    """InstanceNorm2d(track_running_stats=True): running averages of the per-instance mean
    and unbiased variance while training, used for normalisation in eval mode."""
    x = np.random.default_rng(0).normal(2, 3, size=(4, 3, 5, 5)).astype("float32")
    ours = nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=momentum)
    ref = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=momentum)
    for scale in (1.0, 2.0, 3.0):
        y = ours(minigan.tensor(x * scale))
        y_ref = ref(torch.tensor(x * scale))
        np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.running_var.numpy(), ref.running_var.numpy(), rtol=1e-6)
    ours.eval()
    ref.eval()
    np.testing.assert_allclose(
        ours(minigan.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )
