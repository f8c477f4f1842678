"""The plugin host: loading in isolation, failures reported and skipped, strict mode,
disabling, lazy targets, commands, and the ``minigan plugins`` listing."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from minigan import hookimpl
from minigan.registry import PluginError, Registry


class GoodPlugin:
    @hookimpl
    def register_models(self, register):
        register("toy", dict)  # any callable will do for the host

    @hookimpl
    def register_datasets(self, register):
        register("toyset", "collections:OrderedDict")


class RaisingPlugin:
    @hookimpl
    def register_models(self, register):
        register("half", dict)
        raise RuntimeError("boom")


class UnknownHookPlugin:
    @hookimpl
    def register_model(self, register):  # typo: the hook is register_models
        register("x", dict)


class BrokenModelPlugin:
    @hookimpl
    def register_models(self, register):
        register("bad", 42)


class BadLazyPlugin:
    @hookimpl
    def register_models(self, register):
        register("ghost", "no_such_module_xyz:Model")


class CommandPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command()
        def hello():
            click.echo("hello from a plugin")


def test_good_plugin_registers_models_and_datasets():
    reg = Registry(load_entry_points=False)
    assert reg.add_plugin(GoodPlugin(), "good")
    assert reg.names("model") == ["toy"]
    assert reg.get("model", "toy") is dict
    from collections import OrderedDict

    assert reg.get("dataset", "toyset") is OrderedDict  # lazy string resolved on use
    info = reg.plugins["good"]
    assert info.hooks == ["register_datasets", "register_models"]
    assert info.provides == {"model": ["toy"], "dataset": ["toyset"]}
    assert info.error is None


@pytest.mark.parametrize(
    "plugin, message",
    [
        (RaisingPlugin(), "register_models raised RuntimeError: boom"),
        (UnknownHookPlugin(), "unknown hook(s) register_model"),
        (BrokenModelPlugin(), "expected a class or factory, got 42"),
    ],
)
def test_broken_plugin_is_skipped_with_one_line(plugin, message, capsys):
    reg = Registry(load_entry_points=False)
    reg.add_plugin(GoodPlugin(), "good")
    assert not reg.add_plugin(plugin, "broken")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "plugin 'broken'" in err[0] and message in err[0]
    # what the broken plugin registered before failing is gone, the rest still works
    assert reg.names("model") == ["toy"]
    assert reg.plugins["broken"].error is not None
    assert reg.get("model", "toy") is dict


def test_strict_mode_reraises(monkeypatch):
    monkeypatch.setenv("MINIGAN_STRICT_PLUGINS", "1")
    reg = Registry(load_entry_points=False)
    with pytest.raises(RuntimeError, match="boom"):
        reg.add_plugin(RaisingPlugin(), "broken")
    with pytest.raises(PluginError, match="unknown hook"):
        Registry(load_entry_points=False).add_plugin(UnknownHookPlugin(), "typo")


def test_duplicate_name_stays_with_its_first_owner(capsys):
    reg = Registry(load_entry_points=False)
    reg.add_plugin(GoodPlugin(), "first")

    class Again:
        @hookimpl
        def register_models(self, register):
            register("toy", list)
            register("other", tuple)

    assert reg.add_plugin(Again(), "second")  # skipped for "toy" only
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "plugin 'second' (no distribution) also registers model 'toy'" in err
    assert "plugin 'first' (no distribution) already provides" in err
    assert reg.get("model", "toy") is dict
    assert reg.get("model", "other") is tuple
    assert reg.get("model", "second:toy") is list  # chosen explicitly
    assert reg.get("model", "first:toy") is dict
    assert reg.plugins["second"].collisions == [
        "model 'toy' (kept by plugin 'first' (no distribution); use 'second:toy')"
    ]


def test_lazy_target_failure_names_plugin_and_target():
    reg = Registry(load_entry_points=False)
    reg.add_plugin(BadLazyPlugin(), "lazy")
    with pytest.raises(PluginError, match=r"model 'ghost' from plugin 'lazy'.*no_such_module_xyz"):
        reg.get("model", "ghost")


def test_unknown_name_lists_available():
    reg = Registry(load_entry_points=False)
    reg.add_plugin(GoodPlugin(), "good")
    with pytest.raises(KeyError, match="unknown model 'nope'; available: toy"):
        reg.get("model", "nope")


def test_commands_are_added_and_a_failing_one_is_skipped(capsys):
    reg = Registry(load_entry_points=False)
    reg.add_plugin(CommandPlugin(), "cmds")

    class BadCommands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def half():
                pass

            raise ValueError("no")

    reg.add_plugin(BadCommands(), "badcmds")
    cli = click.Group()
    reg.add_commands(cli)
    assert set(cli.commands) == {"hello"}
    assert "register_commands raised ValueError: no" in capsys.readouterr().err
    assert CliRunner().invoke(cli, ["hello"]).output == "hello from a plugin\n"
    assert reg.plugins["cmds"].provides == {"command": ["hello"]}


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """An installed-looking distribution with two entry points: one importable plugin module
    and one whose import fails."""
    site = tmp_path / "site"
    (site / "fakeplug").mkdir(parents=True)
    (site / "fakeplug" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from minigan import hookimpl

            @hookimpl
            def register_datasets(register):
                register("fake-data", "fakeplug:make")

            def make(**options):
                return options
            """
        )
    )
    (site / "fakebroken.py").write_text("import no_such_dependency_xyz\n")
    info = site / "minigan_fake-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: minigan-fake\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[minigan]\nfake = fakeplug\nfakebroken = fakebroken\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in ("fakeplug", "fakebroken"):
        sys.modules.pop(name, None)


