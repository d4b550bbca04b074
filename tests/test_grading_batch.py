"""The batch grader (course_lib.grading): identical grades serial, parallel and with plain nbgrader; one
consistent gradebook row per student; error rows that stop nothing; feedback that shows messages and never
the hidden tests; the collection of submissions in every accepted layout.

Everything runs on a tiny synthetic chapter (no torch import in its cells) so that a kernel costs about a
second; the real chapters go through tests/test_chapters.py, and the hostile suite through test_hostile.py.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import once_per_session

from course_lib.tools import notebooks as nbs
from course_lib.grading import batch, feedback
from course_lib.grading.collect import SubmissionLayoutError, find_submissions, student_id
from course_lib.grading.common import quiet_sqlalchemy
from course_lib.grading.worker import precheck

CHAPTER, OTHER = "98_batch", "97_other"
SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
HIDDEN_1 = "assert double(-1) == -2, 'double(-1) should be -2'"
HIDDEN_2 = "_secret_value = double('ab')"


WRITTEN_ID = "written_why"
WRITTEN_MODEL = "Doubling is adding a number to itself (model answer)."
WRITTEN_RUBRIC = "**Rubric (2 points):** 1 point for x + x, 1 point for saying it works for strings too."


def written_cell(grade_id: str = WRITTEN_ID, points: float = 2) -> nbformat.NotebookNode:
    """A WRITTEN question as the chapters have them: a markdown answer cell graded by hand."""
    return nbs._nbgrader(nbs.md(f"### BEGIN SOLUTION\n{WRITTEN_MODEL}\n\n{WRITTEN_RUBRIC}\n### END SOLUTION"),
                         grade=True, solution=True, points=points, grade_id=grade_id)


def _chapter(written: bool = False) -> nbformat.NotebookNode:
    """The batch demo chapter (3 auto-graded points); ``written``: with a WRITTEN question (2 points by hand)."""
    cells = [
        nbs.md("# Batch demo\nWrite `double`."),
        nbs.solution(SOLUTION, "double"),
        nbs.test("assert double(3) == 6, 'double(3) should be 6'\n"
                 f"### BEGIN HIDDEN TESTS\n{HIDDEN_1}\n### END HIDDEN TESTS", "test_double", 2),
        # a warning on stderr must not cost the point (nbgrader_config's IgnorePattern)
        nbs.test("import sys\nprint('a warning', file=sys.stderr)\n### BEGIN HIDDEN TESTS\n"
                 f"{HIDDEN_2}\nassert _secret_value == 'abab', 'strings double too'\n### END HIDDEN TESTS",
                 "test_double_str", 1),
    ]
    if written:
        cells += [nbs.md("**Written question.** In one sentence: why does `x + x` also double a string?"),
                  written_cell()]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["course"] = {"time_budget_s": 30}
    return nbs.normalize(nb)


def _other_chapter() -> nbformat.NotebookNode:
    cells = [nbs.solution("def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION", "triple"),
             nbs.test("assert triple(1) == 3", "test_triple", 1)]
    return nbs.normalize(nbformat.v4.new_notebook(cells=cells))


def _answer(rel: Path, body: str) -> nbformat.NotebookNode:
    nb = nbformat.read(nbs.notebook_path(CHAPTER, rel, nbs.RELEASE), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
            cell.source = body
    return nb


# student -> (their answer, expected score, expected status)
GRADABLE = {
    "alice": ("def double(x):\n    return x + x", 3.0, "graded"),  # right, not the reference's code
    "carol": ("def double(x):\n    return abs(x) * 2", 0.0, "graded"),  # visible passes, hidden fail
    # one cell passes, one fails; and the answer quotes a line of the hidden tests (a guess, or a copy
    # from a classmate's leaked feedback): the feedback guard must send the plain page instead
    "dan": ("def double(x):\n    return x * 2 if not isinstance(x, int) else abs(x) * 2\n# " + HIDDEN_1,
            1.0, "graded"),
    # the kernel dies in the answer cell: the grading sandbox grades what ran before (nothing here) and
    # marks every later cell as not run (plain nbgrader fails the whole notebook instead)
    "gina": ("import os\nos._exit(1)", 0.0, "graded"),
}
PLAIN = ("alice", "dan")  # graded again by plain nbgrader: the two with points
# student -> (words in the status, expected score)
BROKEN = {
    "dave": ("malformed notebook", 0.0),
    "erin": ("empty notebook", 0.0),
    "frank": (f"a notebook of {OTHER}", 0.0),
}


def _build_and_grade(folder: Path) -> dict:
    """The chapter, the class's submissions, and their grades: parallel, serial and by plain nbgrader."""
    src, rel, subs = folder / "src", folder / "rel", folder / "submissions"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter()))
    nbs.write_atomic(nbs.notebook_path(OTHER, src), nbs.dumps(_other_chapter()))
    with batch._fast_alembic():
        nbs.new_course(rel, [CHAPTER, OTHER], source_root=src)
    subs.mkdir()
    for student, (body, _, _) in GRADABLE.items():
        nbformat.write(_answer(rel, body), subs / f"{student}_{CHAPTER}.ipynb")
    (subs / f"dave_{CHAPTER}.ipynb").write_text('{"cells": [', encoding="utf-8")
    nbformat.write(nbformat.v4.new_notebook(), subs / f"erin_{CHAPTER}.ipynb")
    shutil.copy(nbs.notebook_path(OTHER, rel, nbs.RELEASE), subs / f"frank_{CHAPTER}.ipynb")

    common = dict(cell_timeout=15, source_root=src, progress=False)
    parallel = batch.grade_submissions(CHAPTER, subs, out=folder / "parallel", workers=2, **common)
    serial = batch.grade_submissions(CHAPTER, subs, out=folder / "serial", workers=1, **common)
    with batch._fast_alembic():
        grader = nbs.new_course(folder / "plain", [CHAPTER], source_root=src)
    with quiet_sqlalchemy():
        plain = {s: nbs.autograde(grader, folder / "plain", CHAPTER, s, subs / f"{s}_{CHAPTER}.ipynb") for s in PLAIN}
    plain = {s: {**r, "cells": {k: list(v) for k, v in r["cells"].items()}} for s, r in plain.items()}
    return {"src": str(src), "rel": str(rel), "submissions": str(subs), "plain": plain,
            "parallel": parallel.to_dict(), "serial": serial.to_dict()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, worker_id):
    """Built and graded once per test session, even when xdist spreads this module over processes."""
    data = once_per_session(tmp_path_factory, worker_id, "grading-batch", _build_and_grade)
    data["plain"] = {s: {**r, "cells": {k: tuple(v) for k, v in r["cells"].items()}} for s, r in data["plain"].items()}
    for key in ("src", "rel", "submissions"):
        data[key] = Path(data[key])
    return data


