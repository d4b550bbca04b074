"""`python -m course_lib export canvas|moodle`: the gradebook as a file Canvas or Moodle imports.

A small class is written straight into an nbgrader gradebook through nbgrader's own ``Gradebook`` API (the
scores `make grade` and formgrader leave: automatic points, a written answer graded by hand, one still
waiting, one left as released), in a course folder laid out as the grade command writes it. The commands of
docs/grading.md's section "Grades into Canvas or Moodle" are then run as written (read from the Markdown),
with a home folder whose Downloads hold the sample exports of tests/data/lms/ (Canvas's gradebook export
with its Points Possible row, Moodle's grade export), and the files they write are checked cell by cell.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "lms"
DOC = REPO / "docs" / "grading.md"
SECTION = "## Grades into Canvas or Moodle"

#: chapter -> cell -> points; written_* cells are graded by hand
CHAPTERS = {"01_se": {"test_se": 3, "written_why": 2}, "02_cbam": {"test_cbam": 4}}
#: student -> chapter -> cell -> score: a number, None (written answer waiting) or ("hand", score); a chapter given
#: as ERROR instead of its cells is a file the grader could not grade (its row `error: ...`), as batch._merge stores it
ERROR = "error"
CANVAS_CLASS = {
    "doejane_1001_5001": {"01_se": {"test_se": 3, "written_why": ("hand", 2)}, "02_cbam": {"test_cbam": 3}},
    "smithjohn_1002": {"01_se": {"test_se": 3, "written_why": ("hand", 1)}, "02_cbam": {"test_cbam": 4}},
    "mlee": {"01_se": {"test_se": 1, "written_why": 0}},  # its SIS Login ID; the written answer left as released
}
MOODLE_CLASS = {
    "Jane_Doe_88": {"01_se": {"test_se": 3, "written_why": ("hand", 2)}, "02_cbam": {"test_cbam": 3}},
    "John_Smith_89": {"01_se": {"test_se": 3, "written_why": ("hand", 1)}, "02_cbam": {"test_cbam": 4}},
    "mina.lee@example.edu": {"01_se": {"test_se": 1, "written_why": 0}},
}


def build_gradebook(course: Path, klass: dict) -> None:
    from nbgrader.api import Gradebook

    from course_lib.grading.common import course_id, quiet_sqlalchemy

    course.mkdir(parents=True, exist_ok=True)
    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id()) as gb:
        for chapter, cells in CHAPTERS.items():
            gb.add_assignment(chapter)
            gb.add_notebook(chapter, chapter)
            for name, points in cells.items():
                written = name.startswith("written_")
                gb.add_grade_cell(name, chapter, chapter, max_score=points, cell_type="markdown" if written else "code")
                if written:
                    gb.add_solution_cell(name, chapter, chapter)
        for student, chapters in klass.items():
            gb.update_or_create_student(student)
            for chapter, scores in chapters.items():
                gb.add_submission(chapter, student)
                if scores == ERROR:  # every cell 0, nothing to grade by hand, the notebook flagged
                    for name in CHAPTERS[chapter]:
                        grade = gb.find_grade(name, chapter, chapter, student)
                        grade.auto_score, grade.needs_manual_grade = 0.0, False
                    gb.find_submission_notebook(chapter, chapter, student).flagged = True
                    gb.db.commit()
                    continue
                for name, score in scores.items():
                    grade = gb.find_grade(name, chapter, chapter, student)
                    if score is None:  # answered, not graded by hand yet: as autograde leaves it
                        grade.auto_score, grade.needs_manual_grade = None, True
                    elif isinstance(score, tuple):  # graded by hand in formgrader
                        grade.auto_score, grade.manual_score, grade.needs_manual_grade = None, score[1], False
                    else:
                        grade.auto_score, grade.needs_manual_grade = score, False
                gb.db.commit()


def documented_commands() -> list[str]:
    """The shell lines of the bash blocks in docs/grading.md's LMS section, in order."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end], re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def lecturer(tmp_path):
    """A lecturer's checkout (its .venv) with a graded course folder and the LMS's files in ~/Downloads."""
    work, home = tmp_path / "checkout", tmp_path / "home"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    (home / "Downloads").mkdir(parents=True)
    shutil.copy(DATA / "canvas_gradebook_export.csv", home / "Downloads" / "canvas-gradebook.csv")
    shutil.copy(DATA / "moodle_grades_export.csv", home / "Downloads" / "moodle-grades.csv")
    env = {**{k: v for k, v in os.environ.items() if k != "COURSE_DIR"}, "HOME": str(home), "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    return {"work": work, "home": home, "course": work / "out" / "grading", "run": run}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _canvas_line(commands: list[str], pending: bool = False) -> str:
    return next(c for c in commands if " export canvas " in c and ("--allow-pending" in c) == pending)


def _moodle_line(commands: list[str]) -> str:
    return next(c for c in commands if " export moodle " in c)


def test_the_section_documents_canvas_moodle_and_pending():
    commands = documented_commands()
    assert _canvas_line(commands) and _canvas_line(commands, pending=True) and _moodle_line(commands), commands


def test_documented_commands_run_as_written(lecturer):
    build_gradebook(lecturer["course"], {**CANVAS_CLASS, **MOODLE_CLASS})
    for line in documented_commands():
        result = lecturer["run"](line)
        # one gradebook holds both classes here: each platform finds its own three and lists the other three
        assert result.returncode == 1, (line, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
    assert (lecturer["course"] / "canvas-import.csv").is_file()
    assert (lecturer["course"] / "moodle-import.csv").is_file()


def test_canvas_file_matches_the_export_and_scales_each_chapter(lecturer):
    build_gradebook(lecturer["course"], CANVAS_CLASS)
    result = lecturer["run"](_canvas_line(documented_commands()))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "canvas-import.csv")
    export = _rows(DATA / "canvas_gradebook_export.csv")
    # Canvas's student columns as exported, the existing assignment by its "Title (id)", the new one by name
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "01_se (3301)", "02_cbam"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "10", "10"]
    assert [r[:5] for r in rows[2:]] == [r[:5] for r in export[2:]]  # every student of the export, same ids
    grades = {r[1]: r[5:] for r in rows[2:]}
    # doejane: 5/5 and 3/4; smithjohn: 4/5 (one written point by hand) and 4/4; mlee: 1/5, no 02_cbam
    assert grades["1001"] == ["10", "7.5"]
    assert grades["1002"] == ["8", "10"]
    assert grades["1003"] == ["2", ""]
    assert grades["1004"] == ["", ""] and grades["1099"] == ["", ""]  # no submission: left as exported


