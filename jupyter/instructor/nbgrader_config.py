"""nbgrader settings of the instructor view only (`make instructor` puts this folder on JUPYTER_CONFIG_PATH).

The course itself is configured by the repository's nbgrader_config.py, which nbgrader reads from the folder
JupyterLab serves. This adds what the instructor's tools need on a single machine:

- the course folder: formgrader, its buttons and the `nbgrader` commands of the lab's terminals work on
  $COURSE_DIR (`make instructor` sets it; default out/grading), the nbgrader course directory that
  `make grade` grades into. So formgrader lists the submissions `make grade` graded, hand grading goes into
  the same gradebook, and Generate / Release write inside the course folder, never into the repository's
  notebooks/ (the student release, which `make release` alone writes);
- an exchange directory of the course's own (out/exchange, git-ignored) instead of nbgrader's system-wide
  /srv/nbgrader/exchange, so "Release" and "Collect" work without root and the lists show no errors.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

REPOSITORY = Path(__file__).resolve().parents[2]
c.CourseDirectory.root = str(Path(os.environ.get("COURSE_DIR") or REPOSITORY / "out" / "grading").resolve())
c.Exchange.root = str(REPOSITORY / "out" / "exchange")
