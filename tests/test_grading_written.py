"""WRITTEN questions: markdown answers graded by hand (nbgrader metadata ``grade`` and ``solution``).

nbgrader never scores such an answer automatically: an answer left as released ("YOUR ANSWER HERE") gets 0,
any other is left ``needs_manual_grade`` with no score, for the instructor's manual grading. The course
grader must do the same (score = the auto-graded points, the written points pending), tell the instructor
and the student so, and show the student's text in the feedback (never the model answer or its rubric).
The shared helper that says "the solution autogrades to full marks" (``notebooks.full_marks_problems``,
used by tests/test_chapters.py and tests/test_pipeline.py) counts the auto-graded points and requires the
written cells to be pending; it must fail when a written cell is scored automatically.

One small synthetic chapter: test_grading_batch's demo (3 auto-graded points) with one written question
(2 points by hand).
"""
from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest
from test_grading_batch import CHAPTER, HIDDEN_1, HIDDEN_2, WRITTEN_ID, WRITTEN_MODEL, _answer, _chapter

from course_lib.tools import notebooks as nbs
from course_lib.grading import batch
from course_lib.grading.common import quiet_sqlalchemy

pytestmark = pytest.mark.slow

ALICE_TEXT = "Because + joins two strings, so x + x repeats the text: alice's own words."
#: student -> (their code answer, what they do with the written cell, expected auto score, pending points)
SUBMISSIONS = {
    "alice": ("def double(x):\n    return x + x", ("markdown", ALICE_TEXT), 3.0, 2.0),
    "bob": (None, None, 0.0, 0.0),  # the untouched release: the written answer is 0 automatically, as in nbgrader
    # turns the written cell into a code cell that "passes": nbgrader puts the markdown cell type back
    "dan": ("def double(x):\n    return 2 * x", ("code", "print('full marks please')"), 3.0, 2.0),
}


def _submission(rel: Path, code: str | None, written: tuple[str, str] | None) -> nbformat.NotebookNode:
    nb = _answer(rel, code) if code else nbformat.read(nbs.notebook_path(CHAPTER, rel, nbs.RELEASE), as_version=4)
    for index, cell in enumerate(nb.cells):
        if written and cell.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN_ID:
            kind, text = written
            new = nbformat.v4.new_code_cell(text) if kind == "code" else nbformat.v4.new_markdown_cell(text)
            new.metadata = cell.metadata
            new["id"] = cell.get("id", WRITTEN_ID)
            nb.cells[index] = new
    return nb


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("written")
    src, rel, subs = folder / "src", folder / "rel", folder / "submissions"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter(written=True)))
    with batch._fast_alembic():
        nbs.new_course(rel, [CHAPTER], source_root=src)
    subs.mkdir()
    for student, (code, text, _, _) in SUBMISSIONS.items():
        nbformat.write(_submission(rel, code, text), subs / f"{student}_{CHAPTER}.ipynb")
    run = batch.grade_submissions(CHAPTER, subs, out=folder / "out", workers=1, cell_timeout=15, source_root=src,
                                  progress=False)
    return {"src": src, "rel": rel, "subs": subs, "run": run, "folder": folder}


def test_release_asks_for_the_answer_and_hides_model_answer_and_rubric(written):
    released = nbformat.read(nbs.notebook_path(CHAPTER, written["rel"], nbs.RELEASE), as_version=4)
    cell = next(c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN_ID)
    assert cell.cell_type == "markdown" and cell.source.strip() == "YOUR ANSWER HERE"
    text = nbs.notebook_path(CHAPTER, written["rel"], nbs.RELEASE).read_text(encoding="utf-8")
    assert WRITTEN_MODEL not in text and "Rubric" not in text


