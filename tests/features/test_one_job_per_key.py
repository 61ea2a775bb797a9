"""One gate job per request, whatever the number of processes and threads: 50 identical Argo
requests at once, spread over two `serve` processes sharing one database, make one job (the
partial unique index over open jobs, migration 0006), three rounds, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select
from test_gate_restart import TOKEN, _serve

from collector.storage.schema import gate_jobs
from helpers import engine_for, free_port, run_cli, serve_model, write_color_model

DEADLINE_S = 300


def _ask(port: int, params: dict) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/gates/verdict", params=params,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120).status_code
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_fifty_identical_requests_on_two_processes_make_one_job(db_url, tmp_path, test_data):
    labels = ["red", "green", "blue"]
    v1 = write_color_model(tmp_path / "v1", labels, version="1")
    v2 = write_color_model(tmp_path / "v2", labels, version="2")
    assert run_cli("--db", db_url, "db", "upgrade").exit_code == 0
    ports = [free_port(), free_port()]
    procs = [_serve(db_url, test_data, tmp_path, p) for p in ports]
    try:
        with serve_model(v1) as base, serve_model(v2, predict_delay=0.3) as cand:
            deadline = time.monotonic() + DEADLINE_S
            for p in ports:  # both processes answer
                while _ask(p, {"candidate": "http://127.0.0.1:1/", "revision": "warm-up"}) is None:
                    assert time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.2)
            for rnd in range(3):
                params = {"baseline": base.url, "candidate": cand.url, "revision": f"round-{rnd}"}
                with ThreadPoolExecutor(50) as pool:
                    codes = list(pool.map(lambda i, p=params: _ask(ports[i % 2], p), range(50)))
                assert codes.count(200) == 50, codes
                engine = engine_for(db_url)
                with engine.connect() as conn:
                    jobs = conn.execute(select(gate_jobs.c.id, gate_jobs.c.candidate)
                                        .where(gate_jobs.c.candidate.like(f"{cand.url}%"))).all()
                engine.dispose()
                assert len(jobs) == rnd + 1, f"round {rnd}: {len(jobs)} jobs for {rnd + 1} requests"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except Exception:  # noqa: BLE001
                proc.kill()
