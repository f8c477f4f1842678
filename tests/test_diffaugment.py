"""minigan.diffaugment against the PyTorch reference (the paper's DiffAugment_pytorch.py
functions as benchmarks/dcgan_twin.py ports them, taking the same AugmentDraws instead of a
torch.Generator), float64 finite differences, and the documented draw order and ranges.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from parity import tol
from strategies import float_dtypes, seeds

import minigan
from minigan import diffaugment as da
from minigan.testing import fake_cuda, gradcheck, gradgradcheck

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dcgan_twin  # noqa: E402

# --------------------------------------------------------------------------- the reference
# DiffAugment's PyTorch functions (benchmarks/dcgan_recipes.py, after the paper's code), line
# for line, with each torch.rand / torch.randint replaced by the corresponding AugmentDraws
# field (float draws cast to x's dtype first). The port lives with the exact PyTorch twin of
# the DCGAN run (benchmarks/dcgan_twin.py), which replays minigan's draws with it.
ref_apply = dcgan_twin.augment


def _compare(x: np.ndarray, draws: da.AugmentDraws, rng: np.random.Generator) -> None:
    """Forward output and the gradient of a random projection, minigan vs the reference."""
    kw = tol(x.dtype)
    mx = minigan.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    my, ty = da.apply(mx, draws), ref_apply(tx, draws)
    assert my.shape == tuple(ty.shape) and my.dtype == x.dtype
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), **kw)
    g = rng.standard_normal(x.shape).astype(x.dtype)
    (my * minigan.tensor(g)).sum().backward()
    (ty * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), **kw)


policies = st.lists(st.sampled_from(da.POLICY_OPS), unique=True)


@given(
    n=st.integers(1, 4),
    c=st.integers(1, 3),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    policy=policies,
    seed=seeds,
    dtype=float_dtypes,
)
def test_parity_with_pytorch(n, c, h, w, policy, seed, dtype):
    rng = np.random.default_rng(seed)
    draws = da.draw(policy, (n, c, h, w), rng)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    _compare(x, draws, rng)


@given(n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), seed=seeds)
def test_parity_with_pytorch_for_any_integer_draws(n, h, w, seed):
    """Shifts and cutout centres outside the drawn ranges (hand-built draws) still follow the
    reference's clamped index arithmetic: whole images shifted out, squares off the edge."""
    rng = np.random.default_rng(seed)
    ints = lambda: rng.integers(-2 * max(h, w) - 2, 2 * max(h, w) + 3, size=n)  # noqa: E731
    draws = da.AugmentDraws(shift_y=ints(), shift_x=ints(), cutout_y=ints(), cutout_x=ints())
    _compare(rng.standard_normal((n, 2, h, w)), draws, rng)


def test_translation_closed_form(rng):
    """out[y, x] = in[y + ty, x + tx] inside the image, 0 outside (per sample)."""
    x = rng.standard_normal((3, 2, 7, 5))
    ty, tx = np.array([2, -1, 0]), np.array([-3, 0, 4])
    out = da.apply(minigan.tensor(x), da.AugmentDraws(shift_y=ty, shift_x=tx)).numpy()
    expected = np.zeros_like(x)
    for i in range(3):
        for y in range(7):
            for xx in range(5):
                sy, sx = y + ty[i], xx + tx[i]
                if 0 <= sy < 7 and 0 <= sx < 5:
                    expected[i, :, y, xx] = x[i, :, sy, sx]
    np.testing.assert_array_equal(out, expected)


