"""The worker's side of a warm grading kernel: nbgrader's Execute step with the notebook run in a child
forked from this worker's warm template (:mod:`course_lib.grading.warm`), under the sandbox's rules.

It lives apart from ``warm.py`` so that the template process, which imports ``warm.py``, never imports
nbgrader, nbclient or nbformat: the template only forks, and a lighter template is ready sooner.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from nbformat import NotebookNode

from course_lib.grading.sandbox import SandboxExecute, error_output, kernel_python_and_env
from course_lib.grading.warm import VOLATILE_ENV, Child, ChildGone, template_for

__all__ = ["ForkExecute", "StudentTimeout", "cell_key"]


def cell_key(cell: NotebookNode, index: int) -> str:
    """What names a cell in the reference's cell times and a submission alike: its nbgrader grade_id, else
    its cell id (kept from the release by JupyterLab), else its position."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return str(grade_id or cell.get("id") or f"#{index}")


class StudentTimeout(RuntimeError):
    """The whole submission ran past the batch's limit for one student."""


class ForkExecute(SandboxExecute):
    """:class:`SandboxExecute` with the notebook run in a child forked from a warm template.

    Same traits, same rules, same outputs (see the module's docstring). A kernelspec whose Python is not
    this process's, or whose environment would change how Python starts (``PYTHON*``, ``LD_*``), cannot
    be forked from the template: such notebooks run in a fresh sandboxed kernel as before.
    """

    #: a time.monotonic() past which the submission is stopped (set by the batch around one autograde)
    deadline: float | None = None
    #: set when the last notebook was stopped at ``deadline``
    timed_out = False
    #: where the template process logs (set by the batch)
    template_log: Path | None = None
    #: when a dict (set by the batch): seconds of the child's start ("fork") and of its cells ("cells")
    timing: dict | None = None
    #: when a dict (set by the batch): seconds each cell may run, by :func:`cell_key` (the budgets derived
    #: from the reference solution's own cell times); a cell not in it gets ``budget_default``. None: the
    #: configured ``timeout`` for every cell
    budgets: dict | None = None
    budget_default: float | None = None
    #: when a dict (set by the reference run): cell_key -> seconds the cell ran
    cell_times: dict | None = None

    def preprocess(self, nb: NotebookNode, resources: dict | None = None, km=None):
        resources = resources if resources is not None else {}
        python, spec_env = self._spec(nb)
        if python != sys.executable or any(k.startswith(("PYTHON", "LD_")) for k in spec_env):
            return super().preprocess(nb, resources, km=km)
        ForkExecute.timed_out = False
        self._key = secrets.token_hex(32)
        self._stopped = None
        self._stopping = None
        self._cell_bytes = {}
        self._clear_next = False
        self._home = Path(tempfile.mkdtemp(prefix="course-sandbox-"))
        os.chmod(self._home, 0o700)
        cwd = Path(resources.get("metadata", {}).get("path") or os.getcwd()).resolve()
        child = None
        try:
            settings = self._settings(cwd, resources)
            volatile = {k: os.environ[k] for k in VOLATILE_ENV if k in os.environ}
            settings.update(cwd=str(cwd), env={**volatile, **spec_env})
            began = time.perf_counter()
            child = template_for(self.template_log).spawn()
            self._start(child, settings)
            ready = time.perf_counter()
            count = 0
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                count += 1
                self._run_cell(child, cell, index, count)
            if isinstance(ForkExecute.timing, dict):
                ForkExecute.timing.update(fork=ready - began, cells=time.perf_counter() - ready)
        finally:
            if child is not None:
                child.kill()
            shutil.rmtree(self._home, ignore_errors=True)
        self._check_proofs(nb)
        nb.metadata.setdefault("language_info", {"name": "python"})
        return nb, resources

    def _spec(self, nb: NotebookNode) -> tuple[str, dict]:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        name = self.kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"

        class _Spec:
            def __init__(self, spec):
                self.kernel_spec = spec

        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            spec = None
        return kernel_python_and_env(_Spec(spec))

    def _limit(self, deadline: float | None) -> float | None:
        student = ForkExecute.deadline
        if student is None:
            return deadline
        return student if deadline is None else min(deadline, student)

    def _start(self, child: Child, settings: dict) -> None:
        child.send(settings)
        deadline = time.monotonic() + max(30.0, float(self.startup_timeout or 60))
        try:
            reply = child.recv(self._limit(deadline))
        except TimeoutError:
            self._past_deadline(child)
            raise RuntimeError("the grading child did not start in time") from None
        except ChildGone as err:
            raise RuntimeError(f"the grading child died while starting ({err})") from None
        if not reply.get("ready"):
            raise RuntimeError("the grading child did not start")

    def _past_deadline(self, child: Child) -> None:
        if ForkExecute.deadline is not None and time.monotonic() >= ForkExecute.deadline:
            child.kill()
            ForkExecute.timed_out = True
            raise StudentTimeout("the submission ran past its time limit")

    def _run_cell(self, child: Child, cell: NotebookNode, index: int, count: int) -> None:
        if self._stopped:
            cell.outputs = [error_output("NotRun", f"this cell did not run: {self._stopped}")]
            return
        cell.outputs = []
        self._cell_bytes[index] = 0
        self._clear_next = False
        timeout = self.timeout if self.timeout and self.timeout > 0 else None
        if isinstance(ForkExecute.budgets, dict):
            budget = ForkExecute.budgets.get(cell_key(cell, index), ForkExecute.budget_default)
            if budget:
                timeout = budget if timeout is None else min(timeout, budget)
        deadline = None if timeout is None else time.monotonic() + timeout
        interrupted = False
        began = time.monotonic()
        try:
            child.send({"run": cell.source})
            while True:
                try:
                    message = child.recv(self._limit(deadline))
                except TimeoutError:
                    self._past_deadline(child)
                    if not interrupted:
                        self.log.error("Timeout waiting for execute reply (%.0fs): interrupting the kernel", timeout)
                        child.signal(signal.SIGINT)
                        interrupted = True
                        deadline = time.monotonic() + max(0.0, float(self.kill_grace_s))
                        continue
                    self._stopping = (f"the cell ran past the {timeout:.0f} s time limit and did not stop when "
                                      "interrupted, so the kernel was killed")
                    self.log.error("The kernel did not answer the interrupt within %.1f s: killing it",
                                   self.kill_grace_s)
                    child.kill()
                    raise ChildGone(self._stopping)
                if message.get("done"):
                    self.log.info("cell %d ran in %.2f s", index, time.monotonic() - began)
                    if isinstance(ForkExecute.cell_times, dict):
                        ForkExecute.cell_times[cell_key(cell, index)] = time.monotonic() - began
                    number = message.get("execution_count")
                    cell.execution_count = number if isinstance(number, int) else count
                    for output in cell.outputs:
                        if output.get("output_type") == "execute_result":
                            output["execution_count"] = cell.execution_count
                    if interrupted:  # as nbgrader's Execute: the timeout's error after the interrupt's
                        cell.outputs.append(NotebookNode(output_type="error", **self.error_on_timeout))
                    return
                self._output(cell, index, message)
        except ChildGone as err:
            why = self._stopping or (
                "the kernel died while running this cell (sys.exit, os._exit, a crash, or the memory limit)")
            self._stopped = f"the kernel was stopped in an earlier cell ({why})"
            self.log.error("Kernel stopped at cell %d: %s (%s)", index, why, err)
            cell.outputs = list(cell.get("outputs", [])) + [error_output("KernelStopped", why)]

    def _output(self, cell: NotebookNode, index: int, message: dict) -> None:
        from nbformat.v4 import output_from_msg

        msg_type = message.get("msg_type")
        content = message.get("content")
        if not isinstance(msg_type, str) or not isinstance(content, dict):
            raise ChildGone("a message that is not an output")
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_next = True
            else:
                cell.outputs = []
            return
        if msg_type not in {"stream", "display_data", "execute_result", "error"}:
            return  # update_display_data: outputs are kept as first shown
        msg = {"msg_type": msg_type, "content": content, "header": {"msg_type": msg_type}, "parent_header": {}}
        capped = self._cap(msg, index)
        if capped is None:
            return
        try:
            out = output_from_msg(capped)
        except (ValueError, KeyError, TypeError):
            raise ChildGone(f"an output that nbformat cannot read ({msg_type})") from None
        if self._clear_next:
            cell.outputs = []
            self._clear_next = False
        cell.outputs.append(out)

    def _cap(self, msg: dict, index: int) -> dict | None:
        """SandboxExecute.output's cap: the message to keep (perhaps cut), or None."""
        from course_lib.grading.sandbox import clipped_text

        content = msg["content"]
        text = content.get("text", "") if msg["msg_type"] == "stream" else ""
        if not isinstance(text, str):
            text = str(text)
        size = len(text) + sum(len(str(v)) for v in (content.get("data") or {}).values())
        used = self._cell_bytes.get(index, 0)
        self._cell_bytes[index] = used + size
        limit = max(1, int(self.max_output_bytes))
        if used + size <= limit or msg["msg_type"] == "error":
            return msg
        kept = clipped_text(msg["msg_type"], text, used, limit)
        if not kept:
            return None
        name = content.get("name", "stdout") if content.get("name") in ("stdout", "stderr") else "stdout"
        return {**msg, "msg_type": "stream", "header": {"msg_type": "stream"},
                "content": {"name": name, "text": kept}}
