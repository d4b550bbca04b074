"""The course as a book: ``python -m course_lib book --out out/book`` (``make book``).

A static HTML site, readable without installing anything: one page per chapter, the README (its course map and
chapter table) as the home page, the glossary and the lecturer's guide (docs/grading.md). Sphinx with MyST-NB and
the Sphinx book theme builds it, offline: nothing is fetched at build time, and MathJax is served from the book
itself (sphinx-mathjax-offline), so the pages read without any other server.

What a chapter page shows is what a student sees after doing the chapter well:

* the cells as the student gets them: the released notebook (``notebooks/``), its stubs and "YOUR ANSWER HERE";
  never a solution and never a hidden test;
* the outputs a correct solution produces: the released notebook is run once with each stub replaced by the
  instructor's answer (the solution cells of ``solutions/``, matched by nbgrader ``grade_id``); the test cells run
  as released, so their outputs are the visible checks' messages only. Then each executed cell's outputs are put
  onto the released cell with the same id. A stub never carries an output (what it prints comes from the answer);
  the capstone runs in its quick mode (the mode nbgrader grades in: ``NBGRADER_EXECUTION`` set);
* no output that gives an answer away: every output is measured with the course's giveaway measure
  (``course_lib.tools.giveaways``: the answers' lines and calls, the questions' answers in the forms that name them,
  the texts of every figure, captured while the notebook runs); a printed line that shows one is replaced by a
  note saying which question it would answer, and any other such output (a figure, a table) as a whole. The
  built pages are measured again (``giveaways.html_report``: text, code, alt texts, figure titles) and the
  command fails (exit 1) while they show an answer: chapter prose that states one is the chapter's to fix;
* the chapter's "Open in Colab" badge, the student notebook to download and its address on GitHub; every figure's
  texts (titles, labels, legends) as its alt text.

Relative links of the course's markdown are kept when they point into the book (a glossary entry, a chapter, the
README's sections) and become GitHub addresses otherwise (CONTRIBUTING.md, the security guide).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_lib.tools import giveaways
from course_lib.tools import notebooks as nbs

REPO = nbs.REPO
DOCS = ("docs/glossary.md", "docs/grading.md")  # the book's other pages, beside the home page (README.md)
HOME = "index.md"  # where README.md goes in the book
PREAMBLE_ID = "course-book-preamble"
FIGURE_TEXT = "course_figure_text"  # the output metadata where the preamble records a figure's texts
CELL_TIMEOUT_S = 900
DROPPED_NOTE = "(Output left out of the book: it would show the answer to {what}. Run the notebook to see it.)"

# Run in the kernel before the chapter's first cell (and removed from the page): every figure displayed from here on
# carries its texts (titles, axis labels, legends, annotations) in the output's metadata, where the giveaway measure
# reads them and the page puts them in the image's alt text. It wraps IPython's figure printer before pyplot is
# imported, so the inline backend's PNG formatter is the wrapped one.
PREAMBLE = f'''\
def _course_book_preamble():
    import IPython.core.pylabtools as pylabtools

    printer = pylabtools.print_figure

    def texts(fig):
        found = [fig._suptitle.get_text() if fig._suptitle is not None else ""]
        found += [t.get_text() for t in fig.texts]
        for ax in fig.axes:
            found += [ax.get_title(loc) for loc in ("left", "center", "right")]
            found += [ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
            legend = ax.get_legend()
            if legend is not None:
                found += [t.get_text() for t in legend.get_texts()]
        return [" ".join(t.split()) for t in found if t and t.strip()]

    def print_figure(fig, *args, **kwargs):
        data = printer(fig, *args, **kwargs)
        if data is None:
            return None
        return data, {{"{FIGURE_TEXT}": texts(fig)}}

    pylabtools.print_figure = print_figure


_course_book_preamble()
del _course_book_preamble
'''


# --------------------------------------------------------------------------------------------
# where the book is published
# --------------------------------------------------------------------------------------------
def book_url(root: Path = REPO) -> str:
    """The book's address: ``book`` in course.toml's [publish] table."""
    import tomllib

    where = Path(root) / nbs.PUBLISH_FILE
    try:
        return tomllib.loads(where.read_text(encoding="utf-8"))["publish"]["book"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"book: {where} must give the book's address as `book` in its [publish] table; reading it "
                         f"gave {type(err).__name__}: {err}") from err


def pages_url(where: nbs.Publishing) -> str:
    """Where GitHub Pages serves a repository's site (what .github/workflows/release.yml deploys the book to)."""
    owner, name = where.repository.removeprefix("https://github.com/").split("/")
    site = f"https://{owner.lower()}.github.io/"
    return site if name.lower() == f"{owner.lower()}.github.io" else f"{site}{name}/"


