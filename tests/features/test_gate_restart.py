"""The gate service survives a SIGKILL mid-job: a new `serve` resumes the job from the database,
the verdict is the one an uninterrupted run gives, and no prediction is stored twice. While it
is down and coming back, the status answers non-2xx or `running`, never a wrong verdict."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from collector.storage.schema import gate_jobs, predictions
from helpers import engine_for, free_port, run_cli, serve_model, write_color_model

TOKEN = "r" * 24
DEADLINE_S = 300


def _serve(db: str, data: Path, tmp: Path, port: int) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "data-collector")
    log = open(tmp / f"serve-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([exe, "--db", db, "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--allowed-hosts", "127.0.0.1", "--test-data", str(data), "--batch-size", "4",
                             "--report-dir", str(tmp / "reports")],
                            env={**os.environ, "HOOK_TOKEN": TOKEN}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _ask(port: int, base: str, cand: str) -> tuple[int | None, dict | None, float]:
    """One Argo poll: (status or None when nothing answers, body, seconds)."""
    t0 = time.perf_counter()
    try:
        r = requests.get(f"http://127.0.0.1:{port}/gates/verdict", params={"baseline": base, "candidate": cand},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    except requests.ConnectionError:
        return None, None, time.perf_counter() - t0
    return r.status_code, (r.json() if r.status_code == 200 else None), time.perf_counter() - t0


def _count(db: str, what) -> int:
    with engine_for(db).connect() as conn:
        return conn.execute(select(func.count()).select_from(what)).scalar_one()


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_sigkill_mid_job_resumes_to_the_same_verdict(db_url, tmp_path, big_data):
    labels = ["red", "green", "blue"]
    v1 = write_color_model(tmp_path / "v1", labels, version="1")
    broken = write_color_model(tmp_path / "v2", labels, version="2", swap=("green", "blue"))
    reference_db = f"sqlite:///{tmp_path / 'reference.db'}"
    with serve_model(v1) as base, serve_model(broken, predict_delay=0.5) as cand:
        r = run_cli("--db", reference_db, "gate", "--test-data", str(big_data), "--json", base.url, cand.url)
        import json

        reference = json.loads(r.stdout)
        assert reference["verdict"] == "fail"

        port = free_port()
        first = _serve(db_url, big_data, tmp_path, port)
        seen, times = [], []
        try:
            deadline = time.monotonic() + DEADLINE_S
            # Mid-job: the first write batch is stored (after 1 s); the slow candidate needs 3 s or more.
            while _count(db_url, predictions) == 0:
                code, body, took = _ask(port, base.url, cand.url)
                if code == 200:
                    seen.append(body["verdict"])
                    times.append(took)
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
            stored_at_kill = _count(db_url, predictions)
            down = [_ask(port, base.url, cand.url)[0] for _ in range(3)]
            assert down == [None] * 3  # nothing answers: the controller sees an error, not a verdict
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        second = _serve(db_url, big_data, tmp_path, port)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:
                code, body, took = _ask(port, base.url, cand.url)
                assert code in (None, 200, 503), code
                if code == 200:
                    seen.append(body["verdict"])
                    times.append(took)
                    if body["verdict"] != "running":
                        break
                assert time.monotonic() < deadline, f"no verdict after the restart: {seen[-3:]}"
                time.sleep(0.1)
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(60)
    assert set(seen[:-1]) == {"running"}  # never a verdict before the end
    assert body["verdict"] == reference["verdict"] and body["regressed_classes"] == reference["regressed_classes"]
    with engine_for(db_url).connect() as conn:
        (job,) = conn.execute(select(gate_jobs)).mappings().all()
        n, distinct = conn.execute(select(func.count(), func.count(func.distinct(
            predictions.c.model_id * 100000 + predictions.c.image_id)))).one()
    assert job["attempts"] == 2 and job["state"] == "done"  # resumed once, by the second process
    assert n == distinct == 2 * 93 and n > stored_at_kill > 0
    print(f"\nrestart: {stored_at_kill} of {n} predictions stored at SIGKILL; {len(times)} polls answered, "
          f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")


def test_sigterm_lets_the_running_job_finish_then_exits(tmp_path, big_data):
    labels = ["red", "green", "blue"]
    v1 = write_color_model(tmp_path / "v1", labels, version="1")
    broken = write_color_model(tmp_path / "v2", labels, version="2", swap=("green", "blue"))
    db = f"sqlite:///{tmp_path / 'term.db'}"
    port = free_port()
    with serve_model(v1) as base, serve_model(broken, predict_delay=0.3) as cand:
        proc = _serve(db, big_data, tmp_path, port)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while _count(db, predictions) == 0:  # the job runs: its first answers are stored
                _ask(port, base.url, cand.url)
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(120) == 0  # a clean exit, after the job
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    with engine_for(db).connect() as conn:
        (job,) = conn.execute(select(gate_jobs)).mappings().all()
    assert (job["state"], job["verdict"], job["attempts"]) == ("done", "fail", 1)
    assert _count(db, predictions) == 2 * 93
