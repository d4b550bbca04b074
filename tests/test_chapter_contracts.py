"""The contracts every chapter keeps, run for every chapter in solutions/ (``notebooks.chapters()``):

- the stored expected values of its visible checks equal a fresh build (``build_expected()``);
- every graded check its notebook calls passes on the reference, visible and hidden, and prints one [ok];
- every graded check names an untouched stub ``not_implemented``;
- every visible check of an exercise runs in under 1 s (the student waits for it);
- the notebook's solution cells pass every graded cell's checks, exercises and questions;
- every written question carries its model answer and a 2-point rubric.

The graded checks are read from the notebook's test cells, so a new exercise is covered without an edit here;
what passes it comes from ``chapter_cases.REFERENCES``, and a symbol missing there fails by name. What is
particular to one chapter stays in ``tests/test_chNN_*.py``.
"""
from __future__ import annotations

import functools
import importlib
import time

import pytest

from chapter_cases import REFERENCES, graded_cells, run_solution, stub_for, written_cells
from course_lib.checks import CheckFailure
from course_lib.checks.toolkit import expected
from course_lib.tools import notebooks as nbs
from stored_values import assert_same_values

CHAPTERS = nbs.chapters()
pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapters in solutions/ yet")
CELLS = [cell for chapter in CHAPTERS for cell in graded_cells(chapter)]
EXERCISE_CELLS = [cell for cell in CELLS if not cell.is_question]
VISIBLE = [pytest.param(c.chapter, name, symbol, id=f"{c.chapter}-{name}")
           for c in EXERCISE_CELLS for name, symbol in c.visible]
HIDDEN = [pytest.param(c.chapter, name, symbol, id=f"{c.chapter}-{name}")
          for c in EXERCISE_CELLS for name, symbol in c.hidden]


def _visible(chapter: str):
    return importlib.import_module(f"course_lib.checks.ch{chapter}")


def _hidden(chapter: str):
    return importlib.import_module(f"course_lib.hidden.ch{chapter}")


def _check(chapter: str, name: str):
    module = _visible(chapter) if name.startswith("check_") else _hidden(chapter)
    assert hasattr(module, name), f"{chapter}: the notebook calls {name}, which {module.__name__} does not define"
    return getattr(module, name)


@functools.cache
def _references(chapter: str) -> dict:
    assert chapter in REFERENCES, (f"{chapter}: tests/chapter_cases.py REFERENCES has no entry for this chapter, so "
                                   "its checks cannot be run on a reference: add one")
    return REFERENCES[chapter]()


def _reference(chapter: str, symbol: str):
    found = _references(chapter)
    assert symbol in found, f"{chapter}: chapter_cases.REFERENCES gives no reference for {symbol!r} (it has {sorted(found)})"
    return found[symbol]


@pytest.fixture(scope="module")
def solutions():
    return functools.cache(run_solution)


# ------------------------------------------------------------------------------------------------
# the chapter has what the contracts need
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_graded_exercises_with_references(chapter):
    exercises = [c for c in EXERCISE_CELLS if c.chapter == chapter]
    assert exercises, f"{chapter}: no graded test cell calls an exercise's check, so no contract below covers it"
    for cell in exercises:
        assert cell.visible, f"{chapter}: graded cell {cell.grade_id} calls no visible check"
        for _, symbol in cell.visible + cell.hidden:
            _reference(chapter, symbol)


# ------------------------------------------------------------------------------------------------
# stored expected values
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_stored_expected_values_equal_a_fresh_build(chapter):
    hidden = _hidden(chapter)
    assert hasattr(hidden, "build_expected"), f"{hidden.__name__} has no build_expected(): nothing to compare"
    assert_same_values(expected(f"ch{chapter}"), hidden.build_expected())


# ------------------------------------------------------------------------------------------------
# the checks on the reference, on a stub, and their speed
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter, check, symbol", VISIBLE)
def test_visible_check_passes_on_the_reference(chapter, check, symbol, capsys):
    _check(chapter, check)(_reference(chapter, symbol))
    assert capsys.readouterr().out.count("[ok]") == 1


@pytest.mark.parametrize("chapter, check, symbol", HIDDEN)
def test_hidden_check_passes_on_the_reference(chapter, check, symbol, capsys):
    _check(chapter, check)(_reference(chapter, symbol))
    out = capsys.readouterr().out
    assert out.count("[ok]") == 1 and "note:" not in out, out  # the checks' own calls raise no warnings


@pytest.mark.parametrize("chapter, check, symbol", VISIBLE + HIDDEN)
def test_check_fails_on_a_stub(chapter, check, symbol):
    with pytest.raises(CheckFailure) as info:
        _check(chapter, check)(stub_for(_reference(chapter, symbol)))
    assert info.value.mistake == "not_implemented", str(info.value)


@pytest.mark.parametrize("chapter, check, symbol", VISIBLE)
def test_visible_check_runs_under_one_second(chapter, check, symbol):
    run, arg = _check(chapter, check), _reference(chapter, symbol)
    run(arg)  # warm-up: the expected-file load, the first conv call
    started = time.perf_counter()
    run(arg)
    assert time.perf_counter() - started < 1.0, check


# ------------------------------------------------------------------------------------------------
# the notebook's solution
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.chapter}-{c.grade_id}")
def test_solution_passes_the_graded_cell(solutions, cell, capsys):
    assert not cell.unread, f"{cell.chapter}: graded cell {cell.grade_id} holds lines this test cannot run: {cell.unread}"
    assert cell.visible or cell.hidden, f"{cell.chapter}: graded cell {cell.grade_id} calls no check"
    namespace = solutions(cell.chapter).namespace
    for name, symbol in cell.visible + cell.hidden:
        _check(cell.chapter, name)(namespace[symbol])
    assert capsys.readouterr().out.count("[ok]") == len(cell.visible + cell.hidden)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_written_questions_have_a_model_answer_and_rubric(chapter):
    cells = written_cells(chapter)
    assert cells, f"{chapter}: no written question (a markdown solution cell) to check"
    for cell in cells:
        meta = cell.metadata["nbgrader"]
        assert meta.get("grade") and meta.get("solution") and meta.get("points") == 2, (meta.get("grade_id"), meta)
        assert "### BEGIN SOLUTION" in cell.source and "**Rubric (2 points):**" in cell.source, meta.get("grade_id")
