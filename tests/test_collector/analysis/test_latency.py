"""latency.py: paired, interleaved timing of two real model servers and the latency rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.analysis.latency import LatencyError, LatencyRule, Side, judge, measure
from collector.protocols import connect
from collector.storage import store
from helpers import DelayProxy, LiveServer, collect_models, run_cli, serve_model, write_color_model

LABELS = ["red", "green", "blue"]


def test_the_rule_on_known_samples():
    rng = np.random.default_rng(1)
    base = 20 + rng.gamma(2, 2, 200)
    rule = LatencyRule(pairs=200)
    same = judge(base, base + rng.normal(0, 0.5, 200), n_images=32, rule=rule)
    assert not same["flagged"] and same["p95_change_ci95"][0] < 0 < same["p95_change_ci95"][1]
    slow = judge(base, base * 1.3, n_images=32, rule=rule)
    assert slow["flagged"] and slow["p95_ratio"] == pytest.approx(1.3)
    assert slow["paired_ratio_median"] == pytest.approx(1.3)
    assert slow["paired_ratio_ci95"][0] == pytest.approx(1.3)
    assert slow["candidate"]["images_per_s"] == pytest.approx(slow["baseline"]["images_per_s"] / 1.3)
    small = judge(base, base + 3.0, n_images=32, rule=rule)  # significant, but under min_p95_ms
    assert small["p95_change_ci95"][0] > 0 and small["p_value"] < 0.01 and not small["flagged"]
    tail = judge(base, np.where(base > np.percentile(base, 90), base * 3, base), n_images=32, rule=rule)
    assert tail["p95_ratio"] > 2 and not tail["flagged"]  # a slower tail alone: most requests are not slower
    fast = judge(base / 10, base / 10 * 1.3, n_images=32, rule=rule)  # 30% slower, but by under 5 ms at p95
    assert fast["paired_ratio_median"] == pytest.approx(1.3) and not fast["flagged"]


@pytest.fixture
def models(tmp_path):
    return {"v1": write_color_model(tmp_path / "v1", LABELS, version="1"),
            "surer": write_color_model(tmp_path / "v3", LABELS, version="3", scale=14.0)}


def _gate(db, data, *args):
    r = run_cli("--db", db, "gate", "--test-data", str(data), "--json", "--latency", "--latency-pairs", "20", *args)
    return r.exit_code, json.loads(r.stdout)


def test_a_slower_candidate_is_flagged_on_latency_only_and_the_same_model_twice_is_not(tmp_path, big_data, models):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    with serve_model(models["v1"]) as base, serve_model(models["surer"]) as up, \
            LiveServer(DelayProxy(up.url, delay=0.05)) as slow:
        junit, summary = tmp_path / "j.xml", tmp_path / "s.md"
        code, out = _gate(db, big_data, base.url, slow.url, "--junit", str(junit), "--markdown", str(summary))
        assert code == 1 and out["verdict"] == "fail" and out["regressed_classes"] == [], out["summary"]
        import xml.etree.ElementTree as ET

        cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
        assert cases["latency"].find("failure").get("message").startswith("latency: 20 interleaved pairs")
        assert "FAIL, regressed: latency: requests x" in summary.read_text()
        lat = out["comparison"]["latency"]
        assert lat["flagged"] and lat["p95_change_ms"] > 40 and lat["pairs"] == 20
        assert out["reasons"] == [r for r in out["reasons"] if r.startswith("latency: requests x")] != []
        code, out = _gate(db, big_data, base.url, up.url)  # the same candidate without the delay
        assert (code, out["verdict"]) == (0, "pass") and not out["comparison"]["latency"]["flagged"]
        # compare times the stored models at the URLs they were seen at last: v3 at `up` now
        r = run_cli("--db", db, "compare", "--json", "--latency", "--latency-pairs", "10", "--test-data",
                    str(big_data), "colors@1", "colors@3")
        assert r.exit_code == 0 and json.loads(r.stdout)["latency"]["pairs"] == 10, r.output
    r = run_cli("--db", db, "compare", "--latency", "--test-data", str(big_data), "colors@1", "colors@3")
    assert r.exit_code == 2 and "latency:" in r.output and "Traceback" not in r.output  # nobody answers there
    with serve_model(models["v1"]) as a, serve_model(models["v1"]) as b:
        code, out = _gate(db, big_data, a.url, b.url)
    assert (code, out["verdict"], out["same_model"]) == (0, "pass", True), out["summary"]
    assert out["comparison"]["latency"]["pairs"] == 20 and not out["comparison"]["latency"]["flagged"]


def test_a_url_that_answers_unlike_its_stored_model_stops_the_timing(tmp_path, big_data, models):
    db = f"sqlite:///{tmp_path / 'l.db'}"
    engine = collect_models(db, big_data, models["v1"])
    with engine.connect() as conn:
        (info,) = store.list_models(conn)
        rows = store.load_rows(conn, model_id=info.id)
    images = [(r["sha256"], r["path"], (big_data / r["path"]).read_bytes()) for r in rows if r["kind"] != "lookalike"]
    answers = {r["sha256"]: r["predicted_label"] for r in rows}
    with serve_model(models["v1"]) as srv:
        def side(stored):
            return Side(connect(srv.url), info.fingerprint, LABELS, "1", stored)
        timed = measure(side(answers), side(answers), images, batch_size=8, rule=LatencyRule(pairs=10))
        assert timed["pairs"] == 10 and timed["baseline"]["requests"] == 10
        wrong = {**answers, images[3][0]: "blue" if answers[images[3][0]] != "blue" else "red"}
        with pytest.raises(LatencyError, match="unlike its stored answers"):
            measure(side(answers), side(wrong), images, batch_size=8, rule=LatencyRule(pairs=10))
        with pytest.raises(LatencyError, match="now serves fingerprint"):
            measure(side(answers), Side(connect(srv.url), "f" * 64, LABELS, "1", answers), images, batch_size=8)


def test_the_gate_service_answers_argo_with_the_latency_verdict_and_the_web_view_shows_it(tmp_path, big_data, models):
    import time

    import requests

    from collector.analysis.compare import Thresholds
    from collector.collect import CollectOptions
    from collector.outputs.web import WebContext, register_web
    from collector.service.deploy import DeploySettings
    from collector.service.hook import HostPolicy, create_hook_app

    token = "t" * 24
    engine = store.make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path / "reports", opts=CollectOptions(batch_size=8),
                              latency=LatencyRule(pairs=12))
    app = create_hook_app(engine=engine, settings=settings, token=token, allowed=HostPolicy(["127.0.0.1"]))
    register_web(app, WebContext(engine, big_data, Thresholds(), jobs=app.extensions["gate_service"]))
    try:
        with serve_model(models["v1"]) as base, serve_model(models["surer"]) as up, \
                LiveServer(DelayProxy(up.url, delay=0.05)) as slow, LiveServer(app) as srv:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                r = requests.get(f"{srv.url}/gates/verdict", params={"baseline": base.url, "candidate": slow.url},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)
                if r.json()["verdict"] != "running":
                    break
                time.sleep(0.2)
            answer = r.json()
            assert r.status_code == 200 and answer["verdict"] == "fail", answer
            assert answer["regressed_classes"] == [] and answer["reasons"][0].startswith("latency: requests x")
            assert "latency: requests x" in answer["summary"]
            jobs = requests.get(f"{srv.url}/jobs/view", timeout=30).text
            assert "latency: requests x" in jobs and f"/jobs/view/{answer['job'][:8]}" in jobs
            page = requests.get(f"{srv.url}/jobs/view/{answer['job'][:8]}", timeout=30)
            assert page.status_code == 200 and "<h3>Latency</h3>" in page.text and "SLOWER" in page.text
            assert requests.get(f"{srv.url}/jobs/view/00000000", timeout=30).status_code == 404
    finally:
        app.extensions["gate_service"].stop(5)
