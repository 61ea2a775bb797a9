"""gate.py and `data-collector gate`: pass, fail or cannot decide, with real model servers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from collector.storage.schema import predictions
from helpers import collect_models, engine_for, run_cli, serve_model, write_color_model

LABELS = ["red", "green", "blue"]


@pytest.fixture
def models(tmp_path):
    return {"v1": write_color_model(tmp_path / "v1", LABELS, version="1"),
            "broken": write_color_model(tmp_path / "v2", LABELS, version="2", swap=("green", "blue")),
            "surer": write_color_model(tmp_path / "v3", LABELS, version="3", scale=14.0)}


def _gate(db: str, data, *args: str):
    r = run_cli("--db", db, "gate", "--test-data", str(data), "--json", *args)
    return r.exit_code, json.loads(r.stdout)


def _n_predictions(db: str) -> int:
    with engine_for(db).connect() as conn:
        return conn.execute(select(func.count()).select_from(predictions)).scalar_one()


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_broken_class_fails_the_gate_and_only_missing_answers_are_sent(db_url, big_data, models):
    with serve_model(models["v1"]) as base, serve_model(models["broken"]) as cand:
        code, out = _gate(db_url, big_data, base.url, cand.url)
        assert code == 1 and out["verdict"] == "fail"
        assert set(out["regressed_classes"]) >= {"green"} and "red" not in out["regressed_classes"]
        assert out["summary"].startswith("FAIL colors v1") and out["images_sent"] == 2 * 93
        stored = _n_predictions(db_url)
        again_code, again = _gate(db_url, big_data, base.url, cand.url)  # evaluated: nothing is sent again
        assert (again_code, again["verdict"], again["images_sent"]) == (1, "fail", 0)
        assert _n_predictions(db_url) == stored


def test_a_retrain_that_only_changes_confidence_passes_and_selectors_work(tmp_path, big_data, models):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    with serve_model(models["surer"]) as cand:
        collect_models(db, big_data, models["v1"])
        code, out = _gate(db, big_data, "colors@1", cand.url)  # a stored baseline, a URL candidate
    assert (code, out["verdict"], out["regressed_classes"]) == (0, "pass", [])
    assert out["baseline"]["version"] == "1" and out["candidate"]["version"] == "3"
    code, out = _gate(db, big_data, "colors@previous", "colors@3")
    assert (code, out["verdict"]) == (0, "pass")
    code, out = _gate(db, big_data, "colors@1", "colors@1")  # nothing changed: promoted
    assert (code, out["verdict"], out["same_model"]) == (0, "pass", True)
    code, out = _gate(db, big_data, "colors@3")  # the candidate alone: against its previous version
    assert (code, out["verdict"], out["baseline"]["version"], out["candidate"]["version"]) == (0, "pass", "1", "3")
    code, out = _gate(db, big_data, "colors@1")  # the first version has nothing to be gated against
    assert code == 2 and "no version before" in out["error"]
    r = run_cli("--db", db, "gate", "colors@1", "colors@3", "colors@1")
    assert r.exit_code == 2 and "at most two models" in r.output


def test_cannot_decide_exits_2_with_the_reason(tmp_path, big_data, models):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    collect_models(db, big_data, models["v1"])
    code, out = _gate(db, big_data, "colors@1", "http://127.0.0.1:9")  # nothing listens there
    assert code == 2 and out["verdict"] == "error" and "127.0.0.1:9" in out["error"]
    code, out = _gate(db, big_data, "nosuchmodel", "colors@1")
    assert code == 2 and "nosuchmodel" in out["error"]
    code, out = _gate(db, big_data, "colors@previous", "colors@1")  # the first version has no previous one
    assert code == 2 and out["verdict"] == "error"
    r = run_cli("--db", db, "gate", "--test-data", str(big_data), "colors@1", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "cannot decide" in r.output and "Traceback" not in r.output


def test_the_table_and_the_verdict_line(tmp_path, big_data, models):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    collect_models(db, big_data, models["v1"], models["broken"])
    r = run_cli("--db", db, "gate", "--test-data", str(big_data), "colors@1", "colors@2")
    assert r.exit_code == 1
    assert "REGRESSED" in r.output and "FAIL colors v1" in r.output.replace("\n", " ")
