"""One public entry point: `python -m course_lib <command>` for every command the docs mention, each with --help,
and no document runs a module of course_lib directly."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md"))]
#: processes the grader starts itself (a kernel launcher, a warm template): not commands for people
INTERNAL = {"course_lib.grading.sandbox_launcher", "course_lib.grading.warm", "course_lib.tools.bench"}


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_lib", *argv], capture_output=True, text=True, timeout=300,
                          cwd=REPO)


def test_the_usage_lists_every_command():
    result = _run("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout, name


def test_an_unknown_command_is_named_and_fails():
    result = _run("grde")
    assert result.returncode == 2 and "unknown command 'grde'" in result.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help(name):
    result = _run(name, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout, result.stdout


def test_every_command_the_docs_mention_exists():
    mentioned = set()
    for doc in DOCS:
        mentioned |= set(re.findall(r"python -m course_lib ([a-z][a-z-]*)", doc.read_text(encoding="utf-8")))
    assert mentioned, "the docs mention no command: the pattern is wrong"
    assert mentioned - {"--help"} <= set(COMMANDS), mentioned - set(COMMANDS)


def test_no_document_runs_a_module_of_course_lib_directly():
    direct = []
    for doc in DOCS:
        for module in re.findall(r"python -m (course_lib\.[\w.]+)", doc.read_text(encoding="utf-8")):
            if module not in INTERNAL:
                direct.append(f"{doc.name}: python -m {module}")
    assert not direct, direct


def test_only_the_entry_point_and_internal_processes_have_a_main_block():
    blocks = sorted(str(p.relative_to(REPO)) for p in (REPO / "course_lib").rglob("*.py")
                    if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8"))
    allowed = {"course_lib/__main__.py"} | {m.replace(".", "/") + ".py" for m in INTERNAL}
    assert set(blocks) <= allowed, set(blocks) - allowed


def test_feedback_on_a_folder_that_graded_nothing_says_so(tmp_path):
    # a lecturer's typo (a chapter not graded, a wrong folder) gets a sentence, not a traceback
    result = _run("feedback", "02_cbam", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "holds no graded chapter '02_cbam'" in result.stderr and "Traceback" not in result.stderr
