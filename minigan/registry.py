"""The plugin host: loads plugins from the ``minigan`` entry-point group and keeps what they
register (models, processors, datasets, kernel backends, commands).

Each plugin is loaded and asked to register on its own. A plugin that fails to import, uses a
hook name minigan does not define, or raises while registering is skipped — with one line on
stderr naming the plugin, its distribution and version — and everything else keeps working.

**Name ownership.** minigan's own plugins load first. When two plugins register the same name
(say a third-party package also registers the model ``dcgan``), the first owner keeps it and the
later plugin is skipped *for that name only*, with one warning naming both plugins, their
distributions and versions; everything else it registers is kept. The other one stays reachable
by its qualified name ``plugin:name`` (``minigan train otherplugin:dcgan``); every entry also
answers to its qualified name. ``minigan plugins`` lists the collisions.

**Output.** Whatever a plugin prints while it is imported or registers goes to stderr, so the
host's own stdout (``minigan plugins --json``) stays clean. Each plugin's import time is kept
(``minigan plugins`` shows it); one that takes over a second is named in a warning.

Environment variables:

- ``MINIGAN_STRICT_PLUGINS=1``: re-raise a plugin's error instead (for plugin development, CI).
- ``MINIGAN_DISABLE_PLUGINS=a,b``: do not load the plugins named ``a`` and ``b``.
- ``MINIGAN_SLOW_PLUGIN_SECONDS``: the import time above which a plugin is warned about (1).

This module is part of the light plugin host: it must not import NumPy, the tensor library
or any model at import time; the kernels are imported only when a plugin registers a kernel
backend.

>>> registry = get_registry()
>>> "shapes" in registry.names("dataset")
True
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from minigan import hookspecs, lazy

GROUP = "minigan"
KINDS = {
    "model": "register_models",
    "processor": "register_processors",
    "dataset": "register_datasets",
    "kernel": "register_kernels",
}


class PluginError(Exception):
    """A plugin could not be loaded or registered something unusable."""


@dataclass
class Entry:
    """One registered thing: a model, processor, dataset or kernel backend."""

    kind: str
    name: str
    target: Any  # the object, or a lazy "package.module:attribute" string
    plugin: str

    def load(self) -> Any:
        """The registered object, importing it first if it was registered lazily."""
        if not isinstance(self.target, str):
            return self.target
        try:
            with _stdout_to_stderr():  # a plugin printing on import must not corrupt output
                obj = lazy.resolve(self.target)
        except Exception as e:
            raise PluginError(
                f"{self.kind} {self.name!r} from plugin {self.plugin!r} could not be loaded "
                f"from {self.target!r}: {type(e).__name__}: {e}"
            ) from e
        self.target = obj
        return obj


@dataclass
class PluginInfo:
    """What ``minigan plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: bool = False
    builtin: bool = False
    import_seconds: float | None = None
    #: names this plugin registered that another plugin already owned, e.g. "model 'dcgan'
    #: (kept by plugin 'dcgan' (minigan 0.1.0); use 'evil:dcgan')"
    collisions: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # top-level packages of its code

    def label(self) -> str:
        dist = f"{self.distribution} {self.version}" if self.distribution else "no distribution"
        return f"plugin {self.name!r} ({dist})"


BUILTIN_DISTRIBUTION = "minigan"


def _slow_seconds() -> float:
    try:
        return float(os.environ.get("MINIGAN_SLOW_PLUGIN_SECONDS", "1"))
    except ValueError:
        return 1.0


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Send what a plugin prints to stderr: the host's stdout (e.g. ``--json``) stays clean."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _strict() -> bool:
    return os.environ.get("MINIGAN_STRICT_PLUGINS", "") not in ("", "0")


def _disabled() -> set[str]:
    return {
        n.strip() for n in os.environ.get("MINIGAN_DISABLE_PLUGINS", "").split(",") if n.strip()
    }


