"""How long each chapter takes: one source (the chapter's own section times), two places derived from it.

The source is the **Time.** paragraph near the top of each chapter's solution notebook, which lists the
chapter's parts with the minutes of each, separated by semicolons::

    **Time.** About 1 h 15 min: §1–2 and question 1, 10 min; exercise 1, 20 min; ...; §9, 10 min. Any note.

Each part ends in ", N min" (a whole number; no ranges) and the list ends at the first "N min.". The total
after "About" is *derived*: the sum of the parts. So is the time column of the README's chapter table (and
the README's "about N h" for its shortest path through the course). Change a part's minutes in the chapter,
then run

    python -m course_lib notebooks study-times            # rewrite every derived total
    python -m course_lib notebooks study-times --check    # exit 1 when one disagrees

``python -m course_lib release CHAPTER`` does the same for the chapters it releases (and the README); the
files are read and written by ``course_lib.tools.notebooks.sync_study_times``, this module works on text.
The rewrite touches only the **Time.** paragraph of a notebook (its file is read again right before it is
written, so a concurrent edit elsewhere in the notebook is kept) and only the time cells of the README.
"""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass


WIDTH = 118
_TIME = re.compile(r"^\*\*Time\.\*\* About (?P<total>[^:]+?): (?P<parts>.*?\d+ min)\.(?P<rest>.*)$", re.S)
_PART = re.compile(r"^(?P<what>\S.*?), (?P<minutes>\d+) min$", re.S)
_README_ROW = re.compile(r"^\| (?P<chapter>\d\d) (?P<title>[^|]+?) \| (?P<needs>[^|]*?) \| (?P<time>[^|]+?) \|$")
_README_PATH = re.compile(r"(?P<path>\d\d(?: → \d\d)+) is the shortest(?P<sep>\s+)line(?P<middle>[^()]*)\(about "
                          r"(?P<time>[^)]+)\)")


class StudyTimeError(ValueError):
    """A chapter's **Time.** paragraph that does not follow the grammar above."""


@dataclass(frozen=True)
class StudyTime:
    chapter: str
    parts: tuple[tuple[str, int], ...]  # (what, minutes) in the chapter's order
    stated: str  # the total the paragraph states now, e.g. "1 h 30 min"
    rest: str  # what follows the list (a note), with its leading space

    @property
    def minutes(self) -> int:
        return sum(m for _, m in self.parts)

    @property
    def total(self) -> str:
        return format_minutes(self.minutes)

    def paragraph(self) -> list[str]:
        """The paragraph with its derived total, wrapped as the notebooks' markdown is."""
        listed = "; ".join(f"{what}, {m} min" for what, m in self.parts)
        text = f"**Time.** About {self.total}: {listed}.{self.rest}"
        return textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def format_minutes(minutes: int) -> str:
    """55 -> '55 min', 60 -> '1 h', 75 -> '1 h 15 min'."""
    hours, rest = divmod(int(minutes), 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


def _paragraph_span(lines: list[str]) -> tuple[int, int] | None:
    """(first, end) line indices of the **Time.** paragraph in a markdown cell's lines, or None."""
    for i, line in enumerate(lines):
        if line.startswith("**Time.**"):
            end = i + 1
            while end < len(lines) and lines[end].strip():
                end += 1
            return i, end
    return None


def _header_cell(nb: dict, chapter: str) -> tuple[int, list[str], tuple[int, int]]:
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines = source.split("\n")
        span = _paragraph_span(lines)
        if span:
            return index, lines, span
    raise StudyTimeError(f"{chapter}: no markdown cell with a '**Time.**' paragraph (the chapter's section times)")


def parse(text: str, chapter: str = "?") -> StudyTime:
    """Parse one **Time.** paragraph (its lines joined by spaces)."""
    text = " ".join(text.split())
    m = _TIME.match(text)
    if not m:
        raise StudyTimeError(f"{chapter}: the **Time.** paragraph should read '**Time.** About <total>: <part>, "
                             f"<N> min; <part>, <N> min; ... <N> min.'; got {text[:160]!r}")
    parts = []
    for piece in m.group("parts").split("; "):
        p = _PART.match(piece)
        if not p:
            raise StudyTimeError(f"{chapter}: each part of the **Time.** list should end in ', <N> min' (whole "
                                 f"minutes, no range); got {piece!r}")
        parts.append((p.group("what"), int(p.group("minutes"))))
    return StudyTime(chapter, tuple(parts), m.group("total").strip(), m.group("rest"))


def of_notebook(raw: str, chapter: str = "?") -> StudyTime:
    """The study time of a notebook, from its file's text."""
    _, lines, (first, end) = _header_cell(json.loads(raw), chapter)
    return parse(" ".join(lines[first:end]), chapter)


def fixed_notebook(raw: str, chapter: str = "?") -> str | None:
    """The notebook's file text with its stated total derived from its parts, or None when it already agrees.

    Only the lines of the **Time.** paragraph change: the header cell's source is replaced where it stands in
    the file's JSON text, so every other cell, key order and byte of the file is left as it was read.
    """
    nb = json.loads(raw)
    index, lines, (first, end) = _header_cell(nb, chapter)
    times = parse(" ".join(lines[first:end]), chapter)
    if times.stated == times.total:
        return None
    old = nb["cells"][index]["source"]
    if not isinstance(old, str) or raw.count(json.dumps(old, ensure_ascii=False)) != 1:
        raise StudyTimeError(f"{chapter}: cannot find the header cell's source once in the file's JSON text; "
                             "normalise the notebook first (python -m course_lib notebooks normalize)")
    source = "\n".join(lines[:first] + times.paragraph() + lines[end:])
    return raw.replace(json.dumps(old, ensure_ascii=False), json.dumps(source, ensure_ascii=False))


def fixed_readme(text: str, minutes: dict[str, int]) -> tuple[str, list[str]]:
    """The README's text with its chapter-table times and its shortest path's time derived from ``minutes``
    (chapter number "NN" -> the chapter's minutes), and what changed."""
    changed, out = [], []
    for line in text.split("\n"):
        m = _README_ROW.match(line)
        if m and m.group("chapter") in minutes:
            want = format_minutes(minutes[m.group("chapter")])
            if m.group("time") != want:
                changed.append(f"README.md: chapter {m.group('chapter')} {m.group('time')} -> {want}")
                line = f"| {m.group('chapter')} {m.group('title')} | {m.group('needs')} | {want} |"
        out.append(line)

    def path_time(m: re.Match) -> str:
        steps = m.group("path").split(" → ")
        want = format_minutes(sum(minutes[s] for s in steps if s in minutes))
        if m.group("time") != want:
            changed.append(f"README.md: the shortest path {m.group('time')} -> {want}")
        return f"{m.group('path')} is the shortest{m.group('sep')}line{m.group('middle')}(about {want})"

    return _README_PATH.sub(path_time, "\n".join(out)), changed


def readme_times(text: str) -> dict[str, str]:
    """Chapter number -> the time the README's chapter table states."""
    return {m.group("chapter"): m.group("time") for line in text.split("\n") if (m := _README_ROW.match(line))}
