"""Start a grading kernel inside the sandbox: ``python -m course_lib.grading.sandbox_launcher SETTINGS -f CONN``.

The grader (``sandbox.py``) writes SETTINGS, a JSON file only its own user can read, and starts this
module as the kernel's command. In order, before any cell runs:

1. read SETTINGS and delete the file (it holds the key that signs the checks' proofs);
2. point HOME, TMPDIR, IPYTHONDIR, MPLCONFIGDIR, TORCH_HOME and the XDG folders at the kernel's
   private folder;
3. prepare the guard (``sandbox_guard.install``): torch, the checks and the reference modules are
   imported, and CUDA is initialised where there is a GPU;
4. set up ipykernel;
5. set the process limits: address space (a memory bomb gets a MemoryError instead of taking the
   machine; the limit counts from the address space in use by then, so CUDA's large reservations on a
   GPU machine do not eat it), size of any file written, CPU seconds, no core files; SIGXFSZ is
   ignored so that an oversized write fails with an error instead of killing the kernel;
6. arm the guard (snapshot, audit hook) and serve the notebook.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

MIB = 2**20


def _limit(which: int, value: int | None) -> None:
    if value is None:
        return
    _, hard = resource.getrlimit(which)
    value = int(value)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def address_space() -> int:
    """This process's address-space size now, in bytes (VmSize)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_limits(limits: dict) -> None:
    """Set this process's limits: ``memory_mb`` (address space on top of what is in use now),
    ``file_mb`` (largest file written), ``cpu_s`` (CPU seconds); None or 0 leaves one unlimited."""
    memory = limits.get("memory_mb")
    _limit(resource.RLIMIT_AS, address_space() + memory * MIB if memory else None)
    file_mb = limits.get("file_mb")
    _limit(resource.RLIMIT_FSIZE, file_mb * MIB if file_mb else None)
    _limit(resource.RLIMIT_CPU, limits.get("cpu_s") or None)
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def private_environment(home: Path, mpl_fontlist: str | None) -> None:
    """Send every per-user cache and configuration of the kernel's libraries to its private folder."""
    folders = {"HOME": "home", "TMPDIR": "tmp", "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "matplotlib",
               "XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config", "TORCH_HOME": "torch"}
    for variable, name in folders.items():
        path = home / name
        path.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(path)
    if mpl_fontlist and Path(mpl_fontlist).is_file():  # spares matplotlib a font scan in every kernel
        shutil.copy(mpl_fontlist, home / "matplotlib" / Path(mpl_fontlist).name)
    import tempfile

    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m course_lib.grading.sandbox_launcher SETTINGS [ipykernel options]")
    settings_file = Path(argv.pop(0))
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings_file.unlink()

    sys.dont_write_bytecode = True
    private_environment(Path(settings["home"]), settings.get("mpl_fontlist"))
    for variable in [v for v in os.environ if v.startswith("COURSE_SANDBOX")]:
        del os.environ[variable]
    limits = dict(settings.get("limits", {}))

    from course_lib.grading import sandbox_guard

    arm = sandbox_guard.install(settings["guard"])
    for problem in getattr(arm, "preload_errors", []):
        print(f"grading sandbox: could not load {problem}", file=sys.stderr)
    settings.clear()
    del settings

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    if not any(arg.startswith("--HistoryManager.hist_file") for arg in argv):
        argv.append("--HistoryManager.hist_file=:memory:")
    app.initialize(argv)
    apply_limits(limits)
    arm()
    del arm
    app.start()


if __name__ == "__main__":
    main()
