"""Deploy hook: `POST /hooks/deployed {"url": ...}` evaluates the model now behind that URL.

For CI/CD to call after a deploy. Answers with the verdict (pass / regression / no-baseline /
error) and the report path. The hook can be made to fetch URLs, so it is locked down:
- requests need `Authorization: Bearer <token>` (the CLI refuses to start without a token
  unless told `--no-auth` on a loopback address);
- it only contacts hosts on an allowlist, checked before any connection and again on the
  addresses the name resolves to; it follows no redirects and never repeats a target's body;
- work is queued per URL: one evaluation at a time per URL, a request for a URL already
  waiting joins that job, and at most `max_jobs` jobs wait or run (429 beyond);
- malformed bodies are a 400, never a 500.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from urllib.parse import urlsplit

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from .client import ModelServerError, check_url
from .collect import DatabaseFailure
from .deploy import DeploySettings, evaluate_deployment
from .store import StoreError, ensure_schema

DEFAULT_ALLOWED_HOSTS = ("ml_original", "ml_ditto", "ml_ditto_and_mimikyu")  # the compose file's services
DEFAULT_MAX_JOBS = 8
# Never reachable through a name, only when listed as an address: cloud metadata and link-local.
ALWAYS_BLOCKED = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "0.0.0.0/8")]


class NotAllowed(ValueError):
    pass


class HostPolicy:
    """Which hosts the hook may contact: names, IP addresses and CIDR networks."""

    def __init__(self, entries: list[str] | tuple[str, ...], *, resolve=socket.getaddrinfo):
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for e in (x.strip().lower() for x in entries):
            if not e:
                continue
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                self.names.add(e.rstrip("."))
        self._resolve = resolve

    def describe(self) -> str:
        return ", ".join(sorted(self.names) + [str(n) for n in self.networks]) or "(nothing)"

    def _addresses(self, host: str, port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            infos = self._resolve(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise NotAllowed(f"host {host!r} does not resolve") from None
        return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}

    def check(self, url: str) -> None:
        p = urlsplit(url)
        host = (p.hostname or "").lower().rstrip(".")
        port = p.port or (443 if p.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        # Before any connection: the name itself, or the literal address, must be listed.
        if literal is None and host not in self.names:
            raise NotAllowed(f"host {host!r} is not in HOOK_ALLOWED_HOSTS")
        if literal is not None and not any(literal in n for n in self.networks):
            raise NotAllowed(f"address {host} is not in HOOK_ALLOWED_HOSTS")
        # After name resolution: every address must be allowed, and none of the blocked ranges.
        for addr in self._addresses(host, port):
            listed = any(addr in n for n in self.networks)
            if any(addr in n for n in ALWAYS_BLOCKED) and not listed:
                raise NotAllowed(f"host {host!r} resolves to {addr}, a link-local or metadata address")
            if literal is not None and not listed:
                raise NotAllowed(f"address {addr} is not in HOOK_ALLOWED_HOSTS")


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
                try:
                    fut.set_result(self._run(url))
                except BaseException as e:  # noqa: BLE001 - handed to the waiting requests
                    fut.set_exception(e)
        finally:
            with self._lock:
                self._active -= 1


def _json_body(raw: bytes):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def create_hook_app(*, engine: Engine, settings: DeploySettings, token: str | None,
                    allowed: HostPolicy | None = None, max_jobs: int = DEFAULT_MAX_JOBS,
                    migrate: bool = True) -> Flask:
    """`token=None` means no authentication: only the CLI's `--no-auth` on loopback passes that."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    policy = allowed or HostPolicy(DEFAULT_ALLOWED_HOSTS)

    def run(url: str) -> dict:
        ensure_schema(engine, migrate=migrate)  # the stack may start before ./setup_db.sh ran
        return evaluate_deployment(url, engine=engine, settings=settings)

    queue = DeployQueue(run, max_jobs=max_jobs)
    app.extensions["deploy_queue"] = queue

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        resp = jsonify({"error": e.description})
        resp.status_code = e.code or 500
        resp.headers.update({k: v for k, v in e.get_headers() if k.lower() != "content-type"})
        return resp

    @app.errorhandler(Exception)
    def _unexpected(_e: Exception):
        return jsonify({"error": "internal error"}), 500

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.post("/hooks/deployed")
    def deployed():
        if token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return jsonify({"error": "missing or wrong token: send Authorization: Bearer <token>"}), 401
        body = _json_body(request.get_data(cache=False))
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return jsonify({"error": 'body must be JSON {"url": "http://model:8080"}'}), 400
        try:
            url = check_url(body["url"])
            policy.check(url)
        except ModelServerError as e:
            return jsonify({"error": e.reason}), 400
        except NotAllowed as e:
            return jsonify({"error": f"{e}; allowed: {policy.describe()}"}), 403
        try:
            job = queue.submit(url)
        except QueueFull as e:
            resp = jsonify({"error": f"too many evaluations waiting: {e}; retry later"})
            resp.headers["Retry-After"] = "30"
            return resp, 429
        try:
            result = job.result()
        except (DatabaseFailure, StoreError, DBAPIError) as e:
            return jsonify({"error": f"database: {getattr(e, 'orig', e)}".splitlines()[0], "verdict": "error"}), 503
        return jsonify(result), 200 if result["verdict"] != "error" else 502

    return app
