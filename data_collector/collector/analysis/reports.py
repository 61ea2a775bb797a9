"""Per-model metrics computed from the stored predictions."""

from __future__ import annotations

import numpy as np

from ..stats.calibration import model_calibration
from ..stats.metrics import class_metrics, confusion_matrix, ratio
from ..stats.power import images_needed, min_detectable_drop
from ..storage.store import ModelInfo
from ..vocab import is_clean, is_probe

PROBE_BINS = (0.0, 0.5, 0.7, 0.9, 1.0000001)
POWER_ALPHA = 0.05  # the gate's default
POWER_DROP = 0.10  # "how many images to see a 10-point drop"


def model_report(model: ModelInfo, rows: list[dict]) -> dict:
    labels = list(model.labels)
    known = [r for r in rows if is_clean(r["kind"]) and r["label"] in labels]
    probes = [r for r in rows if is_probe(r["kind"])]
    cm = _confusion(known, labels)
    right = [r["confidence"] for r in known if r["predicted_label"] == r["label"]]
    wrong = [r["confidence"] for r in known if r["predicted_label"] != r["label"]]
    probe_conf = np.array([r["confidence"] for r in probes], dtype=float)
    hist = np.histogram(probe_conf, bins=PROBE_BINS)[0] if len(probe_conf) else np.zeros(len(PROBE_BINS) - 1)
    by_kind = {}
    for kind in sorted({r["kind"] for r in known}):
        ks = [r for r in known if r["kind"] == kind]
        kcm = _confusion(ks, labels)
        by_kind[kind] = {"n": len(ks), "accuracy": ratio(sum(r["predicted_label"] == r["label"] for r in ks),
                                                            len(ks)),
                         "classes": class_metrics(kcm, labels)}
    classes = class_metrics(cm, labels)
    needed = images_needed(POWER_DROP, POWER_ALPHA)
    for c in classes.values():
        c["min_detectable_drop"] = min_detectable_drop(c["support"], POWER_ALPHA)
        c["images_needed"] = needed
    return {
        "model": {**model.to_dict(), "urls": list(model.urls)},
        "power": {"alpha": POWER_ALPHA, "drop": POWER_DROP, "images_needed_per_class": needed},
        "n": len(known),
        "accuracy": ratio(len(right), len(known)),
        "by_kind": by_kind,
        "classes": classes,
        "confusion": {"labels": labels, "matrix": cm.tolist()},
        "confidence": {"mean_when_right": float(np.mean(right)) if right else None,
                       "mean_when_wrong": float(np.mean(wrong)) if wrong else None},
        "calibration": model_calibration(known, labels),
        "probes": {
            "n": len(probes),
            "mean_max_confidence": float(probe_conf.mean()) if len(probe_conf) else None,
            "share_over_0_9": float((probe_conf >= 0.9).mean()) if len(probe_conf) else None,
            "histogram": {f"{lo:.1f}-{min(hi, 1.0):.1f}": int(c)
                          for lo, hi, c in zip(PROBE_BINS[:-1], PROBE_BINS[1:], hist, strict=True)},
        },
    }


def _confusion(rows: list[dict], labels: list[str]) -> np.ndarray:
    """metrics.confusion_matrix of the rows whose answer is one of `labels` (true labels are)."""
    idx = {lab: i for i, lab in enumerate(labels)}
    pairs = [(idx[r["label"]], idx[r["predicted_label"]]) for r in rows if r["predicted_label"] in idx]
    true, pred = zip(*pairs, strict=True) if pairs else ((), ())
    return confusion_matrix(np.array(true, dtype=int), np.array(pred, dtype=int), len(labels))


def recalls(counts: dict[str, tuple[int, int]], labels: list[str]) -> dict[str, float | None]:
    """Per-class recall from (images, right answers) per true label (store.class_counts); None for a
    class without images — the same numbers as model_report's `classes[...]["recall"]`."""
    return {lab: (counts[lab][1] / counts[lab][0] if counts.get(lab, (0, 0))[0] else None) for lab in labels}


def identity_line(m: dict, *, with_url: bool = True) -> str:
    """How the model was identified and reached (declared or behavioural identity, protocol, URL)."""
    how = "fingerprint declared by the server" if m.get("identity", "declared") == "declared" else \
        "behavioural fingerprint (from its answers on the canary images)"
    where = f" at {m['urls'][-1]}" if m.get("urls") and with_url else ""
    return f"identity: {how}; protocol {m.get('protocol', 'native')}{where}; scores: {m.get('scores', 'probabilities')}"
