"""Shared pytest set-up: the device parametrisation, a fixed seed per test, and small generic helpers.

Keep this file generic: chapter-specific fixtures belong in the test module that uses them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Test helper modules (reference_formulas, mutants, ...) sit beside the tests and are imported by
# plain name; make that work whether or not tests/ ever becomes a package.
TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

HAS_CUDA = torch.cuda.is_available()

# Test tensors are tiny: intra-op threads only add synchronisation, and under pytest-xdist (one
# process per core) they oversubscribe the CPU. Measured on 2 cores: a 1x1 conv on (2, 32, 7, 5)
# takes ~20 us with one thread and ~25 ms with two while the other core is busy.
# COURSE_TEST_THREADS overrides it (e.g. for a serial run of heavier tests).
torch.set_num_threads(int(os.environ.get("COURSE_TEST_THREADS", "1")))

#: The parametrisation behind the ``device`` fixture: CUDA cases skip cleanly without a GPU.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device; none found")],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every test that asks for ``device`` runs on the CPU, and on CUDA where a GPU is present."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """The same random numbers for a test whatever order or worker (xdist) it runs in."""
    torch.manual_seed(0)


@pytest.fixture
def generator() -> torch.Generator:
    """A private, seeded CPU generator, so one helper's draws do not shift another's."""
    return torch.Generator().manual_seed(0)