# --------------------------------------------------------------------------------------------
# running a chapter: the released cells, the instructor's answers in the stubs
# --------------------------------------------------------------------------------------------
def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_stub(cell) -> bool:
    """A cell the student writes in: a solution cell (code: a stub; markdown: a written answer)."""
    return bool(_meta(cell).get("solution"))


def runnable(released: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with each code stub replaced by the instructor's answer (matched by cell id, which
    is the nbgrader grade_id for every graded or solution cell), and the preamble first."""
    answers = {cell["id"]: cell for cell in solution.cells}
    run = copy.deepcopy(released)
    for cell in run.cells:
        if cell.cell_type == "code" and _is_stub(cell):
            answer = answers.get(cell["id"])
            if answer is None or not _is_stub(answer):
                raise ValueError(f"book: the released stub {cell['id']!r} has no solution cell of the same id")
            cell.source = answer.source
    preamble = nbformat.v4.new_code_cell(PREAMBLE)
    preamble["id"] = PREAMBLE_ID
    run.cells.insert(0, preamble)
    return run


def kernel_env() -> dict[str, str]:
    """The kernel's environment: the quick mode of the chapters that have one (the capstone reads
    NBGRADER_EXECUTION), figures inline (no MPLBACKEND: Agg would keep them out of the outputs), one thread
    (two chapters run side by side on a small machine)."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(NBGRADER_EXECUTION="autograde", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def with_outputs(released: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released cells, each code cell with the outputs of the executed cell of the same id; stubs get none
    (what a stub's cell prints comes from the answer in it)."""
    ran = {cell["id"]: cell for cell in executed.cells if cell.cell_type == "code"}
    page = copy.deepcopy(released)
    for cell in page.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [] if _is_stub(cell) else copy.deepcopy(ran[cell["id"]].outputs)
        cell.execution_count = ran[cell["id"]].get("execution_count")
    return page


def run_chapter(chapter: str, root: Path = REPO) -> tuple[nbformat.NotebookNode, float]:
    """The chapter's released notebook with a correct solution's outputs (not yet measured); and the seconds."""
    released = nbformat.read(nbs.notebook_path(chapter, root, nbs.RELEASE), as_version=4)
    solution = nbformat.read(nbs.notebook_path(chapter, root, nbs.SOURCE), as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"course-book-{chapter}-") as tmp:
        executed = nbs.run(runnable(released, solution), Path(tmp), timeout=CELL_TIMEOUT_S, env=kernel_env())
    return with_outputs(released, executed), time.perf_counter() - started


def _run_chapter_job(chapter: str) -> tuple[str, str, float]:
    page, seconds = run_chapter(chapter)
    return chapter, nbformat.writes(page), seconds


# --------------------------------------------------------------------------------------------
# no answer shown: outputs measured, and what names an answer left out
# --------------------------------------------------------------------------------------------
@dataclass
class LeftOut:
    """An output of a chapter page (or some of its lines) that the book leaves out, and the answers it named."""

    chapter: str
    cell: str
    names: list[str]  # the questions (or answer cells) whose answer it showed
    whole: bool       # the whole output (else only its lines that named the answer)
    shown: list[str] = field(default_factory=list)  # what named them (for the maintainers' report only)

    def describe(self) -> str:
        part = "an output" if self.whole else "lines of an output"
        return f"{self.chapter} cell {self.cell}: {part} naming {', '.join(self.names)} ({'; '.join(self.shown)})"


def _merge_streams(outputs: list) -> list:
    """Consecutive outputs of one stream in one (what a reader sees as one block)."""
    merged: list = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == output.get("name")):
            merged[-1]["text"] = merged[-1]["text"] + output["text"]
        else:
            merged.append(output)
    return merged


def _note(names: list[str]) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=DROPPED_NOTE.format(what=", ".join(names)) + "\n")


