"""`python -m course_lib similarity CHAPTER`: near-identical answers flagged for the lecturer, never shown to students.

A small synthetic chapter named 01_se (no torch in its cells, so that a kernel costs about a second) whose
answer cell starts with given input checks (the part of the stub every student keeps) is graded by the course
grader into a course folder laid out as `make grade` writes it. Five students, all answers written here:

- alice: loops;
- bob: alice's code with every variable renamed, new comments and blank lines (a disguised copy);
- carol: numpy, written independently;
- dave: nested helper functions and comprehensions, written independently;
- erin: the released stub, untouched.

Then docs/grading.md's "Similar submissions" commands run as written (read from the Markdown).
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import batch
from course_lib.tools import notebooks as nbs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "grading.md"
SECTION = "## Similar submissions"
CHAPTER = "01_se"

SIGNATURE = "def channel_gate(x, w1, w2):\n"
GIVEN = '''    for name, rows in (("x", x), ("w1", w1), ("w2", w2)):
        if not isinstance(rows, list) or not all(isinstance(r, list) and r for r in rows):
            raise TypeError(f"{name} must be a non-empty list of lists, got {type(rows).__name__}")
    if len(w1[0]) != len(x) or len(w2) != len(x):
        raise ValueError(f"w1 must be (hidden, {len(x)}) and w2 ({len(x)}, hidden), got {len(w1[0])} and {len(w2)}")
'''
MODEL = '''    import math
    s = [sum(ch) / len(ch) for ch in x]
    h = [max(0.0, sum(w * v for w, v in zip(row, s))) for row in w1]
    g = [1 / (1 + math.exp(-sum(w * v for w, v in zip(row, h)))) for row in w2]
    return [[gi * v for v in ch] for gi, ch in zip(g, x)]
'''
ALICE = '''    import math
    means = []
    for channel in x:
        total = 0.0
        for value in channel:
            total += value
        means.append(total / len(channel))
    hidden = []
    for row in w1:
        acc = 0.0
        for k in range(len(row)):
            acc += row[k] * means[k]
        hidden.append(acc if acc > 0 else 0.0)
    out = []
    for c, row in enumerate(w2):
        acc = 0.0
        for k in range(len(row)):
            acc += row[k] * hidden[k]
        gate = 1.0 / (1.0 + math.exp(-acc))
        out.append([gate * value for value in x[c]])
    return out
'''
BOB = '''    import math

    # squeeze: the average of every channel
    avg = []
    for ch in x:
        s = 0.0
        for v in ch:
            s += v
        avg.append(s / len(ch))

    # excitation: two small layers
    z = []
    for r in w1:
        t = 0.0
        for j in range(len(r)):
            t += r[j] * avg[j]
        z.append(t if t > 0 else 0.0)
    result = []
    for i, r in enumerate(w2):
        t = 0.0
        for j in range(len(r)):
            t += r[j] * z[j]
        g = 1.0 / (1.0 + math.exp(-t))   # sigmoid
        result.append([g * v for v in x[i]])
    return result
'''
CAROL = '''    import numpy as np
    arr = np.asarray(x, dtype=float)
    pooled = arr.mean(axis=1)
    hidden = np.maximum(np.asarray(w1) @ pooled, 0)
    gates = 1 / (1 + np.exp(-(np.asarray(w2) @ hidden)))
    return (arr * gates[:, None]).tolist()
'''
DAVE = '''    from math import exp

    def matvec(m, vec):
        return [sum(a * b for a, b in zip(r, vec)) for r in m]

    def relu(vec):
        return [t if t > 0 else 0 for t in vec]

    gates = [1 / (1 + exp(-t)) for t in matvec(w2, relu(matvec(w1, [sum(c) / len(c) for c in x])))]
    return [[k * e for e in c] for k, c in zip(gates, x)]
'''
ANSWERS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE}


def _chapter() -> nbformat.NotebookNode:
    answer = SIGNATURE + GIVEN + "    ### BEGIN SOLUTION\n" + MODEL + "    ### END SOLUTION"
    cells = [
        nbs.md("# Channel gate\nSqueeze every channel to its mean, excite through `w1`, ReLU, `w2`, sigmoid; scale."),
        nbs.solution(answer, "channel_gate"),
        nbs.test("out = channel_gate([[1.0, 3.0], [2.0, 2.0]], [[1.0, 0.0]], [[0.0], [0.0]])\n"
                 "assert out == [[0.5, 1.5], [1.0, 1.0]], out", "test_channel_gate", 2),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["course"] = {"time_budget_s": 30}
    return nbs.normalize(nb)


def documented_commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end], re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    src, rel, subs, work = root / "src", root / "rel", root / "submissions", root / "checkout"
    nbs.write_atomic(nbs.notebook_path(CHAPTER, src), nbs.dumps(_chapter()))
    with batch._fast_alembic():
        nbs.new_course(rel, [CHAPTER], source_root=src)
    subs.mkdir()
    for student, body in {**ANSWERS, "erin": None}.items():
        nb = nbformat.read(nbs.notebook_path(CHAPTER, rel, nbs.RELEASE), as_version=4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "channel_gate" and body is not None:
                cell.source = SIGNATURE + GIVEN + body
        nbformat.write(nb, subs / f"{student}_{CHAPTER}.ipynb")
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    run = batch.grade_submissions(CHAPTER, subs, out=work / "out" / "grading", workers=1, cell_timeout=30,
                                  source_root=src, progress=False)
    env = {**{k: v for k, v in os.environ.items() if k != "COURSE_DIR"}, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}

    def shell(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    results = {line: shell(line) for line in documented_commands()}
    return {"run": run, "work": work, "course": work / "out" / "grading", "shell": shell, "results": results}


def _flagged(course: Path) -> list[tuple[str, str]]:
    with open(course / CHAPTER / "similarity.csv", newline="", encoding="utf-8") as fh:
        return [(row["student_a"], row["student_b"]) for row in csv.DictReader(fh)]


def test_every_answer_is_correct_so_grades_say_nothing(graded):
    rows = {r["student"]: r for r in graded["run"].rows}
    assert {s: rows[s]["score"] for s in ANSWERS} == {s: 2.0 for s in ANSWERS}, rows
    assert rows["erin"]["score"] == 0.0


def test_documented_commands_run_as_written(graded):
    assert len(graded["results"]) >= 2
    for line, result in graded["results"].items():
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


def test_the_renamed_copy_is_flagged_and_independent_solutions_are_not(graded):
    default = next(line for line in graded["results"] if "--threshold" not in line)
    result = graded["shell"](default)  # the last documented run may have used another threshold
    assert result.returncode == 0, result.stderr
    assert _flagged(graded["course"]) == [("alice", "bob")], result.stdout
    assert "alice / bob: 100%" in result.stdout
    assert "4 submissions compared, 1 pair" in result.stdout
    assert "erin: the answer cells are the released stubs" in result.stdout
    page = (graded["course"] / CHAPTER / "similarity.html").read_text(encoding="utf-8")
    compared = re.findall(r"(?:Test|Reference) file: <i>[^<]*/(\w+)\.py</i>", page)
    assert sorted(compared) == ["alice", "bob"], compared  # copydetect's side-by-side view: the flagged pair only


def test_the_tokeniser_is_what_catches_the_renamed_copy(graded):
    """Without copydetect's renaming-insensitive filtering the disguised copy shares little text."""
    from copydetect import CopyDetector

    answers = graded["course"] / CHAPTER / "similarity"
    detector = CopyDetector(extensions=["py"], noise_t=25, guarantee_t=25, display_t=0.0, autoopen=False,
                            silent=True, disable_filtering=True)
    for student in ("alice", "bob"):
        detector.add_file(str(answers / f"{student}.py"))
    detector.add_file(str(answers / "boilerplate" / "released_stubs.py"), type="boilerplate")
    detector.run()
    assert max(detector.similarity_matrix[0, 1]) < 0.5, detector.similarity_matrix


