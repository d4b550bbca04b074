"""``python -m course_lib export canvas|moodle``: the grades of the course folder as a file the LMS imports.

It reads the nbgrader gradebook that ``python -m course_lib grade`` (``make grade``) and hand grading in
formgrader wrote (``OUT/gradebook.db``, or ``--db-url``) and writes one column per chapter, scaled to the
LMS's points:

- **Canvas** (``export canvas --canvas-gradebook FILE``): FILE is the gradebook the lecturer downloads from
  Canvas (Grades > Export). The output keeps its student columns (``Student, ID, SIS User ID, SIS Login ID,
  Section``, as exported) and its ``Points Possible`` row, so that Canvas's importer
  (canvas-lms ``lib/gradebook_importer.rb``) recognises every student and assignment. A chapter goes into the
  Canvas assignment of the same name (its header ``Title (id)`` kept, scaled to the points possible the
  export gives) or, when there is none, into a new column that Canvas creates as a new assignment out of
  ``--points``.
- **Moodle** (``export moodle``): a CSV with an identifier column (``--moodle-id-field``: email, idnumber or
  username, what Moodle's "Map to" offers) and one column per chapter, out of ``--points`` (default 100,
  the largest grade Moodle's CSV import accepts unless the site allows more).

Whose row is whose: an nbgrader student id is matched to a Canvas row by the user id that Canvas writes into
its submission file names (``smithjane_1234_56789_01_se.ipynb``, id ``smithjane_1234_56789`` or, with
``--student-pattern``, ``smithjane_1234``: user id 1234), or when the id is the student's SIS Login ID, SIS
User ID or Canvas ID itself, or nbgrader's ``lms_user_id``. For Moodle, ``--moodle-roster`` (Moodle's own
grade export, Export > Plain text file) matches ids made from Moodle's download folders (``Jane
Smith_1234_assignsubmission_file_``: ``Jane_Smith_1234``) by name, and ids that are an e-mail, ID number or
username; without a roster the nbgrader id itself is written as the identifier. Students that match nobody
are listed, and nothing is guessed.

Grades that are not final stop the export by default, naming the students and chapters: written answers
not graded by hand yet (nbgrader's ``needs_manual_grade``), and submissions the grader could not grade (a
malformed notebook and the like: the row ``error: ...`` of grades.csv, stored with every cell at 0 and the
notebook flagged in the gradebook; a notebook flagged by hand in formgrader counts too). With
``--allow-pending`` such a grade is never written as if final: its cell is left as the LMS has it (Canvas:
the value in the downloaded export; Moodle: ``-``, "no grade"), and the file ``<output>.pending.csv`` beside
it lists every one (student, chapter, points waiting, auto-graded points so far, why). Moodle's file also
gets a ``Notes`` column saying so (map it to "Ignore").

Exit status: 0 written, every student matched; 1 written, but some students matched no LMS row (listed);
2 nothing written (bad input, or written answers still to grade without ``--allow-pending``).
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExportError", "ChapterGrade", "read_gradebook", "canvas_import", "moodle_import", "main"]

#: Canvas's student information columns (lib/gradebook_importer.rb, GRADEBOOK_IMPORTER_RESERVED_NAMES)
CANVAS_STUDENT_COLUMNS = ("Student", "LastName", "FirstName", "ID", "SIS User ID", "SIS Login ID", "Section",
                          "Integration ID", "Root Account")
#: columns Canvas computes and ignores on import (NON_ASSIGNMENT_COLUMN_HEADERS; "Unposted ..." too)
CANVAS_READ_ONLY = re.compile(r"(Current|Final|Override) (Score|Points|Grade|Status)")
#: Moodle's "Map to" user fields (grade/import/csv/classes/load_data.php) and the header of its export
MOODLE_ID_FIELDS = {"email": "Email address", "idnumber": "ID number", "username": "Username"}
MOODLE_MAX = 100.0
#: a Canvas submission download name, once collect.py has dropped ".ipynb", "LATE" and the chapter:
#: name_userid[_submissionid]
_CANVAS_NAME = re.compile(r"(?P<name>[^_]+)_(?P<user>\d+)(?:_(?P<submission>\d+))?")
#: a Moodle download folder once collect.py has dropped "_assignsubmission_file_": Full_Name_participant
_MOODLE_NAME = re.compile(r"(?P<name>.+?)_(?P<participant>\d+)")


class ExportError(ValueError):
    """The export cannot be written; the message says what was expected and what came."""


@dataclass
class ChapterGrade:
    student: str
    chapter: str
    score: float
    max_score: float
    pending: dict[str, float] = field(default_factory=dict)  # grade_id -> points still to grade by hand
    flagged: bool = False  # the grader could not grade it (its row in grades.csv says why), or flagged by hand

    @property
    def auto_max(self) -> float:
        return self.max_score - sum(self.pending.values())

    @property
    def final(self) -> bool:
        """Whether the score is the student's grade: nothing to grade by hand, and not a file that could not be
        graded (scored 0 on every cell by the grader, batch._merge, until it is fixed and graded again)."""
        return not self.pending and not self.flagged

    @property
    def why(self) -> str:
        if self.flagged:
            return UNGRADED
        return "written answers to grade by hand"


#: what a flagged notebook is: the batch grader flags a submission it could not grade; formgrader's flag button too
UNGRADED = "could not be graded (flagged in the gradebook; its grades.csv status says why)"


@dataclass
class Student:
    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    lms_user_id: str | None = None


# --------------------------------------------------------------------------------------------
# the gradebook
# --------------------------------------------------------------------------------------------
def read_gradebook(db_url: str, chapters: list[str] | None = None) -> tuple[dict[str, Student], list[str],
                                                                         list[ChapterGrade]]:
    """(students, chapters in gradebook order, one :class:`ChapterGrade` per submission) of the gradebook."""
    from nbgrader.api import Gradebook

    from course_lib.grading.common import course_id, quiet_sqlalchemy

    with quiet_sqlalchemy(), Gradebook(db_url, course_id()) as gb:
        names = [a.name for a in gb.assignments]
        if chapters:
            unknown = [c for c in chapters if c not in names]
            if unknown:
                raise ExportError(f"the gradebook has no chapter {', '.join(unknown)}; it holds "
                                  f"{', '.join(names) or 'none'}")
            names = [n for n in names if n in chapters]
        students = {s.id: Student(s.id, s.first_name, s.last_name, s.email, s.lms_user_id) for s in gb.students}
        grades = []
        for chapter in names:
            for sub in gb.find_assignment(chapter).submissions:
                # what nbgrader marks needs_manual_grade and nobody has scored by hand yet (as notebooks.grades_of)
                pending = {g.name: float(g.max_score) for nb in sub.notebooks for g in nb.grades
                           if g.needs_manual_grade and g.manual_score is None}
                grades.append(ChapterGrade(sub.student.id, chapter, float(sub.score), float(sub.max_score), pending,
                                           any(nb.flagged for nb in sub.notebooks)))
    return students, names, grades


def _points(value: float) -> str:
    """A score as the LMS reads it: at most two decimals (Canvas's own export rounds to two), no trailing 0."""
    text = f"{round(value + 0.0, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def scaled(grade: ChapterGrade, points: float) -> str:
    return _points(grade.score / grade.max_score * points if grade.max_score else 0.0)


def not_final(grades: list[ChapterGrade]) -> list[ChapterGrade]:
    return sorted((g for g in grades if not g.final), key=lambda g: (g.student, g.chapter))


def pending_lines(grades: list[ChapterGrade]) -> list[str]:
    lines = []
    for g in not_final(grades):
        if g.flagged:
            lines.append(f"  {g.student}  {g.chapter}: {UNGRADED}")
        else:
            lines.append(f"  {g.student}  {g.chapter}: {_points(sum(g.pending.values()))} points to grade by hand "
                         f"({', '.join(sorted(g.pending))}); auto-graded {_points(g.score)}/{_points(g.auto_max)} "
                         "so far")
    return lines


def _refuse_pending(grades: list[ChapterGrade]) -> None:
    lines = pending_lines(grades)
    if lines:
        waiting = not_final(grades)
        hand, failed = sum(1 for g in waiting if not g.flagged), sum(1 for g in waiting if g.flagged)
        what = " and ".join(part for part in (
            hand and f"{hand} submission{'s' if hand != 1 else ''} still {'have' if hand != 1 else 'has'} written "
                     "answers to grade by hand",
            failed and f"{failed} submission{'s' if failed != 1 else ''} could not be graded") if part)
        todo = " and ".join(part for part in (
            hand and "grade the written answers in formgrader (Manual Grading)",
            failed and "fix each file that could not be graded and grade it again alone") if part)
        raise ExportError(
            f"{what}, so {'their grades are' if len(lines) != 1 else 'its grade is'} not final; nothing was "
            "written:\n" + "\n".join(lines)
            + f"\n{todo[0].upper() + todo[1:]}, then export again; or pass --allow-pending to write the final "
              "grades and none for these (listed in <output>.pending.csv).")


def _write_pending(target: Path, grades: list[ChapterGrade], points: dict[str, float]) -> Path | None:
    waiting = not_final(grades)
    side = target.with_name(target.stem + ".pending.csv")
    if not waiting:
        if side.exists():
            side.unlink()  # an earlier export's list would say something no longer true
        return None
    with open(side, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "chapter", "points_to_grade_by_hand", "cells", "auto_graded_score",
                         "auto_graded_max", "chapter_points_in_lms", "why"])
        for g in waiting:
            writer.writerow([g.student, g.chapter, _points(sum(g.pending.values())), " ".join(sorted(g.pending)),
                             _points(g.score), _points(g.auto_max), _points(points[g.chapter]), g.why])
    return side


