"""docs/grading.md, "On a JupyterHub: the whole course cycle", as written: a real JupyterHub and the guide's commands.

``test_hub_cycle_in_the_browser`` starts JupyterHub (PyPI ``jupyterhub``) behind configurable-http-proxy
(npm) on 127.0.0.1, with DummyAuthenticator (a password) and SimpleLocalProcessSpawner (single-user
servers as local processes, no system accounts), an instructor and two students, the exchange and the
formgrader service exactly as the guide sets them up: its ``jupyterhub_config.py`` and global
``nbgrader_config.py`` lines and its course-folder commands are read from the Markdown. Then, in chromium
driven by Playwright, as people use it:

- the instructor opens formgrader through the hub, generates and releases chapter 01;
- each student logs in, fetches it in JupyterLab's Assignment List, answers (alice right, with a written
  answer; bob wrong, covering the wrong answer up by replacing ``torch.allclose``: a hostile submission),
  validates and submits;
- the instructor collects, autogrades each submission with formgrader's own button (in the sandbox: bob's
  tampering earns 0), grades alice's written answer by hand, generates and releases the feedback;
- each student fetches their own feedback, which shows no hidden test and no model answer.

That it can fail: with nbgrader's stock autograde and feedback chains appended to the course folder's
``nbgrader_config.py`` (what formgrader used when the guide's service ran outside the course folder), a
run of this cycle gave bob 6 of 11 (every exercise) and stopped at the check that his notebook shows the
sandbox's tampering finding (counter-run, December 2026).

tests/test_hub_commands.py runs every shell block of the section literally, in the guide's order, as the
account each is meant for (the grader account, or each student for the student blocks), with a real Dask
scheduler and worker: the same cycle without a browser, graded by the batch grader. It replaces
tests/test_exchange.py, which drove the exchange through nbgrader's classes on a stand-in chapter.

Stand-ins for what a single test machine does not have (the only changes made to the guide's text):

- ``/srv/nbgrader/exchange`` -> a temporary folder; ``sudo`` dropped (the test owns its folders);
- ``/etc/jupyter/nbgrader_config.py`` -> a temporary folder put on ``JUPYTER_CONFIG_PATH`` (every process
  of the test, the hub's single-user servers and the service included, gets it);
- the accounts' homes ``/home/grader-cnn-attention`` etc. -> temporary folders given as ``HOME``; the
  grader's ``~/cnn-attention`` is a link to this checkout; the service's ``"user"`` is the account
  running the test, and ``--allow-root`` is added to the service's command when that account is root
  (Jupyter refuses root without it);
- nbgrader names a student after their Unix account; all servers here run as one account, so each
  student's home holds ``~/.jupyter/nbgrader_config.py`` with ``c.CourseDirectory.student_id``;
- ``10.0.0.5`` and ``10.0.0.6`` -> ``127.0.0.1``, and the ports of the guide (``9999``, ``8786``, ``8787``, the
  worker and nanny port ranges) -> free ports; ``--nworkers 8`` -> ``--nworkers 1`` (a two-core machine);
- ``GRADEBOOK_URL`` is the course folder's SQLite gradebook.

Screenshots of the browser test go to ``out/hub-screens/``. It needs jupyterhub (the ``lab`` extra),
configurable-http-proxy (``npm install configurable-http-proxy`` under ``out/hub-proxy/``, as .ci/run does,
or on PATH, or ``COURSE_CHP``) and chromium with Playwright; without them it skips, and under CI=true it
fails.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from browser import chromium
from course_lib.grading.common import hidden_lines
from course_lib.grading.feedback import html_text
from course_lib.tools import notebooks as nbs
from hostile import cases as hostile

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "grading.md"
HEADING = "## On a JupyterHub: the whole course cycle"
CHAPTER = "01_se"
COURSE = "cnn-attention"
GRADER_HOME = "/home/grader-cnn-attention"
VENV_BIN = Path(sys.executable).parent
SCREENS = REPO / "out" / "hub-screens"
PASSWORD = "course-test-" + secrets.token_hex(4)
WRITTEN_ID = "written_sigmoid"
#: what alice writes in the written question (graded by hand), and the comment the instructor gives
ALICE_TEXT = "Under a softmax the channel gates compete and shrink the features: alice's own answer."
COMMENT = "Right: a softmax makes the gates compete (graded by hand in the hub test)."


# --------------------------------------------------------------------------------------------
# the guide
# --------------------------------------------------------------------------------------------
def hub_section(text: str | None = None) -> str:
    text = GUIDE.read_text(encoding="utf-8") if text is None else text
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start:] if end < 0 else text[start:end]


FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def blocks(lang: str, section: str | None = None) -> list[str]:
    """The fenced blocks of the hub section in ``lang``, dedented, in order."""
    section = hub_section() if section is None else section
    return [textwrap.dedent(m["body"]) for m in FENCE.finditer(section) if m["lang"] == lang]


def block_with(lang: str, *needles: str) -> str:
    found = [b for b in blocks(lang) if all(n in b for n in needles)]
    assert len(found) == 1, f"the hub section must have one {lang} block with {needles}, found {len(found)}"
    return found[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Site:
    """One hub's folders in a temporary place, and the stand-ins of the module's docstring."""

    root: Path
    service_port: int = 0
    dask_port: int = 0

    def __post_init__(self):
        self.service_port = self.service_port or _free_port()
        self.dask_port = self.dask_port or _free_port()
        self.exchange = self.root / "srv" / "exchange"
        self.etc = self.root / "etc" / "jupyter"
        self.grader = self.root / "grader"
        self.course = self.grader / "course"
        self.homes = self.root / "home"
        self.etc.mkdir(parents=True)
        self.grader.mkdir(parents=True)
        (self.grader / "cnn-attention").symlink_to(REPO, target_is_directory=True)

    def substitute(self, text: str) -> str:
        for old, new in (
            ("/srv/nbgrader/exchange", str(self.exchange)),
            ("sudo ", ""),
            (GRADER_HOME, str(self.grader)),
            ('"user": "grader-cnn-attention"', f'"user": {getpass.getuser()!r}'),
            ("http://127.0.0.1:9999", f"http://127.0.0.1:{self.service_port}"),
            ("10.0.0.5", "127.0.0.1"),
            ("10.0.0.6", "127.0.0.1"),
            ("8786", str(self.dask_port)),
            ("--nworkers 8", "--nworkers 1"),
            ("127.0.0.1:8787", f"127.0.0.1:{_free_port()}"),
            ("9000:9007", str(_free_port())),  # one port for the one worker (a range must grow: A < B)
            ("9100:9107", str(_free_port())),
        ):
            text = text.replace(old, new)
        return text

    def global_config(self) -> None:
        """The guide's /etc/jupyter/nbgrader_config.py, into the stand-in folder."""
        block = block_with("python", "Exchange.root")
        (self.etc / "nbgrader_config.py").write_text(self.substitute(block), encoding="utf-8")

    def student_home(self, student: str) -> Path:
        home = self.homes / student
        (home / ".jupyter").mkdir(parents=True, exist_ok=True)
        (home / ".jupyter" / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.CourseDirectory.student_id = {student!r}  # stand-in for a Unix account\n",
            encoding="utf-8")
        return home

    def env(self, home: Path, **more: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "COURSE_SANDBOX"))}
        env.update(HOME=str(home), JUPYTER_CONFIG_PATH=str(self.etc), MPLBACKEND="Agg",
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   GRADEBOOK_URL=f"sqlite:///{self.course / 'gradebook.db'}", **more)
        return env

    def run(self, script: str, home: Path, timeout: float = 600) -> str:
        """A shell block as the account whose home is ``home``, from that home (a login shell's folder)."""
        script = self.substitute(script)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=home, env=self.env(home),
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"the guide's block failed (exit {done.returncode}):\n{script}\n" \
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    def setup_course(self) -> None:
        """Steps 2 and 3 of the guide: the exchange, the global config, the course folder."""
        self.run(block_with("bash", "/srv/nbgrader/exchange"), self.grader)
        self.global_config()
        self.run(block_with("bash", "course-folder"), self.grader)
        assert (self.course / "nbgrader_config.py").is_file() and (self.course / "solutions" / CHAPTER).is_dir()


