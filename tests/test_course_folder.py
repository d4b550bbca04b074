"""One course folder for a lecturer: `make grade`, hand grading, `python -m course_lib feedback` and
`make instructor` (formgrader) all work on the same nbgrader course directory, and what people see there.

A small class of the synthetic chapter of test_grading_batch (3 auto-graded points, one written question of
2 points by hand) is graded once with the literal `make grade` into a course folder of its own:

- alice: right, with a written answer (graded by hand later in the module);
- bob: the untouched release;
- dave: malformed JSON (cannot be graded: the run must end with a sentence saying so, and `make` without
  its "Error" line);
- hostile: an answer cell that starts a process, which the grading sandbox refuses: the feedback page shows
  the student's own frames and none of the grader's, and no server path;
- loopy: an answer that loops forever in one test: it must cost that cell's time budget (derived from the
  reference solution's cell times, at least ``BUDGET_FLOOR_S``), not the 300 s cell timeout.

The browser test at the end runs `make grade` and `make instructor` on a copy of the repository with a
class of chapter 01 and reads formgrader's lists in Debian's chromium (screenshots in out/course-folder/).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_grading_batch import CHAPTER, HIDDEN_1, HIDDEN_2, OTHER, WRITTEN_ID, WRITTEN_MODEL, WRITTEN_RUBRIC, \
    _answer, _chapter, _other_chapter

from course_lib.grading import batch, feedback
from course_lib.grading.common import quiet_sqlalchemy
from course_lib.tools import notebooks as nbs

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
ENV.pop("COURSE_DIR", None)
ALICE_TEXT = "Because + on two strings joins them: alice's own words."
HOSTILE = "import subprocess\nsubprocess.run(['ls', '/'])\n\ndef double(x):\n    return 2 * x"
LOOPY = "def double(x):\n    while x == 3:\n        pass\n    return 2 * x"
#: an absolute path of two parts or more, as a server path would show
SERVER_PATH = re.compile(r"(?<![\w.])(?:/[\w.@+-]+){2,}")


def _written(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN_ID:
            cell.source = text
    return nb


def _make(*args: str, cwd: Path = nbs.REPO, timeout: int = 900) -> subprocess.CompletedProcess:
    # -o: never reinstall the environment from a test; BIN: the interpreter running the tests
    return subprocess.run(["make", "-s", "-C", str(cwd), "-o", ".venv/.installed", f"BIN={BIN}", *args],
                          env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course-folder")
    src, rel, subs, out = folder / "src", folder / "rel", folder / "class", folder / "course"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter(written=True)))
    nbs.write_atomic(nbs.notebook_path(OTHER, src), nbs.dumps(_other_chapter()))
    with batch._fast_alembic():
        nbs.new_course(rel, [CHAPTER, OTHER], source_root=src)
    subs.mkdir()
    nbformat.write(_written(_answer(rel, "def double(x):\n    return x + x"), ALICE_TEXT), subs / f"alice_{CHAPTER}.ipynb")
    shutil.copy(nbs.notebook_path(CHAPTER, rel, nbs.RELEASE), subs / f"bob_{CHAPTER}.ipynb")
    (subs / f"dave_{CHAPTER}.ipynb").write_text('{"cells": [', encoding="utf-8")
    nbformat.write(_answer(rel, HOSTILE), subs / f"hostile_{CHAPTER}.ipynb")
    nbformat.write(_answer(rel, LOOPY), subs / f"loopy_{CHAPTER}.ipynb")
    started = time.monotonic()
    done = _make("grade", f"CHAPTER={CHAPTER}", f"SUBMISSIONS={subs}", f"COURSE_DIR={out}", "WORKERS=2",
                 f"GRADE_ARGS=--source-root {src} --no-progress")
    return {"src": src, "rel": rel, "out": out, "done": done, "seconds": time.monotonic() - started,
            "run": batch.GradeRun.from_dict(json.loads((out / CHAPTER / "run.json").read_text()))
            if (out / CHAPTER / "run.json").is_file() else None}


def _csv(out: Path) -> dict[str, dict]:
    with open(out / CHAPTER / "grades.csv", newline="", encoding="utf-8") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


# --------------------------------------------------------------------------------------------
# a run with a file that cannot be graded: the sentence, the exit status, no SQLAlchemy warnings
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_make_grade_ends_with_a_sentence_and_no_make_error(graded):
    done = graded["done"]
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-3000:]
    assert "Error" not in done.stderr and "make: ***" not in text, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"1 file could not be graded: dave_{CHAPTER}.ipynb (dave): malformed notebook"), last
    assert "The other 4 submissions were graded and written" in last and "exit status 3" in last, last
    assert graded["run"].graded_now == ["alice", "bob", "dave", "hostile", "loopy"]


@pytest.mark.slow
def test_no_sqlalchemy_warning_reaches_the_lecturer(graded):
    assert "SAWarning" not in graded["done"].stderr and "not in session" not in graded["done"].stderr, \
        graded["done"].stderr[-3000:]


def test_nbgrader_does_warn_without_the_filter(tmp_path):
    """What the filter hides is real: nbgrader's new submission trips SQLAlchemy's autoflush warning in a
    process without :func:`quiet_nbgrader_warnings`, and not in one with it."""
    script = f"""
