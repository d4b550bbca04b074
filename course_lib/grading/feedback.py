"""Feedback that shows each check's message and score, never the hidden tests' code.

nbgrader's ``generate_feedback`` renders the autograded notebook as it is, and that notebook holds the
hidden tests that autograding put back into every test cell (nbgrader #917, "by design"). Error outputs
leak them too: a test cell that raised shows IPython's traceback, whose context lines are the test cell's
source. So before nbgrader renders the feedback, the autograded copy goes through :func:`prepare`:

- every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region (in any cell; an unclosed region
  runs to the end of its cell) becomes one comment line, ``# hidden tests ran here (not shown)``;
- an error output of a graded cell keeps only its last line, ``ExceptionName: message``: the check's
  message, which is written to teach, without the code around it;
- an error output of any other cell (the student's own code) keeps the frames of the student's cells
  (``Cell In[12], line 3``) and the error line, and drops every frame of a file (Python's library,
  torch, the course, the grading sandbox: :func:`student_frames`);
- no server path is left in an error or in a printed output (stdout and stderr: a student's code may
  print an error it caught, or a listing): every absolute path becomes ``…/<its last part>``
  (:func:`hide_paths`).

Outputs are kept, so a student still reads what each check printed and each cell's score. The reference
solutions never reach the autograded notebook: solution cells hold the student's own code, and nbgrader
restores a deleted answer cell from the released stub. :func:`leaked_lines` is the last guard: the
batch grader checks the prepared notebook and the rendered HTML for any line of the hidden tests and
falls back to a plain page of scores and messages if one got through.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Iterable

import nbformat

from course_lib.grading.common import BEGIN_HIDDEN, END_HIDDEN, hidden_lines

PLACEHOLDER = "# hidden tests ran here (not shown)"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

__all__ = ["hide_hidden_tests", "short_errors", "student_frames", "hide_paths", "drop_proofs", "prepare",
           "leaked_lines", "html_text"]

#: an absolute path of two parts or more (``/home/x``, ``/srv/course/a.py``), up to a space, quote, colon,
#: comma, bracket or parenthesis
_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/:'\"(),\[\]<>]+){2,}/?")
#: the head of a traceback frame of a file (not of a notebook cell), as IPython writes it
_FILE_FRAME = re.compile(r"^\s*(File\s+\S|\S+\.py\s+in\s)")
#: the head of a frame of a notebook cell
_CELL_FRAME = re.compile(r"^\s*(Cell In\s*\[|Input In\s*\[|<ipython-input-)")


def _is_grade(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


def hide_hidden_tests(nb: nbformat.NotebookNode) -> int:
    """Replace every hidden-test region by :data:`PLACEHOLDER` (in place); return how many were removed."""
    removed = 0
    for cell in nb.cells:
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if BEGIN_HIDDEN not in source:
            continue
        kept, inside = [], False
        for line in source.split("\n"):
            if BEGIN_HIDDEN in line and not inside:
                inside = True
                removed += 1
                if cell.cell_type == "code":
                    kept.append(line[: len(line) - len(line.lstrip())] + PLACEHOLDER)
            elif inside and END_HIDDEN in line:
                inside = False
            elif not inside:
                kept.append(line)
        cell.source = "\n".join(kept)
    return removed


def short_errors(nb: nbformat.NotebookNode) -> int:
    """Cut the traceback of every error output in a graded cell down to ``Name: message``; return the count."""
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or not _is_grade(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                name, value = output.get("ename", "Error"), output.get("evalue", "")
                output["traceback"] = [f"\x1b[0;31m{name}\x1b[0m: {value}" if value else f"\x1b[0;31m{name}\x1b[0m"]
                changed += 1
    return changed


def hide_paths(text: str) -> str:
    """``text`` with every absolute path shortened to ``…/<last part>``: no server folder, user name or
    grader file location reaches a student."""
    return _PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def student_frames(nb: nbformat.NotebookNode) -> int:
    """In every error output of a code cell that is not graded (a graded cell's is cut by
    :func:`short_errors`): keep the traceback's heading, the frames of notebook cells (the student's code)
    and the error line; drop the frames of files (Python's library, torch, the course, the grading sandbox)
    with one line saying how many; shorten every path (:func:`hide_paths`). Returns how many frames
    were dropped."""
    dropped_total = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or _is_grade(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            lines = [str(line) for line in output.get("traceback", [])]
            kept, dropped = [], 0
            for index, entry in enumerate(lines):
                plain = _ANSI.sub("", entry)
                if index < len(lines) - 1 and _FILE_FRAME.match(plain) and not _CELL_FRAME.match(plain):
                    dropped += 1
                    continue
                kept.append(hide_paths(entry))
            if dropped:
                note = (f"({dropped} frame{'s' if dropped > 1 else ''} inside Python's libraries, torch or the "
                        "course's code not shown)")
                kept.insert(max(len(kept) - 1, 0), note)
            output["traceback"] = kept
            output["evalue"] = hide_paths(str(output.get("evalue", "")))
            dropped_total += dropped
    for cell in nb.cells:  # graded cells' error lines, and whatever was printed
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["evalue"] = hide_paths(str(output.get("evalue", "")))
                output["traceback"] = [hide_paths(str(line)) for line in output.get("traceback", [])]
            elif output.get("output_type") == "stream":  # stdout too: a caught error printed, a listing
                output["text"] = hide_paths(str(output.get("text", "")))
    return dropped_total


def drop_proofs(nb: nbformat.NotebookNode) -> int:
    """Remove the grading sandbox's signed proofs (`` [proof N:...]``) from printed outputs; return the count.

    They mean something to the grader only; a student reading the feedback just sees the check's line.
    """
    try:
        from course_lib.grading.sandbox_guard import PROOF_PATTERN
    except ImportError:  # no sandbox in this installation
        return 0
    pattern, removed = re.compile(PROOF_PATTERN), 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text, count = pattern.subn("", str(output.get("text", "")))
                output["text"], removed = text, removed + count
    return removed


PENDING_NOTE = "graded by hand"


def _is_written(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "markdown" and bool(meta.get("grade")) and bool(meta.get("solution"))


def mark_pending(nb: nbformat.NotebookNode, pending: dict[str, float]) -> int:
    """Say on the page which answers are still to be graded by hand (in place): a note under each such
    written answer (the student's own text stays as it is) and one at the top, since nbgrader's page shows
    such a cell as "Score: 0 / N" until the instructor has graded it. Returns how many were marked."""
    marked = []
    for cell in nb.cells:
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if name in pending and cell.cell_type == "markdown":
            cell.source = (cell.source.rstrip() + "\n\n---\n"
                           f"*This written answer is {PENDING_NOTE}: your instructor reads it and gives up to "
                           f"{pending[name]:g} point{'s' if pending[name] != 1 else ''}; its score below is "
                           "not final.*")
            marked.append(name)
    if marked:
        total = sum(pending[name] for name in marked)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"**{total:g} point{'s' if total != 1 else ''} of written answers {PENDING_NOTE}** "
            f"({', '.join(marked)}): the score on this page counts the auto-graded points only, "
            "until your instructor has read them."))
    return len(marked)


def prepare(path: Path, pending: dict[str, float] | None = None) -> None:
    """Make the autograded notebook at ``path`` safe to show a student (in place); ``pending``: grade_id ->
    points of the written answers left for manual grading (see :func:`mark_pending`)."""
    nb = nbformat.read(path, as_version=4)
    hide_hidden_tests(nb)
    short_errors(nb)
    student_frames(nb)
    drop_proofs(nb)
    if pending:
        mark_pending(nb, pending)
    nbformat.write(nb, path)


def _notebook_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts.append(str(output.get("evalue", "")))
            parts.extend(_ANSI.sub("", line) for line in output.get("traceback", []))
            for value in output.get("data", {}).values():
                parts.append(str(value))
    return "\n".join(parts)


def html_text(page: str) -> str:
    """The text a reader sees in an HTML page: tags (syntax highlighting spans) dropped, entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def leaked_lines(text_or_nb, secrets: Iterable[str]) -> list[str]:
    """The secrets that occur in a notebook (sources and outputs) or in a text, whitespace-insensitively."""
    text = _notebook_text(text_or_nb) if isinstance(text_or_nb, nbformat.NotebookNode) else str(text_or_nb)
    squeezed = re.sub(r"\s+", "", text)
    return [s for s in secrets if re.sub(r"\s+", "", s) in squeezed]


def cell_messages(nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> what the graded cell reported (its error line, else its printed output); for a written
    answer, the student's text."""
    messages = {}
    for cell in nb.cells:
        if _is_written(cell):  # a written answer: the student's own text
            messages[cell.metadata["nbgrader"].get("grade_id", "?")] = cell.source.strip()
            continue
        if cell.cell_type != "code" or not _is_grade(cell):
            continue
        errors = [f"{o.get('ename')}: {hide_paths(str(o.get('evalue')))}" for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        printed = "".join(str(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        messages[cell.metadata["nbgrader"].get("grade_id", "?")] = errors[-1] if errors else printed.strip()
    return messages


# --------------------------------------------------------------------------------------------
# nbgrader's feedback exporter, with its compiled templates kept between students
# --------------------------------------------------------------------------------------------
_BYTECODE = None


def _bytecode_cache():
    """One in-memory Jinja bytecode cache per process: a template is compiled once, and used again only
    while its file's source is unchanged (Jinja checks the checksum of the source on every load)."""
    global _BYTECODE
    if _BYTECODE is None:
        import jinja2

        class MemoryBytecodeCache(jinja2.BytecodeCache):
            def __init__(self):
                self._store: dict[str, bytes] = {}

            def load_bytecode(self, bucket):
                data = self._store.get(bucket.key)
                if data is not None:
                    bucket.bytecode_from_string(data)

            def dump_bytecode(self, bucket):
                self._store[bucket.key] = bucket.bytecode_to_string()

        _BYTECODE = MemoryBytecodeCache()
    return _BYTECODE


def _cached_html_exporter():
    from nbconvert.exporters import HTMLExporter

    class CachedHTMLExporter(HTMLExporter):
        """nbconvert's HTMLExporter (configured as ``HTMLExporter``, so nbgrader's ``feedback`` template and
        paths apply unchanged) whose Jinja environment reuses the templates compiled for an earlier
        student: the same page, about a third of a second less per notebook."""

        def _create_environment(self):
            environment = super()._create_environment()
            environment.bytecode_cache = _bytecode_cache()
            return environment

    return CachedHTMLExporter


def warm_exporter() -> None:
    """Render a small notebook with nbgrader's feedback template once (a grading worker does it while its
    warm template starts): the templates are compiled into the cache, the highlighter and the markdown
    renderer are loaded, before the first student's page."""
    import os

    import nbgrader
    from traitlets.config import Config

    formgrader = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")
    config = Config()  # as nbgrader's GenerateFeedback sets it up
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [os.path.join(formgrader, "templates")]
    config.HTMLExporter.extra_template_paths = [
        os.path.join(formgrader, "static", "node_modules", "bootstrap", "dist", "css")]
    exporter = _cached_html_exporter()(config=config)
    cell = nbformat.v4.new_code_cell("print('x')", outputs=[nbformat.v4.new_output("stream", name="stdout", text="x")])
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "warm",
                                 "points": 1, "score": 1, "schema_version": 3}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# warm\n*text* `code`"), cell])
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    cell.metadata["nbgrader"]["comment"] = "*ok*"
    exporter.from_notebook_node(nb, resources={"nbgrader": {"notebook": "warm", "score": 1, "max_score": 1,
                                                           "late_penalty": 0}})


def __getattr__(name: str):
    if name == "CachedHTMLExporter":  # made on first use: nbconvert is imported only by who renders pages
        globals()[name] = _cached_html_exporter()
        return globals()[name]
    raise AttributeError(name)


# --------------------------------------------------------------------------------------------
# after manual grading: the pages again, from the main gradebook
# --------------------------------------------------------------------------------------------
def regenerate(out: Path, chapter: str, *, db_url: str | None = None, students: list[str] | None = None) -> dict:
    """Render the feedback pages of ``chapter`` again from the course folder ``out`` (what ``python -m
    course_lib grade`` wrote; ``python -m course_lib feedback`` calls this, then writes the reports) and
    its gradebook, once written answers were graded by hand (nbgrader
    formgrader): the scores, manual ones and graders' comments included, with the hidden tests removed
    as at grading time, and the note "graded by hand" left only under answers that are still waiting.

    nbgrader's own ``generate_feedback`` would show the hidden tests (nbgrader #917). Returns
    student -> "written" or the reason the page was left as it was.
    """
    import shutil
    import tempfile

    from nbgrader.api import Gradebook

    from course_lib.tools import notebooks as nbs

    out = Path(out).resolve()
    db_url = db_url or f"sqlite:///{out / 'gradebook.db'}"
    source, release = (nbs.notebook_path(chapter, out, folder) for folder in (nbs.SOURCE, nbs.RELEASE))
    secrets = hidden_lines(nbformat.read(source, as_version=4), nbformat.read(release, as_version=4))
    graded = sorted(p.parent.parent.name for p in (out / "autograded").glob(f"*/{chapter}/{chapter}.ipynb"))
    done: dict[str, str] = {}
    course_id = str(nbs.nbgrader_config(out).CourseDirectory.course_id)
    for student in students or graded:
        if student not in graded:
            done[student] = "no autograded notebook"
            continue
        with Gradebook(db_url, course_id) as gb:
            pending = nbs.grades_of(gb.find_submission_notebook(chapter, chapter, student))["pending"]
        with tempfile.TemporaryDirectory(prefix="course-feedback-") as tmp:
            root = Path(tmp)
            shutil.copytree(out / "autograded" / student / chapter, root / "autograded" / student / chapter)
            notebook = root / "autograded" / student / chapter / f"{chapter}.ipynb"
            prepare(notebook, pending=pending)
            if leaked_lines(nbformat.read(notebook, as_version=4), secrets):
                done[student] = "a line of the hidden tests is in the notebook: page left as it was"
                continue
            grader = nbs.api(root)
            grader.coursedir.db_url = db_url
            with nbs.venv_on_path():
                result = grader.generate_feedback(chapter, student, force=True)
            page = root / "feedback" / student / chapter / f"{chapter}.html"
            if not result.get("success") or not page.is_file():
                done[student] = f"nbgrader could not render it: {(result.get('error') or result.get('log') or '')[-300:]}"
                continue
            text = page.read_text(encoding="utf-8")
            if leaked_lines(html_text(text), secrets):
                done[student] = "a line of the hidden tests is in the page: page left as it was"
                continue
            target = out / "feedback" / student / chapter / f"{chapter}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            done[student] = "written"
    return done
