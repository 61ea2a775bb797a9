"""Deploy hook: `POST /hooks/deployed {"url": ...}` evaluates the model now behind that URL.

For CI/CD to call after a deploy. Answers `202` at once with a job id and its status URL;
`GET /jobs/ID` gives the state (queued, running, done, failed), the verdict (pass / regression /
no-baseline / error) and links to the model and compare pages of the web view. With `?wait=1`
the POST answers when the job is done, with the verdict (200, 502 when the evaluation failed).
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

import dataclasses
import hmac
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from .client import REFUSED
from .collect import DatabaseFailure
from .deploy import DeploySettings, evaluate_deployment
from .gates import GateEndpoints, GateService
from .gates import job_status as gate_job_status
from .http_headers import secure_headers
from .settings import CollectorSettings
from .store import StoreError, ensure_schema
from .urls import BadURL, HostPolicy, NotAllowed, Target, parse_target

__all__ = ["DEFAULT_ALLOWED_HOSTS", "DEFAULT_MAX_JOBS", "HostPolicy", "NotAllowed", "create_hook_app"]
log = logging.getLogger("collector.hook")

DEFAULT_ALLOWED_HOSTS = tuple(CollectorSettings.default("hook_allowed_hosts").split(","))
DEFAULT_MAX_JOBS = CollectorSettings.default("hook_max_jobs")


class QueueFull(RuntimeError):
    pass


class DeployQueue:
    """Evaluations per URL: one at a time per URL, duplicates joined, a bounded number in all."""

    def __init__(self, run: Callable[[str], dict], *, max_jobs: int = DEFAULT_MAX_JOBS):
        self._run, self.max_jobs = run, max_jobs
        self._lock = threading.Lock()
        self._waiting: dict[str, Future] = {}  # url -> job not started yet (a new request joins it)
        self._url_locks: dict[str, threading.Lock] = {}
        self._active = 0

    def submit(self, url: str) -> Future:
        with self._lock:
            if url in self._waiting:
                return self._waiting[url]
            if self._active >= self.max_jobs:
                raise QueueFull(f"{self._active} evaluations are queued or running (HOOK_MAX_JOBS={self.max_jobs})")
            fut: Future = Future()
            self._waiting[url] = fut
            self._active += 1
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        threading.Thread(target=self._work, args=(url, fut, url_lock), daemon=True,
                         name="deploy-hook-job").start()
        return fut

    def _work(self, url: str, fut: Future, url_lock: threading.Lock) -> None:
        try:
            with url_lock:  # a previous job for this URL finishes first; other URLs are not delayed
                with self._lock:
                    if self._waiting.get(url) is fut:
                        del self._waiting[url]
                fut.set_running_or_notify_cancel()
                try:
                    fut.set_result(self._run(url))
                except BaseException as e:  # noqa: BLE001 - handed to the waiting requests
                    if not isinstance(e, DatabaseFailure | StoreError | DBAPIError):
                        log.error("deploy-hook job for %s failed unexpectedly", url, exc_info=e)
                    fut.set_exception(e)
        finally:
            with self._lock:
                self._active -= 1


JOBS_KEPT = 200  # finished jobs remembered (the newest), for GET /jobs/ID and the web view


class Jobs:
    """The hook's jobs by id. A request that joins a waiting job gets that job's id."""

    def __init__(self, keep: int = JOBS_KEPT):
        self.keep = keep
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, dict] = OrderedDict()
        self._ids: dict[int, str] = {}  # id(future) -> job id

    def add(self, url: str, fut: Future) -> str:
        with self._lock:
            known = self._ids.get(id(fut))
            if known in self._jobs:
                return known
            job_id = uuid.uuid4().hex
            self._jobs[job_id] = {"id": job_id, "url": url, "future": fut,
                                  "submitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "finished_at": None}
            self._ids[id(fut)] = job_id
            fut.add_done_callback(lambda _f: self._done(job_id))
            while len(self._jobs) > self.keep:
                _, old = self._jobs.popitem(last=False)
                self._ids.pop(id(old["future"]), None)
            return job_id

    def _done(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    def record(self, job_id: str) -> dict | None:
        """The job as kept (id, url, future, times), or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def get(self, job_id: str) -> dict | None:
        job = self.record(job_id)
        return job_status(job) if job else None

    def recent(self, n: int = 20) -> list[dict]:
        with self._lock:
            jobs = list(self._jobs.values())[-n:]
        return [job_status(j) for j in reversed(jobs)]