def test_the_given_code_counts_for_nobody(graded):
    """The checks every student keeps from the stub would make carol and dave look alike without it."""
    from course_lib.grading.similarity import THRESHOLD, compare

    answers = {s: graded["course"] / CHAPTER / "similarity" / f"{s}.py" for s in ANSWERS}
    boilerplate = sorted((graded["course"] / CHAPTER / "similarity" / "boilerplate").glob("*.py"))
    assert [b.name for b in boilerplate] == ["model_answer.py", "released_stubs.py"]
    without = {(p.a, p.b) for p in compare(answers, [], THRESHOLD)}
    assert ("carol", "dave") in without, without
    assert {(p.a, p.b) for p in compare(answers, boilerplate, THRESHOLD)} == {("alice", "bob")}


def test_a_higher_threshold_still_flags_the_copy(graded):
    strict = next(line for line in graded["results"] if "--threshold" in line)
    result = graded["shell"](strict)
    assert result.returncode == 0 and "alice / bob" in result.stdout, result.stdout + result.stderr


def test_nothing_of_it_reaches_the_feedback(graded):
    feedback = graded["course"] / "feedback"
    pages = sorted(feedback.rglob("*"))
    assert any(p.name == f"{CHAPTER}.html" for p in pages), pages  # there is feedback to look at
    for page in pages:
        assert "similar" not in page.name.lower(), page
        if page.is_file():
            text = page.read_text(encoding="utf-8", errors="replace").lower()
            assert "similarity" not in text and "copydetect" not in text, page
    assert not any("similarity" in str(p.relative_to(graded["course"])) for p in graded["course"].rglob("*")
                   if "feedback" in p.relative_to(graded["course"]).parts)


def test_an_ungraded_chapter_and_a_bad_threshold_get_clear_errors(graded):
    result = graded["shell"](".venv/bin/python -m course_lib similarity 07_nonlocal")
    assert result.returncode == 2 and "holds no graded submissions of '07_nonlocal'" in result.stderr, result.stderr
    result = graded["shell"](".venv/bin/python -m course_lib similarity 01_se --threshold 2")
    assert result.returncode == 2 and "expected a share between 0 and 1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
