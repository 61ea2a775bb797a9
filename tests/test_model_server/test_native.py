"""The native API's types, one definition for both sides: what the server answers is what the
collector decodes and checks, and the bounds hold on decoding."""

from __future__ import annotations

import json

import msgspec
import pytest

from collector.protocols.answers import NativeAnswer, NativeMetadata, decode
from collector.protocols.validate import predictions
from helpers import COLORS, color_png, multipart
from model_server import native


def test_the_servers_answer_is_the_collectors_type_and_passes_its_checks(client):
    meta = decode(client.get("/metadata").data, NativeMetadata, "metadata")
    names = list(COLORS)
    r = client.post("/predict", data=multipart(*(color_png(COLORS[c]) for c in names)),
                    content_type="multipart/form-data")
    assert r.status_code == 200 and r.mimetype == "application/json"
    answer = decode(r.data, NativeAnswer, "answer")
    assert isinstance(answer, native.Answer)
    assert (answer.model.fingerprint, answer.model.name) == (meta.fingerprint, meta.name)
    rows = predictions(answer, n_sent=len(names), labels=meta.labels, fingerprint=meta.fingerprint,
                       version=str(meta.version))
    assert [row["label"] for row in rows] == names  # the tiny model tells its colours apart
    raw = json.loads(r.data)
    assert set(raw) == {"model", "predictions", "timing_ms"}
    assert set(raw["timing_ms"]) == {"decode", "predict", "total"}
    assert list(raw["predictions"][0]["scores"]) == meta.labels  # in the model's label order


def test_an_answer_round_trips_and_the_bounds_hold_when_decoding():
    answer = native.Answer(native.AnsweringModel(fingerprint="ab" * 32, version="3"),
                           [native.Prediction("red", 0.75, {"red": 0.75, "blue": 0.25})])
    assert msgspec.json.decode(native.encode(answer), type=native.Answer) == answer
    assert b"timing_ms" not in native.encode(answer)  # unset optional fields are left out
    too_sure = native.encode(native.Answer(native.AnsweringModel(), [native.Prediction("red", 1.5, {"red": 1.5})]))
    with pytest.raises(msgspec.ValidationError, match="confidence"):
        msgspec.json.decode(too_sure, type=native.Answer)
    long_label = native.encode(native.Prediction("x" * (native.MAX_LABEL_CHARS + 1), 1.0, {}))
    with pytest.raises(msgspec.ValidationError, match="label"):
        msgspec.json.decode(long_label, type=native.Prediction)


def test_the_image_batch_form_is_answered_with_a_score_matrix_the_collector_checks(client):
    meta = decode(client.get("/metadata").data, NativeMetadata, "metadata")
    assert meta.predict_forms == list(native.FORMS)  # the server says which request forms it reads
    names = list(COLORS)
    images = [color_png(COLORS[c]) for c in names]
    r = client.post("/predict", data=native.pack_images(images), content_type=native.IMAGE_BATCH)
    assert r.status_code == 200
    raw = json.loads(r.data)
    assert set(raw) == {"model", "labels", "scores", "timing_ms"}  # no object per image
    assert raw["labels"] == meta.labels and len(raw["scores"]) == len(names)
    answer = decode(r.data, NativeAnswer, "answer")
    rows = predictions(answer, n_sent=len(names), labels=meta.labels, fingerprint=meta.fingerprint,
                       version=str(meta.version))
    assert [row["label"] for row in rows] == names
    old = decode(client.post("/predict", data=multipart(*images), content_type="multipart/form-data").data,
                 NativeAnswer, "answer")
    assert [[p.scores[lab] for lab in meta.labels] for p in old.predictions] == answer.scores  # same numbers


def test_image_batch_bodies_that_break_their_framing_are_400_and_too_many_images_413(client, monkeypatch):
    good = native.pack_images([color_png(COLORS["red"])])
    for body, words in ((good[:2], "4-byte length"), (good[:-1], "its length says"),
                        (good + b"\x05\x00\x00\x00ab", "its length says")):
        r = client.post("/predict", data=body, content_type=native.IMAGE_BATCH)
        assert r.status_code == 400 and words in r.get_json()["error"], (body[:8], r.get_json())
    r = client.post("/predict", data=b"", content_type=native.IMAGE_BATCH)
    assert r.status_code == 400 and "empty batch" in r.get_json()["error"]
    r = client.post("/predict", data=native.pack_images([b"not an image"]), content_type=native.IMAGE_BATCH)
    assert r.status_code == 400 and "image 0 (images[0])" in r.get_json()["error"]
    many = native.pack_images([b"x"] * 300)  # the server's MAX_BATCH is 256 by default
    r = client.post("/predict", data=many, content_type=native.IMAGE_BATCH)
    assert r.status_code == 413 and "MAX_BATCH" in r.get_json()["error"]


def test_image_batch_round_trip_and_a_gzip_body(client):
    import gzip

    blobs = [b"", b"a", b"bc" * 1000]
    assert native.unpack_images(native.pack_images(blobs), 10) == blobs
    with pytest.raises(native.TooManyImages):
        native.unpack_images(native.pack_images(blobs), 2)
    body = gzip.compress(native.pack_images([color_png(COLORS["green"])]))
    r = client.post("/predict", data=body, content_type=native.IMAGE_BATCH, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(r.get_json()["scores"]) == 1


def test_a_score_matrix_that_does_not_fit_the_model_is_refused():
    from collector.protocols.answers import InvalidAnswer

    model = native.AnsweringModel(fingerprint="ab" * 32)
    labels = ["red", "green"]

    def check(**fields):
        return predictions(native.Answer(model, **fields), n_sent=1, labels=labels, fingerprint="ab" * 32,
                           version="1")

    assert check(labels=labels, scores=[[0.25, 0.75]]) == [
        {"label": "green", "confidence": 0.75, "scores": {"red": 0.25, "green": 0.75}}]
    for fields, where in (({"labels": ["green", "red"], "scores": [[0.25, 0.75]]}, "labels"),
                          ({"labels": labels, "scores": [[0.25, 0.75], [0.5, 0.5]]}, "scores"),
                          ({"labels": labels, "scores": [[1.0]]}, "scores[0]"),
                          ({"labels": labels, "scores": [[0.5, 0.2]]}, "scores[0]"),
                          ({"labels": labels}, "scores"),
                          ({"labels": labels, "scores": [[0.5, 0.5]],
                            "predictions": [native.Prediction("red", 0.5, {"red": 0.5, "green": 0.5})]},
                           "predictions")):
        with pytest.raises(InvalidAnswer) as e:
            check(**fields)
        assert e.value.field == where, (fields, e.value)


def test_a_labels_field_beside_predictions_is_ignored_as_before():
    """An answer of the object-per-image form that also carries `labels` is read as that form."""
    model = native.AnsweringModel(fingerprint="ab" * 32)
    answer = native.Answer(model, [native.Prediction("red", 0.75, {"red": 0.75, "green": 0.25})],
                           labels=["whatever"])
    rows = predictions(answer, n_sent=1, labels=["red", "green"], fingerprint="ab" * 32, version="1")
    assert rows == [{"label": "red", "confidence": 0.75, "scores": {"red": 0.75, "green": 0.25}}]
