"""The chapter the hostile suite grades: 01_se, the real one (solutions/01_se), with its real checks.

Three exercises, 6 points: ``SqueezeExcitation`` (test_se, 4 points), ``se_parameter_count``
(test_se_parameter_count, 1 point) and ``seresnet50_extra_parameters`` (test_seresnet50, 1 point), each
graded by a visible check and a hidden one. An honest student's answers are the instructor's solution
regions, read from the notebook, so the suite follows the chapter when it changes.
"""
from __future__ import annotations

import nbformat

from course_lib.tools import notebooks as nbs

CHAPTER = "01_se"
#: grade cell -> points
POINTS = {"test_se": 4.0, "test_se_parameter_count": 1.0, "test_seresnet50": 1.0}
#: exercise -> the solution cell the student fills in
SOLUTION_IDS = {"se": "se_solution", "count": "se_parameter_count_solution", "resnet": "seresnet50_solution"}


def _strip(code: str) -> str:
    return "\n".join(line for line in code.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def solution_answers() -> dict[str, str]:
    """exercise -> the instructor's solution cell, markers removed: what an honest, correct student hands in."""
    nb = nbformat.read(nbs.notebook_path(CHAPTER), as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    return {key: _strip(by_id[grade_id]) for key, grade_id in SOLUTION_IDS.items()}


def other_chapter() -> str:
    """A released chapter other than CHAPTER (a student who handed in the wrong notebook)."""
    return next(c for c in nbs.chapters(folder=nbs.RELEASE) if c != CHAPTER)
