"""How much of each answer a student notebook gives away: ``python -m course_lib giveaways [CHAPTER ...]``.

An exercise is worthless as an assignment when its answer can be copied from the text around it. For every
answer (the ``### BEGIN SOLUTION`` region of a solution cell in ``solutions/``) this compares with the
student notebook (``notebooks/``) outside the answer cells:

* **lines**: answer lines (12 characters or more, comments and blank lines aside) that appear verbatim,
  whitespace collapsed, anywhere else in the student notebook;
* **calls**: calls the answer makes that appear as code elsewhere: in code cells, in markdown code spans and
  blocks, and in the comments and docstrings of the stubs. Calls are compared with variable names as
  wildcards and constants kept: the answer's ``x.mean((2, 3), keepdim=True)`` matches a shown
  ``feats.mean((2, 3), keepdim=True)``, and its ``nn.Conv2d(c, c // r, 1)`` matches a shown
  ``nn.Conv2d(256, 16, 1)``; but a shown ``e.softmax(dim=-1)`` does not give away ``x.softmax(dim=1)``:
  which dim is the thinking, not the call.

Ignored: Python's builtins (``max``, ``int``, ``super``), calls on ``self`` (the student's own layer names),
the setup cell, imports, and a stub's signature lines. The figure printed per chapter is what
tests/test_giveaways.py gates.

The book (``python -m course_lib book``, issue 28) shows each chapter with a correct solution's outputs, so the
measure also reads outputs and HTML pages (the second half of this file): the answers' lines and calls, the hidden
tests' lines, and the auto-graded questions' answers in the forms that name them. ``python -m course_lib giveaways
--book out/book`` measures a built book; tests/test_book.py holds it at 0.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MIN_LINE = 12
MODULES = {"torch": "torch", "nn": "nn", "F": "F", "math": "math", "np": "np", "einops": "einops",
           "torch.nn": "nn", "torch.nn.functional": "F", "nn.functional": "F"}
NAMED_FUNCTIONS = {"rearrange", "reduce", "repeat", "einsum", "pack", "unpack"}
IGNORED_METHODS = {"__init__", "append", "extend", "items", "keys", "values", "format", "join", "get"}
BOILERPLATE_LINES = {"super().__init__()", "raise NotImplementedError()", "# YOUR CODE HERE"}
WILD = "_"


@dataclass(frozen=True)
class Call:
    callee: str
    args: tuple[str, ...]
    keywords: tuple[tuple[str, str], ...]

    def text(self) -> str:
        parts = list(self.args) + [f"{k}={v}" for k, v in self.keywords]
        return f"{self.callee}({', '.join(parts)})"

    def given_away_by(self, shown: "Call") -> bool:
        """True when ``shown`` spells this call out: same callee and arguments, the answer's variables as
        wildcards (a shown variable does not give away a constant of the answer)."""
        if shown.callee != self.callee or len(shown.args) != len(self.args):
            return False
        if dict(shown.keywords).keys() != dict(self.keywords).keys():
            return False
        pairs = list(zip(self.args, shown.args)) + [(v, dict(shown.keywords)[k]) for k, v in self.keywords]
        return all(mine == WILD or mine == theirs for mine, theirs in pairs)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _value(node: ast.AST) -> str:
    try:
        return repr(ast.literal_eval(node))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return WILD


def _callee(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        if func.id in NAMED_FUNCTIONS:
            return func.id
        return None  # builtins and the student's own helpers
    if isinstance(func, ast.Attribute):
        owner = _dotted(func.value)
        if owner in MODULES:
            return f"{MODULES[owner]}.{func.attr}"
        if owner == "self" or (owner or "").startswith("self."):
            return None
        if func.attr in IGNORED_METHODS or func.attr.startswith("__"):
            return None
        return f".{func.attr}"
    return None


def calls_in(tree: ast.AST) -> list[Call]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node.func)
        if callee is None or callee.split(".")[-1] in dir(builtins) and not callee.startswith((".", "torch", "nn",
                                                                                                  "F", "einops")):
            continue
        args = tuple(_value(a) for a in node.args if not isinstance(a, ast.Starred))
        keywords = tuple(sorted((k.arg, _value(k.value)) for k in node.keywords if k.arg))
        found.append(Call(callee, args, keywords))
    return found


def _parse(text: str) -> ast.AST | None:
    text = textwrap.dedent(text).replace("…", WILD)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
    for candidate in (text, f"(\n{text}\n)"):
        try:
            return ast.parse(candidate)
        except SyntaxError:
            continue
    return None


_CALL_FRAGMENT = re.compile(r"[A-Za-z_][\w.]*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)")


def calls_in_text(text: str) -> list[Call]:
    """Calls in code that may not parse as a whole (markdown spans, comments): whole first, then fragments."""
    tree = _parse(text)
    if tree is not None:
        return calls_in(tree)
    out = []
    for fragment in _CALL_FRAGMENT.findall(text.replace("…", WILD)):
        tree = _parse(fragment)
        if tree is not None:
            out += calls_in(tree)
    return out


def _code_calls(source: str) -> list[Call]:
    """Calls in a whole cell's code (comments and docstrings are not code); fragments if it does not parse."""
    tree = _parse(source)
    if tree is None:
        code, _ = _stub_text(source)
        return calls_in_text(code)
    return calls_in(tree)


