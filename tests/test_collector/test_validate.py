"""Checks on what a model server says, one field at a time."""

from __future__ import annotations

import math

import pytest

from collector.redact import redact_url
from collector.validate import InvalidAnswer, ModelChanged, metadata, predictions

FP = "a" * 64
GOOD = {"name": "m", "version": 2, "fingerprint": FP, "labels": ["x", "y"], "framework": "keras"}


def answer(**pred):
    p = {"label": "x", "confidence": 0.75, "scores": {"x": 0.75, "y": 0.25}, **pred}
    return {"model": {"fingerprint": FP, "version": "2"}, "predictions": [p]}


def test_good_metadata_is_kept_with_a_string_version():
    m = metadata(dict(GOOD))
    assert m["version"] == "2" and m["framework"] == "keras" and m["labels"] == ["x", "y"]


def test_oversized_extra_metadata_is_not_stored():
    m = metadata({**GOOD, "padding": "x" * 200_000})
    assert m["metadata_truncated"] is True and "padding" not in m


@pytest.mark.parametrize("change, field", [
    ({"labels": None}, "metadata.labels"), ({"labels": []}, "metadata.labels"),
    ({"labels": ["x", "x"]}, "metadata.labels"), ({"labels": ["x", ""]}, "metadata.labels[1]"),
    ({"labels": ["x", 3]}, "metadata.labels[1]"), ({"labels": ["x" * 201]}, "metadata.labels[0]"),
    ({"labels": ["a\tb"]}, "metadata.labels[0]"), ({"labels": [f"l{i}" for i in range(1001)]}, "metadata.labels"),
    ({"name": {"a": 1}}, "metadata.name"), ({"name": "a\x00b"}, "metadata.name"), ({"name": ""}, "metadata.name"),
    ({"version": True}, "metadata.version"), ({"version": "v" * 101}, "metadata.version"),
    ({"fingerprint": 5}, "metadata.fingerprint"), ({"fingerprint": "A" * 64}, "metadata.fingerprint"),
    ({"fingerprint": FP + "0"}, "metadata.fingerprint"),
])
def test_bad_metadata_names_the_field(change, field):
    with pytest.raises(InvalidAnswer) as e:
        metadata({**GOOD, **change})
    assert e.value.field == field


def test_missing_field_and_not_an_object():
    with pytest.raises(InvalidAnswer, match="metadata.labels: is missing"):
        metadata({k: v for k, v in GOOD.items() if k != "labels"})
    with pytest.raises(InvalidAnswer, match="must be a JSON object, got list"):
        metadata([GOOD])


def check(body, n=1):
    return predictions(body, n_sent=n, labels=["x", "y"], fingerprint=FP, version="2")


def test_a_good_answer_passes_and_is_normalised():
    (p,) = check(answer(scores={"y": 0.25, "x": 0.75}))
    assert p == {"label": "x", "confidence": 0.75, "scores": {"x": 0.75, "y": 0.25}}


@pytest.mark.parametrize("pred, field", [
    ({"label": "z"}, "predictions[0].label"), ({"label": None}, "predictions[0].label"),
    ({"confidence": math.nan}, "predictions[0].confidence"), ({"confidence": math.inf}, "predictions[0].confidence"),
    ({"confidence": -5}, "predictions[0].confidence"), ({"confidence": "high"}, "predictions[0].confidence"),
    ({"confidence": True}, "predictions[0].confidence"), ({"confidence": 0.5}, "predictions[0].confidence"),
    ({"scores": None}, "predictions[0].scores"), ({"scores": {"x": 1.0}}, "predictions[0].scores"),
    ({"scores": {"x": 0.75, "y": 0.25, "z": 0.0}}, "predictions[0].scores"),
    ({"scores": {"x": 0.75, "y": 5.55}}, "predictions[0].scores['y']"),
    ({"scores": {"x": 0.75, "y": 0.75}, "confidence": 0.75}, "predictions[0].scores"),
    ({"label": "y", "confidence": 0.25}, "predictions[0].label"),
])
def test_bad_predictions_name_the_field(pred, field):
    with pytest.raises(InvalidAnswer) as e:
        check(answer(**pred))
    assert e.value.field == field


def test_count_model_and_shape_of_the_answer():
    with pytest.raises(InvalidAnswer, match="has 1 entries for 2 images"):
        check(answer(), n=2)
    with pytest.raises(InvalidAnswer, match="model: missing"):
        check({"predictions": answer()["predictions"]})
    with pytest.raises(InvalidAnswer, match="response: must be a JSON object"):
        check([answer()])
    with pytest.raises(ModelChanged):
        check({**answer(), "model": {"fingerprint": "b" * 64, "version": "2"}})
    with pytest.raises(ModelChanged):
        check({**answer(), "model": {"fingerprint": FP, "version": "3"}})


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@host:5432/db", "postgresql://u:***@host:5432/db"),
    ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:pa/ss@host/db", "postgresql://u:***@host/db"),
    ("see http://a:b@h:1/x and sqlite:///f.db", "see http://a:***@h:1/x and sqlite:///f.db"),
    ("http://host:8080/v2", "http://host:8080/v2"),
])
def test_passwords_are_redacted(url, shown):
    assert redact_url(url) == shown
