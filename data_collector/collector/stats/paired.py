"""The paired tests of a comparison and the rule that judges a cell (a class, or a class under
a perturbation): compare.py and robustness.py both use them. See compare.py for the rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..settings import CollectorSettings
from .power import min_detectable_drop

BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Thresholds:
    max_drop: float = CollectorSettings.default("max_drop")
    alpha: float = CollectorSettings.default("alpha")
    seed: int = 0
    rule: str = CollectorSettings.default("gate_rule")
    min_score_drop: float = CollectorSettings.default("min_score_drop")
    calibration_rule: bool = CollectorSettings.default("calibration_rule")
    max_ece_rise: float = CollectorSettings.default("max_ece_rise")
    robustness: bool = CollectorSettings.default("robustness")  # judge the perturbed copies too (robustness.py)

    @classmethod
    def of(cls, s: CollectorSettings) -> Thresholds:
        return cls(max_drop=s.max_drop, alpha=s.alpha, rule=s.gate_rule, min_score_drop=s.min_score_drop,
                   calibration_rule=s.calibration_rule, max_ece_rise=s.max_ece_rise, robustness=s.robustness)

    def describe(self) -> str:
        answers = f"accuracy drop > {self.max_drop} with McNemar p < {self.alpha}"
        if self.rule == "mcnemar":
            return f"regressed = {answers}"
        return (f"regressed = true-class probability down >= {self.min_score_drop} on average with "
                f"Holm-corrected Wilcoxon p < {self.alpha} and accuracy down, or {answers}")


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value; b = baseline right & candidate wrong, c = the reverse."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest  # here, not at import: scipy.stats costs the CLI 0.7 s and ~30 MB

    return float(binomtest(b, b + c, 0.5).pvalue)


def score_drop_test(base_scores: np.ndarray, cand_scores: np.ndarray) -> tuple[float | None, float]:
    """(mean change, one-sided p that the candidate's true-class probabilities are lower)."""
    if len(base_scores) == 0:
        return None, 1.0
    diff = cand_scores.astype(float) - base_scores.astype(float)
    mean = float(diff.mean())
    if np.count_nonzero(diff) < 2:
        return mean, 1.0
    from scipy.stats import wilcoxon

    p = float(wilcoxon(diff, alternative="less", zero_method="wilcox").pvalue)
    return mean, p if np.isfinite(p) else 1.0


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, running, out = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[key]))
        out[key] = running
    return out


def bootstrap_ci(base_right: np.ndarray, cand_right: np.ndarray, rng: np.random.Generator,
                 samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float] | None:
    """95% percentile CI of (candidate - baseline) accuracy, resampling images (paired); None
    for a class without shared images (there is no change to bound)."""
    n = len(base_right)
    if n == 0:
        return None
    diff = cand_right.astype(float) - base_right.astype(float)
    idx = rng.integers(0, n, size=(samples, n))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def paired_cell(base_right: np.ndarray, cand_right: np.ndarray, base_scores: np.ndarray, cand_scores: np.ndarray,
          th: Thresholds, rng) -> dict:
    n = len(base_right)
    b = int(np.sum(base_right & ~cand_right))
    c = int(np.sum(~base_right & cand_right))
    acc_b = float(base_right.mean()) if n else None
    acc_c = float(cand_right.mean()) if n else None
    delta = (acc_c - acc_b) if n else None
    ci = bootstrap_ci(base_right, cand_right, rng)
    score_change, score_p = score_drop_test(base_scores, cand_scores)
    return {"n": n, "baseline": acc_b, "candidate": acc_c, "delta": delta, "ci95": list(ci) if ci else None,
            "b_baseline_only": b, "c_candidate_only": c, "p_value": mcnemar_exact(b, c),
            "score_change": score_change, "score_p_value": score_p, "score_p_adjusted": score_p,
            "min_detectable_drop": min_detectable_drop(n, th.alpha)}


def judge_cell(cell: dict, th: Thresholds) -> None:
    """Set `regressed`, `flagged_by` and `status` from the cell's evidence and the rule."""
    n, delta = cell["n"], cell["delta"]
    dropped = bool(n and -delta > th.max_drop)
    by = []
    if dropped and cell["p_value"] < th.alpha:
        by.append("answers")
    if (th.rule == "scores" and n and delta < 0 and cell["score_p_adjusted"] < th.alpha
            and -cell["score_change"] >= th.min_score_drop):
        by.append("scores")
    cell["flagged_by"] = by
    cell["regressed"] = bool(by)
    mdd = cell["min_detectable_drop"]
    cell["below_detectable"] = bool(dropped and (mdd is None or -delta < mdd))
    cell["status"] = "regressed" if by else "dropped-not-significant" if dropped else "ok"


def true_score(row: dict) -> float:
    """The probability the model gave the image's true label (0 when the label is not scored)."""
    scores = row.get("scores") or {}
    return float(scores.get(row["label"], 0.0))
