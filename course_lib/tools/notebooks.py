"""The chapter pipeline: normalise, release (nbgrader), execute and autograde notebooks.

    python -m course_lib release            # regenerate notebooks/ from solutions/
    python -m course_lib release --check    # exit 1 if notebooks/ is out of date
    python -m course_lib notebooks normalize solutions   # strip outputs, stable metadata
    python -m course_lib notebooks times                 # seconds per chapter: execute and autograde
    python -m course_lib notebooks study-times [--check] # derive each chapter's total time and the README's

Everything nbgrader does here happens in a temporary course directory, so the repository never
collects a gradebook or half-written files; results are copied back only when complete.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nbformat

from course_lib.tools import study_time

REPO = Path(__file__).resolve().parents[2]
SOURCE = "solutions"
RELEASE = "notebooks"
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_KEEP_CELL_METADATA = ("nbgrader", "tags", "editable", "deletable")


# --------------------------------------------------------------------------------------------
# chapters
# --------------------------------------------------------------------------------------------
def chapters(root: Path = REPO, folder: str = SOURCE) -> list[str]:
    """Assignment names: folders NN_name holding NN_name.ipynb."""
    base = Path(root) / folder
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / f"{p.name}.ipynb").is_file())


def notebook_path(chapter: str, root: Path = REPO, folder: str = SOURCE) -> Path:
    return Path(root) / folder / chapter / f"{chapter}.ipynb"


# --------------------------------------------------------------------------------------------
# authoring: the cells every chapter is made of
# --------------------------------------------------------------------------------------------
PUBLISH_FILE = "course.toml"


@dataclass(frozen=True)
class Publishing:
    """Where the course is published (course.toml, the one place to change when the course moves)."""

    repository: str  # https://github.com/OWNER/NAME
    branch: str
    version: str     # pyproject.toml's, which names the release and the wheel

    @property
    def wheel_name(self) -> str:
        """The student wheel's file name, as `make student-wheel` builds it."""
        return f"course_lib-{self.version}-py3-none-any.whl"

    @property
    def wheel_url(self) -> str:
        """Where Colab downloads the student package: an asset of the release tagged v<version>."""
        return f"{self.repository}/releases/download/v{self.version}/{self.wheel_name}"

    def colab_url(self, chapter: str) -> str:
        path = self.repository.removeprefix("https://github.com/")
        return f"https://colab.research.google.com/github/{path}/blob/{self.branch}/{RELEASE}/{chapter}/{chapter}.ipynb"


def publishing(root: Path = REPO) -> Publishing:
    """Read course.toml (and the version from pyproject.toml); a clear error when either is malformed."""
    import tomllib

    where = Path(root) / PUBLISH_FILE
    try:
        table = tomllib.loads(where.read_text(encoding="utf-8"))["publish"]
        repository, branch = table["repository"].rstrip("/"), table["branch"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"course_lib.tools.notebooks: {where} must have a [publish] table with `repository` and "
                         f"`branch`; reading it gave {type(err).__name__}: {err}") from err
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository):
        raise ValueError(f"course_lib.tools.notebooks: [publish] repository in {where} must be a GitHub repository's "
                         f"address, https://github.com/OWNER/NAME (Colab opens notebooks from GitHub); got {repository!r}")
    version = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    return Publishing(repository=repository, branch=branch, version=version)


def setup_cell(where: Publishing) -> str:
    """The first code cell of every chapter. On Colab it installs the student package: the visible checks,
    plotting and data helpers, no reference solutions and no hidden checks (what `make student-bundle` ships)."""
    return f"""\
# Setup: run this cell first. On Colab it installs the course's student package (checks and helpers, no
# solutions; about 20 s) and picks the GPU when the runtime has one; anywhere else it installs nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    STUDENT_PACKAGE = "{where.wheel_url}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", STUDENT_PACKAGE], check=True)

import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"torch {{torch.__version__}}, running on {{DEVICE}}")"""


