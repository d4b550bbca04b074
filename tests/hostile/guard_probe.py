"""Run attacks as a student's code, with the grading guard armed or not; print the outcomes as JSON.

    python tests/hostile/guard_probe.py on|off

The attacks try every way out of the sandbox, then hand cheating answers to a check. Each is compiled
with a file name in the probe's working folder, as a notebook cell is: the guard treats it as student
code. tests/test_sandbox.py runs this with the guard ("on") and without ("off"): without it, every
attack must work, which proves that the tests can fail.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hostile.cases import OWN_SE, SE_DELEGATES, SE_FRAMES, SE_TORCH_FUNCTION  # noqa: E402

ESCAPE = Path(tempfile.gettempdir()) / f"guard-probe-escape-{os.getpid()}.txt"

ATTACKS = {
    "read_reference": "import course_lib, pathlib\nresult = (pathlib.Path(course_lib.__file__).parent / 'reference' / 'se.py').read_text()[:30]",
    "read_hidden": "import course_lib, pathlib\n"
                   "result = (pathlib.Path(course_lib.__file__).parent / 'hidden/ch01_se.py').read_text()[:30]",
    "reference_code": "import course_lib.reference.se\nresult = course_lib.reference.se.SqueezeExcitation.forward.__code__.co_name",
    "write_outside": f"open({str(ESCAPE)!r}, 'w').write('escaped')\nresult = 'written'",
    "write_inside": "open('inside.txt', 'w').write('fine')\nresult = 'written'",
    "ctypes": "import ctypes\nresult = ctypes.string_at(id(1), 1)",
    "subprocess": "import subprocess\nresult = subprocess.run(['true']).returncode",
    "thread_alive": "import threading, time\nstop = threading.Event()\n"
                    "def helper_loop():\n    while not stop.wait(0.01):\n        pass\n"
                    "helper = threading.Thread(target=helper_loop)\nhelper.start()\n" + OWN_SE +
                    "\nfrom course_lib.checks.ch01_se import check_se\ntry:\n    check_se(SqueezeExcitation)\n"
                    "finally:\n    stop.set()\n    helper.join()\nresult = 'passed'",
    "gc_walk": "import gc\nresult = len(gc.get_objects()) > 0",
    "audit_hook": "import sys\nseen = []\nsys.addaudithook(lambda event, args: seen.append(event))\n"
                  "open('inside.txt').close()\nresult = 'called' if seen else 'not called'",
    "settrace": "import sys\nsys.settrace(None)\nresult = 'set'",
    "socket": "import socket\nresult = str(socket.socket())[:20]",
    "proc_mem": "import os\nresult = open(f'/proc/{os.getpid()}/mem', 'rb') is not None",
    "kill_parent": "import os\nos.kill(os.getppid(), 0)\nresult = 'signalled'",
    "sqlite_outside": "import sqlite3, tempfile\nresult = str(sqlite3.connect(tempfile.gettempdir() + '/x-probe.db'))[:20]",
    "fake_library_code": "import torch\nresult = compile('x = 1', torch.__file__, 'exec').co_filename",
    "proof": OWN_SE + "\nfrom course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\nresult = 'passed'",
    # honest: typing looks at its caller's frame (a protocol class registered under collections.abc)
    "typing_frames": "import collections.abc, typing\n\nclass Chunks(typing.Iterable[int], typing.Protocol):\n"
                     "    pass\n\n" + OWN_SE.replace("        super().__init__()",
                                                   "        super().__init__()\n"
                                                   "        isinstance(channels, collections.abc.Iterable)") +
                     "\nfrom course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\nresult = 'passed'",
    # a library function that hands the caller's frame back (inspect) is no way round
    "frame_via_inspect": OWN_SE.replace("return x * self.attention(x)", "import inspect\n"
                                        "        inspect.currentframe()\n        return x * self.attention(x)") +
                         "\nfrom course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\nresult = 'passed'",
    "frame_peek": SE_FRAMES + "\nfrom course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\n"
                              "result = 'passed'",
    "torch_function": SE_TORCH_FUNCTION + "\nfrom course_lib.checks.ch01_se import check_se\n"
                                          "check_se(SqueezeExcitation)\nresult = 'passed'",
    "delegate": "import course_lib.reference.se\n" + SE_DELEGATES +
                "\nfrom course_lib.checks.ch01_se import check_se\ncheck_se(SqueezeExcitation)\nresult = 'passed'",
    # these two count as tampering, which sticks for the rest of the process: they come last
    "global_hook": OWN_SE + """
import torch
torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: out)
from course_lib.checks.ch01_se import check_se
check_se(SqueezeExcitation)
result = 'passed'
""",
    "reload_reference": "import importlib, sys\nresult = importlib.reload(sys.modules['course_lib.reference.se']).__name__",
}

def main() -> None:
    mode = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="guard-probe-"))
    os.chdir(work)
    key = secrets.token_hex(32)
    import torch  # noqa: F401 - the grader's kernel has torch loaded too

    if mode == "on":
        from course_lib.grading import sandbox_guard

        arm = sandbox_guard.install({"key": key, "writable": [str(work)], "deny_read": [], "allow_read": []})
        arm()
        del arm
    results = {}
    for name, source in ATTACKS.items():
        namespace: dict = {"__name__": "__main__"}
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(source, str(work / f"{name}.py"), "exec"), namespace)
            outcome = f"ok: {namespace.get('result')!r}"[:300]
        except BaseException as err:  # noqa: BLE001 - every outcome is a result here
            outcome = f"{type(err).__name__}: {err}"[:500]
        results[name] = {"outcome": outcome, "printed": printed.getvalue()[-2000:]}
    print(json.dumps({"key": key, "escape": str(ESCAPE), "results": results}))


if __name__ == "__main__":
    main()
