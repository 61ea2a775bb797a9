"""Per-class precision, recall and F1 from a confusion matrix: one implementation for the
model cards (training) and the reports (collector)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class index, columns: predicted class index."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def class_metrics(cm: np.ndarray, labels: list[str]) -> dict[str, dict]:
    """{label: {support, precision, recall, f1}}; None where a ratio has no denominator."""
    out = {}
    for i, lab in enumerate(labels):
        tp, support, predicted = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        p, r = ratio(tp, predicted), ratio(tp, support)
        f1 = 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else None
        out[lab] = {"support": support, "precision": p, "recall": r, "f1": f1}
    return out
