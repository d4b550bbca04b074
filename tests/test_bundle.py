"""The student bundle (course_lib/tools/bundle.py): no reference solutions, no hidden checks, and every
released chapter's visible checks pass from it, with the repository's course_lib out of reach."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import notebooks as nbs
from course_lib.tools import bundle as bundle_mod

CHAPTERS = nbs.chapters(nbs.REPO, nbs.RELEASE)
#: one module of each left-out folder, and every reference module (found in the folder, not listed by hand)
REFERENCE_MODULES = sorted(p.stem for p in (nbs.REPO / "course_lib" / "reference").glob("[!_]*.py"))
LEFT_OUT_MODULES = [f"course_lib.reference.{name}" for name in REFERENCE_MODULES] + [
    "course_lib.reference", "course_lib.hidden", "course_lib.grading", "course_lib.tools.bench",
    "course_lib.tools.notebooks",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return bundle_mod.build(tmp_path_factory.mktemp("bundle") / "student")


def test_bundle_leaves_out_the_reference_solutions_hidden_checks_and_tools(bundle):
    package = bundle.out / "course_lib"
    assert len(REFERENCE_MODULES) == 9 and set(bundle_mod.EXCLUDED) == {"reference", "hidden", "grading", "tools"}
    for left_out in bundle_mod.EXCLUDED:
        assert (nbs.REPO / "course_lib" / left_out).is_dir(), f"{left_out}/ is not in the repository any more"
        assert not (package / left_out).exists(), left_out
    assert not [p for p in package.rglob("*.py") if "import course_lib.reference" in p.read_text(encoding="utf-8")]
    assert not (bundle.out / "tests").exists() and not (bundle.out / nbs.SOURCE).exists()
    assert not list(bundle.out.rglob("__pycache__"))


def test_bundle_keeps_the_visible_checks_and_their_expected_values(bundle):
    package = bundle.out / "course_lib"
    visible = sorted(p.name for p in (nbs.REPO / "course_lib" / "checks").glob("ch*.py"))
    assert visible and sorted(p.name for p in (package / "checks").glob("ch*.py")) == visible
    stored = sorted(p.name for p in (nbs.REPO / "course_lib" / "checks" / "expected").glob("*.pt"))
    assert sorted(p.name for p in (package / "checks" / "expected").glob("*.pt")) == stored
    for chapter in CHAPTERS:
        assert (bundle.out / nbs.RELEASE / chapter / f"{chapter}.ipynb").is_file(), chapter
    assert bundle_mod.check_notebooks(bundle.out) == []


def test_bundle_is_an_installable_package_with_the_course_runtime_dependencies(bundle):
    mine = tomllib.loads((bundle.out / "pyproject.toml").read_text(encoding="utf-8"))
    repo = tomllib.loads((nbs.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert mine["project"]["name"] == repo["project"]["name"]
    assert mine["project"]["dependencies"] == repo["project"]["dependencies"]
    assert not any("nbgrader" in spec for spec in mine["project"]["optional-dependencies"]["lab"])
    assert "checks/expected/*.pt" in mine["tool"]["setuptools"]["package-data"]["course_lib"]
    assert "pip install" in (bundle.out / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_bundle_builds_a_wheel_that_students_can_pip_install(bundle, tmp_path):
    # build_wheel is what `make student-wheel` runs (tests/test_colab_setup.py installs its wheel)
    wheel = bundle_mod.build_wheel(bundle.out, tmp_path)
    assert wheel.name == nbs.publishing().wheel_name
    names = zipfile.ZipFile(wheel).namelist()
    # the stored expected values of the checks and the trained checkpoints of the learned sections
    package = nbs.REPO / "course_lib"
    data = {str(p.relative_to(nbs.REPO)) for p in [*package.glob("checks/expected/*.pt"), *package.glob("checkpoints/*.pt")]}
    assert any("checkpoints/" in d for d in data) and any("expected/" in d for d in data)
    assert {n for n in names if n.endswith(".pt")} == data
    assert "course_lib/checks/toolkit.py" in names
    assert not [n for n in names if n.startswith(tuple(f"course_lib/{d}/" for d in bundle_mod.EXCLUDED))]
    assert not (bundle.out / "build").exists() and not list(bundle.out.glob("*.egg-info"))


# --------------------------------------------------------------------------------------------
# what the build refuses
# --------------------------------------------------------------------------------------------
def _fake_repo(root: Path, *, notebook_source: str = "check()", module: str = "") -> Path:
    root.mkdir(parents=True)
    shutil.copy(nbs.REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "course_lib").mkdir()
    (root / "course_lib" / "__init__.py").write_text("", encoding="utf-8")
    (root / "course_lib" / "reference").mkdir()
    (root / "course_lib" / "reference" / "__init__.py").write_text("", encoding="utf-8")
    (root / "course_lib" / "reference" / "se.py").write_text("ANSWER = 42\n", encoding="utf-8")
    (root / "course_lib" / "helpers.py").write_text(module, encoding="utf-8")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(notebook_source)])
    nbs.write_atomic(root / nbs.RELEASE / "01_x" / "01_x.ipynb", nbformat.writes(nb))
    return root


def test_build_refuses_notebooks_that_still_hold_hidden_tests_or_solutions(tmp_path):
    for marker in ("### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS", "### BEGIN SOLUTION\nx = 1"):
        root = _fake_repo(tmp_path / str(len(marker)), notebook_source=marker)
        with pytest.raises(ValueError, match="must not reach students"):
            bundle_mod.build(tmp_path / "out", root=root)
        assert not (tmp_path / "out").exists()


def test_build_refuses_a_kept_module_that_imports_a_reference_module_at_import_time(tmp_path):
    root = _fake_repo(tmp_path / "bad", module="from course_lib.reference.se import ANSWER\n")
    with pytest.raises(ValueError, match="course_lib.helpers imports course_lib.reference"):
        bundle_mod.build(tmp_path / "out", root=root)
    # the same import inside a function only fails when called: it is listed, not refused
    root = _fake_repo(tmp_path / "lazy", module="def answer():\n    from .reference import se\n    return se.ANSWER\n")
    built = bundle_mod.build(tmp_path / "out", root=root)
    assert built.lazy_needs == ["course_lib.helpers.answer needs course_lib.reference"]
    assert not (built.out / "course_lib" / "reference").exists() and (built.out / "course_lib" / "helpers.py").exists()


def test_build_never_deletes_a_folder_it_did_not_make(tmp_path):
    root = _fake_repo(tmp_path / "repo")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no earlier bundle"):
        bundle_mod.build(precious, root=root)
    with pytest.raises(ValueError, match="folder of its own"):
        bundle_mod.build(root / "course_lib" / "sub", root=root)
    assert (precious / "thesis.tex").exists()
    bundle_mod.build(tmp_path / "b", root=root)
    bundle_mod.build(tmp_path / "b", root=root)  # its own earlier bundle is replaced


# --------------------------------------------------------------------------------------------
# the released chapters run from the bundle
# --------------------------------------------------------------------------------------------
# Runs every code cell of each released chapter, the instructor's solution in place of each stub. The cells
# nbgrader knows (setup, provided code, solutions, test cells) must succeed and every test cell must print
# its checks' "[ok]"; plain cells (demos, plots, the capstone's training) get DEMO_BUDGET_S seconds each and
# may fail or be stopped: tests/test_chapters.py runs them in full, and a check that needed one fails here.
# Runs in a fresh interpreter started with -S: no site-packages .pth files, so the editable install of the
# repository's course_lib (a meta-path finder that would serve course_lib.reference.se from the repository) is not
# there; the packages the course needs are reached through PYTHONPATH, after the bundle.
RUNNER = r"""
import contextlib, io, json, os, signal, sys
from pathlib import Path


