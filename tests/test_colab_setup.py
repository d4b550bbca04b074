"""A chapter's setup cell, run as Colab runs it: it installs the student package and the chapter's checks
then work from what it installed, with nothing of the full course_lib (reference solutions, hidden checks,
grading tools) within reach.

The stand-ins for Colab: a fresh virtual environment (no course_lib in it) that sees the packages a Colab
runtime comes with (torch, numpy, matplotlib, pip, IPython, ...) through a folder of links to this
environment's site-packages, from which everything of course_lib (its editable-install finder included)
is left out; a ``google.colab`` module imported before the cell runs, as on Colab; and the published wheel's
address in the cell replaced by a wheel built here from the student bundle (pip runs with no index, so the
cell can install nothing else).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import notebooks as nbs
from course_lib.tools import bundle as bundle_mod

CHAPTER = "01_se" if "01_se" in nbs.chapters(nbs.REPO, nbs.RELEASE) else None
REFERENCE_MODULES = sorted(p.stem for p in (nbs.REPO / "course_lib" / "reference").glob("[!_]*.py"))
LEFT_OUT = [f"course_lib.reference.{name}" for name in REFERENCE_MODULES] + [
    "course_lib.reference", "course_lib.hidden", "course_lib.grading", "course_lib.tools.notebooks",
    "course_lib.tools.bench"]

RUNNER = r"""
import contextlib, importlib, io, json, os, sys
from pathlib import Path

import google.colab  # Colab's kernel has it imported; the setup cell looks for it in sys.modules

plan = json.loads(Path(sys.argv[1]).read_text())
report = {"before": None, "left_out": {}, "cells": []}
try:
    import course_lib
    report["before"] = course_lib.__file__
except ModuleNotFoundError:
    pass
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
os.chdir(plan["folder"])
for cell in plan["cells"]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = shell.run_cell(cell["source"], store_history=False)
    if cell["setup"]:
        importlib.invalidate_caches()  # the package arrived after this interpreter started
    error = result.error_in_exec or result.error_before_exec
    report["cells"].append({"grade_id": cell["grade_id"], "graded": cell["graded"], "ok": result.success,
                            "error": repr(error)[:2000] if error else None, "printed": printed.getvalue()[-2000:]})
    if cell["setup"]:
        import course_lib
        report["course_lib"] = course_lib.__file__
        for name in plan["left_out"]:
            try:
                importlib.import_module(name)
                report["left_out"][name] = "imported"
            except ImportError as err:
                report["left_out"][name] = type(err).__name__
Path(sys.argv[2]).write_text(json.dumps(report))
"""


def _colab_like_environment(root: Path) -> Path:
    """A fresh venv whose only third-party packages are links to this environment's, course_lib left out."""
    venv = root / "colab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    runtime = root / "colab-runtime"
    runtime.mkdir()
    for folder in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(folder).iterdir():
            name = entry.name.lower()
            if name.startswith(("course_lib", "course-lib", "__editable__", "_course_lib")) or name.endswith(".pth"):
                continue
            if not (runtime / entry.name).exists():
                (runtime / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "colab_runtime.pth").write_text(f"{runtime}\n", encoding="utf-8")  # appended after site-packages
    stub = root / "colab-stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub.parent / "__init__.py").write_text("", encoding="utf-8")
    (stub / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab (tests/test_colab_setup.py)."""\n',
                                      encoding="utf-8")
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    built = bundle_mod.build(tmp_path_factory.mktemp("bundle") / "student")
    return bundle_mod.build_wheel(built.out, tmp_path_factory.mktemp("dist"))


def test_the_wheel_is_the_student_bundle_under_the_published_name(wheel):
    assert wheel.name == nbs.publishing().wheel_name
    names = zipfile.ZipFile(wheel).namelist()
    assert "course_lib/checks/toolkit.py" in names and any(n.startswith("course_lib/checks/expected/") for n in names)
    assert not [n for n in names if n.startswith(tuple(f"course_lib/{d}/" for d in bundle_mod.EXCLUDED))]
    assert nbs.publishing().wheel_url in nbs.SETUP_CELL


def _run_as_colab(wheel: Path, tmp_path: Path, *, only_setup: bool = False) -> dict:
    """Run the chapter's code cells (solutions in the stubs) in the Colab-like environment; return the report."""
    python = _colab_like_environment(tmp_path)
    released = nbformat.read(nbs.notebook_path(CHAPTER, folder=nbs.RELEASE), as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source
               for c in nbformat.read(nbs.notebook_path(CHAPTER), as_version=4).cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    published = nbs.publishing().wheel_url
    cells = []
    for cell in released.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        source = answers.get(meta.get("grade_id"), cell.source)
        setup = not cells
        if setup:
            assert source == nbs.SETUP_CELL and source.count(published) == 1
            source = source.replace(published, str(wheel))  # the release asset, built here
        cells.append({"source": source, "setup": setup, "grade_id": meta.get("grade_id"),
                      "graded": bool(meta.get("grade"))})
        if only_setup:
            break
    plan = {"folder": str(nbs.REPO / nbs.RELEASE / CHAPTER), "cells": cells, "left_out": LEFT_OUT}
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(PYTHONPATH=str(tmp_path / "colab-stub"), PYTHONNOUSERSITE="1", MPLBACKEND="Agg",
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run([str(python), str(tmp_path / "runner.py"), str(tmp_path / "plan.json"),
                           str(tmp_path / "report.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((tmp_path / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(CHAPTER is None, reason="chapter 01 is not released")
def test_setup_cell_on_colab_installs_the_student_package_and_the_checks_pass(wheel, tmp_path):
    report = _run_as_colab(wheel, tmp_path)
    assert report["before"] is None, f"course_lib was importable before the setup cell: {report['before']}"
    setup = report["cells"][0]
    assert setup["ok"], setup
    installed = Path(report["course_lib"]).resolve()
    assert installed.is_relative_to((tmp_path / "colab").resolve()), installed
    assert report["left_out"] == {name: "ModuleNotFoundError" for name in LEFT_OUT}, report["left_out"]
    failed = [c for c in report["cells"] if not c["ok"]]
    assert not failed, f"{CHAPTER} cells fail after the Colab setup: {failed}"
    graded = [c for c in report["cells"] if c["graded"]]
    assert graded and all("[ok]" in c["printed"] for c in graded), graded



@pytest.mark.slow
@pytest.mark.skipif(CHAPTER is None, reason="chapter 01 is not released")
def test_a_wheel_with_a_reference_solution_in_it_is_caught(tmp_path_factory, tmp_path):
    # the counter-test: had the published package carried a reference module, the test above would see it
    built = bundle_mod.build(tmp_path_factory.mktemp("leaky") / "student")
    shutil.copytree(nbs.REPO / "course_lib" / "reference", built.out / "course_lib" / "reference",
                    ignore=shutil.ignore_patterns("__pycache__"))
    leaky = bundle_mod.build_wheel(built.out, tmp_path_factory.mktemp("leaky-dist"))
    report = _run_as_colab(leaky, tmp_path, only_setup=True)
    assert report["cells"][0]["ok"] and report["left_out"]["course_lib.reference.se"] == "imported"
