"""Reports, the regression gate, watch and the deploy hook, on synthetic scenarios with real tiny models."""

from __future__ import annotations

import json
import threading
import time
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from collector import store
from collector.cli import main as cli
from collector.collect import CollectOptions, collect
from collector.compare import Thresholds, compare
from collector.deploy import DeploySettings
from collector.hook import create_hook_app
from collector.schema import runs
from collector.store import ModelInfo
from helpers import LiveServer, make_test_data, serve_model, write_color_model


@pytest.fixture
def big_data(tmp_path):
    return make_test_data(tmp_path / "td", per_class=30)


def run_cli(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def collect_models(db_url, data, *folders):
    engine = store.make_engine(db_url)
    store.ensure_schema(engine)
    for f in folders:
        with serve_model(f) as srv:
            (r,) = collect([srv.url], engine=engine, test_dir=data, say=lambda m: None)
            assert r.status == "completed"
    return engine


def test_one_broken_class_is_flagged(db_url, tmp_path, big_data):
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    collect_models(db_url, big_data, v1, v2)
    r = run_cli("--db", db_url, "compare", "colors@previous", "colors")
    assert r.exit_code == 1, r.output
    assert "REGRESSION" in r.output and "green" in r.output and "previously easy" in r.output
    r = run_cli("--db", db_url, "compare", "colors@previous", "colors", "--json")
    body = json.loads(r.output)
    assert r.exit_code == 1
    assert body["regressed_classes"] == ["green"] and body["previously_easy_regressed"] == ["green"]
    assert body["classes"]["green"]["delta"] == -1.0 and body["classes"]["green"]["p_value"] < 1e-6
    assert not body["classes"]["red"]["regressed"] and not body["classes"]["blue"]["regressed"]
    # The other direction is an improvement, not a regression.
    assert run_cli("--db", db_url, "compare", body["candidate"]["fingerprint"][:10],
                   body["baseline"]["fingerprint"][:10]).exit_code == 0


def test_same_behaviour_passes(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", scale=14.0)
    collect_models(db, big_data, v1, v2)
    r = run_cli("--db", db, "compare", "colors@previous", "colors")
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output


def test_different_label_sets(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    v1 = write_color_model(tmp_path / "v1", ["red", "green"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2")
    collect_models(db, big_data, v1, v2)
    r = run_cli("--db", db, "compare", "colors@previous", "colors", "--json")
    body = json.loads(r.output)
    assert body["shared_labels"] == ["red", "green"]
    assert body["new_labels"] == {"blue": {"n": 30, "recall": 1.0}}
    assert body["n_common_images"] == 60 and r.exit_code == 0


def rows(labels, right):
    return [{"sha256": f"{i:04d}", "label": lab, "kind": "photo", "predicted_label": lab if ok else "other"}
            for i, (lab, ok) in enumerate(zip(labels, right, strict=True))]


def info(version):
    return ModelInfo(id=1, name="m", version=version, fingerprint=version * 8, labels=["a", "b"], first_seen=None)


def test_tiny_classes_are_not_flagged_on_noise():
    labels = ["a"] * 6 + ["b"] * 200
    base = rows(labels, [True] * 206)
    cand = rows(labels, [False, False, False] + [True] * 203)  # class a: 6 -> 3 right, a 50% drop
    res = compare(info("1"), base, info("2"), cand)
    assert res["classes"]["a"]["delta"] == -0.5
    assert res["classes"]["a"]["p_value"] == pytest.approx(0.25)
    assert res["verdict"] == "pass"


def test_significant_drop_on_a_real_class_is_flagged_and_a_small_one_is_not():
    labels = ["a"] * 100 + ["b"] * 100
    base = rows(labels, [True] * 200)
    cand = rows(labels, [False] * 15 + [True] * 185)
    res = compare(info("1"), base, info("2"), cand)
    assert res["regressed_classes"] == ["a"]
    lo, hi = res["classes"]["a"]["ci95"]
    assert lo < -0.15 < hi < 0
    cand2 = rows(labels, [False] * 3 + [True] * 197)  # 3% drop: under max_drop
    assert compare(info("1"), base, info("2"), cand2, Thresholds(max_drop=0.05))["verdict"] == "pass"


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))


def test_html_and_json_report(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    collect_models(db, big_data, v1, v2)
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    r = run_cli("--db", db, "report", "--html", str(html_path), "--json", str(json_path))
    assert r.exit_code == 0, r.output
    assert "precision" in r.output and "lookalike probes" in r.output
    p = _Parser()
    p.feed(html_path.read_text())
    assert p.tags.count("table") >= 2
    srcs = [i["src"] for i in p.imgs]
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)  # 2x2 + history
    assert "http" not in html_path.read_text()  # self-contained: nothing to fetch
    body = json.loads(json_path.read_text())
    v2rep = next(m for m in body["models"] if m["model"]["version"] == "2")
    assert v2rep["classes"]["green"]["recall"] == 0.0 and v2rep["classes"]["blue"]["precision"] == 0.5
    assert v2rep["confusion"]["matrix"][1] == [0, 0, 30]
    assert v2rep["probes"]["n"] == 3
    r = run_cli("--db", db, "report", "--model", "nope")
    assert r.exit_code == 2 and "no evaluated model" in r.output


class Switch:
    """A WSGI app whose model can be replaced behind the same URL (a redeploy)."""

    def __init__(self, folder):
        self.set(folder)

    def set(self, folder):
        from model_server.app import create_app
        self.app = create_app({"model_dir": str(folder), "load_async": False})

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


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


def test_deploy_hook(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    engine = store.make_engine(db)
    store.ensure_schema(engine)
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path / "rep", opts=CollectOptions())
    hook = create_hook_app(engine=engine, settings=settings, token="s3cret-token").test_client()
    auth = {"Authorization": "Bearer s3cret-token"}
    switch = Switch(v1)
    with LiveServer(switch) as srv:
        assert hook.post("/hooks/deployed", json={"url": srv.url}).status_code == 401
        assert hook.post("/hooks/deployed", json={"u": 1}, headers=auth).status_code == 400
        assert hook.post("/hooks/deployed", data="x", headers=auth).status_code == 400
        r = hook.post("/hooks/deployed", json={"url": "file:///etc/passwd"}, headers=auth)
        assert r.status_code == 400 and "http" in r.get_json()["error"]
        r = hook.post("/hooks/deployed", json={"url": srv.url}, headers=auth)
        assert r.status_code == 200 and r.get_json()["verdict"] == "no-baseline" and r.get_json()["evaluated"]
        r = hook.post("/hooks/deployed", json={"url": srv.url}, headers=auth)
        assert r.get_json()["evaluated"] is False and n_runs(db) == 1
        switch.set(v2)
        r = hook.post("/hooks/deployed", json={"url": srv.url}, headers=auth).get_json()
        assert r["verdict"] == "regression" and r["regressed_classes"] == ["green"] and r["evaluated"]
        assert r["report"].endswith(".html") and n_runs(db) == 2
    r = hook.post("/hooks/deployed", json={"url": "http://127.0.0.1:9"}, headers=auth)
    assert r.status_code == 502 and r.get_json()["verdict"] == "error"


def test_bootstrap_ci_is_seeded_and_sensible():
    from collector.compare import bootstrap_ci
    a = np.ones(50, bool)
    b = np.r_[np.zeros(10, bool), np.ones(40, bool)]
    lo, hi = bootstrap_ci(a, b, np.random.default_rng(0))
    assert lo < -0.2 < hi < 0 and (lo, hi) == bootstrap_ci(a, b, np.random.default_rng(0))
