"""calibration.py: ECE and Brier against scikit-learn on stored rows, and the calibration rule in
the gate with a temperature-scaled copy of a real model behind a real server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collector.stats.calibration import N_BINS, ece, model_calibration, paired_change
from collector.storage import store
from helpers import color_png, run_cli, serve_model, write_color_model

LABELS = ["red", "green", "blue"]
COLOURS = {"red": (230, 20, 20), "green": (20, 200, 30), "blue": (20, 30, 220)}


def _reference_ece(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(y, p, n_bins=N_BINS, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, N_BINS + 1)[1:-1], p), minlength=N_BINS)
    counts = counts[counts > 0]
    return float(np.sum(counts * np.abs(prob_true - prob_pred)) / len(p))


def test_the_numbers_equal_scikit_learns_on_the_stored_rows(pokemon_db):
    from sklearn.metrics import brier_score_loss

    engine = store.make_engine(pokemon_db)
    with engine.connect() as conn:
        models = store.list_models(conn)
        checked = 0
        for m in models:
            rows = [r for r in store.load_rows(conn, model_id=m.id) if r["kind"] != "lookalike"]
            got = model_calibration(rows, list(m.labels))
            hit = np.array([r["predicted_label"] == r["label"] for r in rows], dtype=float)
            conf = np.array([r["confidence"] for r in rows])
            assert got["ece"] == pytest.approx(_reference_ece(hit, conf), abs=1e-12)
            for lab in m.labels:
                y = np.array([r["label"] == lab for r in rows], dtype=float)
                p = np.array([r["scores"][lab] for r in rows])
                assert got["classes"][lab]["ece"] == pytest.approx(_reference_ece(y, p), abs=1e-12)
                assert got["classes"][lab]["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
                checked += 1
    assert checked == 6


def test_random_probabilities_against_scikit_learn_and_edges_in_the_lower_bin():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.random(500), np.linspace(0, 1, N_BINS + 1)])  # every bin edge included
    y = (rng.random(len(p)) < p ** 2).astype(float)
    assert ece(y, p) == pytest.approx(_reference_ece(y, p), abs=1e-12)
    assert ece(y, p) > 0.05  # miscalibrated by construction (p^2 vs p)


def test_the_paired_change_is_zero_for_one_model_and_its_interval_covers_the_truth():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):  # calibrated: as often right as sure
        lab, conf = LABELS[i % 3], rng.uniform(0.5, 0.9)
        others = [x for x in LABELS if x != lab]
        pred = lab if rng.random() < conf else others[0]
        scores = {pred: conf, **{x: (1 - conf) / 2 for x in LABELS if x != pred}}
        rows.append({"label": lab, "predicted_label": pred, "confidence": scores[pred], "scores": scores})
    same = paired_change(rows, rows, LABELS, LABELS)
    assert same["ece"] == 0 and same["ece_ci95"] == [0, 0] and same["brier"] == 0
    sharp = []
    for r in rows:  # temperature 1/4: the same answers, sharper probabilities
        z = {k: v ** 4 for k, v in r["scores"].items()}
        t = sum(z.values())
        scores = {k: v / t for k, v in z.items()}
        sharp.append({**r, "scores": scores, "confidence": scores[r["predicted_label"]]})
    ch = paired_change(rows, sharp, LABELS, LABELS)
    truth = model_calibration(sharp, LABELS)["ece"] - model_calibration(rows, LABELS)["ece"]
    assert ch["ece"] == pytest.approx(truth) and ch["ece_ci95"][0] <= truth <= ch["ece_ci95"][1]
    assert ch["ece_ci95"][0] > 0  # sharper with errors left: worse calibrated, and the interval says so


def _ambiguous_data(root):
    """30 images a colour, of which 6 are drawn in the next class's colour (the model gets them wrong)."""
    for li, lab in enumerate(LABELS):
        (root / lab).mkdir(parents=True)
        for i in range(30):
            colour = COLOURS[LABELS[(li + 1) % 3]] if i < 6 else COLOURS[lab]
            (root / lab / f"{lab}-{i:02d}.png").write_bytes(color_png(colour, seed=li * 100 + i))
    return root


def test_a_temperature_scaled_copy_is_flagged_only_with_the_calibration_rule(tmp_path):
    data = _ambiguous_data(tmp_path / "td")
    # scale 2.5: the right answers at about 0.8, as often right as sure; scale 10: the same answers near 1.0
    base = write_color_model(tmp_path / "v1", LABELS, version="1", scale=2.5)
    sharp = write_color_model(tmp_path / "v2", LABELS, version="2", scale=10.0)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    with serve_model(base) as b, serve_model(sharp) as c:
        r = run_cli("--db", db, "gate", "--test-data", str(data), "--json", b.url, c.url)
        off = json.loads(r.stdout)
        r2 = run_cli("--db", db, "gate", "--test-data", str(data), "--json", "--calibration-rule", b.url, c.url)
        on = json.loads(r2.stdout)
    assert r.exit_code == 0 and off["verdict"] == "pass", off["summary"]
    cal = off["comparison"]["calibration"]
    assert cal["change"]["ece"] > 0.1 and cal["change"]["ece_ci95"][0] > 0 and cal["rose_significantly"]
    assert not cal["flagged"] and off["comparison"]["regressed_classes"] == []
    assert r2.exit_code == 1 and on["verdict"] == "fail" and on["regressed_classes"] == []
    assert "calibration: ECE" in on["summary"] and on["comparison"]["calibration"]["flagged"]
