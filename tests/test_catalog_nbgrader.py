"""A sample of the grader catalog through a real nbgrader autograde: the implementation's source goes into
the chapter's solution cell (as a student would type it), and the exercise's test cell must score 0 for a
wrong implementation and full marks for a valid one. One wrong and one valid sample per chapter. The
student stops after that exercise: later answers are left as stubs, later demonstration cells deleted."""
from __future__ import annotations

import nbformat
import pytest

from catalog import load_all
from course_lib.tools import notebooks as nbs

_, IMPLS = load_all()


def _sample():
    picked = {}
    for impl in IMPLS:
        picked.setdefault((impl.exercise.chapter, impl.valid), impl)
    by_chapter: dict[str, list] = {}
    for (chapter, _), impl in sorted(picked.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        by_chapter.setdefault(chapter, []).append(impl)
    return sorted(by_chapter.items())


SAMPLE = _sample()


def _submission(impl, path):
    nb = nbformat.read(nbs.notebook_path(impl.exercise.chapter), as_version=4)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == impl.exercise.solution_id]
    assert len(cells) == 1, f"{impl.exercise.chapter}: no solution cell {impl.exercise.solution_id!r}"
    # a student who wrote this implementation: it is defined last, so it is the one the tests see
    cells[0].source = cells[0].source + "\n\n" + impl.source.strip() + "\n"
    # a student who stopped after this exercise: later answers left as the stub, later demonstrations
    # deleted. The later tests then fail at once (only this exercise's score is asserted), and the grade
    # of this one cannot depend on anything after it.
    test_at = next(i for i, c in enumerate(nb.cells)
                   if c.metadata.get("nbgrader", {}).get("grade_id") == impl.exercise.test_id)
    kept = nb.cells[: test_at + 1]
    for cell in nb.cells[test_at + 1:]:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("grade") or meta.get("solution"):
            if meta.get("solution") and cell.cell_type == "code":
                cell.source = "raise NotImplementedError()"
            kept.append(cell)
    nb.cells = kept
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE, reason="the catalog is empty")
@pytest.mark.parametrize("chapter,impls", SAMPLE, ids=[c for c, _ in SAMPLE])
def test_catalog_sample_through_nbgrader(chapter, impls, tmp_path):
    root = tmp_path / "course"
    grader = nbs.new_course(root, [chapter])
    for n, impl in enumerate(impls):
        result = nbs.autograde(grader, root, chapter, f"s{n}", _submission(impl, tmp_path / f"s{n}.ipynb"))
        score, max_score = result["cells"][impl.exercise.test_id]
        if impl.valid:
            assert score == max_score, f"valid {impl.label!r} lost points in {impl.exercise.test_id}"
        else:
            assert score == 0, f"wrong {impl.label!r} earned {score} in {impl.exercise.test_id}"
