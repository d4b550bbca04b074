"""The hostile suite: broken and hostile submissions of chapter 01_se graded in one batch beside honest ones.

Every case of tests/hostile/cases.py gets the score it must get, cell by cell, and shows the reason it must
show; the honest submissions get the grades they get when graded alone; the gradebook holds one
consistent row per student; nothing was written outside a student's folder. A last batch grades a few
of the attacks with the sandbox switched off (``COURSE_SANDBOX=off``): they then succeed or break the
notebook, which proves that this suite can fail.

Short limits keep it fast: 12 s per cell (room for a busy CI machine), 2 s for an interrupted kernel to
answer, 1 GiB of memory on top of the kernel's own; two workers.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest


from course_lib.tools import notebooks as nbs
from conftest import once_per_session
from course_lib.grading import grade_submissions, sandbox
from course_lib.grading.batch import GradeRun
from hostile import cases as hostile
from hostile.chapter import CHAPTER, other_chapter

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 12
KERNEL_ENV = {"COURSE_SANDBOX_KILL_GRACE_S": "2", "COURSE_SANDBOX_MEMORY_MB": "1024"}
NAMES = [case.name for case in hostile.cases("")]
HONEST = ["honest_full", "honest_half"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The release students received and every case's submission."""
    config = nbs.nbgrader_config(tmp_path_factory.mktemp("config"))
    if not sandbox.is_hardened(config):
        pytest.fail("nbgrader_config.py does not grade in the sandbox: it must end with\n"
                    "    from course_lib.grading.sandbox import harden\n    harden(c)")
    release = nbformat.read(nbs.notebook_path(CHAPTER, folder=nbs.RELEASE), as_version=4)
    other = nbs.notebook_path(other_chapter(), folder=nbs.RELEASE).read_text(encoding="utf-8")
    every = {case.name: case for case in hostile.cases(other)}
    return release, every


def _write(folder: Path, chosen: list, release) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for case in chosen:
        (folder / f"{case.student}_{CHAPTER}.ipynb").write_text(case.build(release), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def batch(course, tmp_path_factory, worker_id):
    """Every case graded in one batch, once per test session (xdist workers share it)."""
    release, every = course
    escape = Path("/tmp") / hostile.ESCAPE_NAME

    def build(work: Path) -> dict:
        escape.unlink(missing_ok=True)
        submissions = _write(work / "submissions", list(every.values()), release)
        run = grade_submissions(CHAPTER, submissions, out=work / "out", workers=2, cell_timeout=CELL_TIMEOUT,
                                kernel_env=KERNEL_ENV, progress=False)
        return {"run": run.to_dict(), "escaped": escape.exists()}

    data = once_per_session(tmp_path_factory, worker_id, "hostile-batch", build)
    return GradeRun.from_dict(data["run"]), every, data["escaped"]


def exercise_cells(row: dict) -> dict:
    """The scores of the three exercises' grade cells the cases are written for (hostile.POINTS); the
    chapter's other graded cells (its questions, its written answer) are not part of the attacks."""
    return {cell: score for cell, (score, _) in row["cells"].items() if cell in hostile.POINTS}


def _outputs(run, student: str, cell_id: str) -> str:
    path = run.out / "autograded" / student / CHAPTER / f"{CHAPTER}.ipynb"
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == cell_id:
            for output in cell.get("outputs", []):
                texts.append(str(output.get("text", "")))
                texts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return "\n".join(texts)


@pytest.mark.parametrize("name", NAMES)
def test_each_case_gets_its_grade(batch, name):
    run, every, _ = batch
    case = every[name]
    row = next(r for r in run.rows if r["student"] == case.student)
    assert row["status"].startswith(case.status), (name, case.why, row["status"])
    assert row["score"] == case.score, (name, case.why, row)
    if case.status == "graded":
        assert exercise_cells(row) == case.cells, (name, case.why, row)
        # the chapter's questions and written answers are left as released (unanswered): no points there
        assert {cell: score for cell, (score, _) in row["cells"].items() if cell not in hostile.POINTS} \
            == dict.fromkeys(set(row["cells"]) - set(hostile.POINTS), 0.0), (name, row)
    for cell_id, needle in case.expect.items():
        assert needle in _outputs(run, case.student, cell_id), (name, cell_id, needle)


def test_one_consistent_row_per_student(batch):
    run, every, _ = batch
    students = [row["student"] for row in run.rows]
    assert sorted(students) == sorted(case.student for case in every.values())
    assert len(set(students)) == len(students)
    assert run.gradebook_scores() == {row["student"]: row["score"] for row in run.rows}
    csv_rows = run.csv_path.read_text(encoding="utf-8").strip().splitlines()[1:]
    assert len(csv_rows) == len(students)


def test_nothing_was_written_outside(batch):
    _, _, escaped = batch
    assert not escaped, "a submission wrote a file in /tmp, outside its folder"


def test_honest_grades_do_not_depend_on_the_neighbours(batch, course, tmp_path):
    run, every, _ = batch
    release, _ = course
    alone = grade_submissions(CHAPTER, _write(tmp_path / "submissions", [every[n] for n in HONEST], release),
                              out=tmp_path / "out", workers=2, cell_timeout=CELL_TIMEOUT, kernel_env=KERNEL_ENV,
                              progress=False)
    beside = {r["student"]: r for r in run.rows}
    for row in alone.rows:
        other = beside[row["student"]]
        assert (row["score"], row["cells"], row["status"]) == (other["score"], other["cells"], other["status"])


def test_without_the_sandbox_these_attacks_work(course, tmp_path):
    """The counter-test: plain nbgrader gives the cheats full marks and fails a repaired notebook."""
    release, every = course
    chosen = ("patch_core", "noop_tests", "cell_surgery_b", "cell_surgery_d")
    run = grade_submissions(CHAPTER, _write(tmp_path / "submissions", [every[n] for n in chosen], release),
                            out=tmp_path / "out", workers=2, cell_timeout=CELL_TIMEOUT,
                            kernel_env={**KERNEL_ENV, "COURSE_SANDBOX": "off"}, progress=False)
    got = {r["student"]: r for r in run.rows}
    full = sum(hostile.FULL.values())
    # a wrong answer plus patched comparisons: full marks on the exercises (and on the questions after the patch)
    assert sum(exercise_cells(got["patch-core"]).values()) == full
    assert sum(exercise_cells(got["noop-tests"]).values()) == full  # nothing right, every test a no-op: full marks
    assert got["cell-surgery-b"]["status"].startswith("error")  # nbgrader fails on the edited flags
    assert got["cell-surgery-d"]["status"].startswith("error")  # and on an answer deleted with its test
    for name in chosen:
        assert got[every[name].student]["score"] != every[name].score


def test_the_batch_ran_in_children_of_the_warm_template(batch):
    """The suite above goes through the batch grader's own path (Dask, ForkExecute), not kernels: the
    grading log of a notebook shows the forked child's cell times and none of ipykernel's start-up."""
    run, every, _ = batch
    log = (run.out / CHAPTER / "logs" / f"{every['honest_full'].student}.log").read_text(encoding="utf-8")
    assert " ran in " in log and "IPKernelApp" not in log and "sandbox_launcher" not in log, log[-2000:]