def _failure(exc: BaseException) -> tuple[str, int]:
    """What a job that raised answers: (message, status) — 503 when the database failed."""
    if isinstance(exc, DatabaseFailure | StoreError | DBAPIError):
        return f"database: {getattr(exc, 'orig', exc)}".splitlines()[0], 503
    return "internal error", 500


def job_status(job: dict) -> dict:
    """What GET /jobs/ID answers: state, verdict, result, and links into the web view."""
    fut: Future = job["future"]
    out = {"id": job["id"], "url": job["url"], "submitted_at": job["submitted_at"],
           "finished_at": job["finished_at"], "status_url": f"/jobs/{job['id']}"}
    if not fut.done():
        out["state"] = "running" if fut.running() else "queued"
        return out
    exc = fut.exception()
    if exc is not None:
        return {**out, "state": "failed", "verdict": "error", "error": _failure(exc)[0]}
    result = fut.result()
    out.update(state="done" if result["verdict"] != "error" else "failed", verdict=result["verdict"],
               result=result)
    fp, base = result.get("fingerprint"), result.get("baseline")
    links = {}
    if fp and result.get("status") not in ("failed", "error"):
        links["model"] = f"/models/{quote(fp)}"
        if base:
            links["compare"] = f"/compare?baseline={quote(base)}&candidate={quote(fp)}"
    out["links"] = links
    return out


