"""The course as a person meets it: JupyterLab started by `make lab`, driven by a real (headless) browser.

One JupyterLab server (the Makefile's `lab` target, the command the README gives, serving a temporary copy
of the course so nothing is written into the repository) and one Chromium for the whole module. For every
chapter found in notebooks/:

- the solution notebook, opened in JupyterLab and run with Run > Run All Cells: every figure cell shows an
  image, no cell shows error output, every check cell shows "[ok]";
- the student notebook: the cells above the first exercise are run, a wrong answer from the grader catalog
  (tests/catalog/) is typed into the stub and its test cell shows that mistake's hint; the instructor's
  answer typed in instead gives "[ok]";
- once (chapter 01, or the first chapter): the Validate button reports failure on the student notebook, then
  success when every stub holds its answer.

The student view itself: no Nbgrader menu, no formgrader or exchange endpoints, no error dialog.

The browser is Debian's chromium (`apt-get install chromium`; .ci/run installs it), driven by Playwright
from PyPI with ``executable_path``: no browser is downloaded. Only 127.0.0.1 is contacted. Without chromium
or Playwright the module skips, except under CI (CI=true), where it fails. Screenshots of failures go to
out/browser/ (git-ignored), with a summary of the figures seen per chapter.

The capstone runs in the quick mode nbgrader grades in (NBGRADER_EXECUTION set for the server's kernels;
the other chapters do not read it): its default mode trains for minutes, past this module's budget. Its
figure cells that only draw when a position-attention module was trained do not draw in that mode.
"""
from __future__ import annotations

import json
import os
import re
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

from browser import chromium
from course_lib.tools import notebooks as nbs

CHAPTERS = nbs.chapters(nbs.REPO, nbs.RELEASE)
SHOTS = nbs.REPO / "out" / "browser"
VALIDATE_CHAPTER = "01_se" if "01_se" in CHAPTERS else (CHAPTERS[0] if CHAPTERS else None)
RUN_TIMEOUT_S = 420  # one notebook's Run All; the capstone's quick mode is the longest

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not CHAPTERS, reason="no released chapters in notebooks/")]


def _lab_unavailable() -> str | None:
    if not (Path(sys.executable).parent / "jupyter").is_file():
        return f"no jupyter beside {sys.executable} (make setup)"
    if not shutil.which("make"):
        return "no make"
    return None


@pytest.fixture(scope="module")
def playwright_browser():
    with chromium("the browser test", also_needs=_lab_unavailable) as browser:
        # one context for every page: JupyterLab's scripts are fetched once and then come from its cache
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """JupyterLab user settings for the run: every cell rendered (no virtual scrolling, so each cell's output
    is in the page to be read). The news pop-up is left to the views' own configuration (jupyter/*/labconfig),
    which must keep it away, as a person would meet it."""
    for name, value in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")


