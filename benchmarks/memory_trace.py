"""Where a model step's memory peak comes from: live traced memory around every Function call.

::

    python benchmarks/memory_trace.py test_dcgan_step steps '[64, 64]'            # timeline
    python benchmarks/memory_trace.py test_dcgan_step steps '[64, 64]' --snapshot 81

Builds the step like ``benchmarks/memory.py`` (``<module>.<factory>(*args)[0]``, minigan's
side), runs it once to warm up, then runs it again under ``tracemalloc`` with every
``Function``'s ``forward`` and ``backward`` wrapped: each call logs the live traced memory
before and after it and the peak during it (NumPy registers its buffers with tracemalloc;
Numba's and the BLAS's own allocations are not seen). Prints the calls around the highest
peak (MB above the start of the step); ``--snapshot K`` also lists what is alive just before
call K, grouped by where it was allocated. What benchmarks/NOTES.md items 21-25 used.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MB = 2**20


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


class Timeline:
    """The log of wrapped calls: (kind, Function, output shape, before, after, peak)."""

    def __init__(self, snapshot_at: int) -> None:
        self.calls: list[tuple[str, str, Any, float, float, float]] = []
        self.snapshot_at = snapshot_at
        self.snapshot: tracemalloc.Snapshot | None = None

    def wrap(self, cls: type, method: str) -> None:
        original = cls.__dict__.get(method)
        if original is None:
            return

        def traced(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if len(self.calls) == self.snapshot_at:
                self.snapshot = tracemalloc.take_snapshot()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            result = original(fn, *args, **kwargs)
            after, peak = tracemalloc.get_traced_memory()
            shape = getattr(result, "shape", None) if method == "forward" else None
            self.calls.append((method[0], cls.__name__, shape, before / MB, after / MB, peak / MB))
            return result

        setattr(cls, method, traced)


def trace(step: Callable[[], object], snapshot_at: int = -1) -> Timeline:
    """One traced call of ``step`` (after one untraced warm-up call)."""
    from minigan.tensor import Function

    step()
    gc.collect()
    timeline = Timeline(snapshot_at)
    for cls in set(_subclasses(Function)):
        timeline.wrap(cls, "forward")
        timeline.wrap(cls, "backward")
    tracemalloc.start(12)
    try:
        step()
    finally:
        tracemalloc.stop()
    return timeline


def report(timeline: Timeline, before: int = 30, after: int = 8, groups: int = 12) -> None:
    calls = timeline.calls
    top = max(range(len(calls)), key=lambda i: calls[i][5])
    print(f"{len(calls)} calls; highest peak {calls[top][5]:.1f} MB during call {top}")
    for i in range(max(0, top - before), min(len(calls), top + after)):
        kind, name, shape, b, a, p = calls[i]
        line = f"{i:5d} {kind} {name:24s} {str(shape):22s}"
        print(f"{line} before {b:8.1f} after {a:8.1f} peak {p:8.1f}")
    if timeline.snapshot is not None:
        stats = timeline.snapshot.statistics("traceback")
        live = sum(s.size for s in stats) / MB
        print(f"\nalive before call {timeline.snapshot_at}: {live:.1f} MB")
        for s in stats[:groups]:
            print(f"--- {s.size / MB:.1f} MB in {s.count} blocks")
            for frame in s.traceback.format()[-12:]:
                if frame.strip().startswith("File") and "memory_trace.py" not in frame:
                    print("   ", frame.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module")
    parser.add_argument("factory")
    parser.add_argument("args", help="the factory's arguments as a JSON list")
    parser.add_argument("--snapshot", type=int, default=-1, help="list what is alive before it")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--before", type=int, default=30, help="calls shown before the peak")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import minigan

    minigan.set_num_threads(options.threads)
    factory = getattr(importlib.import_module(options.module), options.factory)
    step = factory(*json.loads(options.args))[0]
    report(trace(step, options.snapshot), before=options.before)


if __name__ == "__main__":
    main()