def clean_outputs(page: nbformat.NotebookNode, secrets: giveaways.Secrets,
                  questions: list[giveaways.QuestionAnswer]) -> list[LeftOut]:
    """Leave out of ``page`` (in place) what would show an answer: each output is measured
    (``giveaways.output_findings``; the chapter's own two-digit answers beside their subject too). A printed text loses
    only the lines that name an answer, each replaced by a note, when the rest then shows none; any other
    output (a figure, a table) is replaced by a note as a whole. Returns what was left out."""
    left: list[LeftOut] = []

    def findings(output: dict) -> list[giveaways.Finding]:
        found = giveaways.output_findings(secrets, output, "", questions=questions)
        text = giveaways.output_text(output)
        for answer in secrets.questions:
            found += [giveaways.Finding("answer", shown, answer.qid, "") for shown in answer.short_shown_in(text)]
        return found

    for cell in page.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in _merge_streams(cell.outputs):
            found = findings(output)
            if not found:
                outputs.append(output)
                continue
            names = sorted({f.answer_cell or "?" for f in found})
            shown = sorted({f.answer for f in found})
            text = output.get("text") if output.get("output_type") == "stream" else None
            if text is not None:
                lines = text.splitlines(keepends=True)
                kept = []
                for line in lines:
                    line_found = findings(nbformat.v4.new_output("stream", name=output["name"], text=line))
                    kept.append(_note(sorted({f.answer_cell or "?" for f in line_found})).text if line_found else line)
                trimmed = nbformat.v4.new_output("stream", name=output["name"], text="".join(kept))
                if not findings(trimmed):
                    outputs.append(trimmed)
                    left.append(LeftOut(page.metadata.get("course_book_chapter", ""), cell["id"], names, False, shown))
                    continue
            outputs.append(_note(names))
            left.append(LeftOut(page.metadata.get("course_book_chapter", ""), cell["id"], names, True, shown))
        cell.outputs = outputs
    return left


def figure_alt(cell: nbformat.NotebookNode) -> str | None:
    """The alt text of a cell's figures: "Figure: " and their texts (titles, labels, legends), or None."""
    texts, figures = [], 0
    for output in cell.get("outputs", []):
        meta = output.get("metadata", {}).get("image/png")
        if output.get("output_type") in ("display_data", "execute_result") and "image/png" in output.get("data", {}):
            figures += 1
            for text in (meta or {}).get(FIGURE_TEXT, []):
                if text not in texts:
                    texts.append(text)
    if not figures:
        return None
    return "Figure: " + ("; ".join(texts) if texts else "(no title)")


# --------------------------------------------------------------------------------------------
# the Sphinx source: pages, links, configuration
# --------------------------------------------------------------------------------------------
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")  # the text may span lines
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_HTML_ANCHORS = re.compile(r"^[ \t]*((?:<a\s+(?:id|name)=\"[^\"]+\"\s*></a>\s*)+)$", re.M)


def explicit_anchors(text: str) -> str:
    """A line of HTML anchors (``<a id="miou"></a>``, for GitHub) as MyST targets, which links can resolve."""
    def targets(match: re.Match) -> str:
        return "\n".join(f"({name})=" for name in re.findall(r"(?:id|name)=\"([^\"]+)\"", match.group(1)))
    return _HTML_ANCHORS.sub(targets, text)


def book_pages(chapters: list[str]) -> dict[str, str]:
    """Repository path -> the book's source path of every page."""
    pages = {"README.md": HOME, **{doc: doc for doc in DOCS}}
    for chapter in chapters:
        path = f"{nbs.RELEASE}/{chapter}/{chapter}.ipynb"
        pages[path] = path
    return pages


def rewrite_links(text: str, origin: str, pages: dict[str, str], where: nbs.Publishing) -> str:
    """The relative links of ``text`` (markdown of the repository file ``origin``) for the book: to the page of
    the book when the target is one, else to the file on GitHub. Code spans and blocks are left as they are."""
    from posixpath import dirname, normpath, relpath

    book_origin = pages.get(origin, origin)

    def target(match: re.Match) -> str:
        link = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I) or link.startswith("#"):
            return match.group(0)
        path, hash_, fragment = link.partition("#")
        resolved = normpath(f"{dirname(origin)}/{path}" if dirname(origin) else path)
        if resolved in pages:
            new = relpath(pages[resolved], dirname(book_origin) or ".")
        else:
            kind = "tree" if (REPO / resolved).is_dir() else "blob"
            new = f"{where.repository}/{kind}/{where.branch}/{resolved}"
        return f"{match.group(1)}{new}{hash_}{fragment}{match.group(3)}"

    out, last = [], 0
    for code in _CODE.finditer(text):
        out.append(LINK.sub(target, text[last:code.start()]))
        out.append(code.group(0))
        last = code.end()
    out.append(LINK.sub(target, text[last:]))
    return explicit_anchors("".join(out))


