"""Automatic evaluation of deployments: `watch` polling and the deploy hook."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings
from collector.service.hook import HostPolicy, create_hook_app
from collector.storage import store
from collector.storage.schema import runs
from helpers import LiveServer, Switch, run_cli, write_color_model


def n_runs(db, status: str | None = None):
    engine = store.make_engine(db)
    q = select(func.count()).select_from(runs)
    if status:
        q = q.where(runs.c.status == status)
    try:
        with engine.connect() as c:
            return c.execute(q).scalar_one()
    finally:
        engine.dispose()


def test_watch_evaluates_each_new_fingerprint_once(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    switch = Switch(v1)
    reports = tmp_path / "reports"
    with LiveServer(switch) as srv:
        def redeploy():
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if n_runs(db, "completed") >= 1:  # redeploy between evaluations, not during one
                        break
                except Exception:  # table not there yet
                    pass
                time.sleep(0.05)
            switch.set(v2)
        t = threading.Thread(target=redeploy)
        t.start()
        r = run_cli("--db", db, "watch", srv.url, "--interval", "0.3", "--cycles", "8",
                    "--test-data", str(big_data), "--report-dir", str(reports))
        t.join()
    assert r.exit_code == 0, r.output
    assert n_runs(db) == 2
    assert "verdict no-baseline" in r.output and "verdict regression regressed: green" in r.output
    assert r.output.count("evaluated on") == 2
    assert len(list(reports.glob("*.html"))) == 2


def _hook_with_two_versions(tmp_path, big_data):
    """A hook app (SQLite, token s3cret-token, 127.0.0.1 allowed), the auth header, a Switch serving
    v1 of a colour model, v2 (green broken) and the database URL."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = store.make_engine(db)
    store.ensure_schema(engine)
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path / "rep", opts=CollectOptions())
    hook = create_hook_app(engine=engine, settings=settings, token="s3cret-token",
                           allowed=HostPolicy(["127.0.0.1"])).test_client()
    return hook, {"Authorization": "Bearer s3cret-token"}, Switch(v1), v2, db


def test_deploy_hook(tmp_path, big_data):
    hook, auth, switch, v2, db = _hook_with_two_versions(tmp_path, big_data)
    with LiveServer(switch) as srv:
        assert hook.post("/hooks/deployed", json={"url": srv.url}).status_code == 401
        assert hook.post("/hooks/deployed", json={"u": 1}, headers=auth).status_code == 400
        assert hook.post("/hooks/deployed", data="x", headers=auth).status_code == 400
        r = hook.post("/hooks/deployed", json={"url": "file:///etc/passwd"}, headers=auth)
        assert r.status_code == 400 and "http" in r.get_json()["error"]
        r = hook.post("/hooks/deployed?wait=1", json={"url": srv.url}, headers=auth)
        assert r.status_code == 200 and r.get_json()["verdict"] == "no-baseline" and r.get_json()["evaluated"]
        r = hook.post("/hooks/deployed?wait=1", json={"url": srv.url}, headers=auth)
        assert r.get_json()["evaluated"] is False and n_runs(db) == 1
        switch.set(v2)
        r = hook.post("/hooks/deployed?wait=1", json={"url": srv.url}, headers=auth).get_json()
        assert r["verdict"] == "regression" and r["regressed_classes"] == ["green"] and r["evaluated"]
        assert r["report"].endswith(".html") and n_runs(db) == 2
    r = hook.post("/hooks/deployed?wait=1", json={"url": "http://127.0.0.1:9"}, headers=auth)
    assert r.status_code == 502 and r.get_json()["verdict"] == "error"


def test_the_hook_answers_at_once_and_the_job_says_how_it_went(tmp_path, big_data):
    """202 with a job id at once; GET /jobs/ID: queued or running, then done with the verdict and
    links into the web view; ?wait=1 on the job gives the synchronous answer."""
    hook, auth, switch, v2, _ = _hook_with_two_versions(tmp_path, big_data)
    with LiveServer(switch) as srv:
        assert hook.post("/hooks/deployed?wait=1", json={"url": srv.url}, headers=auth).status_code == 200
        switch.set(v2)
        slow = threading.Event()
        switch.before = slow.wait  # the model server holds every answer until the test lets it go
        r = hook.post("/hooks/deployed", json={"url": srv.url}, headers=auth)
        assert r.status_code == 202
        job = r.get_json()
        assert job["state"] in ("queued", "running") and r.headers["Location"] == job["status_url"]
        assert hook.get(job["status_url"], headers=auth).get_json()["state"] in ("queued", "running")
        assert hook.get(job["status_url"]).status_code == 401 and hook.get("/jobs").status_code == 401  # no token
        slow.set()
        final = _waited(hook, job["status_url"] + "?wait=1", auth)
        assert final["verdict"] == "regression" and final["regressed_classes"] == ["green"]
        status = hook.get(job["status_url"], headers=auth).get_json()
        assert status["state"] == "done" and status["verdict"] == "regression"
        assert status["links"]["model"] == f"/models/{final['fingerprint']}"
        assert status["links"]["compare"] == f"/compare?baseline={final['baseline']}&candidate={final['fingerprint']}"
        assert [j["id"] for j in hook.get("/jobs", headers=auth).get_json()["jobs"]][0] == job["id"]
    assert hook.get("/jobs/" + "0" * 32, headers=auth).status_code == 404


def _waited(hook, url: str, auth: dict) -> dict:
    """`?wait=1` answers 202 after its bounded wait while the job runs: ask again, to a deadline."""
    deadline = time.monotonic() + 300
    while True:
        r = hook.get(url, headers=auth)
        if r.status_code != 202:
            return r.get_json()
        assert time.monotonic() < deadline, "the job did not end"
