"""The JupyterHub course cycle through nbgrader's exchange, end to end (docs/grading.md, "On a JupyterHub").

release_assignment -> two students fetch_assignment into their own homes -> they submit -> the instructor
collects -> the batch grader autogrades the collected course folder through the Dask engine, in the
sandbox -> feedback with the hidden tests removed -> release_feedback -> each student fetch_feedback.
Each student must receive their own page and nothing of the hidden tests.

nbgrader's exchange classes run in this process, with each student's HOME and working folder; the
student id is given explicitly (on a hub it is the account's name; here every step runs as one user).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import nbformat
import pytest
from test_grading_batch import CHAPTER, HIDDEN_1, HIDDEN_2, WRITTEN_ID, WRITTEN_MODEL, _chapter

from course_lib.tools import notebooks as nbs
from course_lib.grading import batch

pytestmark = pytest.mark.slow

COURSE = "cnn-attention"
#: student -> (the answer they write, the score it must get, a line only their page may show, their
#: written answer (graded by hand; None: left as released))
STUDENTS = {
    "alice": ("def double(x):\n    return x + x  # alice's own way", 3.0, "alice's own way",
              "Adding x to itself doubles it: alice writes this"),
    "bob": ("def double(x):\n    return abs(x) * 2  # bob forgets the sign", 0.0, "bob forgets the sign", None),
}


@contextlib.contextmanager
def _as(home: Path):
    """Run as a person in their home folder: HOME and the working folder point there."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ["HOME"] = str(home)
    os.chdir(home)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _student_step(kind: str, home: Path, exchange: Path, student: str) -> None:
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeFetchFeedback, ExchangeSubmit
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.course_id = COURSE
    config.CourseDirectory.assignment_id = CHAPTER
    config.CourseDirectory.student_id = student
    config.Exchange.root = str(exchange)
    config.Exchange.assignment_dir = str(home)
    cls = {"fetch": ExchangeFetchAssignment, "submit": ExchangeSubmit, "feedback": ExchangeFetchFeedback}[kind]
    with _as(home):
        coursedir = CourseDirectory(config=config)
        cls(coursedir=coursedir, authenticator=Authenticator(config=config), config=config).start()


def _instructor(root: Path, exchange: Path):
    grader = nbs.api(root)
    grader.config.Exchange.root = str(exchange)
    grader.coursedir.course_id = COURSE
    return grader


def _require(result: dict, what: str) -> None:
    assert result.get("success"), f"nbgrader {what} failed:\n{result.get('error') or result.get('log')}"


def test_release_fetch_submit_collect_grade_feedback_fetch(tmp_path):
    src, root, exchange = tmp_path / "src", tmp_path / "course", tmp_path / "exchange"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter(written=True)))  # with a written question
    exchange.mkdir()
    exchange.chmod(0o777)
    with batch._fast_alembic():
        nbs.new_course(root, [CHAPTER], source_root=src)  # the instructor's course: source, release, gradebook
    _require(_instructor(root, exchange).release_assignment(CHAPTER), "release_assignment")

    homes = {}
    for student, (answer, _, _, text) in STUDENTS.items():
        home = homes[student] = tmp_path / "home" / student
        home.mkdir(parents=True)
        _student_step("fetch", home, exchange, student)
        fetched = home / CHAPTER / f"{CHAPTER}.ipynb"
        nb = nbformat.read(fetched, as_version=4)
        assert HIDDEN_1 not in fetched.read_text(encoding="utf-8"), "the release must not hold hidden tests"
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
                cell.source = answer
            if text and cell.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN_ID:
                cell.source = text
        nbformat.write(nb, fetched)
        _student_step("submit", home, exchange, student)

    _require(_instructor(root, exchange).collect(CHAPTER), "collect")
    assert sorted(p.name for p in (root / "submitted").iterdir()) == sorted(STUDENTS)

    run = batch.grade_submissions(CHAPTER, root, out=root, workers=1, cell_timeout=15, source_root=src,
                                  progress=False)
    assert run.scores == {s: score for s, (_, score, _, _) in STUDENTS.items()}, run.rows
    assert run.gradebook_scores() == run.scores
    # the written answer: left for manual grading when answered, 0 when left as released (as nbgrader does)
    assert {r["student"]: r["pending"] for r in run.rows} == {
        s: ({WRITTEN_ID: 2.0} if text else {}) for s, (_, _, _, text) in STUDENTS.items()}
    _require(_instructor(root, exchange).release_feedback(CHAPTER), "release_feedback")

    pages = {}
    for student, home in homes.items():
        _student_step("feedback", home, exchange, student)
        found = sorted((home / CHAPTER / "feedback").rglob("*.html"))
        assert len(found) == 1, (student, found)
        pages[student] = found[0].read_text(encoding="utf-8")
    for student, (_, score, mark, text) in STUDENTS.items():
        page = pages[student]
        assert mark in page, f"{student} did not receive their own feedback"
        others = [m for s, (_, _, m, _) in STUDENTS.items() if s != student]
        assert not any(m in page for m in others), f"{student} received someone else's feedback"
        assert HIDDEN_1 not in page and HIDDEN_2 not in page and "_secret_value" not in page, student
        assert "hidden tests ran here" in page
        assert WRITTEN_MODEL not in page and "Rubric" not in page, f"{student} saw the written answer's model"
        if text:
            assert text in page and "graded by hand" in page, f"{student}'s written answer is not on their page"
        assert f"Score: {score:g}" in page or f"{score:g} / 5" in page or f"{score:g}/5" in page, student