# --------------------------------------------------------------------------------------------
# reading the LMS's files
# --------------------------------------------------------------------------------------------
def _read_csv(path: Path, what: str) -> list[list[str]]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"no {what} at {path}: expected the CSV file downloaded from the LMS")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not UTF-8 text: expected the {what} as the LMS exports it (CSV)") from None
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","  # Canvas accepts both (identify_delimiter)
    try:
        rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter)]
    except csv.Error as err:
        raise ExportError(f"{path} is not a readable CSV file ({err}): expected the {what}") from None
    return [row for row in rows if any(cell.strip() for cell in row)]


@dataclass
class CanvasExport:
    header: list[str]
    info: int  # how many student information columns, up to and including Section
    points_row: list[str] | None
    students: list[list[str]]

    def column(self, name: str) -> int | None:
        return self.header.index(name) if name in self.header else None


def read_canvas_export(path: Path) -> CanvasExport:
    """The Canvas gradebook export, checked against what Canvas's importer requires: a header whose first
    columns are ``Student`` and ``ID`` and whose student information ends with ``Section``."""
    rows = _read_csv(path, "Canvas gradebook export")
    if not rows:
        raise ExportError(f"{path} is empty: expected the Canvas gradebook export (Grades > Export)")
    header = [h.strip() for h in rows[0]]
    expected = "Student, ID, SIS User ID, SIS Login ID, Section, then one column per assignment"
    if len(header) < 3 or "Student" not in header[0] or "ID" not in header[1] or "Section" not in header:
        raise ExportError(f"{path} does not look like a Canvas gradebook export: its header is "
                          f"{', '.join(header[:6]) or '(nothing)'}; expected {expected}")
    info = header.index("Section") + 1
    points_row, students = None, []
    for row in rows[1:]:
        row = row + [""] * (len(header) - len(row))
        first = row[0].strip()
        if "Points Possible" in first:
            points_row = row
        elif all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c or "", re.I) for c in row):
            continue  # Canvas's row of posting policies
        else:
            students.append(row)
    return CanvasExport(header, info, points_row, students)