# --------------------------------------------------------------------------------------------
# the students' answers and what their pages may not show
# --------------------------------------------------------------------------------------------
def _solutions() -> dict[str, str]:
    """grade_id -> the instructor's solution of every solution cell of the chapter (markers removed)."""
    nb = nbformat.read(nbs.notebook_path(CHAPTER), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: "\n".join(
        line for line in c.source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
        for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}


def answer(fetched: Path, student: str) -> None:
    """Write the student's answers into the fetched notebook, as their server saves it.

    alice: every code answer right (the instructor's solutions) and a written answer of her own;
    bob: a wrong SqueezeExcitation covered up by replacing torch's comparisons (tests/hostile, patch_torch),
    nothing else answered."""
    release = nbformat.read(fetched, as_version=4)
    if student == "alice":
        solutions = _solutions()
        for cell in release.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in solutions:
                cell.source = solutions[grade_id]
            elif grade_id == WRITTEN_ID:
                cell.source = ALICE_TEXT
        nbformat.write(release, fetched)
    else:
        case = next(c for c in hostile.cases("") if c.name == "patch_torch")
        fetched.write_text(case.build(release), encoding="utf-8")


#: student -> the points each must get for the three exercises and the written answer after hand grading
EXPECTED = {
    "alice": {"test_se": 4.0, "test_se_parameter_count": 1.0, "test_seresnet50": 1.0, WRITTEN_ID: 2.0},
    "bob": {"test_se": 0.0, "test_se_parameter_count": 0.0, "test_seresnet50": 0.0, WRITTEN_ID: 0.0},
}


def secrets_of_chapter() -> tuple[list[str], list[str]]:
    """The lines of the hidden tests and of the written answers' model answers (never on a student's page)."""
    source = nbformat.read(nbs.notebook_path(CHAPTER), as_version=4)
    release = nbformat.read(nbs.notebook_path(CHAPTER, folder=nbs.RELEASE), as_version=4)
    models = []
    for cell in source.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            models += [line.strip() for line in cell.source.splitlines()
                       if len(line.strip()) >= 25 and "### " not in line]
    assert models, "chapter 01 has a written answer with a model answer"
    return hidden_lines(source, release), models


def check_page(page: str, student: str) -> None:
    """A student's feedback page: their own, with the placeholder, no hidden test, no model answer."""
    text = html_text(page)
    hidden, models = secrets_of_chapter()
    assert "BEGIN HIDDEN" not in text and "END HIDDEN" not in text, f"{student}'s page shows the hidden-test markers"
    leaked = [line for line in hidden if line in text]
    assert not leaked, f"{student}'s page shows hidden tests: {leaked[:3]}"
    shown = [line for line in models if line in text]
    assert not shown, f"{student}'s page shows the model answer: {shown[:2]}"
    assert "hidden tests ran here (not shown)" in text, f"{student}'s page is not the course's safe page"
    if student == "alice":
        assert ALICE_TEXT in text, "alice's page does not show her written answer"
    else:
        assert ALICE_TEXT not in text, "bob received alice's page"


def gradebook_scores(course: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE) as gb:
        nb = gb.find_submission_notebook(CHAPTER, CHAPTER, student)
        return {g.name: float(g.score) for g in nb.grades}


def assert_sandboxed(course: Path) -> None:
    """bob's tampering was caught by the sandbox (plain nbgrader gives it the points: tests/test_hostile.py)."""
    graded = nbformat.read(course / "autograded" / "bob" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in graded.cells])
    assert "tampering detected" in outputs, "bob's notebook was not graded in the course's sandbox"


