"""The regression gate: paired per-class comparison, its CLI and its exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.analysis.compare import Thresholds, compare
from collector.storage.store import ModelInfo
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
    from collector.analysis.compare import bootstrap_ci
    a = np.ones(50, bool)
    b = np.r_[np.zeros(10, bool), np.ones(40, bool)]
    lo, hi = bootstrap_ci(a, b, np.random.default_rng(0))
    assert lo < -0.2 < hi < 0 and (lo, hi) == bootstrap_ci(a, b, np.random.default_rng(0))


# --- The score rule on synthetic retrains: the fast version of bench/gate_study.py -------------

CLASSES = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]


def _scored_rows(true_probs: dict[str, np.ndarray]) -> list[dict]:
    """One row per image; a true-class probability under 0.5 answers the next class."""
    out = []
    for ci, lab in enumerate(CLASSES):
        other = CLASSES[(ci + 1) % len(CLASSES)]
        for i, p in enumerate(true_probs[lab]):
            out.append({"sha256": f"{lab}{i:04d}", "label": lab, "kind": "photo",
                        "predicted_label": lab if p >= 0.5 else other,
                        "scores": {lab: float(p), other: float(1 - p)}})
    return out


def _retrain_pair(rng, n=30, hurt: str | None = None, shift=0.0):
    """Two retrains of one recipe: per-image difficulty shared, each model's noise its own.

    `hurt` loses `shift` of log-odds on its true class in the candidate (a real regression).
    """
    base, cand = {}, {}
    for lab in CLASSES:
        difficulty = rng.normal(3.5, 1.6, n)  # log-odds of the true class: ~5% of images under 0.5
        b = difficulty + rng.normal(0, 0.8, n)
        c = difficulty + rng.normal(0, 0.8, n) - (shift if lab == hurt else 0.0)
        base[lab], cand[lab] = 1 / (1 + np.exp(-b)), 1 / (1 + np.exp(-c))
    return _scored_rows(base), _scored_rows(cand)


def _model(version):
    return ModelInfo(id=1, name="m", version=version, fingerprint=version * 8, labels=CLASSES, first_seen=None)


def test_score_rule_flags_a_confidence_loss_the_answers_cannot_show():
    rng = np.random.default_rng(7)
    caught_new = caught_old = 0
    for _ in range(20):
        base, cand = _retrain_pair(rng, hurt="pikachu", shift=1.5)  # recall -0.11 on average
        new = compare(_model("1"), base, _model("2"), cand)
        old = compare(_model("1"), base, _model("2"), cand, Thresholds(rule="mcnemar"))
        caught_new += new["regressed_classes"] == ["pikachu"]
        caught_old += old["regressed_classes"] == ["pikachu"]
        assert set(new["regressed_classes"]) <= {"pikachu"}  # never another class
        if "pikachu" in new["regressed_classes"]:
            assert "scores" in new["classes"]["pikachu"]["flagged_by"]
    assert caught_new >= 17 and caught_old <= 5, (caught_new, caught_old)


def test_score_rule_keeps_false_alarms_under_alpha_over_retrain_noise():
    rng = np.random.default_rng(11)
    pairs_flagged = 0
    for _ in range(200):
        base, cand = _retrain_pair(rng)
        pairs_flagged += bool(compare(_model("1"), base, _model("2"), cand)["regressed_classes"])
    assert pairs_flagged <= 0.05 * 200, pairs_flagged  # Holm keeps the family-wise rate under alpha


def test_score_rule_needs_a_material_effect_and_lost_answers():
    labels = ["a"] * 200 + ["b"] * 200
    base = [{"sha256": f"{i:04d}", "label": lab, "kind": "photo", "predicted_label": lab,
             "scores": {lab: 0.99, "x": 0.01}} for i, lab in enumerate(labels)]
    # Every image of a loses 0.02 of confidence: significant, but not material; no answer lost.
    cand = [dict(r, scores={r["label"]: 0.97 if r["label"] == "a" else 0.99, "x": 0.03}) for r in base]
    res = compare(info("1"), base, info("2"), cand)
    assert res["classes"]["a"]["score_p_adjusted"] < 1e-6 and res["verdict"] == "pass"
    # A material confidence loss that flips no answer (a recalibrated model) is not a regression either.
    cand = [dict(r, scores={r["label"]: 0.7 if r["label"] == "a" else 0.99, "x": 0.3}) for r in base]
    assert compare(info("1"), base, info("2"), cand)["verdict"] == "pass"


def test_holm_adjustment():
    from collector.analysis.compare import holm
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adj == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})  # 3*0.01, max(2*0.03, .), 1*0.04 -> 0.06


def test_cli_rule_option_and_what_each_rule_says(db_url, tmp_path):
    from helpers import engine_for, store_model
    rng = np.random.default_rng(4)  # a draw where pikachu loses 4 of 30 answers (0.13 < its MDD of 0.2)
    base, cand = _retrain_pair(rng, hurt="pikachu", shift=1.5)
    engine = engine_for(db_url)
    for rows_, version, fp in ((base, "1", "1" * 64), (cand, "2", "2" * 64)):
        store_model(engine, name="m", version=version, fingerprint=fp, labels=CLASSES,
                    answers=[(r["sha256"].ljust(64, "0"), r["label"], "photo", r["predicted_label"], r["scores"])
                             for r in rows_])
    new = run_cli("--db", db_url, "compare", "m@previous", "m", "--json")
    body = json.loads(new.output)
    assert new.exit_code == 1 and body["regressed_classes"] == ["pikachu"], new.output
    assert body["classes"]["pikachu"]["score_change"] < -0.1 and body["thresholds"]["rule"] == "scores"
    assert body["classes"]["pikachu"]["min_detectable_drop"] == pytest.approx(6 / 30)
    old = run_cli("--db", db_url, "compare", "m@previous", "m", "--rule", "mcnemar")
    assert old.exit_code == 0 and "PASS" in old.output, old.output
    assert run_cli("--db", db_url, "compare", "m@previous", "m", "--rule", "bogus").exit_code == 2


def test_a_class_without_shared_images_has_no_interval():
    import numpy as np

    from collector.analysis.compare import bootstrap_ci

    empty = np.array([], dtype=bool)
    assert bootstrap_ci(empty, empty, np.random.default_rng(0)) is None  # not [0, 0]: nothing was measured
    lo, hi = bootstrap_ci(np.array([True, False]), np.array([True, True]), np.random.default_rng(0))
    assert lo <= hi
