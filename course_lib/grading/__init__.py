"""Tools for instructors: autograde a class, and build what students receive.

- :func:`grade_submissions` (``python -m course_lib grade CHAPTER SUBMISSIONS``, ``make grade``): nbgrader's
  autograde over a folder of submissions, in parallel, with a gradebook, CSV, histogram and feedback
  pages that never show the hidden tests (``batch.py``, ``collect.py``, ``feedback.py``, ``cli.py``).
- ``python -m course_lib student-bundle`` (``make student-bundle``): the released notebooks and
  course_lib without the reference solutions or hidden checks (``bundle.py``).
- ``python -m course_lib grader-report``: how well the checks grade the catalog of implementations
  (``report.py``).

Nothing is imported here until it is used, so ``import course_lib.grading`` stays cheap.
"""
from __future__ import annotations

from typing import Any

__all__ = ["GradeRun", "grade_submissions", "find_submissions"]


def __getattr__(name: str) -> Any:
    if name in {"GradeRun", "grade_submissions"}:
        from course_lib.grading import batch

        return getattr(batch, name)
    if name == "find_submissions":
        from course_lib.grading.collect import find_submissions

        return find_submissions
    raise AttributeError(f"module 'course_lib.grading' has no attribute {name!r}")
