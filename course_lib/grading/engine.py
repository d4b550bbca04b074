"""The grading engine: Dask distributed runs one task per submission; the client alone writes the gradebook.

Where the workers come from (``grade_submissions`` / ``python -m course_lib grade``):

- nothing given: a ``LocalCluster`` of ``--workers`` processes on this machine (one thread each), made
  for the batch and closed after it;
- ``--scheduler tcp://host:8786``: the workers of a running Dask cluster (``dask scheduler`` and
  ``dask worker`` on any machines that have this repository installed);
- ``cluster=`` from Python: any Dask cluster object (``LocalCluster``, ``SSHCluster``, a Kubernetes or
  batch-queue cluster); it stays open.

What Dask does: places tasks on workers, moves the chapter (packed once and broadcast) and each
submission (its bytes) to a worker and the result back, so workers need no shared file system; replaces a
worker that died and runs its task again elsewhere (``distributed.scheduler.allowed-failures``, then the
row says the grading process died); reports progress as tasks complete.

What a worker does with a task (:func:`grade_task`), one at a time per worker process: a fresh folder
with the chapter's template course and the submission, nbgrader's own ``autograde`` with the kernel
execution replaced by :class:`~course_lib.grading.fork_execute.ForkExecute` (the notebook runs in a child forked
from this worker's warm template, inside the sandbox), the feedback page, then everything the client
needs as plain data (grades, comments, the notebooks as bytes). It never opens the main gradebook.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import traceback
from pathlib import Path

__all__ = ["Engine", "EngineError", "grade_task", "warm", "pack_folder"]

#: what one student's result may carry back (notebooks, files their code wrote); past it, notebooks only
MAX_RESULT_BYTES = 64 * 2**20

_PROCESS_LOCK = threading.Lock()  # one submission at a time per worker process, whatever its threads
_TEMPLATES: dict[str, Path] = {}


# --------------------------------------------------------------------------------------------
# packing folders as bytes (tasks and results are plain data)
# --------------------------------------------------------------------------------------------
def pack_folder(folder: Path, skip=lambda rel: False) -> bytes:
    """A gzipped tar of ``folder`` (regular files only; ``skip(relative path)`` leaves files out)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(Path(folder).rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file() or skip(rel):
                continue
            tar.add(path, arcname=rel, recursive=False)
    return buffer.getvalue()


def unpack_folder(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(target, filter="data")


def read_tree(folder: Path, budget: list[int]) -> dict[str, bytes]:
    """relative path -> bytes of the regular files under ``folder`` (symlinks left out), within ``budget``
    (a one-item list of bytes left; notebooks first, then the other files while they fit)."""
    if not folder.is_dir():
        return {}
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (p.suffix != ".ipynb", str(p)))
    found = {}
    for path in files:
        size = path.stat().st_size
        if size > budget[0] and path.suffix != ".ipynb":
            continue
        found[path.relative_to(folder).as_posix()] = path.read_bytes()
        budget[0] -= size
    return found


def write_tree(files: dict[str, bytes], target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for rel, data in files.items():
        path = (target / rel).resolve()
        if target.resolve() not in path.parents:
            continue  # never outside the student's folder
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# --------------------------------------------------------------------------------------------
# the worker's side
# --------------------------------------------------------------------------------------------
#: Optional libraries that jsonschema imports if present and grading never uses: ``rfc3987_syntax``
#: (the "iri" formats of jsonschema's FormatChecker, pulled in by jupyter_events) builds a Lark grammar
#: when imported, 1.5-2 s of CPU in every process that imports nbformat. nbformat's notebook schema has
#: no IRI field, so validating a notebook never uses it.
UNUSED_IMPORTS = ("rfc3987_syntax",)


def lean_imports() -> None:
    """In a grading process (the command, a Dask worker), before nbformat is first imported: make the
    imports in :data:`UNUSED_IMPORTS` fail fast (jsonschema then leaves those formats unchecked).
    A process that imported jsonschema already keeps what it has."""
    import sys

    if "jsonschema" in sys.modules:
        return
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)


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

        from course_lib.grading import batch, feedback  # noqa: F401

        with contextlib.suppress(Exception):
            feedback.warm_exporter()
        template.ready()
    return f"{os.uname().nodename}:{os.getpid()}"


def share(static: dict) -> dict:
    """The chapter's data as a Dask task, so that Dask can compute it again when its worker is lost."""
    return static


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


def error_result(task: dict, why: str) -> dict:
    return {"student": task["student"], "status": f"error: {why}", "note": task.get("note"), "grades": [],
            "comments": [], "source": task.get("source"), "seconds": None, "files": None,
            "notebook": task.get("notebook"), "feedback": None, "log": ""}


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


def _grade_one(task: dict, static: dict) -> dict:
    import nbformat
    from nbgrader.api import Gradebook

    from course_lib.grading import batch
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
        problem = batch.precheck(notebook, info, chapter)
        if problem:
            result["files"] = {"submitted": read_tree(submitted, [MAX_RESULT_BYTES])}
            return fail(problem)

        grader = batch._api(workdir, cell_timeout=static["cell_timeout"], kernel_name=static["kernel_name"],
                            fork=True)
        ForkExecute.template_log = _scratch() / "template.log"
        ForkExecute.deadline = time.monotonic() + static["limit"]
        ForkExecute.timing = {}
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
            return fail(batch._autograde_failure(log_text))

        url = f"sqlite:///{workdir / 'gradebook.db'}"
        lap("collect")
        with batch._quiet_sqlalchemy(), Gradebook(url, batch._course_id()) as gb:
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
# the client's side
# --------------------------------------------------------------------------------------------
class EngineError(RuntimeError):
    """The Dask cluster could not be started or reached."""


class Engine:
    """The Dask client of one batch: a LocalCluster of its own, or a given scheduler address or cluster.

    :meth:`start` connects in a background thread (and starts every worker's warm template), so that
    the cluster comes up while the chapter is built; :meth:`client` waits for it.
    """

    def __init__(self, *, workers: int, scheduler: str | None = None, cluster=None,
                 env: dict | None = None, sandbox: bool = True):
        if scheduler is not None and cluster is not None:
            raise ValueError("give a scheduler address or a cluster object, not both")
        if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler and ":" not in scheduler):
            raise ValueError(f"scheduler must be an address such as tcp://127.0.0.1:8786, got {scheduler!r}")
        self.workers, self.scheduler, self.cluster = workers, scheduler, cluster
        self.env, self.sandbox = dict(env or {}), sandbox
        self._own = None
        self._client = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "Engine":
        self._thread = threading.Thread(target=self._connect, name="course-grading-engine", daemon=True)
        self._thread.start()
        return self

    def _connect(self) -> None:
        try:
            from distributed import Client, LocalCluster

            if self.cluster is not None:
                self._client = Client(self.cluster, set_as_default=False)
            elif self.scheduler is not None:
                self._client = Client(self.scheduler, set_as_default=False, timeout="30s")
                self._client.wait_for_workers(1, timeout=120)
            else:
                self._own = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
                self._client = Client(self._own, set_as_default=False)
            if self.sandbox:  # every worker's template, started while the client builds the chapter
                workers = list(self._client.scheduler_info(n_workers=-1)["workers"])
                self._client.gather([self._client.submit(warm, self.env, workers=[w], allow_other_workers=False, pure=False,
                                          key=f"course-warm-{i}-{os.urandom(4).hex()}")
                      for i, w in enumerate(workers)])
        except BaseException as err:  # noqa: BLE001 - raised again in client()
            self._error = err

    def client(self):
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise EngineError(f"could not start or reach the grading cluster: {type(self._error).__name__}: "
                               f"{self._error}") from self._error
        return self._client

    def worker_count(self) -> int:
        return len(self.client().scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(Exception):
            if self._client is not None:
                self._client.close()
        with contextlib.suppress(Exception):
            if self._own is not None:
                self._own.close()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
