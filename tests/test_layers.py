"""The layers of course_lib as a checked contract: `lint-imports` (import-linter) keeps the contracts written in
pyproject.toml's [tool.importlinter], and each contract fails on a planted violation."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
#: the folders that never ship (the student bundle leaves them out) and the package's own entry files
NOT_STUDENT = {"reference", "hidden", "grading", "tools", "__init__", "__main__"}


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` run in ``root`` (a folder with pyproject.toml and course_lib/), on that course_lib."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_repository_keeps_every_contract():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = len(_contracts())
    assert "0 broken" in result.stdout and f"{kept} kept" in result.stdout, result.stdout


def test_the_student_side_list_is_every_module_outside_the_four_folders():
    # a new top-level module is student side unless it lives in one of the folders that never ship
    found = {p.stem for p in (REPO / "course_lib").glob("*.py")}
    found |= {p.name for p in (REPO / "course_lib").iterdir() if (p / "__init__.py").is_file()}
    listed = {m.removeprefix("course_lib.") for m in _contracts()["student-side"]["source_modules"]}
    assert found - NOT_STUDENT == listed


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(REPO / "course_lib", root / "course_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pt", "checkpoints", "expected"))
    return root


# each planted line breaks exactly the contract it names (appended to an existing module of the copy)
PLANTED = {
    "student-side": ("course_lib/figures/common.py", "\n\ndef _leak():\n    from course_lib.reference import se  # noqa\n"),
    "reference-stands-alone": ("course_lib/reference/se.py", "\n\ndef _leak():\n    from course_lib.checks import toolkit  # noqa\n"),
    "hidden-checks": ("course_lib/hidden/ch01_se.py", "\n\ndef _leak():\n    from course_lib.grading import common  # noqa\n"),
    "no-cycles": ("course_lib/capstone.py", "\n\ndef _leak():\n    from course_lib import learned  # noqa\n"),
    "grading-worker-never-imports-client": ("course_lib/grading/warm.py",
                                            "\n\ndef _leak():\n    from course_lib.grading import collect  # noqa\n"),
    "grading-client-enters-worker-once": ("course_lib/grading/cli.py",
                                          "\n\ndef _leak():\n    from course_lib.grading import sandbox  # noqa\n"),
    "grading-common-is-shared": ("course_lib/grading/common.py",
                                 "\n\ndef _leak():\n    from course_lib.grading import check_index  # noqa\n"),
    "private-modules": ("course_lib/tools/bench.py", "\n\ndef _leak():\n    from course_lib.reference import _validate  # noqa\n"),
}


ALSO_BROKEN = {"hidden-checks": {"no-cycles"}}


@pytest.mark.slow
@pytest.mark.parametrize("contract", sorted(PLANTED))
def test_each_contract_fails_on_a_planted_violation(copy_root, contract):
    assert set(PLANTED) == set(_contracts()), "every contract needs its planted violation here"
    path, line = PLANTED[contract]
    target = copy_root / path
    before = target.read_text(encoding="utf-8")
    target.write_text(before + line, encoding="utf-8")
    try:
        result = _lint(copy_root)
    finally:
        target.write_text(before, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts")[-1]
    assert _contracts()[contract]["name"][:60] in " ".join(broken.split()), result.stdout
    # the planted line breaks its contract alone, except where it must also close a cycle: the tools import the
    # hidden checks (build-expected) and the grader imports the tools, so hidden -> grading is also a cycle
    also = ALSO_BROKEN.get(contract, set())
    assert f"{1 + len(also)} broken" in result.stdout, result.stdout
    for other in also:
        assert _contracts()[other]["name"][:60] in " ".join(broken.split()), result.stdout


def test_the_unplanted_copy_keeps_every_contract(copy_root):
    # the counter-tests above break the copy, not something in how the copy is made
    result = _lint(copy_root)
    assert result.returncode == 0, result.stdout + result.stderr
