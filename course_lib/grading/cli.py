"""``python -m course_lib grade CHAPTER SUBMISSIONS`` (``make grade CHAPTER=01_se SUBMISSIONS=path``).

Autograde every submission of CHAPTER under SUBMISSIONS with nbgrader, in parallel on Dask (a LocalCluster
of --workers processes, or the cluster at --scheduler), then print a summary table and write, under --out,
the course folder (default out/grading, or $COURSE_DIR): one nbgrader course directory for every chapter,
the one `make instructor` opens in formgrader:

    CHAPTER/grades.csv      one row per student of the class: score, status, pending_manual, one column per graded cell
    CHAPTER/histogram.png   the distribution of scores
    CHAPTER/summary.txt     the table printed at the end
    feedback/<student>/CHAPTER/CHAPTER.html   per-student feedback (hidden tests not shown)
    rubrics/CHAPTER.md      the written questions' model answers and rubrics, for hand grading
    gradebook.db            nbgrader's gradebook (or the database given by --db-url)

Students graded before and not in SUBMISSIONS keep their rows. SUBMISSIONS is nbgrader's ``submitted/``
folder (``<student>/CHAPTER/CHAPTER.ipynb``), one folder per student, or a flat folder of notebooks named per
student (``alice_01_se.ipynb``); see docs/grading.md. A submission that cannot be graded gets 0 and a status
saying why; the others are not affected.

Exit status: 0 when every submission was graded; 3 when some could not be (the last lines say which and
why; the others were graded and written); 2 when nothing was graded (bad arguments, an ambiguous folder,
no cluster).

After grading written answers by hand in formgrader: `python -m course_lib feedback CHAPTER [--out DIR]`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import os

from course_lib.grading.collect import SubmissionLayoutError
from course_lib.grading.common import lean_imports
from course_lib.grading.engine import EngineError

#: exit status of a run in which some submissions could not be graded (the others were)
SOME_NOT_GRADED = 3


def course_dir() -> Path:
    """The course folder: $COURSE_DIR, else out/grading (from the repository, where the commands run)."""
    return Path(os.environ.get("COURSE_DIR") or "out/grading")


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
    parser.add_argument("--out", type=Path, default=course_dir(),
                        help="the course folder (default: $COURSE_DIR, else out/grading)")
    parser.add_argument("--workers", type=_positive, default=None,
                        help="grading processes of the local Dask cluster (default: one per core)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on a running Dask cluster instead, e.g. tcp://10.0.0.5:8786 (--workers is then ignored)")
    parser.add_argument("--db-url", default=None, help="SQLAlchemy URL of the gradebook (default: sqlite:///OUT/gradebook.db)")
    parser.add_argument("--timeout", type=_positive, default=None,
                        help="one fixed limit in seconds for every cell (default: each cell's budget, 10x the "
                             "reference solution's time for it, at least 10 s, at most Execute.timeout of "
                             "nbgrader_config.py)")
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
    return SOME_NOT_GRADED if run.failed_now else 0


def feedback_main(argv: list[str] | None = None) -> int:
    """``python -m course_lib feedback CHAPTER [--out DIR]``: after hand grading, the pages and reports again."""
    from course_lib.grading.batch import refresh

    parser = argparse.ArgumentParser(
        prog="python -m course_lib feedback",
        description="After written answers were graded by hand in formgrader: render the feedback pages of "
                    "CHAPTER again from the gradebook (manual scores and comments, hidden tests removed) and "
                    "write grades.csv, the histogram, summary.txt and run.json of the class again.")
    parser.add_argument("chapter")
    parser.add_argument("legacy_out", nargs="?", type=Path, help=argparse.SUPPRESS)  # the old positional form
    parser.add_argument("--out", type=Path, default=None,
                        help="the course folder (default: $COURSE_DIR, else out/grading)")
    parser.add_argument("--db-url", default=None, help="the gradebook (default: the one the chapter was graded into)")
    parser.add_argument("--student", action="append", help="only this student's page (repeatable)")
    args = parser.parse_args(argv)
    out = args.out or args.legacy_out or course_dir()
    try:
        run, pages = refresh(args.chapter, out, db_url=args.db_url, students=args.student)
    except FileNotFoundError as err:
        parser.error(str(err))
    failed = {}
    for student, what in pages.items():
        if what == "no autograded notebook":  # could not be graded: its page says why, and stays
            what = "page left as it was (the submission could not be graded)"
        elif what != "written":
            failed[student] = what
        print(f"{student}: {what}")
    print()
    print(run.summary())
    if failed:
        print(f"\n{len(failed)} page{'s' if len(failed) > 1 else ''} not rendered again: {', '.join(failed)} "
              "(reasons above); the reports were written.")
    return 1 if failed else 0


def course_folder_main(argv: list[str] | None = None) -> int:
    """``python -m course_lib course-folder [--out DIR]`` (``make instructor`` runs it first)."""
    from course_lib.tools import notebooks as nbs
    from course_lib.grading.batch import prepare_course_folder

    parser = argparse.ArgumentParser(
        prog="python -m course_lib course-folder",
        description="Set up the course folder that `make grade` grades into and `make instructor` opens in "
                    "formgrader: every chapter's source (so formgrader generates and releases inside it, "
                    "never into the repository's notebooks/) and the rubrics of the written questions "
                    "(rubrics/CHAPTER.md). Gradebook and graded notebooks are left as they are.")
    parser.add_argument("--out", type=Path, default=None,
                        help="the course folder (default: $COURSE_DIR, else out/grading)")
    parser.add_argument("--source-root", type=Path, default=None,
                        help="folder holding solutions/<chapter>/ (default: this repository)")
    args = parser.parse_args(argv)
    out = (args.out or course_dir()).resolve()
    try:
        chapters = prepare_course_folder(out, args.source_root or nbs.REPO)
    except ValueError as err:
        parser.error(str(err))
    print(f"course folder {out}: {len(chapters)} chapters' sources; rubrics of the written questions in "
          f"{out / 'rubrics'}")
    return 0
