"""Every way nbgrader grades a course folder grades in the sandbox and renders the course's safe feedback.

A course folder is laid out as docs/grading.md ("On a JupyterHub", step 3) does it: the chapter's source
and the copy of jupyter/grading/nbgrader_config.py. Then a hostile submission of chapter 01 (a wrong
SqueezeExcitation covered up by replacing torch's comparisons: tests/hostile, ``patch_torch``) is
autograded, and its feedback rendered, through each entry point a lecturer has:

- ``nbgrader autograde`` / ``nbgrader generate_feedback`` typed in the course folder;
- the same commands from another folder, with ``--CourseDirectory.root``;
- formgrader in a lecturer's own Jupyter server started elsewhere, its course named in
  ``~/.jupyter/nbgrader_config.py`` (the Autograde and Generate Feedback buttons' API calls);
- (the JupyterHub service: tests/test_hub.py; the batch grader: tests/test_hostile.py.)

Each time the submission must get 0 and its page must show no line of the hidden tests. The counter-test
grades the same submission with the same command in the same folder without the course's
``nbgrader_config.py``: plain nbgrader then gives it points and its page shows the hidden tests, so the
checks here can fail. And a page that would still show a hidden-test line is refused by ``SafeFeedback``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import course_folder, sandbox
from course_lib.grading.common import hidden_lines
from course_lib.grading.feedback import html_text
from course_lib.tools import notebooks as nbs
from hostile import cases as hostile

pytestmark = pytest.mark.slow

CHAPTER = "01_se"
COURSE = "cnn-attention"
VENV_BIN = Path(sys.executable).parent


def _env(home: Path, **more: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "COURSE_SANDBOX"))}
    env.update(HOME=str(home), MPLBACKEND="Agg", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **more)
    return env


def nbgrader(args: list[str], cwd: Path, home: Path) -> str:
    done = subprocess.run([str(VENV_BIN / "nbgrader"), *args], cwd=cwd, env=_env(home), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder as the guide lays it out, generated, with four hostile students' submissions."""
    root = tmp_path_factory.mktemp("entry")
    folder, home = root / "course", root / "home"
    home.mkdir()
    shutil.copytree(nbs.REPO / "solutions" / CHAPTER, folder / "solutions" / CHAPTER)
    shutil.copyfile(nbs.REPO / "jupyter" / "grading" / "nbgrader_config.py", folder / "nbgrader_config.py")
    nbgrader(["generate_assignment", CHAPTER], cwd=folder, home=home)
    release = nbformat.read(folder / "notebooks" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    case = next(c for c in hostile.cases("") if c.name == "patch_torch")
    for student in ("in-folder", "elsewhere", "formgrader", "plain"):
        target = folder / "submitted" / student / CHAPTER
        target.mkdir(parents=True)
        (target / f"{CHAPTER}.ipynb").write_text(case.build(release), encoding="utf-8")
        (target / "timestamp.txt").write_text("2026-01-01 00:00:00.000000 UTC")
    source = nbformat.read(nbs.notebook_path(CHAPTER), as_version=4)
    return folder, home, hidden_lines(source, release)


def score(folder: Path, student: str) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", COURSE) as gb:
        return float(gb.find_submission_notebook(CHAPTER, CHAPTER, student).score)


def page_leaks(folder: Path, student: str, hidden: list[str]) -> list[str]:
    text = html_text((folder / "feedback" / student / CHAPTER / f"{CHAPTER}.html").read_text(encoding="utf-8"))
    return [line for line in hidden if line in text] + (["### BEGIN HIDDEN TESTS"] if "BEGIN HIDDEN" in text else [])


def test_the_repository_config_is_hardened_with_safe_feedback():
    # `make instructor` and nbgrader run from the checkout read it; course folders load it (course_config)
    config = nbs.nbgrader_config(nbs.REPO / "out" / "unused")
    assert sandbox.is_hardened(config) and sandbox.has_safe_feedback(config)


def test_the_batch_grader_and_the_guide_give_a_course_folder_its_config(tmp_path):
    written = course_folder.write_course_config(tmp_path / "new-course")
    assert written.read_text() == course_folder.COURSE_CONFIG.read_text()
    own = tmp_path / "own" / "nbgrader_config.py"
    own.parent.mkdir()
    own.write_text("# the lecturer's own\n")
    course_folder.write_course_config(own.parent)
    assert own.read_text() == "# the lecturer's own\n", "an existing config must be left as it is"
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(written.parent)).load_config()
    assert sandbox.is_hardened(loaded) and sandbox.has_safe_feedback(loaded)
    assert loaded.CourseDirectory.course_id == COURSE
    # `python -m course_lib course-folder` (make instructor, the guide's step 3) writes it too
    from course_lib.grading.batch import prepare_course_folder

    prepare_course_folder(tmp_path / "made")
    assert (tmp_path / "made" / "nbgrader_config.py").read_text() == course_folder.COURSE_CONFIG.read_text()


