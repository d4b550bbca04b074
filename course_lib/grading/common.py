"""What both sides of the grader use: the client (``cli``, ``batch``, ``collect``, ``engine``) and the worker
(``worker`` and what it calls: ``fork_execute``, ``warm``, ``sandbox*``, ``check_index``, ``feedback``).

- the data a task and its result carry: folders packed as bytes, the size limits, the error row;
- nbgrader helpers: the course id, an ``NbGraderAPI`` with the batch's overrides, a gradebook session
  without SQLAlchemy's autoflush warnings;
- what a chapter's notebook holds: its graded cells' ids, the lines of its hidden tests;
- :func:`lean_imports`, called first in every grading process.

This module imports nothing of ``course_lib.grading`` and, at import time, nothing but the standard library:
the warm template (``python -m course_lib.grading.warm``) imports it and must stay light.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sys
import tarfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "UNUSED_IMPORTS", "lean_imports", "MAX_RESULT_BYTES", "MAX_NOTEBOOK_BYTES", "SHARED_GRADE_IDS",
    "pack_folder", "unpack_folder", "read_tree", "write_tree", "digest", "share", "error_result",
    "course_id", "quiet_sqlalchemy", "api", "grade_ids", "BEGIN_HIDDEN", "END_HIDDEN", "BEGIN_SOLUTION", "END_SOLUTION",
    "hidden_lines",
]

#: what one student's result may carry back (notebooks, files their code wrote); past it, notebooks only
MAX_RESULT_BYTES = 64 * 2**20
#: the largest notebook that is graded
MAX_NOTEBOOK_BYTES = 64 * 2**20
#: cells every chapter has (the setup cell): they say nothing about which chapter
SHARED_GRADE_IDS = {"setup"}


# --------------------------------------------------------------------------------------------
# every grading process, first thing
# --------------------------------------------------------------------------------------------
#: Optional libraries that jsonschema imports if present and grading never uses: ``rfc3987_syntax``
#: (the "iri" formats of jsonschema's FormatChecker, pulled in by jupyter_events) builds a Lark grammar
#: when imported, 1.5-2 s of CPU in every process that imports nbformat. nbformat's notebook schema has
#: no IRI field, so validating a notebook never uses it.
UNUSED_IMPORTS = ("rfc3987_syntax",)


#: SQLAlchemy's autoflush warning that nbgrader's gradebook trips on every new submission (three per student,
#: harmless: nbgrader adds the object to the session right after); printed by every grading process, 120
#: lines for a class of 40, they buried the summary
SAWARNING_NOT_IN_SESSION = r"Object of type <\w+> not in session, add operation along"


def quiet_nbgrader_warnings() -> None:
    """Ignore :data:`SAWARNING_NOT_IN_SESSION` in this process, whatever raises it (nbgrader's autograde in a
    worker, the client's gradebook); other warnings are shown as before."""
    warnings.filterwarnings("ignore", message=SAWARNING_NOT_IN_SESSION)


def lean_imports() -> None:
    """In a grading process (the command, a Dask worker), first thing: :func:`quiet_nbgrader_warnings`; and,
    before nbformat is first imported, make the imports in :data:`UNUSED_IMPORTS` fail fast (jsonschema then
    leaves those formats unchecked). A process that imported jsonschema already keeps what it has."""
    quiet_nbgrader_warnings()
    if "jsonschema" in sys.modules:
        return
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)


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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def share(static: dict) -> dict:
    """The chapter's data as a Dask task, so that Dask can compute it again when its worker is lost."""
    return static


def error_result(task: dict, why: str) -> dict:
    """A task's result that says it could not be graded (the worker's answer, or the client's for a lost task)."""
    return {"student": task["student"], "status": f"error: {why}", "note": task.get("note"), "grades": [],
            "comments": [], "source": task.get("source"), "seconds": None, "files": None,
            "notebook": task.get("notebook"), "feedback": None, "log": ""}


# --------------------------------------------------------------------------------------------
# nbgrader
# --------------------------------------------------------------------------------------------
def course_id() -> str:
    from course_lib.tools import notebooks as nbs

    return str(nbs.nbgrader_config(Path(".")).CourseDirectory.course_id)


@contextlib.contextmanager
def quiet_sqlalchemy():
    # nbgrader's update_or_create_submission trips SQLAlchemy's autoflush warnings (harmless, noisy)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SAWARNING_NOT_IN_SESSION)
        yield


def api(root: Path, *, db_url: str | None = None, cell_timeout: int | None = None, kernel_name: str | None = None):
    """``notebooks.api`` with the batch's overrides (gradebook URL, cell timeout, kernel). A grading worker
    adds its own on top (``worker.py``: the notebooks run in children of the warm template)."""
    from course_lib.tools import notebooks as nbs

    grader = nbs.api(root)
    if db_url:
        grader.coursedir.db_url = db_url
    if cell_timeout:
        grader.config.Execute.timeout = cell_timeout
    if kernel_name:
        grader.config.Execute.kernel_name = kernel_name
    return grader


# --------------------------------------------------------------------------------------------
# what a chapter's notebook holds
# --------------------------------------------------------------------------------------------
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


def grade_ids(nb: nbformat.NotebookNode) -> set[str]:
    """The grade ids of the notebook's graded cells (nbgrader metadata)."""
    return {
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if "nbgrader" in c.get("metadata", {}) and c.metadata["nbgrader"].get("grade_id")
    }


def hidden_lines(source_nb: nbformat.NotebookNode, released_nb: nbformat.NotebookNode | None = None) -> list[str]:
    """The lines of the hidden tests worth guarding (stripped, not comments, not also in the release)."""
    public: set[str] = set()
    if released_nb is not None:
        for cell in released_nb.cells:
            public.update(line.strip() for line in cell.source.split("\n"))
    secrets = []
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.split("\n"):
            if BEGIN_HIDDEN in line:
                inside = True
            elif END_HIDDEN in line:
                inside = False
            elif inside:
                text = line.strip()
                if len(text) >= 8 and not text.startswith("#") and text not in public and text not in secrets:
                    secrets.append(text)
    return secrets
