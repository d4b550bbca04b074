"""The three lists of reference-solution modules agree: what the student bundle leaves out
(``grading/bundle.py``), what the grading sandbox protects (``grading/sandbox_guard.py``) and what
``course_lib.ATTENTION`` explains as missing (``course_lib/__init__.py``). A reference module added to
one list and forgotten in another would reach students, or be readable while grading."""
from __future__ import annotations

import course_lib
from course_lib.grading import bundle, sandbox_guard

ISSUE_17 = {"nonlocal_block", "gcnet", "eca", "coord_attention"}


def test_bundle_sandbox_and_registry_list_the_same_reference_modules():
    listed = set(bundle.REFERENCE_MODULES)
    assert set(sandbox_guard.REFERENCE_MODULES) == listed
    assert set(course_lib._REFERENCE_MODULES) == listed
    assert ISSUE_17 <= listed


def test_every_registry_entry_comes_from_a_listed_reference_module():
    owners = {type(factory(48)).__module__.rsplit(".", 1)[-1] for factory in course_lib.ATTENTION.values()}
    assert owners <= set(bundle.REFERENCE_MODULES), owners - set(bundle.REFERENCE_MODULES)
