"""Best-of-N time of one model step with the minigan of another checkout (A/B across commits).

::

    python benchmarks/step_ab.py test_dcgan_step '[28, 256]' --reps 3 --src /tmp/old-checkout
    python benchmarks/step_ab.py test_dcgan_step '[32]' --factory conditional_steps

Builds ``<module>.steps(*args)`` (the factory ``benchmarks/memory.py`` uses; another with
``--factory``), runs the minigan step once to warm up, then ``--reps`` times, and prints
the best time in ms. With ``--src`` the packages ``minigan``, ``minigan.kernels`` and
``minigan.plugins`` are loaded from that checkout (``git archive <commit> | tar -x -C <dir>``)
by redirecting the editable install's path mapping; run old and new in alternation, in fresh
processes (benchmarks/NOTES.md item 28).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def use_checkout(src: str) -> None:
    """Load minigan's packages from ``src`` (an editable install's finder maps them)."""
    finders = [m for name, m in sys.modules.items() if name.startswith("__editable___minigan")]
    if not finders:
        raise SystemExit("step_ab.py --src needs minigan installed editable (pip install -e .)")
    root = Path(src).resolve()
    for finder in finders:
        mapping = finder.MAPPING
        mapping.update(
            {
                "minigan": str(root / "minigan"),
                "minigan.kernels": str(root / "kernels"),
                "minigan.plugins": str(root / "plugins"),
            }
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module")
    parser.add_argument("args", help="the factory's arguments as a JSON list")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--src", help="the checkout whose minigan to time")
    parser.add_argument("--factory", default="steps", help="the module's step factory")
    options = parser.parse_args(argv)
    if options.src:
        use_checkout(options.src)
    sys.path.insert(0, str(HERE))
    import minigan

    minigan.set_num_threads(options.threads)
    factory = getattr(importlib.import_module(options.module), options.factory)
    step = factory(*json.loads(options.args))[0]
    step()
    best = float("inf")
    for _ in range(options.reps):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    print(f"{minigan.__file__}: best of {options.reps} {best * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
