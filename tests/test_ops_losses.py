"""Losses of issue 17 against PyTorch: nll_loss, binary_cross_entropy (on probabilities),
cross_entropy with class weights, ignore_index and label_smoothing, smooth_l1_loss, kl_div.
Forward and first derivatives in float32 (hypothesis varying shapes and arguments), second
derivatives in float64 against torch's double backward, and gradcheck / gradgradcheck.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from parity import double_backward_parity, parity
from strategies import seeds, shapes

import minigan
import minigan.functional as F
from minigan.testing import gradcheck, gradgradcheck

REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


@st.composite
def classification(draw, allow_unbatched: bool = True):
    """logits (N, C, ...) or (C,), class-index targets with some ``ignore_index`` entries,
    optional class weights."""
    c = draw(st.integers(1, 4))
    unbatched = allow_unbatched and draw(st.booleans())
    extra = () if unbatched else draw(shapes(0, 2, max_side=3))
    n = draw(st.integers(1, 3))
    shape = (c,) if unbatched else (n, c, *extra)
    target_shape = () if unbatched else (n, *extra)
    rng = np.random.default_rng(draw(seeds))
    logits = (rng.standard_normal(shape) * 2).astype(np.float32)
    ignore_index = draw(st.sampled_from([-100, 0, 1]))
    target = rng.integers(0, c, target_shape)
    if draw(st.booleans()) and target.size > 1:  # a few ignored entries (never all of them)
        target.reshape(-1)[0] = ignore_index
        if (target == ignore_index).all():
            target.reshape(-1)[-1] = (ignore_index + 1) % c if ignore_index >= 0 else 0
    weight = rng.uniform(0.2, 2.0, c).astype(np.float32) if draw(st.booleans()) else None
    return logits, target, weight, ignore_index


def _w(weight, lib):
    return None if weight is None else lib.tensor(weight)


@settings(max_examples=25)
@given(case=classification(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.1, 0.4]))
def test_cross_entropy_class_indices_matches_torch(case, reduction, smoothing):
    logits, target, weight, ignore = case
    kw = dict(ignore_index=ignore, reduction=reduction, label_smoothing=smoothing)
    parity(
        lambda x, t: F.cross_entropy(x, t, _w(weight, minigan), **kw),
        lambda x, t: TF.cross_entropy(x, t, _w(weight, torch), **kw),
        [logits, target],
        rtol=1e-5,
        atol=1e-6,
    )


@settings(max_examples=25)
@given(case=classification(), reduction=REDUCTIONS)
def test_nll_loss_matches_torch(case, reduction):
    logits, target, weight, ignore = case
    logp = torch.log_softmax(torch.tensor(logits), 0 if logits.ndim == 1 else 1).numpy()
    kw = dict(ignore_index=ignore, reduction=reduction)
    parity(
        lambda x, t: F.nll_loss(x, t, _w(weight, minigan), **kw),
        lambda x, t: TF.nll_loss(x, t, _w(weight, torch), **kw),
        [logp, target],
        rtol=1e-5,
        atol=1e-6,
    )


@settings(max_examples=25)
@given(case=classification(allow_unbatched=False), reduction=REDUCTIONS,
       smoothing=st.sampled_from([0.0, 0.2]))  # fmt: skip
def test_cross_entropy_probability_targets_match_torch(case, reduction, smoothing):
    logits, _, weight, _ = case
    probs = torch.softmax(torch.randn(logits.shape), 1).numpy()
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    parity(
        lambda x, p: F.cross_entropy(x, p, _w(weight, minigan), **kw),
        lambda x, p: TF.cross_entropy(x, p, _w(weight, torch), **kw),
        [logits, probs],
        rtol=1e-5,
        atol=1e-6,
    )


def test_cross_entropy_and_nll_second_derivatives(rng):
    logits = rng.standard_normal((4, 3, 2))
    target = np.array([[0, 2], [1, -100], [2, 2], [-100, 0]])
    weight = np.array([0.5, 1.0, 2.0])
    double_backward_parity(
        lambda x: F.cross_entropy(x, target, minigan.tensor(weight), label_smoothing=0.2),
        lambda x: TF.cross_entropy(
            x, torch.tensor(target), torch.tensor(weight), label_smoothing=0.2
        ),  # fmt: skip
        [logits],
    )
    x = minigan.tensor(logits, requires_grad=True)
    assert gradgradcheck(lambda t: F.cross_entropy(t, target, label_smoothing=0.1), [x])
    assert gradcheck(lambda t: F.nll_loss(F.log_softmax(t, 1), target, reduction="sum"), [x])


def test_class_index_errors_name_the_loss():
    logits = minigan.zeros(2, 3)
    with pytest.raises(ValueError, match=r"cross_entropy: class indices must be in \[0, 3\)"):
        F.cross_entropy(logits, minigan.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"nll_loss: class-index target has shape \(3,\)"):
        F.nll_loss(logits, minigan.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"nll_loss: weight has shape \(2,\), expected \(3,\)"):
        F.nll_loss(logits, minigan.tensor([0, 1]), weight=minigan.ones(2))
    assert F.cross_entropy(logits, minigan.tensor([3, 3]), ignore_index=3).isnan().item()  # 0 / 0


@settings(max_examples=25)
@given(shape=shapes(0, 3), seed=seeds, reduction=REDUCTIONS, weighted=st.booleans())
def test_binary_cross_entropy_matches_torch(shape, seed, reduction, weighted):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.01, 0.99, shape).astype(np.float32)
    t = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, shape).astype(np.float32) if weighted else None
    parity(
        lambda a, b: F.binary_cross_entropy(a, b, _w(w, minigan), reduction),
        lambda a, b: TF.binary_cross_entropy(a, b, _w(w, torch), reduction=reduction),
        [x, t],
        rtol=1e-5,
        atol=1e-5,
    )


def test_binary_cross_entropy_clamps_the_log_at_minus_100(rng):
    x = np.array([0.0, 1.0, 1e-45, 0.5, 1.0], np.float32)
    t = np.array([1.0, 0.0, 1.0, 0.3, 1.0], np.float32)
    parity(
        lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
        lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"),
        [x, t],
        grad=False,
    )
    xg = np.array([0.2, 0.7, 0.999], np.float32)
    parity(F.binary_cross_entropy, TF.binary_cross_entropy, [xg, t[:3]], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input"):
        F.binary_cross_entropy(minigan.tensor([1.5]), minigan.tensor([1.0]))


def test_binary_cross_entropy_second_derivatives(rng):
    x = rng.uniform(0.05, 0.95, (3, 4))
    t = rng.random((3, 4))
    double_backward_parity(F.binary_cross_entropy, TF.binary_cross_entropy, [x, t], rtol=1e-8)
    ts = [minigan.tensor(v, requires_grad=True) for v in (x, t)]
    assert gradcheck(F.binary_cross_entropy, ts) and gradgradcheck(F.binary_cross_entropy, ts)


@settings(max_examples=25)
@given(shape=shapes(0, 3), seed=seeds, reduction=REDUCTIONS,
       beta=st.sampled_from([0.0, 0.5, 1.0, 2.5]))  # fmt: skip
def test_smooth_l1_loss_matches_torch(shape, seed, reduction, beta):
    rng = np.random.default_rng(seed)
    x, t = (rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(2))
    parity(
        lambda a, b: F.smooth_l1_loss(a, b, reduction, beta),
        lambda a, b: TF.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
        [x, t],
        rtol=1e-5,
        atol=1e-6,
    )


def test_smooth_l1_loss_second_derivatives(rng):
    x, t = rng.standard_normal((2, 3, 4)) * 2
    double_backward_parity(lambda a, b: F.smooth_l1_loss(a, b, beta=1.5),
                           lambda a, b: TF.smooth_l1_loss(a, b, beta=1.5), [x, t])  # fmt: skip
    ts = [minigan.tensor(v, requires_grad=True) for v in (x, t)]
    assert gradcheck(F.smooth_l1_loss, ts) and gradgradcheck(F.smooth_l1_loss, ts)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's own warning
@settings(max_examples=25)
@given(shape=shapes(1, 3), seed=seeds, log_target=st.booleans(),
       reduction=st.sampled_from(["mean", "sum", "none", "batchmean"]))  # fmt: skip
def test_kl_div_matches_torch(shape, seed, log_target, reduction):
    rng = np.random.default_rng(seed)
    logp = np.log(rng.uniform(0.05, 1.0, shape)).astype(np.float32)
    target = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    target[target < 0.2] = 0.0  # zero targets contribute nothing
    if log_target:
        target = np.log(rng.uniform(0.05, 1.0, shape)).astype(np.float32)
    kw = dict(reduction=reduction, log_target=log_target)
    # (torch's target gradient is nan where target == 0: compare the input's gradient only)
    parity(lambda a, b: F.kl_div(a, b, **kw), lambda a, b: TF.kl_div(a, b, **kw), [logp, target],
           rtol=1e-5, atol=1e-6, grad=[True, log_target])  # fmt: skip


def test_kl_div_second_derivatives(rng):
    logp, target = np.log(rng.uniform(0.1, 1.0, (2, 3, 3)))
    target = np.exp(target)
    double_backward_parity(lambda a, b: F.kl_div(a, b, reduction="batchmean") ** 2,
                           lambda a, b: TF.kl_div(a, b, reduction="batchmean") ** 2,
                           [logp, target])  # fmt: skip
    ts = [minigan.tensor(v, requires_grad=True) for v in (logp, target)]
    assert gradcheck(F.kl_div, ts) and gradgradcheck(F.kl_div, ts)
