"""Instructions per op of minigan's per-op path, counted by valgrind's callgrind.

::

    python benchmarks/op_cost.py            # minigan; add --torch for PyTorch's figures
    python benchmarks/op_cost.py --src /tmp/old-checkout   # that checkout's minigan (A/B)

Runs each case (the rows of benchmarks/test_overhead.py) under ``valgrind --tool=callgrind``
twice, with ``--reps`` and with ``--reps + --extra`` repetitions after one warm-up
repetition, and prints the difference of the two instruction counts divided by ``--extra``:
the instructions of one repetition, free of start-up and of any load on the machine (a count,
not a time). Needs valgrind on PATH; slow (callgrind runs Python ~50x slower). Hash
randomisation is fixed (``PYTHONHASHSEED=0``) so that both runs start up alike, and the
BLAS/OpenMP pools get one thread (spinning workers add instructions that vary run to run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

CASES = ("add", "chain")
SINGLE_THREAD = {
    k: "1"
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


def leaves(lib: str, requires_grad: bool) -> tuple[Any, Any]:
    """Two (4, 4) float32 tensors of ``lib`` ("minigan" or "torch"; imported here, so that
    counting one library does not load the other)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 4), dtype=np.float32) for _ in range(2))
    if lib == "torch":
        import torch

        return (torch.tensor(x, requires_grad=requires_grad) for x in (a, b))  # type: ignore[return-value]
    import minigan

    return (minigan.tensor(x, requires_grad=requires_grad) for x in (a, b))  # type: ignore[return-value]


def add_loop(a: Any, b: Any, repeat: int) -> Callable[[], None]:
    """``a + b``, ``repeat`` times per call."""

    def run() -> None:
        for _ in range(repeat):
            a + b

    return run


def chain_loop(a: Any, b: Any, repeat: int) -> Callable[[], None]:
    """``((a + b) * a - b).sum().backward()``, ``repeat`` times per call."""

    def run() -> None:
        for _ in range(repeat):
            ((a + b) * a - b).sum().backward()

    return run


def loop(lib: str, case: str, repeat: int) -> Callable[[], None]:
    """The ``case`` loop ("add" or "chain") of ``lib`` on fresh leaves."""
    grad = case == "chain"
    return (chain_loop if grad else add_loop)(*leaves(lib, grad), repeat)


def import_minigan_from(src: str) -> None:
    """Import the ``minigan`` package of the checkout ``src`` instead of the installed one."""
    import importlib.util
    from pathlib import Path

    package = Path(src).resolve() / "minigan"
    spec = importlib.util.spec_from_file_location(
        "minigan", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"op_cost.py: --src {src}: no minigan package there")
    module = importlib.util.module_from_spec(spec)
    sys.modules["minigan"] = module
    spec.loader.exec_module(module)


def run_case(lib: str, case: str, reps: int) -> None:
    """One warm-up repetition of ``case``, then ``reps`` more (what callgrind counts)."""
    if os.environ.get("OP_COST_SRC"):
        import_minigan_from(os.environ["OP_COST_SRC"])
    once = loop(lib, case, 1)
    once()
    for _ in range(reps):
        once()


def instructions(lib: str, case: str, reps: int) -> int:
    """Instructions callgrind counts for a whole process running ``reps`` repetitions."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--run", lib, case, str(reps)]
    # the same start-up in both runs, and no BLAS/OpenMP worker threads: their spin-waits
    # would add a varying number of instructions (the tiny ops here never use them)
    env = {**os.environ, "PYTHONHASHSEED": "0", **SINGLE_THREAD}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if not found:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr[-1000:]}")
    return int(found.group(1))


def per_op(lib: str, case: str, reps: int, extra: int) -> float:
    return (instructions(lib, case, reps + extra) - instructions(lib, case, reps)) / extra


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--run"]:
        run_case(args[1], args[2], int(args[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch", action="store_true", help="count PyTorch's instead")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--extra", type=int, default=300)
    parser.add_argument(
        "--src", help="count the minigan of this checkout (e.g. another commit's) for an A/B"
    )
    parser.add_argument("cases", nargs="*", default=list(CASES), choices=CASES)
    options = parser.parse_args(args)
    if shutil.which("valgrind") is None:
        raise SystemExit("op_cost.py: valgrind not found on PATH")
    lib = "torch" if options.torch else "minigan"
    if options.src:
        os.environ["OP_COST_SRC"] = options.src
    for case in options.cases:
        count = per_op(lib, case, options.reps, options.extra)
        print(f"{lib} {case}: {count:,.0f} instructions per repetition")


if __name__ == "__main__":
    main()
