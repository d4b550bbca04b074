"""The course book (issue 28, `make book`, course_lib/tools/book.py), built once for the session and read as a reader
meets it.

On the built HTML (no browser):
- every chapter has its page, with the student notebook beside it to download; the home page, the glossary and the
  lecturer's guide are there;
- no answer is shown: the giveaway measure over every page (text, code, alt texts and figure titles) finds nothing,
  no line of a solution or of a hidden test is anywhere in the published site, every stub is shown as released;
  a planted answer (in an output, in an alt text, a solution line, a hidden test) is found on a page; an output that
  names an answer is left out of the page, and without that step the measure of the pages finds it;
- the outputs are a correct solution's: every check cell says [ok], no cell failed, every figure kept its texts.

In Debian's chromium, driven by Playwright (never `playwright install`), from a server on 127.0.0.1, with every
other address refused: on every chapter page every figure is an image that loaded, the math is typeset by the
MathJax the book serves (no raw $$ left), every internal link and #anchor resolves, the navigation reaches every
chapter, the Colab badge points to the chapter, markdown outputs (the capstone's tables) are rendered and not
shown as text; at phone width (390 x 844) no page is wider than the screen.
Screenshots for a person to look at: out/book-screens/ (git-ignored). Without chromium or Playwright the browser
tests skip, except under CI (CI=true), where they fail.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

from browser import chromium
from course_lib.tools import book, giveaways
from course_lib.tools import notebooks as nbs

REPO = nbs.REPO
CHAPTERS = nbs.chapters(REPO, nbs.RELEASE)
SHOTS = REPO / "out" / "book-screens"
PAGES = ["index.html", "docs/glossary.html", "docs/grading.html", *(f"notebooks/{c}/{c}.html" for c in CHAPTERS)]
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHAPTERS, reason="no released chapters in notebooks/")]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> book.BookReport:
    """The book of every chapter, built as `make book` builds it, into a temporary folder."""
    return book.build(tmp_path_factory.mktemp("book") / "html", jobs=2, quiet=True)


def _html(built: book.BookReport, page: str) -> str:
    return (built.out / page).read_text(encoding="utf-8")


def _released(chapter: str) -> nbformat.NotebookNode:
    return nbformat.read(nbs.notebook_path(chapter, REPO, nbs.RELEASE), as_version=4)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _images(page: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in page.cells if c.cell_type == "code" for o in c.outputs)


# --------------------------------------------------------------------------------------------
# the built site
# --------------------------------------------------------------------------------------------
def test_every_chapter_has_its_page_and_notebook(built):
    for page in PAGES:
        assert (built.out / page).is_file(), page
    for chapter in CHAPTERS:
        offered = built.out / nbs.RELEASE / chapter / f"{chapter}.ipynb"
        assert offered.read_bytes() == nbs.notebook_path(chapter, REPO, nbs.RELEASE).read_bytes()
    assert set(built.pages) == set(CHAPTERS) and not list(built.out.rglob("_sources/*.ipynb"))


# Giveaways in a chapter's own prose, which the book does not rewrite and only the chapter can fix (reported with
# issue 28). Each must still be found while it is listed: remove the entry when the chapter is fixed.
CHAPTER_PROSE_LEAKS: set[tuple[str, str, str]] = set()  # (page, question, answer) a chapter's prose shows; none now


def test_the_built_pages_show_no_answer(built):
    found = {(f.where, f.answer_cell, f.answer) for f in giveaways.html_report(built.out, REPO)}
    assert {(f.where, f.answer_cell, f.answer) for f in built.findings} == found
    assert found - CHAPTER_PROSE_LEAKS == set(), "the book shows answers"
    assert CHAPTER_PROSE_LEAKS - found == set(), "a listed chapter leak is gone: remove it from CHAPTER_PROSE_LEAKS"


def test_no_solution_and_no_hidden_test_reaches_the_site(built):
    published = {p: p.read_text(encoding="utf-8", errors="replace") for p in built.out.rglob("*")
                 if p.is_file() and p.suffix in {".html", ".js", ".ipynb", ".txt", ".json"}
                 and "mathjax" not in p.parts and "vendor" not in p.parts}
    everything = _squash("\n".join(published.values()))
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "course_lib.hidden", "Rubric (2 points)"):
        assert marker not in everything, marker
    for chapter in CHAPTERS:
        secrets = giveaways.chapter_secrets(chapter)
        assert sum(len(lines) for _, lines, _ in secrets.answers) > 0 and secrets.hidden
        # the answers' lines on the chapter's page (a line as common as `with torch.no_grad():` may stand in
        # another chapter's given code), the hidden tests' lines and every whole answer anywhere
        own = _squash(giveaways.PageText.of(_html(built, f"notebooks/{chapter}/{chapter}.html")).text)
        shown = [line for _, lines, _ in secrets.answers for line in lines if line in own]
        shown += [line for line in secrets.hidden if line in everything]
        solution = nbformat.read(nbs.notebook_path(chapter), as_version=4)
        regions = [giveaways.solution_region(c.source) for c in solution.cells if c.cell_type == "code"]
        shown += [region for region in map(_squash, filter(None, regions)) if len(region) > 40 and region in everything]
        assert not shown, f"{chapter}: {shown[:5]}"


def test_every_stub_and_check_cell_is_shown_as_released(built):
    for chapter in CHAPTERS:
        code = _squash("\n".join(giveaways.PageText.of(_html(built, f"notebooks/{chapter}/{chapter}.html")).code))
        for cell in _released(chapter).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade_id") != "setup":
                assert _squash(cell.source) in code, f"{chapter}: cell {cell['id']} is not on its page as released"


def test_outputs_are_a_correct_solutions(built):
    for chapter in CHAPTERS:
        page = built.pages[chapter]
        for cell in page.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code":
                continue
            assert not any(o.get("output_type") == "error" for o in cell.outputs), f"{chapter}: {cell['id']} failed"
            if meta.get("solution"):
                assert cell.outputs == [], f"{chapter}: the stub {cell['id']} shows an output of its answer"
            elif meta.get("grade"):
                text = "".join(giveaways.output_text(o) for o in cell.outputs)
                assert "[ok]" in text, f"{chapter}: check cell {cell['id']} says {text[:200]!r}"
        html = giveaways.PageText.of(_html(built, f"notebooks/{chapter}/{chapter}.html")).text
        checks = sum(bool(c.metadata.get("nbgrader", {}).get("grade")) for c in page.cells if c.cell_type == "code")
        assert html.count("[ok]") >= checks > 0


def test_every_figure_is_on_its_page_with_its_texts(built):
    for chapter in CHAPTERS:
        executed = built.executed[chapter]
        for cell in executed.cells:
            for output in cell.get("outputs", []):
                if "image/png" in output.get("data", {}):
                    assert book.FIGURE_TEXT in output.get("metadata", {}).get("image/png", {}), (
                        f"{chapter}: a figure of cell {cell['id']} was not seen by the kernel preamble")
        alts = re.findall(r'<img[^>]*alt="(Figure:[^"]*)"', _html(built, f"notebooks/{chapter}/{chapter}.html"))
        assert len(alts) == _images(built.pages[chapter]), chapter
    assert sum(_images(p) for p in built.pages.values()) >= 20


def test_left_out_outputs_are_not_on_their_pages(built):
    assert built.left_out, "no output of the course names an answer: the measure of the outputs sees nothing"
    for left in built.left_out:
        text = giveaways.PageText.of(_html(built, f"notebooks/{left.chapter}/{left.chapter}.html")).text
        assert "Output left out of the book" in text
        prose = {answer for where, _, answer in CHAPTER_PROSE_LEAKS if left.chapter in where}
        for shown in set(left.shown) - prose:
            assert shown not in text, f"{left.describe()}: still on the page"


# --------------------------------------------------------------------------------------------
# counter-tests: a planted answer is caught
# --------------------------------------------------------------------------------------------
def _first_line(secrets: giveaways.Secrets) -> str:
    return next(sorted(lines)[0] for _, lines, _ in secrets.answers if lines)


@pytest.mark.parametrize("plant, kind", [
    ('<div class="cell_output"><pre>SE-ResNet-50, stage 3: 792,960 parameters</pre></div>', "answer"),
    ('<img src="x.png" alt="Figure: the stage adds 792960 parameters">', "answer"),
    ('<div class="cell_input"><pre>{solution_line}</pre></div>', "line"),
    ('<p>{hidden_line}</p>', "hidden"),
])
def test_counter_an_answer_planted_on_a_page_is_found(built, tmp_path, plant, kind):
    secrets = giveaways.chapter_secrets("01_se")
    page = tmp_path / "notebooks" / "01_se" / "01_se.html"
    page.parent.mkdir(parents=True)
    html = _html(built, "notebooks/01_se/01_se.html")
    page.write_text(html, encoding="utf-8")
    assert giveaways.html_report(tmp_path, REPO, ["01_se"]) == []
    planted = plant.format(solution_line=_first_line(secrets), hidden_line=sorted(secrets.hidden)[0])
    page.write_text(html.replace("</article>", planted + "</article>", 1), encoding="utf-8")
    found = giveaways.html_report(tmp_path, REPO, ["01_se"])
    assert kind in {f.kind for f in found}, found


def _with_planted_outputs(page: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, str]:
    """A copy of chapter 01's page with a printed answer and a figure titled with it, in a demo cell."""
    page = nbformat.from_dict(json.loads(json.dumps(page)))
    cell = next(c for c in page.cells if c.cell_type == "code" and not c.metadata.get("nbgrader") and not c.outputs)
    figure = next(o for c in page.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    titled = nbformat.from_dict(json.loads(json.dumps(figure)))
    titled["metadata"]["image/png"][book.FIGURE_TEXT] = ["SE-ResNet-50: one stage has 792960 parameters"]
    printed = nbformat.v4.new_output("stream", name="stdout", text="a demo line\nthe stage: 792,960 parameters\n")
    cell.outputs = [*cell.outputs, printed, titled]
    return page, cell["id"]


def test_counter_an_output_naming_an_answer_is_left_out(built):
    page, cell_id = _with_planted_outputs(built.executed["01_se"])
    questions = [q for chapter in CHAPTERS for q in giveaways.question_answers(chapter)]
    left = book.clean_outputs(page, giveaways.chapter_secrets("01_se"), questions)
    mine = [entry for entry in left if entry.cell == cell_id]
    assert [entry.whole for entry in mine] == [False, True] and all(e.names == ["q_stage_params"] for e in mine)
    outputs = next(c for c in page.cells if c["id"] == cell_id).outputs
    text = "".join(giveaways.output_text(o) for o in outputs)
    assert "a demo line" in text and "792" not in text and "Output left out of the book" in text
    # a chapter's own two-digit answer (chapter 02's q_spatial_params) beside its subject is caught in its outputs;
    # the same number on another subject is not
    page02 = nbformat.from_dict(json.loads(json.dumps(built.executed["02_cbam"])))
    demo = next(c for c in page02.cells if c.cell_type == "code" and not c.metadata.get("nbgrader"))
    short = next(q for q in giveaways.question_answers("02_cbam") if q.qid == "q_spatial_params")
    assert 10 <= short.value < 100
    printed = f"spatial gate: {short.value} weights\nthe batch holds {short.value} images\n"
    demo.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    left = book.clean_outputs(page02, giveaways.chapter_secrets("02_cbam"), questions)
    assert [(e.names, e.whole) for e in left if e.cell == demo["id"]] == [([short.qid], False)]
    text = giveaways.output_text(demo.outputs[0])
    assert f"the batch holds {short.value} images" in text and "spatial gate" not in text


def test_counter_without_leaving_out_the_pages_show_the_answer(built, tmp_path, monkeypatch):
    page, _ = _with_planted_outputs(built.executed["01_se"])
    report = book.publish({"01_se": page}, tmp_path / "kept", say=lambda *a: None)
    assert report.findings == [] and any(e.names == ["q_stage_params"] and e.whole for e in report.left_out)
    assert "Output left out of the book" in (tmp_path / "kept" / "notebooks/01_se/01_se.html").read_text()
    monkeypatch.setattr(book, "clean_outputs", lambda *a, **k: [])
    report = book.publish({"01_se": page}, tmp_path / "shown", say=lambda *a: None)
    assert {f.answer_cell for f in report.findings} >= {"q_stage_params"}
    assert any(f.answer == "792960" and "01_se.html" in f.where for f in report.findings)  # the figure's alt text


# --------------------------------------------------------------------------------------------
# how the sources become pages
# --------------------------------------------------------------------------------------------
def test_links_point_into_the_book_or_to_github():
    where = nbs.publishing()
    pages = book.book_pages(["01_se"])
    text = ("[map](../../README.md#course-map) [glossary](../../docs/glossary.md#miou) [how](../../CONTRIBUTING.md)"
            " [web](https://example.org/a.md) `[code](../../README.md)` [folder](../../tests)")
    out = book.rewrite_links(text, "notebooks/01_se/01_se.ipynb", pages, where)
    assert out == (f"[map](../../index.md#course-map) [glossary](../../docs/glossary.md#miou) "
                   f"[how]({where.repository}/blob/{where.branch}/CONTRIBUTING.md) [web](https://example.org/a.md) "
                   f"`[code](../../README.md)` [folder]({where.repository}/tree/{where.branch}/tests)")
    readme = book.rewrite_links("[glossary](docs/glossary.md) [sec](docs/grading-security.md)", "README.md", pages,
                                where)
    assert readme == f"[glossary](docs/glossary.md) [sec]({where.repository}/blob/{where.branch}/docs/grading-security.md)"
    assert book.explicit_anchors('### FlashAttention\n<a id="flash-attention"></a><a id="sdpa"></a>\ntext') == \
        "### FlashAttention\n(flash-attention)=\n(sdpa)=\ntext"


def test_the_book_extra_is_installed_by_the_test_extra_and_the_conda_environment():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert any(s.startswith("course-lib[") and "book" in s for s in extras["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    from test_environment import FROM_PYPI  # the lab extra's PyPI-only packages share the pip section

    assert sorted(s for s in pip if not s.startswith("-") and re.split(r"[<>=]", s)[0] not in FROM_PYPI) == \
        sorted(extras["book"])


# --------------------------------------------------------------------------------------------
# in the browser
# --------------------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(built):
    """The built book served on 127.0.0.1 (a free port), for the module."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(built.out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Reader:
    """Chromium with one context per viewport; every request to another address than the site is refused and
    recorded (the book must read without any other server)."""

    def __init__(self, browser, site: str):
        self.browser, self.site, self.refused, self.errors = browser, site, [], []

    def open(self, page: str, viewport: dict | None = None):
        """A new tab on ``page``, once MathJax has typeset it (where it has math); ``refused`` and ``errors`` then
        hold what this page asked of other addresses and the script errors it raised."""
        self.refused, self.errors = [], []
        context = self.browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        context.route("**/*", self._route)
        tab = context.new_page()
        tab.on("pageerror", lambda error: self.errors.append(f"{page}: {error}"))
        response = tab.goto(self.site + page)
        assert response is not None and response.status == 200, page
        tab.wait_for_load_state("load")
        if tab.evaluate("() => document.querySelectorAll('.math').length"):
            # MathJax is deferred and typesets after the load event; the test asserts what it finds after 30 s
            try:
                tab.wait_for_function("() => Array.from(document.querySelectorAll('.math'))"
                                      ".every(m => m.querySelector('mjx-container'))", timeout=30_000)
                tab.evaluate("() => MathJax.startup.promise")  # and its page-ready steps (book.js) have run
            except Exception:  # noqa: BLE001 - a timeout: the assertions say what is missing
                pass
        return tab

    def _route(self, route) -> None:
        if route.request.url.startswith(self.site):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()


@pytest.fixture(scope="module")
def reader(site):
    with chromium("the book's browser tests") as browser:
        yield Reader(browser, site)


def _ids(path: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))


def _broken(built: book.BookReport, site: str, hrefs: list[str]) -> list[str]:
    """The internal links among ``hrefs`` (absolute, as the browser resolved them) whose file or anchor is missing."""
    bad = []
    for href in hrefs:
        if not href.startswith(site):
            continue  # Colab, GitHub, the papers: not fetched here (only 127.0.0.1 is)
        parts = urlsplit(href)
        rel = unquote(parts.path).removeprefix(urlsplit(site).path)
        target = built.out / rel
        if not rel or target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            bad.append(f"{href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
            bad.append(f"{href} (no #{unquote(parts.fragment)} in {rel})")
    return bad


def test_counter_the_link_check_finds_a_missing_page_or_anchor(built):
    site = "http://127.0.0.1:1/"
    hrefs = [site + "docs/glossary.html#miou", site, site + "docs/glossary.html#no-such-entry",
             site + "notebooks/99_none/99_none.html", "https://colab.research.google.com/x"]
    assert _broken(built, site, hrefs) == [f"{site}docs/glossary.html#no-such-entry (no #no-such-entry in "
                                           "docs/glossary.html)", f"{site}notebooks/99_none/99_none.html (no such file)"]


@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_in_the_browser(built, site, reader, page):
    tab = reader.open(page)
    try:
        seen = tab.evaluate("""async () => {
            const article = document.querySelector('article.bd-article');
            const images = Array.from(article.querySelectorAll('img'));
            await Promise.all(images.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
            const text = article.cloneNode(true);
            text.querySelectorAll('pre, code, script, mjx-container').forEach(e => e.remove());
            return {
              images: images.map(i => ({src: i.getAttribute('src'), alt: i.alt, width: i.naturalWidth,
                                        output: !!i.closest('div.cell_output')})),
              math: document.querySelectorAll('.math').length,
              typeset: Array.from(document.querySelectorAll('.math')).filter(m => m.querySelector('mjx-container')).length,
              text: text.innerText,
              hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
              nav: Array.from(document.querySelectorAll('nav.bd-docs-nav a[href]')).map(a => a.href),
            };
        }""")
    finally:
        tab.context.close()
    assert all(i["width"] > 0 for i in seen["images"]), [i for i in seen["images"] if not i["width"]]
    assert "$$" not in seen["text"] and "\\(" not in seen["text"] and "\\begin{" not in seen["text"]
    assert not re.search(r"\|\s*(?:-{3,}|—)", seen["text"]), f"{page}: a markdown table shown as text"
    assert seen["typeset"] == seen["math"], f"{page}: {seen['math'] - seen['typeset']} formulas not typeset"
    assert not _broken(built, reader.site, seen["hrefs"]), _broken(built, reader.site, seen["hrefs"])
    reached = {unquote(urlsplit(h).path).removeprefix(urlsplit(reader.site).path) for h in seen["nav"]}
    assert {p for p in PAGES if p != "index.html"} <= reached, f"{page}: the navigation misses some pages"
    assert reader.refused == [] and reader.errors == [], (reader.refused, reader.errors)
    if page.startswith("notebooks/"):
        chapter = page.split("/")[1]
        figures = [i for i in seen["images"] if i["output"]]
        assert len(figures) == _images(built.pages[chapter]) and all(i["alt"].startswith("Figure:") for i in figures)
        assert seen["math"] > 0
        where = nbs.publishing()
        assert where.colab_url(chapter) in seen["hrefs"]
        badge = next(i for i in seen["images"] if i["alt"] == "Open in Colab")
        assert badge["width"] > 0
        assert reader.site + f"notebooks/{chapter}/{chapter}.ipynb" in seen["hrefs"]


@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_page_fits_a_phone(reader, page):
    tab = reader.open(page, PHONE)
    try:
        widths = tab.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
    finally:
        tab.context.close()
    assert max(widths[:2]) <= widths[2] == PHONE["width"], f"{page}: the page is {max(widths[:2])} px wide on a phone"


@pytest.mark.browser
def test_screenshots_for_a_person(reader):
    """A chapter page at its learned-attention figure, and a chapter page at phone width (out/book-screens/)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    chapter = "05_danet_pam" if "05_danet_pam" in CHAPTERS else CHAPTERS[0]
    tab = reader.open(f"notebooks/{chapter}/{chapter}.html")
    try:
        figure = tab.locator("div.cell_output img[alt*='Trained']").first
        assert figure.count(), f"{chapter}: no figure of a trained module on its page"
        figure.evaluate("img => img.scrollIntoView({block: 'center'})")
        tab.wait_for_timeout(300)
        box = figure.bounding_box()
        assert box is not None and box["height"] > 50 and 0 <= box["y"] < 1000
        tab.screenshot(path=str(SHOTS / f"{chapter}-learned-attention.png"))
    finally:
        tab.context.close()
    phone = CHAPTERS[1] if len(CHAPTERS) > 1 else CHAPTERS[0]
    tab = reader.open(f"notebooks/{phone}/{phone}.html", PHONE)
    try:
        tab.screenshot(path=str(SHOTS / f"{phone}-phone.png"))
    finally:
        tab.context.close()
    assert (SHOTS / f"{chapter}-learned-attention.png").stat().st_size > 10_000
    assert (SHOTS / f"{phone}-phone.png").stat().st_size > 10_000
