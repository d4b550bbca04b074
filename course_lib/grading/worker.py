"""The worker's side of the grader: what a Dask worker runs. The client (``batch.py``, ``engine.py``) hands
Dask the two functions of this module and imports nothing else of the worker's side:

- :func:`warm`, once on every worker before grading: starts the worker's warm template;
- :func:`grade_task`, once per submission.

What a worker does with a task (:func:`grade_task`), one at a time per worker process: a fresh folder
with the chapter's template course and the submission, nbgrader's own ``autograde`` with the kernel
execution replaced by :class:`~course_lib.grading.fork_execute.ForkExecute` (the notebook runs in a child forked
from this worker's warm template, inside the sandbox), the feedback page, then everything the client
needs as plain data (grades, comments, the notebooks as bytes). It never opens the main gradebook.

This module and what it imports (``fork_execute``, ``warm``, ``sandbox*``, ``check_index``, ``feedback``,
``common``) never import the client's modules.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path

from course_lib.grading.common import (MAX_NOTEBOOK_BYTES, MAX_RESULT_BYTES, SHARED_GRADE_IDS, api, course_id,
                                       error_result, grade_ids, lean_imports, quiet_sqlalchemy, read_tree,
                                       unpack_folder)

__all__ = ["grade_task", "warm", "precheck", "reference_times", "feedback_pages"]

_PROCESS_LOCK = threading.Lock()  # one submission at a time per worker process, whatever its threads
_TEMPLATES: dict[str, Path] = {}


@contextlib.contextmanager
def _environment(env: dict[str, str | None]):
    saved = dict(os.environ)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _scratch() -> Path:
    """This worker's folder for the unpacked chapter, the students' folders and the template's log: inside
    the Dask worker's own local directory (removed with the worker), else the temporary folder."""
    try:
        from distributed import get_worker

        base = Path(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        base = Path(tempfile.gettempdir())
    folder = base / f"course-grading-{os.getpid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def warm(env: dict[str, str | None]) -> str:
    """Start this worker's warm template for ``env`` (the batch does it on every worker before grading)."""
    from course_lib.grading.warm import template_for

    lean_imports()
    with _PROCESS_LOCK, _environment(env):
        template = template_for(_scratch() / "template.log", wait=False)
        # while the template imports torch and the checks: this process's own imports (nbgrader's
        # autograde, the feedback exporter) and a first feedback page (compiles its templates)
        import nbconvert.exporters  # noqa: F401
        import nbgrader.apps  # noqa: F401
        import nbgrader.converters  # noqa: F401
        import nbgrader.preprocessors  # noqa: F401
        import sqlalchemy  # noqa: F401

        from course_lib.grading import feedback
        from course_lib.tools import notebooks  # noqa: F401

        with contextlib.suppress(Exception):
            feedback.warm_exporter()
        template.ready()
    return f"{os.uname().nodename}:{os.getpid()}"


def grade_task(task: dict, static: dict) -> dict:
    """Grade one submission (a Dask task). Never raises: a failure is a result with an error status."""
    lean_imports()
    with _PROCESS_LOCK, _environment(static["env"]):
        try:
            return _grade_one(task, static)
        except BaseException as err:  # noqa: BLE001 - every task must answer
            result = error_result(task, f"the grader failed: {type(err).__name__}: {err}")
            result["log"] = traceback.format_exc()
            return result


def reference_times(source: bytes, static: dict) -> dict:
    """Run the chapter's reference solution (the source notebook, ``source``) as a submission runs: in a
    child of this worker's warm template, sandboxed, from a student's folder; return
    ``{"times": {cell_key: seconds}}`` (every code cell), or ``{"error": why}``. The batch derives each
    cell's time budget from it."""
    import nbformat

    from course_lib.grading.fork_execute import ForkExecute
    from course_lib.grading.warm import template_for

    lean_imports()
    # as nbgrader's autograde runs a submission: NBGRADER_EXECUTION=autograde (the capstone's quick mode)
    with _PROCESS_LOCK, _environment({**static["env"], "NBGRADER_EXECUTION": "autograde"}):
        workdir = Path(tempfile.mkdtemp(prefix="reference-", dir=_scratch()))
        try:
            template = _template_dir(static)
            template_for(_scratch() / "template.log")
            _fast_scratch_sqlite()
            shutil.copytree(template, workdir, dirs_exist_ok=True)
            folder = workdir / "submitted" / "reference" / static["chapter"]
            folder.mkdir(parents=True, exist_ok=True)
            nb = nbformat.reads(source.decode("utf-8"), as_version=4)
            grader = _autograder(workdir, static)
            executor = ForkExecute(config=grader.config)
            ForkExecute.template_log = _scratch() / "template.log"
            ForkExecute.deadline = time.monotonic() + static["limit"]
            ForkExecute.cell_times, ForkExecute.budgets = {}, None
            try:
                executor.preprocess(nb, {"metadata": {"path": str(folder)},
                                         "nbgrader": {"db_url": f"sqlite:///{workdir / 'gradebook.db'}"}})
                times = dict(ForkExecute.cell_times)
            finally:
                ForkExecute.deadline, ForkExecute.cell_times = None, None
            errors = [o.get("ename") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []) if o.get("output_type") == "error"]
            if errors or ForkExecute.timed_out:
                ForkExecute.timed_out = False
                return {"error": f"the reference solution did not run cleanly ({', '.join(map(str, errors))})"}
            return {"times": times}
        except BaseException as err:  # noqa: BLE001 - the batch falls back to the fixed cell timeout
            return {"error": f"{type(err).__name__}: {err}"}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def feedback_pages(out: Path, chapter: str, *, db_url: str | None = None,
                   students: list[str] | None = None) -> dict[str, str]:
    """The feedback pages of a graded chapter rendered again from its gradebook, in the calling process
    (:func:`course_lib.grading.feedback.regenerate`): ``python -m course_lib feedback`` after hand grading.
    Here because the client reaches the worker's side through this module only."""
    from course_lib.grading.feedback import regenerate

    return regenerate(out, chapter, db_url=db_url, students=students)


