"""Find the submissions of one chapter in a folder, whichever way they were collected.

Three layouts are accepted (``CHAPTER`` stands for the chapter's name, e.g. ``01_se``):

1. nbgrader's layout: ``SUBMISSIONS/<student>/CHAPTER/CHAPTER.ipynb`` (``SUBMISSIONS`` may also be a
   course directory holding ``submitted/``). Other files in the chapter folder (``timestamp.txt``, data)
   travel with the notebook. A chapter folder without ``CHAPTER.ipynb`` but with exactly one other
   notebook is graded from that notebook; with none, or with several, the student gets an error row.
2. One folder per student: ``SUBMISSIONS/<student>/<any name>.ipynb`` (Moodle downloads look like this;
   their ``_assignsubmission_file_`` suffix is dropped from the student's name). The folder must hold one
   notebook, or several of which exactly one is ``CHAPTER.ipynb``.
3. A flat folder of notebooks named per student, as learning platforms export them:

   ==================================  ============================
   file                                student
   ==================================  ============================
   ``alice_01_se.ipynb``               ``alice``
   ``smith_j_12345_01_se.ipynb``       ``smith_j_12345``
   ``alice-01_se-2.ipynb``             ``alice`` (a re-download)
   ``alice_01_se (1).ipynb``           ``alice`` (a re-download)
   ``01_se_alice.ipynb``               ``alice``
   ``alice.ipynb``                     ``alice`` (no file names the chapter)
   ``smith_late_12345_01_se.ipynb``    ``smith_12345`` (Canvas' late marker, any case, is dropped)
   ==================================  ============================

   The chapter's name is matched whole and case-insensitively, separated by ``_``, ``-``, ``.`` or a
   space. Either every file names the chapter or none does. Files that name another known chapter
   are left out (and listed). For any other naming, pass ``student_pattern``: a regular expression
   with a named group ``student``, matched against the file name without ``.ipynb`` and without Canvas'
   late marker.

Student ids keep letters, digits and ``_ . @ + -``; spaces become ``_``. Anything that leaves the
owner of a file in doubt (no student left once the chapter is removed, the chapter named twice, two
files for one student, a mix of layouts or of naming schemes) stops the collection with a
:class:`SubmissionLayoutError` listing every such file, before anything is graded: rename them and
run again. Problems with *what* a student handed in (no notebook, several notebooks) do not stop
anything: that student gets a row with score 0 and the reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Collection", "Submission", "SubmissionLayoutError", "find_submissions", "student_id"]

_SEP = r"[_\-. ]"
_REDOWNLOAD = r"(?:-\d+| ?\(\d+\))?"
_ID_OK = re.compile(r"[\w.@+\-]+")
_MOODLE_SUFFIX = re.compile(r"_assignsubmission_[a-z]+_?$")
_CANVAS_LATE = re.compile(r"(?:^|_)late(?=_|$)", re.IGNORECASE)  # Canvas writes "_late_"; either case


class SubmissionLayoutError(ValueError):
    """The folder does not say unambiguously who handed in what; nothing was graded."""


@dataclass(frozen=True)
class Submission:
    """One student's submission. ``problem`` set means it cannot be graded (the row gets 0 and why)."""

    student: str
    notebook: Path | None
    source: str  # where it came from, relative to the submissions folder (for messages)
    folder: Path | None = None  # nbgrader layout: the chapter folder (extra files, timestamp.txt)
    problem: str | None = None
    note: str | None = None


@dataclass
class Collection:
    layout: str  # "nbgrader", "folders" or "flat"
    submissions: list[Submission]
    skipped: list[str] = field(default_factory=list)  # files left out, with the reason


def student_id(raw: str) -> str:
    """A usable student id from a name: spaces to ``_``; ValueError when other characters remain."""
    sid = re.sub(r"\s+", "_", raw.strip()).strip("_.-")
    if not sid or not _ID_OK.fullmatch(sid):
        raise ValueError(
            f"{raw!r} is not a usable student id: expected letters, digits and _ . @ + - (got {sid!r})"
        )
    return sid


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__"))


