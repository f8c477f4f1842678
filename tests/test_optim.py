"""minigan.optim against torch.optim.

Trajectory tests feed both optimizers the same gradient function, evaluated in NumPy float32
on each side's current parameters, so any divergence comes from the update rule alone:
parameters (of order 1) must agree to rtol=1e-6, atol=1e-6 in float32 at every one of 60
steps. They are not bit-identical because PyTorch's CPU kernels fuse ``p + alpha * g`` into
one FMA (one rounding) where NumPy rounds twice: a 1-ulp difference per update (the largest
deviation seen over 60 steps is 3.6e-7). The MLP
test lets each framework differentiate its own network (rtol=1e-5, atol=1e-6). Resuming from
a state dict must be bit-exact.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import minigan
from minigan import nn, optim
from minigan.serialization import load, save

STEPS = 60
TRAJ = dict(rtol=1e-6, atol=1e-6)

SHAPES = [(5, 4), (4,), (3, 2, 2)]


def _spd(n: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a @ a.T / n + np.eye(n) * 0.5).astype(np.float32)


_HESSIANS = [_spd(int(np.prod(s)), seed=i) for i, s in enumerate(SHAPES)]
_TARGETS = [
    np.random.default_rng(10 + i).standard_normal(np.prod(s)).astype(np.float32)
    for i, s in enumerate(SHAPES)
]


def quadratic_grad(i: int, p: np.ndarray) -> np.ndarray:
    """Gradient of 0.5·(p - t)ᵀ H (p - t) for parameter ``i``, in float32."""
    return (_HESSIANS[i] @ (p.reshape(-1) - _TARGETS[i])).reshape(p.shape)


def initial_params() -> list[np.ndarray]:
    return [
        np.random.default_rng(20 + i).standard_normal(s).astype(np.float32)
        for i, s in enumerate(SHAPES)
    ]


def groups(params: list, group_lrs: list[float] | None) -> list:
    if group_lrs is None:
        return params
    return [{"params": params[:1], "lr": group_lrs[0]}, {"params": params[1:], "lr": group_lrs[1]}]


def torch_trajectory(name, kwargs, steps=STEPS, group_lrs=None, start=None):
    params = [torch.tensor(p, requires_grad=True) for p in start or initial_params()]
    opt = getattr(torch.optim, name)(groups(params, group_lrs), foreach=False, **kwargs)
    history = []
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(quadratic_grad(i, p.detach().numpy()))
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history, opt, params


def minigan_trajectory(
    name, kwargs, steps=STEPS, group_lrs=None, start=None, opt=None, params=None
):
    if params is None:
        params = [nn.Parameter(p.copy()) for p in start or initial_params()]
    if opt is None:
        opt = getattr(optim, name)(groups(params, group_lrs), **kwargs)
    history = []
    for _ in range(steps):
        for i, p in enumerate(params):
            p.grad = minigan.Tensor(quadratic_grad(i, p.data))
        opt.step()
        history.append([p.data.copy() for p in params])
    return history, opt, params


CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.02, momentum=0.9, maximize=False)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.01, amsgrad=True)),
]


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_trajectory_matches_torch(name, kwargs):
    theirs, _, _ = torch_trajectory(name, kwargs)
    ours, _, params = minigan_trajectory(name, kwargs)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for p_ours, p_theirs in zip(a, b, strict=True):
            np.testing.assert_allclose(p_ours, p_theirs, **TRAJ, err_msg=f"step {step}")
    # the problem is not trivial: parameters moved a lot
    assert np.abs(ours[-1][0] - initial_params()[0]).max() > 0.1
    assert all(p.dtype == np.float32 for p in params)


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(momentum=0.9)), ("Adam", {})])
def test_param_groups_match_torch(name, kwargs):
    theirs, _, _ = torch_trajectory(name, dict(lr=0.01, **kwargs), group_lrs=[0.03, 0.005])
    ours, opt, _ = minigan_trajectory(name, dict(lr=0.01, **kwargs), group_lrs=[0.03, 0.005])
    assert [g["lr"] for g in opt.param_groups] == [0.03, 0.005]
    for a, b in zip(ours[-1], theirs[-1], strict=True):
        np.testing.assert_allclose(a, b, **TRAJ)


def test_mlp_training_matches_torch():
    torch.manual_seed(0)
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    m_model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    m_model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    t_opt = torch.optim.Adam(t_model.parameters(), lr=0.01, foreach=False)
    m_opt = optim.Adam(m_model.parameters(), lr=0.01)
    for _ in range(STEPS):
        t_opt.zero_grad()
        ((t_model(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
        t_opt.step()
        m_opt.zero_grad()
        ((m_model(minigan.tensor(x)) - minigan.tensor(y)) ** 2).mean().backward()
        m_opt.step()
    for key, value in t_model.state_dict().items():
        np.testing.assert_allclose(
            m_model.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key
        )


def test_float32_stays_float32_even_with_numpy_float64_hyperparameters():
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    for opt in (
        optim.SGD([p], lr=np.float64(0.1), momentum=np.float64(0.9), weight_decay=0.1),
        optim.Adam([p], lr=np.float64(0.1), betas=(np.float64(0.9), 0.99)),
    ):
        for _ in range(2):
            p.grad = minigan.Tensor(np.ones(3, dtype=np.float32))
            opt.step()
        assert p.dtype == np.float32
        for state in opt.state.values():
            assert all(v.dtype == np.float32 for v in state.values() if hasattr(v, "dtype"))


def test_params_without_grad_are_skipped_and_zero_grad():
    a, b = nn.Parameter(np.ones(2, dtype=np.float32)), nn.Parameter(np.ones(2, dtype=np.float32))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = minigan.Tensor(np.ones(2, dtype=np.float32))
    opt.step()
    np.testing.assert_array_equal(b.data, [1, 1])
    assert b not in opt.state and opt.state[a]["step"] == 1
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, [0, 0])
    opt.zero_grad()
    assert a.grad is None


def test_optimizer_does_not_record_a_graph():
    p = nn.Parameter(np.ones(2, dtype=np.float32))
    p.grad = minigan.Tensor(np.ones(2, dtype=np.float32))
    optim.SGD([p], lr=0.1, momentum=0.9).step()
    assert p.is_leaf and p.creator is None and p.requires_grad


def test_constructor_errors():
    p = nn.Parameter(np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)


# --------------------------------------------------------------------------- state dicts


def test_state_dict_layout_matches_torch():
    kwargs = dict(lr=0.01, amsgrad=True)
    _, t_opt, _ = torch_trajectory("Adam", kwargs, steps=3, group_lrs=[0.02, 0.01])
    _, m_opt, _ = minigan_trajectory("Adam", kwargs, steps=3, group_lrs=[0.02, 0.01])
    ours, theirs = m_opt.state_dict(), t_opt.state_dict()
    assert list(ours["state"]) == list(theirs["state"]) == [0, 1, 2]
    for index in theirs["state"]:
        assert set(ours["state"][index]) == set(theirs["state"][index])
        assert ours["state"][index]["step"] == int(theirs["state"][index]["step"])
    for g_ours, g_theirs in zip(ours["param_groups"], theirs["param_groups"], strict=True):
        assert g_ours["params"] == g_theirs["params"]
        assert set(g_ours) <= set(g_theirs)
        for key in ("lr", "betas", "eps", "weight_decay", "amsgrad"):
            assert g_ours[key] == g_theirs[key]


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
        ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ],
)
def test_resume_from_state_dict_is_bit_exact(name, kwargs, tmp_path):
    uninterrupted, _, _ = minigan_trajectory(name, kwargs, steps=STEPS)

    first, opt, params = minigan_trajectory(name, kwargs, steps=STEPS // 2)
    in_memory = copy.deepcopy(opt.state_dict())
    weights = [p.data.copy() for p in params]
    save(
        {"params": [p.data for p in params], "optimizer": opt.state_dict(), "step": STEPS // 2},
        tmp_path / "ckpt.safetensors",
    )
    # let the original optimizer run on: the checkpoints must not change with it
    minigan_trajectory(name, kwargs, steps=5, opt=opt, params=params)

    loaded = load(tmp_path / "ckpt.safetensors")
    assert loaded["step"] == STEPS // 2
    for state_dict, start in ((in_memory, weights), (loaded["optimizer"], loaded["params"])):
        resumed_params = [nn.Parameter(w.copy()) for w in start]
        resumed_opt = getattr(optim, name)(resumed_params, lr=123.0)  # hyper-params come back
        resumed_opt.load_state_dict(state_dict)
        assert resumed_opt.param_groups[0]["lr"] == kwargs["lr"]
        second, _, _ = minigan_trajectory(
            name, kwargs, steps=STEPS - STEPS // 2, opt=resumed_opt, params=resumed_params
        )
        for a, b in zip(uninterrupted, first + second, strict=True):
            for p_a, p_b in zip(a, b, strict=True):
                np.testing.assert_array_equal(p_a, p_b)


def test_load_torch_optimizer_state_and_continue():
    kwargs = dict(lr=0.01, amsgrad=True)
    _, t_opt, t_params = torch_trajectory("Adam", kwargs, steps=20)
    start = [p.detach().numpy().copy() for p in t_params]
    m_params = [nn.Parameter(p.copy()) for p in start]
    m_opt = optim.Adam(m_params, lr=0.5)
    m_opt.load_state_dict(t_opt.state_dict())  # torch tensors, converted on load
    assert m_opt.state[m_params[0]]["step"] == 20
    theirs, _, _ = torch_trajectory("Adam", kwargs, steps=20, start=start)  # fresh torch run...
    # ...is not a continuation; continue the real torch optimizer instead
    t_history = []
    for _ in range(20):
        for i, p in enumerate(t_params):
            p.grad = torch.from_numpy(quadratic_grad(i, p.detach().numpy()))
        t_opt.step()
        t_history.append([p.detach().numpy().copy() for p in t_params])
    ours, _, _ = minigan_trajectory("Adam", kwargs, steps=20, opt=m_opt, params=m_params)
    for a, b in zip(ours, t_history, strict=True):
        for p_a, p_b in zip(a, b, strict=True):
            np.testing.assert_allclose(p_a, p_b, **TRAJ)
    assert not np.allclose(theirs[-1][0], t_history[-1][0])  # the state did matter


def test_load_state_dict_errors():
    p, q = nn.Parameter(np.ones(2, dtype=np.float32)), nn.Parameter(np.ones(2, dtype=np.float32))
    sd = optim.SGD([p, q], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="1 parameters"):
        optim.SGD([p], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="3 parameter groups"):
        optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(
            {"state": {}, "param_groups": sd["param_groups"] * 2 + sd["param_groups"]}
        )
