"""Peak memory of one model step, minigan against PyTorch, each measured in a fresh process.

::

    python benchmarks/memory.py test_dcgan_step steps '[28, 256]' minigan

imports ``benchmarks/<module>.py``, calls ``<factory>(*args)``, which returns the two step
functions ``(minigan_step, torch_step)``, and measures the side named (``minigan`` or
``torch``); it prints one JSON line ``{"peak_mb": ..., "before_mb": ..., "side": ...}``.

The measure is the resident set (RSS), the one figure that covers both sides alike (NumPy's
and Numba's buffers, PyTorch's CPU allocator, the BLAS's work space). In the fresh process,
after the model is built and one warm-up step has run (JIT compilation, optimizer state,
worker threads), the kernel's RSS high-water mark is reset (``/proc/self/clear_refs``, "5",
Linux 4.0+), one step runs, and ``peak_mb`` is the high-water mark (``VmHWM``) minus the RSS
just before the step: the memory the step itself needs on top of the model, its parameters
and optimizer state. glibc's malloc is pinned to a fixed mmap threshold
(``MALLOC_MMAP_THRESHOLD_``) so that freed large arrays go back to the system at once on both
sides instead of being cached by its dynamic threshold, and the RSS follows what is live.
Not distorted by CPU load, unlike the times; it varies by a few MB between runs (page-level
granularity, thread stacks).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIDES = ("minigan", "torch")
# fixed mmap threshold for allocations of 128 KiB and up: no dynamic threshold, no caching
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


@dataclass(frozen=True)
class Memory:
    """What to measure: ``<module>.<factory>(*args)`` returns ``(minigan_step, torch_step)``."""

    module: str
    factory: str
    args: tuple[Any, ...] = ()

    def measure(self, side: str, threads: int | None = None, timeout: float = 1800) -> float:
        """Peak MB of one step of ``side``, in a fresh Python process."""
        if side not in SIDES:
            raise ValueError(f"side {side!r}: expected one of {SIDES}")
        env = {**os.environ, **MALLOC_ENV}
        if threads is not None:
            env["MINIGAN_BENCH_THREADS"] = str(threads)
        command = [sys.executable, str(Path(__file__).resolve()), self.module, self.factory]
        command += [json.dumps(list(self.args)), side]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE
        )
        if done.returncode != 0:
            raise RuntimeError(f"memory of {self} ({side}) failed:\n{done.stderr[-2000:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])


def probe(mb: float) -> tuple[Callable[[], object], Callable[[], object]]:
    """Two steps whose peak is known: each fills a fresh ``mb`` MB float32 array (NumPy,
    torch) and drops it. The check of the method (tests/test_bench_harness.py)."""
    import numpy as np
    import torch

    n = int(mb * 2**20) // 4
    return lambda: float(np.ones(n, np.float32)[-1]), lambda: float(torch.ones(n)[-1])


def _status_mb(field: str) -> float:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def step_peak_mb(step: Callable[[], object]) -> tuple[float, float]:
    """(peak MB above the RSS before the step, RSS before the step) of one call of ``step``,
    after one warm-up call."""
    step()
    gc.collect()
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    step()
    return _status_mb("VmHWM") - before, before


def _set_threads() -> None:
    import torch

    import minigan

    threads = int(os.environ.get("MINIGAN_BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    minigan.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> None:
    module, factory, args, side = argv if argv is not None else sys.argv[1:]
    if side not in SIDES:
        raise SystemExit(f"side {side!r}: expected one of {SIDES}")
    sys.path.insert(0, str(HERE))
    _set_threads()
    steps = getattr(importlib.import_module(module), factory)(*json.loads(args))
    peak, before = step_peak_mb(steps[SIDES.index(side)])
    print(json.dumps({"side": side, "peak_mb": peak, "before_mb": before}))


if __name__ == "__main__":
    main()
