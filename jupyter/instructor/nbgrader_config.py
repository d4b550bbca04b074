"""nbgrader settings of the instructor view only (`make instructor` puts this folder on JUPYTER_CONFIG_PATH).

The course itself is configured by the repository's nbgrader_config.py, which nbgrader reads from the folder
JupyterLab serves. This adds the one thing the assignment tools need on a single machine: an exchange
directory of the course's own (out/exchange, git-ignored) instead of nbgrader's system-wide
/srv/nbgrader/exchange, so "Release" and "Collect" work without root and the lists show no errors.
"""
from pathlib import Path

c = get_config()  # noqa: F821 - provided by nbgrader's config loader

c.Exchange.root = str(Path(__file__).resolve().parents[2] / "out" / "exchange")
