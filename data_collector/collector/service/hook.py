"""Deploy hook: `POST /hooks/deployed {"url": ...}` evaluates the model now behind that URL.

For CI/CD to call after a deploy. Answers `202` at once with a job id and its status URL;
`GET /jobs/ID` gives the state (queued, running, done, failed), the verdict (pass / regression /
no-baseline / error) and links to the model and compare pages of the web view. With `?wait=1`
the POST answers when the job is done, with the verdict (200, 502 when the evaluation failed).
Its jobs are gate jobs of kind `hook` (gates.py): in the database, resumed after a restart.
The hook can be made to fetch URLs, so it is locked down:
- requests need `Authorization: Bearer <token>` (the CLI refuses to start without a token
  unless told `--no-auth` on a loopback address);
- it only contacts hosts on an allowlist, checked before any connection and again on the
  addresses the name resolves to; it follows no redirects and never repeats a target's body;
- work is queued per URL: one evaluation at a time per URL, a request for a URL already
  waiting joins that job, and at most `max_jobs` jobs wait or run (429 beyond);
- malformed bodies are a 400, never a 500.
"""

from __future__ import annotations

import json
import logging
import threading

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from ..outputs.http_headers import secure_headers
from ..protocols.client import REFUSED
from ..protocols.urls import BadURL, HostPolicy, NotAllowed, Target, parse_target
from ..settings import CollectorSettings
from ..storage.secrets import SecretFile, token_matches
from ..storage.store import StoreError, connect_check
from .deploy import DeploySettings
from .gates import GateEndpoints, GateService, QueueFull, job_status

__all__ = ["DEFAULT_ALLOWED_HOSTS", "DEFAULT_MAX_JOBS", "HostPolicy", "NotAllowed", "create_hook_app"]
log = logging.getLogger("collector.service.hook")

DEFAULT_ALLOWED_HOSTS = tuple(CollectorSettings.default("hook_allowed_hosts").split(","))
DEFAULT_MAX_JOBS = CollectorSettings.default("hook_max_jobs")
# `?wait=1` holds a server thread: bounded in time, in number and per caller, so that waiting
# callers never take the threads the controllers' endpoints need (gunicorn runs 16).
WAIT_MAX_S = 60.0  # then 202 with the job as it stands: ask again
MAX_WAITERS = 8
MAX_WAITS_PER_CALLER = 4


class _Waiters:
    def __init__(self):
        self.lock, self.total, self.by_caller = threading.Lock(), 0, {}

    def enter(self, caller: str) -> bool:
        with self.lock:
            if self.total >= MAX_WAITERS or self.by_caller.get(caller, 0) >= MAX_WAITS_PER_CALLER:
                return False
            self.total += 1
            self.by_caller[caller] = self.by_caller.get(caller, 0) + 1
            return True

    def leave(self, caller: str) -> None:
        with self.lock:
            self.total -= 1
            self.by_caller[caller] -= 1
            if not self.by_caller[caller]:
                del self.by_caller[caller]


def _failure(job: dict) -> tuple[str, int]:
    """What a job that failed itself answers: (message, status) — 503 when the database failed."""
    error = job.get("error") or "internal error"
    return error, 503 if error.startswith("database") else 500


