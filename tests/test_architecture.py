"""The layering of minigan, checked on the source: the import graph of ``minigan/``, ``kernels/``
and ``plugins/`` (read with :mod:`ast`, nothing is imported) has no cycle, the kernels do not
reach the autograd core, and the core does not import a plugin. docs/architecture.md explains
the layers.

Which imports are edges. Every ``import`` / ``from ... import`` that runs, wherever it is
written: at module level *and* inside functions (a function-level import is still a
dependency, only a later one). Imports under ``if TYPE_CHECKING:`` never run and are not
edges. An import names one module: ``from minigan import nn`` is an edge to ``minigan.nn``
(a submodule), ``from minigan import hookimpl`` an edge to ``minigan`` (the package's
``__init__``); the parent packages Python initialises on the way are not counted separately.
Installed names are mapped to the source folders: ``minigan.kernels`` -> ``kernels/``,
``minigan.plugins`` -> ``plugins/``. A lazy ``"package.module:attribute"`` string is not an
import (that is the point of it).

The rule: the module-level graph (what runs at import time, and fixes the import order) has
no cycle at all; with the function-level imports added it has none either, except through
the deferred imports listed in :data:`DEFERRED` — each one function-level, each one with its
reason, each one checked to still exist.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# installed package name -> source folder
PACKAGES = {"minigan": "minigan", "minigan.kernels": "kernels", "minigan.plugins": "plugins"}

AUTOGRAD = ("minigan.tensor", "minigan.functional", "minigan.nn", "minigan.optim")
# The only core modules the kernels may import: leaves that import nothing of minigan.
KERNELS_MAY_IMPORT = {"minigan.lazy", "minigan.backend"}

# Function-level imports that point back up the graph, with why they must stay.
DEFERRED = {
    ("minigan.tensor", "minigan.functional"): (
        "Tensor's operators (x + y, x.sum()) are the operations of functional, which imports "
        "tensor for Tensor and Function; tensor imports functional on the first operator call "
        "(minigan.tensor.DeferredFunctional, also used by tensor_ops and nn_ops, whose ops "
        "functional re-exports), so `from minigan.tensor import Tensor` alone still works"
    ),
    ("minigan.lr_scheduler", "minigan.optim"): (
        "optim imports lr_scheduler to offer it as minigan.optim.lr_scheduler (PyTorch's path); "
        "LRScheduler checks its optimizer with isinstance(optimizer, Optimizer) when built"
    ),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = "function-level" if self.in_function else "module-level"
        return f"{self.source} -> {self.target} ({where}, line {self.line})"


def module_files() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the three packages."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


ImportNode = ast.Import | ast.ImportFrom


def _imports(tree: ast.AST) -> Iterator[tuple[ImportNode, bool]]:
    """Every import statement that can run, with whether it sits inside a function."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ImportNode, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for orelse in child.orelse:
                    yield from walk(orelse, in_function)
            else:
                nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                yield from walk(child, in_function or nested)

    yield from walk(tree, False)


