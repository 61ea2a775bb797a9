"""model_report: per-class numbers, confusion matrices and probes from stored prediction rows."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.analysis.reports import model_report, recalls
from collector.storage.store import ModelInfo

LABELS = ["red", "green", "blue"]


def _row(label: str, predicted: str, kind: str = "photo", confidence: float = 0.9) -> dict:
    return {"label": label, "predicted_label": predicted, "kind": kind, "confidence": confidence}


def _model() -> ModelInfo:
    return ModelInfo(id=1, name="colors", version="2", fingerprint="f" * 64, labels=LABELS,
                     first_seen=datetime.now(UTC), urls=["http://m:8080"], backend="litert")


def test_the_confusion_matrix_counts_each_answer_once_and_by_kind():
    rows = ([_row("red", "red")] * 3 + [_row("red", "blue")] + [_row("green", "green", "sprite")] * 2
            + [_row("green", "red", "sprite")] + [_row("blue", "blue")]
            + [_row("pikachu", "red", "lookalike", 0.95), _row("pikachu", "blue", "lookalike", 0.4)])
    rep = model_report(_model(), rows)
    assert rep["confusion"]["matrix"] == [[3, 0, 1], [1, 2, 0], [0, 0, 1]]
    assert rep["n"] == 8 and rep["accuracy"] == 6 / 8
    assert rep["by_kind"]["photo"]["n"] == 5 and rep["by_kind"]["sprite"]["classes"]["green"]["recall"] == 2 / 3
    assert rep["classes"]["red"]["recall"] == 3 / 4 and rep["classes"]["red"]["precision"] == 3 / 4
    assert rep["probes"]["n"] == 2 and rep["probes"]["share_over_0_9"] == 0.5
    assert rep["model"] == {**_model().to_dict(), "urls": ["http://m:8080"]} and rep["model"]["backend"] == "litert"
    assert recalls({"red": (4, 3), "green": (3, 2)}, LABELS) == {
        "red": rep["classes"]["red"]["recall"], "green": rep["classes"]["green"]["recall"], "blue": None}


def test_an_answer_outside_the_labels_counts_as_wrong_but_not_in_the_matrix():
    rep = model_report(_model(), [_row("red", "ditto"), _row("red", "red")])
    assert rep["confusion"]["matrix"] == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert rep["accuracy"] == 0.5 and rep["classes"]["red"]["support"] == 1