def test_plain_nbgrader_autograde_leaves_written_answers_for_manual_grading(written, tmp_path):
    """The anchor: the real ``nbgrader autograde`` command, no sandbox (COURSE_SANDBOX=off)."""
    from nbgrader.api import Gradebook

    _, grades = batch._plain_nbgrader(CHAPTER, written["subs"], tmp_path / "plain", written["src"])
    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{tmp_path / 'plain' / 'gradebook.db'}") as gb:
        for student, (_, text, auto, pending) in SUBMISSIONS.items():
            result = nbs.grades_of(gb.find_submission_notebook(CHAPTER, CHAPTER, student))
            grade = gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, student)
            if text:  # answered: no automatic score, waiting for the instructor
                assert grade.auto_score is None and grade.needs_manual_grade, student
            else:  # left as released: 0, nothing to grade (nbgrader's rule for unchanged answers)
                assert grade.auto_score == 0 and not grade.needs_manual_grade, student
            assert (result["score"], result["pending"]) == (auto, {WRITTEN_ID: 2.0} if pending else {}), student
    written["plain"] = grades


def test_course_grader_scores_auto_graded_points_and_leaves_written_pending(written):
    from nbgrader.api import Gradebook

    run = written["run"]
    rows = {r["student"]: r for r in run.rows}
    for student, (_, _, auto, pending) in SUBMISSIONS.items():
        row = rows[student]
        assert row["status"] == "graded", row
        assert (row["score"], row["max_score"]) == (auto, 5.0), row
        assert row["pending"] == ({WRITTEN_ID: 2.0} if pending else {}), row
    with quiet_sqlalchemy(), Gradebook(run.gradebook, "cnn-attention") as gb:
        for student, (_, text, _, _) in SUBMISSIONS.items():
            grade = gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, student)
            assert grade.needs_manual_grade == bool(text), student
            assert grade.auto_score == (None if text else 0.0), student
    assert run.gradebook_scores() == run.scores
    if "plain" in written:  # the same cells as plain nbgrader (the test above ran first)
        assert {s: r["cells"] for s, r in rows.items()} == written["plain"]


def test_summary_and_csv_say_what_is_left_to_grade_by_hand(written):
    run = written["run"]
    summary = run.summary_path.read_text(encoding="utf-8")
    assert "2 points to grade by hand (written_why): 3/3 of the auto-graded points" in summary
    assert "2 submissions with written answers to grade by hand" in summary
    with open(run.csv_path, newline="", encoding="utf-8") as fh:
        table = {r["student"]: r for r in csv.DictReader(fh)}
    assert (table["alice"]["pending_manual"], table["alice"][WRITTEN_ID], table["alice"]["score"]) == ("2", "", "3")
    assert (table["bob"]["pending_manual"], table["bob"][WRITTEN_ID]) == ("0", "0")


def test_feedback_shows_the_students_text_and_says_it_is_graded_by_hand(written):
    run = written["run"]
    alice = run.feedback(("alice")).read_text(encoding="utf-8")
    assert "alice&#39;s own words" in alice or "alice's own words" in alice
    assert "graded by hand" in alice and "Score: 3.0 / 5.0" in alice
    dan = run.feedback("dan").read_text(encoding="utf-8")
    assert "full marks please" in dan and "graded by hand" in dan
    bob = run.feedback("bob").read_text(encoding="utf-8")
    assert "YOUR ANSWER HERE" in bob and "graded by hand" not in bob
    for page in (alice, dan, bob):
        assert WRITTEN_MODEL not in page and "Rubric" not in page
        assert HIDDEN_1 not in page and HIDDEN_2 not in page and "hidden tests ran here" in page


