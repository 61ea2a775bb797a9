"""Per-model metrics computed from the stored predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, select

from .schema import images, models, predictions

PROBE_BINS = (0.0, 0.5, 0.7, 0.9, 1.0000001)


class SelectorError(ValueError):
    pass


@dataclass
class ModelInfo:
    id: int
    name: str
    version: str
    fingerprint: str
    labels: list[str]
    first_seen: object

    @property
    def title(self) -> str:
        return f"{self.name} v{self.version} ({self.fingerprint[:12]})"


def all_models(conn: Connection) -> list[ModelInfo]:
    q = select(models.c.id, models.c.name, models.c.version, models.c.fingerprint, models.c.labels,
               models.c.first_seen).order_by(models.c.first_seen, models.c.id)
    return [ModelInfo(*r) for r in conn.execute(q)]


def resolve(conn: Connection, selector: str, *, relative_to: ModelInfo | None = None) -> ModelInfo:
    """A name (its newest version), a fingerprint prefix, NAME@previous or NAME@latest."""
    ms = all_models(conn)
    name, _, tag = selector.partition("@")
    same_name = [m for m in ms if m.name == name]
    if tag:
        if not same_name:
            raise SelectorError(f"no evaluated model named {name!r}")
        if tag == "latest":
            return same_name[-1]
        if tag == "previous":
            anchor = relative_to if relative_to and relative_to.name == name else same_name[-1]
            earlier = [m for m in same_name if (m.first_seen, m.id) < (anchor.first_seen, anchor.id)]
            if not earlier:
                raise SelectorError(f"{name!r} has no version before {anchor.title}")
            return earlier[-1]
        raise SelectorError(f"unknown tag @{tag}: use @latest or @previous")
    if same_name:
        return same_name[-1]
    hits = [m for m in ms if m.fingerprint.startswith(selector.lower())] if len(selector) >= 4 else []
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise SelectorError(f"fingerprint prefix {selector!r} is ambiguous ({len(hits)} models)")
    raise SelectorError(f"no evaluated model matches {selector!r} (a name, a fingerprint prefix of 4+ "
                        "characters, or NAME@previous)")


def load_rows(conn: Connection, model_id: int) -> list[dict]:
    q = (select(images.c.sha256, images.c.label, images.c.kind, predictions.c.predicted_label,
                predictions.c.confidence)
         .select_from(predictions.join(images, images.c.id == predictions.c.image_id))
         .where(predictions.c.model_id == model_id).order_by(images.c.sha256))
    return [dict(r) for r in conn.execute(q).mappings()]


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def model_report(model: ModelInfo, rows: list[dict]) -> dict:
    labels = list(model.labels)
    known = [r for r in rows if r["kind"] != "lookalike" and r["label"] in labels]
    probes = [r for r in rows if r["kind"] == "lookalike"]
    idx = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for r in known:
        if r["predicted_label"] in idx:
            cm[idx[r["label"]], idx[r["predicted_label"]]] += 1
    classes = {}
    for lab, i in idx.items():
        tp, support, predicted = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        p, rcl = _ratio(tp, predicted), _ratio(tp, support)
        f1 = 2 * p * rcl / (p + rcl) if p is not None and rcl is not None and p + rcl > 0 else None
        classes[lab] = {"support": support, "precision": p, "recall": rcl, "f1": f1}
    right = [r["confidence"] for r in known if r["predicted_label"] == r["label"]]
    wrong = [r["confidence"] for r in known if r["predicted_label"] != r["label"]]
    probe_conf = np.array([r["confidence"] for r in probes], dtype=float)
    hist = np.histogram(probe_conf, bins=PROBE_BINS)[0] if len(probe_conf) else np.zeros(len(PROBE_BINS) - 1)
    by_kind = {}
    for kind in sorted({r["kind"] for r in known}):
        ks = [r for r in known if r["kind"] == kind]
        by_kind[kind] = {"n": len(ks), "accuracy": _ratio(sum(r["predicted_label"] == r["label"] for r in ks),
                                                             len(ks))}
    return {
        "model": {"name": model.name, "version": model.version, "fingerprint": model.fingerprint,
                  "labels": labels},
        "n": len(known),
        "accuracy": _ratio(len(right), len(known)),
        "by_kind": by_kind,
        "classes": classes,
        "confusion": {"labels": labels, "matrix": cm.tolist()},
        "confidence": {"mean_when_right": float(np.mean(right)) if right else None,
                       "mean_when_wrong": float(np.mean(wrong)) if wrong else None},
        "probes": {
            "n": len(probes),
            "mean_max_confidence": float(probe_conf.mean()) if len(probe_conf) else None,
            "share_over_0_9": float((probe_conf >= 0.9).mean()) if len(probe_conf) else None,
            "histogram": {f"{lo:.1f}-{min(hi, 1.0):.1f}": int(c)
                          for lo, hi, c in zip(PROBE_BINS[:-1], PROBE_BINS[1:], hist, strict=True)},
        },
    }
