"""Every shell command of docs/grading.md, "On a JupyterHub: the whole course cycle", run as written.

The section's shell blocks run literally, in the guide's order, each as the account it is meant for (the
grader account; each student for the student blocks): the exchange and the course folder are set up,
chapter 01 generated and released, two students fetch, answer (alice right with a written answer, bob
wrong and covering it up by replacing torch's comparisons), validate and submit, a Dask scheduler and
worker start, the grader collects and grades with the batch grader on that cluster (bob's tampering gets
0 in the sandbox), renders and releases the feedback, and each student fetches their own page, which
shows no hidden test and no model answer. A shell block of the section that this test does not run fails
it. The stand-ins for what a single machine lacks (temporary folders for /srv, /etc/jupyter and the homes,
127.0.0.1 and free ports) are listed in tests/test_hub.py, which drives the same cycle on a real
JupyterHub in the browser. Replaces tests/test_exchange.py (the exchange through nbgrader's classes, on a
stand-in chapter).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from course_lib.grading.feedback import html_text
from test_hub import (CHAPTER, COURSE, EXPECTED, WRITTEN_ID, Site, _background, _student_lines, answer,
                      assert_sandboxed, block_with, blocks, check_page, gradebook_scores)

pytestmark = pytest.mark.slow


def test_documented_commands(tmp_path):
    site = Site(tmp_path)
    run_blocks: list[str] = []

    def run(block: str, home: Path) -> str:
        run_blocks.append(block)
        return site.run(block, home)

    site.setup_course()
    run_blocks += [block_with("bash", "/srv/nbgrader/exchange"), block_with("bash", "course-folder")]
    run(block_with("bash", "generate_assignment", "release_assignment"), site.grader)
    assert (site.exchange / COURSE / "outbound" / CHAPTER / f"{CHAPTER}.ipynb").is_file()

    student_block = block_with("bash", "fetch_assignment", "submit")
    run_blocks.append(student_block)
    fetch, *rest = _student_lines(student_block)
    homes = {}
    for student in EXPECTED:
        home = homes[student] = site.student_home(student)
        site.run(fetch, home)  # the block's first line, then the student answers, then the rest as written
        answer(home / CHAPTER / f"{CHAPTER}.ipynb", student)
        for line in rest:
            out = site.run(line, home)
            if "validate" in line and student == "alice":
                assert "Success! Your notebook passes all the tests." in out, out[-2000:]

    dask_block = block_with("bash", "dask scheduler", "dask worker")
    run_blocks.append(dask_block)
    scheduler, worker = (line.split("#")[0].strip() for line in _student_lines(dask_block))
    grade_block = block_with("bash", "nbgrader collect", "python -m course_lib grade")
    with _background(scheduler, site, site.grader, tmp_path / "scheduler.log"), \
            _background(worker, site, site.grader, tmp_path / "worker.log"):
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{site.dask_port}", timeout=120) as client:
            client.wait_for_workers(1, timeout=180)
        out = run(grade_block, site.grader)
    assert sorted(p.name for p in (site.course / "submitted").iterdir()) == sorted(EXPECTED), out[-2000:]
    for student, expected in EXPECTED.items():
        scores = gradebook_scores(site.course, student)
        assert {k: scores[k] for k in expected if k != WRITTEN_ID} == \
               {k: v for k, v in expected.items() if k != WRITTEN_ID}, (student, scores, out[-3000:])
    assert_sandboxed(site.course)

    run(block_with("bash", "generate_feedback", "release_feedback"), site.grader)
    fetch_feedback = block_with("bash", "fetch_feedback")
    run_blocks.append(fetch_feedback)
    for student, home in homes.items():
        site.run(fetch_feedback, home)
        pages = sorted((home / CHAPTER / "feedback").rglob(f"{CHAPTER}.html"))
        assert len(pages) == 1, (student, pages)
        page = pages[0].read_text(encoding="utf-8")
        check_page(page, student)
        # nobody graded alice's written answer in this test: her page says it waits (bob left his as released)
        assert ("This written answer is graded by hand" in html_text(page)) == (student == "alice"), student

    missing = [b for b in blocks("bash") if b not in run_blocks]
    assert not missing, f"shell blocks of the hub section that no test runs: {missing}"


