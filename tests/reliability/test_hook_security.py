"""The deploy hook as an attacker meets it: auth, host allowlist, no redirects or echoes,
per-URL queueing with a bound, malformed bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask, jsonify, redirect
from hostile_server import HostileServer

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings
from collector.service.hook import HostPolicy, create_hook_app
from collector.storage import store
from helpers import LiveServer, make_test_data, serve_model

TOKEN = "a-hook-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def hook_factory(tmp_path):
    data = make_test_data(tmp_path / "td")
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hook.db'}")
    store.ensure_schema(engine)

    def make(*, allowed=("127.0.0.1",), max_jobs=8, timeout=60.0):
        opts = CollectOptions(timeout=timeout, retries=0, echo_errors=False)
        settings = DeploySettings(test_dir=data, report_dir=tmp_path / "reports", opts=opts)
        return create_hook_app(engine=engine, settings=settings, token=TOKEN, allowed=HostPolicy(list(allowed)),
                               max_jobs=max_jobs)
    return make


def _hook_cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOK_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "collector.cli", "--db", "sqlite:///:memory:", "hook", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_hook_does_not_start_without_a_real_token():
    r = _hook_cli()
    assert r.returncode == 2 and "set HOOK_TOKEN" in r.stderr and "Traceback" not in r.stderr
    for weak in ("short", "change-me-hook-token"):
        r = _hook_cli(env_extra={"HOOK_TOKEN": weak})
        assert r.returncode == 2 and "too weak" in r.stderr
    r = _hook_cli("--no-auth", "--host", "0.0.0.0")
    assert r.returncode == 2 and "only on a loopback address" in r.stderr
    r = _hook_cli("--no-auth", env_extra={"HOOK_TOKEN": TOKEN})
    assert r.returncode == 2 and "choose one" in r.stderr


def test_only_a_bearer_token_is_accepted(hook_factory):
    c = hook_factory().test_client()
    body = {"url": "http://127.0.0.1:9"}
    assert c.post("/hooks/deployed", json=body).status_code == 401
    assert c.post("/hooks/deployed", json=body, headers={"Authorization": TOKEN}).status_code == 401
    assert c.post("/hooks/deployed", json=body, headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    assert c.post("/hooks/deployed", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/hooks/deployed?wait=1", json=body, headers=AUTH).status_code == 502  # allowed; nobody there


def _counting_server():
    app = Flask(__name__)
    hits = []

    @app.route("/<path:p>", methods=["GET", "POST"])
    def anything(p):
        hits.append(p)
        return jsonify({"error": "SECRET-BODY-OF-THE-TARGET"}), 500

    return app, hits


def test_hosts_off_the_allowlist_are_never_contacted(hook_factory):
    app, hits = _counting_server()
    with LiveServer(app) as target:
        port = target.port
        c = hook_factory(allowed=("ml_original", "10.0.0.0/8")).test_client()
        for url in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}",
                    f"http://2130706433:{port}"):  # the last: 127.0.0.1 as one decimal number
            r = c.post("/hooks/deployed", json={"url": url}, headers=AUTH)
            assert r.status_code in (400, 403), (url, r.get_json())
        assert hits == []
    metadata = HostPolicy(["metadata.internal"], resolve=lambda h, p, proto=0: [(2, 1, 6, "", ("169.254.169.254", p))])
    with pytest.raises(ValueError, match="link-local or metadata address"):
        metadata.check("http://metadata.internal/latest")
    listed = HostPolicy(["ml_original"], resolve=lambda h, p, proto=0: [(2, 1, 6, "", ("10.1.2.3", p))])
    listed.check("http://ml_original:8080")  # a listed name, resolving to an ordinary address


def test_no_redirects_and_no_echo_of_the_target(hook_factory):
    app, hits = _counting_server()

    @app.get("/metadata")
    def moved():
        hits.append("metadata")
        return redirect("/elsewhere/metadata", 302)

    with LiveServer(app) as target:
        c = hook_factory().test_client()
        r = c.post("/hooks/deployed?wait=1", json={"url": target.url}, headers=AUTH)
        assert r.status_code == 502 and r.get_json()["error"] == "could not evaluate URL: not a model server"
        assert hits == ["metadata"]  # the redirect was not followed
        hits.clear()
        r = c.post("/hooks/deployed?wait=1", json={"url": target.url + "/x"}, headers=AUTH)  # answers 500, a body
        assert "SECRET-BODY" not in r.get_data(as_text=True)
        job = r.get_json()["job"]
        assert "SECRET-BODY" not in c.get(f"/jobs/{job}", headers=AUTH).get_data(as_text=True)  # nor in its status


def test_malformed_bodies_are_400(hook_factory):
    c = hook_factory().test_client()
    deep = b'{"url": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # under the 64 kB body limit
    for body in (deep, b"not json", b"[]", b'{"url": 5}', json.dumps({"url": "http://a\r\nHost: evil:80/"}).encode(),
                 json.dumps({"url": "http://h\x00x:80"}).encode(), json.dumps({"url": "http://h:99999"}).encode()):
        r = c.post("/hooks/deployed", data=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400, (body[:40], r.status_code, r.get_data(as_text=True)[:200])


def _until(condition, what: str, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {deadline_s} s"
        time.sleep(0.05)


def _states(gates, url: str) -> list[str]:
    """The states of the hook's jobs for `url`, newest first (from the database)."""
    return [j["state"] for j in gates.recent(50) if j["url"] == url and j["kind"] == "hook"]