def stop(signum, frame):
    raise KeyboardInterrupt("demo cell past its budget")


bundle, plan_path, report_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
plan = json.loads(Path(plan_path).read_text())
import course_lib

report = {"course_lib": course_lib.__file__, "left_out": {}, "chapters": {}}
for name in plan["left_out"]:
    try:
        __import__(name)
        report["left_out"][name] = "imported"
    except ImportError as err:
        report["left_out"][name] = type(err).__name__
import nbformat
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for chapter, answers in plan["chapters"].items():
    folder = bundle / "notebooks" / chapter
    nb = nbformat.read(folder / f"{chapter}.ipynb", as_version=4)
    os.chdir(folder)
    shell.reset(new_session=False)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        source = answers.get(grade_id, cell.source)
        printed = io.StringIO()
        if not meta:  # a plain cell (a demo, a plot, the capstone's training) gets a short budget
            signal.signal(signal.SIGALRM, stop)
            signal.alarm(plan["demo_budget_s"])
        try:
            with contextlib.redirect_stdout(printed):
                result = shell.run_cell(source, store_history=False)
        finally:
            signal.alarm(0)
        error = result.error_in_exec or result.error_before_exec
        cells.append({"grade_id": grade_id, "ok": result.success, "error": repr(error)[:2000] if error else None,
                      "printed": printed.getvalue()[-2000:], "nbgrader": bool(meta), "graded": bool(meta.get("grade"))})
    report["chapters"][chapter] = cells
