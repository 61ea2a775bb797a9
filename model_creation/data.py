"""Loading labelled images from a manifest into arrays, with the serving preprocessing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from collector.stats.metrics import class_metrics, confusion_matrix
from model_server.preprocessing import Preprocessing, preprocess_file

from .split_data import read_manifest


def load_split(base: Path, labels: list[str], spec: Preprocessing, kinds: tuple[str, ...] = ("photo", "sprite")
               ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Images of `base/manifest.csv` whose label is in `labels`: (x, y, rows)."""
    rows = [r for r in read_manifest(base / "manifest.csv") if r["label"] in labels and r["kind"] in kinds]
    index = {lab: i for i, lab in enumerate(labels)}
    x = np.stack([preprocess_file(base / r["path"], spec) for r in rows]) if rows else np.zeros(
        (0, spec.height, spec.width, 3), np.float32)
    y = np.array([index[r["label"]] for r in rows], dtype=np.int64)
    return x, y, rows


def data_hash(rows: list[dict]) -> str:
    """sha256 over the sorted (sha256, label) pairs: names the exact training set."""
    h = hashlib.sha256()
    for sha, label in sorted((r["sha256"], r["label"]) for r in rows):
        h.update(f"{sha} {label}\n".encode())
    return h.hexdigest()


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy and per-class metrics, computed by the collector's one implementation."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    return {"n": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else None,
            "classes": class_metrics(cm, labels)}
