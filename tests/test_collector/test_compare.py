"""The regression gate: paired per-class comparison, its CLI and its exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.compare import Thresholds, compare
from collector.store import ModelInfo
from helpers import collect_models, run_cli, write_color_model


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


def test_bootstrap_ci_is_seeded_and_sensible():
    from collector.compare import bootstrap_ci
    a = np.ones(50, bool)
    b = np.r_[np.zeros(10, bool), np.ones(40, bool)]
    lo, hi = bootstrap_ci(a, b, np.random.default_rng(0))
    assert lo < -0.2 < hi < 0 and (lo, hi) == bootstrap_ci(a, b, np.random.default_rng(0))
