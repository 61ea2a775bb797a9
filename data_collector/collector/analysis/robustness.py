"""Robustness per class and per perturbation, from the stored answers to the perturbed copies.

Per model and class: accuracy and mean true-class probability on the clean images, on all their
perturbed copies, and on the copies of each perturbation. Between two versions, on the same
perturbed images (paired): for each (class, perturbation) the gate's own tests (McNemar on
answers, one-sided Wilcoxon on true-class probabilities, Holm-corrected over every cell) and its
rule (compare.judge_cell); a cell so flagged is a robustness regression. `harm` says how much more
the perturbation costs the candidate than the baseline: (candidate's perturbed - clean accuracy)
minus (baseline's), on the images both saw.
"""

from __future__ import annotations

import numpy as np

from ..stats.paired import holm, judge_cell, paired_cell, true_score
from ..testset.perturb import KIND, PERTURBATIONS, SUITE
from ..vocab import is_clean

EXAMPLES = 8  # perturbed images per cell the candidate gets wrong and the baseline right, kept to show


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _summary(rows: list[dict]) -> dict:
    return {"n": len(rows), "accuracy": _mean([float(r["predicted_label"] == r["label"]) for r in rows]),
            "score": _mean([true_score(r) for r in rows])}


def model_robustness(rows: list[dict], labels: list[str]) -> dict:
    """Per class: clean, perturbed (all), and per perturbation accuracy and true-class probability."""
    out = {}
    for lab in labels:
        clean = [r for r in rows if is_clean(r["kind"]) and r["label"] == lab]
        pert = [r for r in rows if r["kind"] == KIND and r["label"] == lab]
        if not pert:
            continue
        out[lab] = {"clean": _summary(clean), "perturbed": _summary(pert),
                    "by_perturbation": {p: _summary([r for r in pert if r["perturbation"] == p])
                                        for p in PERTURBATIONS if any(r["perturbation"] == p for r in pert)}}
    return out


def compare_robustness(base_rows: list[dict], cand_rows: list[dict], shared_labels: list[str], th) -> dict:
    """The paired comparison on the perturbed images both models answered under one label."""
    rng = np.random.default_rng(th.seed)
    base = {r["sha256"]: r for r in base_rows if r["kind"] == KIND}
    cand = {r["sha256"]: r for r in cand_rows if r["kind"] == KIND}
    common = [s for s in sorted(base.keys() & cand.keys())
              if base[s]["label"] == cand[s]["label"] and base[s]["label"] in shared_labels]
    clean_b = {r["sha256"]: r for r in base_rows if is_clean(r["kind"])}
    clean_c = {r["sha256"]: r for r in cand_rows if is_clean(r["kind"])}
    cells: dict[str, dict[str, dict]] = {}
    for lab in shared_labels:
        for p in PERTURBATIONS:
            shas = [s for s in common if base[s]["label"] == lab and base[s]["perturbation"] == p]
            if not shas:
                continue
            b = [base[s] for s in shas]
            c = [cand[s] for s in shas]
            cell = paired_cell(np.array([r["predicted_label"] == lab for r in b]),
                               np.array([r["predicted_label"] == lab for r in c]),
                               np.array([true_score(r) for r in b]), np.array([true_score(r) for r in c]), th, rng)
            cell["harm"] = _harm(b, c, clean_b, clean_c)
            cell["examples"] = [{"sha256": s, "path": base[s]["path"], "source_sha256": base[s]["source_sha256"],
                                 "baseline": base[s]["predicted_label"], "candidate": cand[s]["predicted_label"]}
                                for s in shas if base[s]["predicted_label"] == lab != cand[s]["predicted_label"]
                                ][:EXAMPLES]
            cells.setdefault(lab, {})[p] = cell
    adjusted = holm({(lab, p): c["score_p_value"] for lab, ps in cells.items() for p, c in ps.items() if c["n"]})
    regressed = []
    for lab, ps in cells.items():
        for p, c in ps.items():
            c["score_p_adjusted"] = adjusted.get((lab, p), 1.0)
            judge_cell(c, th)
            if c["regressed"]:
                regressed.append({"class": lab, "perturbation": p})
    return {"suite": SUITE, "perturbations": {k: v[0] for k, v in PERTURBATIONS.items()},
            "n_common_images": len(common), "cells": cells, "regressed": regressed,
            "regressed_classes": sorted({r["class"] for r in regressed}), "flagged": bool(regressed)}


def _harm(b: list[dict], c: list[dict], clean_b: dict, clean_c: dict) -> float | None:
    """(candidate's perturbed - clean) minus (baseline's perturbed - clean) accuracy, over the copies
    whose source both models answered."""
    pairs = [(rb, rc) for rb, rc in zip(b, c, strict=True)
             if rb["source_sha256"] in clean_b and rb["source_sha256"] in clean_c]
    if not pairs:
        return None

    def right(r):
        return float(r["predicted_label"] == r["label"])

    cand = np.mean([right(rc) - right(clean_c[rc["source_sha256"]]) for _, rc in pairs])
    base = np.mean([right(rb) - right(clean_b[rb["source_sha256"]]) for rb, _ in pairs])
    return float(cand - base)


def reason(rob: dict) -> str:
    """The one line a robustness regression adds to a verdict."""
    by_class: dict[str, list[str]] = {}
    for r in rob["regressed"]:
        by_class.setdefault(r["class"], []).append(r["perturbation"])
    return "robustness: " + "; ".join(f"{lab} under {', '.join(ps)}" for lab, ps in by_class.items())
