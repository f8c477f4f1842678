"""AdamW, RMSprop and optim.lr_scheduler against torch.optim.

Optimizer trajectories: both sides get the same gradient function (a float32 quadratic,
evaluated on each side's current parameters), so only the update rule can make them differ;
they agree to rtol=atol=1e-6 over 60 steps (not bit-identical: PyTorch fuses some products
into one rounding, see test_optim.py). Schedulers are plain Python float arithmetic with
PyTorch's formulas, compared to 1e-12 at every epoch, recursive and closed-form. Resuming
from state dicts must reproduce the uninterrupted run exactly.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan
from minigan import nn, optim
from minigan.optim import lr_scheduler as sched

SHAPES = [(4, 3), (5,)]
STEPS = 60


def _hessian(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a @ a.T / n + np.eye(n) * 0.5).astype(np.float32)


HESSIANS = [_hessian(int(np.prod(s)), i) for i, s in enumerate(SHAPES)]


def grad_of(i: int, p: np.ndarray) -> np.ndarray:
    return (HESSIANS[i] @ (p.reshape(-1) - 0.3)).reshape(p.shape).astype(np.float32)


def start() -> list[np.ndarray]:
    return [np.random.default_rng(9 + i).standard_normal(s).astype(np.float32)
            for i, s in enumerate(SHAPES)]  # fmt: skip


def run_torch(name, kwargs, steps=STEPS):
    params = [torch.tensor(p, requires_grad=True) for p in start()]
    opt = getattr(torch.optim, name)(
        [{"params": params[:1]}, {"params": params[1:], "lr": kwargs.get("lr", 1e-2) / 2}],
        foreach=False,
        **kwargs,
    )
    history = []
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(grad_of(i, p.detach().numpy()))
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history, opt


def run_minigan(name, kwargs, steps=STEPS, params=None, opt=None):
    if params is None:
        params = [nn.Parameter(p) for p in start()]
        groups = [{"params": params[:1]}, {"params": params[1:], "lr": kwargs.get("lr", 1e-2) / 2}]
        opt = getattr(optim, name)(groups, **kwargs)
    history = []
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = minigan.tensor(grad_of(i, p.numpy()))
        opt.step()
        history.append([p.numpy().copy() for p in params])
    return history, opt, params


CONFIGS = [
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.3, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True, "eps": 1e-6}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "momentum": 0.8}),
    ("RMSprop", {"lr": 0.003, "centered": True, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.002, "centered": True, "momentum": 0.5, "eps": 1e-4, "maximize": True}),
]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_optimizer_trajectory_matches_torch(name, kwargs):
    theirs, t_opt = run_torch(name, kwargs)
    ours, m_opt, _ = run_minigan(name, kwargs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for p_ours, p_theirs in zip(a, b):
            np.testing.assert_allclose(p_ours, p_theirs, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name} {kwargs} step {step}")  # fmt: skip
    theirs_state = t_opt.state_dict()["state"]
    for index, state in m_opt.state_dict()["state"].items():
        assert set(state) == set(theirs_state[index])  # PyTorch's state keys
        assert state["step"] == int(theirs_state[index]["step"])


@pytest.mark.parametrize("name, kwargs", CONFIGS[1:4] + CONFIGS[5:], ids=str)
def test_resume_from_state_dict_is_exact(name, kwargs, tmp_path):
    uninterrupted, _, _ = run_minigan(name, kwargs, steps=20)
    _, opt, params = run_minigan(name, kwargs, steps=10)
    minigan.save({"opt": opt.state_dict(), "params": [p.data for p in params]},
                 tmp_path / "ckpt.safetensors")  # fmt: skip
    loaded = minigan.load(tmp_path / "ckpt.safetensors")
    resumed = [nn.Parameter(w.copy()) for w in loaded["params"]]
    groups = [{"params": resumed[:1]}, {"params": resumed[1:]}]
    fresh = getattr(optim, name)(groups, **kwargs)
    fresh.load_state_dict(loaded["opt"])
    rest, _, _ = run_minigan(name, kwargs, steps=10, params=resumed, opt=fresh)
    for a, b in zip(rest, uninterrupted[10:]):
        for p, q in zip(a, b):
            np.testing.assert_array_equal(p, q)


def test_rmsprop_continues_from_a_torch_state_dict():
    kwargs = {"lr": 0.01, "momentum": 0.7, "centered": True}
    history, t_opt = run_torch("RMSprop", kwargs, steps=5)
    params = [nn.Parameter(p) for p in history[-1]]
    opt = optim.RMSprop([{"params": params[:1]}, {"params": params[1:]}], **kwargs)
    state = t_opt.state_dict()
    opt.load_state_dict({
        "state": {k: {n: v.numpy() for n, v in s.items()} for k, s in state["state"].items()},
        "param_groups": state["param_groups"],
    })  # fmt: skip
    ours, _, _ = run_minigan("RMSprop", kwargs, steps=5, params=params, opt=opt)
    for _ in range(5):
        for i, p in enumerate(t_opt.param_groups[0]["params"] + t_opt.param_groups[1]["params"]):
            p.grad = torch.from_numpy(grad_of(i, p.detach().numpy()))
        t_opt.step()
    final = [p.detach().numpy() for g in t_opt.param_groups for p in g["params"]]
    for p, q in zip(ours[-1], final):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-6)


def test_optimizer_arguments_are_checked():
    p = [nn.Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError, match="invalid alpha value: -0.5"):
        optim.RMSprop(p, alpha=-0.5)
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.AdamW(p, lr=-1.0)
    assert optim.AdamW(p).defaults["weight_decay"] == 0.01


# --------------------------------------------------------------------------- schedulers

SCHEDULES = [
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 2, "gamma": 0.5}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 7}),
    ("CosineAnnealingLR", {"T_max": 4, "eta_min": 0.01}),  # past T_max: back up, as PyTorch
    ("LinearLR", {}),
    ("LinearLR", {"start_factor": 0.5, "end_factor": 0.1, "total_iters": 4}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 0.95**epoch + (epoch % 3) * 0.1}),
]
SCHEDULE_IDS = [f"{n}-{sorted(k)}" for n, k in SCHEDULES]


def _pair(name, kwargs, lrs=(0.1, 0.03)):
    """The same schedule on a minigan and a torch optimizer with two param groups."""
    m_opt = optim.SGD([{"params": [nn.Parameter(np.zeros(1, np.float32))], "lr": lr}
                       for lr in lrs])  # fmt: skip
    t_opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                             for lr in lrs])  # fmt: skip
    return (m_opt, getattr(sched, name)(m_opt, **kwargs),
            t_opt, getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs))  # fmt: skip


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=SCHEDULE_IDS)
def test_schedule_matches_torch(name, kwargs):
    m_opt, m_sched, t_opt, t_sched = _pair(name, kwargs)
    for epoch in range(20):
        assert m_sched.get_last_lr() == pytest.approx(t_sched.get_last_lr(), rel=1e-12), epoch
        assert _lrs(m_opt) == pytest.approx(_lrs(t_opt), rel=1e-12), epoch
        m_opt.step()
        t_opt.step()
        m_sched.step()
        t_sched.step()
    assert m_sched.last_epoch == t_sched.last_epoch == 20


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=SCHEDULE_IDS)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_step_with_epoch_uses_the_closed_form_as_torch(name, kwargs):
    m_opt, m_sched, t_opt, t_sched = _pair(name, kwargs)
    for epoch in (3, 1, 8, 8, 2, 15):
        m_sched.step(epoch)
        t_sched.step(epoch)
        assert _lrs(m_opt) == pytest.approx(_lrs(t_opt), rel=1e-12), epoch


def test_step_with_epoch_warns():
    _, m_sched, _, _ = _pair("StepLR", {"step_size": 2})
    with pytest.warns(UserWarning, match="deprecated"):
        m_sched.step(4)


def test_chained_schedules_match_torch():
    """Two schedulers on one optimizer compose through group["lr"] (the recursive form)."""
    m_opt, _, t_opt, _ = _pair("LinearLR", {"start_factor": 0.2, "total_iters": 3})
    m_exp = sched.ExponentialLR(m_opt, gamma=0.8)
    t_exp = torch.optim.lr_scheduler.ExponentialLR(t_opt, gamma=0.8)
    m_linear = sched.LinearLR(m_opt, start_factor=0.2, total_iters=3)
    t_linear = torch.optim.lr_scheduler.LinearLR(t_opt, start_factor=0.2, total_iters=3)
    for _ in range(10):
        assert _lrs(m_opt) == pytest.approx(_lrs(t_opt), rel=1e-12)
        m_opt.step()
        t_opt.step()
        for s in (m_exp, m_linear, t_exp, t_linear):
            s.step()


@settings(max_examples=15, deadline=None)
@given(case=st.sampled_from(range(len(SCHEDULES))), split=st.integers(0, 12))
def test_scheduler_resume_from_state_dicts_is_exact(case, split):
    name, kwargs = SCHEDULES[case]
    m_opt, m_sched, _, _ = _pair(name, kwargs)
    expected = []
    for _ in range(split + 8):
        expected.append(_lrs(m_opt))
        m_opt.step()
        m_sched.step()
    m_opt, m_sched, _, _ = _pair(name, kwargs)
    for _ in range(split):
        m_opt.step()
        m_sched.step()
    saved = copy.deepcopy({"opt": m_opt.state_dict(), "sched": m_sched.state_dict()})
    assert "optimizer" not in saved["sched"]
    # a new run: optimizer and scheduler built as at the start, then both states loaded
    fresh_opt, fresh_sched, _, _ = _pair(name, kwargs)
    fresh_opt.load_state_dict(saved["opt"])
    fresh_sched.load_state_dict(saved["sched"])
    for step in range(8):
        assert _lrs(fresh_opt) == expected[split + step]
        fresh_opt.step()
        fresh_sched.step()


def test_scheduler_state_dict_layout_and_lambda_objects(tmp_path):
    m_opt, m_sched, t_opt, t_sched = _pair("CosineAnnealingLR", {"T_max": 5})
    ours, theirs = m_sched.state_dict(), t_sched.state_dict()
    for key in ("T_max", "eta_min", "base_lrs", "last_epoch", "_step_count", "_last_lr"):
        assert ours[key] == theirs[key], key
    minigan.save(ours, tmp_path / "sched.safetensors")  # checkpoints hold it as it is
    assert minigan.load(tmp_path / "sched.safetensors") == ours

    class Warmup:  # a callable object: its state travels in the state dict
        def __init__(self) -> None:
            self.scale = 1.0

        def __call__(self, epoch: int) -> float:
            return self.scale * min(1.0, (epoch + 1) / 4)

    opt = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0)
    schedule = sched.LambdaLR(opt, Warmup())
    schedule.lr_lambdas[0].scale = 0.5
    state = schedule.state_dict()
    assert state["lr_lambdas"] == [{"scale": 0.5}]
    other = sched.LambdaLR(optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0), Warmup())
    other.load_state_dict(state)
    assert other.lr_lambdas[0].scale == 0.5
    plain = sched.LambdaLR(optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0),
                           lambda epoch: 1.0)  # fmt: skip
    assert plain.state_dict()["lr_lambdas"] == [None]  # plain functions are not saved


def test_scheduler_errors():
    opt = optim.SGD([nn.Parameter(np.zeros(1, np.float32))], lr=1.0)
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(opt, step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sched.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="LinearLR: start_factor"):
        sched.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="LambdaLR: expected 1 lr_lambdas"):
        sched.LambdaLR(opt, [abs, abs])


def test_import_paths():
    import minigan.optim.lr_scheduler as by_path
    from minigan.optim.lr_scheduler import CosineAnnealingLR

    assert by_path is sched and CosineAnnealingLR is sched.CosineAnnealingLR
    assert minigan.optim.lr_scheduler is sched
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning in the ordinary order of calls
        _, s, _, _ = _pair("StepLR", {"step_size": 1})
        s.step()
