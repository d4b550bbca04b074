"""Rebuild the stored expected values of the visible checks from the reference modules.

    python -m course_lib build-expected            # every chapter
    python -m course_lib build-expected ch01_se    # one chapter

Each ``course_lib.hidden.<chapter>`` module that defines ``build_expected()`` contributes
``checks/expected/<chapter>.pt``. A test rebuilds them in memory and compares, so they cannot drift.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from course_lib import hidden
from course_lib.checks.toolkit import save_expected


def builders() -> dict:
    """chapter name -> its build_expected function, for every hidden module that has one."""
    found = {}
    for info in pkgutil.iter_modules(hidden.__path__):
        module = importlib.import_module(f"{hidden.__name__}.{info.name}")
        if hasattr(module, "build_expected"):
            found[info.name] = module.build_expected
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib build-expected",
                                     description="Rebuild the visible checks' stored expected values (checks/expected/"
                                                 "<chapter>.pt) from the hidden modules' build_expected().")
    parser.add_argument("chapters", nargs="*", help="chapter modules to rebuild, e.g. ch01_se (default: all)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    available = builders()
    unknown = [name for name in args.chapters if name not in available]
    if unknown:
        print(f"unknown chapter(s) {unknown}; expected some of {sorted(available)}", file=sys.stderr)
        return 2
    for name in args.chapters or sorted(available):
        path = save_expected(name, available[name]())
        print(f"wrote {path}")
    return 0
