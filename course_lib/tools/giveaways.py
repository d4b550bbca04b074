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
"""
from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import textwrap
from dataclasses import dataclass, field
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


def measure(solution: dict, student: dict, chapter: str = "") -> Report:
    """Compare a solution notebook's answers with a student notebook (both as nbformat dicts)."""
    report = Report(chapter)
    stubs = {_grade_id(c): "".join(c.get("source", "")) for c in student["cells"] if _is_solution(c)}
    answers = []  # (grade_id, lines, calls)
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
    args = parser.parse_args(argv)
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