def _title(header: str) -> str:
    """An assignment column's title: Canvas writes ``Title (id)``."""
    return re.sub(r"\s*\(\d+\)\s*$", "", header).strip()


def _same(a: str, b: str) -> bool:
    squeeze = lambda s: re.sub(r"[\s_\-]+", "", s).lower()  # noqa: E731
    return squeeze(a) == squeeze(b)


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


# --------------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------------
@dataclass
class Match:
    rows: dict[str, int]  # nbgrader id -> row index in the LMS's list
    unmatched: list[str]  # nbgrader ids that match no row
    notes: list[str]  # matches worth a second look


def match_canvas(ids: list[str], students: dict[str, Student], export: CanvasExport) -> Match:
    col = {name: export.column(name) for name in ("ID", "SIS User ID", "SIS Login ID")}
    by_key: dict[str, set[int]] = {}
    for index, row in enumerate(export.students):
        for name in col:
            if col[name] is not None and row[col[name]].strip():
                by_key.setdefault(row[col[name]].strip().lower(), set()).add(index)
    by_user = {row[col["ID"]].strip(): i for i, row in enumerate(export.students) if col["ID"] is not None}
    rows, unmatched, notes = {}, [], []
    for sid in ids:
        found, how = set(by_key.get(sid.lower(), set())), "id"
        lms = (students.get(sid) and students[sid].lms_user_id) or None
        if not found and lms:
            found, how = set(by_key.get(str(lms).lower(), set())), "lms_user_id"
        if not found:
            named = _CANVAS_NAME.fullmatch(sid)
            if named and named["user"] in by_user:
                found, how = {by_user[named["user"]]}, "file name"
                row = export.students[by_user[named["user"]]]
                if _letters(named["name"]) not in {_letters(row[0]), _letters(" ".join(reversed(row[0].split(","))))}:
                    notes.append(f"  {sid}: matched by Canvas user id {named['user']} ({row[0].strip()}), although "
                                 f"the file name says {named['name']!r}")
        if len(found) == 1:
            rows[sid] = found.pop()
        elif len(found) > 1:
            raise ExportError(f"{sid} matches several Canvas rows by {how}; rename the student or fix the export")
        else:
            unmatched.append(sid)
    _one_row_each(rows, lambda i: export.students[i][0].strip())
    return Match(rows, unmatched, notes)