def _notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file() and _visible(p))


def find_submissions(
    chapter: str,
    submissions: Path,
    *,
    other_chapters: list[str] | tuple[str, ...] = (),
    student_pattern: str | None = None,
) -> Collection:
    """Every submission of ``chapter`` under ``submissions`` (see the module docstring for the layouts)."""
    root = Path(submissions)
    if not root.is_dir():
        raise FileNotFoundError(f"no submissions folder {root}: expected a directory of notebooks")
    if (root / "submitted").is_dir():
        root = root / "submitted"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    flat = _notebooks(root)
    nbgrader = [p for p in folders if (p / chapter).is_dir()]
    per_student = [p for p in folders if p not in nbgrader and _notebooks(p)]

    kinds = [name for name, items in (("nbgrader", nbgrader), ("folders", per_student), ("flat", flat)) if items]
    if len(kinds) > 1:
        examples = {
            "nbgrader": f"{nbgrader[0].name}/{chapter}/" if nbgrader else "",
            "folders": f"{per_student[0].name}/*.ipynb" if per_student else "",
            "flat": flat[0].name if flat else "",
        }
        raise SubmissionLayoutError(
            f"{root} mixes layouts ({', '.join(f'{k}: e.g. {examples[k]}' for k in kinds)}); "
            "expected one of them: put every submission in the same layout"
        )
    if not kinds:
        raise SubmissionLayoutError(
            f"no submissions of {chapter} in {root}: expected <student>/{chapter}/{chapter}.ipynb (nbgrader), "
            f"<student>/<name>.ipynb (one folder per student) or <student>_{chapter}.ipynb files (flat)"
        )
    if kinds == ["nbgrader"]:
        return _collect_nbgrader(chapter, root, nbgrader)
    if kinds == ["folders"]:
        return _collect_folders(chapter, root, per_student)
    return _collect_flat(chapter, root, flat, other_chapters, student_pattern)


def _unique(collection: Collection, origin: dict[str, list[str]]) -> Collection:
    clashes = {s: files for s, files in origin.items() if len(files) > 1}
    if clashes:
        lines = [f"  {s}: {', '.join(files)}" for s, files in sorted(clashes.items())]
        raise SubmissionLayoutError(
            "several submissions for the same student; keep one per student:\n" + "\n".join(lines)
        )
    collection.submissions.sort(key=lambda s: s.student)
    return collection


def _collect_nbgrader(chapter: str, root: Path, folders: list[Path]) -> Collection:
    collection, origin, bad = Collection("nbgrader", []), {}, []
    for folder in folders:
        try:
            sid = student_id(folder.name)
        except ValueError as err:
            bad.append(f"  {folder.name}/: {err}")
            continue
        where = folder / chapter
        source = f"{folder.name}/{chapter}/"
        expected = where / f"{chapter}.ipynb"
        found = _notebooks(where)
        origin.setdefault(sid, []).append(source)
        if expected.is_file():
            collection.submissions.append(Submission(sid, expected, source + expected.name, folder=where))
        elif len(found) == 1:
            note = f"graded {found[0].name} (no {expected.name} in the folder)"
            collection.submissions.append(Submission(sid, found[0], source + found[0].name, folder=where, note=note))
        else:
            what = f"several notebooks ({', '.join(p.name for p in found)})" if found else "no notebook"
            problem = f"{what} in {source}; expected {expected.name}"
            collection.submissions.append(Submission(sid, None, source, folder=where, problem=problem))
    if bad:
        raise SubmissionLayoutError("student folders whose names are not usable ids:\n" + "\n".join(bad))
    return _unique(collection, origin)


