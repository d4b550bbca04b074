"""The grading kernel's guard: an audit hook armed before any student code runs.

The kernel launcher (``sandbox_launcher.py``) calls :func:`install` before it imports ipykernel, and the
function it returns (``arm``) once the kernel is ready, before the first cell. From then on audit hooks
(``sys.addaudithook``: they cannot be removed) watch the kernel:

- **files**: no reading of the reference solutions, the hidden checks, the course folder (gradebook,
  instructor notebooks, other students) or the repository around ``course_lib``; no writing, deleting,
  renaming or linking outside the student's folder and the kernel's private temporary folder, and no
  SQLite database outside them either.
- **ways out**: no ``ctypes``, no new processes or sockets, no audit hooks, trace or profile functions,
  no ``gc`` object walks, no raising of resource limits, no native extensions from outside the installed
  libraries, no code objects that claim to come from a library file, no loading of the reference
  solutions or of checks once the notebook runs (they are loaded before).
- **the checks** (``checks/toolkit.py`` raises the ``course_lib.check`` audit event when a check starts and
  when it ends): at the start and at the end the guard compares torch, builtins, the checks and their
  helpers with a snapshot taken before the first cell (the identity of every function, class and module
  they hold) and refuses the check when something was replaced ("tampering detected", for the rest of
  the notebook). The student's objects handed to a check must not be, derive from or use the reference
  solution. While the check runs, a trace function watches every call: reference code run for the
  student's code or on the student's objects, and comparison or ``__torch_function__`` overrides
  defined by the student fail the check; so do frame or traceback introspection from the student's code
  (to read the check's expected values) and another thread running the student's code. After a pass the guard signs a proof (an HMAC
  whose key only the guard and the grader hold) that the ``[ok]`` line prints. The grader gives a test
  cell its points only if the cell printed a valid proof for every check it calls (``sandbox.py``): a
  student who makes a test cell do nothing, or prints a fake ``[ok]``, gets no proof and no points.

This is not a security boundary against native code: the guard keeps the doors to it shut (ctypes,
extensions, /proc/self/mem, processes) and the grader adds process limits (memory, file size, time).
docs/grading-security.md says what remains possible.

The guard's state lives in closures that no other object refers to: the audit hook the interpreter
calls (``gate``) keeps nothing but immutable settings and hands every event worth a look to the other
hook (``inner``) through an audit event of its own, so tracebacks of refused operations show nothing but
``gate``'s frame. Neither reads a global at run time (a student may replace module attributes, builtins
included): everything is captured when the guard is installed.
"""
from __future__ import annotations

import sys

#: The reference solutions: every module of this package (``course_lib/reference/``) is protected.
REFERENCE_PACKAGE = "course_lib.reference"
#: The checks (visible and hidden): loaded by the grader before the notebook runs, never by the notebook.
CHECK_PACKAGES = ("course_lib.checks", "course_lib.hidden")
#: The audit event checks/toolkit.py raises around every check.
CHECK_EVENT = "course_lib.check"
#: The audit event of the guard's trace function (a bound ``sys.audit``, which nobody can alter).
TRACE_EVENT = "course_lib.sandbox.trace"
#: The audit event by which the audit hook hands an event to the guard (see ``install``).
INTERNAL_EVENT = "course_lib.sandbox.vet"
#: How a proof looks at the end of an [ok] line: `` [proof <counter>:<signature>]``.
PROOF_PATTERN = r" \[proof (\d+):([0-9a-f]{32})\]"
#: Mistake ids of the guard's CheckFailures.
MISTAKE_TAMPERING = "tampering"
MISTAKE_REFERENCE = "reference_used"

_installed = []


def proof_message(counter: int, name: str) -> bytes:
    """The bytes a proof signs: its number and the check's name."""
    return f"{counter}\x00{name}".encode("utf-8", "surrogatepass")


def preload() -> list:
    """Import torch, the checks (visible and hidden) and the reference solutions, and use torch's lazily
    loaded parts once, so that nothing of the course is imported once the notebook runs. Returns the
    import errors (one chapter's broken module must not stop the others). Cheap when done already: the
    warm template (``warm.py``) calls it once, each forked child again through :func:`install`."""
    import importlib
    import pkgutil

    import torch

    from course_lib.grading.check_index import check_modules

    failed = []
    for name in check_modules():
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001
            failed.append(f"{name}: {type(err).__name__}: {err}")
    try:
        reference = importlib.import_module(REFERENCE_PACKAGE)
    except ImportError:
        reference = None  # the student bundle has no reference solutions
    for info in pkgutil.iter_modules(reference.__path__ if reference else [], REFERENCE_PACKAGE + "."):
        try:
            importlib.import_module(info.name)
        except Exception as err:  # noqa: BLE001
            failed.append(f"{info.name}: {type(err).__name__}: {err}")
    # CUDA reserves its address space on first use: before the memory limit is set, not in the notebook
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
    # torch imports some modules on first use (torch.load's config, ...): use them once now
    import io

    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)
    return failed