class Registry:
    """A plugin manager plus everything its plugins registered.

    ``Registry(load_entry_points=False)`` starts empty (useful in tests); plugins can be
    added with :meth:`add_plugin`.
    """

    def __init__(self, load_entry_points: bool = True, quiet: bool = False) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        #: every entry under ``plugin:name`` too, including those that lost a name collision
        self.qualified: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.quiet = quiet
        if load_entry_points:
            self._load_entry_points()

    # ----- loading
    def _entry_points(self) -> list[tuple[Any, Any]]:
        """``(distribution, entry point)`` of the ``minigan`` group, minigan's own first."""
        found = [
            (dist, ep)
            for dist in importlib.metadata.distributions()
            for ep in dist.entry_points
            if ep.group == GROUP
        ]
        found.sort(key=lambda pair: _dist_name(pair[0]) != BUILTIN_DISTRIBUTION)  # stable
        return found

    def _load_entry_points(self) -> None:
        disabled = _disabled()
        loaded: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, value)
        for dist, ep in self._entry_points():
            dist_name = _dist_name(dist)
            if ep.name in loaded:
                if loaded[ep.name] != (dist_name, ep.value):  # not just the same dist twice
                    self._name_taken(ep.name, dist_name, dist.version)
                continue
            loaded[ep.name] = (dist_name, ep.value)
            info = PluginInfo(ep.name, dist_name, dist.version)
            info.builtin = dist_name == BUILTIN_DISTRIBUTION
            info.modules = [ep.value.partition(":")[0].split(".")[0]]
            self.plugins[ep.name] = info
            if ep.name in disabled:
                info.disabled = True
                self.pm.set_blocked(ep.name)
                continue
            start = time.perf_counter()
            try:
                with _stdout_to_stderr():
                    plugin = ep.load()
            except Exception as e:
                self._fail(info, f"failed to import {ep.value!r}: {type(e).__name__}: {e}", e)
                continue
            finally:
                info.import_seconds = time.perf_counter() - start
            self.add_plugin(plugin, ep.name, info)
            self._warn_if_slow(info)

    def _name_taken(self, name: str, dist_name: str, version: str) -> None:
        """A second distribution's entry point uses a plugin name that is already loaded."""
        owner = self.plugins[name]
        self._warn(
            f"minigan: skipped plugin {name!r} ({dist_name} {version}): the plugin name is "
            f"already taken by {owner.label()}"
        )

    def _warn_if_slow(self, info: PluginInfo) -> None:
        seconds = info.import_seconds or 0.0
        if seconds > _slow_seconds():
            self._warn(
                f"minigan: {info.label()} took {seconds:.1f} s to import, and every minigan "
                f"command waits for it (MINIGAN_DISABLE_PLUGINS={info.name} skips it)"
            )

    def _warn(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr)

    def add_plugin(self, plugin: object, name: str, info: PluginInfo | None = None) -> bool:
        """Register one plugin object and collect what it registers; False if it was skipped."""
        info = info or PluginInfo(name)
        self.plugins[name] = info
        module = getattr(plugin, "__name__", None) or type(plugin).__module__
        if isinstance(module, str) and module.split(".")[0] not in info.modules:
            info.modules.append(module.split(".")[0])
        try:
            self.pm.register(plugin, name=name)
        except Exception as e:
            self._fail(info, f"could not be registered: {type(e).__name__}: {e}", e)
            return False
        callers = self.pm.get_hookcallers(plugin) or []
        unknown = [c.name for c in callers if c.spec is None]
        if unknown:
            self.pm.unregister(plugin)
            known = ", ".join(sorted(KINDS.values()) + ["register_commands"])
            self._fail(info, f"implements unknown hook(s) {', '.join(unknown)}; known: {known}")
            return False
        info.hooks = sorted(c.name for c in callers)
        for kind, hook in KINDS.items():
            if hook in info.hooks and not self._collect(plugin, info, kind, hook):
                self._forget(name)
                return False
        return True

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin and everything it registered."""
        self._forget(name)
        self.plugins.pop(name, None)

    def _forget(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        for table in (self.entries, self.qualified):
            for entries in table.values():
                for key in [k for k, e in entries.items() if e.plugin == name]:
                    del entries[key]
        if name in self.plugins:
            self.plugins[name].provides = {}
            self.plugins[name].collisions = []

    def _collect(self, plugin: object, info: PluginInfo, kind: str, hook: str) -> bool:
        """Call one plugin's ``register_*`` hook; keep its entries only if it succeeds."""
        found: list[Entry] = []

        def register(name: str, target: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"{kind} name must be a non-empty string, got {name!r}")
            if isinstance(target, str) and ":" not in target:
                raise PluginError(
                    f"{kind} {name!r}: lazy target must look like 'package.module:attribute', "
                    f"got {target!r}"
                )
            if not isinstance(target, str) and not callable(target) and kind != "kernel":
                raise PluginError(f"{kind} {name!r}: expected a class or factory, got {target!r}")
            if ":" in name:
                raise PluginError(f"{kind} name {name!r} must not contain ':'")
            if any(e.name == name for e in found):
                raise PluginError(f"{kind} {name!r} is registered twice by this plugin")
            found.append(Entry(kind, name, target, info.name))
            if isinstance(target, str):
                top = target.partition(":")[0].split(".")[0]
                if top and top not in info.modules and top != "minigan":
                    info.modules.append(top)

        impl = next(i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is plugin)
        try:
            with _stdout_to_stderr():
                impl.function(register=register)
        except Exception as e:
            self._fail(info, f"{hook} raised {type(e).__name__}: {e}", e)
            return False
        for entry in found:
            self.qualified[kind][f"{info.name}:{entry.name}"] = entry
            owner = self.entries[kind].get(entry.name)
            if owner is not None and owner.plugin != info.name:
                self._collision(info, entry, owner)
                continue
            self.entries[kind][entry.name] = entry
            info.provides.setdefault(kind, []).append(entry.name)
        return True

    def _collision(self, info: PluginInfo, entry: Entry, owner: Entry) -> None:
        """``entry`` wants a name ``owner`` already has: the owner keeps it, one warning."""
        owner_info = self.plugins.get(owner.plugin) or PluginInfo(owner.plugin)
        qualified = f"{info.name}:{entry.name}"
        info.collisions.append(
            f"{entry.kind} {entry.name!r} (kept by {owner_info.label()}; use {qualified!r})"
        )
        self._warn(
            f"minigan: {info.label()} also registers {entry.kind} {entry.name!r}, which "
            f"{owner_info.label()} already provides; keeping the first, skipping this one for "
            f"that name only (choose it explicitly as {qualified!r})"
        )

    def _fail(self, info: PluginInfo, message: str, error: BaseException | None = None) -> None:
        info.error = message
        if _strict():
            if error is not None:
                raise error
            raise PluginError(f"minigan: {info.label()} {message}")
        self._warn(f"minigan: skipped {info.label()}: {message}")

    # ----- lookup
    def names(self, kind: str) -> list[str]:
        """Registered names of one kind (``model``, ``processor``, ``dataset``, ``kernel``)."""
        return sorted(self.entries[kind])

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` (or a qualified ``plugin:name``) is registered."""
        return name in self.entries[kind] or name in self.qualified[kind]

    def entry(self, kind: str, name: str) -> Entry:
        """The entry for ``name``, or for ``plugin:name`` (a given plugin's, even one that lost
        a name collision)."""
        found = self.entries[kind].get(name) or self.qualified[kind].get(name)
        if found is None:
            available = ", ".join(self.names(kind)) or "none"
            raise KeyError(f"unknown {kind} {name!r}; available: {available}")
        return found

    def plugin_of(self, kind: str, name: str) -> PluginInfo:
        """Who provides ``name``: its plugin's :class:`PluginInfo`."""
        plugin = self.entry(kind, name).plugin
        return self.plugins.get(plugin) or PluginInfo(plugin)

    def plugin_for_module(self, module: str) -> PluginInfo | None:
        """The third-party plugin whose code lives in ``module`` (``None`` for minigan's own
        code and modules no plugin declared)."""
        top = module.split(".")[0]
        for info in self.plugins.values():
            if not info.builtin and top in info.modules and top != "minigan":
                return info
        return None

    def collisions(self) -> list[str]:
        """One line per name a later plugin wanted but an earlier one kept."""
        return [f"{info.name}: {c}" for info in self.info() for c in info.collisions]

    def get(self, kind: str, name: str) -> Any:
        """The registered object (class or factory) for ``name``."""
        return self.entry(kind, name).load()

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to the click group ``cli``. A command name that is
        taken already (minigan's own, or an earlier plugin's) stays with its owner."""
        owners = {name: "minigan" for name in cli.commands}
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name)
            before = dict(cli.commands)
            try:
                with _stdout_to_stderr():
                    impl.function(cli=cli)
            except Exception as e:
                cli.commands.clear()
                cli.commands.update(before)
                self._fail(info, f"register_commands raised {type(e).__name__}: {e}", e)
                continue
            added = []
            for name, command in list(cli.commands.items()):
                if name in before and before[name] is not command:  # a takeover: undo it
                    cli.commands[name] = before[name]
                    self._command_collision(info, name, owners[name])
                elif name not in before:
                    added.append(name)
                    owners[name] = info.name
            if added:
                info.provides.setdefault("command", []).extend(sorted(added))

    def _command_collision(self, info: PluginInfo, name: str, owner: str) -> None:
        owner_label = (
            "minigan itself"
            if owner == "minigan"
            else self.plugins[owner].label()
            if owner in self.plugins
            else f"plugin {owner!r}"
        )
        info.collisions.append(f"command {name!r} (kept by {owner_label})")
        self._warn(
            f"minigan: {info.label()} also adds the command {name!r}, which {owner_label} "
            f"already provides; keeping the first"
        )

    def install_kernels(self, register_backend: Callable[..., None]) -> None:
        """Hand every registered kernel backend to ``minigan.kernels.register_backend``."""
        for entry in list(self.entries["kernel"].values()):
            info = self.plugins.get(entry.plugin) or PluginInfo(entry.plugin)
            try:
                module = entry.load()
                handles = getattr(module, "handles", None)
                if not callable(handles):
                    raise PluginError(
                        "a kernel backend must define handles(array) -> bool, which picks the "
                        "arrays it runs on"
                    )
                register_backend(entry.name, module, handles)
            except Exception as e:
                del self.entries["kernel"][entry.name]
                self._fail(info, f"kernel backend {entry.name!r}: {type(e).__name__}: {e}", e)

    def info(self) -> list[PluginInfo]:
        return [self.plugins[name] for name in sorted(self.plugins)]


def _dist_name(dist: Any) -> str:
    return str(dist.metadata["Name"] or "")


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loading plugins on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
        if _registry.entries["kernel"]:  # only then: the kernels (NumPy, Numba) are heavy
            from minigan import kernels

            _registry.install_kernels(kernels.register_backend)
    return _registry


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (``None`` reloads on next use); returns the old one."""
    global _registry
    previous, _registry = _registry, registry
    return previous
