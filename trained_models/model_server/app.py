"""Flask app factory: `create_app()` serves one model folder.

The shape follows MLServer's: one data plane (`dataplane.DataPlane`: the model, its loading,
batch limits, the forward pass, metrics) under thin blueprints for each API, codecs apart:
- `rest`: `GET /health`, `GET /metadata`, `POST /predict` (multipart or JSON);
- `v2`: the Open Inference Protocol v2 (`oip` is its codec, `bodies` decompresses request bodies);
- `observability`: `GET /metrics` and the per-request counters.
"""

from __future__ import annotations

import functools
import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from . import observability, oip, rest, v2
from .dataplane import ApiError, DataPlane
from .model import load_model_folder
from .settings import ServerSettings

log = logging.getLogger("model_server")


def json_http_error(e: HTTPException, message: str | None = None):
    """A werkzeug HTTP error as JSON, keeping its headers (e.g. `Allow` on a 405)."""
    resp = jsonify({"error": message or e.description})
    resp.status_code = e.code or 500
    for key, value in e.get_headers():
        if key.lower() != "content-type":
            resp.headers[key] = value
    return resp


def _register_errors(app: Flask, settings: ServerSettings) -> None:
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


def create_app(test_config: dict | None = None, *, loader=load_model_folder,
               settings: ServerSettings | None = None) -> Flask:
    """`settings` (ml-server's), else a dict (tests), else the environment (MODEL_DIR, ...)."""
    if settings is None:
        settings = (ServerSettings.from_mapping(test_config) if test_config is not None
                    else ServerSettings.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["MAX_FORM_PARTS"] = settings.max_batch + 16
    app.json.sort_keys = False
    if loader is load_model_folder:  # the runtime's knobs from the same settings
        loader = functools.partial(load_model_folder, settings=settings)
    plane = DataPlane(settings, loader)
    app.extensions["dataplane"] = plane
    observability.instrument(app, plane.metrics)
    _register_errors(app, settings)
    for blueprint in (rest.bp, v2.bp, observability.bp):
        app.register_blueprint(blueprint)
    plane.start()
    return app
