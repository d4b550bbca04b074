"""Auto-graded conceptual questions: a number, a shape, a letter or a set of letters, checked like an exercise.

A chapter declares each question once, as data, in its visible check file, and has its check generated::

    ROW_DIM = Question("q_row_dim", "int", key="3f0c...", advice="Rows are indexed by ...",
                       wrong={"9ab1...": ("softmax_dim", "dim 1 normalises the columns: ...")},
                       doc="The dim the softmax of the map runs over.")
    __all__ += define_question_checks(globals(), ROW_DIM)    # defines check_q_row_dim

and its hidden module declares the plain answers and has the hidden checks generated::

    ANSWERS = {"q_row_dim": ("int", <the answer>, {})}
    define_hidden_question_checks(globals(), ANSWERS)     # defines hidden_q_row_dim

The right answer is not stored in plain text in the student package: ``key`` is a salted hash of its
canonical form (``answer_key``), and so are the known wrong answers in ``wrong``, each with the mistake id
and the message it earns. The plain answer lives only in the chapter's hidden module, whose check compares
plainly; a test proves that the key is the hash of that answer.

A hash of a four-way multiple choice can be found by trying the four letters; so can the answer itself, by
running the check four times. Questions that matter for a grade should therefore ask for a number or a set
of letters (2**n combinations), and the written questions carry the reasoning.

Compute a key with ``python -m course_lib question-key QID KIND VALUE [--digits N] [--options S]``. A known
wrong answer is stored the same way, by its key only: in plain text beside its hint it would point to the right
answer. tests/test_question_secrecy.py proves that no shipped file holds an answer, and tests/test_questions.py
lists the plain wrong answer each stored key stands for.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .toolkit import CheckFailure, define_mistake, exercise, passed

KINDS = ("int", "float", "choice", "choices", "shape", "bool")
_SALT = "cnn-attention-course/questions/v1"

define_mistake("answer_form", "the answer is not in the form the question asks for (a number, a shape, a letter)")
define_mistake("wrong_answer", "the answer to a conceptual question is wrong")
define_mistake("unanswered", "the question's answer is still the placeholder (None or ...)")
define_mistake("missing_choice", "a set of statements that leaves out a true one (for the grader's records; the "
                                 "student's message does not say so)")
define_mistake("extra_choice", "a set of statements that adds a false one to the true ones (for the grader's records; "
                               "the student's message does not say so)")


#: the form a set of letters takes; its example is no question's answer (tests/test_question_secrecy.py)
_LETTERS = "letters of the options: a set such as {'x', 'y'}, a list, or one string such as 'xy'"


def _form(message: str) -> CheckFailure:
    return CheckFailure(message, mistake="answer_form")


def _as_int(value: Any, what: str) -> int:
    if hasattr(value, "dim") and hasattr(value, "item") and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool):
        raise _form(f"{what} should be a whole number, got {value!r} (a bool).")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _form(f"{what} should be a whole number, got {value!r} ({type(value).__name__}).")


def canonical(value: Any, kind: str, *, options: str | None = None, digits: int = 3, what: str = "the answer") -> str:
    """The answer in one canonical text form (raises CheckFailure on a wrong form)."""
    if kind not in KINDS:
        raise ValueError(f"Question kind must be one of {KINDS}, got {kind!r}")
    if value is None or value is Ellipsis:
        raise CheckFailure(f"{what} is still the placeholder {value!r}: replace it with your answer.",
                           mistake="unanswered")
    if kind == "int":
        return str(_as_int(value, what))
    if kind == "float":
        if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
            value = value.item()
        if isinstance(value, bool):  # True is an int to Python, never a number the question asks for
            raise _form(f"{what} should be a number, got {value!r} (a bool).")
        if isinstance(value, (str, bytes)):  # as the int and shape kinds: the number itself, not its text
            raise _form(f"{what} should be a number, got {value!r} (a {type(value).__name__}): assign the number, "
                        "not its text.")
        if not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise _form(f"{what} should be a number, got {value!r} ({type(value).__name__}).") from None
        if not math.isfinite(value):
            raise _form(f"{what} should be a finite number, got {value!r}.")
        return f"{float(value):.{digits}g}"
    if kind == "bool":
        if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no"}:
            return str(value.strip().lower() in {"true", "yes"})
        if not isinstance(value, bool):
            raise _form(f"{what} should be True or False, got {value!r}.")
        return str(value)
    if kind == "shape":
        if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
            return "(" + ", ".join(str(_as_int(v, f"each entry of {what}")) for v in value) + ")"
        raise _form(f"{what} should be a shape: a tuple of ints such as (2, 64, 1, 1), got {value!r}.")
    # choice / choices
    letters = options or "abcdefghijklmnopqrstuvwxyz"
    if kind == "choice":
        # one letter in a set, list or tuple of one, as the "choices" questions take their letters
        if isinstance(value, (set, frozenset, list, tuple)) and len(value) == 1:
            value = next(iter(value))
        if not isinstance(value, str) or len(value.strip()) != 1 or value.strip().lower() not in letters:
            raise _form(f"{what} should be one letter among {', '.join(repr(c) for c in letters)}, got {value!r}.")
        return value.strip().lower()
    if isinstance(value, str):
        text = value.lower()
        if "n" not in letters:  # "a, c and d": the word "and" separates letters, as commas do
            text = re.sub(r"\band\b", " ", text)
        picked = [c for c in text if not c.isspace() and c not in ",;"]
    elif hasattr(value, "__iter__"):
        picked = []
        for v in value:
            if not isinstance(v, str) or len(v.strip()) != 1:
                raise _form(f"{what} should be {_LETTERS}; got {value!r}.")
            picked.append(v.strip().lower())
    else:
        raise _form(f"{what} should be {_LETTERS}; got {value!r}.")
    bad = sorted(set(picked) - set(letters))
    if bad:
        raise _form(f"{what}: {', '.join(map(repr, bad))} is not an option; the options are "
                    f"{', '.join(repr(c) for c in letters)}.")
    return "".join(sorted(set(picked)))


def _typed(value: Any, text: str) -> str:
    """The answer as the student wrote it, for the echo of a wrong answer: a plain number as typed (-2, 322.5, not
    the dim or the rounded value it is compared as), anything else in its canonical form."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return text or repr(text)  # an empty set of letters shows as ''


