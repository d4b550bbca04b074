"""No file that students receive gives a conceptual question's answer away (issue 24).

The student bundle ships ``course_lib/`` without ``reference/``, ``hidden/``, ``grading/`` and ``tools/``
(``course_lib.tools.bundle.EXCLUDED``). The visible checks store each answer as a salted hash
(``course_lib.checks.questions.answer_key``); the plain answers live in the hidden modules' ``ANSWERS``. This file
proves, for every question of every chapter:

- its ``key`` is the hash of the plain answer, and the generated check passes that answer;
- no shipped file holds the answer in a form a reader would recognise: a number of 3 or more digits (also written
  792_960 or 792,960, or as 792960.0), a decimal number at 3 to 17 significant digits (of either sign), a fraction
  p / q equal to it, sqrt(n) when it is the root of a whole number, a shape as a tuple or a list; and in any form
  (short numbers and letters too) assigned to the question's name (``q_split = 13``, ``"q_split": 13``);
- the question's own texts (its docstring, advice and hints) do not contain the answer's number (2 digits or
  more), do not state a one-digit answer at the end of a clause ("is 1.", "= 1;"), and never declare a statement right ("(a) is right",
  "Statement c holds", "(e) is true as well"): with the hints readable in the source, that names the answer;
- its known wrong answers are stored as hashes only: a plain wrong value beside its hint (``328320: "Close: gamma
  is a parameter too"``) points to the right one. Every ``Question(...)`` in a shipped file has a literal hash as
  ``key`` and a dict of literal hashes as ``wrong``, and no shipped chapter module calls ``answer_key``.

The counter-tests at the end plant each of these leaks into a copy of a shipped file (or of the whole shipped
tree) and show that the scanner reports it.
"""
from __future__ import annotations

import ast
import importlib
import math
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from course_lib.checks import CheckFailure
from course_lib.checks.questions import KINDS, Question, answer_key, canonical
from course_lib.tools.bundle import EXCLUDED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_lib"
CHAPTERS = ("ch00_shapes", "ch01_se", "ch02_cbam", "ch03_ctdnet_sam", "ch04_hacnn", "ch05_danet_pam",
            "ch06_danet_cam", "ch07_nonlocal_gcnet", "ch08_eca_coordatt", "ch09_capstone")
HASH = re.compile(r"[0-9a-f]{20}")


# --------------------------------------------------------------------------------------------
# what ships, and the questions with their plain answers
# --------------------------------------------------------------------------------------------
def shipped_files(package: Path = PACKAGE) -> dict[str, str]:
    """Relative path -> text of every text file of the student package (binary files cannot hold source)."""
    files = {}
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if not path.is_file() or rel.parts[0] in EXCLUDED or "__pycache__" in rel.parts:
            continue
        try:
            files[str(rel)] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return files


def _plain(answers: Mapping[str, Any], qid: str) -> Any:
    """The plain answer of ``qid`` in a hidden module's ANSWERS: a value, or (kind, value, options of canonical)."""
    for name in (qid, qid.removeprefix("q_")):
        if name in answers:
            value = answers[name]
            if (isinstance(value, tuple) and len(value) == 3 and value[0] in KINDS
                    and isinstance(value[2], Mapping)):
                return value[1]
            return value
    raise KeyError(f"{qid} has no plain answer in the hidden module's ANSWERS")


def questions() -> list[tuple[str, Question, Any]]:
    """(chapter, Question, plain answer) for every generated question check of every chapter."""
    found = []
    for chapter in CHAPTERS:
        visible = importlib.import_module(f"course_lib.checks.{chapter}")
        answers = importlib.import_module(f"course_lib.hidden.{chapter}").ANSWERS
        for name, check in sorted(vars(visible).items()):
            if name.startswith("check_q_"):
                question = check.question  # an AttributeError here is a hand-written wrapper
                found.append((chapter, question, _plain(answers, question.qid)))
    return found


