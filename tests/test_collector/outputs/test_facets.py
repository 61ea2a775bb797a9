"""The verdict beyond answers in words and numbers: one comparison of stored answers gives the
same calibration numbers to the text and to the tracker's metrics; what failed a comparison names
its classes through the caller's escaping; latency and robustness say what flagged them."""

from __future__ import annotations

import html

from collector.analysis import views
from collector.outputs import facets
from helpers import engine_for, store_model

LABELS = ["red", "<b>green</b>"]


def _answers(wrong: int, sure: float, n: int = 40) -> list[tuple]:
    out = []
    for i in range(n):
        label = LABELS[i % 2]
        other = LABELS[(i + 1) % 2]
        pred = other if i < wrong else label
        out.append((f"{i:03d}".ljust(64, "0"), label, "photo", pred, {pred: sure, (other if pred == label else label):
                                                                      round(1 - sure, 6)}))
    return out


def _comparison(tmp_path) -> dict:
    engine = engine_for(f"sqlite:///{tmp_path / 'f.db'}")
    store_model(engine, name="m", version="1", fingerprint="a1" * 32, labels=LABELS, answers=_answers(0, 0.8))
    store_model(engine, name="m", version="2", fingerprint="a2" * 32, labels=LABELS, answers=_answers(20, 0.99))
    with engine.connect() as conn:
        return views.comparison(conn, "m@2", "m@1")["comparison"]


def test_calibration_is_said_and_recorded_with_the_same_numbers(tmp_path):
    c = _comparison(tmp_path)
    cal = c["calibration"]
    line = facets.calibration_line(c)
    assert line.startswith(f"calibration: ECE {cal['baseline']['ece']:.3f} -> {cal['candidate']['ece']:.3f}")
    assert cal["candidate"]["ece"] > cal["baseline"]["ece"]  # half wrong at 0.99: far from calibrated
    assert "rule off (it would flag this)" in line
    m = facets.metrics(c)
    assert m["ece_change"] == cal["change"]["ece"] and m["brier_change"] == cal["change"]["brier"]
    assert facets.lines(c) == [line]  # no latency or robustness measured: nothing more said


def test_what_failed_names_the_regressed_classes_escaped_for_the_medium(tmp_path):
    c = _comparison(tmp_path)
    assert c["regressed_classes"]  # the candidate answers half the images wrong
    plain = facets.failed_because(c)
    escaped = facets.failed_because(c, html.escape)
    assert plain == ", ".join(c["regressed_classes"])
    assert "<b>" not in escaped
    assert escaped == ", ".join(html.escape(x) for x in c["regressed_classes"])


def test_latency_and_robustness_say_what_flagged_them():
    side = {"p50_ms": 10.0, "p95_ms": 12.5, "p99_ms": 13.0, "images_per_s": 3200.0}
    c = {"regressed_classes": [], "overall": {"regressed": False},
         "reasons": ["latency: 31% slower pair by pair", "robustness: 1 cell regressed"],
         "latency": {"pairs": 50, "images_per_request": 32, "paired_ratio_median": 1.31, "p95_change_ms": 4.2,
                     "p50_change_ms": 3.1, "p95_change_ci95": [3.0, 5.5], "flagged": True,
                     "baseline": side, "candidate": {**side, "p95_ms": 16.7}},
         "robustness": {"suite": "robustness-v1", "n_common_images": 70,
                        "regressed": [{"class": "<i>pikachu</i>", "perturbation": "darker"}],
                        "cells": {"<i>pikachu</i>": {"darker": {"harm": -0.09}, "blur": {"harm": 0.01}}},
                        "baseline": {"<i>pikachu</i>": {"perturbed": {"accuracy": 0.89}}},
                        "candidate": {"<i>pikachu</i>": {"perturbed": {"accuracy": 0.8}}}}}
    text = facets.lines(c, html.escape)
    assert text[0].startswith("latency: 50 interleaved pairs") and "x1.31" in text[0] and "SLOWER" in text[0]
    assert "p95 16.7 ms" in text[2]
    assert "REGRESSED: &lt;i&gt;pikachu&lt;/i&gt; under darker" in text[3]
    assert "perturbed accuracy 0.89 -> 0.80; hurts the candidate more: darker -0.09" in text[4]
    assert facets.failed_because(c) == "latency: 31% slower pair by pair; robustness: <i>pikachu</i> under darker"
    assert facets.metrics(c) == {"p95_ms_baseline": 12.5, "p95_ms_candidate": 16.7, "p95_change_ms": 4.2,
                                 "p50_change_ms": 3.1, "robustness_regressed_cells": 1}