def solution_region(source: str) -> str | None:
    if BEGIN not in source:
        return None
    inside, keep = False, []
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside:
            keep.append(line)
    return "\n".join(keep)


def _is_solution(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


_SPAN = re.compile(r"```[^\n]*\n(.*?)```|``(.+?)``|`([^`\n]+)`", re.S)


def _markdown_code(text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _SPAN.finditer(text)]


def _stub_text(source: str) -> tuple[str, list[str]]:
    """A stub's text without its signature lines; and its comments and docstrings (scanned as prose)."""
    kept, prose = [], []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in BOILERPLATE_LINES or stripped.startswith(("class ", "def ", "@")):
            continue
        kept.append(line)
        if "#" in line:
            prose.append(line.split("#", 1)[1])
    try:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    prose.append(doc)
    except SyntaxError:
        pass
    return "\n".join(kept), prose


def _squash(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Finding:
    kind: str  # "line" or "call"
    answer: str
    answer_cell: str
    where: str


@dataclass
class Report:
    chapter: str
    lines: int = 0
    calls: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def shown_lines(self) -> int:
        return len({(f.answer_cell, f.answer) for f in self.findings if f.kind == "line"})

    @property
    def shown_calls(self) -> int:
        return len({(f.answer_cell, f.answer) for f in self.findings if f.kind == "call"})


def _cell_name(i: int, cell: dict) -> str:
    head = next((ln for ln in "".join(cell.get("source", "")).splitlines() if ln.strip()), "")[:60]
    return f"cell {i} ({_grade_id(cell) or cell.get('cell_type')}: {head!r})"


def answers_of(solution: dict, student: dict) -> list[tuple[str | None, set[str], set[Call]]]:
    """(grade id, lines, calls) of each answer of a solution notebook: what the student writes, that is the
    solution region less the code its stub in ``student`` provides (a repair exercise's broken code)."""
    stubs = {_grade_id(c): "".join(c.get("source", "")) for c in student["cells"] if _is_solution(c)}
    answers = []
    for cell in solution["cells"]:
        if not _is_solution(cell):
            continue
        region = solution_region("".join(cell["source"]))
        if region is None:
            continue
        # what the student writes: the region less the code the stub provides (a repair exercise's broken code)
        stub = stubs.get(_grade_id(cell), "")
        provided_code, _ = _stub_text(stub)
        provided_lines = {_squash(ln) for ln in provided_code.splitlines()}
        provided_calls = set(_code_calls(stub))
        lines = {_squash(ln) for ln in region.splitlines()} - provided_lines
        lines = {ln for ln in lines if len(ln) >= MIN_LINE and not ln.startswith(("#", "def ", "class ", "@"))
                 and ln not in BOILERPLATE_LINES}
        calls = set(calls_in_text(region)) - provided_calls if cell["cell_type"] == "code" else set()
        answers.append((_grade_id(cell), lines, calls))
    return answers


def measure(solution: dict, student: dict, chapter: str = "") -> Report:
    """Compare a solution notebook's answers with a student notebook (both as nbformat dicts)."""
    report = Report(chapter)
    answers = answers_of(solution, student)
    for _, lines, calls in answers:
        report.lines += len(lines)
        report.calls += len(calls)

    # (grade id of the cell or None, where, squashed text, calls). A stub's own provided code (the broken code
    # of a repair exercise) is the exercise's material, so for its own answer only its prose counts.
    shown: list[tuple[str | None, str, str, list[Call]]] = []
    for i, cell in enumerate(student["cells"]):
        source = "".join(cell.get("source", ""))
        if _grade_id(cell) == "setup":
            continue
        where = _cell_name(i, cell)
        if cell["cell_type"] == "markdown":
            spans = _markdown_code(source)
            shown.append((None, where, _squash(source), [c for s in spans for c in calls_in_text(s)]))
        elif cell["cell_type"] == "code" and _is_solution(cell):
            code, prose = _stub_text(source)
            prose_calls = [c for p in prose for c in calls_in_text(p)]
            shown.append((_grade_id(cell), where + " [its comments and docstrings]", _squash("\n".join(prose)),
                          prose_calls))
            shown.append(("other than " + str(_grade_id(cell)), where, _squash(code), _code_calls(source)))
        elif cell["cell_type"] == "code":
            shown.append((None, where, _squash(source), calls_in_text(source)))

    def visible(grade_id: str | None):
        for owner, where, text, found in shown:
            if owner == f"other than {grade_id}":
                continue  # the answer's own provided code
            yield where, text, found

    for grade_id, lines, calls in answers:
        for line in sorted(lines):
            for where, text, _ in visible(grade_id):
                if line in text:
                    report.findings.append(Finding("line", line, grade_id, where))
                    break
        for call in sorted(calls, key=Call.text):
            for where, _, found in visible(grade_id):
                if any(call.given_away_by(c) for c in found):
                    report.findings.append(Finding("call", call.text(), grade_id, where))
                    break
    return report


def chapter_report(chapter: str, root: Path = REPO) -> Report:
    def load(folder: str) -> dict:
        return json.loads((root / folder / chapter / f"{chapter}.ipynb").read_text())
    return measure(load("solutions"), load("notebooks"), chapter)


def all_chapters(root: Path = REPO) -> list[str]:
    return sorted(p.name for p in (root / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib giveaways", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapters (default: all)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the table, not each finding")
    parser.add_argument("--book", type=Path, metavar="DIR",
                        help="measure the built book in DIR (make book: out/book) instead of the student notebooks")
    args = parser.parse_args(argv)
    if args.book is not None:
        findings = html_report(args.book, REPO, args.chapters or None)
        for f in findings:
            print(f"  [{f.answer_cell}] {f.kind} {f.answer!r} shown on {f.where}")
        print(f"giveaways on the pages of {args.book}: {len(findings)}")
        return 1 if findings else 0
    chapters = args.chapters or all_chapters()
    unknown = sorted(set(chapters) - set(all_chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; expected some of {all_chapters()}")
    reports = [chapter_report(c) for c in chapters]
    print(f"{'chapter':<20} {'answer lines shown':>20} {'answer calls shown':>20}")
    for r in reports:
        print(f"{r.chapter:<20} {f'{r.shown_lines} of {r.lines}':>20} {f'{r.shown_calls} of {r.calls}':>20}")
    total = [sum(getattr(r, a) for r in reports) for a in ("shown_lines", "lines", "shown_calls", "calls")]
    print(f"{'all':<20} {f'{total[0]} of {total[1]}':>20} {f'{total[2]} of {total[3]}':>20}")
    if not args.quiet:
        for r in reports:
            for f in r.findings:
                print(f"  {r.chapter} [{f.answer_cell}] {f.kind} {f.answer!r}\n      shown in {f.where}")
    return 1 if total[0] or total[2] else 0


# --------------------------------------------------------------------------------------------
# the book (issue 28): what a published page must not show
# --------------------------------------------------------------------------------------------
# A page of the book (course_lib/tools/book.py) shows a chapter's released cells with a correct solution's
# outputs. Besides the answers' lines and calls above, it must not show
#
# * **hidden**: a line of a hidden test (``### BEGIN HIDDEN TESTS`` regions of the solution's test cells);
# * **answer**: a conceptual question's answer (course_lib/hidden/chNN_*.py ``ANSWERS``) in a form that names it:
#   a whole number of 3 digits or more (also written 792,960, 792_960, 792 960 or 792960.0), a decimal number at
#   the question's digits or more (also in e-notation), a fraction p / q equal to it, sqrt(n) for the root of a
#   whole number, a shape as a tuple, a list or "2 x 8 x 8"; and any answer, letters and short numbers too,
#   assigned to the question's name (``q_split = 13``, ``"q_split": 13``).
#
# ``output_findings`` measures one output's text (what it prints, its figure texts), ``html_report`` the built
# pages: their text, code blocks, alt texts and titles.
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# a number stands alone: not part of a longer one (8,290 is not 290), nor a format spec (f"{share:>10.1%}")
_BEFORE = r"(?<![\w.<>^:])(?<!\d,)(?<!\d_)"
_AFTER = r"(?![\w]|\.\d|[,_]\d)"


def _number_form(text: str) -> str:
    return _BEFORE + re.escape(text) + _AFTER


@dataclass(frozen=True)
class QuestionAnswer:
    """A conceptual question's plain answer (from the chapter's hidden module)."""

    chapter: str
    qid: str
    kind: str
    value: object
    options: str | None = None
    digits: int = 3

    def forms(self) -> list[re.Pattern[str]]:
        """Regexes for the forms of the answer that name it wherever they stand (see above); none for letters,
        booleans and whole numbers under 100, which name their answer only where assigned to the question (or,
        in a chapter's own outputs, see :meth:`short_shown_in`)."""
        found: set[str] = set()
        if self.kind in ("int", "float"):
            x = abs(float(self.value))
            if x.is_integer() and x >= 100:
                n = int(x)
                groups = f"{n:,}".split(",")
                found |= {_number_form(str(n)), _BEFORE + re.escape(str(n)) + r"\.0+" + _AFTER}
                found |= {_number_form(sep.join(groups)) for sep in (",", "_", " ")}
            if self.kind == "float" and not x.is_integer():
                for digits in range(self.digits, 18):
                    found.add(_number_form(f"{x:.{digits}g}"))
                    found.add(_number_form(f"{x:.{digits - 1}e}"))
                fraction = Fraction(x).limit_denominator(10_000)
                if fraction.denominator > 1 and math.isclose(float(fraction), x, rel_tol=1e-12):
                    found.add(rf"{_BEFORE}{fraction.numerator}\s*/\s*{fraction.denominator}{_AFTER}")
                square = round(x * x)
                if square > 1 and math.isclose(x * x, square, rel_tol=1e-12):
                    found.add(rf"(?:sqrt\(\s*|√\s*){square}{_AFTER}|{_BEFORE}{square}\s*\*\*\s*0?\.5{_AFTER}")
        elif self.kind == "shape":
            values = [str(int(v)) for v in self.value]
            found.add(r"[(\[]\s*" + r"\s*,\s*".join(values) + r"\s*,?\s*[)\]]")
            found.add(_BEFORE + r"\s*[x×]\s*".join(values) + _AFTER)
        return [re.compile(form) for form in sorted(found)]

    def assignments(self, text: str) -> list[str]:
        """Where ``text`` gives the question's name its right answer, in any form."""
        from course_lib.checks.questions import canonical

        want = canonical(self.value, self.kind, options=self.options, digits=self.digits)
        found = []
        for match in re.finditer(rf"""\b{re.escape(self.qid)}\b(?:\s*=|["']\s*:)\s*""", text):
            literal = _LITERAL.match(text, match.end())
            if literal is None:
                continue
            token = literal.group(0)
            try:
                value = ast.literal_eval(token if token[0] in "\"'" else token.replace("_", ""))
                got = canonical(value, self.kind, options=self.options, digits=self.digits)
            except Exception:  # noqa: BLE001 - not a literal of the question's kind: not its answer
                continue
            if got == want or (self.kind == "float" and math.isclose(float(got), float(want), rel_tol=1e-2)):
                found.append(text[match.start():literal.end()])
        return found

    def shown_in(self, text: str) -> list[str]:
        """Every place in ``text`` that names the answer. A TeX command ends where a number starts: ``\\pm0.635``
        shows 0.635."""
        text = _TEX_COMMAND.sub(r"\1 ", text)
        return [m.group(0) for form in self.forms() for m in form.finditer(text)] + self.assignments(text)

    def short_shown_in(self, text: str) -> list[str]:
        """The lines of ``text`` (a chapter's own output) that show a whole-number answer from 10 to 99 beside a
        word of the question's subject: "spatial gate: 98 parameters" for q_spatial_params. A two-digit number
        alone stands for too many other things (a latency, a count of images) to name an answer."""
        if self.kind != "int" or not 10 <= abs(int(self.value)) < 100:
            return []
        stems = {word[:5].lower() for word in self.qid.removeprefix("q_").split("_") if len(word) >= 4 and word.isalpha()}
        number = re.compile(_number_form(str(abs(int(self.value)))))
        return [line.strip() for line in text.splitlines() if number.search(line)
                and stems & {word[:5].lower() for word in re.findall(r"[A-Za-z]{4,}", line)}]


_TEX_COMMAND = re.compile(r"(\\[A-Za-z]+)(?=[\d.])")


# a literal that ends its statement: "[ok] q_split: 1 checks passed" assigns nothing
_LITERAL = re.compile(r"""(?:"[^"\n]*"|'[^'\n]*'|\{[^}\n]*\}|\[[^\]\n]*\]|\([^)\n]*\)|[-+]?[\d_.]+(?:e[-+]?\d+)?"""
                      r"""|True|False)(?=[ \t]*(?:$|[,;})\]#\n]))""", re.M)


def question_answers(chapter: str) -> list[QuestionAnswer]:
    """The plain answers of a chapter's questions (``course_lib.hidden.chNN_name.ANSWERS``)."""
    import importlib

    module = importlib.import_module(f"course_lib.hidden.ch{chapter}")
    found = []
    for qid, entry in sorted(getattr(module, "ANSWERS", {}).items()):
        kind, value, options = entry
        found.append(QuestionAnswer(chapter, qid, kind, value, options.get("options"), options.get("digits", 3)))
    return found


def hidden_lines(solution: dict) -> set[str]:
    """The lines of a solution notebook's hidden tests (12 characters or more, whitespace collapsed)."""
    found = set()
    for cell in solution["cells"]:
        inside = False
        for line in "".join(cell.get("source", "")).splitlines():
            if line.strip() == HIDDEN_BEGIN:
                inside = True
            elif line.strip() == HIDDEN_END:
                inside = False
            elif inside and len(_squash(line)) >= MIN_LINE:
                found.add(_squash(line))
    return found


@dataclass
class Secrets:
    """What a chapter's page must not show: its answers (lines and calls), its hidden tests, its questions' answers."""

    chapter: str
    answers: list[tuple[str | None, set[str], set[Call]]]
    stubs: dict[str, str]  # grade id -> the released stub (its code is the exercise's material, not an answer)
    hidden: set[str]
    questions: list[QuestionAnswer]


def chapter_secrets(chapter: str, root: Path = REPO) -> Secrets:
    def load(folder: str) -> dict:
        return json.loads((root / folder / chapter / f"{chapter}.ipynb").read_text(encoding="utf-8"))

    solution, student = load("solutions"), load("notebooks")
    stubs = {_grade_id(c): "".join(c.get("source", "")) for c in student["cells"] if _is_solution(c)}
    return Secrets(chapter, answers_of(solution, student), stubs, hidden_lines(solution), question_answers(chapter))


def text_findings(secrets: Secrets, text: str, code: list[str], where: str, *,
                  questions: list[QuestionAnswer] | None = None) -> list[Finding]:
    """What ``text`` (a page's or an output's text, whitespace free to vary) and ``code`` (its code blocks) show
    of ``secrets``; ``questions``: the answers to look for (default: the chapter's own)."""
    flat = _squash(text)
    found = []
    for grade_id, lines, calls in secrets.answers:
        own = _squash(_stub_text(secrets.stubs.get(grade_id, ""))[0])
        visible = flat.replace(own, " ") if own else flat  # the stub's provided code is not its answer
        found += [Finding("line", line, grade_id, where) for line in sorted(lines) if line in visible]
        shown = [c for block in code if not (own and _squash(block) == own) for c in calls_in_text(block)]
        found += [Finding("call", call.text(), grade_id, where) for call in sorted(calls, key=Call.text)
                  if any(call.given_away_by(c) for c in shown)]
    found += [Finding("hidden", line, "hidden tests", where) for line in sorted(secrets.hidden) if line in flat]
    for answer in secrets.questions if questions is None else questions:
        found += [Finding("answer", shown, answer.qid, where) for shown in answer.shown_in(text)]
    return found


def output_text(output: dict) -> str:
    """What a notebook output shows as text: its stream, its text/plain, markdown, HTML (tags aside) and LaTeX,
    and the texts of its figures (recorded by the book's kernel preamble in the output's metadata)."""
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    if output.get("output_type") == "error":
        return "\n".join([output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])])
    data = output.get("data", {})
    parts = ["".join(data.get(kind, "")) for kind in ("text/plain", "text/markdown", "text/latex")]
    if "text/html" in data:
        parts.append(PageText.of("".join(data["text/html"])).text)
    meta = output.get("metadata", {})
    for key in ("image/png", "image/jpeg", "image/svg+xml"):
        parts += meta.get(key, {}).get(FIGURE_TEXT, []) if isinstance(meta.get(key), dict) else []
    return "\n".join(p for p in parts if p)


FIGURE_TEXT = "course_figure_text"  # the output metadata key the book's kernel preamble writes (book.FIGURE_TEXT)


def output_findings(secrets: Secrets, output: dict, where: str, *,
                    questions: list[QuestionAnswer] | None = None) -> list[Finding]:
    """What one output of the chapter's page would show of ``secrets`` (its whole text is read as code too)."""
    text = output_text(output)
    return text_findings(secrets, text, [text], where, questions=questions)


_SKIPPED_TAGS = {"script", "style", "template"}
_BLOCK_TAGS = {"p", "div", "br", "li", "td", "th", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section",
               "dt", "dd", "figure", "figcaption", "blockquote", "details", "summary", "nav", "header", "footer"}
_LABELS = {"alt", "title", "aria-label"}


class PageText:
    """The text of an HTML page as a reader meets it: ``text``, its visible text (scripts and styles aside, a
    line break between blocks) followed by its labels; ``code``, the text of each code block (``<pre>``, and
    ``<code>`` outside one); ``labels``, its alt texts, titles and aria labels."""

    def __init__(self, text: str, code: list[str], labels: list[str]) -> None:
        self.text, self.code, self.labels = text, code, labels

    @classmethod
    def of(cls, html: str) -> "PageText":
        reader = _PageReader()
        reader.feed(html)
        reader.close()
        return cls("".join(reader.parts) + "\n" + "\n".join(reader.labels), reader.code, reader.labels)


class _PageReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.code: list[str] = []
        self.labels: list[str] = []
        self._skip = 0
        self._block: list[str] | None = None  # the open code block's text
        self._block_tag, self._depth = "", 0

    def handle_starttag(self, tag, attrs):
        self.labels += [value for name, value in attrs if name in _LABELS and value]
        if tag in _SKIPPED_TAGS:
            self._skip += 1
        elif self._block is None and tag in ("pre", "code"):
            self._block, self._block_tag, self._depth = [], tag, 1
        elif self._block is not None and tag == self._block_tag:
            self._depth += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
        elif self._block is not None and tag == self._block_tag:
            self._depth -= 1
            if self._depth == 0:
                self.code.append("".join(self._block))
                self._block = None
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._skip:
            return
        self.parts.append(data)
        if self._block is not None:
            self._block.append(data)


def html_report(book: Path, root: Path = REPO, chapters: list[str] | None = None) -> list[Finding]:
    """Every giveaway on the built book's HTML pages: on a chapter's page (``notebooks/NN_name/NN_name.html``) its
    answers' lines and calls; on every page every hidden test's lines and every question's answer in the forms
    that name it (text, code blocks, alt texts and titles; figure titles are in their images' alt texts)."""
    chapters = chapters if chapters is not None else all_chapters(root)
    secrets = {chapter: chapter_secrets(chapter, root) for chapter in chapters}
    questions = [q for chapter in all_chapters(root) for q in question_answers(chapter)]
    hidden = set().union(*(s.hidden for s in secrets.values())) if secrets else set()
    everywhere = Secrets("", [], {}, hidden, questions)
    found: list[Finding] = []
    for path in sorted(Path(book).rglob("*.html")):
        rel = path.relative_to(book).as_posix()
        page = PageText.of(path.read_text(encoding="utf-8"))
        chapter = rel.split("/")[1] if rel.startswith("notebooks/") and rel.count("/") == 2 else None
        if chapter in secrets:
            own = Secrets(chapter, secrets[chapter].answers, secrets[chapter].stubs, set(), [])
            found += text_findings(own, page.text, page.code, rel)
        found += text_findings(everywhere, page.text, page.code, rel)
    return found
