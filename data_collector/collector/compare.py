"""Paired comparison of two model versions on the images both saw: McNemar + bootstrap.

A class counts as regressed when its accuracy drop exceeds `max_drop` AND the exact McNemar
test (binomial on the discordant pairs) gives p < `alpha`: a big drop on a handful of images
is noise, a tiny but significant drop is not worth a page. A class whose drop exceeds
`max_drop` without being significant is marked `dropped-not-significant`: the test set is too
small to tell, not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from .store import ModelInfo
from .vocab import is_probe

EASY_RECALL = 0.9
COMPARE_LEGEND = ("b/c: images right in the baseline only / right in the candidate only (the pairs "
                  "McNemar's test weighs); change and 95% CI: candidate minus baseline accuracy.")
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Thresholds:
    max_drop: float = 0.05
    alpha: float = 0.05
    seed: int = 0


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value; b = baseline right & candidate wrong, c = the reverse."""
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5).pvalue)


def bootstrap_ci(base_right: np.ndarray, cand_right: np.ndarray, rng: np.random.Generator,
                 samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """95% percentile CI of (candidate - baseline) accuracy, resampling images (paired)."""
    n = len(base_right)
    if n == 0:
        return (0.0, 0.0)
    diff = cand_right.astype(float) - base_right.astype(float)
    idx = rng.integers(0, n, size=(samples, n))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _cell(base_right: np.ndarray, cand_right: np.ndarray, th: Thresholds, rng) -> dict:
    n = len(base_right)
    b = int(np.sum(base_right & ~cand_right))
    c = int(np.sum(~base_right & cand_right))
    acc_b = float(base_right.mean()) if n else None
    acc_c = float(cand_right.mean()) if n else None
    delta = (acc_c - acc_b) if n else None
    p = mcnemar_exact(b, c)
    lo, hi = bootstrap_ci(base_right, cand_right, rng)
    dropped = bool(n and -delta > th.max_drop)
    regressed = dropped and p < th.alpha
    status = "regressed" if regressed else "dropped-not-significant" if dropped else "ok"
    return {"n": n, "baseline": acc_b, "candidate": acc_c, "delta": delta, "ci95": [lo, hi],
            "b_baseline_only": b, "c_candidate_only": c, "p_value": p, "regressed": regressed, "status": status}


def compare(baseline: ModelInfo, base_rows: list[dict], candidate: ModelInfo, cand_rows: list[dict],
            th: Thresholds = Thresholds()) -> dict:
    rng = np.random.default_rng(th.seed)
    shared_labels = [lab for lab in baseline.labels if lab in set(candidate.labels)]
    base = {r["sha256"]: r for r in base_rows if not is_probe(r["kind"])}
    cand = {r["sha256"]: r for r in cand_rows if not is_probe(r["kind"])}
    common = sorted(sha for sha in base.keys() & cand.keys() if base[sha]["label"] in shared_labels)
    labels = np.array([base[s]["label"] for s in common])
    br = np.array([base[s]["predicted_label"] == base[s]["label"] for s in common], dtype=bool)
    cr = np.array([cand[s]["predicted_label"] == cand[s]["label"] for s in common], dtype=bool)

    classes = {}
    for lab in shared_labels:
        m = labels == lab
        cell = _cell(br[m], cr[m], th, rng)
        cell["previously_easy"] = bool(cell["n"] and cell["baseline"] >= EASY_RECALL)
        classes[lab] = cell
    overall = _cell(br, cr, th, rng)

    new_labels = {}
    for lab in candidate.labels:
        if lab in baseline.labels:
            continue
        rows = [r for r in cand_rows if r["label"] == lab and not is_probe(r["kind"])]
        right = sum(r["predicted_label"] == lab for r in rows)
        new_labels[lab] = {"n": len(rows), "recall": right / len(rows) if rows else None}
    regressed = [lab for lab, c in classes.items() if c["regressed"]]
    return {
        "baseline": _ident(baseline), "candidate": _ident(candidate),
        "thresholds": {"max_drop": th.max_drop, "alpha": th.alpha},
        "shared_labels": shared_labels, "n_common_images": len(common),
        "overall": overall, "classes": classes,
        "new_labels": new_labels,
        "dropped_labels": [lab for lab in baseline.labels if lab not in candidate.labels],
        "regressed_classes": regressed,
        "previously_easy_regressed": [lab for lab in regressed if classes[lab]["previously_easy"]],
        "dropped_not_significant": [lab for lab, c in classes.items() if c["status"] == "dropped-not-significant"],
        "verdict": "regression" if regressed or overall["regressed"] else "pass",
    }


def _ident(m: ModelInfo) -> dict:
    return {"name": m.name, "version": m.version, "fingerprint": m.fingerprint, "labels": list(m.labels)}


def class_verdict(cell: dict) -> str:
    """The per-class verdict as people read it (terminal and HTML)."""
    if cell.get("status") == "regressed":
        return "REGRESSED (previously easy)" if cell.get("previously_easy") else "REGRESSED"
    if cell.get("status") == "dropped-not-significant":
        return "dropped, not significant: needs more images"
    return ""
