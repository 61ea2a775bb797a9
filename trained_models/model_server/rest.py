"""This project's REST API: `GET /health`, `GET /metadata`, `POST /predict`."""

from __future__ import annotations

import base64
import binascii
import json
import time

from flask import Blueprint, current_app, jsonify, request

from . import native
from .bodies import read_body
from .dataplane import ApiError, DataPlane

bp = Blueprint("rest", __name__)


def plane() -> DataPlane:
    return current_app.extensions["dataplane"]


@bp.get("/health")
def health():
    p = plane()
    if p.ready:
        return jsonify({"status": "ok"})
    if p.error:
        return jsonify({"status": "error", "error": p.error}), 503
    return jsonify({"status": "loading"}), 503


@bp.get("/metadata")
def metadata():
    return jsonify({**plane().get().metadata(), "predict_forms": list(native.FORMS)})


def payload_images() -> list[tuple[str, bytes]]:
    """Images from an IMAGE_BATCH body, multipart field `images`, or JSON {"instances": [{"b64": ...}]}."""
    if request.mimetype == native.IMAGE_BATCH:
        try:
            blobs = native.unpack_images(read_body(current_app.config["MAX_CONTENT_LENGTH"]),
                                         plane().settings.max_batch)
        except native.TooManyImages as e:
            raise ApiError(413, str(e)) from None
        except ValueError as e:
            raise ApiError(400, f"{native.IMAGE_BATCH} body: {e}") from None
        return [(f"images[{i}]", data) for i, data in enumerate(blobs)]
    if request.mimetype == "multipart/form-data":
        files = request.files.getlist("images")
        if not files and request.files:
            raise ApiError(400, f"multipart field must be named 'images', got {sorted(request.files)}")
        return [(f.filename or f"images[{i}]", f.read()) for i, f in enumerate(files)]
    if request.mimetype == "application/json":
        try:
            body = json.loads(request.get_data(cache=False))
        except (ValueError, UnicodeDecodeError):
            body = None
        except RecursionError:
            raise ApiError(400, "JSON body is nested too deeply") from None
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise ApiError(400, 'JSON body must be {"instances": [{"b64": "<base64 image>"}, ...]}')
        out = []
        for i, inst in enumerate(body["instances"]):
            if not isinstance(inst, dict) or not isinstance(inst.get("b64"), str):
                raise ApiError(400, f'instance {i} must be an object {{"b64": "<base64 image>"}}', index=i)
            try:
                out.append((f"instances[{i}]", base64.b64decode(inst["b64"], validate=True)))
            except (binascii.Error, ValueError):
                raise ApiError(400, f"instance {i}: b64 is not valid base64", index=i) from None
        return out
    raise ApiError(415, f"send {native.IMAGE_BATCH}, multipart/form-data with field 'images', or application/json "
                        "with 'instances'")


@bp.post("/predict")
def predict():
    p = plane()
    model = p.get()
    t0 = time.perf_counter()
    batch = p.images(payload_images(), model)
    t1 = time.perf_counter()
    probs, predict_ms = p.predict(batch, model)
    labels = model.labels
    answer = native.Answer(
        model=native.AnsweringModel(fingerprint=model.fingerprint, version=model.version, name=model.name))
    if request.mimetype == native.IMAGE_BATCH:  # the score matrix: no object per image
        answer.labels, answer.scores = list(labels), probs.tolist()
    else:
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            answer.predictions.append(native.Prediction(labels[best], row[best], dict(zip(labels, row, strict=True))))
    answer.timing_ms = native.Timing(decode=round((t1 - t0) * 1000, 3), predict=round(predict_ms, 3),
                                     total=round((time.perf_counter() - t0) * 1000, 3))
    return current_app.response_class(native.encode(answer), mimetype="application/json")