COLAB_BADGE = """\
<svg xmlns="http://www.w3.org/2000/svg" width="124" height="20" role="img" aria-label="Open in Colab">
<rect width="124" height="20" rx="3" fill="#555"/><rect x="56" width="68" height="20" rx="3" fill="#f9ab00"/>
<rect x="56" width="4" height="20" fill="#f9ab00"/>
<g font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
<text x="7" y="14" fill="#fff">Open in</text><text x="71" y="14" fill="#222">Colab</text></g></svg>
"""

FAVICON = """\
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#f9ab00"/>
<g fill="#222"><rect x="6" y="6" width="6" height="20"/><rect x="13" y="12" width="6" height="14"/>
<rect x="20" y="18" width="6" height="8"/></g></svg>
"""

BOOK_CSS = """\
/* the course book: chapter links under the title; wide outputs scroll inside their block, never the page */
.course-links { display: flex; flex-wrap: wrap; gap: .4em 1em; align-items: center; margin: .5em 0 1.5em; }
.course-links img { vertical-align: middle; }
div.cell_output img { max-width: 100%; height: auto; }
div.cell_output pre, div.cell_input pre { overflow-x: auto; }
.bd-article table { display: block; max-width: 100%; overflow-x: auto; }
/* a long name or address in running text (course_lib.reference.danet.PositionAttention, a URL) wraps on a phone */
.bd-article { overflow-wrap: break-word; }
.bd-article code.literal, .bd-article code.literal span.pre { white-space: normal; overflow-wrap: anywhere; }
/* a formula wider than its column scrolls inside itself (book.js marks the wide inline ones) */
mjx-container[display="true"], mjx-container.course-wide-math { max-width: 100%; overflow-x: auto; overflow-y: hidden; }
mjx-container.course-wide-math { display: inline-block; vertical-align: middle; }
"""

# MathJax 3 does not break a formula into lines: an inline formula wider than its paragraph (a phone's column)
# would widen the page. Once MathJax has typeset the page (its startup's pageReady, set here in the configuration
# Sphinx writes before MathJax loads; MathJax's script is deferred, this one is not) and on every resize, this marks
# those formulas, which book.css lets scroll inside themselves; the others keep their inline layout and baseline.
BOOK_JS = """\
(function () {
  function fit() {
    document.querySelectorAll("mjx-container:not([display])").forEach(function (m) {
      var block = m.closest("p, li, td, th, dd, dt, div");
      var math = m.firstElementChild;
      if (!block || !math) return;
      m.classList.remove("course-wide-math");
      if (math.getBoundingClientRect().width > block.clientWidth) m.classList.add("course-wide-math");
    });
  }
  var config = window.MathJax = window.MathJax || {};
  config.startup = config.startup || {};
  config.startup.pageReady = function () {
    return MathJax.startup.defaultPageReady().then(fit);
  };
  window.addEventListener("resize", fit);
})();
"""


def links_cell(chapter: str, where: nbs.Publishing) -> nbformat.NotebookNode:
    """The chapter's links under its title: Open in Colab, the student notebook, its address on GitHub."""
    name = f"{chapter}.ipynb"
    github = f"{where.repository}/blob/{where.branch}/{nbs.RELEASE}/{chapter}/{name}"
    html = (f'<p class="course-links">\n<a href="{where.colab_url(chapter)}"><img src="../../_static/colab-badge.svg" '
            f'alt="Open in Colab" width="124" height="20"></a>\n'
            f'<a href="{name}" download>Download the notebook ({name})</a>\n'
            f'<a href="{github}">The notebook on GitHub</a>\n</p>')
    cell = nbformat.v4.new_markdown_cell(html)
    cell["id"] = "course-book-links"
    return cell


def chapter_page(page: nbformat.NotebookNode, chapter: str, pages: dict[str, str],
                 where: nbs.Publishing) -> nbformat.NotebookNode:
    """The notebook Sphinx renders: links rewritten, the links cell under the title, figures' alt texts."""
    page = copy.deepcopy(page)
    origin = f"{nbs.RELEASE}/{chapter}/{chapter}.ipynb"
    for cell in page.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, origin, pages, where)
        elif cell.cell_type == "code":
            alt = figure_alt(cell)
            if alt is not None:
                cell.metadata.setdefault("mystnb", {})["image"] = {"alt": alt}
    # the page opens with the chapter's title and its links, then the setup cell and the rest in their order
    title = next((i for i, c in enumerate(page.cells) if c.cell_type == "markdown" and c.source.startswith("# ")), None)
    if title is None:
        raise ValueError(f"book: {chapter} has no markdown cell starting with its title (# ...)")
    cell = page.cells.pop(title)
    heading, _, rest = cell.source.partition("\n")
    head = nbformat.v4.new_markdown_cell(heading)
    head["id"] = "course-book-title"
    page.cells[:0] = [head, links_cell(chapter, where)]
    if rest.strip():
        cell.source = rest.lstrip("\n")
        page.cells.insert(2, cell)
    page.metadata.pop("course_book_chapter", None)
    return page


