"""Prometheus metrics across gunicorn workers.

With one worker, `/metrics` reads the worker's own registry. With several, each request lands on
one worker, so per-process counters would make `/metrics` answer with whichever worker served the
scrape. prometheus_client's multiprocess mode fixes that: every worker writes its values to files
in PROMETHEUS_MULTIPROC_DIR and `/metrics` aggregates them. The directory must be set before
prometheus_client is first imported (in the gunicorn master, before the fork) and must start
empty, so the master prepares it here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_FILE_PATTERNS = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def prepare(workers: int) -> Path | None:
    """Set up the shared directory when `workers` > 1; returns it if this call created it."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for pattern in _FILE_PATTERNS:  # stale values of an earlier run would be summed in
            for f in path.glob(pattern):
                f.unlink()
        return None
    if workers <= 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="ml-server-metrics-"))
    os.environ[ENV] = str(created)
    return created


def remove(created: Path | None) -> None:
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """gunicorn `child_exit` hook: drop the live-gauge files of a worker that is gone."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
