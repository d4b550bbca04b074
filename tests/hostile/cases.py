"""Honest, hostile and broken submissions of chapter 01_se, each with the grade it must get.

Every case is a function of the released notebook (what a student receives) returning the text of the
file the student hands in. ``Case.cells`` is the score each graded cell must get (``test_se`` 4 points,
``test_se_parameter_count`` 1, ``test_seresnet50`` 1); ``status`` is "graded" or the start of the error
status the batch must give; ``expect`` holds text a cell's outputs must show (the reason).

A few rules keep the suite fast: the loops and the sleep live in the cheap exercises (the check's
watchdog or the cell timeout stops them within seconds), and one notebook carries several independent
attacks where each lands in a different exercise. A tampering finding sticks for the rest of a notebook,
so each kind of tampering has a notebook of its own.

``OWN_SE`` and ``WRONG_SE`` are self-contained answers of the SE exercise (they import what they use),
also run by ``guard_probe.py`` outside any notebook.
"""
from __future__ import annotations

import copy
import json
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import nbformat

from .chapter import CHAPTER, POINTS, SOLUTION_IDS, solution_answers

FULL = dict(POINTS)
ZERO = {cell: 0.0 for cell in POINTS}
#: What an honest student writes: the instructor's solution regions.
GOOD = solution_answers()

#: A correct SqueezeExcitation written from scratch.
OWN_SE = '''import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def attention(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))

    def forward(self, x):
        return x * self.attention(x)'''

#: Wrong answers: each fails its checks, honestly.
WRONG_SE = OWN_SE.replace("torch.sigmoid(self.fc2(", "(self.fc2(")  # the gate has no sigmoid
WRONG = {
    "se": WRONG_SE,
    "count": "def se_parameter_count(channels, reduction=16):\n"
             "    return 2 * channels * (channels // reduction)  # the biases are left out",
    "resnet": "def seresnet50_extra_parameters(reduction=16):\n    return 2_500_000",
}


@dataclass
class Case:
    name: str
    build: Callable[[nbformat.NotebookNode], str]
    cells: dict[str, float] = field(default_factory=lambda: dict(FULL))
    status: str = "graded"
    #: cell (grade id or solution id) -> text its outputs must contain
    expect: dict[str, str] = field(default_factory=dict)
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


def _lean(nb: nbformat.NotebookNode) -> None:
    """Drop the demonstration cells after the last graded cell (a student may; it changes no grade and
    spares the suite their plots)."""
    last = max(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    nb.cells = nb.cells[: last + 1] + [c for c in nb.cells[last + 1:] if c.cell_type != "code"
                                       or c.get("metadata", {}).get("nbgrader", {}).get("locked")]


def answers(se: str = GOOD["se"], count: str = GOOD["count"], resnet: str = GOOD["resnet"], *,
            edit: Callable[[nbformat.NotebookNode], None] | None = None,
            lean: bool = True) -> Callable[[nbformat.NotebookNode], str]:
    """A submission: the release with these answers in its solution cells, then ``edit`` applied.
    ``lean``: without the demonstration cells after the last graded cell."""

    def build(release: nbformat.NotebookNode) -> str:
        nb = copy.deepcopy(release)
        for key, code in (("se", se), ("count", count), ("resnet", resnet)):
            nb.cells[_index(nb, SOLUTION_IDS[key])].source = textwrap.dedent(code).strip("\n")
        if lean:
            _lean(nb)
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

RESNET_SLEEPING = """
import time

time.sleep(10_000)  # sleeps past the cell timeout, so the answer below is never defined


def seresnet50_extra_parameters(reduction=16):
    return sum(blocks * se_parameter_count(channels, reduction) for blocks, channels in RESNET50_STAGES)
"""

RESNET_STUBBORN = GOOD["resnet"] + """


import time

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

SE_CTYPES = GOOD["se"].replace("return x * self.attention(x)", """import ctypes
        ctypes.string_at(0)  # would crash the kernel; the sandbox refuses ctypes
        return x * self.attention(x)""")

COUNT_MEMORY_BOMB = """
def se_parameter_count(channels, reduction=16):
    blocks = []
    while True:  # grows until the memory limit stops it
        blocks.append(bytearray(256 * 2**20))
"""

RESNET_BIG_OUTPUT = GOOD["resnet"] + """


for i in range(60_000):
    print(f"line {i} of a lot of output " + "x" * 64)
"""

SE_WARNS = GOOD["se"].replace("return x * self.attention(x)", """import sys, warnings
        warnings.warn("forward: a UserWarning from the student's code", UserWarning)
        print("forward: a note on stderr", file=sys.stderr)
        return x * self.attention(x)""")

RESNET_WARNS = GOOD["resnet"] + """


import sys, warnings

warnings.warn("a UserWarning printed while the answer cell runs", UserWarning)
"""


def _patch(code: str) -> str:
    """A wrong SqueezeExcitation, then ``code`` (which tries to make the checks pass anyway)."""
    return WRONG_SE + "\n\n" + textwrap.dedent(code).strip("\n")


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
builtins.abs = lambda x: 0
builtins.round = lambda *a, **k: 0
""")