def _json_body(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def create_hook_app(*, engine: Engine, settings: DeploySettings, token: str | None,
                    allowed: HostPolicy | None = None, max_jobs: int = DEFAULT_MAX_JOBS,
                    migrate: bool = True, enabled: bool = True) -> Flask:
    """`token=None` means no authentication: only the CLI's `--no-auth` on loopback passes that.
    `enabled=False`: the app answers the hook's routes with 503 (the web view alone is served)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    secure_headers(app)
    policy = allowed or HostPolicy(DEFAULT_ALLOWED_HOSTS)
    gates = GateService(engine=engine, settings=settings, policy=policy, max_jobs=max_jobs, migrate=migrate)
    DeployHook(engine=engine, settings=settings, token=token, policy=policy, max_jobs=max_jobs, migrate=migrate,
               enabled=enabled, gates=gates).register(app)
    GateEndpoints(gates, token=token, enabled=enabled).register(app)
    app.extensions["gate_service"] = gates
    app.add_url_rule("/livez", "livez", lambda: jsonify({"status": "alive"}), methods=["GET"])
    app.add_url_rule("/readyz", "readyz", lambda: _readiness(engine, gates, enabled), methods=["GET"])
    if enabled:
        gates.start()
    return app


class DeployHook:
    """The deploy hook's routes: POST /hooks/deployed queues an evaluation of an allowed URL;
    GET /jobs and /jobs/ID say how it went. Its queue, jobs, policy and settings live here."""

    def __init__(self, *, engine: Engine, settings: DeploySettings, token: str | None, policy: HostPolicy,
                 max_jobs: int, migrate: bool, enabled: bool, gates: GateService | None = None):
        self.engine, self.token, self.policy, self.migrate, self.enabled = engine, token, policy, migrate, enabled
        self.gates = gates  # the gate jobs (in the database), also answered at /jobs/ID
        # The policy goes with every connection the jobs make; the target's own words never come back.
        self.settings = dataclasses.replace(settings, opts=dataclasses.replace(settings.opts, policy=policy,
                                                                                echo_errors=False))
        self.queue = DeployQueue(self._evaluate, max_jobs=max_jobs)
        self.jobs = Jobs()

    def register(self, app: Flask) -> None:
        app.extensions["deploy_queue"], app.extensions["deploy_jobs"] = self.queue, self.jobs
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(Exception, _unexpected_error)
        app.add_url_rule("/health", "health", lambda: jsonify({"status": "ok"}), methods=["GET"])
        app.add_url_rule("/hooks/deployed", "deployed", self.deployed, methods=["POST"])
        app.add_url_rule("/jobs/<job_id>", "job", self.job, methods=["GET"])
        app.add_url_rule("/jobs", "job_list", lambda: jsonify({"jobs": self.jobs.recent()}), methods=["GET"])

    def _evaluate(self, url: str) -> dict:
        ensure_schema(self.engine, migrate=self.migrate)  # the stack may start before ./setup_db.sh ran
        return evaluate_deployment(url, engine=self.engine, settings=self.settings)

    def deployed(self):
        refused = self._refusal()
        if refused is not None:
            return refused
        target = self._target()
        if not isinstance(target, Target):
            return target
        try:
            job = self.queue.submit(target.url)
        except QueueFull as e:
            resp = jsonify({"error": f"too many evaluations waiting: {e}; retry later"})
            resp.headers["Retry-After"] = "30"
            return resp, 429
        job_id = self.jobs.add(target.url, job)
        if _wants_wait():
            return self._waited(job_id)
        resp = jsonify({**self.jobs.get(job_id), "wait_url": f"/jobs/{job_id}?wait=1"})
        resp.status_code = 202
        resp.headers["Location"] = f"/jobs/{job_id}"
        return resp

    def _refusal(self):
        """503 when the hook is off, 401 without the right token; None when the caller may go on."""
        if not self.enabled:
            return jsonify({"error": "the deploy hook is off on this server: start it with HOOK_TOKEN set"}), 503
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
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
        if _wants_wait():
            return self._waited(job_id)
        status = self.jobs.get(job_id)
        if status is None and self.gates is not None:
            gate_job = self.gates.job(job_id) if len(job_id) == 32 else None
            status = gate_job_status(gate_job) if gate_job else None
        if status is None:
            return jsonify({"error": "no such job (finished jobs are kept for a while only)"}), 404
        return jsonify(status)

    def _waited(self, job_id: str):
        """The job's answer once it is done: 200 with the verdict, 502 when the evaluation
        failed, 503 when the database did."""
        job = self.jobs.record(job_id)
        if job is None:
            return jsonify({"error": "no such job (finished jobs are kept for a while only)"}), 404
        exc = job["future"].exception()  # waits for the job
        if exc is not None:
            message, code = _failure(exc)
            return jsonify({"error": message, "verdict": "error", "job": job_id}), code
        status = job_status(job)
        return jsonify({**status["result"], "job": job_id, "links": status["links"]}), \
            200 if status["result"]["verdict"] != "error" else 502


def _readiness(engine: Engine, gates: GateService, enabled: bool):
    """200 when the database answers (and, with the gate on, its schema is current)."""
    if enabled:
        ok = gates.ready
    else:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            ok = True
        except DBAPIError:
            ok = False
    if ok:
        return jsonify({"status": "ready"})
    return jsonify({"status": "the database is not reachable or not set up (./setup_db.sh)"}), 503


def _wants_wait() -> bool:
    return request.args.get("wait") in ("1", "true", "yes")


def _http_error(e: HTTPException):
    resp = jsonify({"error": e.description})
    resp.status_code = e.code or 500
    resp.headers.update({k: v for k, v in e.get_headers() if k.lower() != "content-type"})
    return resp


def _unexpected_error(e: Exception):
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=e)
    return jsonify({"error": "internal error"}), 500