def __getattr__(name: str):
    # SETUP_CELL is read from course.toml when first asked for, so that importing this module never needs
    # the file (an installed copy of course_lib has no course.toml beside it).
    if name == "SETUP_CELL":
        return setup_cell(publishing())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*?/(\d\d_\w+)/\1\.ipynb")


def sync_publishing(root: Path = REPO, *, write: bool = True) -> list[str]:
    """Put course.toml's address into every solution's setup cell and the README's Colab links.

    Returns what was (with ``write=False``: what would be) changed; `make release` calls it before it
    regenerates notebooks/, so the released setup cells follow.
    """
    root = Path(root)
    where = publishing(root)
    cell = setup_cell(where)
    changed = []
    for chapter in chapters(root):
        path = notebook_path(chapter, root)
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is None or first.source != cell:
            changed.append(f"{path.relative_to(root)}: setup cell")
            if write and first is not None:
                first.source = cell
                write_atomic(path, dumps(normalize(nb)))
    readme = root / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        fresh = COLAB_LINK.sub(lambda m: where.colab_url(m.group(1)), text)
        if fresh != text:
            changed.append("README.md: Colab links")
            if write:
                write_atomic(readme, fresh)
    return changed


def sync_study_times(selected: list[str] | None = None, root: Path = REPO, *, write: bool = True) -> list[str]:
    """Derive the stated total time of the ``selected`` chapters (default: all) from their parts, and the
    README's chapter-table times from every chapter's parts (``course_lib.tools.study_time``).

    Returns what was (with ``write=False``: what would be) changed. Each notebook is read right before it is
    written, and only its **Time.** paragraph changes.
    """
    root = Path(root)
    changed = []
    for chapter in selected or chapters(root):
        path = notebook_path(chapter, root)
        fresh = study_time.fixed_notebook(path.read_text(encoding="utf-8"), chapter)
        if fresh is not None:
            changed.append(f"{path.relative_to(root)}: total time {study_time.of_notebook(fresh, chapter).total}")
            if write:
                write_atomic(path, fresh)
    readme = root / "README.md"
    if readme.is_file():
        minutes = {c[:2]: study_time.of_notebook(notebook_path(c, root).read_text(encoding="utf-8"), c).minutes
                   for c in chapters(root)}
        text = readme.read_text(encoding="utf-8")
        fresh, what = study_time.fixed_readme(text, minutes)
        changed += what
        if write and fresh != text:
            write_atomic(readme, fresh)
    return changed



