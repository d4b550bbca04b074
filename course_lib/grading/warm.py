"""Warm grading kernels: one template process per grading worker, one forked child per submission.

Starting a kernel for every notebook costs a new Python, ``import torch``, the checks, IPython and the
sandbox set-up (seconds) before the first cell runs. Here a *template* process does all the imports once;
for every submission it forks a child, and only the child ever sees that submission:

    grading worker ──control socket──▶ template (imports done, never runs student code, never sees it)
          │                                 │ fork()
          └──────── the child's own socket ─┴──▶ child: sandbox limits + guard, then the notebook's cells

1. The worker makes a socket pair and hands one end to the template (``SCM_RIGHTS``); the template forks
   and answers with the child's pid. The template never reads a submission: it only forks.
2. The child closes every descriptor but that socket, starts a session of its own, asks the kernel to
   kill it when the template goes, and reads its settings from the worker (its private folder, the
   guard's settings with this notebook's proof key, the process limits). Then, as
   ``sandbox_launcher`` does for a kernel: private HOME/TMPDIR/..., ``sandbox_guard.install``, an
   IPython shell whose outputs are sent to the worker instead of printed, the process limits, ``arm()``.
3. The worker sends one cell at a time and gets back the cell's outputs (stream, display data,
   execute result, error) in Jupyter's message shapes, so that nbformat builds the same outputs
   nbclient would; then ``done``. C-level writes to the descriptors 1 and 2 are collected too.
4. :class:`~course_lib.grading.fork_execute.ForkExecute` (the worker's side, an nbgrader preprocessor
   in place of the kernel-based :class:`~course_lib.grading.sandbox.SandboxExecute`, in a module of
   its own so that the template never imports nbgrader) keeps the sandbox's rules: the cell timeout
   (SIGINT, then SIGKILL after ``kill_grace_s``), later cells "did not run" after a death or a kill,
   the output cap while outputs arrive, and the signed proofs. Everything around it (cell repair,
   IgnorePattern, SaveAutoGrades, ...) is nbgrader's autograde pipeline, unchanged.

What a child inherits from the template is the template's memory: imported modules and nothing else
(no submission was ever in it). What a student changes in the child (a patched module, a replaced
builtin) dies with the child. The child has no descriptor of the template's, of the worker's log or of
any other student; the socket to the worker carries frames that the worker parses as JSON with a size
limit (never pickle), so a student who writes to it can only spoil their own outputs, and proofs
cannot be forged without the key, which lives in the guard.

Run as ``python -m course_lib.grading.warm FD``: the template process on the control socket ``FD``.
"""
from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["Template", "template_for", "close_templates"]

_HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 2**20  # one message from a child; a larger one means the child is spoiling its socket
STREAM_CHUNK = 1 << 16  # the child sends stream output in pieces of about this size


# --------------------------------------------------------------------------------------------
# frames: a 4-byte length, then JSON
# --------------------------------------------------------------------------------------------
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send_frame(fd: int, message: dict) -> None:
    data = json.dumps(message, separators=(",", ":")).encode("utf-8", "surrogatepass")
    _write_all(fd, _HEADER.pack(len(data)) + data)


