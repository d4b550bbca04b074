"""The chapter pipeline itself, on a tiny synthetic chapter: release, autograde, stub = 0, setup cell."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_lib import notebooks as nbs

DEMO = "99_demo"


def _demo_notebook() -> nbformat.NotebookNode:
    return nbs.new_notebook(
        [
            nbs.md("# Demo\nWrite `double`."),
            nbs.solution("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "double"),
            nbs.test(
                "assert double(3) == 6, 'double(3) should be 6'\n"
                "### BEGIN HIDDEN TESTS\nassert double(-1) == -2\n### END HIDDEN TESTS",
                "test_double",
                2,
            ),
            nbs.test(
                "import sys\nprint('a warning', file=sys.stderr)\nassert double(0) == 0",
                "test_double_stderr_warning",
                1,
            ),
        ],
        budget_s=60,
    )


@pytest.fixture(scope="module")
def demo_course(tmp_path_factory):
    source_root = tmp_path_factory.mktemp("src")
    path = source_root / nbs.SOURCE / DEMO / f"{DEMO}.ipynb"
    nbs.write_atomic(path, nbs.dumps(_demo_notebook()))
    root = tmp_path_factory.mktemp("course")
    grader = nbs.new_course(root, [DEMO], source_root=source_root)
    return grader, root, path


@pytest.mark.slow
def test_release_strips_solution_and_hidden_tests(demo_course):
    _, root, _ = demo_course
    released = (root / nbs.RELEASE / DEMO / f"{DEMO}.ipynb").read_text()
    assert "raise NotImplementedError()" in released
    assert "return 2 * x" not in released
    assert "double(-1)" not in released


@pytest.mark.slow
def test_autograde_solution_full_marks_and_stub_zero(demo_course):
    grader, root, source = demo_course
    solved = nbs.autograde(grader, root, DEMO, "alice", source)
    assert solved["score"] == solved["max_score"] == 3, solved
    stub = nbs.autograde(grader, root, DEMO, "bob", root / nbs.RELEASE / DEMO / f"{DEMO}.ipynb")
    assert stub["score"] == 0, stub
    assert all(score == 0 for score, _ in stub["cells"].values()), stub["cells"]


def test_normalize_is_stable_and_strips_outputs():
    nb = _demo_notebook()
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi")]
    nb.cells[1].execution_count = 7
    nb.cells[1].metadata["collapsed"] = True
    once = nbs.dumps(nbs.normalize(nb))
    twice = nbs.dumps(nbs.normalize(nbformat.reads(once, as_version=4)))
    assert once == twice
    assert '"outputs": []' in once and '"collapsed"' not in once and '"execution_count": null' in once


def _run_setup_cell(monkeypatch, *, colab: bool) -> list:
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    if colab:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    namespace: dict = {}
    exec(compile(nbs.SETUP_CELL, "<setup cell>", "exec"), namespace)
    assert str(namespace["DEVICE"]) in {"cpu", "cuda"}
    return calls


def test_setup_cell_is_a_no_op_off_colab(monkeypatch):
    assert _run_setup_cell(monkeypatch, colab=False) == []


def test_setup_cell_installs_course_lib_on_colab(monkeypatch):
    # the counter-test: the same cell does act when it believes it is on Colab
    calls = _run_setup_cell(monkeypatch, colab=True)
    assert len(calls) == 1 and any("pip" in str(arg) for arg in calls[0][0][0])


@pytest.mark.parametrize("chapter", nbs.chapters())
def test_every_chapter_starts_with_the_setup_cell(chapter):
    for folder in (nbs.SOURCE, nbs.RELEASE):
        nb = nbformat.read(nbs.notebook_path(chapter, folder=folder), as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert first_code.source == nbs.SETUP_CELL, f"{folder}/{chapter}: first code cell is not the setup cell"
