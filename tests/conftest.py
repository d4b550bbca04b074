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
# The same for the Jupyter kernels the notebook and grading tests start (they inherit the environment):
# with xdist's workers already on every core, a kernel's extra threads only wait for each other.
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("COURSE_TEST_THREADS", "1"))

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


# The longest work first, so that under xdist (make test: -n auto --dist loadfile) no worker is left with a
# long module at the end while the other idles. Whole modules move, in this order, keeping their tests
# together (their module-scoped fixtures are built once); every other test keeps its place after them.
# Seconds each took on 2 cores (junitxml, November 2026): chapters 239, catalog_nbgrader 169 (before its
# submissions were cut short), hostile 130, grading_batch 56, bundle 30, catalog 12, capstone 10.
LONGEST_FIRST = ("test_browser.py", "test_chapters.py", "test_catalog_nbgrader.py", "test_hostile.py",
                 "test_hub.py", "test_hub_commands.py", "test_grading_entry_points.py", "test_grading_engine.py", "test_grading_batch.py", "test_bundle.py", "test_catalog.py", "test_capstone.py", "test_pipeline.py", "test_parity_timm.py",
                 "test_sandbox.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    def within(item) -> int:  # in test_chapters.py the student's run of the capstone is the longest test
        return 0 if "executes_top_to_bottom" in item.name else 1

    items[:] = sorted(items, key=lambda item: (rank(item), within(item) if rank(item) < len(LONGEST_FIRST) else 0))


def once_per_session(tmp_path_factory, worker_id: str, name: str, build) -> dict:
    """``build(folder)`` run once per test session, even when xdist spreads a module over processes (the
    FileLock pattern of pytest-xdist's documentation); every caller gets its JSON-ready result.

    (xdist's ``--dist loadgroup`` would keep a module in one worker, but it does not work with pytest 9.2:
    it renames ``item._nodeid``, which pytest no longer reads.)
    """
    import json
    import shutil

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the session's folder, above each worker's own
    folder, done = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            done.write_text(json.dumps(build(folder)), encoding="utf-8")
    return json.loads(done.read_text(encoding="utf-8"))


@pytest.fixture
def pyplot():
    """matplotlib.pyplot on the Agg backend (no window opens); every figure the test draws is closed after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")
