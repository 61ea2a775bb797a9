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
