"""The kernel contract (minigan.kernels.contract): written once, followed by the dispatcher and
both backends, enforced when a backend is registered (directly or by a plugin), and the one
``conv_output_size``."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minigan.kernels as K
from minigan import hookimpl, hookspecs
from minigan.kernels import contract
from minigan.kernels.contract import KERNELS, KernelBackend, check_backend, conv_output_size
from minigan.registry import PluginError, Registry

HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None


def params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]  # type: ignore[arg-type]


def test_the_contract_lists_every_dispatched_kernel():
    dispatched = {
        name
        for name, value in vars(K).items()
        if inspect.isfunction(value) and value.__module__ == K.__name__ and name in K.__all__
    }
    helpers = {"backend_for", "register_backend", "set_num_threads", "get_num_threads"}
    assert set(KERNELS) == dispatched - helpers
    assert len(KERNELS) == len(set(KERNELS)) == 13
    assert contract.missing_kernels(K.cpu) == []


@pytest.mark.parametrize("name", KERNELS)
def test_dispatcher_and_cpu_backend_follow_the_contract(name):
    spec = getattr(KernelBackend, name)
    assert spec.__doc__ and getattr(K, name).__doc__ == spec.__doc__
    assert params(getattr(K, name)) == params(spec)
    assert params(getattr(K.cpu, name)) == params(spec)


@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason="numba-cuda is not installed")
@pytest.mark.parametrize("name", KERNELS)
def test_cuda_backend_follows_the_contract(name):
    import minigan.kernels.cuda as kcuda

    assert params(getattr(kcuda, name)) == params(getattr(KernelBackend, name))


def test_backends_satisfy_the_protocol_without_loading_cuda():
    code = (
        "import sys, minigan.kernels as K\n"
        "from minigan.kernels.contract import KernelBackend, missing_kernels\n"
        "assert missing_kernels(K.cpu) == [] and missing_kernels(K._cuda) == []\n"
        "assert isinstance(K.cpu, KernelBackend)\n"
        "assert 'numba.cuda' not in sys.modules, 'checking the CUDA backend loaded numba.cuda'\n"
        "assert 'minigan.kernels.cuda.conv' not in sys.modules\n"
        "import minigan.kernels.cuda as c\n"
        "f = c.conv2d\n"  # the lazy string resolves on first access ...
        "from minigan.kernels.cuda import conv\n"
        "assert f is conv.conv2d and 'conv2d' in vars(c)\n"  # ... and stays resolved
    )
    if not HAS_NUMBA_CUDA:
        code = code.split("import minigan.kernels.cuda as c")[0]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_unknown_cuda_attribute_is_an_attribute_error():
    import minigan.kernels.cuda as kcuda

    with pytest.raises(AttributeError, match="no_such_kernel"):
        kcuda.no_such_kernel  # noqa: B018
    assert not hasattr(kcuda, "conv2d_grad_bias")


def partial_backend(*missing: str) -> types.SimpleNamespace:
    """The CPU backend without the kernels ``missing``."""
    return types.SimpleNamespace(
        **{n: getattr(K.cpu, n) for n in KERNELS if n not in missing},
        handles=lambda a: type(a).__name__ == "FakeArray",
    )


def test_register_backend_names_every_missing_kernel(monkeypatch):
    monkeypatch.setattr(K, "_BACKENDS", dict(K._BACKENDS))
    backend = partial_backend("adain_backward", "matmul")
    with pytest.raises(TypeError) as info:
        K.register_backend("mine", backend, backend.handles)
    message = str(info.value)
    assert "'mine'" in message and "missing adain_backward, matmul" in message
    assert "mine" not in K._BACKENDS
    backend.matmul = 3  # present but not a function
    with pytest.raises(TypeError, match=r"missing adain_backward, matmul$"):
        check_backend("mine", backend)


def test_missing_kernels_is_empty_for_a_complete_backend():
    assert contract.missing_kernels(partial_backend()) == []
    assert contract.missing_kernels(object()) == list(KERNELS)


def kernel_plugin(backend: object) -> object:
    class Plugin:
        @hookimpl
        def register_kernels(self, register):
            register("mine", backend)

    return Plugin()


def test_a_plugin_backend_is_checked_and_skipped_with_the_missing_names(monkeypatch, capsys):
    monkeypatch.setattr(K, "_BACKENDS", dict(K._BACKENDS))
    monkeypatch.delenv("MINIGAN_STRICT_PLUGINS", raising=False)
    registry = Registry(load_entry_points=False)
    assert registry.add_plugin(kernel_plugin(partial_backend("dropout")), "kplug")
    registry.install_kernels(K.register_backend)
    err = capsys.readouterr().err
    assert "kplug" in err and "kernel backend 'mine'" in err and "missing dropout" in err
    assert "mine" not in K._BACKENDS and registry.names("kernel") == []

    monkeypatch.setenv("MINIGAN_STRICT_PLUGINS", "1")
    strict = Registry(load_entry_points=False)
    strict.add_plugin(kernel_plugin(partial_backend("dropout")), "kplug")
    with pytest.raises(TypeError, match="missing dropout"):
        strict.install_kernels(K.register_backend)


def test_a_plugin_backend_without_handles_is_refused(monkeypatch):
    monkeypatch.setattr(K, "_BACKENDS", dict(K._BACKENDS))
    monkeypatch.setenv("MINIGAN_STRICT_PLUGINS", "1")
    backend = partial_backend()
    del backend.handles
    registry = Registry(load_entry_points=False)
    registry.add_plugin(kernel_plugin(backend), "kplug")
    with pytest.raises(PluginError, match=r"handles\(array\)"):
        registry.install_kernels(K.register_backend)


def test_a_complete_plugin_backend_receives_its_arrays(monkeypatch):
    monkeypatch.setattr(K, "_BACKENDS", dict(K._BACKENDS))
    monkeypatch.setenv("MINIGAN_STRICT_PLUGINS", "1")

    class FakeArray:
        pass

    backend = partial_backend()
    backend.leaky_relu = lambda x, slope: ("mine", slope)
    registry = Registry(load_entry_points=False)
    registry.add_plugin(kernel_plugin(backend), "kplug")
    registry.install_kernels(K.register_backend)
    assert K.leaky_relu(FakeArray(), 0.5) == ("mine", 0.5)
    assert isinstance(K.leaky_relu(np.ones(2), 0.5), np.ndarray)


def test_the_hookspec_points_at_the_contract():
    doc = hookspecs.register_kernels.__doc__ or ""
    assert "KernelBackend" in doc and "handles(array)" in doc


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 12),
    k=st.integers(1, 5),
    s=st.integers(1, 3),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
)
def test_conv_output_size_matches_pytorch(size, k, s, p, d):
    expected = None
    try:
        y = torch.nn.functional.conv2d(
            torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0),
            dilation=(d, 1),
        )
        expected = y.shape[2]
    except RuntimeError:  # PyTorch refuses an empty output
        pass
    got = conv_output_size(size, k, s, p, d)
    if expected is None:
        assert got < 1
    else:
        assert got == expected