QUESTIONS = questions()
IDS = [f"{chapter}:{q.qid}" for chapter, q, _ in QUESTIONS]


def texts(question: Question) -> list[str]:
    """What a reader of the question's source sees: its docstring, advice and hints."""
    return [question.doc, question.advice, *(hint for _, hint in question.wrong.values())]


# --------------------------------------------------------------------------------------------
# the scanner
# --------------------------------------------------------------------------------------------
_BEFORE, _AFTER = r"(?<![\w.])", r"(?![\w]|\.\d)"


def _number(text: str) -> str:
    return _BEFORE + re.escape(text) + _AFTER


def _int_forms(n: int) -> list[str]:
    digits = str(abs(n))
    groups = [digits[max(0, i - 3):i] for i in range(len(digits), 0, -3)][::-1]
    forms = {_number(digits), _BEFORE + re.escape(digits) + r"\.0+\b"}
    forms |= {_number(sep.join(groups)) for sep in ("_", ",")}
    return sorted(forms)


def distinctive_forms(question: Question, plain: Any) -> list[str]:
    """Regexes for the forms of the answer that mean it wherever they stand (see the module's docstring)."""
    kind = question.kind
    if kind == "int":
        n = int(plain)
        return _int_forms(n) if abs(n) >= 100 else []
    if kind == "float":
        x = abs(float(plain))
        forms = set()
        if x.is_integer() and x >= 100:
            forms |= set(_int_forms(int(x)))
        for digits in range(question.digits, 18):
            text = f"{x:.{digits}g}"
            if "." in text or "e" in text or len(text.lstrip("0")) >= 3:
                forms.add(_number(text))
        fraction = Fraction(x).limit_denominator(10_000)
        if fraction.denominator > 1 and math.isclose(float(fraction), x, rel_tol=1e-12):
            forms.add(rf"(?<![\w.]){fraction.numerator}\s*/\s*{fraction.denominator}(?![\w]|\.\d)")
        square = round(x * x)
        if square > 1 and not x.is_integer() and math.isclose(x * x, square, rel_tol=1e-12):
            forms.add(rf"sqrt\(\s*{square}\s*\)|(?<![\w.]){square}\s*\*\*\s*0?\.5")
        return sorted(forms)
    if kind == "shape":
        inner = r"\s*,\s*".join(str(int(v)) for v in plain)
        return [rf"[(\[]\s*{inner}\s*,?\s*[)\]]"]
    return []  # a letter, a set of letters or a bool means nothing outside its question: see assignments()


_LITERAL = re.compile(r"""\(?\s*(?:"(?:int|float|choice|choices|shape|bool)"\s*,\s*)?"""
                      r"""("[^"\n]*"|'[^'\n]*'|\{[^}\n]*\}|\[[^\]\n]*\]|\([^)\n]*\)|[-+]?[\d_.]+(?:e[-+]?\d+)?|True|False)""")


def assignments(question: Question, plain: Any, text: str) -> Iterator[str]:
    """The places in ``text`` where the question's name is given its right answer (in any form)."""
    want = canonical(plain, question.kind, options=question.options, digits=question.digits)
    for match in re.finditer(rf"""\b{re.escape(question.qid)}\b["']?\s*[:=]\s*""", text):
        literal = _LITERAL.match(text, match.end())
        if literal is None:
            continue
        try:
            value = ast.literal_eval(literal.group(1).replace("_", "") if literal.group(1)[0] not in "\"'"
                                     else literal.group(1))
            if question.prepare is not None:
                value = question.prepare(value)
            got = canonical(value, question.kind, options=question.options, digits=question.digits)
        except Exception:  # noqa: BLE001 - not a literal of the question's kind: not its answer
            continue
        if got == want or (question.kind == "float" and math.isclose(float(got), float(want), rel_tol=1e-2)):
            yield text[match.start():literal.end()]


