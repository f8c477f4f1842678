"""Helpers for testing minigan code and plugins: numerical gradient checks, and for plugin
authors a fresh registry, a context manager that registers a plugin for one test, the
model contract check, and :func:`fake_cuda` to run the ``"cuda"`` device path without a GPU.

:func:`gradcheck` compares the gradients minigan computes with central finite differences in
float64; :func:`gradgradcheck` does the same for second derivatives (the gradient of a
gradient, as R1 and gradient penalties need).

>>> import minigan
>>> import minigan.functional as F
>>> x = minigan.randn(3, 4, dtype="float64", requires_grad=True)
>>> gradcheck(F.tanh, [x])
True
>>> gradgradcheck(F.softplus, [x])
True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from minigan.registry import Registry, get_registry
from minigan.tensor import Tensor, grad
from minigan.train import check_model

__all__ = [
    "check_model",
    "fake_cuda",
    "fresh_registry",
    "gradcheck",
    "gradgradcheck",
    "registered_plugin",
]


def _outputs(fn: Callable[..., Any], inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    return [out] if isinstance(out, Tensor) else list(out)


def _projected(fn: Callable[..., Any], projections: list[np.ndarray]) -> Callable[..., Tensor]:
    """``x -> sum_k <fn(x)_k, v_k>``: a scalar whose gradient is a vector–Jacobian product."""

    def scalar(*inputs: Tensor) -> Tensor:
        outs = _outputs(fn, inputs)
        total = None
        for out, v in zip(outs, projections):
            term = (out * Tensor(v.astype(out.dtype))).sum()
            total = term if total is None else total + term
        return total

    return scalar


def _check_inputs(inputs: Sequence[Tensor]) -> list[Tensor]:
    wrt = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for x in wrt:
        if x.dtype != np.float64:
            raise TypeError(
                f"gradcheck: inputs must be float64 for accurate finite differences, got "
                f"{x.dtype} for an input of shape {x.shape}"
            )
    return wrt


def _compare(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    wrt: list[Tensor],
    eps: float,
    atol: float,
    rtol: float,
    what: str,
) -> bool:
    out = fn(*inputs)
    # a function whose derivative is constant gives an output outside the graph: zero grads
    analytic = grad(out, wrt, allow_unused=True) if out.requires_grad else [None] * len(wrt)
    for i, (x, g) in enumerate(zip(wrt, analytic)):
        expected = np.zeros(x.shape)
        for j in np.ndindex(x.shape):  # in place on x.data, whatever its memory layout
            old = x.data[j]
            x.data[j] = old + eps
            up = fn(*inputs).item()
            x.data[j] = old - eps
            down = fn(*inputs).item()
            x.data[j] = old
            expected[j] = (up - down) / (2 * eps)
        got = np.zeros(x.shape) if g is None else np.asarray(g.numpy(), dtype=np.float64)
        if not np.allclose(got, expected, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(got - expected)), x.shape)
            raise AssertionError(
                f"{what} mismatch for input {i} (shape {x.shape}) at index {worst}: "
                f"analytic {got[worst]:.8g}, finite differences {expected[worst]:.8g}\n"
                f"max abs error {np.max(np.abs(got - expected)):.3g} (atol {atol}, rtol {rtol})"
            )
    return True


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check first derivatives of ``fn`` at ``inputs`` against central finite differences.

    ``fn`` returns a Tensor or a tuple of Tensors; every input Tensor with
    ``requires_grad=True`` (float64) is checked. The outputs are projected on fixed random
    directions, so one backward pass per check suffices. Returns True or raises
    ``AssertionError`` naming the input and the worst element.
    """
    wrt = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    projections = [rng.standard_normal(o.shape) for o in _outputs(fn, inputs)]
    return _compare(_projected(fn, projections), inputs, wrt, eps, atol, rtol, "gradient")


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives: the gradient (``create_graph=True``) of a projection of
    ``fn`` is itself projected and checked against finite differences."""
    wrt = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    projections = [rng.standard_normal(o.shape) for o in _outputs(fn, inputs)]
    first = _projected(fn, projections)
    directions = [rng.standard_normal(x.shape) for x in wrt]

    def grad_projection(*xs: Tensor) -> Tensor:
        gs = grad(first(*xs), wrt, create_graph=True, allow_unused=True)
        total = None
        for g, u in zip(gs, directions):
            if g is None:
                continue
            term = (g * Tensor(u)).sum()
            total = term if total is None else total + term
        if total is None:
            raise AssertionError("gradgradcheck: the function does not depend on its inputs")
        return total

    return _compare(grad_projection, inputs, wrt, eps, atol, rtol, "second derivative")


# --------------------------------------------------------------------------- plugin authors


def fresh_registry(load_entry_points: bool = False) -> Registry:
    """A new plugin registry, empty unless ``load_entry_points`` (the installed plugins).

    >>> from minigan import hookimpl
    >>> class Plugin:
    ...     @hookimpl
    ...     def register_models(self, register):
    ...         register("toy", dict)
    >>> registry = fresh_registry()
    >>> registry.add_plugin(Plugin(), "toy-plugin")
    True
    >>> registry.names("model")
    ['toy']
    """
    return Registry(load_entry_points=load_entry_points)


@contextlib.contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[Registry]:
    """Register ``plugin`` in the process-wide registry (what the CLI and
    ``minigan.data.open_dataset`` use) for the duration of a ``with`` block.

    A plugin that fails to register raises here, whatever ``MINIGAN_STRICT_PLUGINS`` says,
    so a test sees the real error. A plugin that is already registered (because it is
    installed) is left as it is.
    """
    registry = get_registry()
    if registry.pm.is_registered(plugin):  # already loaded (e.g. installed): nothing to add
        yield registry
        return
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    if name in registry.plugins:
        raise ValueError(f"registered_plugin: a plugin named {name!r} is already registered")
    previous = os.environ.get("MINIGAN_STRICT_PLUGINS")
    os.environ["MINIGAN_STRICT_PLUGINS"] = "1"
    try:
        registry.add_plugin(plugin, name)
    finally:
        if previous is None:
            del os.environ["MINIGAN_STRICT_PLUGINS"]
        else:
            os.environ["MINIGAN_STRICT_PLUGINS"] = previous
    try:
        yield registry
    finally:
        registry.remove_plugin(name)


# ------------------------------------------------------------------------ the GPU path, no GPU


@contextlib.contextmanager
def fake_cuda(kernels: str = "cpu") -> Iterator[Any]:
    """Run minigan's ``"cuda"`` device path on a machine without a GPU, for one ``with`` block.

    CuPy is replaced by a NumPy-backed stand-in (``minigan._fake_cupy``) that keeps CuPy's
    rules: a device array is not a NumPy array (``numpy.asarray`` on it raises, mixing it with
    a NumPy array raises), reductions return 0-d device arrays, and every host <-> device copy
    is counted. The context yields that count (``device_to_host``, ``host_to_device`` and the
    list ``reads``), so a test can check that a training step never reads from the GPU.

    ``kernels="cpu"`` runs the convolution and norm kernels of the contract on minigan's CPU
    kernels (fast: for models and whole training runs); ``kernels="simulator"`` runs the real
    Numba-CUDA kernels and their host code in Numba's CUDA simulator (slow: tiny shapes; the
    process must have been started with ``NUMBA_ENABLE_CUDASIM=1``). The elementwise kernels
    (``leaky_relu``, ``dropout``, ``matmul``) are the CUDA backend's own CuPy code either way.

    >>> import minigan
    >>> with fake_cuda() as transfers:
    ...     x = minigan.randn(2, 3, device="cuda", requires_grad=True)
    ...     (x * x).sum().backward()
    ...     device, reads_in_step = x.grad.device, transfers.device_to_host
    ...     grad = x.grad.numpy()                      # the one read: an explicit copy back
    >>> device, reads_in_step, transfers.device_to_host
    ('cuda', 0, 1)
    """
    from minigan import _fake_cupy
    from minigan import kernels as dispatch
    from minigan.kernels import cuda as kcuda

    if kernels not in ("cpu", "simulator"):
        raise ValueError(f"fake_cuda: kernels must be 'cpu' or 'simulator', not {kernels!r}")
    patches: list[tuple[Any, str, Any]] = []
    if kernels == "cpu":
        patches.append((dispatch, "_BACKENDS", dict(dispatch._BACKENDS)))
        dispatch.register_backend("cuda", _cpu_backed_cuda(kcuda, dispatch.cpu), kcuda.handles)
    else:
        if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise RuntimeError(
                "fake_cuda(kernels='simulator') needs Numba's CUDA simulator: start the "
                "process with NUMBA_ENABLE_CUDASIM=1"
            )
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        from minigan.kernels.cuda import conv, norm

        def as_device(a: Any) -> Any:  # a view, so kernels write into the array
            return FakeCUDAArray(a._a.reshape(-1))

        for mod in (conv, norm):
            for name, value in (("as_device", as_device), ("current_stream", lambda: None)):
                patches.append((mod, name, getattr(mod, name)))
                setattr(mod, name, value)
    previous = sys.modules.get("cupy")
    sys.modules["cupy"] = _fake_cupy
    _fake_cupy.transfers.reset()
    try:
        yield _fake_cupy.transfers
    finally:
        for obj, name, value in reversed(patches):
            setattr(obj, name, value)
        if previous is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = previous


def _cpu_backed_cuda(kcuda: Any, cpu: Any) -> Any:
    """The CUDA backend with its Numba-CUDA kernels swapped for the CPU kernels on the arrays
    behind the fake device arrays (its CuPy elementwise code kept)."""
    from types import SimpleNamespace

    from minigan._fake_cupy import ndarray

    def on_cpu(name: str) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            host = [a._a if isinstance(a, ndarray) else a for a in args]
            out = getattr(cpu, name)(*host)
            return tuple(map(ndarray, out)) if isinstance(out, tuple) else ndarray(out)

        return run

    numba_cuda = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "batch_norm_forward",
                  "batch_norm_backward", "adain_forward", "adain_backward")  # fmt: skip
    functions = {name: getattr(kcuda, name) for name in kcuda.__all__}
    functions.update({name: on_cpu(name) for name in numba_cuda})
    return SimpleNamespace(**functions)
