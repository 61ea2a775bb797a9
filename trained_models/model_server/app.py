"""Flask app factory: `create_app()` serves one model folder (REST, OIP v2, metrics)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time

import numpy as np
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from werkzeug.exceptions import HTTPException

from . import metrics_dir, oip
from .model import LoadedModel, load_model_folder
from .preprocessing import ImageError, preprocess_bytes
from .settings import ServerSettings

log = logging.getLogger("model_server")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


class ModelHolder:
    """Loads the model once (optionally in the background) and exposes a `ready` flag."""

    def __init__(self, settings: ServerSettings, loader=load_model_folder):
        self.settings = settings
        self.model: LoadedModel | None = None
        self.error: str | None = None
        self._loader = loader
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.load_async:
            self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
            self._thread.start()
        else:
            self._load()
            if self.error:
                raise RuntimeError(self.error)

    def _load(self) -> None:
        try:
            self.model = self._loader(self.settings.model_dir)
            log.info("loaded %s v%s (%s)", self.model.name, self.model.version, self.model.fingerprint[:12])
        except Exception as e:  # reported on /health; the process stays up to say why
            self.error = f"model could not be loaded from {self.settings.model_dir!r}: {e}"
            log.error(self.error)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    def get(self) -> LoadedModel:
        if self.model is None:
            raise ApiError(503, self.error or "model is still loading")
        return self.model


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("model_server_requests_total", "HTTP requests",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("model_server_request_latency_seconds", "Request latency",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch = Histogram("model_server_batch_size", "Images per inference call",
                               registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.images = Counter("model_server_images_total", "Images classified", registry=self.registry)
        self.errors = Counter("model_server_errors_total", "Requests answered with an error",
                              ["endpoint", "status"], registry=self.registry)


def _decode_images(blobs: list[tuple[str, bytes]], model: LoadedModel, settings: ServerSettings) -> np.ndarray:
    if not blobs:
        raise ApiError(400, "empty batch: send at least one image")
    if len(blobs) > settings.max_batch:
        raise ApiError(413, f"batch of {len(blobs)} images is over the limit of {settings.max_batch}")
    arrays = []
    for i, (name, data) in enumerate(blobs):
        try:
            arrays.append(preprocess_bytes(data, model.spec, max_pixels=settings.max_pixels))
        except ImageError as e:
            raise ApiError(400, f"image {i} ({name}): {e}", index=i) from None
    return np.stack(arrays)


def _predict_payload_images() -> list[tuple[str, bytes]]:
    """Images from multipart field `images`, or JSON {"instances": [{"b64": ...}]}."""
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
    raise ApiError(415, "send multipart/form-data with field 'images', or application/json with 'instances'")


def json_http_error(e: HTTPException, message: str | None = None) -> Response:
    """A werkzeug HTTP error as JSON, keeping its headers (e.g. `Allow` on a 405)."""
    resp = jsonify({"error": message or e.description})
    resp.status_code = e.code or 500
    for key, value in e.get_headers():
        if key.lower() != "content-type":
            resp.headers[key] = value
    return resp


def create_app(test_config: dict | None = None, *, loader=load_model_folder) -> Flask:
    """Production reads the environment (MODEL_DIR, ...); tests pass a dict."""
    settings = (ServerSettings.from_mapping(test_config) if test_config is not None
                else ServerSettings.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["MAX_FORM_PARTS"] = settings.max_batch + 16
    app.json.sort_keys = False
    holder = ModelHolder(settings, loader)
    metrics = Metrics()
    app.extensions["model_holder"] = holder
    app.extensions["metrics"] = metrics

    @app.before_request
    def _start_timer():
        g.t0 = time.perf_counter()

    @app.after_request
    def _record(resp):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, request.method, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("t0", time.perf_counter()))
        if resp.status_code >= 400:
            metrics.errors.labels(endpoint, str(resp.status_code)).inc()
        return resp

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return jsonify({"error": e.message, **e.extra}), e.status

    @app.errorhandler(oip.OIPError)
    def _oip_error(e: oip.OIPError):
        return jsonify({"error": str(e)}), 400

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        msg = e.description
        if e.code == 413:
            if (request.content_length or 0) > settings.max_content_length:
                msg = (f"request body over the limit of {settings.max_content_length} bytes "
                       f"(MAX_CONTENT_LENGTH): it has {request.content_length}")
            elif request.mimetype == "multipart/form-data":
                msg = (f"too many multipart parts: at most {app.config['MAX_FORM_PARTS']} "
                       f"(a batch is at most {settings.max_batch} images, MAX_BATCH)")
            else:
                msg = f"request body over the limit of {settings.max_content_length} bytes (MAX_CONTENT_LENGTH)"
        return json_http_error(e, msg)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unhandled error")
        return jsonify({"error": "internal server error"}), 500

    # ---- REST ---------------------------------------------------------------------------
    @app.get("/health")
    def health():
        if holder.ready:
            return jsonify({"status": "ok"})
        if holder.error:
            return jsonify({"status": "error", "error": holder.error}), 503
        return jsonify({"status": "loading"}), 503

    @app.get("/metadata")
    def metadata():
        return jsonify(holder.get().metadata())

    def _run(batch: np.ndarray, model: LoadedModel) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        probs = model.predict(batch)
        metrics.batch.observe(len(batch))
        metrics.images.inc(len(batch))
        return probs, (time.perf_counter() - t) * 1000

    @app.post("/predict")
    def predict():
        model = holder.get()
        t0 = time.perf_counter()
        batch = _decode_images(_predict_payload_images(), model, settings)
        t1 = time.perf_counter()
        probs, predict_ms = _run(batch, model)
        preds = []
        for row in probs:
            best = int(np.argmax(row))
            preds.append({"label": model.labels[best], "confidence": float(row[best]),
                          "scores": {lab: float(p) for lab, p in zip(model.labels, row, strict=True)}})
        return jsonify({
            "model": {"name": model.name, "version": model.version, "fingerprint": model.fingerprint},
            "predictions": preds,
            "timing_ms": {"decode": round((t1 - t0) * 1000, 3), "predict": round(predict_ms, 3),
                          "total": round((time.perf_counter() - t0) * 1000, 3)},
        })

    @app.get("/metrics")
    def prometheus():
        registry = metrics.registry
        if os.environ.get(metrics_dir.ENV):  # several gunicorn workers: sum every worker's values
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    # ---- Open Inference Protocol v2 --------------------------------------------------------
    def _model_named(name: str, version: str | None = None) -> LoadedModel:
        model = holder.get()
        if name != model.name:
            raise ApiError(404, f"unknown model {name!r}; this server serves {model.name!r}")
        if version is not None and version != model.version:
            raise ApiError(404, f"model {name!r} has no version {version!r}; it serves {model.version!r}")
        return model

    @app.get("/v2")
    def v2_server():
        from . import __version__
        return jsonify({"name": "pokemon-model-server", "version": __version__,
                        "extensions": ["binary_tensor_data"]})

    @app.get("/v2/health/live")
    def v2_live():
        return jsonify({"live": True})

    @app.get("/v2/health/ready")
    def v2_ready():
        return jsonify({"ready": holder.ready}), 200 if holder.ready else 503

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def v2_model(name: str, version: str | None = None):
        m = _model_named(name, version)
        h, w = m.spec.height, m.spec.width
        return jsonify({
            "name": m.name, "versions": [m.version], "platform": "keras",
            "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]},
                       {"name": "input", "datatype": "FP32", "shape": [-1, h, w, 3]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(m.labels)]},
                        {"name": "labels", "datatype": "BYTES", "shape": [-1]}],
            "parameters": {"labels": m.labels, "fingerprint": m.fingerprint},
        })

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def v2_model_ready(name: str, version: str | None = None):
        m = _model_named(name, version)
        return jsonify({"name": m.name, "ready": True})

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def v2_infer(name: str, version: str | None = None):
        m = _model_named(name, version)
        req, tail = oip.parse_request(request.get_data(), request.headers.get(oip.HEADER_LENGTH))
        if len(req["inputs"]) != 1:
            raise ApiError(400, f"send exactly one input tensor, got {len(req['inputs'])}")
        kind, value, _ = oip.decode_input(req["inputs"][0], tail, 0)
        if kind == "bytes":
            batch = _decode_images([(f"images[{i}]", b) for i, b in enumerate(value)], m, settings)
        else:
            want = (m.spec.height, m.spec.width, 3)
            if value.ndim != 4 or value.shape[1:] != want:
                raise ApiError(400, f"FP32 input must have shape [N,{want[0]},{want[1]},3], got {list(value.shape)}")
            if value.shape[0] == 0:
                raise ApiError(400, "empty batch: send at least one image")
            if value.shape[0] > settings.max_batch:
                raise ApiError(413, f"batch of {value.shape[0]} is over the limit of {settings.max_batch}")
            if not np.isfinite(value).all():
                raise ApiError(400, "FP32 input holds NaN or infinity")
            batch = value
        probs, _ = _run(batch, m)
        body, headers = oip.encode_response(model_name=m.name, model_version=m.version,
                                            request_id=req.get("id"), probs=probs, labels=m.labels,
                                            binary=oip.wants_binary(req))
        return Response(body, status=200, headers=headers)

    holder.start()
    return app
