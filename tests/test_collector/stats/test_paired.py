"""The paired tests behind every per-class verdict: McNemar, the score-drop test, Holm and the
paired bootstrap, checked against independent computations (a direct binomial sum, Holm by hand)."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from collector.stats.paired import (
    Thresholds,
    bootstrap_ci,
    holm,
    judge_cell,
    mcnemar_exact,
    paired_cell,
    score_drop_test,
    true_score,
)


def _two_sided_binomial(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


@pytest.mark.parametrize("b,c", [(0, 0), (5, 0), (0, 7), (3, 9), (12, 12), (40, 21)])
def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(_two_sided_binomial(b, c), rel=1e-9)


def test_holm_steps_down_stays_monotone_and_caps_at_one():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    adjusted = holm(p)
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


def test_the_score_drop_test_sees_lower_true_class_probabilities_only():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.6, 0.99, 60)
    lower = base - rng.uniform(0.05, 0.2, 60)
    change, p = score_drop_test(base, lower)
    assert change < -0.05 and p < 1e-6
    change, p = score_drop_test(base, base + 0.01)
    assert change > 0 and p > 0.5
    assert score_drop_test(base, base.copy()) == (0.0, 1.0)  # no pair differs: nothing to test
    assert score_drop_test(np.array([]), np.array([])) == (None, 1.0)


def test_the_bootstrap_interval_holds_the_observed_change_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    base = rng.random(40) < 0.9
    cand = base.copy()
    cand[:8] = False  # eight images the candidate now gets wrong
    observed = cand.mean() - base.mean()
    lo, hi = bootstrap_ci(base, cand, np.random.default_rng(1))
    assert lo <= observed <= hi < 0
    lo4, hi4 = bootstrap_ci(np.tile(base, 4), np.tile(cand, 4), np.random.default_rng(1))
    assert hi4 - lo4 < hi - lo
    assert bootstrap_ci(np.array([], bool), np.array([], bool), rng) is None


def test_a_cell_is_judged_by_the_rule_it_is_given():
    rng = np.random.default_rng(5)
    n = 80
    base = np.ones(n, bool)
    cand = base.copy()
    cand[:20] = False  # 25 points worse
    base_scores = np.full(n, 0.9)
    cand_scores = np.where(cand, 0.85, 0.3)
    cell = paired_cell(base, cand, base_scores, cand_scores, Thresholds(), rng)
    assert (cell["n"], cell["b_baseline_only"], cell["c_candidate_only"]) == (n, 20, 0)
    assert cell["delta"] == pytest.approx(-0.25)
    judge_cell(cell, Thresholds(rule="mcnemar"))
    assert cell["status"] == "regressed" and cell["flagged_by"] == ["answers"]
    judge_cell(cell, Thresholds(rule="scores"))
    assert cell["flagged_by"] == ["answers", "scores"]
    same = paired_cell(base, base.copy(), base_scores, base_scores.copy(), Thresholds(), rng)
    judge_cell(same, Thresholds())
    assert same["status"] == "ok" and not same["regressed"]
    two_wrong = np.array([False, False, True, True, True, True])  # 6 images, 2 now wrong: p = 0.5
    small = paired_cell(base[:6], two_wrong, base_scores[:6], np.where(two_wrong, 0.85, 0.3), Thresholds(), rng)
    judge_cell(small, Thresholds(rule="mcnemar"))
    assert small["status"] == "dropped-not-significant" and small["below_detectable"]


def test_the_true_score_is_the_probability_of_the_images_label():
    assert true_score({"label": "b", "scores": {"a": 0.2, "b": 0.8}}) == 0.8
    assert true_score({"label": "c", "scores": {"a": 0.2, "b": 0.8}}) == 0.0
    assert true_score({"label": "c", "scores": None}) == 0.0