CONF = '''\
# Generated by course_lib/tools/book.py: the Sphinx configuration of the course's book.
project = {title!r}
author = "the course's authors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax served from the book itself: no CDN
root_doc = "index"
exclude_patterns = ["_build", "_extra", "_static", "**.ipynb_checkpoints"]
nb_execution_mode = "off"  # the notebooks come executed (course_lib/tools/book.py runs each chapter once)
nb_merge_streams = True
nb_render_markdown_format = "myst"  # markdown outputs (the capstone's results) with their tables, as JupyterLab shows them
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True  # $$...$$ right under a line of text is display math, as in JupyterLab and on GitHub
myst_heading_anchors = 6  # the course's links name headings as GitHub does (#paper-or-official-code)
html_theme = "sphinx_book_theme"
html_title = {title!r}
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
html_extra_path = ["_extra"]
html_css_files = ["book.css"]
html_js_files = ["book.js"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {{
    "repository_url": {repository!r},
    "repository_branch": {branch!r},
    "use_repository_button": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}}
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]  # the glossary's entries are H3 under its H1
'''

TOC = """

```{{toctree}}
:caption: Chapters
:hidden:

{chapters}
```

```{{toctree}}
:caption: Reference
:hidden:

{docs}
```
"""


def write_source(src: Path, pages_nb: dict[str, nbformat.NotebookNode], root: Path = REPO) -> None:
    """Lay out the Sphinx source of the book in ``src``: conf.py, the pages, the static files."""
    where = nbs.publishing(root)
    chapters = sorted(pages_nb)
    pages = book_pages(chapters)
    src.mkdir(parents=True, exist_ok=True)
    readme = (root / "README.md").read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in readme.splitlines() if line.startswith("# ")), "The course")
    (src / "conf.py").write_text(CONF.format(title=title, repository=where.repository, branch=where.branch),
                                 encoding="utf-8")
    toc = TOC.format(chapters="\n".join(f"{nbs.RELEASE}/{c}/{c}" for c in chapters),
                     docs="\n".join(doc.removesuffix(".md") for doc in DOCS))
    (src / HOME).write_text(rewrite_links(readme, "README.md", pages, where) + toc, encoding="utf-8")
    for doc in DOCS:
        target = src / doc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewrite_links((root / doc).read_text(encoding="utf-8"), doc, pages, where), encoding="utf-8")
    for chapter, page in pages_nb.items():
        target = src / nbs.RELEASE / chapter / f"{chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(chapter_page(page, chapter, pages, where), target)
        student = src / "_extra" / nbs.RELEASE / chapter / f"{chapter}.ipynb"
        student.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nbs.notebook_path(chapter, root, nbs.RELEASE), student)
    static = src / "_static"
    static.mkdir(exist_ok=True)
    (static / "colab-badge.svg").write_text(COLAB_BADGE, encoding="utf-8")
    (static / "favicon.svg").write_text(FAVICON, encoding="utf-8")
    (static / "book.css").write_text(BOOK_CSS, encoding="utf-8")
    (static / "book.js").write_text(BOOK_JS, encoding="utf-8")
    (src / "_extra" / ".nojekyll").parent.mkdir(exist_ok=True)
    (src / "_extra" / ".nojekyll").write_text("", encoding="utf-8")  # GitHub Pages: serve _static as it is


def sphinx(src: Path, out: Path) -> None:
    """Build the HTML (one process: a dozen pages); a warning (a broken cross-reference, a missing image) fails
    the build."""
    from sphinx.cmd.build import build_main

    code = build_main(["-b", "html", "-q", "-W", "--keep-going", "-d", str(src / "_doctrees"), str(src), str(out)])
    if code:
        raise RuntimeError(f"book: sphinx-build failed (exit {code}); its warnings are above")