@pytest.fixture(scope="module")
def runs(graded):
    return batch.GradeRun.from_dict(graded["parallel"]), batch.GradeRun.from_dict(graded["serial"])


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """(source root holding both chapters, their releases): for tests that grade a batch of their own."""
    src, rel = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("rel")
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter()))
    nbs.write_atomic(nbs.notebook_path(OTHER, src), nbs.dumps(_other_chapter()))
    with batch._fast_alembic():
        nbs.new_course(rel, [CHAPTER, OTHER], source_root=src)
    return src, rel


@pytest.fixture(scope="module")
def plain_nbgrader(graded):
    return graded["plain"]


# --------------------------------------------------------------------------------------------
# identical grades
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_parallel_grades_equal_serial_cell_by_cell(runs):
    parallel, serial = runs
    assert [r["student"] for r in parallel.rows] == [r["student"] for r in serial.rows] == sorted({**GRADABLE, **BROKEN})
    for p, s in zip(parallel.rows, serial.rows):
        assert p["cells"] == s["cells"], p["student"]
        assert (p["score"], p["max_score"], p["status"]) == (s["score"], s["max_score"], s["status"]), p["student"]


@pytest.mark.slow
def test_grades_equal_plain_nbgrader_autograde(runs, plain_nbgrader):
    parallel, _ = runs
    rows = {r["student"]: r for r in parallel.rows}
    for student, plain in plain_nbgrader.items():
        assert rows[student]["cells"] == plain["cells"], student
        assert rows[student]["score"] == plain["score"], student


