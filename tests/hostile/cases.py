"""Honest, hostile and broken submissions of the guarded chapter, each with the grade it must get.

Every case is a function of the released notebook (what a student receives) returning the text of the
file the student hands in. ``Case.cells`` is the score each graded cell must get (the chapter has
``test_se`` 2 points, ``test_count`` 1, ``test_double`` 1); ``status`` is "graded" or the start of the
error status the batch must give.

A few rules keep the suite fast: the infinite loops and the sleep live in the cheap exercises (the
check's watchdog or the cell timeout stops them within seconds), and one notebook may carry several
independent attacks when each lands in a different exercise.
"""
from __future__ import annotations

import copy
import json
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import nbformat

from .chapter import CHAPTER, COUNT, DOUBLE, SE, SOLUTION_IDS

FULL = {"test_se": 2.0, "test_count": 1.0, "test_double": 1.0}


def _strip(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


#: What an honest student writes.
GOOD = {"se": _strip(SE), "count": _strip(COUNT), "double": _strip(DOUBLE)}
#: Wrong answers (each fails its checks).
WRONG = {
    # the gate has no sigmoid
    "se": GOOD["se"].replace("torch.sigmoid(self.fc2(", "(self.fc2("),
    # biases left out of the count
    "count": GOOD["count"].replace("+ hidden + channels", ""),
    "double": GOOD["double"].replace("2 * x", "x + 1"),
}


@dataclass
class Case:
    name: str
    build: Callable[[nbformat.NotebookNode], str]
    cells: dict[str, float] = field(default_factory=lambda: dict(FULL))
    status: str = "graded"
    why: str = ""

    @property
    def score(self) -> float:
        return sum(self.cells.values()) if self.status == "graded" else 0.0

    @property
    def student(self) -> str:
        return self.name.replace("_", "-")


def _index(nb: nbformat.NotebookNode, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(grade_id)


def answers(se: str = GOOD["se"], count: str = GOOD["count"], double: str = GOOD["double"], *,
            edit: Callable[[nbformat.NotebookNode], None] | None = None) -> Callable[[nbformat.NotebookNode], str]:
    """A submission: the release with these answers in its solution cells, then ``edit`` applied."""

    def build(release: nbformat.NotebookNode) -> str:
        nb = copy.deepcopy(release)
        for key, code in (("se", se), ("count", count), ("double", double)):
            nb.cells[_index(nb, SOLUTION_IDS[key])].source = textwrap.dedent(code).strip("\n")
        if edit is not None:
            edit(nb)
        return json.dumps(nb, indent=1)

    return build


def raw(text: str) -> Callable[[nbformat.NotebookNode], str]:
    return lambda release: text


# ----------------------------------------------------------------------------------------------
# pieces of hostile code
# ----------------------------------------------------------------------------------------------
COUNT_LOOPING = """
def se_parameter_count(channels, reduction=16):
    while True:  # an endless loop: the check's watchdog stops it
        pass
"""

DOUBLE_SLEEPING = """
import time

def double(x):
    time.sleep(10_000)  # sleeps past the cell timeout
    return 2 * x
"""

DOUBLE_STUBBORN = """
import time

def double(x):
    return 2 * x

while True:  # an endless loop that swallows the interrupt: the kernel has to be killed
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""

COUNT_SYS_EXIT = """
import sys

def se_parameter_count(channels, reduction=16):
    sys.exit("bye")
"""

COUNT_OS_EXIT = """
import os

def se_parameter_count(channels, reduction=16):
    os._exit(1)
"""

COUNT_SEGFAULT = """
import faulthandler

def se_parameter_count(channels, reduction=16):
    faulthandler._sigsegv()  # a real crash of the kernel
"""

COUNT_CTYPES = """
import ctypes

def se_parameter_count(channels, reduction=16):
    return ctypes.string_at(0)  # would crash the kernel; the sandbox refuses ctypes
"""

COUNT_MEMORY_BOMB = """
def se_parameter_count(channels, reduction=16):
    blocks = []
    while True:  # grows until the memory limit stops it
        blocks.append(bytearray(256 * 2**20))
"""

BIG_OUTPUT = GOOD["double"] + """

for i in range(60_000):
    print(f"line {i} of a lot of output " + "x" * 64)
"""

WARNINGS = GOOD["double"].replace("return 2 * x", """import sys, warnings
    warnings.warn("double is slow", UserWarning)
    print("a warning on stderr: deprecated", file=sys.stderr)
    return 2 * x""")

SE_WARNS = GOOD["se"].replace("return x * self.attention(x)", """import warnings
        warnings.warn("forward: a UserWarning from the student's code", UserWarning)
        return x * self.attention(x)""")


def _patch(code: str) -> str:
    """A wrong SqueezeExcitation, then ``code`` (which tries to make the checks pass anyway)."""
    return WRONG["se"] + "\n\n" + textwrap.dedent(code).strip("\n")


PATCH_TORCH = _patch("""
import torch
torch.allclose = lambda *a, **k: True
torch.all = lambda *a, **k: torch.tensor(True)
torch.equal = lambda *a, **k: True
""")

PATCH_TESTING = _patch("""
import torch.testing
torch.testing.assert_close = lambda *a, **k: None
""")

PATCH_BUILTINS = _patch("""
import builtins
builtins.all = lambda *a, **k: True
builtins.isinstance = lambda *a, **k: True
""")

PATCH_CORE = _patch("""
import course_lib.checks._core as core
core.expect_close = lambda *a, **k: None
core.is_close = lambda *a, **k: True
""")

PATCH_CHECKFAILURE = _patch("""
import course_lib.checks._core as core
core.CheckFailure.__init__ = lambda self, *a, **k: None
core.CheckFailure = type("CheckFailure", (Exception,), {})
""")

REPLACE_CHECKS = _patch("""
import course_lib.checks.ch01_se as visible
import course_lib.checks.hidden.ch01_se as hidden
visible.check_se = lambda cls: print("[ok] SqueezeExcitation: 16 checks passed (0.10 s)")
hidden.hidden_se = lambda cls: print("[ok] SqueezeExcitation (hidden tests): 90 checks passed (0.20 s)")
""")

GLOBAL_HOOK = _patch("""
import torch
torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: out)
""")

# Every test cell turns into a print of what a pass looks like, with a made-up proof.
NOOP_TESTS = """
def _forge(lines):
    text = "".join(lines)
    if "check_" in text or "hidden_" in text or "assert" in text:
        return ['print("[ok] SqueezeExcitation: 16 checks passed (0.10 s) [proof 7:' + "0" * 32 + ']")\\n']
    return lines

get_ipython().input_transformers_cleanup.append(_forge)
"""

SE_IS_REFERENCE = """
from course_lib.se import SqueezeExcitation  # the reference solution itself
"""

SE_SUBCLASSES_REFERENCE = """
import sys
from torch import nn

class SqueezeExcitation(sys.modules["course_lib.se"].SqueezeExcitation):
    pass
"""

SE_DELEGATES = """
import sys
from torch import nn

class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        reference = getattr(sys.modules["course_lib." + "se"], "Squeeze" + "Excitation")
        self.inner = reference(channels, reduction)

    def attention(self, x):
        return self.inner.attention(x)

    def forward(self, x):
        return self.inner(x)
"""

SE_READS_REFERENCE = """
import pathlib
import course_lib

source = (pathlib.Path(course_lib.__file__).parent / "se.py").read_text()  # refused
exec(source)
"""

SE_READS_SOLUTIONS = """
import glob, json, os

found = []
for path in glob.glob("../../../**/*.ipynb", recursive=True):  # the instructor's notebook is up there
    try:
        found.append(open(path).read())
    except OSError as err:
        print("refused:", err)
for text in found:
    for cell in json.loads(text)["cells"]:
        if "class SqueezeExcitation" in "".join(cell["source"]) and "BEGIN SOLUTION" in "".join(cell["source"]):
            exec("".join(cell["source"]))
"""

SE_FRAMES = """
import sys
import torch
from torch import nn

class SqueezeExcitation(nn.Module):
    # looks up the check's expected result in its frames instead of computing anything
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def _steal(self, x, key):
        frame = sys._getframe(1)
        while frame is not None:
            for value in frame.f_locals.values():
                if isinstance(value, dict) and key in value:
                    return value[key]
            frame = frame.f_back
        return x

    def attention(self, x):
        return self._steal(x, "gate")

    def forward(self, x):
        return self._steal(x, "out")
"""

SE_TORCH_FUNCTION = _patch("""
import torch

class Agreeable(torch.Tensor):
    # every comparison the check makes says "equal"
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        if getattr(func, "__name__", "") in {"abs", "__sub__", "sub"}:
            return torch.zeros_like(torch.as_tensor(result)).as_subclass(torch.Tensor)
        return result

_wrong = SqueezeExcitation

class SqueezeExcitation(_wrong):
    def forward(self, x):
        return super().forward(x).as_subclass(Agreeable)
""")

WRITE_OUTSIDE = GOOD["count"] + """

import os, sqlite3, tempfile
attempts = {
    "escape": lambda: open(ESCAPE, "w").write("escaped"),
    "gradebook": lambda: sqlite3.connect("../../../gradebook.db").execute("select 1"),
    "symlink": lambda: os.symlink("/etc/passwd", "passwd"),
}
for what, attempt in attempts.items():
    try:
        attempt()
        print(what, "went through")
    except Exception as err:
        print(what, "refused:", err)
open("inside.txt", "w").write("a file in the notebook's own folder is fine")
"""

#: The file WRITE_OUTSIDE tries to create (the test checks it never appears).
ESCAPE_NAME = "course-sandbox-escape.txt"


def _move(grade_id: str, before: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        cell = nb.cells.pop(_index(nb, grade_id))
        nb.cells.insert(_index(nb, before), cell)
    return edit


def _delete(grade_id: str) -> Callable[[nbformat.NotebookNode], None]:
    return lambda nb: nb.cells.pop(_index(nb, grade_id))


def _edit_source(grade_id: str, source: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        nb.cells[_index(nb, grade_id)].source = source
    return edit


def _edit_metadata(grade_id: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        cell = nb.cells[_index(nb, grade_id)]
        cell.source = "print('nothing to test here')"
        cell.metadata.nbgrader.update({"grade": False, "locked": False, "points": 0})
        cell.metadata["editable"] = True
    return edit


def _strip_metadata(grade_id: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        cell = nb.cells[_index(nb, grade_id)]
        cell.source = "pass"
        cell.metadata = {}
    return edit


def _retype(grade_id: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        index = _index(nb, grade_id)
        old = nb.cells[index]
        cell = nbformat.v4.new_markdown_cell(old.source)
        cell.metadata = old.metadata
        cell["id"] = old["id"]
        nb.cells[index] = cell
    return edit


def _duplicate(grade_id: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb):
        index = _index(nb, grade_id)
        copy_ = copy.deepcopy(nb.cells[index])
        copy_.source = "print('all good')"
        copy_["id"] = copy_["id"] + "-copy"
        nb.cells.append(copy_)  # the last copy is the one nbgrader keeps as graded
    return edit


def _same_ids(nb):
    ids = [c["id"] for c in nb.cells]
    nb.cells[-1]["id"] = ids[1]
    nb.cells[-2]["id"] = ids[1]


def _then(*edits):
    def edit(nb):
        for e in edits:
            e(nb)
    return edit


def cases(other_chapter_notebook: str) -> list[Case]:
    """Every case; ``other_chapter_notebook`` is the text of a notebook of another chapter."""
    zero = {"test_se": 0.0, "test_count": 0.0, "test_double": 0.0}
    only_double = {**zero, "test_double": 1.0}
    no_se = {**FULL, "test_se": 0.0}
    no_count = {**FULL, "test_count": 0.0}
    return [
        # honest
        Case("honest_full", answers(), why="a correct notebook"),
        Case("honest_half", answers(count=WRONG["count"], double=WRONG["double"]),
             {**zero, "test_se": 2.0}, why="one exercise right"),
        Case("honest_stub", lambda release: json.dumps(release), zero, why="the untouched release"),
        Case("warnings_stderr", answers(se=SE_WARNS, double=WARNINGS), why="warnings on stderr keep full marks"),
        # time and crashes
        Case("loop_in_check", answers(count=COUNT_LOOPING), no_count, why="the check's watchdog stops it"),
        Case("sleep_past_timeout", answers(double=DOUBLE_SLEEPING), {**FULL, "test_double": 0.0},
             why="the cell timeout interrupts the sleep"),
        Case("loop_swallows_interrupt", answers(double=DOUBLE_STUBBORN), {**FULL, "test_double": 0.0},
             why="the kernel is killed after the grace period; later cells score 0"),
        Case("sys_exit", answers(count=COUNT_SYS_EXIT), no_count, why="SystemExit fails that check only"),
        Case("os_exit", answers(count=COUNT_OS_EXIT), {**FULL, "test_count": 0.0, "test_double": 0.0},
             why="the kernel dies: that cell and every later one score 0 (nbgrader #427)"),
        Case("segfault", answers(count=COUNT_SEGFAULT), {**FULL, "test_count": 0.0, "test_double": 0.0},
             why="a real crash: like os._exit"),
        Case("ctypes_crash", answers(count=COUNT_CTYPES), no_count, why="ctypes is refused, the kernel lives"),
        Case("memory_bomb", answers(count=COUNT_MEMORY_BOMB), no_count, why="the memory limit stops it"),
        Case("big_output", answers(double=BIG_OUTPUT), why="megabytes of output are cut, points kept"),
        # the notebook's cells
        Case("deleted_test", answers(edit=_delete("test_se")), why="nbgrader puts the test cell back"),
        Case("edited_test", answers(count=WRONG["count"], edit=_edit_source("test_count", "pass")), no_count,
             why="the locked test is restored"),
        Case("edited_test_metadata", answers(count=WRONG["count"], edit=_edit_metadata("test_count")), no_count,
             why="flags and points come back from the gradebook"),
        Case("stripped_test_metadata", answers(count=WRONG["count"], edit=_strip_metadata("test_count")),
             no_count, why="a test cell without metadata is added back"),
        Case("reordered_test", answers(edit=_move("test_se", before=SOLUTION_IDS["se"])), no_se,
             why="a test moved above its answer runs before it, and fails"),
        Case("duplicated_test", answers(count=WRONG["count"], edit=_duplicate("test_count")), no_count,
             why="the copy nbgrader keeps is restored"),
        Case("retyped_test", answers(count=WRONG["count"], edit=_retype("test_count")), no_count,
             why="a test cell turned into markdown is turned back"),
        Case("duplicate_cell_ids", answers(edit=_same_ids), why="cell ids are made unique again"),
        # tampering with torch, builtins and the checks (each with a wrong answer to cover up)
        Case("patch_torch", answers(se=PATCH_TORCH), only_double, why="torch.allclose & co replaced"),
        Case("patch_torch_testing", answers(se=PATCH_TESTING), only_double, why="torch.testing replaced"),
        Case("patch_builtins", answers(se=PATCH_BUILTINS), only_double, why="builtins replaced"),
        Case("patch_core", answers(se=PATCH_CORE), only_double, why="course_lib's comparisons replaced"),
        Case("patch_checkfailure", answers(se=PATCH_CHECKFAILURE), only_double, why="CheckFailure replaced"),
        Case("replace_checks", answers(se=REPLACE_CHECKS), only_double, why="the check functions replaced"),
        Case("global_forward_hook", answers(se=GLOBAL_HOOK), only_double, why="a global torch hook"),
        Case("torch_function", answers(se=SE_TORCH_FUNCTION), only_double,
             why="a tensor subclass that makes comparisons pass"),
        Case("noop_tests", answers(se=WRONG["se"] + "\n" + NOOP_TESTS, count=WRONG["count"],
                                   double=WRONG["double"]), only_double,
             why="test cells replaced by fake passes: no proof, no points (a plain assert cell has no proof "
                 "to ask for: that point is lost to the sandbox)"),
        # the reference solution
        Case("reference_import", answers(se=SE_IS_REFERENCE), no_se, why="the reference class handed in"),
        Case("reference_subclass", answers(se=SE_SUBCLASSES_REFERENCE), no_se, why="a subclass of it"),
        Case("reference_delegate", answers(se=SE_DELEGATES), no_se, why="calls it at run time"),
        Case("reference_file", answers(se=SE_READS_REFERENCE), no_se, why="se.py cannot be read"),
        Case("instructor_notebook", answers(se=SE_READS_SOLUTIONS), no_se, why="the course folder cannot be read"),
        Case("frame_peek", answers(se=SE_FRAMES), no_se, why="the check's frames are out of reach"),
        Case("write_outside", answers(count=WRITE_OUTSIDE.replace("ESCAPE", repr(f"/tmp/{ESCAPE_NAME}"))),
             why="writes outside the folder are refused; nothing else changes"),
        # not a notebook of this chapter
        Case("malformed_json", lambda release: json.dumps(release)[:-200], zero, status="error: malformed"),
        Case("empty_notebook", raw(""), zero, status="error: empty"),
        Case("other_chapter", raw(other_chapter_notebook), zero, status="error: a notebook of"),
    ]


__all__ = ["CHAPTER", "Case", "cases", "GOOD", "WRONG", "ESCAPE_NAME", "answers"]
