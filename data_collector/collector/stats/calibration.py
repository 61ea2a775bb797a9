"""Calibration: do a model's probabilities mean what they say, and did a retrain change that?

Computed from the stored rows (the labelled, unperturbed images; never lookalike probes):

- **ECE** (expected calibration error) of the top-1 confidence: 15 equal-width bins on [0, 1]
  (a value on an inner edge falls in the lower bin, as in scikit-learn's `calibration_curve`),
  the mean over images of |accuracy - mean confidence| of each image's bin.
- **Class-wise ECE** of class k (one-vs-rest): the same bins on every image's probability for k,
  against the share of each bin whose label is k. It equals scikit-learn's
  `calibration_curve(y == k, p_k, n_bins=15, strategy="uniform")` weighted by its bin counts.
- **Brier score**: the mean over images of sum_k (p_k - [label = k])^2 over the model's labels;
  per class, one-vs-rest (`brier_score_loss(y == k, p_k)`).
- **The change between two versions** on the images both saw: candidate minus baseline, with a
  95% percentile interval from a paired bootstrap over images (one resample draws the same
  images for both).

The rule (off unless `--calibration-rule`): the model is flagged when its top-1 ECE rose by more
than `max_ece_rise` and the interval's lower end is above 0.
"""

from __future__ import annotations

import numpy as np

N_BINS = 15
BOOTSTRAP_SAMPLES = 2000
BINNING = f"{N_BINS} equal-width bins of the top-1 confidence"


def _bins(p: np.ndarray) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    return np.searchsorted(edges[1:-1], p)


def ece(hit: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """ECE of probabilities `p` against outcomes `hit` (0/1). With `weights` (resamples x images,
    how often each image was drawn) one ECE per resample."""
    bins = np.eye(N_BINS)[_bins(p)]  # images x bins
    gap = bins * (hit.astype(float) - p)[:, None]
    if weights is None:
        return float(np.abs(gap.sum(axis=0)).sum() / max(len(p), 1))
    return np.abs(weights @ gap).sum(axis=1) / max(len(p), 1)


def reliability(hit: np.ndarray, p: np.ndarray) -> list[dict]:
    """The reliability diagram's bins: range, images, mean confidence, accuracy (non-empty bins)."""
    ids = _bins(p)
    out = []
    for b in range(N_BINS):
        m = ids == b
        if m.any():
            out.append({"lo": b / N_BINS, "hi": (b + 1) / N_BINS, "n": int(m.sum()),
                        "confidence": float(p[m].mean()), "accuracy": float(hit[m].mean())})
    return out


def _matrix(rows: list[dict], labels: list[str]) -> np.ndarray | None:
    """images x labels probabilities, or None when some row has no full score vector."""
    out = np.zeros((len(rows), len(labels)))
    for i, r in enumerate(rows):
        scores = r.get("scores")
        if not isinstance(scores, dict) or not all(lab in scores for lab in labels):
            return None
        out[i] = [float(scores[lab]) for lab in labels]
    return out


def _confidences(rows: list[dict]) -> np.ndarray | None:
    """Each row's top-1 confidence (else its predicted label's score); None when a row has neither."""
    out = []
    for r in rows:
        c = r.get("confidence")
        if c is None:
            c = (r.get("scores") or {}).get(r["predicted_label"])
        if c is None:
            return None
        out.append(float(c))
    return np.array(out)


def model_calibration(rows: list[dict], labels: list[str]) -> dict:
    """ECE, Brier and the reliability bins of one model on its labelled rows (label in `labels`)."""
    rows = [r for r in rows if r["label"] in labels]
    if not rows:
        return {"n": 0, "ece": None, "brier": None, "reliability": [], "classes": {}, "binning": BINNING}
    conf = _confidences(rows)
    if conf is None:
        return {"n": len(rows), "ece": None, "brier": None, "reliability": [], "classes": {}, "binning": BINNING}
    hit = np.array([r["predicted_label"] == r["label"] for r in rows], dtype=float)
    probs = _matrix(rows, labels)
    out = {"n": len(rows), "ece": ece(hit, conf), "brier": None, "reliability": reliability(hit, conf),
           "classes": {}, "binning": BINNING}
    if probs is None:
        return out
    onehot = np.array([[r["label"] == lab for lab in labels] for r in rows], dtype=float)
    out["brier"] = float(_brier_per_image(rows, labels).mean())
    for j, lab in enumerate(labels):
        out["classes"][lab] = {"ece": ece(onehot[:, j], probs[:, j]),
                               "brier": float(((probs[:, j] - onehot[:, j]) ** 2).mean())}
    return out


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def _brier_per_image(rows: list[dict], labels: list[str]) -> np.ndarray | None:
    probs = _matrix(rows, labels)
    if probs is None:
        return None
    onehot = np.array([[r["label"] == lab for lab in labels] for r in rows], dtype=float)
    return ((probs - onehot) ** 2).sum(axis=1)


def paired_change(base: list[dict], cand: list[dict], base_labels: list[str], cand_labels: list[str], *,
                  seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """Candidate minus baseline ECE and Brier on the same images (rows in the same order, labels
    both know), each with a paired bootstrap interval; class-wise ECE of the shared labels too.
    Each side's Brier score sums over its own labels."""
    n = len(base)
    out = {"n": n, "ece": None, "ece_ci95": None, "brier": None, "brier_ci95": None, "classes": {}}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    weights = np.apply_along_axis(np.bincount, 1, rng.integers(0, n, size=(samples, n)), minlength=n).astype(float)

    def delta(hit_b, p_b, hit_c, p_c) -> tuple[float, list[float]]:
        point = ece(hit_c, p_c) - ece(hit_b, p_b)
        return point, _interval(ece(hit_c, p_c, weights) - ece(hit_b, p_b, weights))

    hit_b = np.array([r["predicted_label"] == r["label"] for r in base], dtype=float)
    hit_c = np.array([r["predicted_label"] == r["label"] for r in cand], dtype=float)
    conf_b, conf_c = _confidences(base), _confidences(cand)
    if conf_b is None or conf_c is None:
        return out
    out["ece"], out["ece_ci95"] = delta(hit_b, conf_b, hit_c, conf_c)
    brier_b, brier_c = _brier_per_image(base, base_labels), _brier_per_image(cand, cand_labels)
    if brier_b is None or brier_c is None:
        return out
    per_image = brier_c - brier_b
    out["brier"], out["brier_ci95"] = float(per_image.mean()), _interval(weights @ per_image / n)
    shared = [lab for lab in base_labels if lab in cand_labels]
    pb, pc = _matrix(base, shared), _matrix(cand, shared)
    for j, lab in enumerate(shared):
        y = np.array([r["label"] == lab for r in base], dtype=float)
        point, ci = delta(y, pb[:, j], y, pc[:, j])
        out["classes"][lab] = {"ece": point, "ece_ci95": ci}
    return out


def judge(change: dict, *, on: bool, max_rise: float) -> dict:
    """The rule's verdict on a paired change: flagged only when the rule is on."""
    rose = bool(change["ece"] is not None and change["ece"] > max_rise and change["ece_ci95"][0] > 0)
    return {"rule_on": on, "max_ece_rise": max_rise, "rose_significantly": rose, "flagged": bool(on and rose)}