@pytest.mark.slow
def test_every_submission_gets_its_expected_score_and_status(runs):
    parallel, _ = runs
    rows = {r["student"]: r for r in parallel.rows}
    for student, (_, score, status) in GRADABLE.items():
        assert (rows[student]["score"], rows[student]["status"]) == (score, status), rows[student]
    for student, (words, score) in BROKEN.items():
        assert rows[student]["score"] == score and rows[student]["status"].startswith("error: "), rows[student]
        assert words in rows[student]["status"], rows[student]["status"]
    assert all(r["max_score"] == 3.0 for r in parallel.rows)


@pytest.mark.slow
def test_gradebook_holds_one_consistent_row_per_student(runs):
    from nbgrader.api import Gradebook

    for run in runs:
        assert run.gradebook_scores() == run.scores
        with Gradebook(run.gradebook, "cnn-attention") as gb:
            assert sorted(s.id for s in gb.students) == sorted(run.scores)
            subs = gb.find_assignment(CHAPTER).submissions
            assert len(subs) == len(run.rows)
            flagged = {s.student.id for s in subs if s.notebooks[0].flagged}
        assert flagged == set(BROKEN)


@pytest.mark.slow
def test_csv_histogram_and_summary_match_the_rows(runs):
    run, _ = runs
    with open(run.csv_path, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["student"], float(r["score"]), r["status"]) for r in table] == [
        (r["student"], r["score"], r["status"]) for r in run.rows
    ]
    assert {"test_double", "test_double_str"} <= set(table[0])
    assert run.histogram_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = run.summary_path.read_text(encoding="utf-8")
    assert all(student in summary for student in run.scores) and "could not be graded" in summary


# --------------------------------------------------------------------------------------------
# feedback
# --------------------------------------------------------------------------------------------
HIDDEN_SOURCE = [HIDDEN_1, HIDDEN_2, "BEGIN HIDDEN TESTS", "assert _secret_value"]


@pytest.mark.slow
def test_feedback_shows_messages_and_scores_but_no_hidden_test_nor_solution(runs):
    run, _ = runs
    text = feedback.html_text(run.feedback(student="carol").read_text(encoding="utf-8"))
    assert "double(-1) should be -2" in text  # the hidden check's message
    assert "TypeError: bad operand type for abs(): 'str'" in text  # the error, without its traceback
    assert "double(3) should be 6" in text  # the visible check itself is public
    assert "Score: 0.0 / 2.0" in text and "hidden tests ran here" in text
    for secret in HIDDEN_SOURCE:
        assert secret not in text, secret
    alice = feedback.html_text(run.feedback("alice").read_text(encoding="utf-8"))
    assert "return x + x" in alice and "return 2 * x" not in alice  # her code, never the reference's
    assert not feedback.leaked_lines(alice, HIDDEN_SOURCE)


@pytest.mark.slow
def test_stock_nbgrader_feedback_would_leak_the_hidden_tests(runs, tmp_path):
    # the counter-test: the assertions above do catch what nbgrader's own generate_feedback shows (#917)
    run, _ = runs
    root = tmp_path / "course"
    shutil.copytree(run.out, root)
    grader = nbs.api(root)
    # stock nbgrader: its own feedback chain (the course's nbgrader_config.py adds SafeFeedback to it)
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    grader.config.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor]
    with nbs.venv_on_path():
        assert grader.generate_feedback(CHAPTER, "carol", force=True)["success"]
    stock = feedback.html_text((root / "feedback" / "carol" / CHAPTER / f"{CHAPTER}.html").read_text(encoding="utf-8"))
    assert "_secret_value" in stock and "BEGIN HIDDEN TESTS" in stock


