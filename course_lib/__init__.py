"""course_lib: attention mechanisms for CNNs, with graded checks, figures and course tools.

The package is split by audience (CONTRIBUTING.md has the map; ``pyproject.toml``'s import-linter
contracts keep it so):

- what students run, and what the student bundle ships: ``checks/`` (the visible checks), ``figures/``,
  ``learned``, ``data``, ``capstone``, ``stats`` and the trained ``checkpoints/``;
- ``reference/``, ``hidden/``, ``grading/`` and ``tools/``: the instructors' and maintainers' side (the
  reference solutions, the graded checks, the class grader, the release tools), described in CONTRIBUTING.md.

The folders of the second line never ship to students. Importing this package is cheap: it imports neither torch nor
anything else, so that ``python -m course_lib --help`` stays fast and the student bundle imports.

``course_lib.ATTENTION`` is ``course_lib.reference.ATTENTION`` (name -> factory taking ``channels``), looked
up on first access; in the student bundle, where the reference modules are left out, it raises an
ImportError that says so.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
# ATTENTION stays out of __all__: a star import must not pull in torch or fail in the student bundle.
__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "ATTENTION":
        try:
            from course_lib.reference import ATTENTION
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("course_lib.reference"):
                raise ImportError(
                    "course_lib.ATTENTION needs the reference modules, which the student bundle leaves out; "
                    f"{exc.name} is not installed. Use the full course repository (pip install -e .), or "
                    "build the module you need from your own chapter solution."
                ) from exc
            raise
        globals()["ATTENTION"] = ATTENTION  # later lookups skip __getattr__
        return ATTENTION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ATTENTION"})