class ChildGone(Exception):
    """The child closed its socket (it died) or sent something that is not a frame."""


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChildGone("the child closed its socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(fd: int, deadline: float | None = None) -> dict:
    """The next message; TimeoutError past ``deadline`` (time.monotonic) before a frame begins."""
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_FRAME:
        raise ChildGone(f"a message of {size} bytes, above the {MAX_FRAME} limit")
    body = _read_exact(fd, size, None if deadline is None else max(deadline, time.monotonic() + 30))
    try:
        message = json.loads(body.decode("utf-8", "surrogatepass"))
    except ValueError as err:
        raise ChildGone(f"a message that is not JSON ({err})") from None
    if not isinstance(message, dict):
        raise ChildGone("a message that is not a JSON object")
    return message


# --------------------------------------------------------------------------------------------
# the template process
# --------------------------------------------------------------------------------------------
def preload() -> list[str]:
    """Import what every grading kernel imports (torch, numpy, matplotlib with Agg, IPython, the checks and
    the reference solutions) and use torch's lazily loaded parts once. Returns the import errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401

    from course_lib.grading import sandbox_guard

    failed = sandbox_guard.preload()
    failed += _preload_course_helpers()
    failed += _fill_data_caches()
    return failed


#: What the chapters' figure and demo cells import besides torch and the checks (modules only: no data is
#: computed here). Not scikit-learn: the course reads its digits and photos from scikit-learn's files
#: without importing it (``course_lib.data.sklearn_data_file``), which saves the template about 1.6 s.
HELPER_MODULES = ("PIL.Image", "course_lib.data", "course_lib.capstone",
                  "course_lib.figures.capstone", "course_lib.learned", "course_lib.figures")


def _preload_course_helpers() -> list[str]:
    import importlib
    import pkgutil

    failed = []
    for name in HELPER_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing optional library: the notebook imports it itself
            failed.append(f"{name}: {type(err).__name__}: {err}")
            continue
        if name == "course_lib.figures":  # every chapter's figure module
            for info in pkgutil.iter_modules(module.__path__, name + "."):
                try:
                    importlib.import_module(info.name)
                except Exception as err:  # noqa: BLE001
                    failed.append(f"{info.name}: {type(err).__name__}: {err}")
    return failed


def _fill_data_caches() -> list[str]:
    """Fill the course's read-only data caches (constants only: scikit-learn's 8x8 digits, their upscaled
    copies and fragment windows, the trained networks' test split, the two sample photos), which the demo cells
    otherwise fill in every child. The caches hold course data computed from fixed seeds and files, never
    anything of a submission; a child that changes them changes its own copy (fork is copy-on-write)."""
    failed = []
    try:
        from course_lib import learned
        from course_lib.figures import common

        learned.test_split()  # draws the test split once; every child gets its own copy of it
        for photo in ("china.jpg", "flower.jpg"):
            common.photo(photo)
    except Exception as err:  # noqa: BLE001 - the notebook fills them itself then
        failed.append(f"data caches: {type(err).__name__}: {err}")
    return failed


def _template_main(control_fd: int) -> int:
    os.environ.pop("COURSE_GRADING_TEMPLATE_TOKEN", None)
    failed = preload()
    for problem in failed:
        print(f"grading template: could not load {problem}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; the worker watches them
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which stops the children itself
    control = socket.socket(fileno=control_fd)
    from course_lib.grading.check_index import check_index_data

    try:
        index = check_index_data()
    except Exception as err:  # noqa: BLE001 - the worker builds the index itself then
        print(f"grading template: no check index ({type(err).__name__}: {err})", file=sys.stderr, flush=True)
        index = None
    control.sendall(b"ready\n")
    send_frame(control.fileno(), {"check_index": index})
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            return 0
        if not fds:
            return 0  # the worker is gone
        conn = fds[0]
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 70
            try:
                control.close()
                _child_main(conn)
                code = 0
            except BaseException:  # noqa: BLE001 - the worker sees the socket close
                code = 71
            finally:
                os._exit(code)
        os.close(conn)
        control.sendall(struct.pack(">q", pid))


# --------------------------------------------------------------------------------------------
# the child: one submission
# --------------------------------------------------------------------------------------------
def _close_other_fds(keep: int) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the worker still kills its children
        pass


def _clean(data: dict) -> dict:
    """Display data as JSON wants it: bytes (PNG, ...) in base64, as ipykernel sends them."""
    out = {}
    for key, value in (data or {}).items():
        if isinstance(value, (bytes, bytearray)):
            value = base64.b64encode(value).decode("ascii")
        out[str(key)] = value
    return out


def _child_main(fd: int) -> None:  # noqa: C901 - one function: its state stays in its frame
    _close_other_fds(fd)
    os.setsid()
    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # everything the loop uses, captured before any student code runs
    _send, _recv, _dumps = send_frame, recv_frame, json.dumps
    _signal, _int_handler, _ign, _SIGINT = signal.signal, signal.default_int_handler, signal.SIG_IGN, signal.SIGINT
    _os_exit, _os_read, _str = os._exit, os.read, str

    settings = _recv(fd)
    from course_lib.grading.sandbox_launcher import apply_limits, private_environment

    home = Path(settings["home"])
    os.chdir(settings["cwd"])
    for key, value in settings.get("env", {}).items():
        os.environ[str(key)] = str(value)
    sys.dont_write_bytecode = True
    private_environment(home, settings.get("mpl_fontlist"))
    for variable in [v for v in os.environ if v.startswith("COURSE_SANDBOX") or v.startswith("COURSE_GRADING")]:
        del os.environ[variable]
    limits = dict(settings.get("limits", {}))

    from course_lib.grading import sandbox_guard

    arm = sandbox_guard.install(settings["guard"])
    settings.clear()
    del settings

    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    pending: list = []  # stream text not sent yet: [name, text]

    def flush_streams() -> None:
        while pending:
            name, text = pending.pop(0)
            _send(fd, {"msg_type": "stream", "content": {"name": name, "text": text}})

    def emit(msg_type: str, content: dict) -> None:
        flush_streams()
        _send(fd, {"msg_type": msg_type, "content": content})

    class Stream:
        """sys.stdout / sys.stderr of the child: text goes to the worker as stream outputs."""

        encoding, errors, closed = "utf-8", "strict", False

        def __init__(self, name: str, fileno: int):
            self.name, self._fileno = name, fileno

        def write(self, text) -> int:
            if not isinstance(text, _str):
                raise TypeError(f"write() argument must be str, not {type(text).__name__}")
            if pending and pending[-1][0] == self.name and len(pending[-1][1]) < STREAM_CHUNK:
                pending[-1][1] += text
            else:
                pending.append([self.name, text])
            if len(pending) > 1 or len(pending[-1][1]) >= STREAM_CHUNK:
                flush_streams()
            return len(text)

        def writelines(self, lines) -> None:
            for line in lines:
                self.write(line)

        def flush(self) -> None:
            flush_streams()

        def isatty(self) -> bool:
            return False

        def writable(self) -> bool:
            return True

        def readable(self) -> bool:
            return False

        def fileno(self) -> int:
            return self._fileno

    class Hook(DisplayHook):
        def start_displayhook(self):
            self._content = {"data": {}, "metadata": {}}

        def write_output_prompt(self):
            self._content["execution_count"] = self.prompt_count

        def write_format_data(self, format_dict, md_dict=None):
            self._content["data"] = _clean(format_dict)
            self._content["metadata"] = md_dict or {}

        def finish_displayhook(self):
            content, self._content = self._content, None
            if content and content["data"]:
                emit("execute_result", content)

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            emit("update_display_data" if update else "display_data",
                 {"data": _clean(data), "metadata": metadata or {}, "transient": transient or {}})

        def clear_output(self, wait=False):
            emit("clear_output", {"wait": bool(wait)})

    class Shell(InteractiveShell):
        displayhook_class = Hook
        display_pub_class = Publisher

        def _showtraceback(self, etype, evalue, stb):
            emit("error", {"ename": _str(etype.__name__), "evalue": _str(evalue), "traceback": list(stb)})

        def enable_gui(self, gui=None):
            pass

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    shell = Shell.instance(config=config)

    # C-level writes to the descriptors 1 and 2 land in files of the private folder, read after each cell
    captured = []
    for number, name in ((1, "stdout"), (2, "stderr")):
        path = home / f"fd{number}.txt"
        writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.dup2(writer, number)
        os.close(writer)
        captured.append((name, os.open(path, os.O_RDONLY)))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout, sys.stderr = Stream("stdout", 1), Stream("stderr", 2)

    def drain_fds() -> None:
        for name, reader in captured:
            while True:
                chunk = _os_read(reader, STREAM_CHUNK)
                if not chunk:
                    break
                pending.append([name, chunk.decode("utf-8", "replace")])
        flush_streams()

    apply_limits(limits)
    arm()
    del arm
    _send(fd, {"ready": True})

    while True:
        request = _recv(fd)
        source = request.get("run")
        if not isinstance(source, _str):
            _os_exit(0)
        status = "ok"
        try:
            _signal(_SIGINT, _int_handler)
            try:
                result = shell.run_cell(source, store_history=True)
                if not result.success:
                    status = "error"
            finally:
                _signal(_SIGINT, _ign)
        except KeyboardInterrupt:
            status = "error"
            emit("error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": ["KeyboardInterrupt"]})
        while True:  # an interrupt that arrives late must not lose the reply
            try:
                drain_fds()
                _send(fd, {"done": True, "status": status, "execution_count": shell.execution_count - 1})
                break
            except KeyboardInterrupt:
                continue
        if shell.exit_now:  # exit() in a cell ends the kernel, as in ipykernel
            _os_exit(0)


# --------------------------------------------------------------------------------------------
# the worker's side: templates and children
# --------------------------------------------------------------------------------------------
class Template:
    """A template process: imports done, forks a child per :meth:`spawn`."""

    def __init__(self, env: dict[str, str], log: Path | None = None, python: str = sys.executable,
                 wait: bool = True):
        """Start the template; ``wait=False`` returns at once (its imports run meanwhile) and the first
        :meth:`ready` or :meth:`spawn` waits for it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ready = False
        self._lock = threading.Lock()
        sink = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "course_lib.grading.warm", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                start_new_session=True, close_fds=True)
        finally:
            theirs.close()
            if log:
                sink.close()
        self.sock = ours
        self.sock.settimeout(300)
        if wait:
            self.ready()

    def ready(self) -> "Template":
        """Wait until the template has done its imports (once); raise RuntimeError if it did not start."""
        with self._lock:
            if not self._ready:
                self._handshake()
                self._ready = True
        return self

    def _handshake(self) -> None:
        try:
            ready = _read_exact(self.sock.fileno(), 6, time.monotonic() + 300)
            hello = recv_frame(self.sock.fileno(), time.monotonic() + 60)
        except (OSError, ChildGone, struct.error) as err:
            self.close()
            raise RuntimeError(f"the grading template did not start: {err or type(err).__name__} "
                               f"(exit code {self.proc.poll()})") from None
        if ready != b"ready\n":
            self.close()
            raise RuntimeError(f"the grading template did not start (exit code {self.proc.poll()})")
        if isinstance(hello.get("check_index"), dict):  # the worker need not import the checks itself
            from course_lib.grading.check_index import use_check_index

            use_check_index(hello["check_index"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self) -> "Child":
        self.ready()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                socket.send_fds(self.sock, [b"f"], [theirs.fileno()])
                data = b""
                while len(data) < 8:
                    chunk = self.sock.recv(8 - len(data))
                    if not chunk:
                        raise RuntimeError("the grading template died")
                    data += chunk
        finally:
            theirs.close()
        (pid,) = struct.unpack(">q", data)
        return Child(pid, ours)

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Child:
    def __init__(self, pid: int, sock: socket.socket):
        self.pid, self.sock = pid, sock
        self.fd = sock.fileno()

    def send(self, message: dict) -> None:
        try:
            send_frame(self.fd, message)
        except OSError as err:
            raise ChildGone(f"could not write to the child ({err})") from None

    def recv(self, deadline: float | None) -> dict:
        try:
            return recv_frame(self.fd, deadline)
        except TimeoutError:  # an OSError too: the caller's business, not a dead child
            raise
        except (OSError, struct.error) as err:
            raise ChildGone(str(err)) from None

    def signal(self, number: int) -> None:
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the child leads its own session
        except (ProcessLookupError, PermissionError):
            self.signal(signal.SIGKILL)
        self.sock.close()


_TEMPLATES: dict[tuple, Template] = {}
_TEMPLATES_LOCK = threading.Lock()


#: set by nbgrader around one notebook: passed to each child instead of starting a template per value
VOLATILE_ENV = ("NBGRADER_EXECUTION",)


def _template_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in VOLATILE_ENV}
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env["PYTHONNOUSERSITE"] = "1"
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def template_for(log: Path | None = None, wait: bool = True) -> Template:
    """This process's template for its present environment (started on first use, restarted if it died).
    ``wait=False``: return as soon as it is started (its imports go on while the caller does its own)."""
    env = _template_env()
    key = tuple(sorted(env.items()))
    with _TEMPLATES_LOCK:
        found = _TEMPLATES.get(key)
        if found is None or not found.alive():
            found = _TEMPLATES[key] = Template(env, log, wait=False)
    if wait:
        try:
            found.ready()
        except RuntimeError:
            with _TEMPLATES_LOCK:
                if _TEMPLATES.get(key) is found:
                    del _TEMPLATES[key]
            raise
    return found


def close_templates() -> None:
    with _TEMPLATES_LOCK:
        for template in _TEMPLATES.values():
            try:
                template.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        _TEMPLATES.clear()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or not argv[0].isdigit():
        raise SystemExit("usage: python -m course_lib.grading.warm CONTROL_FD (started by the grader)")
    from course_lib.grading.common import lean_imports

    lean_imports()  # before anything imports jsonschema (IPython, matplotlib and the checks may)
    return _template_main(int(argv[0]))


if __name__ == "__main__":
    raise SystemExit(main())