def test_canvas_points_come_from_the_export_when_not_given(lecturer):
    build_gradebook(lecturer["course"], CANVAS_CLASS)
    export = "~/Downloads/canvas-gradebook.csv"
    result = lecturer["run"](f".venv/bin/python -m course_lib export canvas --canvas-gradebook {export} --chapter 01_se")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "canvas-import.csv")
    assert rows[1][5] == "10" and {r[1]: r[5] for r in rows[2:]}["1003"] == "2"
    # a chapter Canvas does not have needs --points: said, not guessed
    result = lecturer["run"](f".venv/bin/python -m course_lib export canvas --canvas-gradebook {export}")
    assert result.returncode == 2 and "pass --points N" in result.stderr and "02_cbam" in result.stderr, result.stderr
    # --points that contradicts Canvas's points possible is refused
    result = lecturer["run"](f".venv/bin/python -m course_lib export canvas --canvas-gradebook {export} --points 20")
    assert result.returncode == 2 and "out of 10 points, not 20" in result.stderr, result.stderr


def test_canvas_students_are_matched_by_the_user_id_of_the_file_name(lecturer):
    # the same user id with another submission id, and a Canvas name without the submission part, still match;
    # a user id that is not in the export matches nobody, even though it looks like a Canvas name
    klass = {"doejane_1001_6002": CANVAS_CLASS["doejane_1001_5001"], "okaforchidi_1004": {"02_cbam": {"test_cbam": 2}},
             "ghost_9999_7777": {"02_cbam": {"test_cbam": 4}}, "S1002": {"02_cbam": {"test_cbam": 1}}}
    build_gradebook(lecturer["course"], klass)
    result = lecturer["run"](_canvas_line(documented_commands()))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 graded student matches no student of the Canvas export" in result.stderr
    assert "ghost_9999_7777" in result.stderr and "doejane" not in result.stderr and "S1002" not in result.stderr
    grades = {r[1]: r[6] for r in _rows(lecturer["course"] / "canvas-import.csv")[2:]}
    assert grades == {"1001": "7.5", "1002": "2.5", "1003": "", "1004": "5", "1099": ""}
    assert "9999" not in (lecturer["course"] / "canvas-import.csv").read_text(encoding="utf-8")


def test_a_canvas_name_that_disagrees_with_the_row_is_pointed_out(lecturer):
    build_gradebook(lecturer["course"], {"leemina_1001_5001": {"02_cbam": {"test_cbam": 4}}})
    result = lecturer["run"](_canvas_line(documented_commands()))
    assert result.returncode == 0, result.stderr
    assert "check these matches" in result.stdout and "leemina_1001_5001" in result.stdout and "Doe, Jane" in result.stdout