@pytest.mark.slow
def test_feedback_falls_back_to_a_plain_page_when_a_hidden_line_would_show(runs):
    run, _ = runs
    text = feedback.html_text(run.feedback("dan").read_text(encoding="utf-8"))
    assert "Score: 1 / 3" in text and "graded cell" in text and "double(-1) should be -2" in text
    assert not feedback.leaked_lines(text, HIDDEN_SOURCE)
    assert "abs(x) * 2" not in text  # the plain page shows scores and messages, not the notebook


@pytest.mark.slow
def test_every_student_gets_a_feedback_page_with_the_reason(runs):
    run, _ = runs
    for student in run.scores:
        assert run.feedback(student).is_file(), student
    page = feedback.html_text(run.feedback("dave").read_text(encoding="utf-8"))
    assert "could not be graded" in page and "malformed notebook" in page and "0 / 3" in page


def test_hide_hidden_tests_also_closes_an_unterminated_region():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("visible()\n    ### BEGIN HIDDEN TESTS\nsecret_one()\n### END HIDDEN TESTS\nafter()"),
        nbformat.v4.new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nsecret_two()"),
    ])
    assert feedback.hide_hidden_tests(nb) == 2
    assert nb.cells[0].source == f"visible()\n    {feedback.PLACEHOLDER}\nafter()"
    assert nb.cells[1].source == f"x = 1\n{feedback.PLACEHOLDER}"
    assert feedback.leaked_lines(nb, ["secret_one()", "secret_two()"]) == []


def test_short_errors_keeps_the_message_and_drops_the_code_context():
    cell = nbs.test("check()", "t", 1)
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="expected 3, got 4",
                                           traceback=["----> 2 hidden_secret(x)", "ValueError: expected 3, got 4"])]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert feedback.leaked_lines(nb, ["hidden_secret(x)"]) == ["hidden_secret(x)"]  # before: it leaks
    assert feedback.short_errors(nb) == 1
    assert feedback.leaked_lines(nb, ["hidden_secret(x)"]) == []
    assert "expected 3, got 4" in nb.cells[0].outputs[0].traceback[0]