def _targets(node: ImportNode, source: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of the three packages that one import statement names."""
    if isinstance(node, ast.Import):
        bases = [alias.name for alias in node.names]
        names: list[str | None] = [None] * len(bases)
    else:
        if node.level:
            package = source if is_package else source.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        bases = [base] * len(node.names)
        names = [alias.name for alias in node.names]
    for base, name in zip(bases, names):
        if name is not None and f"{base}.{name}" in known:
            yield f"{base}.{name}"  # from package import submodule
            continue
        while base and base not in known:  # import a.b.c where only a.b is ours: a.b
            base = base.rpartition(".")[0]
        if base:
            yield base


def import_graph() -> tuple[set[str], list[Edge]]:
    """The modules and the import edges between them (see the module docstring)."""
    files = module_files()
    known = set(files)
    edges: set[Edge] = set()
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, in_function in _imports(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if target != module:
                    edges.add(Edge(module, target, node.lineno, in_function))
    return known, sorted(edges, key=str)


def cycles(nodes: set[str], edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    succ: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        succ[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer(module: str) -> str:
    if in_package(module, "minigan.kernels"):
        return "kernels"
    if in_package(module, "minigan.plugins"):
        return "plugins"
    return "core"


GRAPH = import_graph()


def test_the_graph_is_read_from_the_source():
    """Guards the reader itself: known edges of each kind are found (else every check passes)."""
    nodes, edges = GRAPH
    assert {"minigan.tensor", "minigan.kernels.cpu.conv", "minigan.plugins.dcgan"} <= nodes
    pairs = {(e.source, e.target, e.in_function) for e in edges}
    assert ("minigan.functional", "minigan.tensor", False) in pairs  # from minigan.tensor import
    assert ("minigan.kernels", "minigan.kernels.cpu", False) in pairs  # from . import cpu
    assert ("minigan.kernels.cpu.conv", "minigan.kernels.contract", False) in pairs  # from ..
    assert ("minigan.registry", "minigan.kernels", True) in pairs  # inside get_registry()


def _cycle_report(found: list[list[str]], edges: list[Edge]) -> str:
    return "\n".join(
        "  " + " / ".join(c) + "\n" + "\n".join(
            f"    {e}" for e in edges if e.source in c and e.target in c
        )
        for c in found
    )


def test_no_import_cycle_at_import_time():
    nodes, edges = GRAPH
    module_level = [e for e in edges if not e.in_function]
    found = cycles(nodes, module_level)
    assert not found, "import cycles at import time:\n" + _cycle_report(found, module_level)


def test_no_import_cycle_but_the_deferred_imports():
    nodes, edges = GRAPH
    kept = [e for e in edges if (e.source, e.target) not in DEFERRED]
    found = cycles(nodes, kept)
    assert not found, "import cycles (modules that import each other):\n" + _cycle_report(
        found, kept
    )


@pytest.mark.parametrize("pair", sorted(DEFERRED))
def test_each_deferred_import_exists_and_is_function_level(pair):
    _, edges = GRAPH
    found = [e for e in edges if (e.source, e.target) == pair]
    assert found, f"{pair} is no longer imported: remove it from DEFERRED"
    assert all(e.in_function for e in found), [str(e) for e in found]


def test_kernels_do_not_import_the_core():
    """Kernels take and return arrays: from the core they may import only the leaf modules
    :data:`KERNELS_MAY_IMPORT`, and nothing they import reaches the autograd."""
    _, edges = GRAPH
    bad = [
        e
        for e in edges
        if layer(e.source) == "kernels"
        and layer(e.target) != "kernels"
        and e.target not in KERNELS_MAY_IMPORT
    ]
    assert not bad, "kernels import the core or a plugin:\n" + "\n".join(map(str, bad))
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.source, set()).add(e.target)
    reached, todo = set(), [m for m in GRAPH[0] if layer(m) == "kernels"]
    while todo:
        for target in succ.get(todo.pop(), ()):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    autograd = sorted(m for m in reached if any(in_package(m, a) for a in AUTOGRAD))
    assert not autograd, f"the kernels reach the autograd core through {autograd}"


# Known violations, to be removed (not to be added to): minigan.metrics (issue 15) reads the
# shapes dataset and the DeepDream classifier's weights straight from the built-in plugins;
# they should reach them through the registry (a dataset name, a lazy string) instead.
CORE_IMPORTS_OF_PLUGINS = {
    ("minigan.metrics", "minigan.plugins.datasets"),
    ("minigan.metrics.features", "minigan.plugins.deepdream.shapes_classifier"),
    ("minigan.metrics.features", "minigan.plugins.deepdream.weights"),
}


def test_the_core_does_not_import_plugins():
    """The core names plugins only through entry points and lazy strings."""
    _, edges = GRAPH
    bad = [
        e
        for e in edges
        if layer(e.source) == "core"
        and layer(e.target) == "plugins"
        and (e.source, e.target) not in CORE_IMPORTS_OF_PLUGINS
    ]
    assert not bad, "the core imports a plugin:\n" + "\n".join(map(str, bad))
    pairs = {(e.source, e.target) for e in edges}
    stale = CORE_IMPORTS_OF_PLUGINS - pairs
    assert not stale, f"fixed, remove from CORE_IMPORTS_OF_PLUGINS: {sorted(stale)}"


TYPE_ONLY = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"a.py": "import minigan.b\n", "b.py": "def f():\n    from minigan import a\n"}, 1),
        ({"a.py": "from . import b\n", "b.py": "from .a import x\n"}, 1),
        ({"a.py": "from . import b\n", "b.py": "import os\n"}, 0),
        ({"a.py": TYPE_ONLY + "    from . import b\n", "b.py": "from . import a\n"}, 0),
    ],
)
def test_the_cycle_check_can_fail(tmp_path, monkeypatch, files, expected):
    """A cycle through a function-level import counts; one through TYPE_CHECKING does not."""
    (tmp_path / "minigan").mkdir()
    (tmp_path / "minigan" / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / "minigan" / name).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(PACKAGES, "minigan.kernels", "missing")
    monkeypatch.setitem(PACKAGES, "minigan.plugins", "missing")
    nodes, edges = import_graph()
    assert len(cycles(nodes, edges)) == expected


def test_tensor_operators_work_when_tensor_is_imported_first():
    """minigan.tensor does not import functional at import time; its operators still work in a
    process that imported nothing else (the deferred import), and afterwards ``F`` is
    functional itself (no proxy left on the call path)."""
    code = (
        "import importlib, sys\n"
        "import numpy as np\n"
        "tensor = importlib.import_module('minigan.tensor')\n"
        "assert 'minigan.functional' not in sys.modules\n"
        "x = tensor.Tensor(np.array([1.0, 2.0]), requires_grad=True)\n"
        "(x * x + 1).sum().backward()\n"
        "assert tensor.F is sys.modules['minigan.functional']\n"
        "print(x.grad.numpy().tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[2.0,", "4.0]"]
