"""The layout of the code base: a light plugin host (hook modules import neither NumPy nor
Numba; ``minigan --help`` and ``minigan plugins`` import no kernel or model module), lazy
names on the ``minigan`` package, and the Trainer's extension points (gradient hooks between
backward and step, metric loggers)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minigan
from minigan import nn, optim
from minigan.gan import GAN

#: modules that the plugin host must not need: NumPy, Numba, the kernels, autograd, models
HEAVY = (
    "numpy",
    "numba",
    "matplotlib",
    "tensorboardX",
    "minigan.kernels",
    "minigan.tensor",
    "minigan.functional",
    "minigan.nn",
    "minigan.gan",
    "minigan.train",
    "minigan.trainer",
    "minigan.plugins.dcgan.model",
    "minigan.plugins.stylegan_lite.model",
    "minigan.plugins.stylegan_lite.commands",
    "minigan.plugins.deepdream.dream",
    "minigan.plugins.deepdream.networks",
    "minigan.plugins.datasets.sources",
)


def heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "statement",
    [
        "from minigan import hookimpl",
        "import minigan.hookspecs",
        "import minigan.plugins.dcgan, minigan.plugins.stylegan_lite",
        "import minigan.plugins.datasets, minigan.plugins.deepdream",
    ],
)
def test_hook_modules_import_neither_numpy_nor_numba(statement: str) -> None:
    result = run_python(statement, "-X", "importtime")
    assert result.returncode == 0, result.stderr
    # lines: "import time: self [us] | cumulative | imported package", nested by indentation
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "pluggy" in imported or statement != "from minigan import hookimpl"
    assert heavy(imported) == [], f"{statement!r} imported {heavy(imported)}"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--help"], "style-mix"),
        (["plugins"], "stylegan_lite"),
        (["style-mix", "--help"], "--noise-mode"),
        (["dream", "--help"], "--octaves"),
        (["weights", "--help"], "download"),
        (["metrics", "--help"], "--features"),
    ],
)
def test_cli_help_and_plugins_import_no_kernel_or_model(args: list[str], expected: str) -> None:
    result = run_python(
        f"""
        import json, runpy, sys
        sys.argv = ["minigan", *{args!r}]
        try:
            runpy.run_module("minigan", run_name="__main__")
        except SystemExit as e:
            code = e.code
        print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}), file=sys.stderr)
        """
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    assert expected in result.stdout
    assert heavy(report["modules"]) == [], f"minigan {' '.join(args)}: {heavy(report['modules'])}"


def test_package_names_are_lazy_but_all_there() -> None:
    result = run_python(
        """
        import sys
        import minigan
        assert "numpy" not in sys.modules
        names = dir(minigan)
        missing = [n for n in minigan.__all__ if n not in names]
        assert not missing and "train" in names and "tensor" in names, missing
        import minigan.tensor  # the submodule must not replace the function
        assert minigan.tensor([1.0, 2.0]).sum().item() == 3.0
        from minigan import tensor, Tensor
        assert tensor is minigan.tensor and isinstance(tensor([1.0]), Tensor)
        assert minigan.train.train.__module__ == "minigan.train"
        for name in minigan.__all__:
            getattr(minigan, name)
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_every_public_submodule_is_an_attribute_after_a_plain_import() -> None:
    """``import minigan; minigan.X`` for every public module file (the README writes
    ``minigan.tensorboard.read_events(...)`` and ``minigan.processing.check_output``)."""
    package = Path(minigan.__file__).parent
    elsewhere = {"lr_scheduler"}  # public as minigan.optim.lr_scheduler (PyTorch's path)
    modules = sorted(
        p.stem
        for p in package.glob("*.py")
        if not p.stem.startswith("_") and p.stem not in elsewhere
    )
    modules += ["kernels", "nn", "plugins"]
    result = run_python(
        f"""
        import minigan
        missing = []
        for name in {modules!r}:
            try:
                getattr(minigan, name)
            except AttributeError:
                missing.append(name)
        print(missing)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_built_in_plugins_register_lazy_strings_in_separate_modules() -> None:
    """Each built-in hook module registers a "module:attr" string naming a separate module.
    The hooks are called directly: a registry shared with earlier tests may already have
    loaded (and cached) its entries."""
    for hook, name, hook_module, reexported in [
        ("register_models", "dcgan", "minigan.plugins.dcgan", True),
        ("register_models", "stylegan-lite", "minigan.plugins.stylegan_lite", True),
        ("register_datasets", "shapes", "minigan.plugins.datasets", True),
        ("register_processors", "deepdream", "minigan.plugins.deepdream", False),
    ]:
        registered: dict[str, object] = {}
        getattr(importlib.import_module(hook_module), hook)(registered.__setitem__)
        target = registered[name]
        assert isinstance(target, str) and ":" in target, (hook, name, target)
        module, attr = target.split(":")
        assert module.startswith(hook_module + "."), target
        obj = getattr(importlib.import_module(module), attr)
        if reexported:  # these names stay importable from the hook module, on first use
            assert getattr(sys.modules[hook_module], obj.__name__) is obj


class _Line(GAN):
    """y = w . x + b, trained on loss (w . x + b)^2 with plain SGD."""

    def __init__(self) -> None:
        super().__init__(None, (1, 1, 2))
        self.generator = self.discriminator = nn.Linear(2, 1)
        self.opt = optim.SGD(self.generator.parameters(), lr=0.1)


@pytest.mark.parametrize("zero_in_hook", [False, True])
def test_update_runs_gradient_hooks_between_backward_and_step(zero_in_hook: bool) -> None:
    minigan.manual_seed(0)
    model = _Line()
    lin = model.generator
    x = np.array([[1.5, -2.0]], np.float32)
    w0, b0 = lin.weight.numpy().copy(), lin.bias.numpy().copy()
    y = float((w0 @ x[0] + b0)[0])
    grad_w, grad_b = 2 * y * x, np.array([2 * y])  # d(y^2)/dw, d(y^2)/db in closed form
    seen = []

    def hook(opt: optim.Optimizer) -> None:
        seen.append((lin.weight.grad.numpy().copy(), lin.weight.numpy().copy()))
        if zero_in_hook:
            for p in (lin.weight, lin.bias):
                p.grad.data[...] = 0.0

    model.gradient_hooks.append(hook)
    out = lin(minigan.tensor(x))
    model.update(model.opt, (out * out).sum())
    ((g_seen, w_seen),) = seen
    np.testing.assert_allclose(g_seen, grad_w, rtol=1e-5)  # after backward
    np.testing.assert_array_equal(w_seen, w0)  # before step
    if zero_in_hook:
        np.testing.assert_array_equal(lin.weight.numpy(), w0)
    else:
        np.testing.assert_allclose(lin.weight.numpy(), w0 - 0.1 * grad_w, rtol=1e-5)
        np.testing.assert_allclose(lin.bias.numpy(), b0 - 0.1 * grad_b, rtol=1e-5)


def test_hook_module_noise_modes_match_the_model() -> None:
    from minigan.plugins import stylegan_lite
    from minigan.plugins.stylegan_lite import model

    assert stylegan_lite.NOISE_MODES == model.NOISE_MODES


def test_trainer_loggers_get_every_metrics_record(tmp_path) -> None:
    from minigan.trainer import Trainer

    class Collect:
        def __init__(self) -> None:
            self.records: list[dict] = []
            self.closed = False

        def write(self, records) -> None:
            self.records.extend(dict(r) for r in records)

        def close(self) -> None:
            self.closed = True

    trainer = Trainer(
        "dcgan",
        "shapes",
        out=tmp_path / "run",
        config={"g_width": 8, "d_width": 8},
        data_options={"resolution": 28, "channels": 1, "limit": 64},
        epochs=1,
        batch_size=16,
        log_every=3,
        num_samples=4,
        progress=False,
        log=lambda message: None,
    )
    collect = Collect()
    trainer.loggers.append(collect)
    result = trainer.fit()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert result.steps == 4 and collect.closed
    assert collect.records == [json.loads(line) for line in lines]
    assert [r["step"] for r in collect.records] == [1, 2, 3, 4]
