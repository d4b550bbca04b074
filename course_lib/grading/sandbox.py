"""Crash- and tamper-proof autograding: nbgrader's autograde, run in a sandbox.

:func:`harden` turns a traitlets config (nbgrader's) into the sandboxed one; nbgrader_config.py calls
it, so ``nbgrader autograde``, ``course_lib.tools.notebooks.autograde`` and the batch grader all grade this
way. What changes (docs/grading-security.md has the threat model and what is not defended):

Sanitising (before anything runs)
    :class:`SandboxDeduplicateIds` and :class:`SandboxOverwriteCells` extend nbgrader's repair of the
    submitted notebook, fixing what it gets wrong: a graded cell whose nbgrader flags (grade, solution,
    locked, points) were edited gets them back from the gradebook (nbgrader restores 'locked' and
    'points' only, then fails the whole notebook with "Inconsistent checksums"); the copies of a
    duplicated graded cell lose the empty metadata on which nbgrader's OverwriteCells fails the whole
    notebook; duplicated notebook cell ids are renamed.

Executing (:class:`SandboxExecute`, nbgrader's Execute with)
    - every kernel started by ``sandbox_launcher`` in a private folder, with a memory limit, a limit on
      the size of written files, no core files, and the guard of ``sandbox_guard`` armed before the
      first cell;
    - a cell that runs past the timeout is interrupted; a kernel that does not answer within
      ``kill_grace_s`` (a loop that swallows KeyboardInterrupt) is killed;
    - after the kernel dies or is killed, every later cell is marked with an error and earns nothing
      (nbgrader #427: after a kernel death, later cells could be marked as passed);
    - outputs are capped per cell while they arrive (megabytes of prints cannot exhaust the grader);
    - every graded test cell that calls the course's checks must have printed, for each check it calls,
      a proof signed by the guard with this notebook's key; a cell without its proofs, and any cell with
      an error, gets an error output first so that nbgrader gives it no points.
"""
from __future__ import annotations

import ast
import asyncio
import hmac
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbgrader.preprocessors import DeduplicateIds, Execute, OverwriteCells
from traitlets import Bool, Float, Integer, List, Unicode, default

from course_lib.grading.check_index import check_index
from course_lib.grading.sandbox_guard import MISTAKE_REFERENCE, MISTAKE_TAMPERING, PROOF_PATTERN, proof_message

__all__ = [
    "harden", "is_hardened", "safe_feedback", "has_safe_feedback", "SafeFeedback", "SandboxExecute", "SandboxOverwriteCells", "SandboxDeduplicateIds",
    "expected_checks", "ENV_PREFIX", "MISTAKE_TAMPERING", "MISTAKE_REFERENCE",
]

#: Environment variables that override the sandbox's defaults in the grading process, e.g.
#: ``COURSE_SANDBOX_MEMORY_MB=3000`` (the batch grader's ``kernel_env`` reaches its workers this way).
ENV_PREFIX = "COURSE_SANDBOX_"
ERROR_NAME = "GradingSandboxError"
_PROOF = re.compile(PROOF_PATTERN)
_REPO = Path(__file__).resolve().parents[2]


def _env(name: str, fallback: Any, kind: type = int) -> Any:
    value = os.environ.get(ENV_PREFIX + name)
    if value is None or value == "":
        return fallback
    if kind is bool:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return kind(value)


