"""Deploy hook: `POST /hooks/deployed {"url": ...}` evaluates the model now behind that URL.

For CI/CD to call after a deploy. Answers with the verdict (pass / regression / no-baseline /
error) and the report path. If HOOK_TOKEN is set, requests need `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from .client import ModelServerError, check_url
from .collect import DatabaseFailure
from .deploy import DeploySettings, evaluate_deployment
from .store import StoreError, ensure_schema


def create_hook_app(*, engine: Engine, settings: DeploySettings, token: str | None = None,
                    migrate: bool = True) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        resp = jsonify({"error": e.description})
        resp.status_code = e.code or 500
        resp.headers.update({k: v for k, v in e.get_headers() if k.lower() != "content-type"})
        return resp

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.post("/hooks/deployed")
    def deployed():
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return jsonify({"error": "missing or wrong bearer token"}), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return jsonify({"error": 'body must be JSON {"url": "http://model:8080"}'}), 400
        try:
            url = check_url(body["url"])
        except ModelServerError as e:
            return jsonify({"error": str(e)}), 400
        try:
            ensure_schema(engine, migrate=migrate)  # the stack may start before ./setup_db.sh ran
            result = evaluate_deployment(url, engine=engine, settings=settings)
        except (DatabaseFailure, StoreError, OperationalError) as e:
            return jsonify({"error": str(e), "verdict": "error"}), 503
        status = 200 if result["verdict"] != "error" else 502
        return jsonify(result), status

    return app