# --------------------------------------------------------------------------------------------
# the guide's shell blocks, literally
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _background(command: str, site: Site, home: Path, log: Path):
    """A long-running line of the guide (the Dask scheduler, a worker), stopped at the end."""
    handle = open(log, "w")
    proc = subprocess.Popen(["bash", "-c", "exec " + site.substitute(command)], cwd=home, env=site.env(home),
                            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        handle.close()


def _student_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --------------------------------------------------------------------------------------------
# the hub in the browser
# --------------------------------------------------------------------------------------------
def proxy_command() -> str | None:
    """configurable-http-proxy: COURSE_CHP, out/hub-proxy/ (.ci/run's npm install), or PATH."""
    for candidate in (os.environ.get("COURSE_CHP"), REPO / "out" / "hub-proxy" / "node_modules" / ".bin" /
                      "configurable-http-proxy", shutil.which("configurable-http-proxy")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_hub() -> str | None:
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install -e '.[lab]')"
    if not (VENV_BIN / "jupyterhub-singleuser").is_file():
        return f"no jupyterhub-singleuser in {VENV_BIN}"
    if proxy_command() is None:
        return ("configurable-http-proxy is missing (npm install --prefix out/hub-proxy configurable-http-proxy; "
                ".ci/run does it)")
    return None


def hub_config(site: Site, port: int) -> str:
    """jupyterhub_config.py: the test's hub on 127.0.0.1, then the guide's lines (step 4) as written."""
    allow_root = ["--allow-root"] if os.geteuid() == 0 else []
    ours = f'''
c = get_config()
# the test's hub: 127.0.0.1 only, test accounts with a password, servers as local processes
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {_free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.command = [{proxy_command()!r}]
c.JupyterHub.db_url = "sqlite:///{site.root / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = "{site.root / 'jupyterhub_cookie_secret'}"
c.JupyterHub.pid_file = "{site.root / 'jupyterhub.pid'}"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allowed_users = {{"instructor1", "alice", "bob"}}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{site.homes}/{{username}}"
c.Spawner.cmd = [{str(VENV_BIN / "jupyterhub-singleuser")!r}]
c.Spawner.args = {allow_root!r}
c.Spawner.environment = {{"JUPYTER_CONFIG_PATH": {str(site.etc)!r}, "MPLBACKEND": "Agg"}}
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
'''
    guide = site.substitute(block_with("python", "c.JupyterHub.services"))
    after = f'''
# stand-ins: /etc/jupyter for the service too, and root's --allow-root
c.JupyterHub.services[0]["environment"] = {{"JUPYTER_CONFIG_PATH": {str(site.etc)!r}, "MPLBACKEND": "Agg"}}
c.JupyterHub.services[0]["command"] += {allow_root!r}
'''
    return ours + "\n# ---- docs/grading.md, step 4 ----\n" + guide + "\n" + after


class Hub:
    def __init__(self, site: Site):
        self.site = site
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = site.root / "jupyterhub_config.py"
        config.write_text(hub_config(site, self.port), encoding="utf-8")
        self.log_path = site.root / "jupyterhub.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(config)], cwd=site.root,
                                     env=site.env(site.root), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self, timeout: float = 120) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/hub/login", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"JupyterHub did not start:\n{self.tail()}")

    def tail(self, n: int = 6000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the hub stops the servers and the service it started
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def _shot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=False)


