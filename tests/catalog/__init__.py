"""The grader catalog: for every graded exercise, wrong implementations that students and popular copies
actually write (each with the id of its mistake) and valid implementations written differently.

Each chapter module ``tests/catalog/chNN_*.py`` defines ``EXERCISES`` (a list of :class:`Exercise`) and
``IMPLS`` (a list of :class:`Impl`). An implementation is source code, not a class, so that the very same
text can be pasted into a notebook's solution cell and graded by a real nbgrader autograde.

The contract, checked by tests/test_catalog.py and reported by ``make grader-report``:
- every wrong implementation fails the exercise's checks (visible, then hidden);
- the first failure names the catalogued mistake (``CheckFailure.mistake``);
- every valid alternative passes both.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# What a student's notebook has imported before the solution cells (every chapter imports these).
PRELUDE = """\
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, reduce, repeat, einsum
"""


@dataclass(frozen=True)
class Exercise:
    chapter: str                  # "01_se"
    name: str                     # what the report shows, e.g. "SqueezeExcitation"
    symbol: str                   # the class or function the notebook asks for
    visible: Callable[[Any], None]
    hidden: Callable[[Any], None] | None
    solution_id: str              # nbgrader grade_id of the solution cell that defines `symbol`
    test_id: str                  # nbgrader grade_id of the test cell that grades it


@dataclass(frozen=True)
class Impl:
    exercise: Exercise
    label: str                    # "softmax over dim=1"
    source: str                   # defines exercise.symbol, given PRELUDE
    mistake: str | None = None    # None: a valid alternative that must get full marks
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def valid(self) -> bool:
        return self.mistake is None

    def load(self) -> Any:
        namespace: dict[str, Any] = {}
        exec(compile(PRELUDE + self.source, f"<catalog {self.exercise.chapter}: {self.label}>", "exec"), namespace)
        return namespace[self.exercise.symbol]


@dataclass
class Outcome:
    impl: Impl
    passed: bool
    mistake: str | None           # the first failure's mistake id (None when it passed)
    message: str
    visible_s: float
    hidden_s: float

    @property
    def right_hint(self) -> bool:
        return (not self.impl.valid) and self.mistake == self.impl.mistake


def grade(impl: Impl) -> Outcome:
    """Run the exercise's checks on ``impl`` the way a notebook's test cell does: visible, then hidden."""
    from course_lib.checks import CheckFailure

    obj = impl.load()
    timings = []
    for check in (impl.exercise.visible, impl.exercise.hidden):
        if check is None:
            timings.append(0.0)
            continue
        started = time.perf_counter()
        try:
            check(obj)
        except CheckFailure as failure:
            timings.append(time.perf_counter() - started)
            timings += [0.0] * (2 - len(timings))
            return Outcome(impl, False, failure.mistake, str(failure), *timings)
        timings.append(time.perf_counter() - started)
    return Outcome(impl, True, None, "", *timings)


def question(chapter: str, visible: Any, hidden: Any, qid: str) -> Exercise:
    """The exercise of a conceptual question ``qid``: the notebook's answer ``qid``, set in the cell
    ``<qid>_solution`` and graded in ``test_<qid>`` by the checks ``check_<qid>`` and ``hidden_<qid>`` of the
    chapter's ``visible`` and ``hidden`` modules."""
    return Exercise(chapter, qid, qid, getattr(visible, f"check_{qid}"), getattr(hidden, f"hidden_{qid}"),
                    f"{qid}_solution", f"test_{qid}")


def load_all() -> tuple[list[Exercise], list[Impl]]:
    exercises: list[Exercise] = []
    impls: list[Impl] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        exercises += getattr(module, "EXERCISES", [])
        impls += getattr(module, "IMPLS", [])
    return exercises, impls
