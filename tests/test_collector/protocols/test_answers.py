"""The typed boundary: what a model server says, decoded into types, then checked field by field."""

from __future__ import annotations

import json

import pytest

from collector.protocols.answers import InvalidAnswer, ModelChanged, NativeAnswer, NativeMetadata, NotJSON, decode
from collector.protocols.validate import native_facts, predictions, stored_metadata

FP = "a" * 64
GOOD = {"name": "m", "version": 2, "fingerprint": FP, "labels": ["x", "y"], "framework": "keras"}


def metadata(doc) -> dict:
    """As the client does it: the bytes decoded into NativeMetadata, then what is stored."""
    body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    m = decode(body, NativeMetadata, "metadata")
    extra = {k: v for k, v in json.loads(body).items() if k not in NativeMetadata.__struct_fields__}
    return stored_metadata(m, facts=native_facts(m), server=extra)


def answer(**pred):
    p = {"label": "x", "confidence": 0.75, "scores": {"x": 0.75, "y": 0.25}, **pred}
    return {"model": {"fingerprint": FP, "version": "2"}, "predictions": [p]}


def test_good_metadata_is_kept_with_a_string_version_and_extras_apart():
    m = metadata({**GOOD, "identity": "behavioural", "backend": "litert", "protocol": "v2"})
    assert m["version"] == "2" and m["labels"] == ["x", "y"]
    # The server's own keys are opaque data, never the collector's facts.
    assert m["server"] == {"framework": "keras", "identity": "behavioural", "protocol": "v2"}
    assert m["collector"] == {"identity": "declared", "protocol": "native", "scores": "probabilities",
                              "backend": "litert"}
    assert metadata({**GOOD, "backend": "\x1b[2Jtensorflow"})["collector"]["backend"] is None


def test_oversized_extra_metadata_is_not_stored():
    m = metadata({**GOOD, "padding": "x" * 200_000})
    assert m["server_truncated"] is True and "server" not in m


@pytest.mark.parametrize("change, where", [
    ({"labels": None}, "$.labels"), ({"labels": []}, "$.labels"),
    ({"labels": ["x", "x"]}, "appears more than once"), ({"labels": ["x", ""]}, "$.labels[1]"),
    ({"labels": ["x", 3]}, "$.labels[1]"), ({"labels": ["x" * 201]}, "$.labels[0]"),
    ({"labels": ["a\tb"]}, "labels[0]: contains control"), ({"labels": [f"l{i}" for i in range(1001)]}, "$.labels"),
    ({"labels": ["[bold]x"]}, None),  # markup is text: accepted, and shown literally
    ({"labels": ["x\u200b"]}, "labels[0]: contains control or format"),
    ({"labels": [" x"]}, "labels[0]: has leading or trailing space"),
    ({"name": {"a": 1}}, "$.name"), ({"name": "a\x00b"}, "name: contains control"), ({"name": ""}, "$.name"),
    ({"name": "ml_orig\u200binal"}, "name: contains control or format"),
    ({"name": "ml_original\u202e"}, "name: contains control or format"),
    ({"name": "x\x1b]8;;http://e/\x1b\\\\y"}, "name: contains control"),
    ({"version": True}, "$.version"), ({"version": "v" * 101}, "$.version"),
    ({"version": "3\r\nPASS"}, "version: contains control"), ({"version": 10 ** 400}, "$.version"),
    ({"version": -1}, "$.version"),
    ({"fingerprint": 5}, "$.fingerprint"), ({"fingerprint": "A" * 64}, "$.fingerprint"),
    ({"fingerprint": FP + "0"}, "$.fingerprint"),
])
def test_bad_metadata_names_the_field(change, where):
    if where is None:
        assert metadata({**GOOD, **change})["labels"] == change["labels"]
        return
    with pytest.raises(InvalidAnswer) as e:
        metadata({**GOOD, **change})
    assert where in str(e.value)


def test_missing_field_not_an_object_and_not_json():
    with pytest.raises(InvalidAnswer, match=r"missing required field `labels`"):
        metadata({k: v for k, v in GOOD.items() if k != "labels"})
    with pytest.raises(InvalidAnswer, match="Expected `object`, got `array`"):
        metadata([GOOD])
    for body in (b"not json", b'{"name": NaN}'):
        with pytest.raises(NotJSON):
            decode(body, NativeMetadata, "metadata")
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        with pytest.raises((NotJSON, InvalidAnswer)):  # and nothing else (no RecursionError)
            decode(deep, NativeMetadata, "metadata")


def check(body, n=1):
    typed = decode(json.dumps(body, allow_nan=True).encode(), NativeAnswer, "answer")
    return predictions(typed, n_sent=n, labels=["x", "y"], fingerprint=FP, version="2")


def test_a_good_answer_passes_and_is_normalised():
    (p,) = check(answer(scores={"y": 0.25, "x": 0.75}))
    assert p == {"label": "x", "confidence": 0.75, "scores": {"x": 0.75, "y": 0.25}}


@pytest.mark.parametrize("pred, where", [
    ({"label": "z"}, "predictions[0].label"), ({"label": None}, "$.predictions[0].label"),
    ({"confidence": float("nan")}, "not JSON"), ({"confidence": float("inf")}, "not JSON"),
    ({"confidence": -5}, "$.predictions[0].confidence"), ({"confidence": "high"}, "$.predictions[0].confidence"),
    ({"confidence": True}, "$.predictions[0].confidence"), ({"confidence": 0.5}, "predictions[0].confidence"),
    ({"confidence": 10 ** 400}, "$.predictions[0].confidence"),
    ({"scores": None}, "$.predictions[0].scores"), ({"scores": {"x": 1.0}}, "predictions[0].scores"),
    ({"scores": {"x": 0.75, "y": 0.25, "z": 0.0}}, "predictions[0].scores"),
    ({"scores": {"x": 0.75, "y": 5.55}}, "$.predictions[0].scores[...]"),
    ({"scores": {"x": 0.75, "y": -(10 ** 400)}}, "$.predictions[0].scores[...]"),
    ({"scores": {"x": 0.75, "y": 0.75}, "confidence": 0.75}, "predictions[0].scores"),
    ({"label": "y", "confidence": 0.25}, "predictions[0].label"),
])
def test_bad_predictions_name_the_field(pred, where):
    with pytest.raises((InvalidAnswer, NotJSON)) as e:
        check(answer(**pred))
    assert where == "not JSON" and e.type is NotJSON or where in str(e.value), str(e.value)


def test_count_model_and_shape_of_the_answer():
    with pytest.raises(InvalidAnswer, match="has 1 entries for 2 images"):
        check(answer(), n=2)
    with pytest.raises(InvalidAnswer, match="missing required field `model`"):
        check({"predictions": answer()["predictions"]})
    with pytest.raises(InvalidAnswer, match="Expected `object`, got `array`"):
        check([answer()])
    with pytest.raises(ModelChanged):
        check({**answer(), "model": {"fingerprint": "b" * 64, "version": "2"}})
    with pytest.raises(ModelChanged):
        check({**answer(), "model": {"fingerprint": FP, "version": "3"}})
