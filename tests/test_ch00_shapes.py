"""Chapter 00: the checks accept the reference answers, the stored values are current, and the solution
notebook's code is the reference (so the two cannot drift)."""
from __future__ import annotations

import nbformat
import pytest
import torch

from stored_values import assert_same_values
from course_lib import notebooks as nbs
from course_lib.checks import CheckFailure, _core
from course_lib.checks import ch00_shapes as visible
from course_lib.checks.hidden import ch00_shapes as hidden

NAMES = list(hidden.REFERENCES)


def _solution_namespace() -> dict:
    nb = nbformat.read(nbs.notebook_path("00_shapes"), as_version=4)
    namespace: dict = {}
    exec("import torch\nfrom einops import rearrange, reduce\nimport torch.nn.functional as F", namespace)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            exec(cell.source, namespace)
    return namespace


@pytest.mark.parametrize("name", NAMES)
def test_checks_pass_on_the_reference(name):
    getattr(visible, f"check_{name}")(hidden.REFERENCES[name])
    getattr(hidden, f"hidden_{name}")(hidden.REFERENCES[name])


@pytest.mark.parametrize("name", NAMES)
def test_checks_fail_on_a_stub(name):
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailure) as err:
        getattr(visible, f"check_{name}")(stub)
    assert err.value.mistake == "not_implemented"


def test_stored_expected_values_are_current():
    assert_same_values(_core.expected("ch00_shapes"), hidden.build_expected())


@pytest.mark.parametrize("name", NAMES)
def test_solution_cells_match_the_reference(name):
    fn = _solution_namespace()[name]
    getattr(visible, f"check_{name}")(fn)
    for inputs in hidden.visible.inputs()[name], hidden._random_inputs(name, 7, torch.float64):
        torch.testing.assert_close(fn(*inputs), hidden.REFERENCES[name](*inputs))
