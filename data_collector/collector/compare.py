"""Paired comparison of two model versions on the images both saw.

Two pieces of evidence per class, both paired image by image:

- **Answers** (top-1): accuracy change with a bootstrap CI, and the exact McNemar test on the
  images whose answer flipped. With 30 images a class, answers alone cannot show a drop under
  ~0.20 (see `power.py`): real regressions of 10-15 points pass unseen.
- **Scores**: each image's probability for its true label, candidate minus baseline, tested
  one-sided (did it fall?) with the Wilcoxon signed-rank test; p-values Holm-corrected over the
  classes compared. A retrained model loses confidence on a class before it loses answers.

The rule (`Thresholds`, rule "scores", the default) flags a class as **regressed** when
  (a) its true-class probability fell significantly (Holm-corrected p < alpha), by at least
      `min_score_drop` on average, and the class lost answers (accuracy change < 0); or
  (b) its accuracy fell by more than `max_drop` with McNemar p < alpha (the answers alone show it).
Rule "mcnemar" keeps (b) only, the rule of earlier versions.
A class that lost more than `max_drop` without being flagged is `dropped-not-significant`, and
says whether the drop was below the smallest one its images could ever show on answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .power import min_detectable_drop
from .settings import CollectorSettings
from .store import ModelInfo
from .vocab import RULES, is_clean

EASY_RECALL = 0.9
COMPARE_LEGEND = ("b/c: images right in the baseline only / right in the candidate only (the pairs "
                  "McNemar's test weighs, p); change: candidate minus baseline accuracy; "
                  "score: mean change of the true-class probability, p(s): its one-sided Wilcoxon p, "
                  "Holm-corrected over the classes; MDD: smallest accuracy drop these images can show "
                  "on answers alone.")
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


def compare(baseline: ModelInfo, base_rows: list[dict], candidate: ModelInfo, cand_rows: list[dict],
            th: Thresholds = Thresholds()) -> dict:
    if th.rule not in RULES:
        raise ValueError(f"unknown rule {th.rule!r}; choose from {RULES}")
    rng = np.random.default_rng(th.seed)
    shared_labels = [lab for lab in baseline.labels if lab in set(candidate.labels)]
    base = {r["sha256"]: r for r in base_rows if is_clean(r["kind"])}
    cand = {r["sha256"]: r for r in cand_rows if is_clean(r["kind"])}
    both = base.keys() & cand.keys()
    # Only images both saw under one label are compared: a relabelled image is left out, not re-judged.
    relabelled = sorted(sha for sha in both if base[sha]["label"] != cand[sha]["label"])
    common = sorted(sha for sha in both if base[sha]["label"] == cand[sha]["label"]
                    and base[sha]["label"] in shared_labels)
    labels = np.array([base[s]["label"] for s in common])
    br = np.array([base[s]["predicted_label"] == base[s]["label"] for s in common], dtype=bool)
    cr = np.array([cand[s]["predicted_label"] == cand[s]["label"] for s in common], dtype=bool)
    bs = np.array([true_score(base[s]) for s in common], dtype=float)
    cs = np.array([true_score(cand[s]) for s in common], dtype=float)

    classes = {}
    for lab in shared_labels:
        m = labels == lab
        cell = paired_cell(br[m], cr[m], bs[m], cs[m], th, rng)
        cell["previously_easy"] = bool(cell["n"] and cell["baseline"] >= EASY_RECALL)
        classes[lab] = cell
    adjusted = holm({lab: c["score_p_value"] for lab, c in classes.items() if c["n"]})
    for lab, c in classes.items():
        c["score_p_adjusted"] = adjusted.get(lab, 1.0)
        judge_cell(c, th)
    overall = paired_cell(br, cr, bs, cs, th, rng)
    judge_cell(overall, th)

    new_labels = {}
    for lab in candidate.labels:
        if lab in baseline.labels:
            continue
        rows = [r for r in cand_rows if r["label"] == lab and is_clean(r["kind"])]
        right = sum(r["predicted_label"] == lab for r in rows)
        new_labels[lab] = {"n": len(rows), "recall": right / len(rows) if rows else None}
    regressed = [lab for lab, c in classes.items() if c["regressed"]]
    calibration = _calibration(baseline, [base[s] for s in common], candidate, [cand[s] for s in common], th)
    reasons = ([f"regressed {', '.join(regressed)}"] if regressed else ["regressed overall"] if overall["regressed"]
               else [])
    if calibration["flagged"]:
        ch = calibration["change"]
        before, after = calibration["baseline"]["ece"], calibration["candidate"]["ece"]
        reasons.append(f"calibration: ECE {before:.3f} -> {after:.3f} (+{ch['ece']:.3f}, "
                       f"95% CI {ch['ece_ci95'][0]:+.3f}..{ch['ece_ci95'][1]:+.3f})")
    robustness = _robustness(base_rows, cand_rows, shared_labels, th) if th.robustness else None
    if robustness and robustness["flagged"]:
        from .robustness import reason

        reasons.append(reason(robustness))
    return {
        "baseline": baseline.to_dict(), "candidate": candidate.to_dict(),
        "thresholds": {"max_drop": th.max_drop, "alpha": th.alpha, "rule": th.rule,
                       "min_score_drop": th.min_score_drop, "calibration_rule": th.calibration_rule,
                       "max_ece_rise": th.max_ece_rise, "description": th.describe()},
        "shared_labels": shared_labels, "n_common_images": len(common),
        "overall": overall, "classes": classes,
        "new_labels": new_labels,
        "dropped_labels": [lab for lab in baseline.labels if lab not in candidate.labels],
        "test_sets": test_set_difference(base, cand, relabelled, shared_labels),
        "regressed_classes": regressed,
        "previously_easy_regressed": [lab for lab in regressed if classes[lab]["previously_easy"]],
        "dropped_not_significant": [lab for lab, c in classes.items() if c["status"] == "dropped-not-significant"],
        "calibration": calibration,
        "robustness": robustness,
        "reasons": reasons,
        "verdict": "regression" if reasons else "pass",
    }


def _robustness(base_rows: list[dict], cand_rows: list[dict], shared_labels: list[str], th: Thresholds) -> dict:
    from .robustness import compare_robustness, model_robustness

    out = compare_robustness(base_rows, cand_rows, shared_labels, th)
    out["baseline"], out["candidate"] = model_robustness(base_rows, shared_labels), model_robustness(
        cand_rows, shared_labels)
    return out


def _calibration(baseline: ModelInfo, base_rows: list[dict], candidate: ModelInfo, cand_rows: list[dict],
                 th: Thresholds) -> dict:
    """Each side's calibration on the images both saw, the paired change and the rule's verdict."""
    from . import calibration as cal

    change = cal.paired_change(base_rows, cand_rows, list(baseline.labels), list(candidate.labels), seed=th.seed)
    return {"baseline": cal.model_calibration(base_rows, list(baseline.labels)),
            "candidate": cal.model_calibration(cand_rows, list(candidate.labels)),
            "change": change, **cal.judge(change, on=th.calibration_rule, max_rise=th.max_ece_rise)}


def test_set_difference(base: dict[str, dict], cand: dict[str, dict], relabelled: list[str],
                        shared_labels: list[str]) -> dict:
    """What differs between the labelled images the two models were evaluated on (of the labels
    both know): images only one side saw, and images the two saw under different labels."""
    known = set(shared_labels)
    only_base = sorted(r["path"] for sha, r in base.items() if sha not in cand and r["label"] in known)
    only_cand = sorted(r["path"] for sha, r in cand.items() if sha not in base and r["label"] in known)
    moved = [{"path": cand[sha]["path"], "baseline_label": base[sha]["label"], "candidate_label": cand[sha]["label"]}
             for sha in relabelled]
    return {"same": not (only_base or only_cand or moved), "baseline_only": len(only_base),
            "candidate_only": len(only_cand), "relabelled": len(moved), "examples": {
                "baseline_only": only_base[:10], "candidate_only": only_cand[:10], "relabelled": moved[:10]}}


def test_set_note(c: dict) -> str | None:
    """One line when the two sides were not evaluated on one test set."""
    t = c.get("test_sets")
    if not t or t["same"]:
        return None
    return (f"evaluated on different test sets: {t['baseline_only']} images only the baseline saw, "
            f"{t['candidate_only']} only the candidate, {t['relabelled']} relabelled (left out); compared on the "
            f"{c['n_common_images']} images both saw under one label")


def true_score(row: dict) -> float:
    """The probability the model gave the image's true label (0 when the label is not scored)."""
    scores = row.get("scores") or {}
    return float(scores.get(row["label"], 0.0))


def class_verdict(cell: dict) -> str:
    """The per-class verdict as people read it (terminal and HTML)."""
    if cell.get("status") == "regressed":
        return "REGRESSED (previously easy)" if cell.get("previously_easy") else "REGRESSED"
    if cell.get("status") == "dropped-not-significant":
        if cell.get("below_detectable"):
            mdd = cell.get("min_detectable_drop")
            limit = f"under the {mdd:.2f} its {cell['n']} images can show" if mdd else "too few images to show any"
            return f"dropped, not significant: {limit}"
        return "dropped, not significant"
    return ""
