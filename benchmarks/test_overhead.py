"""Per-op Python overhead: tiny tensors, where the time is dispatch, not arithmetic.

Run with ``pytest benchmarks/test_overhead.py --benchmark``. Two rows, both on (4, 4) float32
tensors, so that NumPy's and PyTorch's kernels cost next to nothing and what is timed is each
library's per-op path (argument checks, Tensor creation, graph recording, the backward engine):

- ``a + b`` without autograd, ``REPEAT`` times per call;
- a short chain with autograd, forward and backward: ``((a + b) * a - b).sum().backward()``
  (four recorded ops, then the backward through them), ``REPEAT`` times per call.

The rate is in thousands of ops per second (forward ops; the chain row counts its four).
``python benchmarks/op_cost.py`` counts minigan's instructions per op under callgrind, which
load on the machine does not distort (benchmarks/NOTES.md has the figures).
"""

from __future__ import annotations

import pytest
from op_cost import loop

REPEAT = 200
CHAIN_OPS = 4  # add, mul, sub, sum


@pytest.mark.parametrize("kind", ["add", "chain"])
def test_per_op_overhead(bench, kind):
    grad = kind == "chain"
    name = (
        "per-op overhead: ((a+b)*a-b).sum().backward() 4x4"
        if grad
        else "per-op overhead: a + b 4x4, no grad"
    )
    bench.compare(
        name,
        loop("minigan", kind, REPEAT),
        loop("torch", kind, REPEAT),
        work=REPEAT * (CHAIN_OPS if grad else 1),
        unit="kop/s",
    )
