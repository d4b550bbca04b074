"""The Dask engine (course_lib/grading/engine.py) and the warm template (warm.py).

- A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, as a cluster beside a hub would run
  them, give the grades of plain nbgrader and of the LocalCluster run, cell by cell
  (test_grading_batch.py compares plain nbgrader, 1 worker and a LocalCluster of 2 processes).
- A Dask cluster object given from Python is used as it is (and left open), and a worker that dies while
  grading is Dask's business: the task runs again on a new worker; when its workers keep dying, the
  submission gets a row saying so.
- The child forked from the template holds no descriptor of the template or the worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from distributed import WorkerPlugin
from test_grading_batch import CHAPTER, GRADABLE, PLAIN, _answer, course, graded, plain_nbgrader, runs  # noqa: F401

from course_lib.grading import batch

pytestmark = pytest.mark.slow


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as sink:
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"})


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` and ``dask worker --nworkers 2`` on 127.0.0.1; stopped (process groups) after."""
    folder = tmp_path_factory.mktemp("dask")
    bindir = Path(sys.executable).parent
    address_file = folder / "scheduler.json"
    scheduler = _start([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--scheduler-file", str(address_file)], folder / "scheduler.log")
    worker = None
    try:
        deadline = time.monotonic() + 90
        while not address_file.is_file() and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.2)
        assert address_file.is_file(), (folder / "scheduler.log").read_text(errors="replace")
        address = json.loads(address_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        worker = _start([str(bindir / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                         "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(folder / "work")],
                        folder / "worker.log")
        yield address
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)


def test_a_dask_scheduler_and_workers_give_plain_nbgraders_grades(graded, runs, plain_nbgrader, dask_cluster,
                                                                   tmp_path):
    local, _ = runs
    run = batch.grade_submissions(CHAPTER, graded["submissions"], out=tmp_path / "out", scheduler=dask_cluster,
                                  cell_timeout=15, source_root=graded["src"], progress=False)
    assert run.workers == 2
    assert [r["student"] for r in run.rows] == [r["student"] for r in local.rows]
    for here, there in zip(run.rows, local.rows):
        assert (here["cells"], here["score"], here["status"]) == (there["cells"], there["score"], there["status"])
    rows = {r["student"]: r for r in run.rows}
    for student, plain in plain_nbgrader.items():
        assert rows[student]["cells"] == plain["cells"], student
    assert run.gradebook_scores() == run.scores


class KillOn(WorkerPlugin):
    """A Dask worker plugin that kills its worker when the task of one student starts, while the file
    ``marker`` exists (a worker lost mid-task); it removes the file first unless it reads ``always``."""

    def __init__(self, student: str, marker: str):
        self.student, self.marker = student, marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and f"-{self.student}-" in str(key) and os.path.exists(self.marker):
            with open(self.marker) as fh:
                always = fh.read() == "always"
            if not always:
                os.remove(self.marker)
            os._exit(1)


def test_a_cluster_object_is_used_and_a_dead_worker_is_dasks_business(course, tmp_path):
    from distributed import Client, LocalCluster

    src, rel = course
    subs, alone = tmp_path / "subs", tmp_path / "alone"
    subs.mkdir()
    alone.mkdir()
    for name in ("alice", "victim"):
        nbformat.write(_answer(rel, GRADABLE["alice"][0]), subs / f"{name}.ipynb")
    nbformat.write(_answer(rel, GRADABLE["alice"][0]), alone / "victim.ipynb")
    marker = tmp_path / "kill"
    common = dict(cell_timeout=15, source_root=src, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.register_plugin(KillOn("victim", str(marker)), name="kill-victim")
            # the worker dies once while grading the victim: Dask starts a new one and runs the task again
            marker.write_text("once")
            run = batch.grade_submissions(CHAPTER, subs, out=tmp_path / "out", cluster=cluster, **common)
            assert not marker.exists(), "the worker was never killed: this test proves nothing"
            assert {r["student"]: (r["status"], r["score"]) for r in run.rows} == {
                "alice": ("graded", 3.0), "victim": ("graded", 3.0)}
            # a task whose workers keep dying: Dask gives up (KilledWorker) and the row says so
            client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
            marker.write_text("always")
            lost = batch.grade_submissions(CHAPTER, alone, out=tmp_path / "out", cluster=cluster, **common)
            assert client.status == "running"  # a cluster given from Python stays open
    assert lost.graded_now == ["victim"]  # the rows hold the class: alice, graded before, keeps hers
    row = next(r for r in lost.rows if r["student"] == "victim")
    assert row["status"].startswith("error: the grading process died (KilledWorker"), row
    assert row["score"] == 0.0 and lost.gradebook_scores() == {"alice": 3.0, "victim": 0.0}


def test_the_forked_child_holds_no_descriptor_but_its_own(tmp_path):
    """A child of the template sees only its socket and its standard descriptors (no template control
    socket, no worker log, nothing of another child)."""
    from course_lib.grading.warm import Template, _template_env

    template = Template(_template_env(), tmp_path / "template.log")
    try:
        first, second = template.spawn(), template.spawn()
        try:
            for child in (first, second):
                deadline = time.monotonic() + 20  # the child closes the rest first thing after the fork
                while True:
                    fds = sorted(int(n) for n in os.listdir(f"/proc/{child.pid}/fd"))
                    kept = {fd: os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in fds if fd > 2}
                    if len(kept) <= 1 or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                assert len(kept) == 1 and next(iter(kept.values())).startswith("socket:"), (child.pid, kept)
                ours = os.readlink(f"/proc/self/fd/{child.fd}")
                assert ours != next(iter(kept.values()))  # the other end of its own pair
                assert os.getsid(child.pid) == child.pid  # a session of its own: killed as a group
        finally:
            first.kill()
            second.kill()
    finally:
        template.close()
