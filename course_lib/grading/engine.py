"""The grading engine, the client's side: the Dask cluster of a batch, and its warm-up.

Where the workers come from (``grade_submissions`` / ``python -m course_lib grade``):

- nothing given: a ``LocalCluster`` of ``--workers`` processes on this machine (one thread each), made
  for the batch and closed after it;
- ``--scheduler tcp://host:8786``: the workers of a running Dask cluster (``dask scheduler`` and
  ``dask worker`` on any machines that have this repository installed);
- ``cluster=`` from Python: any Dask cluster object (``LocalCluster``, ``SSHCluster``, a Kubernetes or
  batch-queue cluster); it stays open.

What Dask does: places tasks on workers, moves the chapter (packed once and broadcast) and each
submission (its bytes) to a worker and the result back, so workers need no shared file system; replaces a
worker that died and runs its task again elsewhere (``distributed.scheduler.allowed-failures``, then the
row says the grading process died); reports progress as tasks complete.

What a worker does with a task is :mod:`course_lib.grading.worker` (``grade_task``, and ``warm`` which
:class:`Engine` runs on every worker first): the only module of the worker's side that the client imports.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading

from course_lib.grading import worker

__all__ = ["Engine", "EngineError"]


class EngineError(RuntimeError):
    """The Dask cluster could not be started or reached."""


class Engine:
    """The Dask client of one batch: a LocalCluster of its own, or a given scheduler address or cluster.

    :meth:`start` connects in a background thread (and starts every worker's warm template), so that
    the cluster comes up while the chapter is built; :meth:`client` waits for it.
    """

    def __init__(self, *, workers: int, scheduler: str | None = None, cluster=None,
                 env: dict | None = None, sandbox: bool = True):
        if scheduler is not None and cluster is not None:
            raise ValueError("give a scheduler address or a cluster object, not both")
        if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler and ":" not in scheduler):
            raise ValueError(f"scheduler must be an address such as tcp://127.0.0.1:8786, got {scheduler!r}")
        self.workers, self.scheduler, self.cluster = workers, scheduler, cluster
        self.env, self.sandbox = dict(env or {}), sandbox
        self._own = None
        self._client = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "Engine":
        self._thread = threading.Thread(target=self._connect, name="course-grading-engine", daemon=True)
        self._thread.start()
        return self

    def _connect(self) -> None:
        try:
            from distributed import Client, LocalCluster

            if self.cluster is not None:
                self._client = Client(self.cluster, set_as_default=False)
            elif self.scheduler is not None:
                self._client = Client(self.scheduler, set_as_default=False, timeout="30s")
                self._client.wait_for_workers(1, timeout=120)
            else:
                # dashboard_address ":0": the scheduler's HTTP server on a free port. With None it still
                # tries 8787 and prints "Port 8787 is already in use" whenever another cluster runs
                self._own = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", silence_logs=logging.ERROR)
                self._client = Client(self._own, set_as_default=False)
            if self.sandbox:  # every worker's template, started while the client builds the chapter
                workers = list(self._client.scheduler_info(n_workers=-1)["workers"])
                self._client.gather([self._client.submit(worker.warm, self.env, workers=[w], allow_other_workers=False, pure=False,
                                          key=f"course-warm-{i}-{os.urandom(4).hex()}")
                      for i, w in enumerate(workers)])
        except BaseException as err:  # noqa: BLE001 - raised again in client()
            self._error = err

    def client(self):
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise EngineError(f"could not start or reach the grading cluster: {type(self._error).__name__}: "
                               f"{self._error}") from self._error
        return self._client

    def worker_count(self) -> int:
        return len(self.client().scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(Exception):
            if self._client is not None:
                self._client.close()
        with contextlib.suppress(Exception):
            if self._own is not None:
                self._own.close()