# --------------------------------------------------------------------------------------------
# re-grading into the same gradebook, the command line, custom kernels, the time limit
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_regrades_into_the_same_gradebook_in_a_custom_kernel_and_env(graded, runs, tmp_path, capsys):
    from course_lib.grading import cli

    src, rel = graded["src"], graded["rel"]
    run, _ = runs
    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    # a kernelspec of our own, found through JUPYTER_PATH given with --env: the answer only works inside it
    spec = tmp_path / "jupyter" / "kernels" / "course-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "course test kernel", "language": "python", "env": {"COURSE_TEST_KERNEL": "on"},
    }))
    again = tmp_path / "again"
    again.mkdir()
    body = ("import os\nassert os.environ['COURSE_TEST_KERNEL'] == 'on' and os.environ['COURSE_MARK'] == 'yes'\n"
            "assert os.environ['OMP_NUM_THREADS'] == '1'  # the same in every kernel, whatever --workers\n"
            "def double(x):\n    return x + x")
    nbformat.write(_answer(rel, body), again / "carol.ipynb")  # carol fixes her notebook
    code = cli.main([CHAPTER, str(again), "--out", str(out), "--workers", "1", "--timeout", "15",
                     "--kernel", "course-test", "--env", f"JUPYTER_PATH={tmp_path / 'jupyter'}",
                     "--env", "COURSE_MARK=yes", "--source-root", str(src), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "carol" in printed and "3/3" in printed and "grades.csv" in printed
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", "cnn-attention") as gb:
        scores = {s.student.id: s.score for s in gb.find_assignment(CHAPTER).submissions}
    assert scores == {**run.scores, "carol": 3.0}  # carol regraded in place, everyone else untouched


def test_cli_refuses_ambiguous_folders_with_exit_status_2(tmp_path, capsys):
    from course_lib.grading import cli

    src = tmp_path / "src"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter()))
    subs = _touch(tmp_path / "subs", f"{CHAPTER}.ipynb")
    assert cli.main([CHAPTER, str(subs), "--out", str(tmp_path / "out"), "--source-root", str(src)]) == 2
    assert "names the chapter but no student" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([CHAPTER, str(subs), "--env", "NOVALUE"])
    assert "expected NAME=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_a_submission_past_its_time_limit_is_stopped(course, tmp_path):
    src, rel = course
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(_answer(rel, "import time\ntime.sleep(300)"), folder / "sleepy.ipynb")
    run = batch.grade_submissions(CHAPTER, folder, out=tmp_path / "out", workers=1, cell_timeout=600,
                                  student_timeout=3, source_root=src, progress=False)
    assert run.rows[0]["score"] == 0 and "ran past 3 s and was stopped" in run.rows[0]["status"], run.rows
    assert run.gradebook_scores() == {"sleepy": 0.0}
    assert run.grading_seconds < 60


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    src = tmp_path / "src"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter()))
    subs = _touch(tmp_path / "subs", f"alice_{CHAPTER}.ipynb")
    with pytest.raises(ValueError, match="unknown chapter '42_nope'"):
        batch.grade_submissions("42_nope", subs, out=tmp_path / "out", source_root=src)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        batch.grade_submissions(CHAPTER, subs, out=tmp_path / "out", workers=0, source_root=src)
    with pytest.raises(ValueError, match="cell_timeout"):
        batch.grade_submissions(CHAPTER, subs, out=tmp_path / "out", cell_timeout=-1, source_root=src)
    with pytest.raises(ValueError, match="not the course repository"):
        batch.grade_submissions(CHAPTER, subs, out=src, source_root=src)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# what cannot be graded, decided before any kernel starts
# --------------------------------------------------------------------------------------------
INFO = {"ids": ["setup", "double", "test_double"], "other_ids": {OTHER: ["setup", "triple", "test_triple"]}}


@pytest.mark.parametrize("content, why", [
    ('{"cells": [', "malformed notebook"),
    ('{"cells": [1, 2], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', "malformed notebook"),
    (nbformat.writes(nbformat.v4.new_notebook(cells=[nbs.test("t()", "test_double", 1)]))
     .replace('"grade_id": "test_double"', '"grade_id": ["x"]'), "malformed notebook"),
    (b"\xff\xfe{}", "malformed notebook (not UTF-8"),
    ("", "empty notebook"),
    (nbformat.writes(nbformat.v4.new_notebook()), "empty notebook"),
    (nbformat.writes(nbformat.v4.new_notebook(cells=[nbs.locked(nbs.code("x = 1"), "setup"),
                                                     nbs.test("t()", "test_triple", 1)])), f"a notebook of {OTHER}"),
    (nbformat.writes(nbformat.v4.new_notebook(cells=[nbs.test("t()", "test_zzz", 1)])), "another assignment"),
    (nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])), "lost their nbgrader"),
])
def test_precheck_names_why_a_notebook_cannot_be_graded(tmp_path, content, why):
    path = tmp_path / "nb.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    assert why in precheck(path, INFO, CHAPTER)


def test_precheck_accepts_a_notebook_with_some_of_the_chapter_cells(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbs.test("t()", "test_double", 1)])  # others deleted: nbgrader adds them
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert precheck(path, INFO, CHAPTER) is None


# --------------------------------------------------------------------------------------------
# collecting submissions
# --------------------------------------------------------------------------------------------
def _touch(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}", encoding="utf-8")
    return root


