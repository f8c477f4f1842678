"""The plugin host: loads plugins from the ``minigan`` entry-point group and keeps what they
register (models, processors, datasets, kernel backends, commands).

Each plugin is loaded and asked to register on its own. A plugin that fails to import, uses a
hook name minigan does not define, or raises while registering is skipped — with one line on
stderr naming the plugin, its distribution and version — and everything else keeps working.

Environment variables:

- ``MINIGAN_STRICT_PLUGINS=1``: re-raise a plugin's error instead (for plugin development, CI).
- ``MINIGAN_DISABLE_PLUGINS=a,b``: do not load the plugins named ``a`` and ``b``.

This module is part of the light plugin host: it must not import NumPy, the tensor library
or any model at import time; the kernels are imported only when a plugin registers a kernel
backend.

>>> registry = get_registry()
>>> "shapes" in registry.names("dataset")
True
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
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

    def label(self) -> str:
        dist = f"{self.distribution} {self.version}" if self.distribution else "no distribution"
        return f"plugin {self.name!r} ({dist})"


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
        self.quiet = quiet
        if load_entry_points:
            self._load_entry_points()

    # ----- loading
    def _load_entry_points(self) -> None:
        disabled = _disabled()
        seen: set[str] = set()
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != GROUP or ep.name in seen:
                    continue
                seen.add(ep.name)
                info = PluginInfo(ep.name, dist.metadata["Name"], dist.version)
                self.plugins[ep.name] = info
                if ep.name in disabled:
                    info.disabled = True
                    self.pm.set_blocked(ep.name)
                    continue
                try:
                    plugin = ep.load()
                except Exception as e:
                    self._fail(info, f"failed to import {ep.value!r}: {type(e).__name__}: {e}", e)
                    continue
                self.add_plugin(plugin, ep.name, info)

    def add_plugin(self, plugin: object, name: str, info: PluginInfo | None = None) -> bool:
        """Register one plugin object and collect what it registers; False if it was skipped."""
        info = info or PluginInfo(name)
        self.plugins[name] = info
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
        for entries in self.entries.values():
            for key in [k for k, e in entries.items() if e.plugin == name]:
                del entries[key]
        if name in self.plugins:
            self.plugins[name].provides = {}

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
            if name in self.entries[kind] or any(e.name == name for e in found):
                owner = self.entries[kind][name].plugin if name in self.entries[kind] else info.name
                raise PluginError(f"{kind} {name!r} is already registered by plugin {owner!r}")
            found.append(Entry(kind, name, target, info.name))

        impl = next(i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is plugin)
        try:
            impl.function(register=register)
        except Exception as e:
            self._fail(info, f"{hook} raised {type(e).__name__}: {e}", e)
            return False
        for entry in found:
            self.entries[kind][entry.name] = entry
            info.provides.setdefault(kind, []).append(entry.name)
        return True

    def _fail(self, info: PluginInfo, message: str, error: BaseException | None = None) -> None:
        info.error = message
        if _strict():
            if error is not None:
                raise error
            raise PluginError(f"minigan: {info.label()} {message}")
        if not self.quiet:
            print(f"minigan: skipped {info.label()}: {message}", file=sys.stderr)

    # ----- lookup
    def names(self, kind: str) -> list[str]:
        """Registered names of one kind (``model``, ``processor``, ``dataset``, ``kernel``)."""
        return sorted(self.entries[kind])

    def entry(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            available = ", ".join(self.names(kind)) or "none"
            raise KeyError(f"unknown {kind} {name!r}; available: {available}") from None

    def get(self, kind: str, name: str) -> Any:
        """The registered object (class or factory) for ``name``."""
        return self.entry(kind, name).load()

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to the click group ``cli``."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name)
            before = set(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as e:
                for name in set(cli.commands) - before:
                    del cli.commands[name]
                self._fail(info, f"register_commands raised {type(e).__name__}: {e}", e)
                continue
            added = sorted(set(cli.commands) - before)
            if added:
                info.provides.setdefault("command", []).extend(added)

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
