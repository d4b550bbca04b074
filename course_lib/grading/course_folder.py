"""The course's nbgrader settings in a course folder, so that nbgrader grades it the course's way from anywhere.

nbgrader reads ``nbgrader_config.py`` from the course folder itself (``CourseDirectory.root``) for every
command and for formgrader, whatever the working folder and whoever started them (a JupyterHub service, a
lecturer's own ``jupyter lab``, ``make instructor``, ``nbgrader autograde`` typed in a shell). A course folder
holding a copy of ``jupyter/grading/nbgrader_config.py`` (:data:`COURSE_CONFIG`) therefore autogrades in
the grading sandbox and renders feedback without the hidden tests in all of them
(course_lib.grading.sandbox: ``harden``, ``safe_feedback``; tests/test_grading_entry_points.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
#: the file a course folder gets a copy of (docs/grading.md, "On a JupyterHub", step 3)
COURSE_CONFIG = _REPO / "jupyter" / "grading" / "nbgrader_config.py"

__all__ = ["COURSE_CONFIG", "course_config", "write_course_config"]


def course_config(config):
    """Merge the course's nbgrader settings (this repository's ``nbgrader_config.py``: course id, folders,
    time limits, the grading sandbox and the safe feedback pages) into ``config``; return it.
    :data:`COURSE_CONFIG` calls it."""
    from traitlets.config.loader import PyFileConfigLoader

    config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(_REPO)).load_config())
    return config


def write_course_config(root: Path) -> Path:
    """Put a copy of :data:`COURSE_CONFIG` into the course folder ``root`` as ``nbgrader_config.py``, unless
    the folder has one already (a lecturer's own, with a PostgreSQL ``db_url`` say); return its path. The
    batch grader calls it for its ``--out`` folder."""
    target = Path(root) / "nbgrader_config.py"
    if not target.exists():
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(COURSE_CONFIG, target)
    return target
