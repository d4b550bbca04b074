"""Command line: ``python -m course_lib <command> [options]``.

Each command lives in its own module and exposes ``main(argv) -> int``; this file only dispatches,
so that ``python -m course_lib --help`` stays fast and imports nothing heavy.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "bench": ("course_lib.bench", "time and peak memory of every reference module (make bench)"),
    "capstone": ("course_lib.capstone", "train and compare every attention variant (make capstone)"),
    "grade": ("course_lib.grading.cli", "autograde a folder of submissions (make grade)"),
    "giveaways": ("course_lib.giveaways", "how much of each answer the student notebooks show (issue 15)"),
    "grader-report": ("course_lib.grading.report", "catalog of wrong/valid implementations vs the checks"),
    "student-bundle": ("course_lib.grading.bundle", "build what students receive (make student-bundle)"),
    "release": ("course_lib.notebooks", "regenerate notebooks/ from solutions/ with nbgrader"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m course_lib <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}; expected one of: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