_CLAIM = re.compile(r"\(\s*[a-f]\s*\)(?:\s*(?:,|and)\s*\(\s*[a-f]\s*\))*\s+(?:is|are)\s+(?:right|true|correct)\b"
                    r"|\bstatements?\s+[a-f](?:\s*(?:,|and)\s*[a-f])*\s+(?:holds?|is\s+true|is\s+right|are\s+true)\b"
                    r"|\(\s*[a-f]\s*\)\s+holds\b|\bis\s+(?:true|right)\s+as\s+well\b", re.IGNORECASE)


def own_text_leaks(question: Question, plain: Any) -> list[str]:
    """What the question's docstring, advice and hints say that names its answer."""
    found = []
    own = "\n".join(texts(question))
    if question.kind in ("int", "float"):
        x = float(question.prepare(plain) if question.prepare else plain)
        if x.is_integer() and abs(x) >= 10:
            found += [m.group(0) for m in re.finditer(_number(str(int(abs(x)))), own)]
        elif x.is_integer():  # one digit: only where the text states it
            n = str(int(abs(x)))
            found += [m.group(0) for m in re.finditer(  # "the rank is 1.", "dim = 2;" (not "A = 1 e^T")
                rf"(?:\b(?:is|are|be|equals?|gives|makes|answer)\s+|=\s*){n}(?=\s*(?:[.,;:!?)]|$))", own, re.M)]
    found += [m.group(0) for m in _CLAIM.finditer(own)]
    return found


def scan(files: Mapping[str, str], items=None) -> list[str]:
    """Every leak of every question's answer in ``files`` (relative path -> text), as readable lines."""
    leaks = []
    for chapter, question, plain in (QUESTIONS if items is None else items):
        forms = [re.compile(form) for form in distinctive_forms(question, plain)]
        for path, text in files.items():
            for form in forms:
                leaks += [f"{path}: {question.qid}'s answer as {m.group(0)!r}" for m in form.finditer(text)]
            leaks += [f"{path}: {question.qid} assigned its answer: {a!r}" for a in assignments(question, plain, text)]
    return leaks