def md(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(source.strip("\n"))


def code(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source.strip("\n"))


def _nbgrader(cell: nbformat.NotebookNode, **flags) -> nbformat.NotebookNode:
    meta = {"grade": False, "solution": False, "locked": False, "schema_version": 3}
    meta.update(flags)
    cell.metadata["nbgrader"] = meta
    cell["id"] = flags["grade_id"]
    return cell


def solution(source: str, grade_id: str) -> nbformat.NotebookNode:
    """A cell the student edits; its ### BEGIN/END SOLUTION region becomes the stub."""
    return _nbgrader(code(source), solution=True, grade_id=grade_id)


def test(source: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A locked, graded test cell: one line of visible check, then the hidden block."""
    return _nbgrader(code(source), grade=True, locked=True, points=points, grade_id=grade_id)


def answer(source: str, grade_id: str, points: float) -> nbformat.NotebookNode:
    """A graded solution cell (the student's code is graded by what its output says)."""
    return _nbgrader(code(source), grade=True, solution=True, points=points, grade_id=grade_id)


def locked(cell: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """A read-only cell students cannot change (instructions, provided code)."""
    return _nbgrader(cell, locked=True, grade_id=grade_id)


def new_notebook(cells: list, *, budget_s: int) -> nbformat.NotebookNode:
    """A chapter notebook: the setup cell first, then ``cells``. ``budget_s`` bounds its execution."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [locked(code(setup_cell(publishing())), "setup"), *cells]
    nb.metadata["course"] = {"time_budget_s": budget_s}
    return normalize(nb)


# --------------------------------------------------------------------------------------------
# normalising
# --------------------------------------------------------------------------------------------
def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No outputs, no execution counts, only the metadata that means something, stable cell ids."""
    nb.metadata = nbformat.from_dict(
        {
            "kernelspec": KERNEL,
            "language_info": {"name": "python"},
            **({"course": nb.metadata["course"]} if "course" in nb.metadata else {}),
        }
    )
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        meta = {k: cell.metadata[k] for k in _KEEP_CELL_METADATA if k in cell.metadata}
        cell.metadata = nbformat.from_dict(meta)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.pop("attachments", None) if cell.cell_type != "markdown" else None
        grade_id = meta.get("nbgrader", {}).get("grade_id")
        cell_id = cell.get("id") or ""
        if not cell_id or cell_id in seen:
            basis = grade_id or f"{index}:{cell.cell_type}:{cell.source[:80]}"
            cell_id = hashlib.sha1(basis.encode()).hexdigest()[:12]
        seen.add(cell_id)
        cell["id"] = cell_id
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def normalize_file(path: Path) -> bool:
    """Normalise one notebook in place; return True when it changed."""
    before = Path(path).read_text(encoding="utf-8")
    nb = normalize(nbformat.reads(before, as_version=4))
    nbformat.validate(nb)
    after = dumps(nb)
    if after != before:
        write_atomic(Path(path), after)
        return True
    return False


# --------------------------------------------------------------------------------------------
# nbgrader in a temporary course directory
# --------------------------------------------------------------------------------------------
def nbgrader_config(root: Path):
    """The repository's nbgrader_config.py, pointed at ``root``."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{Path(root) / 'gradebook.db'}"
    return config


@contextlib.contextmanager
def venv_on_path() -> Iterator[None]:
    """nbgrader shells out to `alembic`: the interpreter's bin folder must be on PATH."""
    bindir = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = bindir + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def api(root: Path):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = nbgrader_config(root)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _require(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('error') or result.get('log')}")


@contextlib.contextmanager
def fast_alembic():
    """Let nbgrader read its schema version in-process instead of starting the ``alembic`` command.

    A new gradebook asks ``alembic heads`` (a subprocess, 1.5-3 s) for the version to stamp; the answer
    comes from nbgrader's own migration scripts, which alembic's ScriptDirectory reads directly.
    """
    import nbgrader
    import nbgrader.api

    try:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(Path(nbgrader.__file__).parent / "alembic")).get_current_head()
    except Exception:  # noqa: BLE001 - keep nbgrader's own way when alembic cannot say
        head = None
    original = nbgrader.api.get_alembic_version
    if head:
        nbgrader.api.get_alembic_version = lambda: head
    try:
        yield
    finally:
        nbgrader.api.get_alembic_version = original


def new_course(root: Path, chapters_: list[str], *, source_root: Path = REPO) -> object:
    """Lay out a course at ``root`` with the given chapters' sources and generate their releases."""
    root = Path(root)
    for chapter in chapters_:
        src = Path(source_root) / SOURCE / chapter
        if not src.is_dir():
            raise FileNotFoundError(f"no chapter {chapter!r}: {src} does not exist")
        shutil.copytree(src, root / SOURCE / chapter, dirs_exist_ok=True)
    grader = api(root)
    with venv_on_path(), fast_alembic():
        for chapter in chapters_:
            _require(grader.generate_assignment(chapter, force=True, create=True), f"generate_assignment {chapter}")
    return grader


def release(selected: list[str] | None = None, *, out: Path | None = None, quiet: bool = False) -> list[Path]:
    """Generate the student version of each chapter and write it (normalised) under ``out``."""
    selected = selected or chapters()
    out = Path(out) if out is not None else REPO / RELEASE
    written = []
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        new_course(Path(tmp), selected)
        for chapter in selected:
            produced = Path(tmp) / RELEASE / chapter / f"{chapter}.ipynb"
            nb = normalize(nbformat.read(produced, as_version=4))
            target = out / chapter / f"{chapter}.ipynb"
            write_atomic(target, dumps(nb))
            written.append(target)
            if not quiet:
                print(f"released {target.relative_to(out.parent) if out.parent in target.parents else target}")
    return written


def stale_releases() -> list[str]:
    """Chapters whose committed release differs from a fresh one (or is missing)."""
    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        fresh = release(out=Path(tmp), quiet=True)
        stale = []
        for path in fresh:
            committed = REPO / RELEASE / path.parent.name / path.name
            if not committed.exists() or committed.read_text(encoding="utf-8") != path.read_text(encoding="utf-8"):
                stale.append(path.parent.name)
        return stale


def autograde(grader, root: Path, chapter: str, student: str, notebook: Path) -> dict:
    """Submit ``notebook`` as ``student`` and autograde it; return its grades::

        {"score", "max_score", "cells": {grade_id: (score, max_score)},
         "auto_scores": {grade_id: auto score, None where nbgrader gave none},
         "pending": {grade_id: points} (cells left for manual grading: written answers),
         "auto_max_score": max_score minus the pending points}

    nbgrader never scores a manually graded cell (``grade`` and ``solution``: the course's WRITTEN
    questions) that the student answered: it leaves it ``needs_manual_grade`` with no score, so a perfect
    submission scores ``auto_max_score`` with the written points pending (:func:`full_marks_problems`).
    """
    from nbgrader.api import Gradebook

    target = Path(root) / "submitted" / student / chapter / f"{chapter}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook, target)
    with venv_on_path():
        _require(grader.autograde(chapter, student, force=True, create=True), f"autograde {chapter}/{student}")
    with Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(chapter, chapter, student)
        return grades_of(submission)


def grades_of(submission) -> dict:
    """:func:`autograde`'s dict for an nbgrader ``SubmittedNotebook`` (read from a gradebook)."""
    cells = {g.name: (g.score, g.max_score) for g in submission.grades}
    pending = {g.name: g.max_score for g in submission.grades
               if g.needs_manual_grade and g.auto_score is None and g.manual_score is None}
    return {"score": submission.score, "max_score": submission.max_score, "cells": cells,
            "auto_scores": {g.name: g.auto_score for g in submission.grades}, "pending": pending,
            "auto_max_score": submission.max_score - sum(pending.values())}


def manual_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> cell type of the cells nbgrader leaves for manual grading (``grade`` and ``solution``):
    the WRITTEN questions (markdown) and any manually graded code answer."""
    found = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("solution") and meta.get("grade_id"):
            found[meta["grade_id"]] = cell.cell_type
    return found


def full_marks_problems(result: dict, nb: nbformat.NotebookNode) -> list[str]:
    """Why ``result`` (:func:`autograde` of the solution notebook ``nb``) is not "full marks": every
    auto-graded cell must have all its points, and every manually graded cell (a WRITTEN question) must
    be left for manual grading, with no automatic score. Empty when it is full marks."""
    manual = manual_cells(nb)
    problems = []
    for name, (score, out_of) in result["cells"].items():
        if name in manual:
            auto = result.get("auto_scores", {}).get(name)
            if auto is not None or name not in result.get("pending", {}):
                problems.append(f"{name} (a written answer, graded by hand) was scored automatically: "
                                f"auto score {auto}, not left for manual grading")
        elif score != out_of:
            problems.append(f"{name} lost points: {score:g} of {out_of:g}")
    for name in set(result.get("pending", {})) - set(manual):
        problems.append(f"{name} was left for manual grading but is an auto-graded cell")
    return problems


# --------------------------------------------------------------------------------------------
# executing
# --------------------------------------------------------------------------------------------
def run(nb: nbformat.NotebookNode, workdir: Path, *, timeout: int = 300,
        env: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel started in ``workdir`` whose environment is ``env`` (default:
    this process's) with this interpreter's bin folder first on PATH; a cell that raises stops the run."""
    from nbclient import NotebookClient

    env = dict(os.environ if env is None else env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env)
    return nb


def execute(path: Path, *, timeout: int = 300, env: dict | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook file top to bottom in a fresh kernel (in its own folder), figures headless (Agg); return it
    and the seconds."""
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    run(nb, Path(path).parent, timeout=timeout, env={**os.environ, **(env or {}), "MPLBACKEND": "Agg"})
    return nb, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def _times(selected: list[str]) -> int:
    print(f"{'chapter':<16}{'execute (s)':>12}{'autograde solution (s)':>24}{'autograde stub (s)':>20}{'score':>12}")
    for chapter in selected:
        _, exec_s = execute(notebook_path(chapter))
        with tempfile.TemporaryDirectory(prefix="course-times-") as tmp:
            grader = new_course(Path(tmp), [chapter])
            t0 = time.perf_counter()
            sol = autograde(grader, Path(tmp), chapter, "solution", notebook_path(chapter))
            t1 = time.perf_counter()
            stub = autograde(grader, Path(tmp), chapter, "stub", Path(tmp) / RELEASE / chapter / f"{chapter}.ipynb")
            t2 = time.perf_counter()
        pending = sum(sol["pending"].values())
        score = f"{sol['score']:g}/{sol['auto_max_score']:g}{f' +{pending:g} by hand' if pending else ''}, {stub['score']:g}"
        print(f"{chapter:<16}{exec_s:>12.1f}{t1 - t0:>24.1f}{t2 - t1:>20.1f}{score:>12}")
    return 0


def _study_times(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib notebooks study-times",
                                     description=study_time.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapters whose stated total to derive (default: all)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a stated time disagrees")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.chapters) - set(chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; expected some of {chapters()}")
    try:
        changed = sync_study_times(args.chapters or None, write=not args.check)
    except study_time.StudyTimeError as error:
        print(error, file=sys.stderr)
        return 1
    for chapter in chapters():
        times = study_time.of_notebook(notebook_path(chapter).read_text(encoding="utf-8"), chapter)
        print(f"{chapter:<20}{times.total:>12}  ({len(times.parts)} parts)")
    for what in changed:
        print(("out of step: " if args.check else "wrote ") + what)
    return 1 if args.check and changed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapters to release (default: all)")
    parser.add_argument("--check", action="store_true", help="only report whether notebooks/ is up to date")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.chapters) - set(chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; expected some of {chapters()}")
    if args.check:
        stale = stale_releases()
        for what in sync_publishing(write=False):
            print(f"out of step with {PUBLISH_FILE}: {what}")
            stale.append(what)
        for what in sync_study_times(write=False):
            print(f"out of step with the chapters' section times: {what}")
            stale.append(what)
        if stale:
            print(f"notebooks/ is out of date for: {', '.join(stale)}; run `make release`")
            return 1
        print("notebooks/ is up to date")
        return 0
    for what in sync_publishing():
        print(f"wrote {PUBLISH_FILE}'s address into {what}")
    for what in sync_study_times(args.chapters or None):
        print(f"derived from the chapters' section times: {what}")
    for chapter in args.chapters or chapters():
        normalize_file(notebook_path(chapter))
    release(args.chapters or None)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``python -m course_lib notebooks normalize [paths] | times [chapters] | study-times [--check] [chapters] |
    <release options>``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["normalize"]:
        paths = [Path(p) for p in argv[1:]] or [REPO / SOURCE, REPO / RELEASE]
        files = [f for p in paths for f in (sorted(p.rglob("*.ipynb")) if p.is_dir() else [p])]
        changed = [f for f in files if ".ipynb_checkpoints" not in f.parts and normalize_file(f)]
        for f in changed:
            print(f"normalised {f}")
        return 0
    if argv[:1] == ["times"]:
        return _times(argv[1:] or chapters())
    if argv[:1] == ["study-times"]:
        return _study_times(argv[1:])
    return main(argv)