def _students(collection) -> dict[str, str]:
    return {s.student: s.source for s in collection.submissions}


def test_flat_lms_names_are_read_per_student(tmp_path):
    _touch(tmp_path, "alice_01_se.ipynb", "smith_j_12345_01_se.ipynb", "bob-01_SE-2.ipynb", "carol_01_se (1).ipynb",
           "01_se_dan.ipynb", "evans_LATE_777_01_se.ipynb", "frank_02_cbam.ipynb", "notes.txt",
           "clarkcara_late_1003_50003_01_se.ipynb")
    found = find_submissions("01_se", tmp_path, other_chapters=["01_se", "02_cbam"])
    assert found.layout == "flat"
    assert _students(found) == {
        "alice": "alice_01_se.ipynb", "smith_j_12345": "smith_j_12345_01_se.ipynb", "bob": "bob-01_SE-2.ipynb",
        "carol": "carol_01_se (1).ipynb", "dan": "01_se_dan.ipynb", "evans_777": "evans_LATE_777_01_se.ipynb",
        "clarkcara_1003_50003": "clarkcara_late_1003_50003_01_se.ipynb",  # Canvas writes the marker lowercase
    }
    assert found.skipped == ["frank_02_cbam.ipynb: a notebook of 02_cbam, not 01_se"]


def test_flat_names_without_the_chapter_are_the_student(tmp_path):
    found = find_submissions("01_se", _touch(tmp_path, "alice.ipynb", "Bob Marley.ipynb"))
    assert _students(found) == {"alice": "alice.ipynb", "Bob_Marley": "Bob Marley.ipynb"}


@pytest.mark.parametrize("names, words", [
    (["01_se.ipynb", "alice_01_se.ipynb"], "01_se.ipynb: it names the chapter but no student"),
    (["alice_01_se_v2.ipynb"], "sits in the middle"),
    (["01_se_alice_01_se.ipynb"], "more than once"),
    (["alice.ipynb", "bob_01_se.ipynb"], "alice.ipynb: it does not name 01_se while other files do"),
    (["alice_01_se.ipynb", "alice-01_se.ipynb"], "several submissions for the same student"),
    (["al!ce_01_se.ipynb"], "not a usable student id"),
    (["alice_01_se.ipynb", "bob/01_se/01_se.ipynb"], "mixes layouts"),
    ([], "no submissions of 01_se"),
])
def test_ambiguous_names_stop_the_collection_and_name_every_file(tmp_path, names, words):
    _touch(tmp_path, *names)
    with pytest.raises(SubmissionLayoutError, match=None) as err:
        find_submissions("01_se", tmp_path)
    assert words in str(err.value), str(err.value)


def test_every_ambiguous_file_is_listed_at_once(tmp_path):
    _touch(tmp_path, "01_se.ipynb", "x_01_se_y.ipynb", "ok_01_se.ipynb")
    with pytest.raises(SubmissionLayoutError) as err:
        find_submissions("01_se", tmp_path)
    assert "01_se.ipynb:" in str(err.value) and "x_01_se_y.ipynb:" in str(err.value)
    assert "ok_01_se.ipynb" not in str(err.value)


def test_nbgrader_layout_with_its_problems_as_rows(tmp_path):
    _touch(tmp_path, "submitted/alice/01_se/01_se.ipynb", "submitted/alice/01_se/timestamp.txt",
           "submitted/bob/01_se/my copy.ipynb", "submitted/carol/01_se/a.ipynb", "submitted/carol/01_se/b.ipynb",
           "submitted/dan/01_se/readme.txt", "submitted/erin/02_cbam/02_cbam.ipynb")
    found = find_submissions("01_se", tmp_path)  # a course folder: its submitted/ is used
    assert found.layout == "nbgrader"
    subs = {s.student: s for s in found.submissions}
    assert sorted(subs) == ["alice", "bob", "carol", "dan"]  # erin did not hand in 01_se
    assert subs["alice"].problem is None and subs["alice"].folder.name == "01_se"
    assert subs["bob"].problem is None and "my copy.ipynb" in subs["bob"].note
    assert "several notebooks" in subs["carol"].problem and "no notebook" in subs["dan"].problem


