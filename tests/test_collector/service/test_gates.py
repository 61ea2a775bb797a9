"""gates.py: gate jobs in the database, answered as Flagger and Argo Rollouts ask, with real model
servers. The restart test (SIGKILL mid-job) is tests/features/test_gate_restart.py."""

from __future__ import annotations

import time

import pytest
import requests
from jsonpath_ng import parse as jsonpath

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings
from collector.service.hook import HostPolicy
from helpers import LiveServer, serve_model
from test_collector.service.conftest import TOKEN

DEADLINE_S = 240  # an evaluation on a busy machine; polls retry until then


def argo_outcome(answer: dict, status: int = 200) -> str:
    """The docs' AnalysisTemplate (docs/rollouts.md), as Argo Rollouts' web provider evaluates it: a non-2xx answer
    is an Error measurement; else jsonPath `{$.verdict}`, successCondition `result == "pass"`,
    failureCondition `result == "fail"`; neither: inconclusive."""
    if not 200 <= status < 300:
        return "Error"
    (result,) = [m.value for m in jsonpath("$.verdict").find(answer)]
    if result == "pass":
        return "Successful"
    if result == "fail":
        return "Failed"
    return "Inconclusive"


def _argo(srv, baseline: str, candidate: str, **extra) -> tuple[dict, float]:
    t0 = time.perf_counter()
    r = requests.get(f"{srv.url}/gates/verdict", params={"baseline": baseline, "candidate": candidate, **extra},
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code in (200, 503), r.text
    assert (r.status_code == 503) == (r.json()["verdict"] == "error"), r.text  # "cannot decide": an Error
    return r.json(), time.perf_counter() - t0


def _poll(ask, finished, what: str) -> list:
    """Every answer of `ask` until one is `finished` (polled to an overall deadline)."""
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        seen.append(ask())
        if finished(seen[-1]):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {DEADLINE_S} s: {seen[-1] if seen else None}")


def _poll_argo(srv, baseline: str, candidate: str, **extra) -> list[dict]:
    return _poll(lambda: _argo(srv, baseline, candidate, **extra)[0], lambda a: a["verdict"] != "running",
                 "a verdict")


@pytest.mark.parametrize("gate_app", ["sqlite", "postgres"], indirect=True)
def test_argo_polls_join_one_job_until_the_verdict(gate_app, models):
    # A slow candidate: the job is certainly still running when the first polls arrive.
    with serve_model(models["v1"]) as base, serve_model(models["broken"], predict_delay=0.05) as cand:
        answers = _poll_argo(gate_app, base.url, cand.url)
    assert {a["job"] for a in answers} == {answers[0]["job"]}  # every poll joined the one job
    assert answers[0]["verdict"] == "running" and argo_outcome(answers[0]) == "Inconclusive"
    assert answers[-1]["verdict"] == "fail" and argo_outcome(answers[-1]) == "Failed"
    assert "green" in answers[-1]["regressed_classes"] and "green" in answers[-1]["summary"]
    status = requests.get(gate_app.url + answers[-1]["status_url"], headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30).json()
    assert status["state"] == "done" and status["attempts"] == 1 and status["result"]["images_sent"] == 2 * 93


@pytest.mark.parametrize("revision", [None, "7d9f8c"])
def test_argo_passes_a_confidence_only_retrain_and_a_new_model_is_a_new_job(gate_app, models, tmp_path, revision):
    """A finished pass is answered again only while the URL serves the model it evaluated: with or
    without a revision, a model swapped in behind the URL is a new job, and its verdict."""
    from helpers import Switch

    extra = {"revision": revision} if revision else {}
    switch = Switch(models["surer"])
    with serve_model(models["v1"]) as base, LiveServer(switch) as cand:
        answers = _poll_argo(gate_app, base.url, cand.url, **extra)
        assert answers[-1]["verdict"] == "pass" and argo_outcome(answers[-1]) == "Successful"
        again, took = _argo(gate_app, base.url, cand.url, **extra)  # finished, same model: the same answer
        assert (again["job"], again["verdict"]) == (answers[-1]["job"], "pass")
        switch.set(models["broken"])  # a new model behind the same URL, the same revision
        later = _poll_argo(gate_app, base.url, cand.url, **extra)
    assert later[0]["job"] != answers[-1]["job"] and later[0]["verdict"] != "pass"
    assert later[-1]["verdict"] == "fail" and argo_outcome(later[-1]) == "Failed"
    print(f"answer to a finished job, the candidate asked again: {took * 1000:.0f} ms")


class Droppable:
    """A proxy in front of a model server that can be taken down (503 to everything) and back."""

    def __init__(self, app):
        self.app, self.down = app, False

    def __call__(self, environ, start_response):
        if self.down:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": "down"}']
        return self.app(environ, start_response)


def test_an_outage_is_never_a_final_answer(gate_app, models, monkeypatch):
    """The candidate away: Argo gets Error measurements (503) and Flagger neither a promotion nor a
    rollback; once it is back, the same revision and checksum get the real verdict."""
    from collector.service import gates
    from model_server.app import create_app

    monkeypatch.setattr(gates, "RETRY_BASE_S", 0.5)
    proxy = Droppable(create_app({"model_dir": str(models["broken"]), "load_async": False}))
    proxy.down = True
    with serve_model(models["v1"]) as base, LiveServer(proxy) as cand:
        down = _poll_argo(gate_app, base.url, cand.url, revision="r1")
        assert down[-1]["verdict"] == "error" and argo_outcome(down[-1], 503) == "Error"
        body = _canary_body("Promoting", base.url, cand.url, checksum="c1")
        held = _until_not(gate_app, "confirm-promotion", body, 409)
        assert held.status_code == 412 and _flagger(gate_app, "rollback", body).status_code == 409
        proxy.down = False
        argo = _poll(lambda: _argo(gate_app, base.url, cand.url, revision="r1")[0],
                     lambda a: a["verdict"] in ("pass", "fail"), "a verdict after the outage")
        flagger = _poll(lambda: _flagger(gate_app, "rollback", body), lambda r: r.status_code == 200,
                        "a rollback after the outage")
    assert argo[-1]["verdict"] == "fail" and argo[-1]["job"] != down[-1]["job"]
    assert "green" in flagger[-1].text


def test_argo_refuses_without_token_outside_the_allowlist_and_bad_requests(gate_app):
    url = f"{gate_app.url}/gates/verdict"
    assert requests.get(url, params={"candidate": "http://127.0.0.1:9"}, timeout=30).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.get(url, params={"candidate": "http://10.9.9.9:8080"}, headers=auth, timeout=30)
    assert r.status_code == 403 and "allowlist" in r.json()["error"]
    assert requests.get(url, headers=auth, timeout=30).status_code == 400
    r = requests.post(url, data=b"[1]", headers=auth, timeout=30)
    assert r.status_code == 400
    r = requests.post(url, json={"candidate": "http://127.0.0.1:9"}, headers=auth, timeout=30)
    assert (r.status_code, r.json()["verdict"]) in ((200, "running"), (503, "error"))


def _flagger(srv, phase: str, body: dict) -> requests.Response:
    """As Flagger's webhook client sends it: JSON body, Content-Type, no other header."""
    import json

    return requests.post(f"{srv.url}/gates/flagger/{phase}", data=json.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=30)


def _canary_body(phase: str, baseline: str, candidate: str, checksum: str = "7f9c") -> dict:
    return {"name": "podinfo", "namespace": "test", "phase": phase, "checksum": checksum,
            "metadata": {"candidate": candidate, "baseline": baseline, "token": TOKEN}}


def _until_not(srv, phase: str, body: dict, status: int) -> requests.Response:
    return _poll(lambda: _flagger(srv, phase, body), lambda r: r.status_code != status, f"{phase} not {status}")[-1]


@pytest.mark.parametrize("gate_app", ["sqlite", "postgres"], indirect=True)
def test_flagger_holds_promotion_while_running_and_on_fail_and_rolls_back_on_fail(gate_app, models):
    with serve_model(models["v1"]) as base, serve_model(models["broken"], predict_delay=0.05) as cand:
        r = _flagger(gate_app, "pre-rollout", _canary_body("Progressing", base.url, cand.url))
        assert r.status_code == 200 and "gate job" in r.text
        first = _flagger(gate_app, "confirm-promotion", _canary_body("Promoting", base.url, cand.url))
        assert first.status_code == 409 and "running" in first.text  # held: non-2xx while running
        final = _until_not(gate_app, "confirm-promotion", _canary_body("Promoting", base.url, cand.url), 409)
        assert final.status_code == 412 and "green" in final.text and final.text.count("\n") == 1
        rollback = _flagger(gate_app, "rollback", _canary_body("Progressing", base.url, cand.url))
        assert rollback.status_code == 200 and "FAIL" in rollback.text


def test_flagger_promotes_an_unchanged_model_and_does_not_roll_back(gate_app, models):
    with serve_model(models["v1"]) as base, serve_model(models["v1"]) as same:
        body = _canary_body("Promoting", base.url, same.url, checksum="abc")
        final = _until_not(gate_app, "confirm-promotion", body, 409)
        assert final.status_code == 200 and "same fingerprint" in final.text
        assert _flagger(gate_app, "rollback", body).status_code == 409


def test_flagger_refuses_a_wrong_token_and_a_foreign_body(gate_app):
    body = _canary_body("Progressing", "http://127.0.0.1:9", "http://127.0.0.1:9")
    body["metadata"]["token"] = "wrong"
    assert _flagger(gate_app, "pre-rollout", body).status_code == 401
    assert _flagger(gate_app, "pre-rollout", {"name": "x"}).status_code == 400
    r = requests.post(f"{gate_app.url}/gates/flagger/rollback", data=b"\xff", timeout=30)
    assert r.status_code == 400 and "Traceback" not in r.text


def test_a_database_that_is_away_is_said_once_and_retried(tmp_path, big_data, monkeypatch, caplog):
    import logging

    from collector.service.gates import GateService
    from collector.storage import store

    calls = []
    real = store.ensure_schema

    def counting(engine, **kw):
        calls.append(1)
        return real(engine, **kw)

    monkeypatch.setattr(store, "ensure_schema", counting)
    engine = store.make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path, opts=CollectOptions())
    service = GateService(engine=engine, settings=settings, policy=HostPolicy(["127.0.0.1"]), max_jobs=2)
    with caplog.at_level(logging.WARNING, logger="collector.service.gates"):
        service.start()
        deadline = time.monotonic() + DEADLINE_S
        while len(calls) < 3:  # three attempts at the schema, whatever the machine's speed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        service.stop(5)
    said = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(said) == 1 and not service.ready


