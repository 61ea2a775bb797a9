"""The one implementation of per-class metrics, used by the reports and the model cards."""

from __future__ import annotations

import numpy as np
import pytest

from collector.formatting import interval, num
from collector.stats.metrics import class_metrics, confusion_matrix


def test_class_metrics_from_a_known_confusion_matrix():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [1, 0, 0]]
    m = class_metrics(cm, ["a", "b", "c"])
    assert m["a"] == {"support": 4, "precision": 0.6, "recall": 0.75, "f1": pytest.approx(2 / 3)}
    assert m["b"]["precision"] == 0.5 and m["b"]["recall"] == 0.5
    assert m["c"] == {"support": 1, "precision": None, "recall": 0.0, "f1": None}  # never predicted


def test_model_cards_use_the_same_numbers():
    from model_creation.data import per_class_metrics

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    labels = ["a", "b", "c", "d"]
    card = per_class_metrics(y_true, y_pred, labels)
    assert card["classes"] == class_metrics(confusion_matrix(y_true, y_pred, 4), labels)
    assert card["n"] == 200 and card["accuracy"] == pytest.approx(np.mean(y_true == y_pred))


def test_number_formatting():
    assert num(None) == "-" and num(0.5) == "0.500" and num(0.05, signed=True) == "+0.050"
    assert num(-0.1, 2, signed=True) == "-0.10"
    assert interval(-0.2, 0.0) == "[-0.200, +0.000]"
