"""Naming stored models: version order, and claims that two fingerprints make are ambiguous."""

from __future__ import annotations

import json

import pytest

from collector import store
from collector.selectors import AmbiguousSelector, SelectorError, pick, previous_of
from helpers import engine_for, run_cli, store_model


def _model(engine, fp: str, version: str, url: str = "http://model:8080", wrong: bool = False):
    import hashlib

    answers = [(hashlib.sha256(str(i).encode()).hexdigest(), "a" if i % 2 else "b", "photo",
                ("b" if wrong and i % 2 else ("a" if i % 2 else "b"))) for i in range(10)]
    store_model(engine, name="m", version=version, fingerprint=fp * 64, labels=["a", "b"], answers=answers, url=url)


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = engine_for(url)
    _model(engine, "1", "10")  # first seen, but the newest version
    _model(engine, "2", "2")
    _model(engine, "3", "9", wrong=True)
    return url, engine


def test_newest_and_previous_follow_version_order(db):
    _, engine = db
    with engine.connect() as c:
        ms = store.list_models(c)
    assert pick(ms, "m").version == "10" and pick(ms, "m@latest").version == "10"
    assert pick(ms, "m@previous").version == "9"
    assert previous_of(ms, pick(ms, "m@9")).version == "2" and previous_of(ms, pick(ms, "m@2")) is None
    with pytest.raises(SelectorError, match="no version before"):
        pick(ms, "m@previous", relative_to=pick(ms, "m@2"))


def test_a_version_two_fingerprints_claim_is_refused_everywhere(db, tmp_path):
    url, engine = db
    _model(engine, "4", "9", url="http://impostor:8080")  # a second claim of m@9
    _model(engine, "5", "10", url="http://other:8080")  # and of m@10
    with engine.connect() as c:
        ms = store.list_models(c)
    for sel, rel in (("m@9", None), ("m", None), ("m@latest", None), ("m@previous", None),
                     ("m@previous", pick(ms, "1111"))):
        with pytest.raises(AmbiguousSelector) as e:
            pick(ms, sel, relative_to=rel)
        assert "ambiguous" in str(e.value)
    msg = str(pytest.raises(AmbiguousSelector, pick, ms, "m@9").value)
    assert "333333333333" in msg and "444444444444" in msg and "impostor:8080" in msg and "declared" in msg
    assert pick(ms, "4444").fingerprint == "4" * 64 and pick(ms, "m@2").fingerprint == "2" * 64
    # The command line: exit 2 naming both; a prefix works and is marked; models marks the conflict.
    r = run_cli("--db", url, "compare", "m@2", "m@9")
    assert r.exit_code == 2 and "ambiguous" in r.output and "444444444444" in r.output
    r = run_cli("--db", url, "report", "--model", "m")
    assert r.exit_code == 2 and "ambiguous" in r.output
    r = run_cli("--db", url, "report", "--model", "3333")
    assert r.exit_code == 0 and "CONFLICT" in r.output and "444444444444" in r.output
    r = run_cli("--db", url, "models")
    assert r.exit_code == 0 and r.output.count("CONFLICT") == 4 and "conflict: m v9" in r.output
    listed = json.loads(run_cli("--db", url, "models", "--json").output)
    assert {m["fingerprint"][:1]: len(m["conflict"]) for m in listed} == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 1}
    r = run_cli("--db", url, "compare", "2222", "3333")
    assert r.exit_code == 1 and "REGRESSION" in r.output  # fingerprints name them: the verdict is given


def test_json_and_html_to_standard_output(db, tmp_path, monkeypatch):
    url, _ = db
    monkeypatch.chdir(tmp_path)
    r = run_cli("--db", url, "report", "--model", "m@2", "--json", "-")
    assert r.exit_code == 0 and json.loads(r.output)["models"][0]["model"]["version"] == "2"
    r = run_cli("--db", url, "compare", "m@2", "m@9", "--html", "-")
    assert r.exit_code == 1 and r.output.lstrip().startswith("<!doctype html>")
    assert not (tmp_path / "-").exists()


def test_the_hooks_default_baseline_is_refused_when_two_claim_it(tmp_path, color_model, test_data):
    """The deploy path compares with the version before the candidate: claimed by two, no verdict."""
    import hashlib

    from collector.collect import CollectOptions
    from collector.deploy import DeploySettings, evaluate_deployment
    from helpers import serve_model

    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    answers = [(hashlib.sha256(str(i).encode()).hexdigest(), "red", "photo", "red") for i in range(3)]
    for fp, host in (("7", "http://one:8080"), ("8", "http://two:8080")):  # colors v0, twice
        store_model(engine, name="colors", version="0", fingerprint=fp * 64, labels=["red", "green", "blue"],
                    answers=answers, url=host)
    settings = DeploySettings(test_dir=test_data, report_dir=tmp_path / "r", opts=CollectOptions())
    with serve_model(color_model) as srv:  # colors v1
        out = evaluate_deployment(srv.url, engine=engine, settings=settings)
    assert out["verdict"] == "error" and out["baseline"] is None
    assert "ambiguous" in out["error"] and "777777777777" in out["error"] and "888888888888" in out["error"]