def test_flagger_never_promotes_a_model_swapped_in_after_a_pass(gate_app, models):
    """Flagger always sends its checksum: a pass for model A is not an answer about model B, which
    the URL serves now. The first confirm-promotion after the swap is not 200; the verdict is B's."""
    from helpers import Switch

    switch = Switch(models["surer"])
    with serve_model(models["v1"]) as base, LiveServer(switch) as cand:
        body = _canary_body("Promoting", base.url, cand.url, checksum="same-checksum")
        assert _until_not(gate_app, "confirm-promotion", body, 409).status_code == 200
        switch.set(models["broken"])
        after = _flagger(gate_app, "confirm-promotion", body)
        assert after.status_code != 200, after.text
        final = _until_not(gate_app, "confirm-promotion", body, 409)
        assert final.status_code == 412 and "green" in final.text
        assert _flagger(gate_app, "rollback", body).status_code == 200


def test_a_url_that_cannot_tell_in_time_gets_running_not_the_old_verdict(gate_app, models):
    """After a pass the candidate hangs: asking it which model it serves fails within the answer
    budget, so the answer is a new job (`running`), never the stored pass."""
    import threading

    from helpers import Switch

    switch = Switch(models["surer"])
    with serve_model(models["v1"]) as base, LiveServer(switch) as cand:
        answers = _poll_argo(gate_app, base.url, cand.url, revision="hang")
        assert answers[-1]["verdict"] == "pass"
        release = threading.Event()
        switch.before = lambda: release.wait(30)  # every request to the candidate hangs
        try:
            again, took = _argo(gate_app, base.url, cand.url, revision="hang")
        finally:
            release.set()
    assert again["verdict"] == "running" and again["job"] != answers[-1]["job"], again
    print(f"a hanging candidate: answered {again['verdict']} in {took * 1000:.0f} ms")
