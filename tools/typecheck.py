"""Type-check minigan as it is installed: ``python tools/typecheck.py`` runs mypy (settings in
pyproject.toml, ``[tool.mypy]``) on the packages ``minigan``, ``minigan.kernels`` and
``minigan.plugins``.

The source folders are laid out differently from the installed packages (``kernels/`` and
``plugins/`` install as ``minigan.kernels`` and ``minigan.plugins``, see
``[tool.setuptools.package-dir]``), and mypy cannot follow an editable install's import hook.
So this builds the installed layout as a tree of symbolic links in a temporary folder, runs
mypy there, and reports paths in the repository (``kernels/cuda/conv.py:12: ...``). Extra
arguments are passed to mypy. Exits with mypy's status.

Must not import minigan (it type-checks the source without running it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# installed package -> source folder, as in pyproject.toml's [tool.setuptools.package-dir]
LAYOUT = {"minigan": "minigan", "minigan/kernels": "kernels", "minigan/plugins": "plugins"}


def link_tree(tree: Path) -> None:
    """``tree/minigan`` laid out as installed, every entry a link into the repository."""
    for installed, folder in LAYOUT.items():
        target = tree / installed
        target.mkdir(parents=True, exist_ok=True)
        for entry in sorted((ROOT / folder).iterdir()):
            if entry.name != "__pycache__" and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)


def to_repo_path(line: str) -> str:
    """``minigan/kernels/x.py:3: error`` -> ``kernels/x.py:3: error`` (longest prefix first)."""
    for installed, folder in sorted(LAYOUT.items(), key=lambda kv: -len(kv[0])):
        if line.startswith(installed + "/"):
            return folder + line[len(installed) :]
    return line


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="minigan-typecheck-") as tmp:
        link_tree(Path(tmp))
        command = [
            sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "minigan", *argv,
        ]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=os.environ)
    for line in done.stdout.splitlines():
        print(to_repo_path(line))
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