def _collect_folders(chapter: str, root: Path, folders: list[Path]) -> Collection:
    collection, origin, bad = Collection("folders", []), {}, []
    for folder in folders:
        try:
            sid = student_id(_MOODLE_SUFFIX.sub("", folder.name))
        except ValueError as err:
            bad.append(f"  {folder.name}/: {err}")
            continue
        found = _notebooks(folder)
        origin.setdefault(sid, []).append(f"{folder.name}/")
        named = [p for p in found if p.name == f"{chapter}.ipynb"]
        if len(found) == 1 or len(named) == 1:
            pick = found[0] if len(found) == 1 else named[0]
            collection.submissions.append(Submission(sid, pick, f"{folder.name}/{pick.name}"))
        else:
            problem = (
                f"several notebooks in {folder.name}/ ({', '.join(p.name for p in found)}) "
                f"and none named {chapter}.ipynb"
            )
            collection.submissions.append(Submission(sid, None, f"{folder.name}/", problem=problem))
    if bad:
        raise SubmissionLayoutError("student folders whose names are not usable ids:\n" + "\n".join(bad))
    return _unique(collection, origin)


def _chapter_token(chapter: str) -> re.Pattern:
    return re.compile(rf"(?:^|{_SEP}){re.escape(chapter)}(?={_SEP}|$|-\d+$| ?\(\d+\)$)", re.IGNORECASE)


def _student_from_name(stem: str, chapter: str) -> str:
    """The student part of a flat file name that names ``chapter``; ValueError when it is unclear."""
    chap = re.escape(chapter)
    if len(_chapter_token(chapter).findall(stem)) > 1:
        raise ValueError(f"it names {chapter} more than once")
    at_end = re.fullmatch(rf"(?P<student>.+?){_SEP}{chap}{_REDOWNLOAD}", stem, re.IGNORECASE)
    at_start = re.fullmatch(rf"{chap}{_SEP}(?P<student>.+)", stem, re.IGNORECASE)
    if at_end is None and at_start is None:
        if re.fullmatch(rf"{chap}{_REDOWNLOAD}", stem, re.IGNORECASE):
            raise ValueError("it names the chapter but no student")
        raise ValueError(f"{chapter} sits in the middle of the name; expected <student>_{chapter}.ipynb")
    raw = (at_end or at_start).group("student")
    return _CANVAS_LATE.sub("", raw)


def _collect_flat(
    chapter: str, root: Path, files: list[Path], other_chapters, student_pattern: str | None
) -> Collection:
    collection, origin, bad = Collection("flat", []), {}, []
    pattern = re.compile(student_pattern) if student_pattern else None
    if pattern is not None and "student" not in pattern.groupindex:
        raise ValueError(f"student_pattern must have a named group 'student', got {student_pattern!r}")
    token = _chapter_token(chapter)
    others = [c for c in other_chapters if c != chapter]
    candidates = []
    for path in files:
        stem = path.name[: -len(".ipynb")]
        foreign = [c for c in others if _chapter_token(c).search(stem)]
        if pattern is None and foreign and not token.search(stem):
            collection.skipped.append(f"{path.name}: a notebook of {foreign[0]}, not {chapter}")
            continue
        candidates.append((path, stem))
    naming = {bool(token.search(stem)) for _, stem in candidates}
    for path, stem in candidates:
        try:
            if pattern is not None:
                match = pattern.fullmatch(_CANVAS_LATE.sub("", stem))  # the late marker goes first
                if match is None:
                    raise ValueError(f"it does not match student_pattern {pattern.pattern!r}")
                raw = match.group("student")
            elif token.search(stem):
                raw = _student_from_name(stem, chapter)
            elif naming == {True, False}:
                raise ValueError(f"it does not name {chapter} while other files do; expected <student>_{chapter}.ipynb")
            else:
                raw = stem
            sid = student_id(raw)
        except ValueError as err:
            bad.append(f"  {path.name}: {err}")
            continue
        origin.setdefault(sid, []).append(path.name)
        collection.submissions.append(Submission(sid, path, path.name))
    if bad:
        raise SubmissionLayoutError(
            f"cannot tell whose submission these files in {root} are; rename them "
            f"(accepted: <student>_{chapter}.ipynb, {chapter}_<student>.ipynb, or <student>.ipynb "
            "when no file names the chapter):\n" + "\n".join(bad)
        )
    return _unique(collection, origin)