def _template_dir(static: dict) -> Path:
    digest = static["digest"]
    found = _TEMPLATES.get(digest)
    if found is None or not found.is_dir():
        found = _scratch() / f"template-{digest[:16]}"
        if found.exists():
            shutil.rmtree(found)
        unpack_folder(static["template"], found)
        _TEMPLATES[digest] = found
    return found


def _autograder(root: Path, static: dict):
    """:func:`common.api` for a student's scratch course, as a grading worker runs it: the sandbox runs the
    notebook in a child of the warm template (``fork_execute.ForkExecute``) instead of a kernel, and the
    feedback exporter keeps its compiled templates between students."""
    from course_lib.grading import sandbox
    from course_lib.grading.feedback import CachedHTMLExporter
    from course_lib.grading.fork_execute import ForkExecute

    grader = api(root, cell_timeout=static["cell_timeout"], kernel_name=static["kernel_name"])
    if sandbox.is_hardened(grader.config):
        chain = list(grader.config.Autograde.autograde_preprocessors)
        grader.config.Autograde.autograde_preprocessors = [
            ForkExecute if step is sandbox.SandboxExecute else step for step in chain]
    grader.config.GenerateFeedback.exporter_class = CachedHTMLExporter
    return grader


def _grade_one(task: dict, static: dict) -> dict:
    import nbformat
    from nbgrader.api import Gradebook

    from course_lib.grading.feedback import cell_messages, html_text, leaked_lines, prepare
    from course_lib.grading.fork_execute import ForkExecute
    from course_lib.grading.warm import template_for

    started = time.perf_counter()
    chapter, student, info = static["chapter"], task["student"], static["info"]
    result = error_result(task, "")
    result.update(worker=f"{os.uname().nodename}:{os.getpid()}", started_at=time.time())
    phases = result["phases"] = {}  # seconds of each step, for the benchmark's profile
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock[0]
        clock[0] = now

    def fail(why: str) -> dict:
        result["status"] = f"error: {why}"
        result["seconds"] = time.perf_counter() - started
        return result

    if task["problem"]:
        return fail(task["problem"])
    template = _template_dir(static)
    if static.get("sandbox"):
        template_for(_scratch() / "template.log")  # started before the clock of this student runs
    _fast_scratch_sqlite()
    lap("template")
    workdir = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=_scratch()))
    try:
        shutil.copytree(template, workdir, dirs_exist_ok=True)
        submitted = workdir / "submitted" / student / chapter
        submitted.mkdir(parents=True, exist_ok=True)
        if task.get("extras"):
            unpack_folder(task["extras"], submitted)
        notebook = submitted / f"{chapter}.ipynb"
        notebook.write_bytes(task["notebook_bytes"])
        problem = precheck(notebook, info, chapter)
        if problem:
            result["files"] = {"submitted": read_tree(submitted, [MAX_RESULT_BYTES])}
            return fail(problem)

        grader = _autograder(workdir, static)
        ForkExecute.template_log = _scratch() / "template.log"
        ForkExecute.deadline = time.monotonic() + static["limit"]
        ForkExecute.timing = {}
        budgets = static.get("budgets")
        ForkExecute.budgets = dict(budgets["cells"]) if budgets else None
        ForkExecute.budget_default = budgets["default"] if budgets else None
        lap("setup")
        try:
            outcome = grader.autograde(chapter, student, force=True, create=True)
        finally:
            ForkExecute.deadline = None
        lap("autograde")
        for name, seconds in ForkExecute.timing.items():  # inside autograde: the child's start, its cells
            phases[name] = seconds
        phases["autograde"] -= sum(ForkExecute.timing.values())
        log_text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
        result["log"] = log_text
        budget = [MAX_RESULT_BYTES]
        result["files"] = {"submitted": read_tree(submitted, budget)}
        if ForkExecute.timed_out:
            ForkExecute.timed_out = False
            return fail(f"grading ran past {static['limit']:.0f} s and was stopped")
        if not outcome.get("success"):
            return fail(_autograde_failure(log_text))

        url = f"sqlite:///{workdir / 'gradebook.db'}"
        lap("collect")
        with quiet_sqlalchemy(), Gradebook(url, course_id()) as gb:
            submission = gb.find_submission(chapter, student)
            nb_row = gb.find_submission_notebook(chapter, chapter, student)
            result["timestamp"] = submission.timestamp.isoformat() if submission.timestamp else None
            result["grades"] = [{"name": g.name, "auto_score": g.auto_score} for g in nb_row.grades]
            pending = {g.name: float(g.max_score) for g in nb_row.grades
                       if g.auto_score is None and g.manual_score is None}
            result["comments"] = [{"name": c.name, "auto_comment": c.auto_comment} for c in nb_row.comments]

        # feedback: rendered from a copy of the autograded notebook with the hidden tests removed
        graded_dir = workdir / "autograded" / student / chapter
        graded_nb = graded_dir / f"{chapter}.ipynb"
        result["files"]["autograded"] = read_tree(graded_dir, budget)
        result["messages"] = cell_messages(nbformat.read(graded_nb, as_version=4))
        prepare(graded_nb, pending=pending)
        leaks = leaked_lines(nbformat.read(graded_nb, as_version=4), info["secrets"])
        if not leaks:
            rendered = grader.generate_feedback(chapter, student, force=True)
            page = workdir / "feedback" / student / chapter / f"{chapter}.html"
            if rendered.get("success") and page.is_file():
                text = page.read_text(encoding="utf-8")
                if not leaked_lines(html_text(text), info["secrets"]):
                    result["feedback"] = text
        lap("feedback")
        result["status"] = "graded"
        result["seconds"] = time.perf_counter() - started
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        lap("cleanup")