def test_nbgrader_typed_in_the_course_folder(course):
    folder, home, hidden = course
    nbgrader(["autograde", CHAPTER, "--student", "in-folder"], cwd=folder, home=home)
    nbgrader(["generate_feedback", CHAPTER, "--student", "in-folder"], cwd=folder, home=home)
    assert score(folder, "in-folder") == 0.0
    assert not page_leaks(folder, "in-folder", hidden)


def test_nbgrader_from_another_folder(course, tmp_path):
    folder, home, hidden = course
    root = f"--CourseDirectory.root={folder}"
    nbgrader(["autograde", CHAPTER, "--student", "elsewhere", root], cwd=tmp_path, home=home)
    nbgrader(["generate_feedback", CHAPTER, "--student", "elsewhere", root], cwd=tmp_path, home=home)
    assert score(folder, "elsewhere") == 0.0
    assert not page_leaks(folder, "elsewhere", hidden)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_formgrader_in_a_lecturers_own_server(course, tmp_path):
    folder, _, hidden = course
    home = tmp_path / "lecturer"
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(folder)!r}\n", encoding="utf-8")
    port, token = _free_port(), secrets.token_hex(16)
    # the server's root is the folder above the course (formgrader needs the course inside it), started there
    command = [str(VENV_BIN / "jupyter"), "server", "--ip=127.0.0.1", f"--port={port}", "--no-browser",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder.parent}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(command, cwd=folder.parent, env=_env(home), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}/formgrader/api"

    def post(path: str) -> dict:
        request = urllib.request.Request(base + path, method="POST", data=b"",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=900) as answer:
            import json

            return json.loads(answer.read())

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, \
                    (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(1)
        graded = post(f"/submission/{CHAPTER}/formgrader/autograde")
        assert graded.get("success"), graded.get("error") or graded.get("log")
        made = post(f"/assignment/{CHAPTER}/formgrader/generate_feedback")
        assert made.get("success"), made.get("error") or made.get("log")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert score(folder, "formgrader") == 0.0
    assert not page_leaks(folder, "formgrader", hidden)


def test_without_the_course_config_plain_nbgrader_is_fooled_and_leaks(course, tmp_path):
    folder, home, hidden = course
    plain = tmp_path / "plain-course"
    shutil.copytree(folder, plain, ignore=shutil.ignore_patterns("nbgrader_config.py"))
    settings = [f"--CourseDirectory.root={plain}", "--CourseDirectory.source_directory=solutions",
                "--CourseDirectory.release_directory=notebooks", f"--CourseDirectory.course_id={COURSE}",
                "--Execute.timeout=300"]
    nbgrader(["autograde", CHAPTER, "--student", "plain", *settings], cwd=tmp_path, home=home)
    nbgrader(["generate_feedback", CHAPTER, "--student", "plain", *settings], cwd=tmp_path, home=home)
    assert score(plain, "plain") > 0, "the hostile submission must fool plain nbgrader, or it proves nothing here"
    assert page_leaks(plain, "plain", hidden), "plain nbgrader's page shows the hidden tests (nbgrader #917)"


def test_safe_feedback_refuses_a_page_that_still_shows_a_hidden_line(course, tmp_path):
    folder, home, hidden = course
    copy = tmp_path / "course"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("feedback"))
    graded = sorted((copy / "autograded").glob(f"*/{CHAPTER}/{CHAPTER}.ipynb"))
    assert graded, "an autograded notebook of an earlier test"
    student = graded[0].parent.parent.name
    nb = nbformat.read(graded[0], as_version=4)
    # a line of the hidden tests outside the markers (say, pasted into a markdown cell)
    nb.cells.append(nbformat.v4.new_markdown_cell(hidden[0]))
    graded[0].chmod(0o644)
    nbformat.write(nb, graded[0])
    done = subprocess.run([str(VENV_BIN / "nbgrader"), "generate_feedback", CHAPTER, "--student", student],
                          cwd=copy, env=_env(home), capture_output=True, text=True, timeout=600)
    assert not (copy / "feedback" / student / CHAPTER / f"{CHAPTER}.html").exists(), "the leaking page was written"
    assert "line(s) of the hidden tests" in done.stdout + done.stderr