def stored_in_plain(path: str, source: str) -> list[str]:
    """Questions in ``source`` whose key or known wrong answers are not literal hashes, and answer_key calls."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        if name == "answer_key" and not path.endswith("questions.py"):
            found.append(f"{path}:{node.lineno}: answer_key(...) computes a key from a plain value")
        if name != "Question":
            continue
        fields = {k.arg: k.value for k in node.keywords}
        key = fields.get("key", node.args[2] if len(node.args) > 2 else None)
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and HASH.fullmatch(key.value)):
            found.append(f"{path}:{node.lineno}: a Question's key is not a literal hash")
        wrong = fields.get("wrong", node.args[3] if len(node.args) > 3 else None)
        if wrong is None:
            continue
        if not isinstance(wrong, ast.Dict):
            found.append(f"{path}:{node.lineno}: a Question's wrong answers are not a dict of literal hashes")
            continue
        for k in wrong.keys:
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str) and HASH.fullmatch(k.value)):
                shown = ast.get_source_segment(source, k) if k is not None else "**"
                found.append(f"{path}:{k.lineno if k else node.lineno}: a known wrong answer in plain text: {shown}")
    return found


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------
def test_the_shipped_package_is_what_the_bundle_ships():
    files = shipped_files()
    assert {"checks/questions.py", "checks/toolkit.py"} <= set(files)
    assert all(f"checks/{chapter}.py" in files for chapter in CHAPTERS)
    assert not any(path.split("/")[0] in ("reference", "hidden", "grading", "tools") for path in files)
    assert len(QUESTIONS) == len(set(IDS)) >= 36


@pytest.mark.parametrize("chapter, question, plain", QUESTIONS, ids=IDS)
def test_key_is_the_hash_of_the_plain_answer(chapter, question, plain, capsys):
    value = question.prepare(plain) if question.prepare else plain
    assert question.key == answer_key(question.qid, value, kind=question.kind, options=question.options,
                                      digits=question.digits)
    check = getattr(importlib.import_module(f"course_lib.checks.{chapter}"), f"check_{question.qid}")
    check(plain)
    assert "[ok]" in capsys.readouterr().out


def test_no_shipped_file_contains_an_answer():
    assert scan(shipped_files()) == []


@pytest.mark.parametrize("chapter, question, plain", QUESTIONS, ids=IDS)
def test_no_hint_advice_or_docstring_names_the_answer(chapter, question, plain):
    assert own_text_leaks(question, plain) == []


def test_known_wrong_answers_are_stored_as_hashes_only():
    leaks = [leak for path, text in shipped_files().items() if path.endswith(".py")
             for leak in stored_in_plain(path, text)]
    assert leaks == []
    assert sum(len(q.wrong) for _, q, _ in QUESTIONS) >= 120  # the scan above did see the questions


def test_the_scanner_finds_every_form_it_looks_for():
    """Each question has at least one way to be caught in a file: its distinctive forms or its assignment."""
    for chapter, question, plain in QUESTIONS:
        assert distinctive_forms(question, plain) or question.kind in ("int", "choice", "choices", "bool"), question
    counts = {q.kind: bool(distinctive_forms(q, p)) for _, q, p in QUESTIONS if q.kind in ("float", "shape")}
    assert counts and all(counts.values())


# --------------------------------------------------------------------------------------------
# counter-tests: plant a leak, the scanner must find it
# --------------------------------------------------------------------------------------------
def _variants(question: Question, plain: Any) -> list[str]:
    """Ways a maintainer could write the plain answer into a check file."""
    kind = question.kind
    if kind == "int":
        n = int(plain)
        out = [str(n)]
        if abs(n) >= 1000:
            out += [f"{n:_}", f"{n:,}", f"{n}.0"]
        return out
    if kind == "float":
        x = float(plain)
        return [f"{x:.{question.digits}g}", repr(x), f"{x:.{question.digits + 1}g}"]
    if kind == "shape":
        return [str(tuple(plain)), str(list(plain)), "(" + ",".join(map(str, plain)) + ")"]
    return [repr(plain)]


@pytest.mark.parametrize("chapter, question, plain", QUESTIONS, ids=IDS)
def test_counter_an_answer_planted_in_a_copy_of_a_shipped_file_is_found(chapter, question, plain):
    path = f"checks/{chapter}.py"
    source = shipped_files()[path]
    planted = source + f"\n{question.qid} = {plain!r}  # planted\n"
    assert any(question.qid in leak for leak in scan({path: planted}))
    if distinctive_forms(question, plain):  # in a hint, in every way it could be written
        for text in _variants(question, plain):
            hint = f'\nHINT = "Close: the right answer is {text}, not this."\n'
            assert any(question.qid in leak for leak in scan({path: source + hint})), text
    assert not any(question.qid in leak for leak in scan({path: source}))


def test_counter_a_leak_planted_in_a_copy_of_the_shipped_tree_is_found(tmp_path):
    copy = tmp_path / "course_lib"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pt", "*.png", "*.pth"))
    assert scan(shipped_files(copy)) == []
    target = copy / "checks" / "ch05_danet_pam.py"
    target.write_text(target.read_text() + '\n_NOTE = "PAM at C = 512 has 328_321 parameters."\n')
    (copy / "figures" / "notes.md").write_text("The map of chapter 05 takes 324.0 MiB.\n")
    (copy / "hidden" / "ch05_extra.py").write_text("ANSWER = 328321\n")  # hidden/ does not ship: not a leak
    leaks = scan(shipped_files(copy))
    assert any(leak.startswith("checks/ch05_danet_pam.py: q_pam_params") for leak in leaks), leaks
    assert any(leak.startswith("figures/notes.md: q_map_mib") for leak in leaks), leaks
    assert not any(leak.startswith("hidden/") for leak in leaks)


def test_counter_plain_wrong_answers_are_found():
    """The form issue 24 found in chapter 05: plain wrong values beside their hints, hashed at import."""
    source = '''
def _wrong(qid, kind, cases, **kw):
    return {answer_key(qid, value, kind=kind, **kw): hint for value, hint in cases.items()}


Q_PAM_PARAMS = Question(
    "q_pam_params", "int", key="baee9d85ae380b0f8457",
    wrong=_wrong("q_pam_params", "int", {328320: ("param_count", "Close: gamma is a parameter too (one number).")}))
Q_OTHER = Question("q_other", "int", key=answer_key("q_other", 3, kind="int"),
                   wrong={328320: ("param_count", "Close: gamma is a parameter too (one number).")})
'''
    found = stored_in_plain("checks/ch05_danet_pam.py", source)
    assert any("answer_key(...)" in f for f in found)
    assert any("wrong answers are not a dict" in f for f in found)
    assert any("key is not a literal hash" in f for f in found)
    assert any("a known wrong answer in plain text: 328320" in f for f in found)
    assert stored_in_plain("checks/ch05_danet_pam.py", shipped_files()["checks/ch05_danet_pam.py"]) == []


@pytest.mark.parametrize("hint", [
    "(a) and (b) are right; (c) is not.",
    "(b) is right, and so is one more.",
    "Statement a holds, but it is not the only one.",
    "(e) is true as well: the seeds are resampled.",
    "(c) holds because of another statement.",
])
def test_counter_a_hint_that_declares_a_statement_right_is_found(hint):
    chapter, question, plain = next(item for item in QUESTIONS if item[1].qid == "q_equivariance")
    planted = Question(question.qid, question.kind, question.key, options=question.options,
                       wrong={**question.wrong, "0" * 20: ("invariance", hint)})
    assert own_text_leaks(planted, plain)


def test_counter_a_hint_that_states_a_short_answer_is_found():
    for qid, hint in (("q_split", "The smallest split is 13 wins."), ("q_pam_rank", "The rank is 1."),
                      ("q_softmax_dim", "The softmax runs along dim = 2.")):
        chapter, question, plain = next(item for item in QUESTIONS if item[1].qid == qid)
        planted = Question(question.qid, question.kind, question.key, options=question.options,
                           wrong={**question.wrong, "0" * 20: ("wrong_answer", hint)}, prepare=question.prepare)
        assert own_text_leaks(planted, plain), qid


def _form_message(chapter: str, question: Question) -> str:
    """What the question's check says to an answer of the wrong form (a word for a number, a number for letters)."""
    check = getattr(importlib.import_module(f"course_lib.checks.{chapter}"), f"check_{question.qid}")
    wrong_form = 3 if question.kind in {"choice", "choices", "bool"} else "some words"
    with pytest.raises(CheckFailure) as failure:
        check(wrong_form)
    assert failure.value.mistake == "answer_form"
    return str(failure.value)


def _letter_forms(letters: str) -> list[str]:
    return [f"'{letters}'", "{" + ", ".join(f"'{c}'" for c in letters) + "}"]


FORMED = [(i, q) for i, q in zip(IDS, QUESTIONS) if q[1].kind in {"choices", "shape"}]


@pytest.mark.parametrize("chapter, question, plain", [q for _, q in FORMED], ids=[i for i, _ in FORMED])
def test_a_form_message_does_not_show_the_answer_as_its_example(chapter, question, plain):
    # the form messages are shared by every question; their example must not be some question's answer
    message = _form_message(chapter, question)
    answer = canonical(plain, question.kind, options=question.options)
    forms = _letter_forms(answer) if question.kind == "choices" else [answer]
    assert not [form for form in forms if form in message], message


def test_counter_an_example_that_is_an_answer_is_found():
    # chapter 06's q_symmetric ("ac") met the old example "{'a', 'c'} or 'ac'" in every form message
    old = "your answer should be letters such as {'a', 'c'} or 'ac', got 3."
    assert [form for form in _letter_forms("ac") if form in old] == ["'ac'", "{'a', 'c'}"]