def _one_row_each(rows: dict[str, int], label) -> None:
    owners: dict[int, list[str]] = {}
    for sid, index in rows.items():
        owners.setdefault(index, []).append(sid)
    clashes = [f"  {label(i)}: {', '.join(sorted(s))}" for i, s in owners.items() if len(s) > 1]
    if clashes:
        raise ExportError("several nbgrader students match the same LMS row; nothing was written:\n"
                          + "\n".join(clashes))


# --------------------------------------------------------------------------------------------
# Canvas
# --------------------------------------------------------------------------------------------
@dataclass
class Written:
    path: Path
    rows: int
    unmatched: list[str]
    notes: list[str]
    pending: list[ChapterGrade]
    pending_path: Path | None
    columns: dict[str, str]  # chapter -> header written
    points: dict[str, float]


def canvas_import(db_url: str, export_path: Path, target: Path, *, points: float | None = None,
                  chapters: list[str] | None = None, columns: dict[str, str] | None = None,
                  allow_pending: bool = False) -> Written:
    export = read_canvas_export(export_path)
    students, names, grades = read_gradebook(db_url, chapters)
    if not names:
        raise ExportError("the gradebook holds no graded chapter: grade one first (python -m course_lib grade)")
    if not allow_pending:
        _refuse_pending(grades)
    assignments = {i: h for i, h in enumerate(export.header) if i >= export.info and not CANVAS_READ_ONLY.search(h)}
    chosen: dict[str, int | None] = {}
    for chapter in names:
        wanted = (columns or {}).get(chapter)
        if wanted is not None:
            hits = [i for i, h in assignments.items() if h == wanted or _same(_title(h), wanted)]
            if not hits:
                raise ExportError(f"--column {chapter}={wanted!r}: the Canvas export has no such assignment column; "
                                  f"its assignments are {', '.join(assignments.values()) or 'none'}")
        else:
            hits = [i for i, h in assignments.items() if _same(_title(h), chapter)]
        if len(hits) > 1:
            raise ExportError(f"several Canvas columns could be {chapter}: {', '.join(export.header[i] for i in hits)}; "
                              f"pass --column {chapter}=HEADER")
        chosen[chapter] = hits[0] if hits else None
    out_of: dict[str, float] = {}
    for chapter, index in chosen.items():
        canvas_points = None
        if index is not None and export.points_row is not None:
            text = export.points_row[index].strip()
            try:
                canvas_points = float(text) if text else None
            except ValueError:
                canvas_points = None
        if canvas_points is not None and points is not None and not math.isclose(canvas_points, points):
            raise ExportError(f"the Canvas assignment {export.header[index]!r} is out of {_points(canvas_points)} "
                              f"points, not {_points(points)} (--points): change it in Canvas, or leave --points out")
        value = canvas_points if canvas_points is not None else points
        if value is None or value <= 0:
            where = (f"the export's Points Possible row has nothing for {export.header[index]!r}" if index is not None
                     else f"the export has no column for {chapter} (Canvas will create the assignment)")
            raise ExportError(f"{where}: pass --points N, the points {chapter} is worth in Canvas")
        out_of[chapter] = value

    ids = sorted({g.student for g in grades})
    match = match_canvas(ids, students, export)
    by = {(g.student, g.chapter): g for g in grades}
    info = export.header[:export.info]
    header = info + [export.header[chosen[c]] if chosen[c] is not None else c for c in names]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    owner = {index: sid for sid, index in match.rows.items()}
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerow(["    Points Possible"] + [""] * (export.info - 1) + [_points(out_of[c]) for c in names])
        for index, row in enumerate(export.students):
            cells = row[:export.info]
            sid = owner.get(index)
            for chapter in names:
                kept = row[chosen[chapter]].strip() if chosen[chapter] is not None else ""
                grade = by.get((sid, chapter)) if sid else None
                if grade is None or not grade.final:
                    cells.append(kept)  # no submission, or not final: Canvas keeps what it has
                else:
                    cells.append(scaled(grade, out_of[chapter]))
            writer.writerow(cells)
    waiting = not_final(grades)
    return Written(target, len(export.students), match.unmatched, match.notes, waiting,
                   _write_pending(target, grades, out_of),
                   {c: header[export.info + i] for i, c in enumerate(names)}, out_of)


