"""The question toolkit (course_lib/checks/questions.py): right answers in any reasonable form pass, wrong ones
never do, known wrong answers get their own hint, and the key does not contain the answer."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from course_lib.checks import CheckFailure
from course_lib.checks.questions import Question, answer_key, canonical, expect_plain


def question(kind, right, wrong=(), **kw):
    extra = {k: v for k, v in kw.items() if k in ("options", "digits")}
    return Question("q_demo", kind, answer_key("q_demo", right, kind=kind, **extra),
                    wrong={answer_key("q_demo", w, kind=kind, **extra): ("softmax_dim", f"hint for {w!r}")
                           for w in wrong}, advice="generic advice", **kw)


@pytest.mark.parametrize("kind, right, same", [
    ("int", 2, [2, 2.0, torch.tensor(2)]),
    ("shape", (2, 64, 1, 1), [[2, 64, 1, 1], torch.Size([2, 64, 1, 1]), (2, 64, 1.0, 1)]),
    ("choice", "b", ["B", " b "]),
    ("choices", "ac", [{"a", "c"}, "CA", ["c", "a"], "a, c"]),
    ("float", 0.1234, [0.1234, 0.12341, 0.1229, torch.tensor(0.1234)]),
    ("bool", True, [True, "yes", "True"]),
])
def test_right_answer_in_any_reasonable_form_passes(kind, right, same):
    q = question(kind, right, options="abcd" if kind.startswith("choice") else None)
    for value in same:
        q.check(value)


@pytest.mark.parametrize("kind, right, wrong, other", [
    ("int", 2, 1, 3),
    ("shape", (2, 64, 1, 1), (2, 64), (2, 1, 1, 64)),
    ("choice", "b", "a", "c"),
    ("choices", "ac", "a", "abc"),
    ("float", 0.1234, 0.5, 0.13),
    ("bool", True, False, None),
])
def test_wrong_answers_fail_known_ones_with_their_hint(kind, right, wrong, other):
    q = question(kind, right, wrong=[wrong], options="abcd" if kind.startswith("choice") else None)
    with pytest.raises(CheckFailure) as known:
        q.check(wrong)
    assert known.value.mistake == "softmax_dim" and "hint for" in str(known.value)
    if other is not None:
        with pytest.raises(CheckFailure) as unknown:
            q.check(other)
        assert unknown.value.mistake == "wrong_answer" and "generic advice" in str(unknown.value)


@pytest.mark.parametrize("kind, bad", [("int", "two"), ("int", 2.5), ("shape", 5), ("choice", "e"),
                                       ("choice", "ab"), ("choices", "az"), ("float", "x"), ("bool", 1)])
def test_wrong_form_is_named(kind, bad):
    q = question(kind, {"int": 2, "shape": (1,), "choice": "a", "choices": "a", "float": 1.0, "bool": True}[kind],
                 options="abcd" if kind.startswith("choice") else None)
    with pytest.raises(CheckFailure) as err:
        q.check(bad)
    assert err.value.mistake == "answer_form"


@pytest.mark.parametrize("placeholder", [None, ...])
def test_placeholder_is_unanswered(placeholder):
    with pytest.raises(CheckFailure) as err:
        question("int", 2).check(placeholder)
    assert err.value.mistake == "unanswered"


def test_key_hides_the_answer_and_depends_on_the_question():
    key = answer_key("q_demo", 2048, kind="int")
    assert "2048" not in key
    assert key != answer_key("q_other", 2048, kind="int")
    assert key != answer_key("q_demo", 2047, kind="int")


def test_plain_hidden_comparison():
    expect_plain("q_demo", "B", "b", kind="choice", options="abcd")
    expect_plain("q_demo", 0.12341, 0.1234, kind="float")
    with pytest.raises(CheckFailure):
        expect_plain("q_demo", 3, 2, kind="int")


def test_key_command_prints_the_key():
    out = subprocess.run([sys.executable, "-m", "course_lib.checks.questions", "key", "q_demo", "shape",
                          "(2, 3)"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == answer_key("q_demo", (2, 3), kind="shape")
    assert canonical([2, 3], "shape") == "(2, 3)"