def _json_body(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def create_hook_app(*, engine: Engine, settings: DeploySettings, token: str | SecretFile | None,
                    allowed: HostPolicy | None = None, max_jobs: int = DEFAULT_MAX_JOBS,
                    migrate: bool = True, enabled: bool = True) -> Flask:
    """`token=None` means no authentication: only the CLI's `--no-auth` on loopback passes that.
    `enabled=False`: the app answers the hook's routes with 503 (the web view alone is served)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    secure_headers(app)
    policy = allowed or HostPolicy(DEFAULT_ALLOWED_HOSTS)
    gates = GateService(engine=engine, settings=settings, policy=policy, max_jobs=max_jobs, migrate=migrate)
    DeployHook(gates, token=token, enabled=enabled).register(app)
    GateEndpoints(gates, token=token, enabled=enabled).register(app)
    app.extensions["gate_service"] = gates
    app.add_url_rule("/livez", "livez", lambda: jsonify({"status": "alive"}), methods=["GET"])
    app.add_url_rule("/readyz", "readyz", lambda: _readiness(engine, gates, enabled), methods=["GET"])
    if enabled:
        gates.start()
    return app


class DeployHook:
    """The deploy hook's routes: POST /hooks/deployed queues an evaluation of an allowed URL;
    GET /jobs and /jobs/ID say how it went (every gate job: the hook's and the controllers')."""

    def __init__(self, gates: GateService, *, token: str | SecretFile | None, enabled: bool):
        self.gates, self.token, self.enabled, self.policy = gates, token, enabled, gates.policy
        self.waiters = _Waiters()

    def register(self, app: Flask) -> None:
        app.extensions["deploy_jobs"] = self.gates
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(DBAPIError, _database_error)
        app.register_error_handler(StoreError, _database_error)
        app.register_error_handler(Exception, _unexpected_error)
        app.add_url_rule("/health", "health", lambda: jsonify({"status": "ok"}), methods=["GET"])
        app.add_url_rule("/hooks/deployed", "deployed", self.deployed, methods=["POST"])
        app.add_url_rule("/jobs/<job_id>", "job", self.job, methods=["GET"])
        app.add_url_rule("/jobs", "job_list", self.job_list, methods=["GET"])

    def job_list(self):
        """Only a token holder sees the jobs (their ids are what one waits on)."""
        refused = self._refusal()
        return refused if refused is not None else jsonify({"jobs": self.gates.recent()})

    def deployed(self):
        refused = self._refusal()
        if refused is not None:
            return refused
        target = self._target()
        if not isinstance(target, Target):
            return target
        try:
            job = self.gates.submit("hook", None, target.url)
        except QueueFull as e:
            resp = jsonify({"error": f"too many evaluations waiting: {e}; retry later"})
            resp.headers["Retry-After"] = "30"
            return resp, 429
        if _wants_wait():
            return self._waited(job["id"])
        resp = jsonify({**job_status(job), "wait_url": f"/jobs/{job['id']}?wait=1"})
        resp.status_code = 202
        resp.headers["Location"] = f"/jobs/{job['id']}"
        return resp

    def _refusal(self):
        """503 when the hook is off, 401 without the right token; None when the caller may go on."""
        if not self.enabled:
            return jsonify({"error": "the deploy hook is off on this server: start it with HOOK_TOKEN set"}), 503
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token_matches(self.token, given):
                return jsonify({"error": "missing or wrong token: send Authorization: Bearer <token>"}), 401
        return None

    def _target(self):
        """The body's URL, parsed and allowed, or the 400/403 answer."""
        body = _json_body(request.get_data(cache=False))
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return jsonify({"error": 'body must be JSON {"url": "http://model:8080"}'}), 400
        try:
            target = parse_target(body["url"], allow_userinfo=False)
        except BadURL as e:
            return jsonify({"error": str(e)}), 400
        try:
            self.policy.check(target)
        except NotAllowed as e:
            log.info("hook: %s refused: %s", target.display, e)
            return jsonify({"error": f"could not evaluate URL: {REFUSED} ({e}); allowed: "
                                     f"{self.policy.describe()}"}), 403
        return target

    def job(self, job_id: str):
        refused = self._refusal()
        if refused is not None:
            return refused
        if _wants_wait():
            return self._waited(job_id)
        job = self.gates.job(job_id) if _plausible_id(job_id) else None
        if job is None:
            return jsonify({"error": "no such job"}), 404
        return jsonify(job_status(job))

    def _waited(self, job_id: str):
        """The job's answer once it is done: 200 with the verdict, 502 when the evaluation
        failed, 503 when the database did; 202 with the job as it stands after WAIT_MAX_S (ask
        again); 429 when MAX_WAITERS requests (MAX_WAITS_PER_CALLER of one caller) already wait."""
        caller = request.remote_addr or "?"
        if not self.waiters.enter(caller):
            resp = jsonify({"error": f"{MAX_WAITERS} requests already wait on jobs ({MAX_WAITS_PER_CALLER} per "
                                     "caller): poll GET /jobs/ID instead", "job": job_id})
            resp.headers["Retry-After"] = "5"
            return resp, 429
        try:
            job = self.gates.wait(job_id, timeout=WAIT_MAX_S) if _plausible_id(job_id) else None
        except DBAPIError as e:
            return jsonify({"error": f"database: {getattr(e, 'orig', e)}".splitlines()[0], "verdict": "error",
                            "job": job_id}), 503
        finally:
            self.waiters.leave(caller)
        if job is None:
            return jsonify({"error": "no such job"}), 404
        if job["state"] in ("queued", "running"):
            resp = jsonify({**job_status(job), "wait_url": f"/jobs/{job_id}?wait=1"})
            resp.headers["Retry-After"] = "1"
            return resp, 202
        if job["state"] == "failed" and not job["result"]:
            message, code = _failure(job)
            return jsonify({"error": message, "verdict": "error", "job": job_id}), code
        status = job_status(job)
        return jsonify({**status["result"], "job": job_id, "links": status["links"]}), \
            200 if status["result"].get("verdict") != "error" else 502


def _readiness(engine: Engine, gates: GateService, enabled: bool):
    """200 when the database answers (and, with the gate on, its schema is current); 503 from the
    moment this process was told to stop (SIGTERM), while it still answers everything else."""
    if gates.draining:
        return jsonify({"status": "stopping"}), 503
    if enabled:
        ok = gates.ready
    else:
        try:
            connect_check(engine)
            ok = True
        except StoreError:
            ok = False
    if ok:
        return jsonify({"status": "ready"})
    return jsonify({"status": "the database is not reachable or not set up (./setup_db.sh)"}), 503


def _plausible_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def _wants_wait() -> bool:
    return request.args.get("wait") in ("1", "true", "yes")


def _http_error(e: HTTPException):
    resp = jsonify({"error": e.description})
    resp.status_code = e.code or 500
    resp.headers.update({k: v for k, v in e.get_headers() if k.lower() != "content-type"})
    return resp


def _database_error(e: Exception):
    log.warning("database unavailable on %s %s: %s", request.method, request.path, e)
    message = "the database is not reachable or not set up (./setup_db.sh)"
    if request.path.startswith("/gates/flagger/"):
        return message + "\n", 503, {"Content-Type": "text/plain; charset=utf-8"}
    return jsonify({"error": message}), 503


def _unexpected_error(e: Exception):
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=e)
    return jsonify({"error": "internal error"}), 500