def test_pending_written_answers_are_refused_by_default(lecturer):
    klass = {**CANVAS_CLASS, "smithjohn_1002": {"01_se": {"test_se": 3, "written_why": None}}}
    build_gradebook(lecturer["course"], klass)
    result = lecturer["run"](_canvas_line(documented_commands()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "smithjohn_1002  01_se: 2 points to grade by hand (written_why); auto-graded 3/3 so far" in result.stderr
    assert "--allow-pending" in result.stderr and "Traceback" not in result.stderr
    assert not (lecturer["course"] / "canvas-import.csv").exists()
    result = lecturer["run"](_moodle_line(documented_commands()))
    assert result.returncode == 2 and not (lecturer["course"] / "moodle-import.csv").exists(), result.stderr


def test_allow_pending_never_writes_a_partial_score(lecturer):
    klass = {**CANVAS_CLASS, "smithjohn_1002": {"01_se": {"test_se": 3, "written_why": None},
                                                "02_cbam": {"test_cbam": 4}}}
    build_gradebook(lecturer["course"], klass)
    result = lecturer["run"](_canvas_line(documented_commands(), pending=True))
    assert result.returncode == 0, result.stdout + result.stderr
    grades = {r[1]: r[5:] for r in _rows(lecturer["course"] / "canvas-import.csv")[2:]}
    # 3/5 so far would be 6 out of 10: the cell stays as exported (empty), the final chapter is written
    assert grades["1002"] == ["", "10"] and grades["1001"] == ["10", "7.5"]
    pending = _rows(lecturer["course"] / "canvas-import.pending.csv")
    assert pending[1] == ["smithjohn_1002", "01_se", "2", "written_why", "3", "3", "10", "written answers to grade by hand"]
    assert "1 grade is not final" in result.stdout


def test_a_file_that_could_not_be_graded_is_not_exported_as_a_zero(lecturer):
    """A lecturer trial: a malformed notebook (row `error: malformed notebook`) went into Canvas and Moodle as 0,
    with no warning and nothing in the pending list."""
    klass = {**CANVAS_CLASS, "smithjohn_1002": {"01_se": ERROR, "02_cbam": {"test_cbam": 4}}}
    build_gradebook(lecturer["course"], klass)
    result = lecturer["run"](_canvas_line(documented_commands()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "smithjohn_1002  01_se: could not be graded" in result.stderr and "--allow-pending" in result.stderr
    assert not (lecturer["course"] / "canvas-import.csv").exists()
    result = lecturer["run"](_canvas_line(documented_commands(), pending=True))
    assert result.returncode == 0, result.stdout + result.stderr
    grades = {r[1]: r[5:] for r in _rows(lecturer["course"] / "canvas-import.csv")[2:]}
    assert grades["1002"] == ["", "10"] and grades["1001"] == ["10", "7.5"]  # left as exported, not 0
    pending = _rows(lecturer["course"] / "canvas-import.pending.csv")
    assert pending[1][:2] == ["smithjohn_1002", "01_se"] and "could not be graded" in pending[1][-1], pending
    assert "1 grade is not final" in result.stdout and "could not be graded" in result.stdout

    klass = {**MOODLE_CLASS, "John_Smith_89": {"01_se": ERROR, "02_cbam": {"test_cbam": 4}}}
    (lecturer["course"] / "gradebook.db").unlink()
    build_gradebook(lecturer["course"], klass)
    result = lecturer["run"](_moodle_line(documented_commands()))
    assert result.returncode == 2 and "John_Smith_89  01_se: could not be graded" in result.stderr, result.stderr
    result = lecturer["run"](_moodle_line(documented_commands()) + " --allow-pending")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "moodle-import.csv")
    assert rows[0] == ["ID number", "01_se", "02_cbam", "Notes"]
    table = {r[0]: r[1:] for r in rows[1:]}
    assert table["S1002"][:2] == ["-", "100"] and "could not be graded" in table["S1002"][2], table
    assert table["S1001"] == ["100", "75", ""]


def test_moodle_file_has_the_identifier_column_and_scaled_chapters(lecturer):
    build_gradebook(lecturer["course"], MOODLE_CLASS)
    result = lecturer["run"](_moodle_line(documented_commands()))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "moodle-import.csv")
    assert rows[0] == ["ID number", "01_se", "02_cbam"]
    # out of 100: Jane 5/5 and 3/4, John 4/5 and 4/4, Mina 1/5 and no submission
    assert rows[1:] == [["S1001", "100", "75"], ["S1002", "80", "100"], ["S1003", "20", "-"]]


def test_moodle_by_email_with_pending_notes(lecturer):
    klass = {**MOODLE_CLASS, "John_Smith_89": {"01_se": {"test_se": 3, "written_why": None}}}
    build_gradebook(lecturer["course"], klass)
    line = ".venv/bin/python -m course_lib export moodle --moodle-roster ~/Downloads/moodle-grades.csv --points 20 --allow-pending"
    result = lecturer["run"](line)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "moodle-import.csv")
    assert rows[0] == ["Email address", "01_se", "02_cbam", "Notes"]
    table = {r[0]: r[1:] for r in rows[1:]}
    assert table["jane.doe@example.edu"] == ["20", "15", ""]
    assert table["john.smith@example.edu"][:2] == ["-", "-"] and "not final" in table["john.smith@example.edu"][2]
    assert table["mina.lee@example.edu"] == ["4", "-", ""]


def test_moodle_without_roster_needs_ids_that_are_the_identifier(lecturer):
    build_gradebook(lecturer["course"], MOODLE_CLASS)
    result = lecturer["run"](".venv/bin/python -m course_lib export moodle")
    assert result.returncode == 2 and "not e-mail addresses: Jane_Doe_88, John_Smith_89" in result.stderr
    result = lecturer["run"](".venv/bin/python -m course_lib export moodle --moodle-id-field username --chapter 02_cbam")
    assert result.returncode == 0, result.stderr
    assert _rows(lecturer["course"] / "moodle-import.csv") == [["Username", "02_cbam"], ["Jane_Doe_88", "75"],
                                                               ["John_Smith_89", "100"]]


@pytest.mark.parametrize("case", ["missing", "not-canvas", "not-utf8", "no-course", "no-chapter", "moodle-header"])
def test_bad_input_gets_a_clear_error_not_a_traceback(lecturer, case):
    build_gradebook(lecturer["course"], CANVAS_CLASS)
    downloads = lecturer["home"] / "Downloads"
    canvas = ".venv/bin/python -m course_lib export canvas --points 10 --canvas-gradebook "
    line, words = {
        "missing": (canvas + "~/Downloads/nothing.csv", "no Canvas gradebook export at"),
        "not-canvas": (canvas + "~/Downloads/moodle-grades.csv", "does not look like a Canvas gradebook export"),
        "not-utf8": (canvas + "~/Downloads/latin1.csv", "is not UTF-8 text"),
        "no-course": (canvas + "~/Downloads/canvas-gradebook.csv --out elsewhere", "elsewhere holds no gradebook.db"),
        "no-chapter": (canvas + "~/Downloads/canvas-gradebook.csv --chapter 07_nonlocal",
                       "the gradebook has no chapter 07_nonlocal"),
        "moodle-header": (".venv/bin/python -m course_lib export moodle --moodle-roster ~/Downloads/canvas-gradebook.csv",
                          "does not look like a Moodle grade export"),
    }[case]
    (downloads / "latin1.csv").write_bytes("Student,ID,Section\nM\xfcller,1,A\n".encode("latin-1"))
    result = lecturer["run"](line)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (lecturer["course"] / "canvas-import.csv").exists()


def test_the_help_says_where_pending_grades_go():
    result = subprocess.run([sys.executable, "-m", "course_lib", "export", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "never the partial score" in text and ".pending.csv" in text and "Notes column" in text


def test_a_chapter_goes_into_the_canvas_column_named_for_it(lecturer):
    build_gradebook(lecturer["course"], CANVAS_CLASS)
    base = ".venv/bin/python -m course_lib export canvas --canvas-gradebook ~/Downloads/canvas-gradebook.csv --chapter 02_cbam"
    result = lecturer["run"](base + ' --column 02_cbam="Chapter 00 warm-up"')
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(lecturer["course"] / "canvas-import.csv")
    # the existing assignment, out of its 5 points: doejane 3/4, smithjohn 4/4
    assert rows[0][5:] == ["Chapter 00 warm-up (3300)"] and rows[1][5:] == ["5"]
    assert {r[1]: r[5] for r in rows[2:]} == {"1001": "3.75", "1002": "5", "1003": "3.00", "1004": "5.00", "1099": ""}
    result = lecturer["run"](base + ' --column 02_cbam="Chapter 2"')
    assert result.returncode == 2 and "has no such assignment column" in result.stderr, result.stderr