class Lab:
    """A JupyterLab server started with `make lab` (LAB_ROOT: a copy of the course)."""

    def __init__(self, root: Path, work: Path, *, view: str = "lab"):
        self.root, self.port = root, _free_port()
        _write_settings(work / "settings")
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"), "NBGRADER_EXECUTION": "autograde"}
        env.pop("MPLBACKEND", None)  # as from a person's shell; `make test` sets Agg for the tests themselves
        self.log_path = work / f"{view}.log"
        # -o: never reinstall the environment from inside a test; BIN: the interpreter running the tests
        command = ["make", "-s", "-C", str(nbs.REPO), "-o", ".venv/.installed", view, f"LAB_ROOT={root}",
                   f"PORT={self.port}", f"BIN={Path(sys.executable).parent}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = re.search(rf"http://127\.0\.0\.1:{self.port}/\S*\?token=(\w+)", self.log())
            if found:
                self.token = found.group(1)
                self.base = f"http://127.0.0.1:{self.port}"
                if self._answers(deadline):
                    return
                break
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"`make {view}` started no server that answers (exit {self.process.poll()}):\n"
                           f"{self.log()[-3000:]}")

    def _answers(self, deadline: float) -> bool:
        """Wait until the server answers its REST API (it prints the URL just before it listens)."""
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.get("/api/status")[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.3)
        return False

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, method: str = "GET") -> tuple[int, str]:
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, ""
        except urllib.error.URLError as err:
            raise OSError(f"{path}: {err.reason} (server exit {self.process.poll()}); its log ends:\n"
                          f"{self.log()[-3000:]}") from err

    def shutdown_kernels(self) -> None:
        _, body = self.get("/api/sessions")
        for session in json.loads(body or "[]"):
            self.get(f"/api/sessions/{session['id']}", method="DELETE")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The course as a clone has it (notebooks, solutions, nbgrader config), in a throwaway folder."""
    root = tmp_path_factory.mktemp("course")
    for folder in (nbs.RELEASE, nbs.SOURCE):
        shutil.copytree(nbs.REPO / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(nbs.REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


@pytest.fixture(scope="module")
def lab(playwright_browser, course, tmp_path_factory):
    server = Lab(course, tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jupyterlab(lab, playwright_browser):
    """One browser tab on JupyterLab for the whole module; notebooks are opened in it with File > Open from Path."""
    page = playwright_browser.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab.base}/lab?reset&token={lab.token}")  # reset: a fresh workspace, no tabs restored
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    page.get_by_role("menuitem", name="File", exact=True).wait_for(timeout=120_000)
    yield page
    page.close()


@pytest.fixture(scope="module")
def summary():
    seen: dict[str, dict] = {}
    yield seen
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "summary.json").write_text(json.dumps(seen, indent=1, sort_keys=True), encoding="utf-8")
    for chapter, info in sorted(seen.items()):
        print(f"browser: {chapter}: {info}")


# --------------------------------------------------------------------------------------------
# driving JupyterLab
# --------------------------------------------------------------------------------------------
PANEL = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab on top
CELLS_JS = """() => Array.from(document.querySelectorAll('PANEL .jp-Notebook .jp-Cell')).map(c => ({
  code: c.classList.contains('jp-CodeCell'),
  prompt: (c.querySelector('.jp-InputPrompt') || {}).innerText || '',
  images: c.querySelectorAll('.jp-OutputArea-output img').length,
  errors: Array.from(c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
            .map(e => e.innerText),
  text: (c.querySelector('.jp-Cell-outputArea') || {}).innerText || '',
}))""".replace("PANEL", PANEL)


class Notebook:
    """One notebook open in its own browser page."""

    def __init__(self, page, lab: Lab, path: str, name: str):
        self.page, self.lab, self.path, self.name = page, lab, path, name
        self.nb = nbformat.read(lab.root / path, as_version=4)
        self.menu("File", "filebrowser:open-path")
        self.page.locator(".jp-Dialog input").fill(path)
        self.page.keyboard.press("Enter")
        title = json.dumps(Path(path).name)
        self.page.wait_for_function(
            f"""() => document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current')?.innerText.includes({title})
                   && document.querySelectorAll('{PANEL} .jp-Notebook .jp-Cell').length === {len(self.nb.cells)}""",
            timeout=90_000)
        self.wait_idle(90)

    def cells(self) -> list[dict]:
        return self.page.evaluate(CELLS_JS)

    def cell(self, index: int):
        return self.page.locator(f"{PANEL} .jp-Notebook .jp-Cell").nth(index)

    def wait_idle(self, timeout_s: float) -> None:
        """Until the kernel is idle and no cell waits to run ([*]), twice half a second apart."""
        idle = f"""() => document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'
                    && !Array.from(document.querySelectorAll('{PANEL} .jp-InputPrompt')).some(p => p.innerText.includes('*'))"""
        deadline = time.monotonic() + timeout_s
        try:
            for _ in range(2):
                left_ms = max(1000, (deadline - time.monotonic()) * 1000)
                self.page.wait_for_function(idle, timeout=left_ms, polling=250)
                time.sleep(0.5)
            self.page.wait_for_function(idle, timeout=max(1000, (deadline - time.monotonic()) * 1000), polling=250)
        except Exception as err:  # noqa: BLE001 - playwright's TimeoutError
            self.shot("timeout")
            raise AssertionError(f"{self.path}: still running after {timeout_s:.0f} s") from err

    def menu(self, top: str, command: str) -> None:
        self.page.get_by_role("menuitem", name=top, exact=True).click()
        self.page.locator(f"li[data-command='{command}']").click()

    def select(self, index: int) -> None:
        """Select a cell in command mode (as a click on its prompt does)."""
        self.cell(index).locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")

    def type_into(self, index: int, source: str) -> None:
        """Replace the cell's code with ``source``, as typed (pasted) by a person."""
        self.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(source)
        self.page.keyboard.press("Escape")

    def run(self, index: int, timeout_s: float = 120) -> dict:
        """Shift+Enter on one cell; return what it shows once the kernel is done."""
        prompt = f"document.querySelectorAll('{PANEL} .jp-Notebook .jp-Cell')[{index}].querySelector('.jp-InputPrompt').innerText"
        before = self.page.evaluate(f"() => {prompt}")
        self.select(index)
        self.page.keyboard.press("Shift+Enter")
        self.page.wait_for_function(f"() => {{ const p = {prompt}; return p !== {json.dumps(before)} && /\\[\\d+\\]/.test(p); }}",
                                    timeout=timeout_s * 1000, polling=200)
        self.wait_idle(timeout_s)
        return self.cells()[index]

    def shot(self, what: str, index: int | None = None) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        target = SHOTS / f"{self.name}-{what}.png"
        try:
            if index is not None:
                self.cell(index).scroll_into_view_if_needed(timeout=10_000)
                self.cell(index).screenshot(path=str(target), timeout=20_000)
            else:
                self.page.screenshot(path=str(target))
        except Exception:  # noqa: BLE001 - a failed screenshot must not hide the failure it documents
            self.page.screenshot(path=str(target))
        return target

    def close(self) -> None:
        """Close the tab (discarding unsaved edits) and shut its kernel down."""
        try:
            for dialog in self.page.locator(".jp-Dialog").all():  # one a failed step left open
                dialog.locator(".jp-mod-reject, .jp-mod-accept").first.click()
            self.menu("File", "application:close")
            discard = self.page.get_by_role("button", name="Discard")
            try:
                discard.wait_for(timeout=1500)
                discard.click()
            except Exception:  # noqa: BLE001 - no unsaved changes, no question asked
                pass
            self.page.wait_for_function(f"!document.querySelector({json.dumps(PANEL)})", timeout=30_000)
        finally:
            self.lab.shutdown_kernels()


def _figure_cells(nb) -> list[int]:
    """Code cells that draw a figure every time they run: a `plt.show()` at the top level of the cell."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(r"^plt\.show\(\)", c.source, re.M)]


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _check_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if _meta(c).get("grade") and not _meta(c).get("solution")]


def _text(s: str) -> str:
    return " ".join(s.split())


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------
def test_student_view_has_validate_but_no_formgrader_or_exchange(lab, jupyterlab):
    page = Notebook(jupyterlab, lab, f"{nbs.RELEASE}/{CHAPTERS[0]}/{CHAPTERS[0]}.ipynb", "student-view")
    try:
        menus = page.page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert "Run" in menus and "Nbgrader" not in menus, menus
        assert page.page.get_by_text("Validate", exact=True).count() == 1
        time.sleep(4)  # an exchange error or the news prompt would pop up by now
        assert page.page.locator(".jp-Dialog").count() == 0, page.page.locator(".jp-Dialog").inner_text()
        # no toast at all: neither an exchange error nor JupyterLab's "notified about official news?" prompt
        toasts = page.page.locator(".Toastify__toast")
        assert toasts.count() == 0, toasts.all_inner_texts()
    except AssertionError:
        page.shot("student-view")
        raise
    finally:
        page.close()
    for endpoint in ("/formgrader", "/assignments", "/courses"):
        assert lab.get(endpoint)[0] == 404, f"{endpoint} is served in the student view"
    log = lab.log()
    before_url = log[: log.index(lab.token)]
    noisy = [line for line in before_url.splitlines()
             if re.search(r"warning|error|jupyter lab --|pip install|!!", line, re.I) or line.startswith(("[W ", "[E "))]
    assert not noisy, f"`make lab` prints this before its URL:\n" + "\n".join(noisy)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_in_jupyterlab_shows_every_figure_and_ok(lab, jupyterlab, summary, chapter):
    page = Notebook(jupyterlab, lab, f"{nbs.SOURCE}/{chapter}/{chapter}.ipynb", f"{chapter}-solution")
    try:
        started = time.monotonic()
        page.menu("Run", "runmenu:run-all")
        time.sleep(1)
        page.wait_idle(RUN_TIMEOUT_S)
        seconds = time.monotonic() - started
        cells = page.cells()
        code = [i for i, c in enumerate(page.nb.cells) if c.cell_type == "code"]
        not_run = [i for i in code if not re.search(r"\[\d+\]", cells[i]["prompt"])]
        errors = {i: cells[i]["errors"] for i in code if cells[i]["errors"]}
        for i in list(errors)[:1] + not_run[:1]:
            page.shot(f"cell{i}-error", i)
        assert not errors, f"{chapter}: error output in cells {errors}"
        assert not not_run, f"{chapter}: cells never ran (Run All stopped?): {not_run}"
        figures = _figure_cells(page.nb)
        blank = [i for i in figures if cells[i]["images"] == 0]
        for i in blank:
            page.shot(f"cell{i}-no-figure", i)
        assert not blank, f"{chapter}: figure cells show no image in JupyterLab: {blank}"
        silent = [i for i in _check_cells(page.nb) if "[ok]" not in cells[i]["text"]]
        for i in silent[:1]:
            page.shot(f"cell{i}-no-ok", i)
        assert not silent, f"{chapter}: check cells without [ok]: {[cells[i]['text'][-300:] for i in silent]}"
        if figures:
            page.shot("figure", figures[0])
        summary.setdefault(chapter, {}).update(
            figure_cells=len(figures), cells_with_image=sum(1 for c in cells if c["images"]),
            images=sum(c["images"] for c in cells), checks_ok=len(_check_cells(page.nb)), run_all_s=round(seconds, 1))
    finally:
        page.close()


def _first_exercise(chapter: str, nb) -> tuple:
    """The chapter's first exercise in notebook order that the catalog has a wrong answer for."""
    import catalog

    exercises, impls = catalog.load_all()
    order = {_meta(c).get("grade_id"): i for i, c in enumerate(nb.cells) if _meta(c)}
    mine = sorted((e for e in exercises if e.chapter == chapter and e.solution_id in order and e.test_id in order),
                  key=lambda e: order[e.solution_id])
    for exercise in mine:
        wrong = [i for i in impls if i.exercise == exercise and i.mistake not in (None, "not_implemented", "crash")]
        if wrong:
            return exercise, wrong[0], order[exercise.solution_id], order[exercise.test_id]
    pytest.fail(f"{chapter}: the grader catalog (tests/catalog/) has no wrong answer for any exercise here")


def _answers(chapter: str) -> dict[str, str]:
    nb = nbformat.read(nbs.notebook_path(chapter), as_version=4)
    return {_meta(c)["grade_id"]: c.source for c in nb.cells if c.cell_type == "code" and _meta(c).get("solution")}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_gets_the_named_hint_then_ok(lab, jupyterlab, summary, chapter):
    from course_lib.checks import CheckFailure

    page = Notebook(jupyterlab, lab, f"{nbs.RELEASE}/{chapter}/{chapter}.ipynb", f"{chapter}-student")
    try:
        exercise, wrong, stub, test_cell = _first_exercise(chapter, page.nb)
        try:  # the hint the checks give for this wrong answer, asked directly
            exercise.visible(wrong.load())
            pytest.fail(f"{chapter}: the catalog's wrong answer {wrong.label!r} passes the visible check")
        except CheckFailure as failure:
            assert failure.mistake == wrong.mistake
            hint = str(failure)  # what went wrong, then "Likely mistake: ..." (the named hint)
        page.select(stub)
        page.menu("Run", "notebook:run-all-above")
        time.sleep(1)
        page.wait_idle(RUN_TIMEOUT_S)
        page.type_into(stub, wrong.source.strip())
        assert not page.run(stub)["errors"], f"{chapter}: the wrong answer's cell itself failed"
        shown = page.run(test_cell)
        page.shot("wrong-answer-hint", test_cell)
        assert _text(hint) in _text(shown["text"]), (
            f"{chapter}: typed {wrong.label!r}; expected the hint {hint!r}, the cell shows {shown['text'][-800:]!r}")
        page.type_into(stub, _answers(chapter)[exercise.solution_id])
        assert not page.run(stub)["errors"]
        shown = page.run(test_cell)
        if "[ok]" not in shown["text"] or shown["errors"]:
            page.shot("right-answer", test_cell)
        assert "[ok]" in shown["text"] and not shown["errors"], f"{chapter}: right answer shows {shown['text'][-800:]!r}"
        summary.setdefault(chapter, {}).update(wrong_answer=wrong.label, mistake=wrong.mistake)
        if chapter == VALIDATE_CHAPTER:
            _validate_fails_then_passes(page, chapter)
            summary[chapter]["validate"] = "failed, then passed"
    finally:
        page.close()


def _validate(page: Notebook) -> str:
    page.page.keyboard.press("Control+s")
    page.page.wait_for_function("!document.querySelector('.jp-mod-dirty')", timeout=30_000)
    page.page.get_by_text("Validate", exact=True).click()
    dialog = page.page.locator(".jp-Dialog")
    dialog.wait_for(timeout=300_000)
    page.page.wait_for_function("!document.querySelector('.jp-Dialog .jp-Spinner')", timeout=300_000)
    text = dialog.inner_text()
    return text


def _validate_fails_then_passes(page: Notebook, chapter: str) -> None:
    text = _validate(page)
    if "failed" not in text:
        page.shot("validate-failure")
    assert "The following cell failed" in text and "NotImplementedError" in text, text[:2000]
    page.page.locator(".jp-Dialog .jp-mod-accept").click()
    answers = _answers(chapter)
    for i, cell in enumerate(page.nb.cells):
        if cell.cell_type == "code" and _meta(cell).get("solution"):
            page.type_into(i, answers[_meta(cell)["grade_id"]])
        elif cell.cell_type == "markdown" and _meta(cell).get("solution"):  # a written answer, graded by hand
            page.select(i)
            page.page.keyboard.press("Enter")  # a rendered markdown cell opens its editor on Enter
            page.type_into(i, "A written answer, typed by the test; an instructor grades it by hand.")
    text = _validate(page)
    page.shot("validate-success")
    assert "Success! Your notebook passes all the tests." in text, text[:2000]
    page.page.locator(".jp-Dialog .jp-mod-accept").click()


def test_instructor_view_serves_formgrader_with_every_chapter(course, tmp_path_factory):
    # `make instructor`: the same course with nbgrader's formgrader on, this repository's nbgrader_config.py
    # read from the folder it serves (the student view's 404 for /formgrader is asserted above)
    server = Lab(course, tmp_path_factory.mktemp("instructor"), view="instructor")
    try:
        status, body = server.get("/formgrader/api/assignments")
        assert status == 200, f"formgrader answered {status}:\n{server.log()[-2000:]}"
        assert sorted(a["name"] for a in json.loads(body)) == nbs.chapters(course)
        assert all(a["source_path"] == f"{nbs.SOURCE}/{a['name']}" for a in json.loads(body))
        assert server.get("/formgrader")[0] == 200 and server.get("/assignments")[0] != 404
    finally:
        server.stop()
