"""The deploy hook's HTTP service: liveness and readiness, and jobs only for a token holder,
with bounded waits."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings
from collector.service.hook import create_hook_app
from helpers import LiveServer, serve_model
from test_collector.service.conftest import TOKEN
from test_collector.service.test_gates import DEADLINE_S, _argo


def test_probes(gate_app):
    assert requests.get(f"{gate_app.url}/livez", timeout=30).status_code == 200
    deadline = time.monotonic() + DEADLINE_S
    while requests.get(f"{gate_app.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_readiness_says_503_when_the_database_is_gone(tmp_path, big_data):
    from collector.storage import store

    engine = store.make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path, opts=CollectOptions())
    app = create_hook_app(engine=engine, settings=settings, token=None, enabled=False)
    with LiveServer(app) as srv:
        assert requests.get(f"{srv.url}/readyz", timeout=30).status_code == 503
        assert requests.get(f"{srv.url}/livez", timeout=30).status_code == 200
    assert not Path(tmp_path / "no").exists()


def test_only_a_token_holder_sees_or_waits_on_jobs_and_waits_are_bounded(gate_app, models, monkeypatch):
    """Anonymous /jobs and /jobs/ID: 401. ?wait=1: at most MAX_WAITS_PER_CALLER per caller and
    MAX_WAITERS in all (429 beyond), each for at most WAIT_MAX_S (then 202: ask again)."""
    from concurrent.futures import ThreadPoolExecutor

    from collector.service import hook

    monkeypatch.setattr(hook, "WAIT_MAX_S", 2.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve_model(models["v1"]) as base, serve_model(models["broken"], predict_delay=1.0) as cand:
        job = _argo(gate_app, base.url, cand.url)[0]["job"]
        assert requests.get(f"{gate_app.url}/jobs", timeout=30).status_code == 401
        assert requests.get(f"{gate_app.url}/jobs/{job}?wait=1", timeout=30).status_code == 401
        n = hook.MAX_WAITS_PER_CALLER + 3
        with ThreadPoolExecutor(n) as pool:
            codes = list(pool.map(lambda _: requests.get(f"{gate_app.url}/jobs/{job}?wait=1", headers=auth,
                                                         timeout=60).status_code, range(n)))
        assert codes.count(429) >= 3 and set(codes) <= {202, 429, 200}, codes
        assert requests.get(f"{gate_app.url}/jobs", headers=auth, timeout=30).json()["jobs"][0]["id"] == job