# --------------------------------------------------------------------------------------------
# which checks a test cell calls
# --------------------------------------------------------------------------------------------
def expected_checks(source: str) -> list[set[str]]:
    """The checks a test cell's source calls: one set of acceptable exercise names per distinct call.

    Names are resolved through the cell's own imports (``from course_lib.checks.ch01_se import
    check_se``, ``import course_lib.hidden.ch01_se as h``) and otherwise by function name.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    index = check_index()
    imported: dict[str, tuple[str, str]] = {}   # local name -> (module, attribute)
    modules: dict[str, str] = {}                # local name -> module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
                modules.setdefault(alias.asname or alias.name, f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
    wanted: list[set[str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        names: set[str] = set()
        if isinstance(func, ast.Name):
            if func.id in imported and imported[func.id] in index["by_module"]:
                names = {index["by_module"][imported[func.id]]}
            else:
                names = set(index["by_name"].get(func.id, ()))
        elif isinstance(func, ast.Attribute):
            parts = []
            value: ast.expr = func.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                base = modules.get(value.id, value.id)
                module = ".".join([base, *reversed(parts)])
                names = {index["by_module"][(module, func.attr)]} if (module, func.attr) in index["by_module"] \
                    else set(index["by_name"].get(func.attr, ()))
        if names and names not in wanted:
            wanted.append(names)
    return wanted


# --------------------------------------------------------------------------------------------
# sanitising: nbgrader's cell repair, with its holes closed
# --------------------------------------------------------------------------------------------
class SandboxDeduplicateIds(DeduplicateIds):
    """nbgrader's DeduplicateIds (the last copy of a duplicated graded cell keeps its metadata, the others
    become ordinary cells), fixed: the copies lose their empty ``nbgrader`` metadata, on which nbgrader's
    OverwriteCells fails the whole notebook; and notebook cell ids are made unique."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        seen: set[str] = set()
        for index, cell in enumerate(nb.cells):
            cell_id = cell.get("id")
            if cell_id is None:
                continue
            if cell_id in seen:
                self.log.warning("Cell id '%s' appears more than once: renaming the copy", cell_id)
                cell["id"] = f"{cell_id}-copy{index}"[:64]
            seen.add(cell["id"])
        nb, resources = super().preprocess(nb, resources)
        for cell in nb.cells:
            # nbgrader leaves an empty "nbgrader" dict on the copies it strips, and its OverwriteCells
            # then fails on the whole notebook (KeyError: 'grade_id' in add_missing_task_cells)
            if "nbgrader" in cell.get("metadata", {}) and not cell.metadata.nbgrader:
                del cell.metadata["nbgrader"]
        return nb, resources


