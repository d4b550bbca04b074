"""The chapter pipeline itself, on a tiny synthetic chapter: release, autograde, stub = 0, setup cell."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import notebooks as nbs

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
            # a WRITTEN question: nbgrader leaves the answer for manual grading
            nbs._nbgrader(nbs.md("### BEGIN SOLUTION\nx + x is 2x.\n\n**Rubric (2 points):** says 2x.\n### END SOLUTION"),
                          grade=True, solution=True, points=2, grade_id="written_double"),
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
    assert "YOUR ANSWER HERE" in released and "Rubric" not in released  # the written answer's model and rubric


@pytest.mark.slow
def test_autograde_solution_full_marks_and_stub_zero(demo_course):
    grader, root, source = demo_course
    solved = nbs.autograde(grader, root, DEMO, "alice", source)
    # full marks = every auto-graded point; the written answer waits for the instructor
    assert solved["score"] == solved["auto_max_score"] == 3 and solved["max_score"] == 5, solved
    assert solved["pending"] == {"written_double": 2}, solved
    assert nbs.full_marks_problems(solved, nbformat.read(source, as_version=4)) == []
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


def test_setup_cell_installs_the_published_student_wheel_on_colab(monkeypatch):
    # the counter-test: the same cell does act when it believes it is on Colab; it installs the student
    # package (tests/test_colab_setup.py installs it for real), never the repository with its solutions
    calls = _run_setup_cell(monkeypatch, colab=True)
    assert len(calls) == 1
    command = calls[0][0][0]
    assert command[1:4] == ["-m", "pip", "install"] and command[-1] == nbs.publishing().wheel_url
    assert not any("git+" in part for part in command)


def test_setup_cells_and_readme_colab_links_follow_course_toml():
    assert nbs.sync_publishing(write=False) == [], "out of step with course.toml: run `make release`"
    readme = (nbs.REPO / "README.md").read_text(encoding="utf-8")
    linked = [m.group(1) for m in nbs.COLAB_LINK.finditer(readme)]
    assert sorted(linked) == nbs.chapters(nbs.REPO, nbs.RELEASE), "README: one Colab link per released chapter"
    where = nbs.publishing()
    assert all(where.colab_url(chapter) in readme for chapter in linked)


def _copy_publishing_files(root: Path, repository: str) -> None:
    for name in ("pyproject.toml", "README.md"):
        (root / name).write_text((nbs.REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    toml = (nbs.REPO / nbs.PUBLISH_FILE).read_text(encoding="utf-8")
    (root / nbs.PUBLISH_FILE).write_text(toml.replace(nbs.publishing().repository, repository), encoding="utf-8")
    chapter = nbs.chapters()[0]
    nbs.write_atomic(nbs.notebook_path(chapter, root), nbs.notebook_path(chapter).read_text(encoding="utf-8"))


def test_release_writes_a_moved_repository_into_setup_cells_and_readme(tmp_path):
    _copy_publishing_files(tmp_path, "https://github.com/a-lecturer/attention-fork")
    chapter = nbs.chapters()[0]
    assert nbs.sync_publishing(tmp_path, write=False) == [f"solutions/{chapter}/{chapter}.ipynb: setup cell",
                                                           "README.md: Colab links"]
    assert len(nbs.sync_publishing(tmp_path)) == 2 and nbs.sync_publishing(tmp_path) == []
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "github/a-lecturer/attention-fork/blob/main/notebooks/01_se/01_se.ipynb" in readme
    assert nbs.publishing().repository not in readme.split("## How the checks work")[0].split("## Chapters")[1]
    nb = nbformat.read(nbs.notebook_path(chapter, tmp_path), as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code").source
    assert "https://github.com/a-lecturer/attention-fork/releases/download/v" in setup


@pytest.mark.parametrize("repository", ["git@github.com:someone/fork.git", "https://gitlab.com/someone/fork"])
def test_publishing_refuses_an_address_colab_cannot_open(tmp_path, repository):
    _copy_publishing_files(tmp_path, repository)
    with pytest.raises(ValueError, match=r"course_lib.tools.notebooks: \[publish\] repository .* https://github.com/OWNER/NAME"):
        nbs.publishing(tmp_path)


@pytest.mark.parametrize("chapter", nbs.chapters())
def test_every_chapter_starts_with_the_setup_cell(chapter):
    for folder in (nbs.SOURCE, nbs.RELEASE):
        nb = nbformat.read(nbs.notebook_path(chapter, folder=folder), as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert first_code.source == nbs.SETUP_CELL, f"{folder}/{chapter}: first code cell is not the setup cell"


def test_book_address_follows_course_toml_and_the_readme_links_it():
    # the book (make book) is published on the repository's GitHub Pages (.github/workflows/release.yml)
    from course_lib.tools import book

    address = book.book_url()
    assert address == book.pages_url(nbs.publishing()), (
        f"course.toml: book = {address!r} is not where GitHub Pages serves {nbs.publishing().repository}")
    readme = (nbs.REPO / "README.md").read_text(encoding="utf-8")
    assert f"]({address})" in readme, "README.md: no link to the book's address in course.toml"


def test_book_address_check_fails_when_the_repository_moves_alone(tmp_path):
    from course_lib.tools import book

    _copy_publishing_files(tmp_path, "https://github.com/a-lecturer/attention-fork")
    assert book.book_url(tmp_path) == book.book_url()  # only `repository` moved
    assert book.pages_url(nbs.publishing(tmp_path)) == "https://a-lecturer.github.io/attention-fork/"
    assert book.book_url(tmp_path) != book.pages_url(nbs.publishing(tmp_path))
