"""A sample of the grader catalog through a real nbgrader autograde: the implementation's source goes into
the chapter's solution cell (as a student would type it), and the exercise's test cell must score 0 for a
wrong implementation and full marks for a valid one. One wrong and one valid sample per chapter."""
from __future__ import annotations

import nbformat
import pytest

from catalog import load_all
from course_lib import notebooks as nbs

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