def _grade_id(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader") or {}
    if meta.get("grade") or meta.get("solution") or meta.get("locked"):
        return meta.get("grade_id")
    return None


class SandboxOverwriteCells(OverwriteCells):
    """nbgrader's OverwriteCells, restoring every graded or locked cell whatever was done to it.

    Beyond nbgrader: a cell's grade/solution/locked flags and points come back from the gradebook
    (nbgrader restores only 'locked' and 'points', and then fails the whole notebook with
    "Inconsistent checksums" when the flags were edited); a locked cell's source is restored whenever
    its checksum does not match.

    A test cell as released differs from the gradebook's copy by its hidden tests (generate_assignment saves
    the cell, and its checksum, before ClearHiddenTests), so nbgrader restores every such cell of every
    student with the warning "Attribute 'checksum' for cell ... has changed!", which reads as tampering.
    A cell that is exactly the released one gets its hidden tests back here without that warning (the same
    source nbgrader would restore); a cell whose source was edited is still reported and restored.
    """

    def preprocess_cell(self, cell: NotebookNode, resources: dict, cell_index: int) -> tuple[NotebookNode, dict]:
        from nbgrader.api import MissingEntry

        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            try:
                source = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source = None
            if source is not None:
                meta = cell.metadata.nbgrader
                try:
                    graded = self.gradebook.find_graded_cell(grade_id, self.notebook_id, self.assignment_id)
                except MissingEntry:
                    graded = None
                try:
                    self.gradebook.find_solution_cell(grade_id, self.notebook_id, self.assignment_id)
                    solution = True
                except MissingEntry:
                    solution = False
                if bool(meta.get("grade")) != (graded is not None):
                    self.report_change(grade_id, "grade", graded is not None, meta.get("grade"))
                    meta["grade"] = graded is not None
                if graded is not None:
                    meta["points"] = float(graded.max_score)
                if bool(meta.get("solution")) != solution:
                    self.report_change(grade_id, "solution", solution, meta.get("solution"))
                    meta["solution"] = solution
                meta.pop("task", None)
                if source.locked:
                    meta["locked"] = True
                    if cell.cell_type == source.cell_type and cell.source != source.source \
                            and cell.source == self._released_source(source.source):
                        cell.source = source.source  # the hidden tests back, as nbgrader would put them
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        return cell, resources

    def _released_source(self, source: str) -> str | None:
        """The source as generate_assignment releases it: without its hidden tests (None: it has none)."""
        from nbformat import NotebookNode
        from nbgrader.preprocessors import ClearHiddenTests

        cell = NotebookNode(source=source)
        try:
            removed = ClearHiddenTests(parent=self)._remove_hidden_test_region(cell)
        except RuntimeError:  # unbalanced markers: leave it to nbgrader
            return None
        return cell.source if removed else None

    def add_missing_grade_cells(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Put deleted test cells back after the nearest earlier graded, solution or locked cell still there.

        nbgrader's own version looks only at the cell just before in the source, and fails the whole
        notebook (KeyError) when that one was deleted too: a student who deleted an answer cell and its
        test lost the points of every other exercise.
        """
        from nbgrader import utils

        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_cells = list(source_nb.source_cells)
        order = [cell.name for cell in source_cells]
        graded = {cell.name: cell for cell in source_nb.grade_cells}
        solutions = {cell.name for cell in source_nb.solution_cells}
        for index, name in enumerate(order):
            if name not in graded:
                continue
            where = {cell["metadata"]["nbgrader"]["grade_id"]: i for i, cell in enumerate(nb.cells)
                     if (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell))
                     and cell["metadata"]["nbgrader"].get("grade_id")}
            if name in where:
                continue
            self.log.warning("Missing grade cell %s encountered, adding to notebook", name)
            cell = self.missing_cell_transform(source_cells[index], graded[name].max_score,
                                               is_solution=name in solutions)
            earlier = [where[n] for n in order[:index] if n in where]
            nb.cells.insert(max(earlier) + 1 if earlier else 0, cell)
        return nb, resources


# --------------------------------------------------------------------------------------------
# executing
# --------------------------------------------------------------------------------------------
class _KernelStopped(Exception):
    """The kernel did not answer an interrupt in time and was killed."""


def clipped_text(msg_type: str | None, text: str, used: int, limit: int) -> str:
    """What still shows of an output message once a cell's outputs pass ``limit`` bytes (``used`` before it).

    A stream keeps its text up to the room left and, past it, every check-proof line (so a check that ran
    still counts); the first message over the limit also gets one note that the output was cut. An empty
    result means the message is dropped.
    """
    kept = ""
    if msg_type == "stream":
        room = max(0, limit - used)
        kept = text[:room]
        proofs = [line for line in text[room:].splitlines() if _PROOF.search(line)]
        if proofs:
            kept += "\n" + "\n".join(proofs) + "\n"
    if used <= limit:
        kept += f"\n[output cut: more than {limit:,} bytes]\n"
    return kept


class SandboxExecute(Execute):
    """nbgrader's Execute in the sandbox (see the module's docstring)."""

    memory_mb = Integer(help="memory (address space, MiB) the notebook may use on top of what the kernel holds "
                             "when it starts (0: no limit)").tag(config=True)
    file_mb = Integer(help="largest file the kernel may write, in MiB (0: no limit)").tag(config=True)
    cpu_s = Integer(help="CPU seconds for the whole notebook (0: no limit)").tag(config=True)
    kill_grace_s = Float(help="seconds an interrupted kernel has to answer before it is killed").tag(config=True)
    max_output_bytes = Integer(help="output kept per cell while it runs, in bytes").tag(config=True)
    network = Bool(help="let the kernel open sockets").tag(config=True)
    require_proofs = Bool(help="test cells calling the course's checks need the guard's signed proofs").tag(
        config=True)
    deny_read = List(Unicode(), help="more folders the kernel may not read").tag(config=True)

    @default("memory_mb")
    def _memory_default(self) -> int:
        return _env("MEMORY_MB", 4096)

    @default("file_mb")
    def _file_default(self) -> int:
        return _env("FILE_MB", 512)

    @default("cpu_s")
    def _cpu_default(self) -> int:
        return _env("CPU_S", 0)

    @default("kill_grace_s")
    def _grace_default(self) -> float:
        return _env("KILL_GRACE_S", 5.0, float)

    @default("max_output_bytes")
    def _output_default(self) -> int:
        return _env("MAX_OUTPUT_BYTES", 2_000_000)

    @default("network")
    def _network_default(self) -> bool:
        return _env("NETWORK", False, bool)

    @default("require_proofs")
    def _proofs_default(self) -> bool:
        return _env("REQUIRE_PROOFS", True, bool)

    # ---- the notebook ------------------------------------------------------------------------------
    def preprocess(self, nb: NotebookNode, resources: dict | None = None, km=None):
        resources = resources if resources is not None else {}
        self._key = secrets.token_hex(32)
        self._stopped: str | None = None  # why later cells do not run (the kernel died or was killed)
        self._stopping: str | None = None  # why the kernel is being killed
        self._cell_bytes: dict[int, int] = {}
        self._home = Path(tempfile.mkdtemp(prefix="course-sandbox-"))
        os.chmod(self._home, 0o700)
        cwd = Path(resources.get("metadata", {}).get("path") or os.getcwd()).resolve()
        self._settings_file = self._home / "settings.json"
        try:
            self._write_settings(cwd, resources)
            nb, resources = super().preprocess(nb, resources, km=km)
        finally:
            shutil.rmtree(self._home, ignore_errors=True)
        self._check_proofs(nb)
        return nb, resources

    def _settings(self, cwd: Path, resources: dict) -> dict:
        """What the kernel's launcher (or a forked child, ``warm.py``) needs: its folder, limits and guard."""
        deny = [str(p) for p in _course_folders(cwd, resources)] + list(self.deny_read)
        return {
            "home": str(self._home),
            "mpl_fontlist": _matplotlib_fontlist(),
            "limits": {
                "memory_mb": self.memory_mb or None,
                "file_mb": self.file_mb or None,
                "cpu_s": self.cpu_s or None,
            },
            "guard": {
                "key": self._key,
                "writable": [str(cwd), str(self._home)],
                "deny_read": deny,
                "allow_read": [str(cwd), str(self._home)],
                "network": bool(self.network),
            },
        }

    def _write_settings(self, cwd: Path, resources: dict) -> None:
        settings = self._settings(cwd, resources)
        fd = os.open(self._settings_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(settings, fh)

    def create_kernel_manager(self):
        from jupyter_client.kernelspec import KernelSpec

        km = super().create_kernel_manager()
        if not self._settings_file.exists():  # a second kernel for the same notebook: new settings
            self._write_settings(Path(self.resources.get("metadata", {}).get("path") or os.getcwd()).resolve(),
                                 self.resources)
        python, env = kernel_python_and_env(km)
        km._kernel_spec = KernelSpec(
            argv=[python, "-m", "course_lib.grading.sandbox_launcher", str(self._settings_file),
                  "-f", "{connection_file}"],
            display_name="Python 3 (course grading sandbox)",
            language="python",
            env={**env, "PYTHONNOUSERSITE": "1", "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg"),
                 "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")},
        )
        return km

    # ---- cells ---------------------------------------------------------------------------------------
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._stopped:
            cell.outputs = [error_output("NotRun", f"this cell did not run: {self._stopped}")]
            return cell
        self._cell_bytes[cell_index] = 0
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except (DeadKernelError, _KernelStopped, asyncio.CancelledError) as err:
            why = self._stopping or (
                "the kernel died while running this cell (sys.exit, os._exit, a crash, or the memory limit)")
            self._stopped = f"the kernel was stopped in an earlier cell ({why})"
            self.log.error("Kernel stopped at cell %d: %s (%s)", cell_index, why, type(err).__name__)
            cell.outputs = list(cell.get("outputs", [])) + [error_output("KernelStopped", why)]
            return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds the coroutine, not the method

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        self._current_msg_id = msg_id
        return await super()._async_poll_for_reply(msg_id, cell, timeout, task_poll_output_msg,
                                                   task_poll_kernel_alive)

    async def _async_handle_timeout(self, timeout, cell=None):
        self.log.error("Timeout waiting for execute reply (%is): interrupting the kernel", timeout)
        await ensure_async(self.km.interrupt_kernel())
        deadline = time.monotonic() + max(0.0, float(self.kill_grace_s))
        msg_id = getattr(self, "_current_msg_id", None)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Exception:  # noqa: BLE001 - queue.Empty: no answer yet
                break
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return {"content": {**self.error_on_timeout, "status": "error"}}
        self._stopping = (f"the cell ran past the {timeout} s time limit and did not stop when interrupted, "
                          "so the kernel was killed")
        self.log.error("The kernel did not answer the interrupt within %.1f s: killing it", self.kill_grace_s)
        try:
            await ensure_async(self.km.shutdown_kernel(now=True))
        except Exception:  # noqa: BLE001
            pass
        raise _KernelStopped(self._stopping)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "") or "") + sum(len(str(v)) for v in (content.get("data") or {}).values())
        used = self._cell_bytes.get(cell_index, 0)
        self._cell_bytes[cell_index] = used + size
        limit = max(1, int(self.max_output_bytes))
        if used + size <= limit:
            return super().output(outs, msg, display_id, cell_index)
        if msg.get("msg_type") == "error":
            return super().output(outs, msg, display_id, cell_index)
        kept = clipped_text(msg.get("msg_type"), content.get("text", "") or "", used, limit)
        if not kept:
            return None
        clipped = {**msg, "msg_type": "stream",
                   "content": {"name": content.get("name", "stdout"), "text": kept}}
        return super().output(outs, clipped, display_id, cell_index)

    # ---- proofs ---------------------------------------------------------------------------------------
    def _check_proofs(self, nb: NotebookNode) -> None:
        key = bytes.fromhex(self._key)
        last = 0
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            proofs: list[tuple[int, str]] = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    text = output.get("text", "")
                    proofs += [(int(n), sig) for n, sig in _PROOF.findall(text)]
                    output["text"] = _PROOF.sub("", text)
            meta = cell.metadata.get("nbgrader", {})
            if not (meta.get("grade") and not meta.get("solution")):
                continue
            missing: list[str] = []
            if self.require_proofs:
                accepted: list[str] = []
                for wanted in expected_checks(cell.source):
                    for number, signature in proofs:
                        if number <= last:
                            continue
                        name = next((n for n in sorted(wanted) if hmac.compare_digest(
                            signature, hmac.new(key, proof_message(number, n), "sha256").hexdigest()[:32])), None)
                        if name is not None:
                            accepted.append(name)
                            break
                    else:
                        missing.append(" or ".join(sorted(wanted)))
                valid = [n for n, s in proofs if n > last]
                if valid:
                    last = max(valid)
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            if missing and not errors:
                cell.outputs.insert(0, error_output(
                    ERROR_NAME, f"the check{'s' if len(missing) > 1 else ''} {', '.join(missing)} did not report a "
                                "verified pass (the cell was changed, did not run, or its output was forged)"))
            elif errors and cell.outputs[0] is not errors[0]:
                cell.outputs.remove(errors[0])
                cell.outputs.insert(0, errors[0])


