"""Open Inference Protocol v2 (KServe v2 / Triton HTTP) over the data plane.

Readiness follows the spec: 200 means ready, 4xx (400) means not ready. One model per server, so
the repository endpoints describe that one model; loading and unloading models is not supported
(a clear 404: deploy another server instead). Triton's statistics endpoints answer 404 and point
to `/metrics`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from . import __version__, oip
from .bodies import read_body
from .dataplane import ApiError, DataPlane

bp = Blueprint("v2", __name__, url_prefix="/v2")

INPUTS = {"images": "BYTES", "input": "FP32"}  # send one of them
OUTPUTS = ["probabilities", "labels"]


def plane() -> DataPlane:
    return current_app.extensions["dataplane"]


def _inputs_text() -> str:
    return "'images' (BYTES: encoded images) or 'input' (FP32 [N,H,W,3], preprocessed)"


@bp.get("")
def server():
    return jsonify({"name": "pokemon-model-server", "version": __version__, "extensions": ["binary_tensor_data"]})


@bp.get("/health/live")
def live():
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready():
    p = plane()
    if p.ready:
        return jsonify({"ready": True})
    return jsonify({"ready": False, "error": p.error or "model is still loading"}), 400


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    m = plane().model_named(name, version)
    h, w = m.spec.height, m.spec.width
    return jsonify({
        "name": m.name, "versions": [m.version], "platform": m.backend,
        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]},
                   {"name": "input", "datatype": "FP32", "shape": [-1, h, w, 3]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(m.labels)]},
                    {"name": "labels", "datatype": "BYTES", "shape": [-1]}],
        "parameters": {"labels": m.labels, "fingerprint": m.fingerprint, "backend": m.backend,
                       "preprocessing": m.spec.to_dict()},
    })


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    p = plane()
    if not p.ready:
        return jsonify({"name": name, "ready": False, "error": p.error or "model is still loading"}), 400
    m = p.model_named(name, version)
    return jsonify({"name": m.name, "ready": True})


@bp.get("/models/<name>/config")
@bp.get("/models/<name>/versions/<version>/config")
def model_config(name: str, version: str | None = None):
    """Triton's model configuration, for clients that ask for it (`get_model_config`)."""
    p = plane()
    m = p.model_named(name, version)
    h, w = m.spec.height, m.spec.width
    return jsonify({
        "name": m.name, "platform": m.backend, "max_batch_size": p.settings.max_batch,
        "input": [{"name": "images", "data_type": "TYPE_STRING", "dims": [1]},
                  {"name": "input", "data_type": "TYPE_FP32", "dims": [h, w, 3]}],
        "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [len(m.labels)]},
                   {"name": "labels", "data_type": "TYPE_STRING", "dims": [1]}],
        "parameters": {"labels": m.labels, "fingerprint": m.fingerprint},
    })


@bp.post("/repository/index")
def repository_index():
    p = plane()
    if not p.ready:
        return jsonify([])
    m = p.model
    return jsonify([{"name": m.name, "version": m.version, "state": "READY"}])


@bp.post("/repository/models/<name>/load")
@bp.post("/repository/models/<name>/unload")
def repository_control(name: str):
    raise ApiError(404, "model control is not supported: this server serves the one model folder it was started "
                        "with; start another server to serve another model")


@bp.get("/models/stats")
@bp.get("/models/<name>/stats")
@bp.get("/models/<name>/versions/<version>/stats")
def statistics(name: str | None = None, version: str | None = None):
    raise ApiError(404, "inference statistics are not served here: see GET /metrics (Prometheus)")


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    p = plane()
    m = p.model_named(name, version)
    body = read_body(p.settings.max_content_length)
    req, tail = oip.parse_request(body, request.headers.get(oip.HEADER_LENGTH))
    if len(req.inputs) != 1:
        raise ApiError(400, f"send exactly one input, {_inputs_text()}; got {len(req.inputs)}")
    inp = req.inputs[0]
    input_name = inp.name
    if input_name not in INPUTS:
        raise ApiError(400, f"unknown input {input_name[:100]!r}: this model's inputs are {_inputs_text()}")
    if inp.datatype != INPUTS[input_name]:
        raise ApiError(400, f"input {input_name!r} must be {INPUTS[input_name]}, got {inp.datatype[:40]!r}")
    outputs = oip.requested_outputs(req, OUTPUTS)
    kind, value, _ = oip.decode_input(inp, tail, 0)
    if kind == "bytes":
        batch = p.images([(f"{input_name}[{i}]", b) for i, b in enumerate(value)], m)
    else:
        batch = p.tensor(value, m)
    probs, _ = p.predict(batch, m)
    body, headers = oip.encode_response(model_name=m.name, model_version=m.version, request_id=req.id,
                                        probs=probs, labels=m.labels, outputs=outputs)
    return Response(body, status=200, headers=headers)