PATCH_CORE = _patch("""
import course_lib.checks.toolkit as core
import course_lib.checks.ch01_se as visible
import course_lib.hidden.ch01_se as hidden

def agree(*args, **kwargs):
    return True

def silent(*args, **kwargs):
    return None

core.is_close, core.expect_close = agree, silent
for module in (visible, hidden):  # the names the chapter's checks imported
    for name, fake in (("is_close", agree), ("expect_close", silent), ("expect_close_or_name", silent)):
        if hasattr(module, name):
            setattr(module, name, fake)
""")

PATCH_CHECKFAILURE = _patch("""
import course_lib.checks.toolkit as core
core.CheckFailure.__init__ = lambda self, *a, **k: None
core.CheckFailure = type("CheckFailure", (Exception,), {})
""")

REPLACE_CHECKS = _patch("""
import course_lib.checks.ch01_se as visible
import course_lib.hidden.ch01_se as hidden

def check_se(cls):  # the name the test cell calls
    print("[ok] SqueezeExcitation: 16 checks passed (0.10 s)")

visible.check_se = check_se
hidden.hidden_se = lambda cls: print("[ok] SqueezeExcitation (hidden): 90 checks passed (0.20 s)")
""")

# Every test cell turns into a print of what a pass looks like, with a made-up proof.
NOOP_TESTS = """
def _forge(lines):
    text = "".join(lines)
    if "check_" in text or "hidden_" in text:
        return ['print("[ok] SqueezeExcitation: 16 checks passed (0.10 s) [proof 7:' + "0" * 32 + ']")\\n']
    return lines

get_ipython().input_transformers_cleanup.append(_forge)
"""

SE_IS_REFERENCE = """
from course_lib.reference.se import SqueezeExcitation  # the reference solution itself
"""

SE_SUBCLASSES_REFERENCE = """
import sys

class SqueezeExcitation(sys.modules["course_lib.reference.se"].SqueezeExcitation):
    pass
"""

SE_DELEGATES = """
import sys
from torch import nn

class SqueezeExcitation(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        reference = getattr(sys.modules["course_lib.reference." + "se"], "Squeeze" + "Excitation")
        self.inner = reference(channels, reduction)

    def attention(self, x):
        return self.inner.attention(x)

    def forward(self, x):
        return self.inner(x)
"""

SE_FILES = """
import importlib.util, pathlib, sqlite3
import course_lib

package = pathlib.Path(course_lib.__file__).parent
found = []
attempts = {
    "se.py": lambda: (package / "reference" / "se.py").read_text(),
    "the hidden checks": lambda: (package / "hidden" / "ch01_se.py").read_text(),
    "the reference's bytecode": lambda: open(importlib.util.cache_from_source(str(package / "reference" / "se.py")), "rb").read(),
    "the instructor's notebook": lambda: open("../../../solutions/CHAPTER/CHAPTER.ipynb").read(),
    "the gradebook": lambda: sqlite3.connect("file:../../../gradebook.db?mode=ro", uri=True).execute(
        "select * from grade").fetchall(),
    "the kernel's environment": lambda: open("/proc/self/environ").read(),
}
for what, attempt in attempts.items():
    try:
        found.append(attempt())
        print(what, "was read")
    except Exception as err:
        print(what, "refused:", err)
""".replace("CHAPTER", CHAPTER)

