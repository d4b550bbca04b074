"""Autograde a class: many submissions of one chapter, on Dask, with nbgrader's exact grades.

    python -m course_lib grade 01_se path/to/submissions [--out DIR] [--workers N | --scheduler ADDRESS]
    python -m course_lib grade-bench --bench [CHAPTER] [-n 12] [--workers 2]   # against plain nbgrader

How it works
------------
nbgrader has no parallel autograde (nbgrader #174), and its SQLite gradebook takes one writer at a time.
So every submission is graded on its own:

1. this process (the client) builds the chapter once in a template course (``generate_assignment``:
   source, release and a gradebook that knows the chapter's cells) and packs it;
2. Dask runs one task per submission (``worker.py``; ``engine.py`` holds the cluster) on a LocalCluster
   of ``N`` worker processes or on any Dask cluster; a worker unpacks the template into a fresh folder,
   puts the submission under ``submitted/<student>/<chapter>/`` and runs nbgrader's own ``autograde``
   there, the notebook running in a child forked from the worker's warm template (``warm.py``: sandboxed,
   one fresh process per submission), then renders the feedback from a copy of the autograded notebook
   with the hidden tests removed (``feedback.py``), and returns all of it as data;
3. the client alone writes the main gradebook (SQLite by default, or any SQLAlchemy URL such as
   PostgreSQL): it copies each student's grades and comments into it through ``nbgrader.api.Gradebook``
   and writes the submitted and autograded notebooks and the feedback into the output folder.

A student's grade therefore depends only on the template and the submission: not on which worker or
machine graded it, in which order, or beside whom. The tests compare, cell by cell, plain
``nbgrader autograde``, one worker, a LocalCluster of two and a ``dask scheduler`` with ``dask worker``
processes. Every notebook gets the same environment whatever the number of workers (one torch thread, a
fixed hash seed, the Agg backend), so that floating-point results cannot depend on ``workers`` either.

What is left of the hand-written pool that this module had before Dask: nothing of the processes,
selectors, kill-and-replace logic. What remains the course's own is what Dask does not do: the limits of
one notebook (cell timeout, the ``student_timeout`` of a whole submission, memory and file size), which
``fork_execute.ForkExecute`` enforces on the child, and one task at a time per worker process (a lock in
``worker.grade_task``), since each notebook is given a whole core.

Written answers (markdown cells with ``grade`` and ``solution``, graded by hand) are treated as nbgrader
treats them: 0 when left as released, otherwise no automatic score and ``needs_manual_grade`` in the
gradebook; a row's ``score`` then holds the auto-graded points and ``pending`` the points left to grade
by hand, which the summary, the CSV (``pending_manual``) and the feedback page say.
``python -m course_lib feedback`` renders the pages again once they are graded.

A submission that cannot be graded (malformed JSON, an empty notebook, another chapter's notebook, a
kernel that died, a grading process that ran past its time limit) gets a row with score 0 and a status
saying why, a flagged entry in the gradebook and a feedback page with the reason; the batch goes on.

The output folder is the course folder (default ``out/grading``), an nbgrader course directory that
``make instructor`` opens in formgrader, for hand grading::

    OUT/gradebook.db                                   (unless --db-url points elsewhere)
    OUT/submitted|autograded/<student>/<chapter>/      the notebooks as handed in / as graded
    OUT/feedback/<student>/<chapter>/<chapter>.html    what each student receives
    OUT/<chapter>/grades.csv, histogram.png, summary.txt, run.json, logs/<student>.log
    OUT/rubrics/<chapter>.md                           the written questions' model answers and rubrics

The reports hold the whole class: a run that grades some students updates their rows and keeps the
others' (read back from ``run.json`` and the gradebook). ``python -m course_lib feedback CHAPTER``
(:func:`refresh`) renders the pages and the reports again from the gradebook after hand grading.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import html
import json
import os
import secrets
import shutil
import statistics
import sys
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.tools import notebooks as nbs
from course_lib.grading.collect import Collection, Submission, find_submissions
from course_lib.grading.common import (MAX_NOTEBOOK_BYTES, MAX_RESULT_BYTES, api, course_id, digest, error_result,
                                       grade_ids, hidden_lines, pack_folder, quiet_sqlalchemy, share, write_tree)

__all__ = ["GradeRun", "grade_submissions", "bench", "DEFAULT_KERNEL_ENV"]

#: The environment of every grading kernel (``kernel_env`` adds to it or overrides it). One torch thread
#: per kernel: grades must not depend on how many kernels share the machine.
DEFAULT_KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
}
STARTUP_S = 120  # nbgrader_config.py: Execute.startup_timeout
#: a cell's time budget while grading: BUDGET_FACTOR times what the reference solution's cell took on the
#: grading workers (measured once per chapter version, OUT/<chapter>/reference_times.json), at least
#: BUDGET_FLOOR_S, at most the configured cell timeout; a cell the reference has not, the largest budget
BUDGET_FACTOR = 10
BUDGET_FLOOR_S = 10.0


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class GradeRun:
    """What a batch produced. ``rows``: one dict per student, sorted by student::

        {"student", "score", "max_score", "pending" ({grade_id: points} left for manual grading),
         "status" ("graded" or "error: ..."), "note", "cells": {grade_id: (score, max_score)}, "source",
         "seconds", "phases" (seconds of each step in the worker)}
    """

    chapter: str
    out: Path
    rows: list[dict]
    csv_path: Path
    feedback_dir: Path
    histogram_path: Path
    summary_path: Path
    seconds: float  # the whole batch
    grading_seconds: float  # the grading itself (without building the chapter and the reports)
    gradebook: str
    workers: int
    layout: str = ""
    skipped: list[str] = field(default_factory=list)
    #: the students this run graded; ``rows`` hold the whole class (students of earlier runs too)
    graded_now: list[str] = field(default_factory=list)
    #: "grade" (a run of the grader) or "refresh" (the reports read again from the gradebook)
    kind: str = "grade"
    #: the time budgets of the cells ({"cells": {cell: seconds}, "default": seconds}); empty: the fixed
    #: cell timeout (--timeout given, no sandbox, or the reference could not be timed; "note" says why)
    budgets: dict = field(default_factory=dict)
    #: where the command's time went (seconds): "build" (the chapter's template course), "cluster"
    #: (waiting for the cluster and its warm templates after the build), "grading", "reports", "close"
    profile: dict = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        return {row["student"]: row["score"] for row in self.rows}

    def feedback(self, student: str) -> Path:
        return self.feedback_dir / student / self.chapter / f"{self.chapter}.html"

    def gradebook_scores(self) -> dict[str, float]:
        """student -> score of this chapter, read back from the main gradebook."""
        from nbgrader.api import Gradebook

        with quiet_sqlalchemy(), Gradebook(self.gradebook, course_id()) as gb:
            return {s.student.id: s.score for s in gb.find_assignment(self.chapter).submissions}

    def summary(self) -> str:
        return summary_table(self)

    @property
    def failed_now(self) -> list[dict]:
        """The rows of this run's students that could not be graded."""
        now = set(self.graded_now)
        return [row for row in self.rows if row["student"] in now and row["status"] != "graded"]

    def to_dict(self) -> dict:
        """JSON-ready (written as ``OUT/<chapter>/run.json``); :meth:`from_dict` reads it back."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
        data["rows"] = [{**row, "cells": {k: list(v) for k, v in row["cells"].items()}} for row in self.rows]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "GradeRun":
        paths = {"out", "csv_path", "feedback_dir", "histogram_path", "summary_path"}
        kwargs = {k: Path(v) if k in paths else v for k, v in data.items()}
        kwargs["rows"] = [{**row, "cells": {k: tuple(v) for k, v in row["cells"].items()}} for row in data["rows"]]
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def grade_submissions(
    chapter: str,
    submissions: Path,
    *,
    out: Path,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster=None,
    db_url: str | None = None,
    cell_timeout: int | None = None,
    kernel_name: str | None = None,
    kernel_env: dict[str, str | None] | None = None,
    progress: bool = True,
    student_timeout: float | None = None,
    student_pattern: str | None = None,
    source_root: Path = nbs.REPO,
) -> GradeRun:
    """Autograde every submission of ``chapter`` found under ``submissions``; write reports under ``out``.

    Where it runs (``engine.py``): a Dask ``LocalCluster`` of ``workers`` processes (default: the cores
    this process may use), or the Dask cluster at ``scheduler`` (an address such as
    ``tcp://host:8786``), or ``cluster`` (a Dask cluster object, left open). ``db_url``: the main
    gradebook (default ``sqlite:///OUT/gradebook.db``), written by this process alone.
    ``cell_timeout``: seconds per cell (default: ``Execute.timeout`` of nbgrader_config.py).
    ``kernel_name``: a kernelspec to grade in instead of the notebook's; ``kernel_env``: environment
    variables for the grading (a value of None removes the variable). ``student_timeout``: hard limit in
    seconds for one student (default: generous, from the cell timeout and the number of cells), past
    which the notebook is stopped. ``student_pattern``: see
    :func:`course_lib.grading.collect.find_submissions`. ``source_root``: the folder holding
    ``solutions/<chapter>/`` (the repository by default).
    """
    from course_lib.grading.engine import Engine

    started = time.perf_counter()
    source_root = Path(source_root).resolve()
    known = nbs.chapters(source_root)
    if chapter not in known:
        raise ValueError(f"unknown chapter {chapter!r}: expected one of {known} (folders of {source_root / nbs.SOURCE})")
    if workers is None:
        workers = _cores()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if cell_timeout is not None and (not isinstance(cell_timeout, int) or cell_timeout < 1):
        raise ValueError(f"cell_timeout must be a positive int (seconds), got {cell_timeout!r}")
    if scheduler is not None and cluster is not None:
        raise ValueError("give scheduler (an address) or cluster (a Dask cluster object), not both")
    if scheduler is not None and (not isinstance(scheduler, str) or ":" not in scheduler):
        raise ValueError(f"scheduler must be a Dask scheduler address such as tcp://127.0.0.1:8786, got {scheduler!r}")
    out = Path(out).resolve()
    if out == source_root or out == nbs.REPO:
        raise ValueError(f"out must be a folder of its own, not the course repository ({out})")

    others = sorted(set(known) | set(nbs.chapters(source_root, nbs.RELEASE)))
    collection = find_submissions(chapter, Path(submissions), other_chapters=others, student_pattern=student_pattern)
    report_dir = out / chapter
    (report_dir / "logs").mkdir(parents=True, exist_ok=True)
    # formgrader and nbgrader's commands on this folder then grade in the sandbox and render safe feedback
    from course_lib.grading.course_folder import write_course_config
    write_course_config(out)
    db_url = db_url or f"sqlite:///{out / 'gradebook.db'}"
    env = {**DEFAULT_KERNEL_ENV, **(kernel_env or {})}
    sandboxed = str(env.get("COURSE_SANDBOX") or os.environ.get("COURSE_SANDBOX", "")).strip().lower() not in {
        "off", "0", "no", "false"}

    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        work = Path(tmp)
        # the cluster and its warm templates come up while this process builds the chapter
        profile: dict[str, float] = {}
        clock = [started]

        def lap(name: str) -> None:
            now = time.perf_counter()
            profile[name] = profile.get(name, 0.0) + now - clock[0]
            clock[0] = now

        lap("start")
        engine = Engine(workers=min(workers, max(1, len(collection.submissions))), scheduler=scheduler,
                        cluster=cluster, env=env, sandbox=sandboxed).start()
        try:
            template, info = _prepare_template(chapter, work, source_root, others)
            # autograde takes the cells from the gradebook: the instructor's notebook stays with the client
            packed = pack_folder(template, skip=lambda rel: rel.startswith(f"{nbs.SOURCE}/") and rel.endswith(".ipynb"))
            timeout_cell = cell_timeout or _configured_timeout()
            limit = student_timeout or STARTUP_S + timeout_cell * (info["code_cells"] + 2) + 120
            static = {
                "chapter": chapter, "template": packed, "digest": digest(packed), "info": info,
                "cell_timeout": cell_timeout, "kernel_name": kernel_name, "env": env, "limit": float(limit),
                "sandbox": sandboxed,
            }
            _prepare_main(out, template, chapter, db_url)
            lap("build")
            client = engine.client()
            used_workers = engine.worker_count() if (scheduler or cluster is not None) else engine.workers
            lap("cluster")
            if cell_timeout is None and sandboxed:
                static["budgets"] = _budgets(client, out, chapter, nbs.notebook_path(chapter, template),
                                             static, timeout_cell)
            lap("budgets")
            grading_started = time.perf_counter()
            rows = _grade_all(client, collection, out, chapter, db_url, info, static, progress)
            grading_seconds = time.perf_counter() - grading_started
            lap("grading")
        except BaseException:
            engine.close()
            raise
        # the cluster shuts down (workers, templates) while this process writes the reports
        closing = threading.Thread(target=engine.close, name="course-grading-close", daemon=True)
        closing.start()

    run = GradeRun(
        chapter=chapter,
        out=out,
        rows=class_rows(out, chapter, db_url, info["grade_cells"], rows),
        csv_path=report_dir / "grades.csv",
        feedback_dir=out / "feedback",
        histogram_path=report_dir / "histogram.png",
        summary_path=report_dir / "summary.txt",
        seconds=time.perf_counter() - started,
        grading_seconds=grading_seconds,
        gradebook=db_url,
        workers=used_workers,
        layout=collection.layout,
        skipped=collection.skipped,
        graded_now=sorted(row["student"] for row in rows),
        budgets=static.get("budgets") or {},
        profile=profile,
    )
    try:
        write_reports(run, [name for name, _ in info["grade_cells"]])
        lap("reports")
    finally:
        closing.join()
    lap("close")
    run.seconds = time.perf_counter() - started
    (report_dir / "run.json").write_text(json.dumps(run.to_dict(), indent=1), encoding="utf-8")
    return run


def write_reports(run: GradeRun, grade_ids: list[str]) -> None:
    """grades.csv, histogram.png, summary.txt and run.json of the class, from ``run.rows``."""
    write_csv(run, grade_ids)
    write_histogram(run)
    run.summary_path.write_text(summary_table(run) + "\n", encoding="utf-8")
    (run.out / run.chapter / "run.json").write_text(json.dumps(run.to_dict(), indent=1), encoding="utf-8")


def grade_cells_of(release) -> list[tuple[str, float]]:
    """(grade_id, points) of the released notebook's graded cells, in notebook order."""
    return [(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0)))
            for c in release.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


def _scores(notebook, grade_cells: list[tuple[str, float]]) -> dict:
    """A row's score, max_score, cells and pending, read from a gradebook's SubmittedNotebook."""
    cells = {g.name: (float(g.score), float(g.max_score)) for g in notebook.grades}
    pending = nbs.grades_of(notebook)["pending"]
    return {
        "score": float(notebook.score),
        "max_score": float(notebook.max_score),
        "cells": {name: cells[name] for name, _ in grade_cells if name in cells},
        # points of the cells left for manual grading (written answers): the score does not hold them yet
        "pending": {name: float(pending[name]) for name, _ in grade_cells if name in pending},
    }


def class_rows(out: Path, chapter: str, db_url: str, grade_cells: list[tuple[str, float]],
               fresh: list[dict]) -> list[dict]:
    """Every student of ``chapter`` in the course folder ``out``, sorted: ``fresh`` rows (this run's) in
    place of earlier ones (``run.json`` of an earlier run), and every row's scores read back from the
    gradebook, so that manual grades count. A submission in the gradebook that no run of the grader
    wrote (formgrader's or ``nbgrader autograde``'s) gets a row too."""
    from nbgrader.api import Gradebook, MissingEntry

    earlier: dict[str, dict] = {}
    saved = out / chapter / "run.json"
    if saved.is_file():
        try:
            earlier = {row["student"]: row for row in json.loads(saved.read_text(encoding="utf-8"))["rows"]}
        except (ValueError, KeyError, TypeError):  # unreadable: the gradebook still has every student
            earlier = {}
    rows = {**earlier, **{row["student"]: row for row in fresh}}
    with quiet_sqlalchemy(), Gradebook(db_url, course_id()) as gb:
        try:
            known = [s.student.id for s in gb.find_assignment(chapter).submissions]
        except MissingEntry:
            known = []
        for student in sorted(set(rows) | set(known)):
            try:
                notebook = gb.find_submission_notebook(chapter, chapter, student)
            except MissingEntry:
                rows.pop(student, None)  # no longer in the gradebook (removed by hand): no row
                continue
            row = rows.get(student) or {
                "student": student, "note": "graded outside `python -m course_lib grade`", "source": "",
                "seconds": None, "phases": {},
                "status": "graded" if (out / "autograded" / student / chapter).is_dir() else "error: not autograded",
            }
            row.update(_scores(notebook, grade_cells))
            rows[student] = row
    return [rows[name] for name in sorted(rows)]


def refresh(chapter: str, out: Path, *, db_url: str | None = None,
            students: list[str] | None = None) -> tuple[GradeRun, dict[str, str]]:
    """After hand grading (formgrader): the feedback pages of ``chapter`` in the course folder ``out``
    rendered again from its gradebook (``feedback.regenerate``, through ``worker.feedback_pages``: manual scores and
    comments, hidden tests removed), then grades.csv, the histogram, summary.txt and run.json of the whole
    class read again from the gradebook. Returns the run and student -> what became of their page."""
    import nbformat

    from course_lib.grading.worker import feedback_pages

    out = Path(out).resolve()
    saved = out / chapter / "run.json"
    release = nbs.notebook_path(chapter, out, nbs.RELEASE)
    if not saved.is_file() or not release.is_file():
        raise FileNotFoundError(f"{out} holds no graded chapter {chapter!r} (no {chapter}/run.json): give the "
                                "chapter and the course folder that `python -m course_lib grade` graded it into")
    run = GradeRun.from_dict(json.loads(saved.read_text(encoding="utf-8")))
    if db_url is None:
        db_url = run.gradebook if not run.gradebook.startswith("sqlite:") else f"sqlite:///{out / 'gradebook.db'}"
    with quiet_sqlalchemy():
        pages = feedback_pages(out, chapter, db_url=db_url, students=students)
    grade_cells = grade_cells_of(nbformat.read(release, as_version=4))
    report_dir = out / chapter
    run.rows = class_rows(out, chapter, db_url, grade_cells, [])
    for row in run.rows:  # a submission that could not be graded has no notebook to render: its page stays
        if not students or row["student"] in students:
            pages.setdefault(row["student"], "no autograded notebook")
    pages = dict(sorted(pages.items()))
    run.out, run.gradebook, run.kind, run.graded_now, run.skipped = out, db_url, "refresh", [], []
    run.csv_path, run.histogram_path = report_dir / "grades.csv", report_dir / "histogram.png"
    run.summary_path, run.feedback_dir = report_dir / "summary.txt", out / "feedback"
    write_reports(run, [name for name, _ in grade_cells])
    return run, pages


def _budgets(client, out: Path, chapter: str, source: Path, static: dict, cap: float) -> dict:
    """Each cell's time budget (seconds, by ``fork_execute.cell_key``) from the reference solution's cell
    times: measured on a grading worker, as a submission runs, once per version of the chapter (cached in
    OUT/<chapter>/reference_times.json). Empty when the reference could not be timed: the configured
    cell timeout applies then, and a line on stderr says why."""
    from course_lib.grading.worker import reference_times

    data = source.read_bytes()
    cache = out / chapter / "reference_times.json"
    times = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved["source"] == digest(data):
            times = {str(k): float(v) for k, v in saved["times"].items()}
    if times is None:
        answer = client.submit(reference_times, data, static, pure=False,
                               key=f"course-reference-{chapter}-{secrets.token_hex(8)}").result()
        if "times" not in answer:
            print(f"note: the reference solution of {chapter} could not be timed ({answer.get('error')}); "
                  f"every cell may run {cap:g} s", file=sys.stderr)
            return {}
        times = answer["times"]
        if not times:  # a kernel the warm template cannot fork (--kernel with another Python): no cell times
            return {}
        cache.write_text(json.dumps({"source": digest(data), "times": times}, indent=1), encoding="utf-8")
    cells = {key: round(min(float(cap), max(BUDGET_FLOOR_S, BUDGET_FACTOR * seconds)), 1)
             for key, seconds in times.items()}
    return {"cells": cells, "default": max(cells.values(), default=float(cap)), "reference": times}


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _configured_timeout() -> int:
    return int(nbs.nbgrader_config(Path(".")).Execute.timeout)


_fast_alembic = nbs.fast_alembic  # the name the grader and its tests use


# --------------------------------------------------------------------------------------------
# the template course and the main gradebook (parent)
# --------------------------------------------------------------------------------------------
def _prepare_template(chapter: str, work: Path, source_root: Path, others: list[str]) -> tuple[Path, dict]:
    import nbformat

    template = work / "template"
    with contextlib.redirect_stdout(sys.stderr), _fast_alembic():
        nbs.new_course(template, [chapter], source_root=source_root)
    source = nbformat.read(nbs.notebook_path(chapter, template), as_version=4)
    release = nbformat.read(nbs.notebook_path(chapter, template, nbs.RELEASE), as_version=4)
    grade_cells = grade_cells_of(release)
    other_ids = {}
    for other in others:
        if other == chapter:
            continue
        for folder in (nbs.RELEASE, nbs.SOURCE):
            path = nbs.notebook_path(other, source_root, folder)
            if path.is_file():
                other_ids[other] = sorted(grade_ids(nbformat.read(path, as_version=4)))
                break
    info = {
        "grade_cells": grade_cells,
        "max_score": sum(points for _, points in grade_cells),
        "code_cells": sum(c.cell_type == "code" for c in release.cells),
        "ids": sorted(grade_ids(release)),
        "other_ids": other_ids,
        "secrets": hidden_lines(source, release),
        # cells nbgrader leaves for manual grading (grade and solution): the WRITTEN questions
        "manual": sorted(nbs.manual_cells(release)),
    }
    return template, info


def _source_cells(gb, chapter: str) -> dict[str, str | None]:
    notebook = gb.find_notebook(chapter, chapter)
    return {cell.name: cell.checksum for cell in notebook.source_cells}


def _prepare_main(out: Path, template: Path, chapter: str, db_url: str) -> None:
    """The output folder as a course directory whose gradebook knows the chapter (as the template does)."""
    from nbgrader.api import Gradebook, MissingEntry

    for folder in (nbs.SOURCE, nbs.RELEASE):
        target = out / folder / chapter
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(template / folder / chapter, target)
    write_rubric(out, chapter)
    fresh_sqlite = out / "gradebook.db"
    if db_url == f"sqlite:///{fresh_sqlite}" and not fresh_sqlite.exists():
        shutil.copy(template / "gradebook.db", fresh_sqlite)
        return
    with quiet_sqlalchemy(), nbs.venv_on_path(), _fast_alembic():
        with Gradebook(f"sqlite:///{template / 'gradebook.db'}", course_id()) as gb:
            wanted = _source_cells(gb, chapter)
        with Gradebook(db_url, course_id()) as gb:
            try:
                present = _source_cells(gb, chapter)
            except MissingEntry:
                present = None
        if present == wanted:
            return
        with contextlib.redirect_stdout(sys.stderr):
            result = api(out, db_url=db_url).generate_assignment(chapter, force=True, create=True)
        if not result.get("success"):
            raise RuntimeError(
                f"could not record {chapter} in the gradebook {db_url}: {result.get('error') or result.get('log')}"
            )


# --------------------------------------------------------------------------------------------
# the course folder: every chapter's source, and the rubrics of the written questions
# --------------------------------------------------------------------------------------------
def write_rubric(out: Path, chapter: str) -> Path | None:
    """``OUT/rubrics/CHAPTER.md``: each written question of the chapter (graded by hand) with its points,
    the question as the student reads it and the model answer with its rubric, from the source notebook in
    the course folder, for the grader to keep open beside formgrader. None when the chapter has none."""
    import nbformat

    from course_lib.grading.common import BEGIN_SOLUTION, END_SOLUTION

    source = nbformat.read(nbs.notebook_path(chapter, out), as_version=4)
    target = out / "rubrics" / f"{chapter}.md"
    parts = []
    for index, cell in enumerate(source.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade") and meta.get("solution")):
            continue
        question = next((c.source.strip() for c in reversed(source.cells[:index]) if c.cell_type == "markdown"), "")
        body = cell.source
        if BEGIN_SOLUTION in body:
            body = body.split(BEGIN_SOLUTION, 1)[1].split(END_SOLUTION, 1)[0]
        parts.append(f"## `{meta.get('grade_id')}` ({float(meta.get('points', 0)):g} points)\n\n"
                     f"**The question** (the cell above the answer, as the student reads it):\n\n"
                     + "\n".join(f"> {line}" if line else ">" for line in question.splitlines())
                     + f"\n\n**Model answer and rubric** (never shown to students):\n\n{body.strip()}\n")
    if not parts:
        if target.exists():
            target.unlink()
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f"# {chapter}: written answers, graded by hand\n\n"
        "For the grader: keep this page open beside formgrader's Manual Grading (`make instructor`; drag its "
        "tab to the side). Students never see it; it is written from the chapter's source notebook each time "
        "the chapter is graded or the instructor view starts.\n\n" + "\n".join(parts), encoding="utf-8")
    return target


def prepare_course_folder(out: Path, source_root: Path = nbs.REPO) -> list[str]:
    """The course folder ``out`` as `make instructor` opens it: every chapter's source
    (``solutions/<chapter>/``, so that formgrader lists, generates and releases every chapter inside the
    course folder, never into the repository's ``notebooks/``) and the rubrics of the written questions.
    The gradebook and the graded notebooks are left as they are. Returns the chapters."""
    out, source_root = Path(out).resolve(), Path(source_root).resolve()
    if out == source_root or out == nbs.REPO:
        raise ValueError(f"the course folder must be a folder of its own, not the course repository ({out})")
    chapters = nbs.chapters(source_root)
    for chapter in chapters:
        shutil.copytree(source_root / nbs.SOURCE / chapter, out / nbs.SOURCE / chapter, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        write_rubric(out, chapter)
    # the course's nbgrader settings, sandbox and safe feedback for formgrader and nbgrader on this folder
    from course_lib.grading.course_folder import write_course_config
    write_course_config(out)
    return chapters


# --------------------------------------------------------------------------------------------
# grading every submission and merging (parent)
# --------------------------------------------------------------------------------------------
def _grade_all(client, collection: Collection, out: Path, chapter: str, db_url: str, info: dict, static: dict,
               progress: bool) -> list[dict]:
    """One Dask task per submission; each result goes into the main gradebook as it arrives (this process
    alone writes it)."""
    from distributed import as_completed
    from nbgrader.api import Gradebook
    from tqdm import tqdm

    from course_lib.grading.worker import grade_task

    # the chapter as a task of its own (not scattered data): if the worker holding it dies, Dask computes
    # it again from the task, which the scheduler keeps; scattered data would be lost with its worker
    shared = client.submit(share, static, key=f"course-chapter-{chapter}-{secrets.token_hex(8)}", pure=False)
    futures = {}
    for sub in collection.submissions:
        task = _task(sub)
        future = client.submit(grade_task, task, shared, key=f"course-grade-{chapter}-{sub.student}-{task['token']}",
                               pure=False)
        futures[future] = task
    rows: list[dict] = []
    bar = tqdm(total=len(futures), desc=f"grading {chapter}", unit="nb", disable=not progress, file=sys.stderr)
    logs = out / chapter / "logs"
    try:
        with quiet_sqlalchemy(), Gradebook(db_url, course_id()) as gb:
            for future in as_completed(list(futures), loop=client.loop):
                task = futures.pop(future)
                if future.status == "finished":
                    result = future.result()
                else:  # Dask gave up on it: the workers that ran it died (KilledWorker), or it was cancelled
                    err = future.exception() if future.status == "error" else future.status
                    result = error_result(task, f"the grading process died ({type(err).__name__}: {err})"
                                          if isinstance(err, BaseException) else f"the grading process died ({err})")
                future.release()
                (logs / f"{task['student']}.log").write_text(result.get("log") or "", encoding="utf-8")
                row = _merge(gb, chapter, result, info)
                _gather(out, chapter, result, row, info)
                rows.append(row)
                bar.set_postfix_str(f"{row['student']}: {row['score']:g}/{row['max_score']:g}", refresh=False)
                bar.update(1)
    finally:
        bar.close()
        for future in futures:
            future.cancel()
    return rows


def _task(sub: Submission) -> dict:
    """What a worker needs of one submission, as data (workers need not see this machine's files)."""
    problem = sub.problem
    data = b""
    extras = None
    if not problem and sub.notebook is not None:
        size = Path(sub.notebook).stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            problem = f"the notebook is {size / 2**20:.0f} MiB, above the {MAX_NOTEBOOK_BYTES / 2**20:.0f} MiB limit"
        else:
            data = Path(sub.notebook).read_bytes()
    if not problem and sub.folder:
        extras = pack_folder(Path(sub.folder), skip=lambda rel: rel.endswith(".ipynb") or any(
            part.startswith(".") for part in rel.split("/")))
        if len(extras) > MAX_RESULT_BYTES:
            problem = f"the submission folder holds more than {MAX_RESULT_BYTES // 2**20} MiB besides the notebook"
            extras = None
    return {
        "student": sub.student,
        "notebook": str(sub.notebook) if sub.notebook else None,
        "notebook_bytes": data,
        "extras": extras,
        "problem": problem,
        "note": sub.note,
        "source": sub.source,
        "token": secrets.token_hex(8),
    }


def _merge(gb, chapter: str, result: dict, info: dict) -> dict:
    """Copy one student's autograde into the main gradebook; return their row as the gradebook has it."""
    from nbgrader import utils

    student = result["student"]
    error = result["status"] != "graded"
    gb.update_or_create_student(student)
    stamp = {"timestamp": utils.parse_utc(result["timestamp"])} if result.get("timestamp") else {}
    gb.update_or_create_submission(chapter, student, **stamp)
    notebook = gb.find_submission_notebook(chapter, chapter, student)
    points = dict(info["grade_cells"])
    manual = set(info.get("manual", ()))
    auto = {} if error else {g["name"]: g["auto_score"] for g in result["grades"]}
    for grade in notebook.grades:
        score = auto.get(grade.name, 0.0)
        if score is not None:  # never trust more than the cell is worth, nor less than nothing
            score = min(max(float(score), 0.0), points.get(grade.name, float(grade.max_score)))
        if grade.name in manual and score:  # nbgrader scores a written answer 0 (left unchanged) or not at all
            score = None
        grade.auto_score = score
        grade.needs_manual_grade = grade.manual_score is not None or score is None
    comments = {} if error else {c["name"]: c["auto_comment"] for c in result["comments"]}
    for comment in notebook.comments:
        comment.auto_comment = comments.get(comment.name)
    notebook.flagged = error
    gb.db.commit()
    return {
        "student": student,
        **_scores(notebook, info["grade_cells"]),
        "status": result["status"],
        "note": result.get("note") or "",
        "source": result.get("source") or "",
        "seconds": result.get("seconds"),
        "phases": result.get("phases") or {},
    }


def _gather(out: Path, chapter: str, result: dict, row: dict, info: dict) -> None:
    """Write the student's notebooks and feedback, as the worker sent them, into the output folder."""
    student = row["student"]
    files = result.get("files") or {}
    if not files.get("submitted") and result.get("notebook"):  # nothing came back: keep what was handed in
        files = {**files, "submitted": {f"{chapter}.ipynb": Path(result["notebook"]).read_bytes()}}
    for step in ("submitted", "autograded"):
        target = out / step / student / chapter
        if files.get(step) and (step == "submitted" or row["status"] == "graded"):
            write_tree(files[step], target)
        elif target.exists() and step == "autograded":
            shutil.rmtree(target)  # a stale autograde must not sit beside an error row
    page = out / "feedback" / student / chapter / f"{chapter}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    for name in ("timestamp.txt", "submission_secret.txt"):  # nbgrader release_feedback reads them there
        handed = (files.get("submitted") or {}).get(name)
        if handed is not None:
            (page.parent / name).write_bytes(handed)
    if result.get("feedback"):
        page.write_text(result["feedback"], encoding="utf-8")
    else:
        pending = row.get("pending") or {}
        messages = result.get("messages", {})
        cells = [(name, *row["cells"].get(name, (0.0, points)),
                  f"(graded by hand: not scored yet) Your answer:\n{messages.get(name, '')}" if name in pending
                  else messages.get(name, ""))
                 for name, points in info["grade_cells"]]
        status = "Graded. The scores and each check's message follow."
        if pending:
            status += (f" {sum(pending.values()):g} points of written answers are graded by hand; the score "
                       "counts the auto-graded points only until then.")
        if row["status"] != "graded":
            status = f"Your submission could not be graded: {row['status'].removeprefix('error: ')}."
        page.write_text(score_page(student, chapter, status=status, score=row["score"],
                                   max_score=row["max_score"], cells=cells), encoding="utf-8")


def score_page(student: str, chapter: str, *, status: str, score: float, max_score: float,
               cells: list[tuple[str, float, float, str]]) -> str:
    """A plain feedback page: the status, the total and, per graded cell, its score and check message."""
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{got:g} / {out_of:g}</td><td><pre>{html.escape(message)}</pre></td></tr>"
        for name, got, out_of, message in cells
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(chapter)}: feedback for {html.escape(student)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.3em .8em;text-align:left;
vertical-align:top;border-bottom:1px solid #ddd}}pre{{margin:0;white-space:pre-wrap}}</style></head>
<body><h1>{html.escape(chapter)}: feedback for {html.escape(student)}</h1>
<p><strong>Score: {score:g} / {max_score:g}</strong></p>
<p>{html.escape(status)}</p>
<table><tr><th>graded cell</th><th>score</th><th>message</th></tr>
{rows}
</table></body></html>
"""


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------
def write_csv(run: GradeRun, grade_ids: list[str]) -> None:
    with open(run.csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "score", "max_score", "percent", "status", "note", "source",
                         "pending_manual", *grade_ids])
        for row in run.rows:
            percent = 100 * row["score"] / row["max_score"] if row["max_score"] else 0.0
            pending = row.get("pending") or {}
            writer.writerow([
                row["student"], f"{row['score']:g}", f"{row['max_score']:g}", f"{percent:.1f}",
                row["status"], row["note"], row["source"], f"{sum(pending.values()):g}",
                # a cell left for manual grading has no score yet: its column stays empty
                *("" if g in pending else f"{row['cells'].get(g, (0.0, 0.0))[0]:g}" for g in grade_ids),
            ])


def write_histogram(run: GradeRun) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r["score"] for r in run.rows if r["status"] == "graded"]
    failed = [r["score"] for r in run.rows if r["status"] != "graded"]
    top = max([r["max_score"] for r in run.rows] + [1.0])
    values = sorted(set(graded + failed))
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(values) <= 25:
        gaps = [b - a for a, b in zip(values, values[1:])]
        width = min([max(top / 20, 0.25)] + [0.8 * g for g in gaps])
        ax.bar(values, [graded.count(v) for v in values], width=width, label="graded", color="#4477aa")
        ax.bar(values, [failed.count(v) for v in values], width=width,
               bottom=[graded.count(v) for v in values], label="could not be graded", color="#cc6677")
    else:
        ax.hist([graded, failed], bins=20, range=(0, top), stacked=True, color=["#4477aa", "#cc6677"],
                label=["graded", "could not be graded"])
    # a file that could not be graded has no grade: the mean is over the graded submissions
    mean = f", mean {statistics.fmean(graded):.2f}" if graded else ""
    ax.set(xlim=(-0.05 * top - 0.5, top * 1.05 + 0.5), xlabel=f"score (out of {top:g})", ylabel="students",
           title=f"{run.chapter}: {len(run.rows)} submissions{mean}"
                 + (f" (of the {len(graded)} graded)" if failed and graded else ""))
    ax.yaxis.get_major_locator().set_params(integer=True)
    if failed:
        ax.legend()
    fig.tight_layout()
    fig.savefig(run.histogram_path, dpi=120)
    plt.close(fig)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_table(run: GradeRun) -> str:
    """The table printed at the end of a run and kept as summary.txt: the whole class, then what is left
    to do (written answers to grade by hand, files that could not be graded)."""
    width = max([len("student")] + [len(r["student"]) for r in run.rows])
    now = set(run.graded_now)
    if run.kind == "refresh":
        lines = [f"{run.chapter}: {_plural(len(run.rows), 'student')}, scores read again from the gradebook "
                 f"(hand grading included)"]
    else:
        lines = [f"{run.chapter}: {_plural(len(now), 'submission')} graded in {run.seconds:.1f} s with "
                 f"{_plural(run.workers, 'worker')}"
                 + (f" ({run.seconds / len(now):.2f} s per notebook)" if now else "")]
        if len(run.rows) > len(now):
            lines.append(f"the class: {_plural(len(run.rows), 'student')}, {len(run.rows) - len(now)} of them "
                         "graded in earlier runs and kept as they were (marked *)")
        if run.budgets:
            cells = sorted(run.budgets["cells"].values())
            lines.append(f"time per cell: {BUDGET_FACTOR}x the reference solution's own time, at least "
                         f"{BUDGET_FLOOR_S:g} s ({cells[0]:g}-{cells[-1]:g} s here; "
                         f"{run.out / run.chapter / 'reference_times.json'})")
    lines += ["", f"{'student':<{width}}  {'score':>11}  status"]
    for row in run.rows:
        score = f"{row['score']:g}/{row['max_score']:g}"
        note = f" ({row['note']})" if row["note"] else ""
        pending = row.get("pending") or {}
        if pending:
            note += (f"; {sum(pending.values()):g} points to grade by hand ({', '.join(pending)}): "
                     f"{row['score']:g}/{row['max_score'] - sum(pending.values()):g} of the auto-graded points")
        mark = "*" if run.kind == "grade" and row["student"] not in now and len(run.rows) > len(now) else ""
        lines.append(f"{row['student'] + mark:<{width + 1}} {score:>11}  {row['status']}{note}")
    if run.rows:
        scores = [r["score"] for r in run.rows if r["status"] == "graded"]  # an ungradable file has no grade
        errors = len(run.rows) - len(scores)
        stats = (f"mean {statistics.fmean(scores):.2f}, median {statistics.median(scores):g}, min {min(scores):g}, "
                 f"max {max(scores):g} (out of {run.rows[0]['max_score']:g}"
                 + (", over the graded ones" if errors else "") + "); " if scores else "")
        lines += ["", f"{stats}{len(scores)} graded, {errors} could not be graded"]
        waiting = [r for r in run.rows if r.get("pending")]
        if waiting:
            lines.append(
                f"{_plural(len(waiting), 'submission')} with written answers to grade by hand: their scores "
                "above do not hold those points yet. Grade them in formgrader (`make instructor`, Manual "
                f"Grading; model answers and rubrics in {run.out / 'rubrics' / (run.chapter + '.md')}), then "
                f"run `python -m course_lib feedback {run.chapter}{_out_option(run.out)}` for the pages and "
                "these reports.")
    for skipped in run.skipped:
        lines.append(f"left out: {skipped}")
    lines += [
        "",
        f"grades:    {run.csv_path}",
        f"feedback:  {run.feedback_dir}/<student>/{run.chapter}/{run.chapter}.html",
        f"histogram: {run.histogram_path}",
        f"gradebook: {run.gradebook}",
    ]
    failed = run.failed_now
    if failed:
        graded = len(now) - len(failed)
        which = "; ".join(f"{row['source'] or row['student']} ({row['student']}): "
                          f"{row['status'].removeprefix('error: ')}" for row in failed)
        lines += ["", (
            f"{_plural(len(failed), 'file')} could not be graded: {which}. "
            f"{'It has' if len(failed) == 1 else 'Each has'} a row with score 0, a feedback page saying why and "
            "a flagged entry in the gradebook; formgrader's Manage Submissions shows it as \"needs autograding\" "
            "and Manual Grading does not list it: nbgrader has no notebook of it to grade or show. "
            f"The other {_plural(graded, 'submission')} {'was' if graded == 1 else 'were'} graded and written. "
            f"Fix the file and grade it again alone (exit status {_SOME_NOT_GRADED})."
        )]
    return "\n".join(lines)


_SOME_NOT_GRADED = 3  # cli.SOME_NOT_GRADED: the command's exit status after such a run


def _out_option(out: Path) -> str:
    """`` --out DIR`` unless ``out`` is out/grading of the working folder (the default of a new shell: a
    COURSE_DIR that `make` passed to this process is not in the lecturer's shell), else nothing."""
    return "" if Path(out).resolve() == Path("out/grading").resolve() else f" --out {out}"


# --------------------------------------------------------------------------------------------
# benchmark: serial vs parallel on the same submissions
# --------------------------------------------------------------------------------------------
def _bench_chapter(root: Path) -> str:
    """A small stand-in chapter (setup cell with torch, two exercises with hidden tests) for the bench."""
    name = "90_bench"
    nb = nbs.new_notebook(
        [
            nbs.md("# Bench chapter\nWrite `gate` and `double`."),
            nbs.solution(
                "import torch\n\ndef gate(x):\n    ### BEGIN SOLUTION\n    return torch.sigmoid(x.mean((2, 3), keepdim=True))\n"
                "    ### END SOLUTION", "gate"),
            nbs.test(
                "x = torch.randn(2, 8, 5, 3)\nassert gate(x).shape == (2, 8, 1, 1), 'gate keeps (B, C, 1, 1)'\n"
                "### BEGIN HIDDEN TESTS\nassert torch.allclose(gate(x), torch.sigmoid(x.mean((2, 3), keepdim=True)))\n"
                "### END HIDDEN TESTS", "test_gate", 2),
            nbs.solution("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", "double"),
            nbs.test("assert double(3) == 6, 'double(3) should be 6'\n### BEGIN HIDDEN TESTS\n"
                     "assert double(-1) == -2\n### END HIDDEN TESTS", "test_double", 1),
        ],
        budget_s=60,
    )
    nbs.write_atomic(nbs.notebook_path(name, root), nbs.dumps(nb))
    return name


def _plain_nbgrader(chapter: str, submissions: Path, root: Path, source_root: Path) -> tuple[float, dict]:
    """The anchor: plain ``nbgrader autograde CHAPTER`` (serial, no sandbox) over the same notebooks in one
    course, run as an instructor would (the command, from this repository so that its nbgrader_config.py
    applies, with ``COURSE_SANDBOX=off``). Returns its seconds and student -> {grade_id: (score, max)}."""
    from nbgrader.api import Gradebook

    with contextlib.redirect_stdout(sys.stderr), _fast_alembic():
        nbs.new_course(root, [chapter], source_root=source_root)
    students = []
    for path in sorted(submissions.glob("*.ipynb")):
        student = path.stem.removesuffix(f"_{chapter}")
        target = root / "submitted" / student / chapter / f"{chapter}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copy(path, target)
        students.append(student)
    bindir = Path(sys.executable).parent
    env = {**os.environ, **DEFAULT_KERNEL_ENV, "COURSE_SANDBOX": "off",
           "PATH": str(bindir) + os.pathsep + os.environ.get("PATH", "")}
    started = time.perf_counter()
    done = subprocess.run([str(bindir / "nbgrader"), "autograde", chapter, f"--CourseDirectory.root={root}",
                           f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}", "--force"],
                          cwd=nbs.REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{done.stderr[-3000:]}")
    with quiet_sqlalchemy(), Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id()) as gb:
        grades = {}
        for student in students:
            notebook = gb.find_submission_notebook(chapter, chapter, student)
            grades[student] = {g.name: (float(g.score), float(g.max_score)) for g in notebook.grades}
    return seconds, grades


def _course_command(chapter: str, submissions: Path, out: Path, workers: int, source_root: Path) -> tuple[float, GradeRun]:
    """The course grader as an instructor runs it: the whole ``python -m course_lib grade`` command in a
    process of its own (its imports, the cluster, the templates, the grading, the reports, the exit), timed
    from outside like plain nbgrader's command. Returns its seconds and the run it wrote (run.json)."""
    bindir = Path(sys.executable).parent
    command = [str(bindir / "python"), "-m", "course_lib", "grade", chapter, str(submissions), "--out", str(out),
               "--workers", str(workers), "--no-progress"]
    if Path(source_root).resolve() != nbs.REPO:
        command += ["--source-root", str(source_root)]
    env = {**os.environ, "PATH": str(bindir) + os.pathsep + os.environ.get("PATH", "")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=nbs.REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds, GradeRun.from_dict(json.loads((out / chapter / "run.json").read_text(encoding="utf-8")))


WORKER_PHASES = ("fork", "cells", "autograde", "feedback", "setup", "cleanup")
CLIENT_PHASES = ("build", "cluster", "grading", "reports", "close")


def bench(chapter: str | None = None, n: int = 12, workers: int | None = None, *, repeats: int = 1,
          print_=print) -> dict:
    """Plain ``nbgrader autograde`` (serial) against the course grader's command with 1 and ``workers``
    Dask workers, on the same ``n`` submissions (two in three solved, the rest untouched); print and return
    the figures.

    Every mode is a whole command in a process of its own, timed from outside (start-up, imports and
    exit included). Each repeat runs the three modes one after the other, in an order that turns with
    each repeat, and gives its own ratios (on a shared machine the others' load comes and goes, so ratios
    are only compared within one repeat);
    the summary gives the median and the spread over the repeats. Every run's grades must equal plain
    nbgrader's, cell by cell.
    """
    workers = workers or max(2, _cores())
    many = f"course-{workers}"
    modes = [("plain", 1), ("course-1", 1), (many, workers)]
    names = {"plain": "plain nbgrader autograde (serial, no sandbox)",
             "course-1": "course grader, Dask, 1 worker, sandboxed",
             many: f"course grader, Dask, {workers} workers, sandboxed"}
    repeats_out: list[dict] = []
    same = True
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        tmp = Path(tmp)
        if chapter is None:
            source_root = tmp / "src"
            chapter = _bench_chapter(source_root)
        else:
            source_root = nbs.REPO
        with tempfile.TemporaryDirectory(prefix="course-bench-release-") as rel:
            with contextlib.redirect_stdout(sys.stderr), _fast_alembic():
                nbs.new_course(Path(rel), [chapter], source_root=source_root)
            solved = nbs.notebook_path(chapter, source_root)
            stub = nbs.notebook_path(chapter, Path(rel), nbs.RELEASE)
            subs = tmp / "submissions"
            subs.mkdir()
            for i in range(n):
                shutil.copy(solved if i % 3 else stub, subs / f"student{i:02d}_{chapter}.ipynb")
        solved_count = sum(1 for i in range(n) if i % 3)
        print_(f"{chapter}: {n} notebooks ({solved_count} solved, {n - solved_count} untouched) on {_cores()} cores "
               f"(os.cpu_count() {os.cpu_count()}); {repeats} repeat{'s' if repeats > 1 else ''}")
        for r in range(repeats):
            load_before = os.getloadavg()[0]
            whole: dict[str, float] = {}
            grading: dict[str, float] = {}
            runs: dict[str, GradeRun] = {}
            # the order turns with each repeat: a load that rises or falls during a repeat must not
            # always favour the same mode
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            results = {}
            for label, count in order:
                if label == "plain":
                    whole["plain"], reference = _plain_nbgrader(chapter, subs, tmp / f"plain-{r}", source_root)
                    grading["plain"] = whole["plain"]
                else:
                    whole[label], results[label] = _course_command(chapter, subs, tmp / f"{label}-{r}", count,
                                                                   source_root)
            for label, run in results.items():
                grading[label] = run.grading_seconds
                runs[label] = run
                got = {row["student"]: row["cells"] for row in run.rows}
                same = same and got == reference and all(row["status"] == "graded" for row in run.rows)
            load_after = os.getloadavg()[0]
            repeats_out.append({"whole": whole, "grading": grading, "load": (load_before, load_after),
                                "profile": {k: v.profile for k, v in runs.items()},
                                "phases": {k: _mean_phases(v) for k, v in runs.items()}})
            print_(f"repeat {r + 1}: load average {load_before:.1f} before, {load_after:.1f} after; "
                   f"order: {', '.join(label for label, _ in order)}")
            print_(f"  {'mode':<46} {'s/notebook':>10} {'vs plain':>9}   {'grading only':>12} {'vs plain':>9}")
            for label, _ in modes:
                print_(f"  {names[label]:<46} {whole[label] / n:>10.2f} {whole['plain'] / whole[label]:>8.2f}x   "
                       f"{grading[label] / n:>12.2f} {whole['plain'] / grading[label]:>8.2f}x")
            for label, _ in modes[1:]:
                prof = runs[label].profile
                phases = repeats_out[-1]["phases"][label]
                print_(f"  {label}: command {whole[label]:.1f} s = client "
                       + ", ".join(f"{k} {prof.get(k, 0.0):.1f}" for k in CLIENT_PHASES)
                       + f", start-up and exit {whole[label] - sum(prof.values()):.1f}; per notebook in a worker: "
                       + ", ".join(f"{k} {phases.get(k, 0.0):.2f}" for k in WORKER_PHASES))
        scores = sorted({sum(s for s, _ in cells.values()) for cells in reference.values()})

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}x (range {min(values):.2f}x-{max(values):.2f}x)"

    ratios = {label: [rep["whole"]["plain"] / rep["whole"][label] for rep in repeats_out] for label, _ in modes}
    grading_ratios = {label: [rep["whole"]["plain"] / rep["grading"][label] for rep in repeats_out] for label, _ in modes}
    per_worker = [n / rep["grading"][many] * 60 / workers for rep in repeats_out]
    one = [n / rep["grading"]["course-1"] * 60 for rep in repeats_out]
    print_(f"over {repeats} repeat{'s' if repeats > 1 else ''}: whole command vs plain nbgrader: 1 worker "
           f"{spread(ratios['course-1'])}, {workers} workers {spread(ratios[many])}; grading only: 1 worker "
           f"{spread(grading_ratios['course-1'])}, {workers} workers {spread(grading_ratios[many])}")
    print_(f"  throughput (grading only): 1 worker {statistics.median(one):.1f} notebooks/min; {workers} workers "
           f"{statistics.median(per_worker) * workers:.1f}/min ({statistics.median(per_worker):.1f} per worker, "
           f"range {min(per_worker):.1f}-{max(per_worker):.1f})")
    print_(f"  grades identical to plain nbgrader, cell by cell, for every notebook in every run: {same} "
           f"(scores seen: {scores})")
    return {"chapter": chapter, "notebooks": n, "workers": workers, "cores": _cores(), "repeats": repeats_out,
            "identical": same, "scores": scores, "ratios": ratios, "grading_ratios": grading_ratios,
            "per_worker_per_min": per_worker}


def _mean_phases(run: GradeRun) -> dict[str, float]:
    rows = [row.get("phases") or {} for row in run.rows]
    keys = sorted({k for row in rows for k in row})
    return {k: statistics.fmean(row.get(k, 0.0) for row in rows) for k in keys} if rows else {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m course_lib grade-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="store_true",
                        help="time plain nbgrader against the course grader (1 and N workers) on the same notebooks")
    parser.add_argument("chapter", nargs="?", help="chapter to bench (default: a small stand-in chapter)")
    parser.add_argument("-n", type=int, default=12, help="number of submissions (default 12)")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: cores, at least 2)")
    parser.add_argument("--repeats", type=int, default=1, help="run the three modes this many times; ratios per repeat, then median and range")
    args = parser.parse_args(argv)
    if not args.bench:
        parser.error("nothing to do: pass --bench (grading itself is `python -m course_lib grade`)")
    figures = bench(args.chapter, args.n, args.workers, repeats=args.repeats)
    return 0 if figures["identical"] else 1