def kernel_python_and_env(km) -> tuple[str, dict]:
    """The Python and the environment of the kernelspec nbgrader would start (the notebook's, or --kernel's).

    The sandbox starts that Python through its launcher, with the spec's environment variables. A spec
    that is not an ipykernel of some Python (another language, a wrapper script) cannot be sandboxed: it
    gets this process's Python, as does a missing spec.
    """
    try:
        spec = km.kernel_spec
    except Exception:  # noqa: BLE001 - no such kernelspec: nbgrader's default kernel
        return sys.executable, {}
    if spec is None:
        return sys.executable, {}
    env = {str(k): str(v) for k, v in (spec.env or {}).items()}
    argv = list(spec.argv or [])
    python = sys.executable
    if spec.language == "python" and len(argv) >= 3 and argv[1] == "-m" and argv[2].startswith("ipykernel"):
        # a bare "python" would be whichever comes first on PATH, maybe one without course_lib: ours then
        if os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK):
            python = argv[0]
    return python, env


def error_output(name: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=message,
                        traceback=[f"\x1b[0;31m{name}\x1b[0m: {message}"])


def _course_folders(cwd: Path, resources: dict) -> list[Path]:
    """Folders a grading kernel may not read: the course (gradebook, source, other students), the repository."""
    found: list[Path] = []
    parts = cwd.parts
    for step in ("autograded", "submitted"):
        if step in parts:
            index = len(parts) - 1 - parts[::-1].index(step)
            found.append(Path(*parts[:index]))
            break
    db_url = str(resources.get("nbgrader", {}).get("db_url", ""))
    if db_url.startswith("sqlite:///"):
        found.append(Path(db_url[len("sqlite:///"):]).resolve().parent)
    if (_REPO / "course_lib").is_dir() and (_REPO / "pyproject.toml").is_file():
        found.append(_REPO)
    return [p for p in dict.fromkeys(found) if cwd != p]


