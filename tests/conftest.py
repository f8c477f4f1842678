"""Shared test set-up: deterministic seeding per test, torch on 2 threads, hypothesis profile.

Every test starts from a seed derived from its node id, so a failure reproduces when the
test is run alone. Hypothesis runs without a deadline (the first call of a Numba kernel
compiles it) and with few examples; ``HYPOTHESIS_PROFILE=thorough`` runs more.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

import minigan

torch.set_num_threads(2)

settings.register_profile(
    "minigan",
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("minigan"), max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "minigan"))


def _seed_of(nodeid: str) -> int:
    return zlib.crc32(nodeid.encode())


@pytest.fixture(autouse=True)
def _deterministic(request: pytest.FixtureRequest):
    """Seed minigan, NumPy and torch from the test's id; check grad mode is left on."""
    seed = _seed_of(request.node.nodeid)
    minigan.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    yield
    assert minigan.is_grad_enabled(), "a test left minigan's grad mode disabled"


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A NumPy generator seeded from the test's id."""
    return np.random.default_rng(_seed_of(request.node.nodeid))
