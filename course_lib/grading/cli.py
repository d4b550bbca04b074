"""``python -m course_lib grade CHAPTER SUBMISSIONS`` (``make grade CHAPTER=01_se SUBMISSIONS=path``).

Autograde every submission of CHAPTER under SUBMISSIONS with nbgrader, in parallel on Dask (a LocalCluster
of --workers processes, or the cluster at --scheduler), then print a summary table and write, under --out (default ``out/grading``, an nbgrader course directory shared by all
chapters):

    CHAPTER/grades.csv      one row per student: score, status, one column per graded cell
    CHAPTER/histogram.png   the distribution of scores
    CHAPTER/summary.txt     the table printed at the end
    feedback/<student>/CHAPTER/CHAPTER.html   per-student feedback (hidden tests not shown)
    gradebook.db            nbgrader's gradebook (or the database given by --db-url)

SUBMISSIONS is nbgrader's ``submitted/`` folder (``<student>/CHAPTER/CHAPTER.ipynb``), one folder per
student, or a flat folder of notebooks named per student (``alice_01_se.ipynb``); see docs/grading.md.
A submission that cannot be graded gets 0 and a status saying why; the others are not affected.
Exit status: 0 when every submission was graded, 1 when some could not be, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib.grading.collect import SubmissionLayoutError
from course_lib.grading.common import lean_imports
from course_lib.grading.engine import EngineError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", help="the chapter (assignment) to grade, e.g. 01_se")
    parser.add_argument("submissions", type=Path, help="folder of submissions (nbgrader layout or flat)")
    parser.add_argument("--out", type=Path, default=Path("out/grading"), help="output course folder (default: out/grading)")
    parser.add_argument("--workers", type=_positive, default=None,
                        help="grading processes of the local Dask cluster (default: one per core)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on a running Dask cluster instead, e.g. tcp://10.0.0.5:8786 (--workers is then ignored)")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the gradebook (default: sqlite:///OUT/gradebook.db)")
    parser.add_argument("--timeout", type=_positive, default=None, help="seconds per cell (default: nbgrader_config.py)")
    parser.add_argument("--student-timeout", type=_positive, default=None,
                        help="hard limit in seconds for one submission (default: from --timeout and the cell count)")
    parser.add_argument("--student-pattern", default=None,
                        help="regular expression with a group (?P<student>...) for flat file names the defaults do not read")
    parser.add_argument("--kernel", default=None, help="kernelspec to grade in (default: the notebook's)")
    parser.add_argument("--env", action="append", default=[], type=_assignment, metavar="NAME=VALUE",
                        help="environment variable for the grading kernels (repeatable), e.g. JUPYTER_PATH=...")
    parser.add_argument("--source-root", type=Path, default=None,
                        help="folder holding solutions/<chapter>/ (default: this repository)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    lean_imports()  # before nbformat is first imported in this process
    from course_lib.tools import notebooks as nbs
    from course_lib.grading.batch import grade_submissions

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run = grade_submissions(
            args.chapter, args.submissions, out=args.out, workers=args.workers, scheduler=args.scheduler,
            db_url=args.db_url,
            cell_timeout=args.timeout, kernel_name=args.kernel, kernel_env=dict(args.env) or None,
            progress=not args.no_progress,
            student_timeout=args.student_timeout, student_pattern=args.student_pattern,
            source_root=args.source_root or nbs.REPO,
        )
    except (SubmissionLayoutError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except EngineError as err:  # the cluster could not be started or reached
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(run.summary())
    return 0 if all(row["status"] == "graded" for row in run.rows) else 1