import sys, warnings
warnings.simplefilter("default")
if sys.argv[1] == "quiet":
    from course_lib.grading.common import quiet_nbgrader_warnings
    quiet_nbgrader_warnings()
from nbgrader.api import Gradebook
from course_lib.tools import notebooks as nbs
with nbs.fast_alembic(), Gradebook("sqlite:///{tmp_path}/" + sys.argv[1] + ".db") as gb:
    gb.update_or_create_assignment("a1")
    gb.add_notebook("nb", "a1")
    gb.update_or_create_student("s1")
    gb.update_or_create_submission("a1", "s1")
"""
    loud = subprocess.run([sys.executable, "-c", script, "loud"], env=ENV, capture_output=True, text=True)
    quiet = subprocess.run([sys.executable, "-c", script, "quiet"], env=ENV, capture_output=True, text=True)
    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "SAWarning" in loud.stderr and "not in session" in loud.stderr, loud.stderr
    assert "SAWarning" not in quiet.stderr, quiet.stderr


@pytest.mark.slow
def test_the_command_exits_3_when_some_files_could_not_be_graded(graded, tmp_path):
    """The exit status the docs give: 3, the rest graded; the malformed file alone, graded again."""
    out = tmp_path / "course"
    shutil.copytree(graded["out"], out)
    again = tmp_path / "again"
    again.mkdir()
    (again / f"dave_{CHAPTER}.ipynb").write_text("", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "course_lib", "grade", CHAPTER, str(again), "--out", str(out),
                           "--workers", "1", "--source-root", str(graded["src"]), "--no-progress"],
                          cwd=nbs.REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 file could not be graded" in done.stdout and "empty notebook" in done.stdout
    assert "The other 0 submissions were graded" in done.stdout


# --------------------------------------------------------------------------------------------
# the class's reports: re-grading one student, and the refresh after hand grading
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_regrading_one_student_keeps_the_class(graded, tmp_path):
    out = tmp_path / "course"
    shutil.copytree(graded["out"], out)
    again = tmp_path / "again"
    again.mkdir()
    nbformat.write(_answer(graded["rel"], "def double(x):\n    return 2 * x"), again / f"bob_{CHAPTER}.ipynb")
    run = batch.grade_submissions(CHAPTER, again, out=out, workers=1, source_root=graded["src"], progress=False)
    assert run.graded_now == ["bob"]
    rows = _csv(out)
    assert sorted(rows) == ["alice", "bob", "dave", "hostile", "loopy"], rows
    assert rows["bob"]["score"] == "3" and rows["alice"]["score"] == "3" and rows["alice"]["pending_manual"] == "2"
    assert rows["dave"]["status"].startswith("error: malformed notebook")
    summary = (out / CHAPTER / "summary.txt").read_text(encoding="utf-8")
    assert summary.startswith(f"{CHAPTER}: 1 submission graded") and "the class: 5 students" in summary
    assert "alice*" in summary and "bob*" not in summary
    saved = json.loads((out / CHAPTER / "run.json").read_text(encoding="utf-8"))
    assert sorted(row["student"] for row in saved["rows"]) == sorted(rows)


@pytest.mark.slow
def test_one_command_after_hand_grading_refreshes_pages_csv_and_summary(graded, tmp_path):
    from nbgrader.api import Gradebook

    out = tmp_path / "course"
    shutil.copytree(graded["out"], out)
    before = _csv(out)
    assert (before["alice"]["score"], before["alice"]["pending_manual"], before["alice"][WRITTEN_ID]) == ("3", "2", "")
    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{out / 'gradebook.db'}", "cnn-attention") as gb:
        gb.find_grade(WRITTEN_ID, CHAPTER, CHAPTER, "alice").manual_score = 1.5
        gb.find_comment(WRITTEN_ID, CHAPTER, CHAPTER, "alice").manual_comment = "Say what + does to two strings."
        gb.db.commit()
    done = subprocess.run([sys.executable, "-m", "course_lib", "feedback", CHAPTER, "--out", str(out)],
                          cwd=nbs.REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "dave: page left as it was" in done.stdout
    after = _csv(out)
    assert (after["alice"]["score"], after["alice"]["pending_manual"], after["alice"][WRITTEN_ID]) == ("4.5", "0", "1.5")
    assert after["bob"]["pending_manual"] == "0" and after["dave"]["status"] == before["dave"]["status"]
    summary = (out / CHAPTER / "summary.txt").read_text(encoding="utf-8")
    assert "scores read again from the gradebook" in summary and re.search(r"alice\s+4\.5/5\s+graded\n", summary)
    page = (out / "feedback" / "alice" / CHAPTER / f"{CHAPTER}.html").read_text(encoding="utf-8")
    assert "Score: 4.5 / 5.0" in page and "Say what + does to two strings" in page
    assert HIDDEN_1 not in page and HIDDEN_2 not in page and WRITTEN_MODEL not in page


@pytest.mark.slow
def test_the_rubric_is_in_the_course_folder_and_not_in_the_release(graded):
    rubric = (graded["out"] / "rubrics" / f"{CHAPTER}.md").read_text(encoding="utf-8")
    assert WRITTEN_MODEL in rubric and WRITTEN_RUBRIC in rubric and f"`{WRITTEN_ID}` (2 points)" in rubric
    assert "why does `x + x` also double a string?" in rubric  # the question, as the student reads it
    release = nbs.notebook_path(CHAPTER, graded["out"], nbs.RELEASE).read_text(encoding="utf-8")
    assert WRITTEN_MODEL not in release and "Rubric" not in release


# --------------------------------------------------------------------------------------------
# what a student sees: their frames, no grader's, no server path
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_feedback_traceback_keeps_the_students_frames_only(graded):
    out = graded["out"]
    graded_nb = (out / "autograded" / "hostile" / CHAPTER / f"{CHAPTER}.ipynb").read_text(encoding="utf-8")
    assert "sandbox_guard.py" in graded_nb and "subprocess.py" in graded_nb  # what the page must not show
    page = feedback.html_text((out / "feedback" / "hostile" / CHAPTER / f"{CHAPTER}.html").read_text(encoding="utf-8"))
    assert "PermissionError" in page and "not allowed while grading" in page
    assert "subprocess.run(['ls', '/'])" in page and re.search(r"Cell In ?\[\d+\], line 2", page), page[-3000:]
    assert "sandbox_guard" not in page and "subprocess.py" not in page and "make_gate" not in page
    assert "frames inside Python's libraries" in page
    assert not SERVER_PATH.findall(page), SERVER_PATH.findall(page)[:5]


def test_student_frames_drops_library_frames_and_paths():
    error = nbformat.v4.new_output("error", ename="PermissionError", evalue="no: /srv/course/x/sandbox_guard.py",
                                   traceback=[
                                       "\x1b[0;31m----\x1b[0m", "PermissionError    Traceback (most recent call last)",
                                       "Cell \x1b[0;32mIn[3], line 2\x1b[0m\n----> 2 run()\n",
                                       "\x1b[0;32mFile \x1b[0;32m/usr/lib/python3.11/subprocess.py:548\x1b[0m, in run()\n",
                                       "File /home/grader/course_lib/grading/sandbox_guard.py:865, in gate()\n",
                                       "PermissionError: no: /srv/course/x/sandbox_guard.py"])
    answer = nbformat.v4.new_code_cell("run()", outputs=[error])
    nb = nbformat.v4.new_notebook(cells=[answer])
    assert feedback.student_frames(nb) == 2
    text = "\n".join(answer.outputs[0]["traceback"])
    assert "In[3], line 2" in text and "2 frames inside" in text and text.endswith("PermissionError: no: …/sandbox_guard.py")
    assert "/usr/lib" not in text and "/home/grader" not in text and "/srv" not in answer.outputs[0]["evalue"]


def test_printed_paths_are_shortened_too():
    """A lecturer trial: a student's code caught the sandbox's PermissionError and printed it (stdout); the
    server path in it reached the feedback page."""
    printed = nbformat.v4.new_output("stream", name="stdout",
                                     text="hidden refused: not allowed while grading: reading /srv/course/lib/x.py\n"
                                          "listing ['/home/grader/course', 'ok']\n2 / 3 = 0.67\n")
    answer = nbformat.v4.new_code_cell("probe()", outputs=[printed])
    feedback.student_frames(nbformat.v4.new_notebook(cells=[answer]))
    text = answer.outputs[0]["text"]
    assert "/srv" not in text and "/home/grader" not in text, text
    assert "reading …/x.py" in text and "…/course" in text and "2 / 3 = 0.67" in text


# --------------------------------------------------------------------------------------------
# a runaway cell costs its budget, not the cell timeout
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_runaway_cell_costs_its_budget_not_the_cell_timeout(graded):
    run = graded["run"]
    budgets = run.budgets
    assert budgets and budgets["cells"]["test_double"] == batch.BUDGET_FLOOR_S, budgets  # the reference's test: < 1 s
    assert set(budgets["reference"]) >= {"double", "test_double", "test_double_str"}
    assert (graded["out"] / CHAPTER / "reference_times.json").is_file()
    loopy = next(row for row in run.rows if row["student"] == "loopy")
    assert loopy["status"] == "graded" and loopy["cells"]["test_double"] == (0.0, 2.0)
    assert loopy["cells"]["test_double_str"] == (1.0, 1.0)  # the next cell still ran and earned its point
    # the loop: its budget, the interrupt, the rest of the notebook; nowhere near the 300 s cell timeout
    assert loopy["seconds"] < batch.BUDGET_FLOOR_S + 30, loopy["seconds"]


# --------------------------------------------------------------------------------------------
# formgrader's Generate and the instructor view's course folder
# --------------------------------------------------------------------------------------------
def _repository_copy(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("Makefile", "nbgrader_config.py", "pyproject.toml", "course.toml"):
        shutil.copy(nbs.REPO / name, root / name)
    shutil.copytree(nbs.REPO / "jupyter", root / "jupyter")
    for folder in (nbs.SOURCE, nbs.RELEASE):
        shutil.copytree(nbs.REPO / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


@pytest.mark.slow
def test_generate_in_the_instructor_view_leaves_notebooks_normalised(tmp_path):
    """formgrader's Generate is `nbgrader generate_assignment` with the instructor view's configuration: it
    writes the course folder's release, and the repository's notebooks/ stays as `make release` wrote it.
    Without that configuration (nbgrader on the repository), notebooks/ is rewritten in another layout."""
    chapter = "01_se"
    root = _repository_copy(tmp_path / "repo")
    release = nbs.notebook_path(chapter, root, nbs.RELEASE)
    stored = release.read_bytes()
    course = root / "out" / "grading"
    env = {**ENV, "JUPYTER_CONFIG_PATH": str(root / "jupyter" / "instructor"), "COURSE_DIR": str(course)}
    subprocess.run([sys.executable, "-m", "course_lib", "course-folder", "--out", str(course), "--source-root",
                    str(root)], cwd=root, env=env, check=True, capture_output=True)
    done = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", chapter, "--force"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert nbs.notebook_path(chapter, course, nbs.RELEASE).is_file()
    assert release.read_bytes() == stored
    text = release.read_text(encoding="utf-8")
    assert nbs.dumps(nbs.normalize(nbformat.reads(text, as_version=4))) == text  # test_chapters' check
    plain = {k: v for k, v in ENV.items() if k != "JUPYTER_CONFIG_PATH"}
    done = subprocess.run([str(BIN / "nbgrader"), "generate_assignment", chapter, "--force"], cwd=root, env=plain,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert release.read_bytes() != stored  # the mistake the instructor view's course folder avoids


def test_grade_bench_help_names_commands_that_exist():
    done = subprocess.run([sys.executable, "-m", "course_lib", "grade-bench", "--help"], env=ENV,
                          capture_output=True, text=True, check=True)
    assert "nbgrader formgrader" not in done.stdout and "make instructor" in done.stdout


def test_grading_security_names_chapter_01s_points_as_the_chapter_has_them():
    doc = (nbs.REPO / "docs" / "grading-security.md").read_text(encoding="utf-8")
    found = re.search(r"on chapter\s+01_se \((\d+) points: (.*?)\)\.", doc, flags=re.S)
    assert found, "docs/grading-security.md: the sentence naming chapter 01_se's points is gone"
    named = {name: float(points) for name, points in re.findall(r"`(\w+)` (\d+)", found.group(2))}
    release = nbformat.read(nbs.notebook_path("01_se", nbs.REPO, nbs.RELEASE), as_version=4)
    cells = dict(batch.grade_cells_of(release))
    assert named == cells, f"the doc says {named}, the chapter has {cells}"
    assert float(found.group(1)) == sum(cells.values())


# --------------------------------------------------------------------------------------------
# the instructor's lab: `make grade`, then `make instructor`, read in a real browser
# --------------------------------------------------------------------------------------------
SHOTS = nbs.REPO / "out" / "course-folder"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manual_score(course: Path, student: str) -> float | None:
    from nbgrader.api import Gradebook

    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{course / 'gradebook.db'}", "cnn-attention") as gb:
        return gb.find_grade("written_sigmoid", "01_se", "01_se", student).manual_score


def _csv_of(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def _chapter01_class(folder: Path) -> Path:
    """A class of chapter 01: a solved notebook with a written answer, the untouched release, a malformed file."""
    folder.mkdir(parents=True)
    solution = nbformat.read(nbs.notebook_path("01_se"), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    solved = nbformat.read(nbs.notebook_path("01_se", nbs.REPO, nbs.RELEASE), as_version=4)
    for cell in solved.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and cell.cell_type == "code":
            cell.source = "\n".join(line for line in answers[grade_id].split("\n") if "### " not in line)
        elif grade_id in answers:
            cell.source = "A softmax makes the channels share a total of 1; a sigmoid gates each on its own."
    nbformat.write(solved, folder / "alice_01_se.ipynb")
    shutil.copy(nbs.notebook_path("01_se", nbs.REPO, nbs.RELEASE), folder / "bob_01_se.ipynb")
    (folder / "carol_01_se.ipynb").write_text('{"cells": [', encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.browser
def test_make_instructor_lists_what_make_grade_graded(tmp_path):
    from browser import chromium

    root = _repository_copy(tmp_path / "repo")
    subs = _chapter01_class(tmp_path / "class")
    done = _make("grade", "CHAPTER=01_se", f"SUBMISSIONS={subs}", "WORKERS=2", "GRADE_ARGS=--no-progress", cwd=root)
    assert done.returncode == 0 and "1 file could not be graded" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    course = root / "out" / "grading"
    assert (course / "01_se" / "grades.csv").is_file(), done.stdout[-2000:]
    port, log_path = _free_port(), tmp_path / "instructor.log"
    env = {**ENV, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    env.pop("MPLBACKEND", None)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(["make", "-s", "-C", str(root), "-o", ".venv/.installed", f"BIN={BIN}", "instructor",
                                   f"PORT={port}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, token = time.monotonic() + 180, None
        while time.monotonic() < deadline and token is None and server.poll() is None:
            found = re.search(rf"http://127\.0\.0\.1:{port}/\S*\?token=(\w+)", log_path.read_text(errors="replace"))
            token = found.group(1) if found else None
            time.sleep(0.5)
        assert token, f"`make instructor` printed no URL:\n{log_path.read_text(errors='replace')[-3000:]}"
        base = f"http://127.0.0.1:{port}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        with chromium("the instructor view's browser test") as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            # the lab first, as `make instructor` opens it (the token logs the browser in for every page)
            page.goto(f"{base}/lab/tree/out/grading/rubrics/01_se.md?token={token}")
            page.wait_for_selector("text=written_sigmoid", timeout=180_000)
            page.screenshot(path=str(SHOTS / "rubric-01_se.png"))
            page.goto(f"{base}/formgrader/manage_submissions/01_se")
            try:
                page.wait_for_selector("text=needs manual grading", timeout=120_000)
            finally:
                page.screenshot(path=str(SHOTS / "manage-submissions-01_se.png"), full_page=True)
            listed = page.inner_text("body")
            page.goto(f"{base}/formgrader/gradebook/01_se/01_se")
            try:
                page.wait_for_selector("text=Submission #1", timeout=60_000)
                page.get_by_text("Show All Names").click()
                page.wait_for_selector("text=alice", timeout=30_000)
            finally:
                page.screenshot(path=str(SHOTS / "manual-grading-01_se.png"), full_page=True)
            grading = page.inner_text("body")
            # hand grading: alice's written answer, in formgrader's grading view, the rubric open in the lab
            page.get_by_role("link", name="alice", exact=True).click()
            score = page.locator("input#written_sigmoid")
            score.wait_for(timeout=120_000)
            score.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "hand-grading-alice.png"))
            score.fill("1.5")
            score.press("Tab")  # formgrader saves a score when its input changes
            page.locator("#written_sigmoid").evaluate("e => e.blur()")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _manual_score(course, "alice") != 1.5:
                time.sleep(0.5)
            page.close()
        rows = {line.split("\t")[1]: line for line in listed.splitlines() if line.count("\t") >= 4}
        assert set(rows) >= {"alice", "bob", "carol"}, listed[:3000]
        assert "needs manual grading" in rows["alice"] and "9 / 11" in rows["alice"], rows
        assert "graded" in rows["bob"] and "0 / 11" in rows["bob"], rows
        assert "needs autograding" in rows["carol"], rows  # the malformed file: no notebook nbgrader can grade
        assert "alice" in grading and "bob" in grading and "carol" not in grading, grading[:3000]
        assert "Submission #3" not in grading and "9 / 11" in grading, grading[:3000]
        # after hand grading: the one command, as the docs give it, from the repository (the copy)
        assert _manual_score(course, "alice") == 1.5
        done = subprocess.run([str(BIN / "python"), "-m", "course_lib", "feedback", "01_se"], cwd=root, env=ENV,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rows = _csv_of(course / "01_se" / "grades.csv")
        assert (rows["alice"]["score"], rows["alice"]["pending_manual"], rows["alice"]["written_sigmoid"]) == \
            ("10.5", "0", "1.5"), rows["alice"]
        page_text = (course / "feedback" / "alice" / "01_se" / "01_se.html").read_text(encoding="utf-8")
        assert "Score: 10.5 / 11" in page_text and "A softmax makes the channels share" in page_text
        assert "Model answer" not in page_text and "Rubric" not in page_text
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()