Path(report_path).write_text(json.dumps(report))
"""


DEMO_BUDGET_S = 5


def _solutions(chapter: str) -> dict[str, str]:
    nb = nbformat.read(nbs.notebook_path(chapter), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


@pytest.mark.slow
@pytest.mark.skipif(not CHAPTERS, reason="no released chapters yet")
def test_released_visible_checks_pass_from_the_bundle_without_the_reference_modules(bundle, tmp_path):
    plan = {"left_out": LEFT_OUT_MODULES, "chapters": {c: _solutions(c) for c in CHAPTERS}, "demo_budget_s": DEMO_BUDGET_S}
    stale = {}
    for chapter, answers in plan["chapters"].items():
        released = nbformat.read(bundle.out / nbs.RELEASE / chapter / f"{chapter}.ipynb", as_version=4)
        asked = {c.metadata["nbgrader"]["grade_id"] for c in released.cells  # written answers (markdown) are not run
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
        if asked - set(answers):
            stale[chapter] = sorted(asked - set(answers))
    assert not stale, f"released exercises with no solution in solutions/ (run `make release`): {stale}"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "runner.py").write_text(RUNNER)
    site_packages = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle.out), site_packages]), "MPLBACKEND": "Agg",
           "PYTHONNOUSERSITE": "1", "NBGRADER_EXECUTION": "autograde"}  # chapters' quick mode, as in grading
    done = subprocess.run(
        [sys.executable, "-S", str(tmp_path / "runner.py"), str(bundle.out), str(tmp_path / "plan.json"),
         str(tmp_path / "report.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert Path(report["course_lib"]).resolve().is_relative_to(bundle.out), report["course_lib"]
    assert report["left_out"] == {name: "ModuleNotFoundError" for name in LEFT_OUT_MODULES}
    for chapter, cells in report["chapters"].items():
        failed = [c for c in cells if c["nbgrader"] and not c["ok"]]
        assert not failed, f"{chapter}: cells fail from the bundle: {failed}"
        graded = [c for c in cells if c["graded"]]
        assert graded, f"{chapter} has no graded cells"
        silent = [c["grade_id"] for c in graded if "[ok]" not in c["printed"]]
        assert not silent, f"{chapter}: test cells that ran no visible check: {silent}"


@pytest.mark.slow
def test_the_repository_course_lib_would_be_found_without_the_isolation(bundle, tmp_path):
    # the counter-test: run normally (site-packages processed), the editable install serves course_lib.reference.se
    # from the repository even with the bundle first on PYTHONPATH; the test above must not run like this
    env = {**os.environ, "PYTHONPATH": str(bundle.out)}
    probe = "import course_lib, course_lib.reference.se; print(course_lib.__file__); print(course_lib.reference.se.__file__)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    editable = any("__editable__" in p for p in os.listdir(sysconfig.get_paths()["purelib"]))
    if not editable:
        pytest.skip("course_lib is not installed in editable mode here")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.split()
    assert Path(first).is_relative_to(bundle.out) and Path(second).is_relative_to(nbs.REPO)


def test_links_in_the_bundle_reach_what_the_bundle_holds(bundle):
    """A student who opens the glossary or the policy from a chapter finds it in the bundle, not a dead link."""
    from links import broken_links

    files = sorted(bundle.out.glob("notebooks/*/*.ipynb")) + [bundle.out / "README.md"]
    bad = broken_links(files, bundle.out)
    assert not bad, "links that do not resolve inside the student bundle:\n  " + "\n  ".join(bad)


def test_the_bundles_command_line_offers_only_what_it_holds(bundle, tmp_path):
    # the student's `python -m course_lib` (isolated as above: the bundle, then the packages it needs)
    site_packages = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle.out), site_packages]), "PYTHONNOUSERSITE": "1"}

    def run(*argv):
        return subprocess.run([sys.executable, "-S", "-m", "course_lib", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    usage = run("--help")
    assert usage.returncode == 0, usage.stderr
    from course_lib.__main__ import COMMANDS

    listed = {line.split()[0] for line in usage.stdout.splitlines()[3:] if line.strip()}
    assert listed == {n for n, (target, _) in COMMANDS.items() if target.split(".")[1] not in bundle_mod.EXCLUDED}
    assert "grade" not in listed and "release" not in listed
    refused = run("grade", "01_se", "submissions")
    assert refused.returncode == 2 and "needs the full course repository" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


#: Words that describe how the class grader works inside (its sandbox's guard and the audit events it answers):
#: the student package runs the checks, it has no use for a description of what watches them.
GRADER_INTERNALS = ("sandbox_guard", "audit hook", "audit event", "tamper", "grading sandbox")


def grader_internals_in(folder: Path) -> list[str]:
    """'file:line: word' for every mention of GRADER_INTERNALS in the text files under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in {".py", ".md", ".toml", ".ipynb", ".txt", ".cfg"}:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            found += [f"{path.relative_to(folder)}:{number}: {word}" for word in GRADER_INTERNALS
                      if word in line.lower()]
    return found


def test_the_bundle_says_nothing_about_the_graders_internals(bundle):
    found = grader_internals_in(bundle.out)
    assert not found, "the student bundle describes the grader's internals:\n  " + "\n  ".join(found)


def test_the_internals_scan_finds_a_planted_mention(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text('"""Hook of course_lib/grading/sandbox_guard.py."""\n', encoding="utf-8")
    (tmp_path / "README.md").write_text("It raises two Audit Events.\n", encoding="utf-8")
    assert grader_internals_in(tmp_path) == ["README.md:1: audit event", "pkg/mod.py:1: sandbox_guard"]