def _login(browser, hub: Hub, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(120_000)
    page = context.new_page()
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_load_state()
    return context, page


def _modal(page, what: str, timeout: float = 480_000) -> str:
    """formgrader's answer to a button: a success or an error dialog; returns its text after closing it."""
    page.wait_for_selector(".modal.in .modal-body", timeout=timeout)
    page.wait_for_timeout(300)
    title = page.inner_text(".modal.in .modal-title")
    body = page.inner_text(".modal.in .modal-body")
    assert "error" not in page.get_attribute(".modal.in", "id"), f"formgrader's {what} failed: {title}\n{body[-3000:]}"
    page.click(".modal.in .modal-footer button")
    page.wait_for_selector(".modal", state="detached", timeout=20_000)
    page.wait_for_timeout(500)  # the backdrop fades out
    return body


def _assignment_list(page):
    page.wait_for_selector("div.lm-MenuBar-itemLabel:text-is('Nbgrader')", timeout=300_000)
    page.click("div.lm-MenuBar-itemLabel:text-is('Nbgrader')")
    page.click("li.lm-Menu-item:has-text('Assignment List')")
    page.wait_for_selector("#released_assignments_list")


def test_hub_cycle_in_the_browser(tmp_path):
    site = Site(tmp_path)
    site.setup_course()
    for student in EXPECTED:
        site.student_home(student)
    reason = missing_hub()
    with chromium("the JupyterHub test", also_needs=lambda: reason) as browser:
        hub = Hub(site)
        try:
            hub.wait()
            _cycle(browser, hub, site)
        except BaseException:
            print(hub.tail(12000))
            raise
        finally:
            hub.stop()


def _cycle(browser, hub: Hub, site: Site) -> None:
    formgrader = hub.url + f"/services/{COURSE}/formgrader"
    row = f"tr:has(td.name:has-text('{CHAPTER}'))"

    # the instructor: formgrader through the hub (the role of the guide, or a 403), generate and release
    instructor, teacher = _login(browser, hub, "instructor1")
    teacher.goto(formgrader)
    teacher.wait_for_selector(f"{row} td.assign a")
    _shot(teacher, "01-formgrader-manage-assignments")
    teacher.click(f"{row} td.assign a")
    _modal(teacher, "Generate")
    teacher.click(f"{row} td.release a")
    _modal(teacher, "Release")
    _shot(teacher, "02-formgrader-released")
    assert (site.exchange / COURSE / "outbound" / CHAPTER / f"{CHAPTER}.ipynb").is_file()

    # the students: fetch, answer, validate, submit
    students = {}
    for student in EXPECTED:
        context, page = _login(browser, hub, student)
        students[student] = (context, page)
        _assignment_list(page)
        page.click("#released_assignments_list button:has-text('Fetch')")
        page.wait_for_selector("#fetched_assignments_list button:has-text('Submit')")
        fetched = site.homes / student / CHAPTER / f"{CHAPTER}.ipynb"
        assert fetched.is_file(), f"{student}'s Fetch did not put the chapter in their home"
        _shot(page, f"03-{student}-fetched")
        answer(fetched, student)
        page.click("#fetched_assignments_list a.assignment-notebooks-link")
        page.click("#fetched_assignments_list button:has-text('Validate')")
        page.wait_for_selector(".jp-Dialog", timeout=480_000)
        page.wait_for_timeout(300)
        verdict = page.inner_text(".jp-Dialog")
        _shot(page, f"04-{student}-validated")
        if student == "alice":
            assert "Success" in verdict and "failed" not in verdict, verdict[-2000:]
        page.click(".jp-Dialog button.jp-mod-accept")
        page.click("#fetched_assignments_list button:has-text('Submit')")
        page.wait_for_selector(f"#submitted_assignments_list .list_item:has-text('{CHAPTER}')")
        _shot(page, f"05-{student}-submitted")

    # the instructor: collect, autograde with formgrader's button, grade the written answer by hand
    teacher.goto(formgrader)
    teacher.wait_for_selector(f"{row} td.collect a")
    teacher.click(f"{row} td.collect a")
    _modal(teacher, "Collect")
    teacher.click(f"{row} td.num-submissions a")
    teacher.wait_for_selector("td.autograde a")
    for student in EXPECTED:
        teacher.click(f"tr:has(td.student-id:text-is('{student}')) td.autograde a")
        _modal(teacher, f"Autograde of {student}")
    _shot(teacher, "06-formgrader-autograded")
    assert_sandboxed(site.course)
    for student, expected in EXPECTED.items():
        scores = gradebook_scores(site.course, student)
        assert {k: scores[k] for k in expected if k != WRITTEN_ID} == \
               {k: v for k, v in expected.items() if k != WRITTEN_ID}, (student, scores)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{site.course / 'gradebook.db'}", COURSE) as gb:
        alice_id = gb.find_submission_notebook(CHAPTER, CHAPTER, "alice").id
    teacher.goto(formgrader + f"/gradebook/{CHAPTER}/{CHAPTER}")
    teacher.wait_for_selector("td a:has-text('Submission')")
    teacher.goto(formgrader + f"/submissions/{alice_id}/")
    # formgrader's page is ready for a score once its grade views have rendered the cell (an answer waiting
    # for a grader is marked needs_manual_grade): a value typed before that is overwritten by the render
    teacher.wait_for_selector(f"input#{WRITTEN_ID}.needs_manual_grade")
    teacher.locator(f"input#{WRITTEN_ID}").scroll_into_view_if_needed()
    teacher.fill(f"input#{WRITTEN_ID}", "2")
    teacher.press(f"input#{WRITTEN_ID}", "Tab")
    teacher.fill(f"textarea#{WRITTEN_ID}-comment", COMMENT)
    teacher.press(f"textarea#{WRITTEN_ID}-comment", "Tab")
    deadline = time.monotonic() + 60
    while gradebook_scores(site.course, "alice")[WRITTEN_ID] != 2.0 and time.monotonic() < deadline:
        teacher.wait_for_timeout(500)
    teacher.wait_for_timeout(1500)  # formgrader's own scrolling to the next cell after Tab ends first
    # the student's written answer, its score and the comment in view
    teacher.locator(f"input#{WRITTEN_ID}").evaluate("e => e.scrollIntoView({block: 'start'})")
    teacher.evaluate("window.scrollBy(0, -200)")
    teacher.wait_for_timeout(300)
    _shot(teacher, "07-formgrader-hand-graded")
    for student, expected in EXPECTED.items():
        scores = gradebook_scores(site.course, student)
        assert {k: scores[k] for k in expected} == expected, (student, scores)

    # the instructor: feedback (formgrader's own Generate Feedback: the course's safe pages), released
    teacher.goto(formgrader)
    teacher.wait_for_selector(f"{row} td.generate-feedback a")
    teacher.click(f"{row} td.generate-feedback a")
    _modal(teacher, "Generate Feedback")
    teacher.click(f"{row} td.release-feedback a")
    _modal(teacher, "Release Feedback")
    _shot(teacher, "08-formgrader-feedback-released")

    # the students: Fetch Feedback, read their page
    for student, (context, page) in students.items():
        page.reload()
        _assignment_list(page)
        page.click("#submitted_assignments_list button:has-text('Fetch Feedback')")
        feedback = site.homes / student / CHAPTER / "feedback"
        deadline = time.monotonic() + 120

        def fetched() -> bool:  # the page is there and whole (the server copies it while we look)
            found = list(feedback.rglob(f"{CHAPTER}.html"))
            return bool(found) and found[0].read_text(encoding="utf-8", errors="replace").rstrip().endswith("</html>")

        while not fetched() and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        pages = sorted(feedback.rglob(f"{CHAPTER}.html"))
        assert len(pages) == 1, (student, pages)
        SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pages[0], SCREENS / f"{student}-feedback.html")  # kept to read after a failure
        check_page(pages[0].read_text(encoding="utf-8"), student)
        relative = pages[0].relative_to(site.homes / student).as_posix()
        page.goto(hub.url + f"/user/{student}/files/{relative}")
        page.wait_for_selector("text=hidden tests ran here")
        shown = page.inner_text("body")
        assert "BEGIN HIDDEN" not in shown
        if student == "alice":
            assert COMMENT in shown, "alice's page lacks the instructor's comment"
        _shot(page, f"09-{student}-feedback")
        page.locator("text=hidden tests ran here").first.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -200)")
        _shot(page, f"10-{student}-feedback-test-cell")
        context.close()
    instructor.close()