def test_entry_points_load_in_isolation(fake_distribution, capsys):
    reg = Registry()
    assert "fake-data" in reg.names("dataset")
    assert reg.get("dataset", "fake-data")(a=1) == {"a": 1}
    broken = reg.plugins["fakebroken"]
    assert broken.distribution == "minigan-fake" and broken.version == "1.2.3"
    assert "No module named 'no_such_dependency_xyz'" in broken.error
    err = capsys.readouterr().err
    assert "skipped plugin 'fakebroken' (minigan-fake 1.2.3)" in err
    # minigan's own built-ins load next to it
    assert "dataset" in reg.plugins["datasets"].provides


def test_disable_plugins(fake_distribution, monkeypatch, capsys):
    monkeypatch.setenv("MINIGAN_DISABLE_PLUGINS", "fakebroken, fake")
    reg = Registry()
    assert "fake-data" not in reg.names("dataset")
    assert reg.plugins["fake"].disabled and reg.plugins["fakebroken"].disabled
    assert "fakebroken" not in capsys.readouterr().err


def test_plugins_command_lists_everything(fake_distribution, monkeypatch):
    from minigan import registry
    from minigan.cli import main

    monkeypatch.setattr(registry, "_registry", None)
    monkeypatch.setattr(main, "_plugins_loaded", False)
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = {p["name"]: p for p in json.loads(result.stdout)}
    assert listing["fake"]["provides"] == {"dataset": ["fake-data"]}
    assert listing["fake"]["version"] == "1.2.3"
    assert "no_such_dependency_xyz" in listing["fakebroken"]["error"]
    text = CliRunner().invoke(main, ["plugins"]).stdout
    assert "fakebroken (minigan-fake 1.2.3): FAILED" in text
    assert "datasets: fake-data" in text
    registry.set_registry(None)


def test_importing_minigan_and_plugins_never_imports_cupy(tmp_path):
    import subprocess

    code = (
        "import sys, minigan, minigan.registry as r, minigan.cli;"
        "reg = r.get_registry(); [reg.get('dataset', n) for n in reg.names('dataset')];"
        "[reg.get('model', n) for n in reg.names('model')];"
        "assert 'cupy' not in sys.modules, 'cupy was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(tmp_path))


def test_registered_plugin_is_there_for_one_block_only():
    from minigan.registry import get_registry
    from minigan.testing import registered_plugin

    with registered_plugin(GoodPlugin(), "good-for-now") as reg:
        assert reg is get_registry() and reg.get("model", "toy") is dict
    assert "toy" not in get_registry().names("model")
    assert "good-for-now" not in get_registry().plugins
    with pytest.raises(RuntimeError, match="boom"), registered_plugin(RaisingPlugin(), "bad"):
        pass
    assert "half" not in get_registry().names("model")


class Invert:
    """Invert the colours of an image."""

    import dataclasses as _dc

    @_dc.dataclass
    class Config:
        amount: float = 1.0

    def __init__(self, config=None):
        self.config = config or self.Config()

    def process(self, image):
        return image + self.config.amount * (1.0 - 2.0 * image)

    def metadata(self):
        return {"amount": self.config.amount}


class InvertPlugin:
    @hookimpl
    def register_processors(self, register):
        register("invert", Invert)


def test_process_command_runs_a_registered_processor_over_files_and_folders(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from minigan.cli import main
    from minigan.images import read_metadata
    from minigan.testing import registered_plugin

    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    (tmp_path / "in" / "sub").mkdir(parents=True)
    iio.imwrite(tmp_path / "in" / "a.png", img)
    iio.imwrite(tmp_path / "in" / "sub" / "b.png", img[..., 0])  # grayscale
    runner = CliRunner()
    with registered_plugin(InvertPlugin(), "invert-plugin"):
        one = runner.invoke(
            main,
            [
                "process",
                "invert",
                str(tmp_path / "in" / "a.png"),
                "-o",
                str(tmp_path / "one.png"),
                "--amount",
                "1",
            ],
        )
        assert one.exit_code == 0, one.output
        np.testing.assert_array_equal(iio.imread(tmp_path / "one.png"), 255 - img)
        assert read_metadata(tmp_path / "one.png")["amount"] == "1.0"
        folder = runner.invoke(
            main, ["process", "invert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
        )
        assert folder.exit_code == 0, folder.output
        assert (tmp_path / "out" / "sub" / "b.png").exists()
        bad = runner.invoke(main, ["process", "nope", str(tmp_path / "one.png")])
        assert bad.exit_code != 0 and "unknown processor 'nope'; available:" in bad.output