# --------------------------------------------------------------------------------------------
# the whole build
# --------------------------------------------------------------------------------------------
@dataclass
class BookReport:
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)  # chapter -> execution seconds; "sphinx", "total"
    left_out: list[LeftOut] = field(default_factory=list)
    findings: list[giveaways.Finding] = field(default_factory=list)  # the built pages, measured (must be empty)
    executed: dict[str, nbformat.NotebookNode] = field(default_factory=dict)  # chapter -> run_chapter's notebook
    pages: dict[str, nbformat.NotebookNode] = field(default_factory=dict)  # chapter -> what the page shows of it


def run_chapters(chapters: list[str], *, jobs: int = 2,
                 say=print) -> tuple[dict[str, nbformat.NotebookNode], dict[str, float]]:
    """Each chapter's page with a correct solution's outputs (:func:`run_chapter`), ``jobs`` chapters at a time (in
    fresh processes: a kernel each); and the seconds each took."""
    import multiprocessing

    pages, seconds = {}, {}
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent (pytest-xdist, Playwright)
    with concurrent.futures.ProcessPoolExecutor(max(1, min(jobs, len(chapters))), mp_context=context) as pool:
        for chapter, text, took in pool.map(_run_chapter_job, chapters):
            pages[chapter], seconds[chapter] = nbformat.reads(text, as_version=4), took
            say(f"book: ran {chapter} in {took:.1f} s")
    return pages, seconds


def publish(pages: dict[str, nbformat.NotebookNode], out: Path, *, source: Path | None = None, root: Path = REPO,
            say=print) -> BookReport:
    """The book of ``pages`` (chapter -> :func:`run_chapter`'s notebook, left as it is) in ``out``, emptied first:
    what names an answer left out, the HTML built, the built pages measured. ``source``: keep the Sphinx source."""
    started = time.perf_counter()
    report = BookReport(Path(out), executed=dict(pages))
    questions = [q for chapter in nbs.chapters(root) for q in giveaways.question_answers(chapter)]
    cleaned = report.pages
    for chapter, page in sorted(pages.items()):
        page = copy.deepcopy(page)
        page.metadata["course_book_chapter"] = chapter
        report.left_out += clean_outputs(page, giveaways.chapter_secrets(chapter, root), questions)
        cleaned[chapter] = page
    for left in report.left_out:
        say(f"book: left out {left.describe()}")
    with tempfile.TemporaryDirectory(prefix="course-book-src-") as tmp:
        src = Path(source) if source is not None else Path(tmp)
        if source is not None and src.exists():
            shutil.rmtree(src)
        write_source(src, cleaned, root)
        if report.out.exists():
            shutil.rmtree(report.out)
        sphinx(src, report.out)
    report.seconds["sphinx"] = time.perf_counter() - started
    report.findings = giveaways.html_report(report.out, root, sorted(pages))
    return report


def build(out: Path, *, chapters: list[str] | None = None, jobs: int = 2, source: Path | None = None,
          root: Path = REPO, quiet: bool = False) -> BookReport:
    """Execute every chapter (``jobs`` at a time), leave out what names an answer, build the HTML into ``out``
    (emptied first) and measure the built pages. ``source``: keep the Sphinx source there."""
    started = time.perf_counter()
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    pages, seconds = run_chapters(chapters or nbs.chapters(root), jobs=jobs, say=say)
    report = publish(pages, out, source=source, root=root, say=say)
    report.seconds = {**seconds, **report.seconds, "total": time.perf_counter() - started}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "book", help="where the HTML goes (emptied first)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="chapters executed at a time (default: 2, or 1 on a one-core machine)")
    parser.add_argument("--source", type=Path, help="keep the generated Sphinx source in this folder")
    parser.add_argument("chapters", nargs="*", help="chapters (default: all; the book links only those built)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.chapters) - set(nbs.chapters()))
    if unknown:
        parser.error(f"unknown chapter(s) {unknown}; expected some of {nbs.chapters()}")
    report = build(args.out, chapters=args.chapters or None, jobs=args.jobs, source=args.source)
    for finding in report.findings:
        print(f"book: GIVES AWAY [{finding.answer_cell}] {finding.kind} {finding.answer!r} on {finding.where}")
    print(f"book: {len(report.seconds) - 2} chapter(s) in {report.out} ({report.seconds['total']:.0f} s: "
          f"sphinx {report.seconds['sphinx']:.0f} s); {len(report.left_out)} output(s) left out for naming an answer; "
          f"giveaways on the built pages: {len(report.findings)}")
    return 1 if report.findings else 0
