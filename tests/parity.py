"""Helpers that compare minigan with PyTorch (CPU), the reference for semantics.

``parity(mg_fn, torch_fn, arrays)`` runs both on the same NumPy inputs, compares the
outputs, back-propagates the same random output gradient through both and compares the
input gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

import minigan

#: (rtol, atol) per dtype for ops with a handful of terms per output element
TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


def tol(dtype: Any, terms: int = 1) -> dict:
    """``rtol``/``atol`` for ``dtype``. With ``terms`` > 1 (products summed per output, as
    in convolutions) ``atol`` becomes ``10·atol·sqrt(terms)``: 1e-4·sqrt(K) in float32."""
    rtol, atol = TOL[np.dtype(dtype)]
    if terms > 1:
        atol = 10 * atol * float(np.sqrt(terms))
    return dict(rtol=rtol, atol=atol)


def to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, minigan.Tensor):
        return t.numpy()
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t)


def assert_close(
    actual: Any, expected: Any, rtol: float, atol: float, what: str = "", check_dtype: bool = True
) -> None:
    """Shapes equal, dtypes equal (minigan vs torch) and values close."""
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    if check_dtype:
        assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != expected {e.dtype}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def mg(a: np.ndarray, requires_grad: bool = True) -> minigan.Tensor:
    a = np.array(a)
    return minigan.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")


def th(a: np.ndarray, requires_grad: bool = True) -> torch.Tensor:
    a = np.array(a)
    return torch.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")


def parity(
    mg_fn: Callable[..., minigan.Tensor],
    torch_fn: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    grad_rtol: float | None = None,
    grad_atol: float | None = None,
    grad: bool | Sequence[bool] = True,
    seed: int = 0,
) -> tuple[minigan.Tensor, torch.Tensor]:
    """Compare ``mg_fn(*tensors)`` with ``torch_fn(*tensors)``, forward and backward.

    ``grad`` says which float inputs get ``requires_grad`` (all by default). Tolerances
    default to :data:`TOL` for the dtype of the first float input.
    """
    arrays = [np.array(a) for a in arrays]
    flags = [grad] * len(arrays) if isinstance(grad, bool) else list(grad)
    flags = [f and a.dtype.kind == "f" for f, a in zip(flags, arrays)]
    dtype = next((a.dtype for a in arrays if a.dtype.kind == "f"), np.dtype(np.float32))
    d_rtol, d_atol = TOL[dtype]
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    grad_atol = atol if grad_atol is None else grad_atol

    mx = [mg(a, f) for a, f in zip(arrays, flags)]
    tx = [th(a, f) for a, f in zip(arrays, flags)]
    my = mg_fn(*mx)
    ty = torch_fn(*tx)
    assert_close(my, ty, rtol, atol, "forward")
    if not any(flags):
        return my, ty
    assert my.requires_grad, "output does not require grad although an input does"
    gy = np.random.default_rng(seed).standard_normal(my.shape).astype(my.dtype)
    my.backward(minigan.tensor(gy))
    ty.backward(torch.from_numpy(gy.copy()))
    for i, (m, t, f) in enumerate(zip(mx, tx, flags)):
        if not f:
            continue
        if t.grad is None:  # an input the output does not depend on
            assert m.grad is None or not m.grad.numpy().any(), f"input {i} is unused in torch"
            continue
        assert m.grad is not None, f"input {i} got no gradient"
        assert_close(m.grad, t.grad, grad_rtol, grad_atol, f"grad of input {i}")
    return my, ty


def double_backward_parity(
    mg_fn: Callable[..., minigan.Tensor],
    torch_fn: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    *,
    rtol: float = 1e-9,
    atol: float = 1e-11,
    seed: int = 0,
) -> None:
    """Second-order parity: ``g = d<f(x), v>/dx`` with ``create_graph=True``, then the
    penalty ``sum_i (|g_i|^2 + <g_i, u_i>)`` is back-propagated; its value and the
    gradients of every input are compared with torch's double backward."""
    arrays = [np.array(a) for a in arrays]
    rng = np.random.default_rng(seed)
    mx = [mg(a) for a in arrays]
    tx = [th(a) for a in arrays]
    my, ty = mg_fn(*mx), torch_fn(*tx)
    assert_close(my, ty, rtol, atol, "forward")
    v = rng.standard_normal(my.shape).astype(my.dtype)
    us = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]

    mg_g = minigan.grad((my * minigan.tensor(v)).sum(), mx, create_graph=True, allow_unused=True)
    th_g = torch.autograd.grad(
        (ty * torch.from_numpy(v.copy())).sum(), tx, create_graph=True, allow_unused=True
    )
    mg_pen, th_pen = None, None
    for i, (gm, gt, u) in enumerate(zip(mg_g, th_g, us)):
        gt = torch.zeros_like(tx[i]) if gt is None else gt
        if gm is None:
            gm = minigan.zeros(arrays[i].shape, dtype=arrays[i].dtype)
        assert_close(gm, gt, rtol, atol, f"first grad of input {i}")
        pm = (gm * gm).sum() + (gm * minigan.tensor(u)).sum()
        pt = (gt * gt).sum() + (gt * torch.from_numpy(u.copy())).sum()
        mg_pen = pm if mg_pen is None else mg_pen + pm
        th_pen = pt if th_pen is None else th_pen + pt
    assert_close(mg_pen, th_pen, rtol, atol, "penalty")
    if th_pen.requires_grad:
        th_pen.backward()
    if mg_pen.requires_grad:
        mg_pen.backward()
    for i, (m, t) in enumerate(zip(mx, tx)):
        expected = t.grad if t.grad is not None else torch.zeros_like(t)
        got = m.grad if m.grad is not None else minigan.zeros(m.shape, dtype=m.dtype)
        assert_close(got, expected, rtol, atol, f"second-order grad of input {i}")
