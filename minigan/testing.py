"""Helpers for testing minigan code and plugins: numerical gradient checks, and for plugin
authors a fresh registry, a context manager that registers a plugin for one test, the
model contract check, and :func:`fake_cuda` to run the ``"cuda"`` device path without a GPU.

:func:`gradcheck` compares the gradients minigan computes with central finite differences in
float64; :func:`gradgradcheck` does the same for second derivatives (the gradient of a
gradient, as R1 and gradient penalties need).

A plugin's commands are tested by running the ``minigan`` click group itself —
``minigan.cli:main``, the console script's target — with ``click.testing.CliRunner``
inside :func:`registered_plugin`::

    from click.testing import CliRunner
    from minigan.cli import main

    with registered_plugin(my_plugin):
        result = CliRunner().invoke(main, ["train", "mygan", "--epochs", "1"])
    assert result.exit_code == 0, result.output

This module is for tests: the library itself must not import it (it may import anything
in the core, but no plugin at import time).

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
import dataclasses
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import minigan
from minigan.backend import parse_device
from minigan.gan import Trainable, read_metrics
from minigan.registry import Registry, get_registry
from minigan.tensor import Tensor, grad

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
        assert total is not None  # at least one output
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

    from minigan.kernels.contract import KERNELS

    # The Numba-CUDA kernels are the backend's lazy ones (kcuda.LAZY): those run on the CPU.
    return SimpleNamespace(
        **{name: on_cpu(name) if name in kcuda.LAZY else getattr(kcuda, name) for name in KERNELS}
    )


# =========================================================================== check_model
def _fail(model_cls: type[Any], prop: str, detail: str) -> AssertionError:
    return AssertionError(f"check_model({model_cls.__name__}): {prop}: {detail}")


def _params(model: Trainable) -> dict[str, list[np.ndarray]]:
    return {
        name: [np.array(p.numpy(), copy=True) for p in net.parameters()]
        for name, net in model.networks().items()
    }


def check_model(
    model_cls: type[Any],
    image_shape: Sequence[int] = (1, 32, 32),
    config: Mapping[str, Any] | None = None,
    batch_size: int = 4,
    device: str = "cpu",
) -> None:
    """Check that ``model_cls`` follows the model contract of :mod:`minigan.gan`.

    Builds it with its default ``Config`` (fields overridden by ``config``, e.g. small
    widths), trains one step on random data and checks: the config dataclass (defaults and
    help for every field), the metrics (required keys, finite numbers — floats or
    one-element tensors —, probabilities in [0, 1]), that the class's ``required_networks``
    (a GAN's generator and discriminator) exist and their parameters changed, that samples
    have the right shape, dtype (float32) and range, that the same seeds give the same samples
    whatever the global random state and the batch (to the class's ``sample_atol``), and that
    a state dict saved with :func:`minigan.save` and loaded into a fresh model gives the same
    samples and the same next training step (optimizer state included).
    Raises ``AssertionError`` naming the model and the property that failed.

    ``device="cuda"`` runs it all on the GPU — or, inside :func:`minigan.testing.fake_cuda`,
    on its CPU stand-in, which also checks that the model keeps every tensor on the device.
    """
    _check_config(model_cls)
    shape = tuple(int(s) for s in image_shape)

    def build(seed: int) -> Trainable:
        minigan.manual_seed(seed)
        try:
            return model_cls(model_cls.make_config(dict(config or {})), shape, device)
        except Exception as e:
            raise _fail(model_cls, "construction", f"{type(e).__name__}: {e}") from e

    model = build(0)
    _check_networks(model_cls, model, device)
    data_rng = np.random.default_rng(0)
    k = _batches_per_step(model_cls)
    real: Any = [
        minigan.tensor(
            data_rng.uniform(-1, 1, (batch_size, *shape)).astype(np.float32), device=device
        )
        for _ in range(k)
    ]
    real = real[0] if k == 1 else real  # batches_per_step > 1: a list of that many batches
    if model.num_classes:  # a conditional model also gets each batch's labels
        labels: Any = [
            minigan.tensor(data_rng.integers(0, model.num_classes, batch_size), device=device)
            for _ in range(k)
        ]
        real = (real, labels[0] if k == 1 else labels)
    _check_step(model_cls, model, real)
    seeds = [0, 1, 2]
    x = _check_samples(model_cls, model, seeds, shape)
    _check_round_trip(model_cls, model, build(99), real, seeds, x)  # different initial weights


def _train_step(model: Trainable, batch: Any) -> Any:
    """``model.train_step`` on ``batch``: the real images, or ``(images, labels)`` for a
    conditional model."""
    step: Any = model.train_step
    return step(*batch) if model.num_classes else step(batch)


def _check_config(model_cls: type[Any]) -> None:
    Config = getattr(model_cls, "Config", None)
    if Config is None or not dataclasses.is_dataclass(Config):
        raise _fail(model_cls, "Config", "the class attribute Config must be a @dataclass")
    for f in dataclasses.fields(Config):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(model_cls, "Config", f"field {f.name!r} has no default")
        if not f.metadata.get("help"):
            raise _fail(model_cls, "Config", f"field {f.name!r} has no metadata['help'] text")


def _check_networks(model_cls: type[Any], model: Trainable, device: str) -> None:
    nets = model.networks()
    for required in getattr(model_cls, "required_networks", ("generator", "discriminator")):
        if required not in nets:
            raise _fail(model_cls, "networks()", f"no {required!r} in {sorted(nets)}")
    for net_name, net in nets.items():
        for key, t in net.state_dict().items():
            if t.device != parse_device(device):
                raise _fail(
                    model_cls, "device", f"{net_name}.{key} is on {t.device!r}, not {device!r}"
                )


def _batches_per_step(model_cls: type[Any]) -> int:
    k = getattr(model_cls, "batches_per_step", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise _fail(model_cls, "batches_per_step", f"must be an int >= 1, got {k!r}")
    return k


def _declared_metrics(model_cls: type[Any]) -> list[str]:
    """The metric names the class declares in ``progress_metrics`` and ``plot_groups``."""
    declared = list(getattr(model_cls, "progress_metrics", None) or [])
    groups = getattr(model_cls, "plot_groups", None) or {}
    if not isinstance(groups, Mapping):
        raise _fail(model_cls, "plot_groups", f"must map titles to metric names, got {groups!r}")
    for members in groups.values():
        declared += [members] if isinstance(members, str) else list(members)
    return list(dict.fromkeys(declared))


def _check_step(model_cls: type[Any], model: Trainable, real: Any) -> None:
    before = _params(model)
    minigan.manual_seed(1)
    try:
        metrics = _train_step(model, real)
    except Exception as e:  # e.g. a tensor made on the CPU meeting the model's on the GPU
        raise _fail(model_cls, "train_step", f"{type(e).__name__}: {e}") from e
    if not isinstance(metrics, dict):
        raise _fail(model_cls, "train_step", f"must return a dict, got {type(metrics).__name__}")
    if not metrics:
        raise _fail(model_cls, "train_step metrics", "no metrics returned")
    missing = [k for k in _declared_metrics(model_cls) if k not in metrics]
    if missing:
        raise _fail(
            model_cls,
            "train_step metrics",
            f"missing {missing} (declared in progress_metrics / plot_groups); got "
            f"{sorted(metrics)}",
        )
    for key, value in metrics.items():
        scalar = isinstance(value, Tensor) and value.numel() == 1 and value.dtype.kind == "f"
        if not (scalar or isinstance(value, (float, int))) or isinstance(value, bool):
            raise _fail(
                model_cls,
                "train_step metrics",
                f"{key} is {value!r}, not a float or a one-element float tensor",
            )
    (values,) = read_metrics([metrics])
    for key, value in values.items():
        if not math.isfinite(value):
            raise _fail(model_cls, "train_step metrics", f"{key} is {value} on random data")
    for key in ("d_real", "d_fake"):  # optional; when returned, probabilities
        if key in values and not 0.0 <= values[key] <= 1.0:
            raise _fail(
                model_cls,
                "train_step metrics",
                f"{key}={values[key]} is not in [0, 1] (d_real / d_fake are D's mean "
                f"probabilities; return a critic's scores under other names)",
            )
    after = _params(model)
    for net in getattr(model_cls, "required_networks", ("generator", "discriminator")):
        if not any(np.any(a != b) for a, b in zip(before[net], after[net])):
            raise _fail(model_cls, "train_step", f"the {net}'s parameters did not change")


def _check_samples(
    model_cls: type[Any], model: Trainable, seeds: list[int], shape: tuple[int, ...]
) -> np.ndarray:
    out = model.sample(model.latents(seeds))
    if not isinstance(out, Tensor):
        raise _fail(model_cls, "sample", f"must return a Tensor, got {type(out).__name__}")
    x = np.asarray(out.numpy())
    if x.shape != (len(seeds), *shape):
        raise _fail(model_cls, "sample", f"shape {x.shape}, expected {(len(seeds), *shape)}")
    if x.dtype != np.float32:
        raise _fail(model_cls, "sample", f"dtype {x.dtype}, expected float32")
    if not np.all(np.isfinite(x)) or x.min() < -1 or x.max() > 1:
        raise _fail(model_cls, "sample", f"values in [{x.min()}, {x.max()}], expected [-1, 1]")
    if out.requires_grad:
        raise _fail(model_cls, "sample", "the result requires grad (sample under no_grad)")

    minigan.manual_seed(12345)
    again = np.asarray(model.sample(model.latents(seeds)).numpy())
    if not np.array_equal(x, again):
        raise _fail(model_cls, "determinism", "the same seeds gave different samples")
    single = np.asarray(model.sample(model.latents([seeds[2]])).numpy())
    if not np.allclose(single[0], x[2], atol=getattr(model_cls, "sample_atol", 1e-5)):
        raise _fail(
            model_cls, "determinism", "a seed's sample depends on the other seeds in the batch"
        )
    return x


def _check_round_trip(
    model_cls: type[Any],
    model: Trainable,
    clone: Trainable,
    real: Any,
    seeds: list[int],
    x: np.ndarray,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.safetensors")
        try:
            minigan.save(model.state_dict(), path)
            state = minigan.load(path)
        except Exception as e:
            raise _fail(model_cls, "state_dict", f"minigan.save/load failed: {e}") from e
    try:
        clone.load_state_dict(state)
    except Exception as e:
        raise _fail(model_cls, "load_state_dict", f"{type(e).__name__}: {e}") from e
    if not np.array_equal(np.asarray(clone.sample(clone.latents(seeds)).numpy()), x):
        raise _fail(model_cls, "state_dict", "a reloaded model samples differently")
    results = []
    for m in (model, clone):
        minigan.manual_seed(2)
        results.append((_train_step(m, real), _params(m)))
    (s1, p1), (s2, p2) = results
    m1, m2 = read_metrics([s1, s2])
    if m1 != m2 or any(not np.array_equal(a, b) for net in p1 for a, b in zip(p1[net], p2[net])):
        raise _fail(
            model_cls,
            "state_dict",
            f"the step after reloading differs ({m1} vs {m2}): is every optimizer's state in "
            f"state_dict()?",
        )