# --------------------------------------------------------------------------------------------
# Moodle
# --------------------------------------------------------------------------------------------
def read_moodle_roster(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    rows = _read_csv(path, "Moodle grade export")
    if not rows:
        raise ExportError(f"{path} is empty: expected Moodle's grade export (Export > Plain text file)")
    header = [h.strip() for h in rows[0]]
    names = {"First name", "Last name", "Surname"}
    if "First name" not in header or not names & (set(header) - {"First name"}) or not (
            {"Email address", "ID number", "Username"} & set(header)):
        raise ExportError(f"{path} does not look like a Moodle grade export: its header is "
                          f"{', '.join(header[:6]) or '(nothing)'}; expected First name, Last name (or Surname), "
                          "ID number, Institution, Department, Email address, then the grade items")
    return header, [dict(zip(header, row + [""] * (len(header) - len(row)))) for row in rows[1:]]


def match_moodle(ids: list[str], students: dict[str, Student], roster: list[dict[str, str]]) -> Match:
    last = lambda r: r.get("Last name") or r.get("Surname") or ""  # noqa: E731
    by_key: dict[str, set[int]] = {}
    for index, r in enumerate(roster):
        for name in ("Email address", "ID number", "Username"):
            if r.get(name, "").strip():
                by_key.setdefault(r[name].strip().lower(), set()).add(index)
        full = _letters(f"{r.get('First name', '')} {last(r)}")
        if full:
            by_key.setdefault("name:" + full, set()).add(index)
    rows, unmatched = {}, []
    for sid in ids:
        found = set(by_key.get(sid.lower(), set()))
        st = students.get(sid)
        if not found and st and st.email:
            found = set(by_key.get(st.email.lower(), set()))
        if not found:
            named = _MOODLE_NAME.fullmatch(sid)
            key = _letters(named["name"] if named else sid)
            found = set(by_key.get("name:" + key, set()))
        if len(found) == 1:
            rows[sid] = found.pop()
        elif len(found) > 1:
            raise ExportError(f"{sid} matches several students of the Moodle export (the same name twice?); "
                              "give those students ids that are their e-mail or ID number")
        else:
            unmatched.append(sid)
    _one_row_each(rows, lambda i: f"{roster[i].get('First name', '')} {last(roster[i])}".strip())
    return Match(rows, unmatched, [])


def moodle_import(db_url: str, target: Path, *, id_field: str = "email", roster_path: Path | None = None,
                  points: float | None = None, chapters: list[str] | None = None,
                  allow_pending: bool = False) -> Written:
    if id_field not in MOODLE_ID_FIELDS:
        raise ExportError(f"--moodle-id-field {id_field!r}: expected one of {', '.join(MOODLE_ID_FIELDS)}")
    label = MOODLE_ID_FIELDS[id_field]
    roster = None
    if roster_path is not None:
        header, roster = read_moodle_roster(roster_path)
        if label not in header:
            raise ExportError(f"the Moodle export {roster_path} has no {label!r} column for --moodle-id-field "
                              f"{id_field}; its columns are {', '.join(header)}")
    points = MOODLE_MAX if points is None else points
    if points <= 0:
        raise ExportError(f"--points must be above 0, got {_points(points)}")
    students, names, grades = read_gradebook(db_url, chapters)
    if not names:
        raise ExportError("the gradebook holds no graded chapter: grade one first (python -m course_lib grade)")
    if not allow_pending:
        _refuse_pending(grades)
    ids = sorted({g.student for g in grades})
    if roster is not None:
        match = match_moodle(ids, students, roster)
        ident = {sid: roster[i][label].strip() for sid, i in match.rows.items()}
        empty = [sid for sid, value in ident.items() if not value]
        if empty:
            raise ExportError(f"these students have no {label} in the Moodle export: {', '.join(empty)}; "
                              "choose another --moodle-id-field")
    else:
        if id_field == "email":
            odd = [sid for sid in ids if "@" not in sid]
            if odd:
                raise ExportError(f"without --moodle-roster the student ids are written as the identifier, but these "
                                  f"are not e-mail addresses: {', '.join(odd)}; pass --moodle-roster FILE (Moodle's "
                                  "grade export) to look them up, or choose --moodle-id-field idnumber or username")
        match = Match({sid: i for i, sid in enumerate(ids)}, [], [])
        ident = {sid: sid for sid in ids}
    by = {(g.student, g.chapter): g for g in grades}
    waiting = not_final(grades)
    notes_column = any(g.student in match.rows for g in waiting)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([label] + names + (["Notes"] if notes_column else []))
        for sid in sorted(match.rows, key=lambda s: ident[s]):
            cells, notes = [ident[sid]], []
            for chapter in names:
                grade = by.get((sid, chapter))
                if grade is None:
                    cells.append("-")
                elif grade.flagged:
                    cells.append("-")
                    notes.append(f"{chapter}: not final, the submission could not be graded")
                elif grade.pending:
                    cells.append("-")
                    notes.append(f"{chapter}: not final, {_points(sum(grade.pending.values()))} points of written "
                                 "answers still to grade by hand")
                else:
                    cells.append(scaled(grade, points))
            writer.writerow(cells + (["; ".join(notes)] if notes_column else []))
    return Written(target, len(match.rows), match.unmatched, [], waiting,
                   _write_pending(target, grades, {c: points for c in names}), {c: c for c in names},
                   {c: points for c in names})


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------
def _default_course() -> Path:
    """The grade command's default course folder (what `make grade` writes): $COURSE_DIR, else out/grading."""
    from course_lib.grading.cli import course_dir

    return course_dir()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number of points above 0, got {text!r}")
    return value


def _column(text: str) -> tuple[str, str]:
    chapter, sep, header = text.partition("=")
    if not sep or not chapter.strip() or not header.strip():
        raise argparse.ArgumentTypeError(f"expected CHAPTER=HEADER, got {text!r}")
    return chapter.strip(), header.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lms", choices=("canvas", "moodle"), help="the learning platform to import into")
    parser.add_argument("--out", type=Path, default=None,
                        help="the graded course folder, the --out of `python -m course_lib grade` "
                             "(default: $COURSE_DIR, else out/grading)")
    parser.add_argument("--db-url", default=None, help="the gradebook (default: sqlite:///OUT/gradebook.db)")
    parser.add_argument("--to", type=Path, default=None,
                        help="the file to write (default: OUT/canvas-import.csv or OUT/moodle-import.csv)")
    parser.add_argument("--chapter", action="append", default=None, help="only this chapter (repeatable; default: all graded)")
    parser.add_argument("--points", type=_positive, default=None,
                        help="what a chapter is worth in the LMS (Canvas: default the assignment's Points Possible in "
                             "the export; Moodle: default 100)")
    parser.add_argument("--allow-pending", action="store_true",
                        help="write the file although some grades are not final (written answers not graded by hand "
                             "yet, submissions that could not be graded): their grade cells are left as the LMS has them (Canvas: the exported value; Moodle: '-', no grade), "
                             "never the partial score, and <output>.pending.csv lists them (Moodle: a Notes column too)")
    canvas = parser.add_argument_group("Canvas")
    canvas.add_argument("--canvas-gradebook", type=Path, default=None, metavar="FILE",
                        help="the gradebook CSV downloaded from Canvas (Grades > Export): its students, IDs, sections "
                             "and assignments (required for canvas)")
    canvas.add_argument("--column", action="append", type=_column, default=[], metavar="CHAPTER=HEADER",
                        help="the Canvas assignment column of a chapter whose title is not the chapter's name")
    moodle = parser.add_argument_group("Moodle")
    moodle.add_argument("--moodle-id-field", choices=tuple(MOODLE_ID_FIELDS), default="email",
                        help="the identifier column, for Moodle's 'Map to' (email: useremail, idnumber: useridnumber, "
                             "username: username; default email)")
    moodle.add_argument("--moodle-roster", type=Path, default=None, metavar="FILE",
                        help="Moodle's grade export (Export > Plain text file), to find each student's identifier; "
                             "without it the nbgrader student id is written as the identifier")
    return parser


def main(argv: list[str] | None = None) -> int:
    from course_lib.grading.common import lean_imports

    lean_imports()  # before nbgrader imports nbformat
    parser = build_parser()
    args = parser.parse_args(argv)
    course = (args.out or _default_course())
    db_url = args.db_url or f"sqlite:///{course.resolve() / 'gradebook.db'}"
    if args.db_url is None and not (course / "gradebook.db").is_file():
        parser.error(f"{course} holds no gradebook.db: pass the course folder that `python -m course_lib grade` "
                     "graded into (--out DIR), or --db-url")
    try:
        if args.lms == "canvas":
            if args.canvas_gradebook is None:
                parser.error("canvas needs --canvas-gradebook FILE: the gradebook CSV downloaded from Canvas "
                             "(Grades > Export), so that the IDs match")
            written = canvas_import(db_url, args.canvas_gradebook, args.to or course / "canvas-import.csv",
                                    points=args.points, chapters=args.chapter, columns=dict(args.column),
                                    allow_pending=args.allow_pending)
        else:
            written = moodle_import(db_url, args.to or course / "moodle-import.csv", id_field=args.moodle_id_field,
                                    roster_path=args.moodle_roster, points=args.points, chapters=args.chapter,
                                    allow_pending=args.allow_pending)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chapters = ", ".join(f"{c} -> {h!r} out of {_points(written.points[c])}" for c, h in written.columns.items())
    print(f"wrote {written.path} ({written.rows} students; {chapters})")
    if written.pending:
        kept = "left as in the Canvas export" if args.lms == "canvas" else "written as '-' (no grade)"
        count = len(written.pending)
        why = " or ".join(sorted({"could not be graded" if g.flagged else "written answers to grade by hand"
                                  for g in written.pending}, reverse=True))
        print(f"{count} grade{'s are' if count != 1 else ' is'} not final ({why}): "
              f"{kept}, never the partial score or a 0, and listed in {written.pending_path}:")
        print("\n".join(pending_lines(written.pending)))
    if written.notes:
        print("check these matches:\n" + "\n".join(written.notes))
    if written.unmatched:
        where = "the Canvas export" if args.lms == "canvas" else "the Moodle export"
        count = len(written.unmatched)
        print(f"{count} graded student{'s match' if count != 1 else ' matches'} no student of {where}, so "
              f"{'their' if count != 1 else 'that'} grades are NOT in the file:\n" + "\n".join(f"  {s}" for s in written.unmatched), file=sys.stderr)
        return 1
    return 0