def test_full_marks_helper_counts_auto_graded_points_and_wants_written_pending(written, tmp_path):
    """``notebooks.full_marks_problems``: the solution is full marks with its written cell pending; a
    written cell scored automatically, or an auto-graded cell that lost a point, is not."""
    from nbgrader.api import Gradebook

    source = nbs.notebook_path(CHAPTER, written["src"])
    with batch._fast_alembic():
        grader = nbs.new_course(tmp_path, [CHAPTER], source_root=written["src"])
    with quiet_sqlalchemy():
        solved = nbs.autograde(grader, tmp_path, CHAPTER, "solution", source)
    nb = nbformat.read(source, as_version=4)
    assert nbs.manual_cells(nb) == {WRITTEN_ID: "markdown"}
    assert (solved["score"], solved["auto_max_score"], solved["max_score"]) == (3.0, 3.0, 5.0), solved
    assert solved["pending"] == {WRITTEN_ID: 2.0}
    assert nbs.full_marks_problems(solved, nb) == []
    assert solved["score"] != solved["max_score"], "the old check (score == max_score) cannot hold with a written cell"

    # counter-test: a grader that scored the written answer automatically (as a code cell would be)
    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        grade = gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, "solution")
        grade.auto_score, grade.needs_manual_grade = 2.0, False
        gb.db.commit()
        scored = nbs.grades_of(gb.find_submission_notebook(CHAPTER, CHAPTER, "solution"))
    assert scored["score"] == scored["max_score"] == 5.0 and scored["pending"] == {}
    problems = nbs.full_marks_problems(scored, nb)
    assert len(problems) == 1 and "written_why" in problems[0] and "scored automatically" in problems[0], problems

    # and the auto-graded side still bites: one point lost in a test cell
    lost = {**solved, "cells": {**solved["cells"], "test_double_str": (0.0, 1.0)}}
    assert nbs.full_marks_problems(lost, nb) == ["test_double_str lost points: 0 of 1"]


def test_course_grader_never_takes_an_automatic_score_for_a_written_cell(written):
    """The client's merge (what a worker reports is data): a written answer reported with points by a
    worker is still left for manual grading, never scored automatically."""
    from nbgrader.api import Gradebook

    run = written["run"]
    info = {"grade_cells": [("test_double", 2.0), ("test_double_str", 1.0), (WRITTEN_ID, 2.0)],
            "manual": [WRITTEN_ID]}
    result = {"student": "alice", "status": "graded", "timestamp": None, "comments": [],
              "grades": [{"name": "test_double", "auto_score": 2.0}, {"name": "test_double_str", "auto_score": 1.0},
                         {"name": WRITTEN_ID, "auto_score": 2.0}]}
    with quiet_sqlalchemy(), Gradebook(run.gradebook, "cnn-attention") as gb:
        row = batch._merge(gb, CHAPTER, result, info)
        grade = gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, "alice")
        assert grade.auto_score is None and grade.needs_manual_grade
    assert (row["score"], row["pending"]) == (3.0, {WRITTEN_ID: 2.0}), row


def test_feedback_after_manual_grading_has_the_final_score_and_still_no_hidden_tests(written):
    """The instructor grades alice's written answer by hand (as formgrader does: a manual score and a
    comment in the gradebook); ``feedback.regenerate`` renders her page again with it; dan's answer is
    still waiting and keeps its note."""
    from nbgrader.api import Gradebook

    from course_lib.grading import feedback

    run = written["run"]
    before = run.feedback("alice").read_text(encoding="utf-8")
    with quiet_sqlalchemy(), Gradebook(run.gradebook, "cnn-attention") as gb:
        grade = gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, "alice")
        grade.manual_score = 1.5
        comment = gb.find_comment(WRITTEN_ID, CHAPTER, CHAPTER, "alice")
        comment.manual_comment = "Right idea; say what + does to two strings."
        gb.db.commit()
    with quiet_sqlalchemy():
        done = feedback.regenerate(run.out, CHAPTER)
    assert done == {student: "written" for student in SUBMISSIONS}, done
    alice = run.feedback("alice").read_text(encoding="utf-8")
    assert alice != before
    assert "Score: 4.5 / 5.0" in alice and "say what + does to two strings" in alice
    assert "graded by hand" not in alice
    assert "alice&#39;s own words" in alice or "alice's own words" in alice
    dan = run.feedback("dan").read_text(encoding="utf-8")
    assert "graded by hand" in dan and "Score: 3.0 / 5.0" in dan
    for page in (alice, dan, run.feedback("bob").read_text(encoding="utf-8")):
        assert HIDDEN_1 not in page and HIDDEN_2 not in page and "_secret_value" not in page
        assert WRITTEN_MODEL not in page and "Rubric" not in page and "hidden tests ran here" in page
