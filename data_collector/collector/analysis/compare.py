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

import numpy as np

from ..stats.paired import (  # noqa: F401 - Thresholds and the tests are compare's API too
    BOOTSTRAP_SAMPLES,
    Thresholds,
    bootstrap_ci,
    holm,
    judge_cell,
    mcnemar_exact,
    paired_cell,
    score_drop_test,
    true_score,
)
from ..storage.store import ModelInfo
from ..vocab import RULES, is_clean

EASY_RECALL = 0.9
COMPARE_LEGEND = ("b/c: images right in the baseline only / right in the candidate only (the pairs "
                  "McNemar's test weighs, p); change: candidate minus baseline accuracy; "
                  "score: mean change of the true-class probability, p(s): its one-sided Wilcoxon p, "
                  "Holm-corrected over the classes; MDD: smallest accuracy drop these images can show "
                  "on answers alone.")


def compare(baseline: ModelInfo, base_rows: list[dict], candidate: ModelInfo, cand_rows: list[dict],
            th: Thresholds | None = None) -> dict:
    th = th or Thresholds()
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

    new_labels = _new_labels(baseline, candidate, cand_rows)
    regressed = [lab for lab, c in classes.items() if c["regressed"]]
    calibration = _calibration(baseline, [base[s] for s in common], candidate, [cand[s] for s in common], th)
    robustness = _robustness(base_rows, cand_rows, shared_labels, th) if th.robustness else None
    reasons = _reasons(regressed, overall, calibration, robustness)
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


def _new_labels(baseline: ModelInfo, candidate: ModelInfo, cand_rows: list[dict]) -> dict:
    """The candidate's recall on the labels the baseline does not know (not compared)."""
    out = {}
    for lab in candidate.labels:
        if lab in baseline.labels:
            continue
        rows = [r for r in cand_rows if r["label"] == lab and is_clean(r["kind"])]
        right = sum(r["predicted_label"] == lab for r in rows)
        out[lab] = {"n": len(rows), "recall": right / len(rows) if rows else None}
    return out


def _reasons(regressed: list[str], overall: dict, calibration: dict, robustness: dict | None) -> list[str]:
    """What fails the verdict, a line each: classes (or overall accuracy), calibration, robustness."""
    reasons = ([f"regressed {', '.join(regressed)}"] if regressed else ["regressed overall"] if overall["regressed"]
               else [])
    if calibration["flagged"]:
        ch = calibration["change"]
        before, after = calibration["baseline"]["ece"], calibration["candidate"]["ece"]
        reasons.append(f"calibration: ECE {before:.3f} -> {after:.3f} (+{ch['ece']:.3f}, "
                       f"95% CI {ch['ece_ci95'][0]:+.3f}..{ch['ece_ci95'][1]:+.3f})")
    if robustness and robustness["flagged"]:
        from .robustness import reason

        reasons.append(reason(robustness))
    return reasons


def _robustness(base_rows: list[dict], cand_rows: list[dict], shared_labels: list[str], th: Thresholds) -> dict:
    from .robustness import compare_robustness, model_robustness

    out = compare_robustness(base_rows, cand_rows, shared_labels, th)
    out["baseline"], out["candidate"] = model_robustness(base_rows, shared_labels), model_robustness(
        cand_rows, shared_labels)
    return out


def _calibration(baseline: ModelInfo, base_rows: list[dict], candidate: ModelInfo, cand_rows: list[dict],
                 th: Thresholds) -> dict:
    """Each side's calibration on the images both saw, the paired change and the rule's verdict."""
    from ..stats import calibration as cal

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