_SQLITE_TUNED = []


def _fast_scratch_sqlite() -> None:
    """The gradebook of a student's scratch course is thrown away after the task: let SQLite skip the
    fsync of its ~20 commits (``synchronous=OFF``, journal in memory). Only databases inside this worker's
    scratch folder are tuned; the main gradebook is never opened on a worker (the client writes it)."""
    if _SQLITE_TUNED:
        return
    _SQLITE_TUNED.append(True)
    from sqlalchemy import event
    from sqlalchemy.engine import Engine as _SAEngine

    scratch = str(_scratch())

    @event.listens_for(_SAEngine, "connect")
    def _tune(dbapi_connection, _record):  # noqa: ANN001 - SQLAlchemy's signature
        import sqlite3

        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            files = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
            if files and files[0] and os.path.realpath(files[0]).startswith(os.path.realpath(scratch) + os.sep):
                cursor.execute("PRAGMA synchronous=OFF")
                cursor.execute("PRAGMA journal_mode=MEMORY")
        finally:
            cursor.close()


# --------------------------------------------------------------------------------------------
# checks made before grading, and what an autograde that failed says
# --------------------------------------------------------------------------------------------
def precheck(path: Path, info: dict, chapter: str) -> str | None:
    """Why the notebook at ``path`` cannot be graded as ``chapter`` (None when it can)."""
    import nbformat

    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return f"the notebook is {size / 2**20:.0f} MiB, above the {MAX_NOTEBOOK_BYTES / 2**20:.0f} MiB limit"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "malformed notebook (not UTF-8 text)"
    if not text.strip():
        return "empty notebook (the file is empty)"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"malformed notebook (not notebook JSON: {first[:200]})"
    try:
        cells = nb.get("cells") or []
        if not any(str(c.get("source", "")).strip() for c in cells):
            return "empty notebook (no cells with content)"
        ids = grade_ids(nb)
    except (AttributeError, KeyError, TypeError):
        return "malformed notebook (cells or their metadata are not what a notebook holds)"
    ours = set(info["ids"]) - SHARED_GRADE_IDS
    if ids & ours:
        return None
    for other, other_ids in info["other_ids"].items():
        if ids & (set(other_ids) - SHARED_GRADE_IDS):
            return f"a notebook of {other}, not {chapter}"
    if ids - set(info["ids"]):
        return f"a notebook of another assignment: none of its graded cells belongs to {chapter}"
    return f"none of the cells of {chapter} are in it (its cells lost their nbgrader metadata: was it rebuilt in a new notebook?)"


def _autograde_failure(log: str) -> str:
    lowered = log.lower()
    if "deadkernel" in lowered or "kernel died" in lowered or "kernel has died" in lowered:
        return "the kernel died while running the notebook (a crash, os._exit, or the memory limit)"
    if "timeout waiting for kernel" in lowered or "kernel didn't respond" in lowered:
        return "the kernel did not start"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    last = (errors or lines or ["no log"])[-1]
    return f"nbgrader could not autograde it ({last[:300]})"
