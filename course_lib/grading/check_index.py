"""Which course check belongs to which exercise: the index that the sandbox uses to know which signed
proofs a graded test cell must print.

Standard library only, so that the warm template (which builds the index, having imported the checks
anyway) need not import nbgrader, and a grading worker can take the index from it without importing
torch and every check module itself.
"""
from __future__ import annotations

__all__ = ["check_index", "check_index_data", "check_modules", "use_check_index"]

_CHECK_INDEX: dict | None = None


def check_modules() -> list[str]:
    """The modules of the visible checks (``course_lib.checks``) and, where installed, of the hidden checks
    (``course_lib.hidden``), private ones left out. Importing the two packages imports the check toolkit."""
    import importlib
    import pkgutil

    packages = [importlib.import_module("course_lib.checks")]
    try:
        packages.append(importlib.import_module("course_lib.hidden"))
    except ImportError:  # the student bundle has no hidden checks
        pass
    return [info.name for package in packages
            for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
            if not info.name.rsplit(".", 1)[-1].startswith("_")]


def check_index() -> dict:
    """(module, function) -> exercise name, and function name -> {exercise names}, of every course check."""
    global _CHECK_INDEX
    if _CHECK_INDEX is None:
        import importlib

        by_module: dict[tuple[str, str], str] = {}
        by_name: dict[str, set[str]] = {}
        for module_name in check_modules():
            try:
                module = importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - a broken chapter module has no checks to expect
                continue
            for attr, value in vars(module).items():
                name = getattr(value, "exercise_name", None)
                if isinstance(name, str) and getattr(value, "__module__", None) == module.__name__:
                    by_module[(module.__name__, attr)] = name
                    by_name.setdefault(attr, set()).add(name)
        _CHECK_INDEX = {"by_module": by_module, "by_name": by_name}
    return _CHECK_INDEX


def check_index_data() -> dict:
    """:func:`check_index` as JSON data (the warm template sends it to its grading worker)."""
    index = check_index()
    return {"by_module": [[m, a, n] for (m, a), n in sorted(index["by_module"].items())],
            "by_name": {a: sorted(names) for a, names in sorted(index["by_name"].items())}}


def use_check_index(data: dict) -> None:
    """Take the check index from :func:`check_index_data` (made by the warm template, which has imported
    the checks anyway), so that a grading worker need not import torch and every check module itself."""
    global _CHECK_INDEX
    if _CHECK_INDEX is None:
        _CHECK_INDEX = {"by_module": {(m, a): n for m, a, n in data["by_module"]},
                        "by_name": {a: set(names) for a, names in data["by_name"].items()}}
