"""The class grader: nbgrader's autograde of a folder of submissions, sandboxed, in parallel on Dask.

- :func:`grade_submissions` (``python -m course_lib grade CHAPTER SUBMISSIONS``, ``make grade``): nbgrader's
  autograde over a folder of submissions, with a gradebook, CSV, histogram and feedback pages that never
  show the hidden tests;
- ``python -m course_lib feedback`` (``batch.refresh``): the feedback pages, grades.csv and the summary
  again from the gradebook, after written answers were graded by hand;
- ``python -m course_lib course-folder`` (``batch.prepare_course_folder``): the course folder that
  ``make grade`` and ``make instructor`` share (every chapter's source, the rubrics).

The modules, by the side they run on:

- the client, the process that runs the command: ``cli`` (the command), ``batch`` (``grade_submissions``:
  the chapter's template course, the main gradebook, the CSV, histogram and summary; ``grade-bench``),
  ``collect`` (finding the submissions), ``engine`` (the Dask cluster);
- the worker, a Dask worker and the processes it starts: ``worker`` (``grade_task``, ``warm`` and
  ``reference_times``, which the client hands to Dask, and ``feedback_pages``: the only module of this side
  that the client imports), ``fork_execute``,
  ``warm``, ``sandbox``, ``sandbox_guard``, ``sandbox_launcher``, ``check_index``, ``feedback`` (the
  pages; ``worker.feedback_pages`` renders them again in the instructor's process);
- both: ``common`` (what tasks and results carry, nbgrader helpers, ``lean_imports``), which imports
  nothing else of the grader.

The worker's side never imports the client's, and no two modules import each other, even inside functions.
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
