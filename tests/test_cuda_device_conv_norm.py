"""Issue 17's convolution, normalisation and layer ops on the ``"cuda"`` device path, compared
with the same computation on the CPU (through :func:`minigan.testing.fake_cuda` in CI, on a
real GPU with ``MINIGAN_TEST_CUDA=gpu``), first and second derivatives; and the layers and a
spectral-normed module following the device with no read back in a training step.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_cuda_device import assert_close, cuda  # noqa: F401  (the fixture)

import minigan
import minigan.functional as F
from minigan import nn

rng = np.random.default_rng(0)


def _r(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


IMG = _r(2, 4, 6, 5)
OPS = {
    "grouped_conv2d": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2),
        [IMG, _r(6, 2, 3, 3), _r(6)],
    ),
    "depthwise_conv2d_same": (
        lambda x, w: F.conv2d(x, w, padding="same", dilation=2, groups=4),
        [IMG, _r(8, 1, 3, 3)],
    ),
    "grouped_conv_transpose2d": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
        [IMG, _r(4, 3, 4, 4)],
    ),
    "pad_modes": (
        lambda x: (
            F.pad(x, (2, 1, 1, 2), mode="reflect")[..., :6, :5]
            + F.pad(x, (1, -1, -1, 1), mode="replicate")
            + F.pad(x, (2, 0, 0, 1), mode="circular")[..., :6, :5]
            + F.pad(x, (-1, 1, 1, -1))
        ),
        [IMG],
    ),
    "group_layer_norm": (
        lambda x, w, b: F.group_norm(x, 2, w, b) + F.layer_norm(x, (6, 5)),
        [IMG, _r(4), _r(4)],
    ),
    "normalize": (lambda x: F.normalize(x, 2.0, 1) + F.normalize(x, 3.0, -1), [IMG]),
    "pixel_shuffle": (
        lambda x: F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2) * 2.0, [IMG]
    ),
    "attention": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        + F.scaled_dot_product_attention(q, k, v, attn_mask=np.tril(np.ones((3, 3), bool))),
        [_r(2, 3, 4), _r(2, 3, 4), _r(2, 3, 4)],
    ),
    "pools": (
        lambda x: F.max_pool2d(x, 3, 2, 1, dilation=1, ceil_mode=True)
        + F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        [IMG],
    ),
    "nearest_exact": (
        lambda x: F.interpolate(x, size=(7, 3), mode="nearest-exact"), [IMG]
    ),
}


def _run(fn, arrays, device):
    minigan.manual_seed(7)
    xs = [minigan.tensor(a, device=device, requires_grad=True) for a in arrays]
    y = fn(*xs)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(minigan.tensor(gy, device=device))
    return [y.numpy()] + [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_on_cuda_matches_cpu(cuda, name):  # noqa: F811
    fn, arrays = OPS[name]
    expected = _run(fn, arrays, "cpu")
    actual = _run(fn, arrays, "cuda")
    for what, a, e in zip(["output"] + [f"grad {i}" for i in range(len(arrays))], actual, expected):
        assert_close(a, e, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {what}")


def test_max_pool_indices_on_cuda(cuda):  # noqa: F811
    y, idx = F.max_pool2d(minigan.tensor(IMG, device="cuda"), 2, return_indices=True)
    _, ref = F.max_pool2d(minigan.tensor(IMG), 2, return_indices=True)
    assert idx.device == "cuda"
    np.testing.assert_array_equal(idx.numpy(), ref.numpy())


def test_grouped_conv_second_derivatives_on_cuda(cuda):  # noqa: F811
    def penalty(device):
        x = minigan.tensor(IMG, device=device, requires_grad=True)
        w = minigan.tensor(OPS["grouped_conv2d"][1][1], device=device, requires_grad=True)
        y = F.group_norm(F.conv2d(x, w, padding=1, groups=2), 3).sum()
        (gx,) = minigan.grad(y * y + F.sigmoid(F.conv2d(x, w, groups=2)).sum(), [x],
                             create_graph=True)  # fmt: skip
        p = (gx * gx).sum()
        p.backward()
        return p.numpy(), w.grad.numpy()

    for a, e in zip(penalty("cuda"), penalty("cpu")):
        assert_close(a, e, rtol=1e-4, atol=1e-5)


def _block() -> nn.Module:
    minigan.manual_seed(0)
    return nn.Sequential(
        nn.utils.spectral_norm(nn.Conv2d(4, 8, 3, padding=1, padding_mode="reflect", groups=2)),
        nn.GroupNorm(2, 8), nn.PixelShuffle(2), nn.Flatten(1, 2),
        nn.LayerNorm(10), nn.Flatten(), nn.Linear(24 * 10, 1),
    )  # fmt: skip


def test_layers_follow_the_device_and_train_without_reads(cuda):  # noqa: F811
    cpu_model, gpu_model = _block(), _block().to("cuda")
    x = IMG
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        if cuda is not None and device == "cuda":
            cuda.reset()
        loss = model(minigan.tensor(x, device=device)).sum()
        loss.backward()
        if cuda is not None and device == "cuda":
            assert cuda.device_to_host == 0, cuda.reads
    a = dict(gpu_model.named_parameters())
    for name, p in cpu_model.named_parameters():
        assert a[name].device == "cuda"
        assert_close(a[name].grad.numpy(), p.grad.numpy(), 1e-4, 1e-5, name)
    assert_close(gpu_model[0].weight_u.numpy(), cpu_model[0].weight_u.numpy(), 1e-5, 1e-6)


def test_multihead_attention_on_cuda(cuda):  # noqa: F811
    minigan.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q = _r(2, 3, 8)
    ref, w_ref = mha(minigan.tensor(q), minigan.tensor(q), minigan.tensor(q))
    mha.to("cuda")
    qd = minigan.tensor(q, device="cuda")
    out, w = mha(qd, qd, qd, key_padding_mask=np.zeros((2, 3), bool))
    assert out.device == "cuda"
    assert_close(out.numpy(), ref.numpy(), 1e-5, 1e-6)
    assert_close(w.numpy(), w_ref.numpy(), 1e-5, 1e-6)