def _hash(qid: str, text: str) -> str:
    return hashlib.sha256(f"{_SALT}|{qid}|{text}".encode()).hexdigest()[:20]


def answer_key(qid: str, value: Any, *, kind: str, options: str | None = None, digits: int = 3) -> str:
    """The salted hash stored as a question's key (or as the key of a known wrong answer)."""
    return _hash(qid, canonical(value, kind, options=options, digits=digits))


@dataclass(frozen=True)
class Question:
    """One auto-graded question. ``wrong`` maps the key of a known wrong answer to (mistake id, message).

    ``key`` and the keys of ``wrong`` are hashes (``answer_key``), never plain values: a plain wrong answer
    beside its message would point to the right one. ``prepare``, when given, maps an answer to the form the
    key was made from before it is checked (e.g. a negative dim to the positive dim it names).
    """

    qid: str
    kind: str
    key: str
    wrong: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    options: str | None = None
    digits: int = 3
    advice: str = ""
    doc: str = ""  # what the question asks, in a line (the generated check's docstring)
    prepare: Callable[[Any], Any] | None = None
    #: for a "choices" question: the message of a set that misses one true statement ("missing_choice") or adds
    #: one false statement ("extra_choice"), about the misconception behind it; without one, ``advice``. Neither
    #: may say how far the set is from the answer: "one away" turns the question into a search by elimination.
    near: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Question {self.qid!r}: kind must be one of {KINDS}, got {self.kind!r}")

    def _candidates(self, value: Any) -> list[str]:
        if self.prepare is not None:
            value = self.prepare(value)
        text = canonical(value, self.kind, options=self.options, digits=self.digits, what="your answer")
        if self.kind != "float":
            return [text]
        # a float answer may sit on a rounding boundary: its neighbours within half a unit of the last digit
        x = float(text)
        step = 10 ** (math.floor(math.log10(abs(x))) - self.digits + 1) if x else 10 ** -self.digits
        return [text, f"{x - step:.{self.digits}g}", f"{x + step:.{self.digits}g}"]

    def check(self, value: Any) -> None:
        candidates = self._candidates(value)
        hashes = [_hash(self.qid, c) for c in candidates]
        if hashes[0] == self.key or (self.kind == "float" and self.key in hashes):
            passed()
            return
        near = self._near_set(candidates[0]) if self.kind == "choices" else None
        for h in hashes[:1]:
            if h in self.wrong:
                mistake, message = self.wrong[h]
                if mistake == "wrong_answer" and near is not None:  # a known wrong set with no id of its own
                    mistake = near[0]
                raise CheckFailure(f"{_typed(value, candidates[0])} is not right. {message}", mistake=mistake)
        if near is not None:
            shown = _typed(value, candidates[0])
            raise CheckFailure(f"{shown} is not right." + (f" {near[1]}" if near[1] else ""), mistake=near[0])
        shown = _typed(value, candidates[0])
        raise CheckFailure(f"{shown} is not right." + (f" {self.advice}" if self.advice else ""),
                           mistake="wrong_answer")


    def _near_set(self, picked: str) -> tuple[str, str] | None:
        """(mistake id, message) for a set one statement away from the answer: the sets with one more option,
        then with one fewer, are compared with the key. The mistake id says which (for the grader's records);
        the message does not: it is the question's text for that misconception (``near``) or its general
        ``advice``, so a student cannot tell a near set from any other wrong one."""
        letters = self.options or ""
        more = ["".join(sorted(picked + c)) for c in letters if c not in picked]
        if any(_hash(self.qid, t) == self.key for t in more):
            return ("missing_choice", self.near.get("missing_choice", self.advice))
        fewer = [picked.replace(c, "") for c in picked]
        if any(t and _hash(self.qid, t) == self.key for t in fewer):
            return ("extra_choice", self.near.get("extra_choice", self.advice))
        return None