def test_requests_for_one_url_join_and_the_queue_is_bounded(hook_factory, tmp_path):
    app = hook_factory(max_jobs=2, timeout=8.0)
    gates = app.extensions["gate_service"]
    with LiveServer(app) as hook, HostileServer("hangs after the request") as hanging:
        def post(url: str):
            return requests.post(hook.url + "/hooks/deployed?wait=1", json={"url": url}, headers=AUTH, timeout=300)

        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(post, hanging)
            _until(lambda: _states(gates, hanging) == ["running"], "first job running")
            waiting = [pool.submit(post, hanging) for _ in range(2)]  # both join one waiting job
            _until(lambda: _states(gates, hanging) == ["queued", "running"], "second job waiting")
            over = post("http://127.0.0.1:9")  # a third job: over the bound of 2
            assert over.status_code == 429 and over.headers.get("Retry-After") == "30"
            results = [f.result() for f in [first, *waiting]]
    assert [r.status_code for r in results] == [502, 502, 502]
    assert all(r.json()["error"] == "could not evaluate URL: no answer" for r in results)
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hook.db'}")
    with engine.connect() as c:
        from sqlalchemy import func, select

        from collector.storage.schema import runs
        assert c.execute(select(func.count()).select_from(runs)).scalar_one() == 2  # three requests, two jobs


def test_an_honest_deploy_is_not_queued_behind_a_hanging_one(hook_factory, color_model):
    app = hook_factory(timeout=6.0)
    gates = app.extensions["gate_service"]
    order: list[str] = []
    with LiveServer(app) as hook, HostileServer("hangs after the request") as hanging, \
            serve_model(color_model) as honest:
        def post(url: str, tag: str):
            r = requests.post(hook.url + "/hooks/deployed?wait=1", json={"url": url}, headers=AUTH, timeout=300)
            order.append(tag)
            return r

        with ThreadPoolExecutor(4) as pool:
            slow = [pool.submit(post, hanging, "hanging") for _ in range(3)]
            _until(lambda: "running" in _states(gates, hanging), "hanging job running")
            fast = pool.submit(post, honest.url, "honest")
            assert fast.result().status_code == 200 and fast.result().json()["evaluated"]
            assert [f.result().status_code for f in slow] == [502, 502, 502]
    assert order[0] == "honest", order  # answered while the hanging server's jobs (2 x 6 s) still ran
