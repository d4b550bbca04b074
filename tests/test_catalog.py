"""The grader is never fooled and names the mistake: every catalogued implementation, graded by the very
checks the notebooks call (see tests/catalog/__init__.py for the contract)."""
from __future__ import annotations

import pytest

from catalog import grade, load_all
from course_lib.checks import MISTAKES

EXERCISES, IMPLS = load_all()


@pytest.mark.parametrize("impl", [i for i in IMPLS if not i.valid], ids=lambda i: f"{i.exercise.chapter}:{i.label}")
def test_wrong_implementation_is_caught(impl):
    assert impl.mistake in MISTAKES, f"catalog names an unknown mistake id {impl.mistake!r}"
    outcome = grade(impl)
    assert not outcome.passed, f"{impl.label!r} passed the checks of {impl.exercise.name}"


@pytest.mark.parametrize("impl", [i for i in IMPLS if i.valid], ids=lambda i: f"{i.exercise.chapter}:{i.label}")
def test_valid_alternative_gets_full_marks(impl):
    outcome = grade(impl)
    assert outcome.passed, f"{impl.label!r} failed {impl.exercise.name}: {outcome.message}"


def test_wrong_implementations_name_the_right_mistake():
    """Every wrong implementation is caught with the catalogued hint (issue 13: 100 %, was 90 %)."""
    wrong = [i for i in IMPLS if not i.valid]
    if not wrong:
        pytest.skip("no catalog entries yet")
    outcomes = [grade(i) for i in wrong]
    misnamed = [f"{o.impl.exercise.chapter}:{o.impl.label}: expected {o.impl.mistake}, got {o.mistake}"
                for o in outcomes if not o.right_hint]
    assert not misnamed, "\n".join(misnamed)


def test_every_exercise_has_wrong_and_valid_entries():
    for exercise in EXERCISES:
        entries = [i for i in IMPLS if i.exercise is exercise]
        assert any(not i.valid for i in entries), f"{exercise.chapter}/{exercise.name}: no wrong implementation"
        assert any(i.valid for i in entries), f"{exercise.chapter}/{exercise.name}: no valid alternative"