def install(settings: dict):  # noqa: C901 - one closure on purpose: its state must be unreachable
    """Install the audit hook (it lets everything through until armed); return ``arm()``.

    ``settings``: ``key`` (hex: the proof key), ``writable`` (folders the kernel may write in),
    ``deny_read`` (folders it may not read: the course, the repository), ``allow_read`` (exceptions
    inside those), ``network`` (False: no sockets).
    """
    if _installed:
        raise RuntimeError("the grading guard is installed already")
    _installed.append(True)

    import _hashlib
    import _thread
    import builtins
    import gc
    import importlib
    import itertools
    import operator
    import os
    import pkgutil
    import posix
    import sysconfig
    import types

    # ---- everything the hook uses, captured now ---------------------------------------------------
    _getframe, _audit, _current_frames = sys._getframe, sys.audit, sys._current_frames
    _settrace, _gettrace = sys.settrace, sys.gettrace
    _addaudithook = sys.addaudithook
    _modules = sys.modules
    _get_ident = _thread.get_ident
    _main_ident = _get_ident()
    _hmac = _hashlib.hmac_digest
    _lstat, _readlink, _getcwd, _getpid = posix.lstat, posix.readlink, posix.getcwd, posix.getpid
    _open = builtins.open
    _type, _len, _id, _set, _frozenset, _tuple, _list, _dict = type, len, id, set, frozenset, tuple, list, dict
    _map, _all, _any, _max, _zip, _str, _bytes, _int = map, all, any, max, zip, str, bytes, int
    enumerate_ = enumerate
    _getattr, _staticmethod, _classmethod = getattr, staticmethod, classmethod
    _OSError, _ValueError, _BaseException, _PermissionError = OSError, ValueError, BaseException, PermissionError
    _Exception, _memoryview = Exception, memoryview
    _is, _repeat = operator.is_, itertools.repeat
    _FunctionType, _MethodType, _CodeType = types.FunctionType, types.MethodType, types.CodeType
    _FrameType, _TracebackType, _ModuleType = types.FrameType, types.TracebackType, types.ModuleType
    _GenTypes = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
    _Type = type
    _type_mro = type.__dict__["__mro__"].__get__
    _type_dict = type.__dict__["__dict__"].__get__
    _type_qualname = type.__dict__["__qualname__"].__get__
    _PLAIN = (int, float, bool, str, bytes, complex, type(None))
    _S_IFMT, _S_IFLNK = 0o170000, 0o120000
    _O_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _REFERENCE_PACKAGE, _CHECK_PACKAGES = REFERENCE_PACKAGE, CHECK_PACKAGES
    _TRACE_EVENT, _CHECK_EVENT, _INTERNAL = TRACE_EVENT, CHECK_EVENT, INTERNAL_EVENT
    _TAMPERING, _REFERENCE = MISTAKE_TAMPERING, MISTAKE_REFERENCE
    _message = proof_message
    MISSING = object()

    key = bytes.fromhex(settings["key"])
    network = bool(settings.get("network", False))

    # ---- paths --------------------------------------------------------------------------------------
    def show(value):
        """A safe description of an event argument (never calls the student's __repr__)."""
        if _type(value) is _str or _type(value) is _bytes or _type(value) is _int:
            return repr_(value)
        return f"<{_type_qualname(_type(value))}>"

    repr_ = repr

    def resolve(path, dir_fd=None):
        """Absolute path with symlinks resolved, from C primitives only (posixpath could be patched)."""
        if _type(path) is _bytes:
            path = path.decode("utf-8", "surrogateescape")
        if _type(path) is not _str:
            return None
        if not path.startswith("/"):
            base = _getcwd()
            if _type(dir_fd) is _int:
                try:
                    base = _readlink(f"/proc/self/fd/{dir_fd}")
                except _OSError:
                    return None
            path = base + "/" + path
        parts = [p for p in path.split("/") if p and p != "."]
        done: list = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join(done + [part])
            try:
                mode = _lstat(candidate).st_mode
            except _OSError:
                done.append(part)
                continue
            if (mode & _S_IFMT) == _S_IFLNK and hops < 40:
                hops += 1
                target = _readlink(candidate)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            done.append(part)
        return "/" + "/".join(done)

    def as_dir(path):
        resolved = resolve(path)
        return None if resolved is None else resolved.rstrip("/") + "/"

    def under(path, roots):
        return (path + "/").startswith(roots)

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    course_lib_dir = as_dir(package_dir)
    guard_files = _frozenset({os.path.abspath(__file__), resolve(os.path.abspath(__file__))})
    raw_package_dir = package_dir.rstrip("/") + "/"
    # the checks (visible and hidden) and the protected folders (reference solutions, hidden checks),
    # each as the resolved and as the raw path
    checks_dirs = _tuple(root + sub for root in (course_lib_dir, raw_package_dir) for sub in ("checks/", "hidden/"))
    protected_dirs = _tuple(root + sub for root in (course_lib_dir, raw_package_dir) for sub in ("reference/", "hidden/"))

    # the reference solutions' source files (their code is traced: a student's call into it is named)
    reference_dir = course_lib_dir + "reference/"
    reference_sources = [f for f in (os.listdir(reference_dir) if os.path.isdir(reference_dir) else ())
                         if f.endswith(".py") and not f.startswith("_")]
    protected_files = _frozenset(root + "reference/" + f for root in (course_lib_dir, raw_package_dir)
                                 for f in reference_sources)

    def is_protected(path):
        return path.startswith(protected_dirs) or path + "/" in protected_dirs

    def is_reference_name(name):
        return name == _REFERENCE_PACKAGE or name.startswith(_REFERENCE_PACKAGE + ".")

    paths = sysconfig.get_paths()
    roots = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            roots.add(as_dir(paths[name]))
            roots.add(paths[name].rstrip("/") + "/")
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry):
            roots.add(as_dir(entry))
            roots.add(entry.rstrip("/") + "/")
    roots.update({course_lib_dir, package_dir.rstrip("/") + "/"})
    lib_prefixes = _tuple(sorted(r for r in roots if r))

    writable = _tuple(d for d in (as_dir(p) for p in settings.get("writable", ())) if d)
    deny_read = _tuple(d for d in (as_dir(p) for p in settings.get("deny_read", ())) if d)
    allow_read = _tuple(d for d in (as_dir(p) for p in settings.get("allow_read", ())) if d) + writable + \
        lib_prefixes
    for folder in writable:
        if folder.startswith(lib_prefixes):
            raise RuntimeError(f"the notebook's folder {folder} lies inside an installed library")

    lib_cache: dict = {}

    def lib_file(filename):
        """Is code from this file library code (the standard library, site-packages, course_lib)?"""
        known = lib_cache.get(filename, MISSING) if _type(filename) is _str else False
        if known is not MISSING:
            return known
        answer = filename.startswith("<frozen ") or filename.startswith(lib_prefixes)
        lib_cache[filename] = answer
        return answer

    # ---- state ----------------------------------------------------------------------------------------
    busy: dict = {}             # thread id -> depth inside the guard (events our own code raises pass)
    armed = [False]
    tampered: list = []         # the first tampering found (it stays)
    windows: list = []          # running checks: [run frame, name, problems]
    counter = [0]
    anchors: dict = {}          # code objects and modules of toolkit, filled in by arm()
    snapshot: list = []         # (label, mapping, keys, values); mapping None: (label, None, cls, mro)
    sizes: list = []            # (label, container, length): global hook registries that must stay empty
    course_modules: list = []   # (name, module): must stay in sys.modules
    kinds: list = []            # (label, object, type): snapshotted modules must keep their type
    wrapped: list = []          # (label, cell, function): torch's own wrappers, accepted, must keep wrapping
    wrapper_codes: set = _set() # code of the wrappers torch puts around its own functions (filled in by arm)
    genuine_dicts: set = _set() # ids of the module dicts of course_lib.checks.*
    reference_ids: set = _set() # ids of the reference modules and their classes and functions
    reference_classes: set = _set()
    check_failure = [None]
    mode_stacks: list = []

    # ---- frames ---------------------------------------------------------------------------------------
    def untrusted_on_stack(frame):
        while frame is not None:
            if not lib_file(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False

    FORWARDERS = ("/inspect.py", "/traceback.py", "/logging/__init__.py", "/pdb.py", "/bdb.py", "/cgitb.py",
                  "/IPython/core/ultratb.py", "/IPython/core/debugger.py")
    FORWARDER_DIRS = ("/stack_data/", "/executing/")

    def frames_for_student(frame):
        """Inside a check: would the frame this ``frame`` asks for reach the student's code? True when the
        asking code is the student's, or a library function that hands frames back to its caller (inspect,
        traceback, logging, ...) called by the student's code. Library code that only looks at frames
        itself (typing does, for instance) may."""
        if not windows:
            return False
        while frame is not None:
            filename = frame.f_code.co_filename
            if not lib_file(filename):
                return True
            if not (filename.endswith(FORWARDERS) or _any(d in filename for d in FORWARDER_DIRS)):
                return False
            frame = frame.f_back
        return False

    def student_inside_check(frame):
        """Inside a check: is ``frame``, or a caller between it and the check, the student's code?"""
        if not windows:
            return False
        run = windows[-1][0]
        while frame is not None and frame is not run:
            if not lib_file(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False

    # ---- the snapshot -----------------------------------------------------------------------------------
    def stray_threads():
        """A phrase if another thread is running the student's code; else None. (Python 3.11 has no audit
        event for new threads, and the trace function watches the main thread only.)"""
        for ident, frame in _list(_current_frames().items()):
            if ident == _main_ident:
                continue
            while frame is not None:
                if not lib_file(frame.f_code.co_filename):
                    return "another thread is running your code (threads are not allowed while checks run)"
                frame = frame.f_back
        return None

    def known_wrapper(new, old):
        """The cell of ``new`` that holds ``old`` if ``new`` is a wrapper torch puts around its own functions
        (importing torch._dynamo wraps torch.manual_seed with torch._disable_dynamo); else None."""
        if _type(new) is not _FunctionType or new.__code__ not in wrapper_codes:
            return None
        names = new.__code__.co_freevars
        cells = new.__closure__ or ()
        for name, cell in _zip(names, cells):
            if name == "fn" and cell.cell_contents is old:
                return cell
        return None

    def compare():
        """The first difference from the snapshot, as a phrase; None when there is none."""
        for index, (label, mapping, keys, values) in enumerate_(snapshot):
            if mapping is None:
                if _type_mro(keys) is not values:
                    return f"the bases of {label} were changed"
                continue
            if not _all(_map(_is, _map(_type, mapping), _repeat(_str))):
                return f"a key that is not a string was put into {label}"
            now = _tuple(_map(mapping.get, keys, _repeat(MISSING)))
            if not _all(_map(_is, now, values)):
                fixed = _list(values)
                for at, (k, a, b) in enumerate_(_zip(keys, now, values)):
                    if a is b:
                        continue
                    cell = known_wrapper(a, b)
                    if cell is None:
                        return f"{label}.{k} was {'deleted' if a is MISSING else 'replaced'}"
                    wrapped.append((f"{label}.{k}", cell, b))
                    fixed[at] = a
                snapshot[index] = (label, mapping, keys, _tuple(fixed))
        for label, cell, inner_function in wrapped:
            if cell.cell_contents is not inner_function:
                return f"{label} was replaced"
        for label, container, length in sizes:
            if _len(container) != length:
                return f"{label} was changed (a global hook was registered)"
        for label, length_of in mode_stacks:
            if length_of() != 0:
                return f"a {label} is active"
        for name, module in course_modules:
            if _modules.get(name) is not module:
                return f"sys.modules[{name!r}] was replaced"
        for label, obj, kind in kinds:
            if _type(obj) is not kind:
                return f"the type of {label} was changed"
        return None

    # ---- where the student's objects come from ------------------------------------------------------
    def is_class(obj):
        return _any(_map(_is, _type_mro(_type(obj)), _repeat(_Type)))

    def reference_in(obj, depth=0, seen=None):
        """A phrase naming the reference solution if ``obj`` is it, derives from it or uses it; else None."""
        seen = _set() if seen is None else seen
        if depth > 3 or _id(obj) in seen:
            return None
        seen.add(_id(obj))
        t = _type(obj)
        if _id(obj) in reference_ids:
            return "it is the reference solution" if depth == 0 else "it uses the reference solution"
        if t is _FunctionType:
            code = obj.__code__
            if code.co_filename in protected_files:
                return f"{code.co_name} is the reference solution's code"
            found = scan_globals(code, obj.__globals__, depth, seen)
            if found:
                return found
            for cell in obj.__closure__ or ():
                try:
                    contents = cell.cell_contents
                except _ValueError:
                    continue
                found = reference_in(contents, depth + 1, seen)
                if found:
                    return found
            return None
        if t is _MethodType:
            return reference_in(obj.__func__, depth + 1, seen)
        if is_class(obj):
            for base in _type_mro(obj):
                if _id(base) in reference_classes:
                    return f"it derives from {_type_qualname(base)}, the reference solution"
            for value in _list(_type_dict(obj).values()):
                if _type(value) is _staticmethod or _type(value) is _classmethod:
                    value = value.__func__
                if _type(value) is _FunctionType or _type(value) is _MethodType:
                    found = reference_in(value, depth + 1, seen)
                    if found:
                        return found
        return None

    def scan_globals(code, namespace, depth, seen):
        if _type(namespace) is not _dict or not _all(_map(_is, _map(_type, namespace), _repeat(_str))):
            return None
        for name in code.co_names:
            value = namespace.get(name, MISSING)
            if value is not MISSING:
                found = reference_in(value, depth + 1, seen)
                if found:
                    return found
        for const in code.co_consts:
            if _type(const) is _CodeType:
                found = scan_globals(const, namespace, depth, seen)
                if found:
                    return found
        return None

    # ---- proofs and refusals ------------------------------------------------------------------------------
    def sign(name):
        counter[0] += 1
        digest = _hmac(key, _message(counter[0], name), "sha256").hex()[:32]
        return f" [proof {counter[0]}:{digest}]"

    _exc_args = BaseException.__dict__["args"].__set__
    _exc_dict = BaseException.__dict__["__dict__"].__get__

    def fail(message, mistake):
        """A CheckFailure made without running its (patchable) __init__."""
        cls = check_failure[0]
        if cls is None:
            return _PermissionError(message)
        err = _BaseException.__new__(cls)
        _exc_args(err, (message,))
        _exc_dict(err)["mistake"] = mistake
        return err

    def deny(message):
        return _PermissionError(f"not allowed while grading: {message}")

    TAMPER_TAIL = ("The grading sandbox refuses every check after that: leave torch, builtins and "
                   "course_lib as they are.")

    # ---- the check events ---------------------------------------------------------------------------------
    def run_frame_of(requester, manager):
        if requester is None or requester.f_code is not anchors.get("sandbox"):
            return None
        outer = requester.f_back
        if outer is None or outer.f_code is not anchors.get(manager):
            return None
        run = outer.f_back
        if run is None or run.f_code is not anchors.get("run"):
            return None
        return run

    def genuine_check(fn):
        return (_type(fn) is _FunctionType and fn.__code__.co_filename.startswith(checks_dirs)
                and _id(fn.__globals__) in genuine_dicts)

    def on_check(args, requester):
        if _get_ident() != _main_ident:
            return deny("checks run in the main thread only")
        phase = args[0] if args else None
        if phase == "start" and _len(args) == 5:
            _, name, fn, fargs, fkwargs = args
            run = run_frame_of(requester, "enter")
            if run is None or _type(name) is not _str or not genuine_check(fn):
                return deny("this is not one of the course's checks")
            if not tampered:
                found = compare()
                if found:
                    tampered.append(found)
            if tampered:
                return fail(f"tampering detected: {tampered[0]}. {TAMPER_TAIL}", _TAMPERING)
            found = stray_threads()
            if found:
                return fail(f"{found}. Stop it before the checks run.", _TAMPERING)
            given = _list(fargs) if _type(fargs) is _tuple else []
            if _type(fkwargs) is _dict:
                given += _list(fkwargs.values())
            for obj in given:
                found = reference_in(obj)
                if found:
                    return fail(f"your answer is not your own code: {found}. The grade is for your own "
                                "implementation.", _REFERENCE)
            windows.append([run, name, []])
            if _len(windows) == 1:
                _settrace(tracers[0])
            return None
        if phase == "end" and _len(args) == 4:
            _, name, proof, passed = args
            run = run_frame_of(requester, "exit")
            if run is None or not windows or windows[-1][0] is not run or windows[-1][1] is not name:
                return deny("this is not one of the course's checks")
            problems = windows.pop()[2]
            if not windows:
                if _gettrace() is not tracers[0]:
                    problems.append(("the grading sandbox's trace function was removed", _TAMPERING))
                _settrace(None)
            if passed is not True:
                return None
            if not tampered:
                found = compare()
                if found:
                    tampered.append(found)
            found = stray_threads()
            if found:
                problems.append((found, _TAMPERING))
            if tampered:
                problems.insert(0, (tampered[0], _TAMPERING))
            if problems:
                what, mistake = problems[0]
                if mistake == _REFERENCE:
                    return fail(f"your code ran the course's reference solution ({what}). The grade is for "
                                "your own implementation.", mistake)
                return fail(f"tampering detected: {what}. The grading sandbox does not accept this result.",
                            mistake)
            if _type(proof) is _list:
                proof.append(sign(name))
            return None
        return deny("a malformed check event")

    CHEATS = _frozenset({
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__int__", "__float__",
        "__index__", "__instancecheck__", "__subclasscheck__", "__torch_function__", "__torch_dispatch__",
        "__array__", "__array_function__", "__array_ufunc__",
    })

    def on_trace(args):
        """A call the tracer found worth a look: reference code, or a comparison override of the student's."""
        frame = args[0]
        code = frame.f_code
        if code.co_filename in protected_files:
            if student_inside_check(frame.f_back):
                windows[-1][2].append((f"{code.co_name} was called from your code", _REFERENCE))
            elif code.co_argcount and code.co_varnames[:1] == ("self",):
                owner = frame.f_locals.get("self", MISSING)
                if owner is not MISSING and _id(_type(owner)) not in reference_classes:
                    windows[-1][2].append((f"its {code.co_name} ran on your object", _REFERENCE))
        elif code.co_name in CHEATS and not lib_file(code.co_filename):
            windows[-1][2].append((f"your code defines {code.co_name}, which changes how the check compares "
                                   "results", _TAMPERING))

    # ---- every other event ----------------------------------------------------------------------------------
    FRAME_ATTRS = _frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    PROCESS = _frozenset({"subprocess.Popen", "os.system", "os.fork", "os.forkpty", "pty.spawn",
                          "os.startfile", "os.killpg", "_posixsubprocess.fork_exec"})
    PROCESS_PREFIXES = ("ctypes.", "os.exec", "os.spawn", "os.posix_spawn")
    WRITES = {  # event -> (positions of the path arguments, position of dir_fd)
        "os.remove": ((0,), 1), "os.rmdir": ((0,), 1), "os.mkdir": ((0,), 2), "os.truncate": ((0,), None),
        "os.chmod": ((0,), 2), "os.chown": ((0,), 3), "os.utime": ((0,), 3), "shutil.rmtree": ((0,), 1),
        "os.rename": ((0, 1), 2), "os.mkfifo": ((0,), 2), "os.mknod": ((0,), 3), "os.setxattr": ((0,), None),
        "os.removexattr": ((0,), None), "os.chflags": ((0,), None), "os.lchflags": ((0,), None),
    }
    STUDENT_NEVER = _frozenset({
        "os.symlink", "os.link", "setopencode", "sys._current_frames", "sqlite3.enable_load_extension",
        "sqlite3.load_extension", "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "sys.settrace",
        "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    })
    NETWORK = ("socket.", "urllib.Request", "http.client.", "ftplib.", "smtplib.", "poplib.", "imaplib.",
               "nntplib.", "telnetlib.", "webbrowser.open")
    SECRET_PROC = _frozenset({"mem", "environ", "maps", "smaps", "pagemap", "syscall", "auxv"})

    def writable_path(path, dir_fd=None):
        resolved = resolve(path, dir_fd)
        return resolved is not None and (resolved == "/dev/null" or under(resolved, writable))

    def readable_path(resolved):
        if is_protected(resolved):
            return False
        if resolved.startswith("/proc/") and resolved.rsplit("/", 1)[-1] in SECRET_PROC:
            return False
        worst = _max([_len(d) for d in deny_read if under(resolved, (d,))] or [-1])
        best = _max([_len(d) for d in allow_read if under(resolved, (d,))] or [-1])
        return worst < 0 or best >= worst

    def same_as_file(source, filename):
        try:
            with _open(filename, "rb") as fh:
                data = fh.read()
        except _OSError:
            return False
        if _type(source) is _str:
            source = source.encode("utf-8")
        return _type(source) is _bytes and source == data

    def genuine_bytecode(data, requester):
        """Is this marshal.loads importlib loading a .pyc file as it is on disk?"""
        if requester is None or requester.f_code.co_name != "_compile_bytecode" or \
                not requester.f_code.co_filename.startswith("<frozen importlib"):
            return False
        path = requester.f_locals.get("bytecode_path")
        if _type(path) is not _str or not path.endswith(".pyc"):
            return False
        try:
            with _open(path, "rb") as fh:
                whole = fh.read()
        except _OSError:
            return False
        if _type(data) is _bytes:
            return data == whole[16:]
        if _type(data) is _memoryview:
            return data.tobytes() == whole[16:]
        return False

    def police(event, args, requester):
        """None to let the event through, else the exception that refuses it."""
        if event == "open":
            path, mode, flags = (_tuple(args) + (None, None, None))[:3]
            if _type(path) is _int:
                return None
            if mode is not None and _type(mode) is not _str:
                return deny(f"opening {show(path)} with an odd mode")
            writing = (mode is not None and _any(c in mode for c in "wax+")) or (
                _type(flags) is _int and flags & _O_WRITE)
            resolved = resolve(path)
            if resolved is None:
                return deny(f"opening {show(path)}")
            if writing:
                if resolved == "/dev/null" or under(resolved, writable):
                    return None
                return deny(f"writing {show(path)}: only the notebook's own folder is writable")
            return None if readable_path(resolved) else deny(f"reading {show(path)}")
        if event in WRITES:
            positions, fd_at = WRITES[event]
            dir_fd = args[fd_at] if fd_at is not None and fd_at < _len(args) else None
            for at in positions:
                if at < _len(args) and not writable_path(args[at], dir_fd):
                    return deny(f"{event} on {show(args[at])}: only the notebook's own folder is writable")
            return None
        if event == "os.listdir" or event == "os.scandir" or event == "glob.glob":
            path = args[0] if args and args[0] is not None else "."
            if _type(path) is _int:
                return None
            resolved = resolve(path)
            if resolved is None or readable_path(resolved):
                return None
            return deny(f"listing {show(path)}")
        if event == "sqlite3.connect":
            database = args[0] if args else None
            if _type(database) is _str and database.startswith("file:"):  # a URI: file:[//host]/path[?query]
                if "%" in database:
                    return deny(f"opening the database {show(database)}")
                rest = database[5:].split("?", 1)[0].split("#", 1)[0]
                if rest.startswith("//"):
                    rest = rest[2:]
                    rest = rest[rest.find("/"):] if "/" in rest else ""
                database = rest if rest else ":memory:"
            if (_type(database) is _str and database in (":memory:", "")) or writable_path(database):
                return None
            return deny(f"opening the database {show(database)}")
        if event == "import":
            name = args[0] if args else None
            filename = args[1] if _len(args) > 1 else None
            if _type(name) is not _str:
                return deny("an import by a name that is not a string")
            if is_reference_name(name) or name.startswith(_CHECK_PACKAGES):
                return deny(f"importing {name}: the reference solutions and the checks are loaded by the "
                            "grader before the notebook runs")
            if _type(filename) is _str and filename.endswith((".so", ".pyd", ".dylib")) and \
                    not lib_file(resolve(filename) or filename):
                return deny(f"loading the native extension {filename}")
            return None
        if event in STUDENT_NEVER or event in PROCESS or event.startswith(PROCESS_PREFIXES) or \
                (not network and event.startswith(NETWORK)):
            return deny(event) if untrusted_on_stack(requester) else None
        if event == "os.kill" or event == "signal.pthread_kill":
            if args and args[0] != _getpid() and untrusted_on_stack(requester):
                return deny(f"{event} of another process")
            return None
        if event == "compile":
            source, filename = (_tuple(args) + (None, None))[:2]
            if _type(filename) is _bytes:
                filename = filename.decode("utf-8", "surrogateescape")
            if _type(filename) is not _str:
                return None
            if is_protected(filename):
                return deny(f"compiling code as {filename}")
            if lib_file(filename) and untrusted_on_stack(requester) and (
                    filename.startswith("<") or not same_as_file(source, filename)):
                return deny(f"compiling code that claims to come from {filename}")
            return None
        if event == "code.__new__":
            filename = args[1] if _len(args) > 1 else None
            if _type(filename) is _str and lib_file(filename) and untrusted_on_stack(requester):
                return deny(f"making a code object that claims to come from {filename}")
            return None
        if event == "function.__new__":
            code = args[0] if args else None
            if _type(code) is _CodeType and lib_file(code.co_filename) and untrusted_on_stack(requester):
                return deny("making a function out of library code")
            return None
        if event == "marshal.loads" or event == "marshal.load":
            if untrusted_on_stack(requester) and not (
                    event == "marshal.loads" and args and genuine_bytecode(args[0], requester)):
                return deny(event)
            return None
        if event == "object.__getattr__":
            obj, name = (_tuple(args) + (None, None))[:2]
            if name == "__code__":
                if _type(obj) is _FunctionType and obj.__code__.co_filename in protected_files and \
                        untrusted_on_stack(requester):
                    return deny("reading the code of the reference solution")
                return None
            target = None
            if _type(obj) is _TracebackType and name == "tb_frame":
                target = obj.tb_frame
            elif _type(obj) is _GenTypes[0] or _type(obj) is _GenTypes[1] or _type(obj) is _GenTypes[2]:
                target = _getattr(obj, name, None)
            if target is not None and frames_for_student(requester):
                return deny("looking at frames while a check runs")
            return None
        if event == "sys._getframe":
            if frames_for_student(requester):
                return deny("looking at frames while a check runs")
            return None
        if event == "object.__setattr__" or event == "object.__delattr__":
            name = args[1] if _len(args) > 1 else None
            if name == "__code__" and untrusted_on_stack(requester):
                return deny("replacing the code of a function")
            if (name == "__defaults__" or name == "__kwdefaults__") and _type(args[0]) is _FunctionType and \
                    args[0].__code__.co_filename in guard_files:
                return deny("changing the grading sandbox")
            if (name == "__class__" or name == "__bases__") and requester is not None and \
                    not lib_file(requester.f_code.co_filename):
                return deny(f"setting {name}")
            return None
        return None

    POLICED = _frozenset(
        {"open", "import", "compile", "code.__new__", "function.__new__", "marshal.loads", "marshal.load",
         "object.__getattr__", "object.__setattr__", "object.__delattr__", "sys._getframe", "sqlite3.connect",
         "os.listdir", "os.scandir", "glob.glob", "os.kill", "signal.pthread_kill", _CHECK_EVENT, _TRACE_EVENT}
        | _set(WRITES) | STUDENT_NEVER | PROCESS
    )
    WATCHED_ATTRS = _frozenset(FRAME_ATTRS | {"__code__", "__class__", "__bases__", "__defaults__",
                                              "__kwdefaults__"})
    _gc_isenabled, _gc_disable, _gc_enable = gc.isenabled, gc.disable, gc.enable

    def fresh(err):
        """A new exception like ``err`` but with no traceback (tracebacks would lead to our frames)."""
        t = _type(err)
        if _any(_map(_is, _type_mro(t), _repeat(_Exception))):
            return _PermissionError("not allowed while grading (the grading sandbox could not vet this)")
        copy = _BaseException.__new__(t)
        copy.args = err.args
        return copy

    def inner(event, args):
        """The guard itself. It never raises: it hands a refusal to ``gate``, which raises it."""
        if event != _INTERNAL or _len(args) != 3 or _type(args[2]) is not _list:
            return
        tid = _get_ident()
        depth = busy.get(tid, 0)
        if depth:
            return  # an event raised by the guard's own work
        busy[tid] = depth + 1
        gc_was = _gc_isenabled()
        _gc_disable()
        box = args[2]
        try:
            gate_frame = _getframe(1)
            if not gate_codes or gate_frame.f_code is not gate_codes[0]:
                return  # somebody raised our internal event by hand
            requester = gate_frame.f_back
            original, oargs = args[0], args[1]
            if original == _TRACE_EVENT:
                if windows and tid == _main_ident and _len(oargs) == 3 and _type(oargs[0]) is _FrameType:
                    on_trace(oargs)
                return
            if not armed[0]:
                return
            problem = on_check(oargs, requester) if original == _CHECK_EVENT else police(original, oargs, requester)
            if problem is not None:
                box.append(problem)
        except _BaseException as err:  # noqa: BLE001 - nothing may escape: tracebacks would show our frames
            box.append(fresh(err))
        finally:
            busy[tid] = depth
            if gc_was:
                _gc_enable()

    dispatch = _MethodType(_audit, _INTERNAL)

    def make_tracer(lib_dicts):
        """The trace function of a running check: it lets calls of library code through at once (a frame whose
        globals are a library module's, other than a reference solution's) and reports the others with an
        audit event. Its state lives in its positional defaults, a tuple nobody can change in place
        (and replacing it is refused)."""

        def tracer(frame, event, arg, _lib_dicts=lib_dicts, _id=_id, _audit=_audit, _event=_TRACE_EVENT):
            if event == "call" and _id(frame.f_globals) not in _lib_dicts:
                _audit(_event, frame, event, arg)

        tracers.append(tracer)
        return tracer

    tracers: list = []

    def make_gate(lib_dicts):
        """The audit hook, made once the library modules are known (their namespaces make its fast path)."""

        def gate(event, args, *, _policed=POLICED, _watched=WATCHED_ATTRS, _prefixes=PROCESS_PREFIXES,
                 _network=NETWORK if not network else (), _dispatch=dispatch, _len=_len, _id=_id,
                 _trace=_TRACE_EVENT, _lib=lib_prefixes + ("<frozen ",), _protected=protected_files,
                 _cheats=CHEATS):
            """The audit hook the interpreter calls for every event. Its frame holds nothing worth stealing.

            It lets the common events through at once and hands the others to ``inner`` through an audit
            event of their own, so that a refusal is raised here, not in ``inner``.
            """
            if event == _trace:
                code = args[0].f_code
                filename = code.co_filename
                if filename.startswith(_lib):
                    if filename not in _protected:
                        return
                elif code.co_name not in _cheats:
                    return
            elif event in _policed:
                if event[:7] == "object." and (_len(args) < 2 or args[1] not in _watched):
                    return
            elif not event.startswith(_prefixes) and not (_network and event.startswith(_network)):
                return
            box = []
            _dispatch(event, args, box)
            if box:
                raise box[0]

        gate_codes.append(gate.__code__)
        return gate

    gate_codes: list = []

    # ---- preloading: the checks and all they import, before any student code ----------------------------
    failed = preload()

    def arm():
        """Take the snapshot and start policing. Called once, after the kernel is set up."""
        if armed[0]:
            return
        import contextlib
        import functools
        import math
        import random
        import signal
        import threading
        import time
        import warnings

        import torch
        import torch.nn.functional
        import torch.nn.init
        import torch.nn.modules.module as module_module
        import torch.testing

        from course_lib.checks import toolkit

        toolkit.define_mistake(MISTAKE_TAMPERING, "the code changed the grading environment (torch, builtins, "
                                                "the checks) or reached into a running check")
        toolkit.define_mistake(MISTAKE_REFERENCE, "the code uses the course's reference solution")
        check_failure[0] = toolkit.CheckFailure
        anchors["run"] = toolkit.exercise("probe")(lambda: None).__code__
        anchors["sandbox"] = toolkit._sandbox.__wrapped__.__code__
        anchors["enter"] = contextlib._GeneratorContextManager.__enter__.__code__
        anchors["exit"] = contextlib._GeneratorContextManager.__exit__.__code__
        if hasattr(torch, "_disable_dynamo"):  # a wrapper torch._dynamo puts on torch.manual_seed when imported
            wrapper_codes.add(torch._disable_dynamo(lambda: None).__code__)
        for label, attr in (("torch function mode", "_len_torch_function_stack"),
                            ("torch dispatch mode", "_len_torch_dispatch_stack")):
            if hasattr(torch._C, attr):
                mode_stacks.append((label, getattr(torch._C, attr)))

        def take(label, mapping, everything=False, ignore=()):
            keys, values = [], []
            for k, v in list(mapping.items()):
                if type(k) is not str or k in ignore or (not everything and type(v) in _PLAIN):
                    continue
                keys.append(k)
                values.append(v)
            snapshot.append((label, mapping, tuple(keys), tuple(values)))

        # toolkit's own context managers swap these while a check runs
        WARNINGS_STATE = {"filters", "showwarning", "_showwarnmsg_impl", "_showwarnmsg", "_filters_mutated",
                          "_filters_version", "defaultaction", "onceregistry"}
        ignored = {"_", "__", "___", "exit", "quit", "get_ipython", "display", "__IPYTHON__", "copyright", "input",
                   "credits", "license", "help"}
        take("builtins", builtins.__dict__, ignore=ignored)
        wanted = {"audit", "addaudithook", "setprofile", "getprofile", "settrace", "gettrace", "_getframe",
                  "exc_info", "exception", "modules", "setrecursionlimit", "meta_path", "path_hooks"}
        take("sys", sys.__dict__, ignore=set(sys.__dict__) - wanted)
        modules = [math, operator, functools, contextlib, warnings, time, signal, threading, random, types,
                   itertools, importlib, torch, torch.nn, torch.nn.functional, torch.nn.init, module_module,
                   torch.testing, torch.linalg, torch.special, torch.fft, torch.random, torch.autograd,
                   torch.overrides, torch._C, torch.functional]
        for extra in ("torch.testing._comparison", "torch._tensor", "torch.autograd.grad_mode", "einops",
                      "numpy"):
            if extra in sys.modules:
                modules.append(sys.modules[extra])
        for module in modules:
            take(module.__name__, module.__dict__, ignore=WARNINGS_STATE if module is warnings else ())
            kinds.append((module.__name__, module, type(module)))
        classes = [torch.Tensor, torch._C.TensorBase, torch.nn.Parameter, torch.Size, torch.Generator,
                   torch._C._VariableFunctionsClass, torch.autograd.Function, torch.no_grad, torch.enable_grad,
                   contextlib._GeneratorContextManager]
        for value in list(torch.nn.__dict__.values()):
            if type(value) is type and issubclass(value, torch.nn.Module) and value not in classes:
                classes.append(value)
        ours = sorted((name, m) for name, m in sys.modules.items()
                      if m is not None and (name.startswith(CHECK_PACKAGES) or is_reference_name(name)))
        for name, module in ours:
            course_modules.append((name, module))
            kinds.append((name, module, type(module)))
            take(name, module.__dict__, everything=True)
            if name.startswith(CHECK_PACKAGES):
                genuine_dicts.add(id(module.__dict__))
            else:
                reference_ids.add(id(module))
            for value in list(module.__dict__.values()):
                if isinstance(value, type) and value.__module__ == name and value not in classes:
                    classes.append(value)
                if not name.startswith(CHECK_PACKAGES) and getattr(value, "__module__", None) == name:
                    reference_ids.add(id(value))
                    if isinstance(value, type):
                        reference_classes.add(id(value))
        for cls in classes:
            take(f"{cls.__module__}.{cls.__qualname__}", type.__dict__["__dict__"].__get__(cls))
            snapshot.append((f"{cls.__module__}.{cls.__qualname__}", None, cls, cls.__mro__))
        for name, value in list(module_module.__dict__.items()):
            if name.startswith("_global_") and isinstance(value, dict):
                sizes.append((f"torch.nn.modules.module.{name}", value, len(value)))
        armed[0] = True
        # the namespaces of the library modules loaded by now (kept alive, so that their ids stay theirs)
        library = tuple(m.__dict__ for name, m in list(sys.modules.items())
                        if m is not None and not is_reference_name(name)
                        and isinstance(getattr(m, "__file__", None), str) and lib_file(m.__file__))
        keep.append(library)
        ids = frozenset(id(d) for d in library)
        make_tracer(ids)
        _addaudithook(inner)
        _addaudithook(make_gate(ids))

    keep: list = []
    arm.preload_errors = failed  # type: ignore[attr-defined]
    return arm