def test_one_folder_per_student_as_moodle_exports(tmp_path):
    _touch(tmp_path, "Ann Lee_981_assignsubmission_file_/homework.ipynb", "ben/01_se.ipynb", "ben/scratch.ipynb",
           "cy/a.ipynb", "cy/b.ipynb")
    found = find_submissions("01_se", tmp_path)
    subs = {s.student: s for s in found.submissions}
    assert found.layout == "folders" and sorted(subs) == ["Ann_Lee_981", "ben", "cy"]
    assert subs["ben"].notebook.name == "01_se.ipynb" and subs["cy"].problem


def test_student_pattern_reads_any_naming(tmp_path):
    _touch(tmp_path, "hw1-alice-final.ipynb", "hw1-bob-final.ipynb")
    found = find_submissions("01_se", tmp_path, student_pattern=r"hw1-(?P<student>[a-z]+)-final")
    assert sorted(_students(found)) == ["alice", "bob"]
    with pytest.raises(ValueError, match="named group 'student'"):
        find_submissions("01_se", tmp_path, student_pattern=r"hw1-([a-z]+)")


def test_the_guides_canvas_pattern_keeps_a_late_students_id(tmp_path):
    """docs/grading.md's --student-pattern for Canvas, on a download with a late submission in it."""
    guide = (Path(__file__).resolve().parents[1] / "docs" / "grading.md").read_text(encoding="utf-8")
    pattern = re.search(r"--student-pattern '([^']+)'", guide).group(1)
    _touch(tmp_path, "smithjane_1234_56789_01_se.ipynb", "clarkcara_late_1003_50003_01_se.ipynb")
    found = find_submissions("01_se", tmp_path, student_pattern=pattern)
    assert sorted(_students(found)) == ["clarkcara_1003", "smithjane_1234"]


def test_student_ids_are_checked():
    assert student_id(" Ann  Lee ") == "Ann_Lee"
    with pytest.raises(ValueError, match=r"not a usable student id: expected letters.*got 'a/b'"):
        student_id("a/b")


# --------------------------------------------------------------------------------------------
# PostgreSQL (the JupyterHub set-up of docs/grading.md), when a server can be started here
# --------------------------------------------------------------------------------------------
def _postgres_tools() -> str | None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        return "PostgreSQL's initdb/pg_ctl are not on PATH (apt-get install postgresql)"
    if os.environ.get("COURSE_TEST_POSTGRES") != "1":
        return "set COURSE_TEST_POSTGRES=1 to grade into a throwaway PostgreSQL server (about 15 s)"
    return None


@pytest.fixture
def postgres_url():
    import socket
    import subprocess
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="course-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run("initdb", "-D", str(data / "db"), "-U", "grader", "--auth=trust")
    run("pg_ctl", "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data}", "start")
    try:
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data / "db"), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(_postgres_tools() is not None, reason=str(_postgres_tools()))
def test_grades_go_into_a_postgresql_gradebook(course, tmp_path, postgres_url):
    src, rel = course
    picked = tmp_path / "subs"
    picked.mkdir()
    nbformat.write(_answer(rel, GRADABLE["alice"][0]), picked / "alice.ipynb")
    (picked / "dave.ipynb").write_text("not json", encoding="utf-8")
    run = batch.grade_submissions(CHAPTER, picked, out=tmp_path / "out", workers=2, db_url=postgres_url,
                                  cell_timeout=15, source_root=src, progress=False)
    assert run.gradebook == postgres_url and not (tmp_path / "out" / "gradebook.db").exists()
    assert run.gradebook_scores() == {"alice": 3.0, "dave": 0.0} == run.scores