@given(n=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9), seed=seeds)
def test_translation_gather_path_matches_slices(n, h, w, seed):
    """The GPU path (one gather) and the CPU path (rectangle copies) of the shift agree,
    shifts beyond the image included."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2, h, w))
    ty, tx = rng.integers(-h - 1, h + 2, size=n), rng.integers(-w - 1, w + 2, size=n)
    np.testing.assert_array_equal(
        da._shift_gather(x, ty, tx, np), da._shift_slices(x, ty, tx), err_msg=f"{ty} {tx}"
    )


def test_cutout_zeroes_the_clipped_square():
    x = minigan.ones(2, 1, 6, 8)
    # H=6: ch=3, centre row 0 -> rows -1..1 -> 0..1; W=8: cw=4, centre col 7 -> cols 5..8 -> 5..7
    draws = da.AugmentDraws(cutout_y=np.array([0, 3]), cutout_x=np.array([7, 2]))
    out = da.apply(x, draws).numpy()[:, 0]
    expected = np.ones((2, 6, 8))
    expected[0, 0:2, 5:8] = 0
    expected[1, 2:5, 0:4] = 0
    np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradcheck(policy, rng):
    draws = da.draw(policy, (2, 3, 5, 6), rng)
    x = minigan.tensor(rng.standard_normal((2, 3, 5, 6)), requires_grad=True)
    assert gradcheck(lambda t: da.apply(t, draws), [x])


def test_gradgradcheck(rng):
    """Second derivatives (R1-style penalties through the augmentation)."""
    draws = da.draw("color,translation,cutout", (2, 2, 4, 5), rng)
    x = minigan.tensor(rng.standard_normal((2, 2, 4, 5)), requires_grad=True)
    assert gradgradcheck(lambda t: da.apply(t, draws) ** 2, [x])


# --------------------------------------------------------------------------- draws


@pytest.mark.parametrize("h,w", [(32, 32), (31, 20), (30, 9), (2, 5), (1, 1)])
def test_draw_ranges_and_dtypes(h, w, rng):
    n = 4000
    d = da.draw("color,translation,cutout", (n, 3, h, w), rng)
    for name in ("brightness", "saturation", "contrast"):
        v = getattr(d, name)
        assert v.dtype == np.float32 and v.shape == (n,)
        assert v.min() >= 0 and v.max() < 1 and v.min() < 0.01 and v.max() > 0.99
    # the reference's ranges: randint(-s, s + 1) and randint(0, size + (1 - cut % 2))
    for name, size in (("shift_y", h), ("shift_x", w)):
        s = int(size * 0.125 + 0.5)
        v = getattr(d, name)
        assert v.dtype == np.int64 and v.shape == (n,)
        assert (v.min(), v.max()) == (-s, s), name
    for name, size in (("cutout_y", h), ("cutout_x", w)):
        cut = int(size * 0.5 + 0.5)
        v = getattr(d, name)
        assert v.dtype == np.int64 and v.shape == (n,)
        assert (v.min(), v.max()) == (0, size + (1 - cut % 2) - 1), name


@pytest.mark.parametrize("ratio", [0.0, 1 / 16, 0.3, 1.0])
def test_translation_ratio_sets_the_largest_shift(ratio, rng):
    """``translation=r``: shifts of at most int(size * r + 0.5), every one of them drawn."""
    n, h, w = 4000, 32, 20
    d = da.draw("translation", (n, 3, h, w), rng, translation=ratio)
    for name, size in (("shift_y", h), ("shift_x", w)):
        s = int(size * ratio + 0.5)
        v = getattr(d, name)
        assert sorted(set(v.tolist())) == list(range(-s, s + 1)), name
    x = minigan.randn(n, 3, h, w)
    shifted = da.diff_augment(x, "translation", np.random.default_rng(3), translation=1 / 16)
    again = da.apply(x, da.draw("translation", x.shape, np.random.default_rng(3), 1 / 16))
    np.testing.assert_array_equal(shifted.numpy(), again.numpy())


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan"), True, "0.1"])
def test_translation_ratio_outside_0_1_is_refused(ratio, rng):
    with pytest.raises(ValueError, match="translation is the largest shift"):
        da.draw("translation", (2, 3, 8, 8), rng, translation=ratio)


@given(policy=policies, n=st.integers(0, 6), seed=seeds)
def test_draw_order(policy, n, seed):
    """draw consumes the generator exactly as documented, only for the ops in the policy,
    whatever their order in the policy."""
    h, w = 12, 20
    rng = np.random.default_rng(seed)
    got = da.draw(list(reversed(policy)), (n, 3, h, w), rng)
    manual = np.random.default_rng(seed)
    expected = {}
    if "color" in policy:
        for name in ("brightness", "saturation", "contrast"):
            expected[name] = manual.random(n, dtype=np.float32)
    if "translation" in policy:
        expected["shift_y"] = manual.integers(-2, 3, size=n)
        expected["shift_x"] = manual.integers(-3, 4, size=n)
    if "cutout" in policy:
        expected["cutout_y"] = manual.integers(0, h + 1, size=n)  # ch = 6: even
        expected["cutout_x"] = manual.integers(0, w + 1, size=n)  # cw = 10: even
    for name in ("brightness", "saturation", "contrast", "shift_y", "shift_x"):
        if name in expected:
            np.testing.assert_array_equal(getattr(got, name), expected[name], err_msg=name)
        else:
            assert getattr(got, name) is None, name
    assert rng.random() == manual.random()  # both generators end in the same state
    assert got.policy == da.parse_policy(policy)


def test_draws_hash_and_compare_by_identity(rng):
    a = da.draw("color,cutout", (3, 1, 4, 4), rng)
    assert a == a and a != da.draw("color,cutout", (3, 1, 4, 4), rng)
    assert len({a, a}) == 1


def test_same_seed_same_augmentation(rng):
    x = minigan.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    a = da.diff_augment(x, "color,translation,cutout", np.random.default_rng(7))
    b = da.diff_augment(x, "color,translation,cutout", np.random.default_rng(7))
    c = da.diff_augment(x, "color,translation,cutout", np.random.default_rng(8))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


# --------------------------------------------------------------------------- policy, errors


def test_parse_policy():
    assert da.parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert da.parse_policy("cutout, color") == ("color", "cutout")
    assert da.parse_policy(["translation", "color", "color"]) == ("color", "translation")
    assert da.parse_policy("") == ()
    assert da.parse_policy([]) == ()


@pytest.mark.parametrize("policy", ["color,flip", ["color", "flip"], "colour"])
def test_parse_policy_unknown_op(policy):
    bad = "flip" if "flip" in str(policy) else "colour"
    with pytest.raises(ValueError, match=f"unknown op '{bad}'.*color, translation, cutout"):
        da.parse_policy(policy)
    with pytest.raises(ValueError, match=bad):
        da.diff_augment(minigan.zeros(1, 1, 4, 4), policy, np.random.default_rng(0))


@pytest.mark.parametrize("policy", ["", [], " , "])
def test_empty_policy_is_identity(policy):
    x = minigan.randn(2, 3, 4, 4, requires_grad=True)
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert da.diff_augment(x, policy, rng) is x
    assert rng.bit_generator.state == state


def test_bad_draws_and_shapes():
    with pytest.raises(ValueError, match="missing shift_x"):
        da.AugmentDraws(shift_y=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="one entry per sample.*shift_y 2.*cutout_y 3"):
        da.AugmentDraws(
            shift_y=np.zeros(2, np.int64),
            shift_x=np.zeros(2, np.int64),
            cutout_y=np.zeros(3, np.int64),
            cutout_x=np.zeros(3, np.int64),
        )
    with pytest.raises(ValueError, match="1-D NumPy array"):
        da.AugmentDraws(cutout_y=[1], cutout_x=[2])  # type: ignore[arg-type]
    draws = da.draw("translation", (2, 3, 8, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"for 2 samples, the images \(3, 3, 8, 8\) hold 3"):
        da.apply(minigan.zeros(3, 3, 8, 8), draws)
    with pytest.raises(ValueError, match=r"NCHW batch, got shape \(3, 8, 8\)"):
        da.diff_augment(minigan.zeros(3, 8, 8), "cutout", np.random.default_rng(0))


# --------------------------------------------------------------------------- the device path


def test_cuda_path_matches_cpu_without_reads(rng):
    """On a (fake) GPU the index arrays are built on the device: same values and gradients
    as on the CPU, and nothing is read back from the device."""
    x = rng.standard_normal((3, 3, 9, 7)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    draws = da.draw("color,translation,cutout", x.shape, rng)
    cpu_x = minigan.tensor(x, requires_grad=True)
    cpu_y = da.apply(cpu_x, draws)
    (cpu_y * minigan.tensor(g)).sum().backward()
    with fake_cuda() as transfers:
        dev_x = minigan.tensor(x, device="cuda", requires_grad=True)
        dev_g = minigan.tensor(g, device="cuda")
        transfers.reset()
        dev_y = da.apply(dev_x, draws)
        (dev_y * dev_g).sum().backward()
        assert dev_y.device == "cuda" and dev_x.grad.device == "cuda"
        assert transfers.device_to_host == 0, transfers.reads
        y, gx = dev_y.numpy(), dev_x.grad.numpy()
    np.testing.assert_allclose(y, cpu_y.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx, cpu_x.grad.numpy(), rtol=1e-6, atol=1e-6)