def expect_plain(qid: str, value: Any, right: Any, *, kind: str, options: str | None = None,
                 digits: int = 3) -> None:
    """The hidden check: compare with the plain answer (kept out of the student package)."""
    got = canonical(value, kind, options=options, digits=digits, what=qid)
    want = canonical(right, kind, options=options, digits=digits, what=qid)
    if kind == "float":
        if not math.isclose(float(got), float(want), rel_tol=2 * 10 ** (1 - digits)):
            raise CheckFailure(f"{qid}: {got} is not right.", mistake="wrong_answer")
    elif got != want:
        raise CheckFailure(f"{qid}: {got} is not right.", mistake="wrong_answer")
    passed()


#: every question check runs in well under a second; the budget only stops a runaway answer object
QUESTION_BUDGET_S = 2


def _generated(namespace: dict, name: str, exercise_name: str, body, doc: str, question: Question | None = None
               ) -> str:
    body.__name__ = body.__qualname__ = name
    body.__doc__ = doc
    body.__module__ = namespace["__name__"]  # the check index finds a check in the module that defines it
    check = exercise(exercise_name, budget_s=QUESTION_BUDGET_S)(body)
    if question is not None:
        check.question = question  # what tests/test_question_secrecy.py inspects
    namespace[name] = check
    return name


def define_question_checks(namespace: dict, *questions: Question) -> list[str]:
    """Define ``check_<qid>`` (exercise ``<qid>``) in ``namespace`` (a chapter module's ``globals()``) for each
    question: the visible check a notebook's test cell calls. Returns the names defined (for ``__all__``)."""
    names = []
    for question in questions:
        if not isinstance(question, Question):
            raise TypeError(f"define_question_checks takes Question objects, got {question!r}")
        def check(answer: Any, _question: Question = question) -> None:
            _question.check(answer)

        names.append(_generated(namespace, f"check_{question.qid}", question.qid, check,
                                question.doc or f"Question {question.qid}.", question))
    return names


def define_hidden_question_checks(namespace: dict, answers: Mapping[str, tuple[str, Any, Mapping[str, Any]]]
                                  ) -> list[str]:
    """Define ``hidden_<qid>`` (exercise ``<qid> (hidden)``) in ``namespace`` (a hidden module's ``globals()``)
    for each ``qid -> (kind, plain answer, options of canonical())`` of ``answers``: the hidden check, which
    compares with the plain answer. Returns the names defined."""
    names = []
    for qid, (kind, right, options) in answers.items():
        def check(answer: Any, _qid: str = qid, _kind: str = kind, _right: Any = right,
                  _options: Mapping[str, Any] = options) -> None:
            expect_plain(_qid, answer, _right, kind=_kind, **_options)

        names.append(_generated(namespace, f"hidden_{qid}", f"{qid} (hidden)", check,
                                f"Question {qid}, compared with its plain answer."))
    return names


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib question-key",
                                     description="Print the key (salted hash) of VALUE as an answer to question QID: "
                                                 "the key of a right answer or of a known wrong one.")
    parser.add_argument("qid")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("value", help="a Python literal (2, (2, 3), 'b', {'a', 'c'}, 0.125) or a bare word")
    parser.add_argument("--digits", type=int, default=3, help="significant digits of a float answer (default 3)")
    parser.add_argument("--options", default=None, help="the letters of a choice question, e.g. abcd")
    args = parser.parse_args(argv)
    try:
        key = answer_key(args.qid, _parse_value(args.value), kind=args.kind, options=args.options, digits=args.digits)
    except CheckFailure as err:  # VALUE is not of the kind's form
        parser.error(str(err))
    print(key)
    return 0