SE_FRAMES = """
import sys
import torch
from torch import nn

class SqueezeExcitation(nn.Module):
    # looks up the check's expected results in its frames instead of computing anything
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

SE_TORCH_FUNCTION = OWN_SE + """

class Agreeable(torch.Tensor):
    # a tensor that answers every torch function itself: it could make any comparison come out equal
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return super().__torch_function__(func, types, args, kwargs or {})

_plain = SqueezeExcitation

class SqueezeExcitation(_plain):
    def attention(self, x):
        return super().attention(x).as_subclass(Agreeable)

    def forward(self, x):
        return super().forward(x).as_subclass(Agreeable)
"""

#: The file WRITE_OUTSIDE tries to create (the test checks it never appears).
ESCAPE_NAME = "course-sandbox-escape.txt"

COUNT_WRITES_OUTSIDE = GOOD["count"] + f"""


import os, sqlite3
attempts = {{
    "escape": lambda: open({"/tmp/" + ESCAPE_NAME!r}, "w").write("escaped"),
    "gradebook": lambda: sqlite3.connect("../../../gradebook.db").execute("delete from grade"),
    "gradebook by uri": lambda: sqlite3.connect("file://" + os.path.abspath("../../../gradebook.db"),
                                                uri=True).execute("delete from grade"),
    "symlink": lambda: os.symlink("/etc/passwd", "passwd"),
}}
for what, attempt in attempts.items():
    try:
        attempt()
        print(what, "went through")
    except Exception as err:
        print(what, "refused:", err)
