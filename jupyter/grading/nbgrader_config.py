"""The course's nbgrader settings for a course folder: put a copy of this file into the folder.

nbgrader reads ``nbgrader_config.py`` from the course folder (``CourseDirectory.root``) for every command
and for formgrader, whatever the working folder or the program that started it: a JupyterHub service,
a lecturer's own ``jupyter lab``, ``make instructor``, ``nbgrader autograde`` typed in a shell. With this
copy there, each of them autogrades in the course's grading sandbox and renders feedback pages without
the hidden tests (course_lib.grading.sandbox: harden, safe_feedback; course_lib.grading.course_folder). ``python -m course_lib grade``
and ``python -m course_lib course-folder`` write it into their ``--out`` folder (``make grade``, ``make
instructor`` and docs/grading.md's "On a JupyterHub" use them).

The settings themselves are the repository's nbgrader_config.py (course id, folders, time limits); add a
course folder's own below (for example ``c.CourseDirectory.db_url = "postgresql+psycopg2://..."``).
"""
from course_lib.grading.course_folder import course_config

c = get_config()  # noqa: F821 - provided by nbgrader's config loader
course_config(c)
