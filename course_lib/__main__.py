"""Command line: ``python -m course_lib <command> [options]``, the one entry point of every course command.

Each command is a ``main(argv) -> int`` function in its own module; this file only dispatches, so that
``python -m course_lib --help`` stays fast and imports nothing heavy. ``python -m course_lib <command> --help``
describes a command's options.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

#: command -> ("module:function", one line of help), grouped by who runs it
COMMANDS = {
    # lecturers: grading a class
    "grade": ("course_lib.grading.cli:main", "autograde a folder of submissions (make grade)"),
    "feedback": ("course_lib.grading.cli:feedback_main",
                 "after hand grading: a graded chapter's feedback pages, grades.csv and summary again"),
    "course-folder": ("course_lib.grading.cli:course_folder_main",
                      "set up the course folder make grade and make instructor share (sources, rubrics)"),
    "export": ("course_lib.grading.export:main",
               "the graded chapters as a Canvas or Moodle grade import CSV (one column per chapter, scaled)"),
    "similarity": ("course_lib.grading.similarity:main",
                   "pairs of a chapter's submissions whose answer cells are near-identical (for the lecturer only)"),
    "grade-bench": ("course_lib.grading.batch:main", "time plain nbgrader against the course grader (--bench)"),
    # maintainers: building and checking the course
    "release": ("course_lib.tools.notebooks:main", "regenerate notebooks/ from solutions/ with nbgrader (make release)"),
    "notebooks": ("course_lib.tools.notebooks:cli",
                  "notebook pipeline: `normalize [paths]` (stable JSON, no outputs), `times` (seconds per chapter), "
                  "`study-times` (each chapter's total time from its section times)"),
    "student-bundle": ("course_lib.tools.bundle:main", "build what students receive (make student-bundle)"),
    "book": ("course_lib.tools.book:main", "the course as a static HTML book, executed, no answer shown (make book)"),
    "grader-report": ("course_lib.tools.grader_report:main", "catalog of wrong/valid implementations vs the checks"),
    "giveaways": ("course_lib.tools.giveaways:main", "how much of each answer the student notebooks show"),
    "build-expected": ("course_lib.tools.build_expected:main",
                       "rebuild the visible checks' stored expected values from the reference modules"),
    "question-key": ("course_lib.checks.questions:main", "the stored key (hash) of a question's answer"),
    "checkpoints": ("course_lib.tools.checkpoints:main", "retrain the shipped checkpoints of chapters 01-08 (make checkpoints)"),
    "capstone": ("course_lib.tools.capstone_run:main", "train and compare every attention variant (make capstone)"),
    "bench": ("course_lib.tools.bench:main", "time and peak memory of every reference module (make bench)"),
}


def _installed(name: str) -> bool:
    """Is the module of command ``name`` here? The student bundle leaves out the grader and the tools."""
    module = COMMANDS[name][0].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m course_lib <command> [options]   (<command> --help: its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items() if _installed(name)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}; expected one of: {', '.join(n for n in COMMANDS if _installed(n))}\n",
              file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    if not _installed(name):
        print(f"python -m course_lib {name} needs the full course repository: this installation (the student "
              "package) leaves out the grader and the maintainers' tools.", file=sys.stderr)
        return 2
    module, function = COMMANDS[name][0].split(":")
    return int(getattr(importlib.import_module(module), function)(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
