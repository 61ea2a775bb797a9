"""A graceful stop that fits Kubernetes: on SIGTERM `serve` (gunicorn) fails its readiness first
while it still answers the controllers, then hands its running gate job back (queued) and its
whole process tree exits within 20 s (DRAIN_S + GRACEFUL_S = 15 s by construction); a new process
finishes the job. The manifests' grace period and probes match those numbers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests
import yaml
from sqlalchemy import select
from test_gate_restart import TOKEN, _serve

from collector.service import wsgi
from collector.storage.schema import gate_jobs
from helpers import engine_for, free_port, run_cli, serve_model, write_color_model

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 300


def _get(url: str, **kw):
    try:
        return requests.get(url, timeout=30, **kw)
    except requests.ConnectionError:
        return None


def _job_state(db: str) -> str | None:
    engine = engine_for(db)
    with engine.connect() as conn:
        state = conn.execute(select(gate_jobs.c.state)).scalar()
    engine.dispose()
    return state


def test_sigterm_fails_readiness_first_hands_the_job_back_and_exits_in_time(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'stop.db'}"
    assert run_cli("--db", db, "db", "upgrade").exit_code == 0
    labels = ["red", "green", "blue"]
    v1 = write_color_model(tmp_path / "v1", labels, version="1")
    v2 = write_color_model(tmp_path / "v2", labels, version="2", swap=("green", "blue"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # The candidate's 24 requests (93 images in 4s) take 4 s each: with the 8 in flight of two models,
    # 12 s of work or more, longer than the drain, so the job is still running when it ends.
    with serve_model(v1) as base, serve_model(v2, predict_delay=4.0) as cand:
        params = {"baseline": base.url, "candidate": cand.url}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(db, big_data, tmp_path, port)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while (r := _get(f"{url}/readyz")) is None or r.status_code != 200:
                assert time.monotonic() < deadline, "serve did not become ready"
                time.sleep(0.2)
            assert _get(f"{url}/gates/verdict", params=params, headers=auth).status_code == 200
            while _job_state(db) != "running":  # the slow candidate keeps the job running
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            seen = []
            while proc.poll() is None:
                ready = _get(f"{url}/readyz")
                poll = _get(f"{url}/gates/verdict", params=params, headers=auth)
                seen.append((None if ready is None else ready.status_code, None if poll is None else poll.status_code))
                time.sleep(0.2)
                assert time.monotonic() - t0 < 60, f"still running after 60 s: {seen[-5:]}"
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        # Readiness failed while the controllers' endpoint still answered (not "connection refused").
        assert (503, 200) in seen, seen
        assert seen[0][0] in (200, 503) and seen[0][1] == 200, seen[:3]
        assert took < 20, f"the process tree took {took:.1f} s to exit"
        assert _job_state(db) == "queued"  # handed back, not lost
        print(f"SIGTERM to exit: {took:.1f} s; answers during the drain: {seen}")
        second = _serve(db, big_data, tmp_path, port)  # the next process finishes the job
        try:
            deadline = time.monotonic() + DEADLINE_S
            while (r := _get(f"{url}/gates/verdict", params=params, headers=auth)) is None or \
                    r.json()["verdict"] == "running":
                assert time.monotonic() < deadline, "the job was not finished by the next process"
                time.sleep(0.5)
            assert r.json()["verdict"] == "fail"
        finally:
            second.terminate()
            second.wait(60)


def test_the_manifests_give_the_stop_its_time():
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/base/collector.yaml").read_text()))
    (hook,) = [d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "data-collector-hook"]
    spec = hook["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= wsgi.DRAIN_S + wsgi.GRACEFUL_S + 5
    probe = spec["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"
    # Readiness must be seen failing within the drain.
    assert probe["periodSeconds"] * probe.get("failureThreshold", 3) < wsgi.DRAIN_S