def _matplotlib_fontlist() -> str | None:
    try:
        import matplotlib

        folder = Path(matplotlib.get_cachedir())
    except Exception:  # noqa: BLE001 - no matplotlib: nothing to copy
        return None
    found = sorted(folder.glob("fontlist-v*.json"))
    return str(found[-1]) if found else None


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
class SafeFeedback(Preprocessor):
    """nbgrader's ``generate_feedback`` made safe to hand out (formgrader's "Generate Feedback" button, the
    ``nbgrader generate_feedback`` command, the course's own pages): before the page is rendered, the
    autograded notebook goes through :func:`course_lib.grading.feedback.hide_hidden_tests`,
    ``short_errors`` and ``drop_proofs``; then every line of the chapter's hidden tests (read from the
    gradebook, which holds the instructor's test cells) is looked for in what is left, and a page that
    would still show one is refused: nbgrader reports the error and writes no page for that student.
    """

    # nbconvert runs a registered preprocessor only when it is enabled, and nbgrader registers the
    # classes of GenerateFeedback.preprocessors as they are: on by default (as nbgrader's own are)
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        from course_lib.grading import feedback

        feedback.hide_hidden_tests(nb)
        feedback.short_errors(nb)
        feedback.drop_proofs(nb)
        already = bool(nb.cells) and feedback.PENDING_NOTE in str(nb.cells[0].get("source", ""))
        pending = {} if already else _pending(resources)
        if pending:  # written answers not graded by hand yet: said on the page, as the batch grader's pages do
            feedback.mark_pending(nb, pending)
        leaked = feedback.leaked_lines(nb, _hidden_test_lines(resources))
        if leaked:
            raise ValueError(f"the feedback page would show {len(leaked)} line(s) of the hidden tests "
                             f"(first: {leaked[0]!r}); no page was written")
        return nb, resources