open("inside.txt", "w").write("a file in the notebook's own folder is fine")
"""


# ----------------------------------------------------------------------------------------------
# surgery on the notebook's cells
# ----------------------------------------------------------------------------------------------
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
        copy_ = copy.deepcopy(nb.cells[_index(nb, grade_id)])
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
    se, count, resnet = "test_se", "test_se_parameter_count", "test_seresnet50"
    only_se = {**ZERO, se: FULL[se]}
    no_se = {**FULL, se: 0.0}
    tampering = "tampering detected"
    return [
        # honest: their grades must not depend on who is graded beside them
        Case("honest_full", answers(lean=False), expect={se: "[ok] SqueezeExcitation (hidden)"},
             why="the instructor's solution"),
        Case("honest_half", answers(se=SE_WARNS, count=WRONG["count"], resnet=RESNET_WARNS, lean=False), only_se,
             expect={count: "a bias is"},
             why="one exercise right, one wrong, one right but whose test fails with the wrong count; the "
                 "right one warns on stderr and keeps its points"),
        # time and crashes
        Case("loop_and_sleep", answers(count=COUNT_LOOPING, resnet=RESNET_SLEEPING), only_se,
             expect={count: "ran for more than 5 s", resnet: "NameError"},
             why="the check's watchdog stops a loop; the cell timeout interrupts a sleep"),
        Case("stubborn_loop_and_memory_bomb", answers(count=COUNT_MEMORY_BOMB, resnet=RESNET_STUBBORN), only_se,
             expect={count: "MemoryError", resnet: "did not stop when interrupted"},
             why="the memory limit stops the bomb; a loop that swallows the interrupt gets its kernel killed "
                 "and every later cell scores 0"),
        Case("sys_exit_and_ctypes", answers(se=SE_CTYPES, count=COUNT_SYS_EXIT), ZERO,
             expect={se: "ctypes", count: "SystemExit"},
             why="SystemExit fails the checks that call it (the ResNet count calls the SE count); ctypes is "
                 "refused and the kernel lives"),
        Case("os_exit", answers(count=COUNT_OS_EXIT), only_se,
             expect={count: "the kernel died", resnet: "did not run"},
             why="the kernel dies: that cell and every later one score 0 (nbgrader #427)"),
        Case("segfault", answers(count=COUNT_SEGFAULT), only_se,
             expect={count: "the kernel died", resnet: "did not run"}, why="a real crash"),
        # files
        Case("files", answers(se=SE_FILES, count=COUNT_WRITES_OUTSIDE, resnet=RESNET_BIG_OUTPUT), no_se,
             expect={SOLUTION_IDS["se"]: "refused", SOLUTION_IDS["count"]: "escape refused", se: "NameError"},
             why="reading se.py, the hidden checks, the instructor's notebook or the gradebook is refused; "
                 "so is writing outside the folder; megabytes of output are cut and cost nothing"),
        # the notebook's cells
        Case("cell_surgery_a", answers(count=WRONG["count"], resnet=WRONG["resnet"], edit=_then(
            _delete(se), _edit_source(count, "pass"), _retype(resnet))), only_se,
             why="a deleted test is put back, an edited one restored, one made markdown is code again"),
        Case("cell_surgery_b", answers(count=WRONG["count"], resnet=WRONG["resnet"], edit=_then(
            _edit_metadata(count), _strip_metadata(resnet), _same_ids)), only_se,
             why="edited nbgrader flags come back from the gradebook (plain nbgrader fails the notebook), a "
                 "test without metadata is added back, duplicated cell ids are renamed"),
        Case("cell_surgery_c", answers(resnet=WRONG["resnet"], edit=_then(
            _duplicate(resnet), _move(se, before=SOLUTION_IDS["se"]))), {**ZERO, count: 1.0},
             why="of a duplicated test the copy nbgrader keeps is restored (plain nbgrader fails the notebook); "
                 "a test moved above its answer runs before it and fails"),
        Case("cell_surgery_d", answers(edit=_then(_delete(se), _delete(SOLUTION_IDS["se"]))), no_se,
             why="an answer cell deleted with its test: the test comes back and fails, the other exercises keep "
                 "their points (plain nbgrader fails the whole notebook with a KeyError)"),
        # tampering with torch, builtins and the checks, each covering up a wrong answer
        Case("patch_torch", answers(se=PATCH_TORCH), ZERO, expect={se: tampering},
             why="torch.allclose & co replaced: every check from then on fails"),
        Case("patch_torch_testing", answers(se=PATCH_TESTING), ZERO, expect={se: tampering},
             why="torch.testing replaced"),
        Case("patch_builtins", answers(se=PATCH_BUILTINS), ZERO, expect={se: tampering}, why="builtins replaced"),
        Case("patch_core", answers(se=PATCH_CORE), ZERO, expect={se: tampering},
             why="course_lib's comparisons replaced"),
        Case("patch_checkfailure", answers(se=PATCH_CHECKFAILURE), ZERO, expect={se: tampering},
             why="CheckFailure replaced"),
        Case("replace_checks", answers(se=REPLACE_CHECKS), ZERO,
             expect={se: "did not report a verified pass", count: tampering},
             why="the check functions the test cells call replaced by fakes that print [ok]"),
        Case("noop_tests", answers(se=WRONG_SE + "\n" + NOOP_TESTS, count=WRONG["count"], resnet=WRONG["resnet"]),
             ZERO, expect={se: "did not report a verified pass", count: "did not report a verified pass"},
             why="every test cell turned into a fake pass: no proof, no points"),
        # the reference solution
        Case("reference_import", answers(se=SE_IS_REFERENCE), no_se, expect={se: "reference solution"},
             why="the reference class handed in"),
        Case("reference_subclass", answers(se=SE_SUBCLASSES_REFERENCE), no_se, expect={se: "reference solution"},
             why="a subclass of it"),
        # not a notebook of this chapter
        Case("malformed_json", lambda release: json.dumps(release)[:-200], ZERO, status="error: malformed"),
        Case("empty_notebook", raw(""), ZERO, status="error: empty"),
        Case("other_chapter", raw(other_chapter_notebook), ZERO, status="error: a notebook of"),
    ]


__all__ = ["CHAPTER", "Case", "cases", "GOOD", "OWN_SE", "WRONG", "WRONG_SE", "ESCAPE_NAME", "answers"]
