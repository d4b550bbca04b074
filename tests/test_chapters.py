"""Every chapter, through the real pipeline: stored normalised, released up to date, the solution runs top
to bottom within its budget, autograding the solution gives full marks and the untouched stub gives 0."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_lib.tools import notebooks as nbs

CHAPTERS = nbs.chapters()
pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapters in solutions/ yet")


@pytest.mark.parametrize("folder", [nbs.SOURCE, nbs.RELEASE])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_notebook_is_stored_normalised(chapter, folder):
    path = nbs.notebook_path(chapter, folder=folder)
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert nbs.dumps(nbs.normalize(nb)) == text, f"{path} is not normalised: run `make release`"


@pytest.mark.slow
def test_release_is_up_to_date():
    assert nbs.stale_releases() == [], "notebooks/ is out of date: run `make release`"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_hides_solutions_and_hidden_tests(chapter):
    released = nbs.notebook_path(chapter, folder=nbs.RELEASE).read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "course_lib.hidden"):
        assert marker not in released, f"released {chapter} still contains {marker!r}"
    assert "raise NotImplementedError()" in released


def _behaves_differently_when_graded(chapter: str) -> bool:
    """Does the notebook do less under nbgrader (NBGRADER_EXECUTION set), like the capstone's quick mode?"""
    return "NBGRADER_EXECUTION" in nbs.notebook_path(chapter).read_text(encoding="utf-8")


# The autograde of the solution below runs every other chapter top to bottom, exactly as a student's kernel
# would; only a chapter that does less under nbgrader needs a run of its own, as the student sees it.
STUDENT_RUN = [c for c in CHAPTERS if _behaves_differently_when_graded(c)]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", STUDENT_RUN)
def test_solution_executes_top_to_bottom_within_budget(chapter):
    path = nbs.notebook_path(chapter)
    budget = nbformat.read(path, as_version=4).metadata.get("course", {}).get("time_budget_s")
    assert budget, f"{chapter}: metadata.course.time_budget_s is missing"
    # the budget bounds every cell (nbclient stops a cell that runs longer); we report the total
    _, seconds = nbs.execute(path, timeout=budget)
    print(f"{chapter}: executed in {seconds:.1f} s (budget {budget} s per cell)")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """chapter -> (solution result, stub result), each chapter in its own throwaway course."""
    cache: dict[str, tuple[dict, dict]] = {}

    def run(chapter: str) -> tuple[dict, dict]:
        if chapter not in cache:
            root = tmp_path_factory.mktemp(f"course-{chapter}")
            grader = nbs.new_course(root, [chapter])
            solution = nbs.autograde(grader, root, chapter, "solution", nbs.notebook_path(chapter))
            stub = nbs.autograde(grader, root, chapter, "stub", Path(root) / nbs.RELEASE / chapter / f"{chapter}.ipynb")
            cache[chapter] = (solution, stub)
        return cache[chapter]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_autograde_solution_full_marks_stub_zero(graded, chapter):
    solution, stub = graded(chapter)
    assert solution["auto_max_score"] > 0, f"{chapter} has no auto-graded cells"
    # full marks on the auto-graded points; WRITTEN questions stay pending for manual grading
    problems = nbs.full_marks_problems(solution, nbformat.read(nbs.notebook_path(chapter), as_version=4))
    assert not problems, f"{chapter}: the solution is not full marks: {problems}"
    assert solution["score"] == solution["auto_max_score"], f"{chapter}: {solution['cells']}"
    assert stub["score"] == 0, f"{chapter}: the untouched stub scored {stub['score']}"
    scored = {k: v for k, v in stub["cells"].items() if v[0]}
    assert not scored, f"{chapter}: graded cells that pass on the untouched stub: {scored}"