def _hidden_test_lines(resources: dict) -> list[str]:
    """The lines of the hidden tests of the notebook being rendered, from the gradebook's source cells."""
    from nbformat.v4 import new_code_cell, new_notebook
    from nbgrader.api import Gradebook, MissingEntry

    from course_lib.grading.common import hidden_lines

    info = resources.get("nbgrader", {})
    if not info.get("db_url"):
        return []
    try:
        with Gradebook(info["db_url"]) as gb:
            cells = gb.find_notebook(info["notebook"], info["assignment"]).source_cells
            sources = [cell.source or "" for cell in cells]
    except MissingEntry:
        return []
    source = new_notebook(cells=[new_code_cell(text) for text in sources])
    public = new_notebook(cells=[new_code_cell(_without_hidden(text)) for text in sources])
    return hidden_lines(source, public)


def _pending(resources: dict) -> dict[str, float]:
    """grade_id -> points of the student's written answers still waiting to be graded by hand."""
    from nbgrader.api import Gradebook, MissingEntry

    from course_lib.tools.notebooks import grades_of

    info = resources.get("nbgrader", {})
    if not (info.get("db_url") and info.get("student")):
        return {}
    try:
        with Gradebook(info["db_url"]) as gb:
            return grades_of(gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"]))["pending"]
    except MissingEntry:
        return {}


def _without_hidden(text: str) -> str:
    from course_lib.grading.common import BEGIN_HIDDEN, END_HIDDEN

    kept, inside = [], False
    for line in text.split("\n"):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def safe_feedback(config):
    """Make nbgrader's ``generate_feedback`` in ``config`` render the course's safe pages (:class:`SafeFeedback`,
    after nbgrader's GetGrades); return ``config``. :func:`harden` calls it, whatever COURSE_SANDBOX says."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    config.GenerateFeedback.preprocessors = [GetGrades, SafeFeedback, CSSHTMLHeaderPreprocessor]
    return config


def has_safe_feedback(config) -> bool:
    """Does nbgrader's ``generate_feedback`` in ``config`` render the course's safe pages?"""
    try:
        chain = list(config.GenerateFeedback.preprocessors)
    except Exception:  # noqa: BLE001 - a config without the key
        return False
    return any(p is SafeFeedback or getattr(p, "__name__", "") == "SafeFeedback" for p in chain)


def harden(config, **settings: Any):
    """Make nbgrader's autograde in ``config`` run in the sandbox, and its generate_feedback render the
    course's safe pages (:func:`safe_feedback`); return ``config``.

    ``settings`` set traits of :class:`SandboxExecute` (``memory_mb``, ``kill_grace_s``, ...). The
    environment variable ``COURSE_SANDBOX=off`` leaves autograde as nbgrader has it (to compare with plain
    nbgrader, or to find out whether the sandbox is what stops a notebook); the feedback pages stay safe.
    """
    safe_feedback(config)
    if os.environ.get("COURSE_SANDBOX", "").strip().lower() in {"off", "0", "no", "false"}:
        return config
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, IgnorePattern,
                                        LimitOutput, OverwriteKernelspec, SaveAutoGrades)

    config.Autograde.sanitize_preprocessors = [
        ClearOutput, SandboxDeduplicateIds, OverwriteKernelspec, SandboxOverwriteCells, CheckCellMetadata,
    ]
    config.Autograde.autograde_preprocessors = [
        SandboxExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata,
    ]
    for name, value in settings.items():
        if not SandboxExecute.class_traits().get(name) or not SandboxExecute.class_traits()[name].metadata.get("config"):
            raise TypeError(f"unknown sandbox setting {name!r}; expected one of "
                            f"{sorted(k for k, t in SandboxExecute.class_traits().items() if t.metadata.get('config'))}")
        setattr(config.SandboxExecute, name, value)
    return config


def is_hardened(config) -> bool:
    """Does ``config`` autograde in the sandbox?"""
    try:
        chain = list(config.Autograde.autograde_preprocessors)
    except Exception:  # noqa: BLE001 - a config without the key
        return False
    return any(p is SandboxExecute or getattr(p, "__name__", "") == "SandboxExecute" for p in chain)

