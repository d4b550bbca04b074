"""Issue 15: no answer line and no call an answer needs is shown in the student notebook outside its answer cell
(course_lib/tools/giveaways.py; `python -m course_lib giveaways` prints the figures). The measure itself is tested on
small notebooks where a giveaway is planted, so the chapter gate cannot pass by measuring nothing."""
from __future__ import annotations

import nbformat
import pytest

from course_lib.tools import giveaways

def pair(answer: str, *, stub: str = "    # YOUR CODE HERE\n    raise NotImplementedError()", others=()):
    """A solution notebook with one answer cell and its student release with the given other cells."""
    meta = {"nbgrader": {"solution": True, "grade": False, "grade_id": "ex", "locked": False, "schema_version": 3}}
    head = "def f(x):\n"
    sol = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"{head}    ### BEGIN SOLUTION\n{answer}\n    ### END SOLUTION", metadata=meta)])
    stu = nbformat.v4.new_notebook(cells=[*others, nbformat.v4.new_code_cell(f"{head}{stub}", metadata=meta)])
    return sol, stu


ANSWER = "    s = torch.sigmoid(x.mean((2, 3), keepdim=True))\n    return x * s"


def test_clean_notebook_shows_nothing():
    sol, stu = pair(ANSWER, others=[nbformat.v4.new_markdown_cell("Average over $H$ and $W$, then gate.")])
    r = giveaways.measure(sol, stu)
    assert (r.lines, r.calls) == (2, 2) and r.findings == []


@pytest.mark.parametrize("planted, kind", [
    (nbformat.v4.new_markdown_cell("| squeeze | `u.mean((2, 3), keepdim=True)` |"), "call"),
    (nbformat.v4.new_code_cell("logits = torch.randn(4)\nprint(torch.sigmoid(logits))"), "call"),
    (nbformat.v4.new_markdown_cell("```python\ns = torch.sigmoid(x.mean((2, 3), keepdim=True))\n```"), "line"),
])
def test_planted_giveaway_is_found(planted, kind):
    r = giveaways.measure(*pair(ANSWER, others=[planted]))
    assert kind in {f.kind for f in r.findings}


def test_stub_comment_recipe_is_found():
    stub = "    # squeeze: x.mean((2, 3), keepdim=True)\n    raise NotImplementedError()"
    r = giveaways.measure(*pair(ANSWER, stub=stub))
    assert [f.answer for f in r.findings] == [".mean((2, 3), keepdim=True)"]


def test_other_constant_is_not_a_giveaway():
    shown = nbformat.v4.new_code_cell("e = torch.randn(2, 3)\ne.softmax(dim=-1)")
    r = giveaways.measure(*pair("    return x.softmax(dim=1)", others=[shown]))
    assert r.findings == []


def test_repair_exercise_given_code_is_not_an_answer():
    stub = "    y = x.sum(1)\n    return y.softmax(dim=0)"
    r = giveaways.measure(*pair("    y = x.sum(1)\n    return y.softmax(dim=1)", stub=stub))
    assert r.calls == 1 and r.findings == []  # only the changed softmax is the student's


@pytest.mark.parametrize("chapter", giveaways.all_chapters())
def test_student_notebook_gives_no_answer_away(chapter):
    report = giveaways.chapter_report(chapter)
    shown = [f"[{f.answer_cell}] {f.kind} {f.answer!r} shown in {f.where}" for f in report.findings]
    assert not shown, f"{chapter} gives away:\n" + "\n".join(shown)


def test_repair_stub_chained_calls_are_given_material():
    # a repair stub with nested blocks: without its class/def lines it does not parse as one piece
    stub = ("\n    class Broken:\n        def go(self, x):\n            y = x.view(2, -1).permute(0, 2, 1)\n"
            "            if y.dim():\n                return y.softmax(dim=0)\n    return Broken()")
    answer = stub.replace("softmax(dim=0)", "softmax(dim=1)")
    r = giveaways.measure(*pair(answer, stub=stub))
    assert r.calls == 1 and r.findings == []
