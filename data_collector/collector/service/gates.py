"""The gate service: gate jobs in the database, run by every `serve` process, answered to
Flagger's webhooks and Argo Rollouts' web metric provider.

A job is a row of `gate_jobs` (store.py). A request is identified by a key (its kind, baseline,
candidate and revision): the same request joins the same job, so a controller that polls gets
one evaluation. A finished job answers again while the candidate URL still announces the
fingerprint it was evaluated with; a new model behind the URL is a new job. Every `serve`
process claims queued jobs with one UPDATE (so N processes never run one job twice), beats
their heartbeat, and on start queues again the jobs a dead process left running: collection
resumes where the database stands (nothing stored twice), and the verdict is the one an
uninterrupted run gives.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from flask import Flask, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ..collect import DatabaseFailure
from ..formatting import iso
from ..protocols import connect
from ..protocols.client import Limits, ModelServerError
from ..protocols.urls import BadURL, HostPolicy, NotAllowed, parse_model_url
from ..storage import store
from ..storage.secrets import SecretFile, token_matches
from .deploy import DeploySettings
from .gate import ERROR, FAIL, PASS, is_url, run_gate

log = logging.getLogger("collector.service.gates")

RUNNING = "running"  # the verdict while a job is queued or running
POLL_S = 0.25  # how often a busy serve process looks for queued jobs (a submit in the process wakes it at once)
IDLE_POLL_S = 1.0  # ... and an idle one (jobs another process queued start within this)
SAME_MODEL_CHECK = Limits(deadline=0.8, connect_timeout=0.5)  # asking a URL its fingerprint, within 1 s
# "Cannot decide" is never final: a job that ended without a verdict is answered for RETRY_BASE_S,
# then a later request of its key starts a new one; the wait doubles with each undecided job of the
# key in the last RETRY_WINDOW_S (at most RETRY_MAX_S), and after RETRY_MAX_ATTEMPTS of them the
# key waits for the window to pass.
RETRY_BASE_S = 10.0
RETRY_MAX_S = 300.0
RETRY_WINDOW_S = 3600.0
RETRY_MAX_ATTEMPTS = 12


RUNNING_SERVICES: weakref.WeakSet[GateService] = weakref.WeakSet()  # for tests that build many apps


class QueueFull(RuntimeError):
    pass


class RequestError(ValueError):
    """A request the gate refuses: (HTTP status, message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class GateService:
    """Submits, runs and answers gate jobs; one per `serve` process."""

    def __init__(self, *, engine: Engine, settings: DeploySettings, policy: HostPolicy, max_jobs: int,
                 migrate: bool = True, poll_s: float = POLL_S):
        self.engine, self.policy, self.max_jobs, self.migrate, self.poll_s = engine, policy, max_jobs, migrate, poll_s
        # The policy goes with every connection the jobs make; the target's own words never come back.
        self.settings = dataclasses.replace(settings, opts=dataclasses.replace(settings.opts, policy=policy,
                                                                                echo_errors=False))
        self._pool = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="gate-job")
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._wake, self._stop, self._draining = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gate-jobs", daemon=True)
        self._ready = False
        self._schema_lock = threading.Lock()
        self._submit_lock = threading.Lock()  # one insert at a time: two requests of one key make one job
        RUNNING_SERVICES.add(self)

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM): claim nothing more, let running jobs finish up to `timeout`;
        what is still running then is queued again for the next process."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for _ in range(int(timeout / 0.1)):
            with self._lock:
                if not self._mine:
                    return
            time.sleep(0.1)
        try:
            with self._lock, self.engine.begin() as conn:
                store.release_jobs(conn, job_ids=sorted(self._mine))
        except DBAPIError as e:  # they stay running until a process finds this one dead
            log.warning("gate jobs %s: cannot queue them again: %s", sorted(self._mine), e)

    @property
    def ready(self) -> bool:
        """The database answered and the schema is current, and this process is not stopping (the
        readiness probe)."""
        return self._ready and not self.draining

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def drain(self) -> None:
        """SIGTERM (wsgi.py): readiness fails, no new job is claimed, waits end; requests are still answered."""
        self._draining.set()
        self._wake.set()

    # ---- requests ------------------------------------------------------------------------
    def check_side(self, side: str | None, what: str) -> str | None:
        """A URL side parsed and allowed (its canonical form), a selector as it is; RequestError."""
        if side is None or side == "":
            return None
        if not isinstance(side, str) or len(side) > 2000:
            raise RequestError(400, f"{what} must be a URL or a stored model selector")
        if not is_url(side):
            return side
        try:
            target = parse_model_url(side, allow_userinfo=False)
            self.policy.check(target.target)
        except BadURL as e:
            raise RequestError(400, f"{what}: {e}") from None
        except NotAllowed as e:
            log.info("gate: %s refused: %s", what, e)
            raise RequestError(403, f"{what}: refused by allowlist ({e}); allowed: {self.policy.describe()}") from None
        return target.text

    def submit(self, kind: str, baseline: str | None, candidate: str, revision: str | None = None) -> dict:
        """Start the job for this request, or join the one it already has (see the module's doc).
        The deploy hook's requests join only a job that has not started: a deploy after a
        running evaluation began is evaluated after it (jobs of one key run one at a time)."""
        key = store.job_key(kind, baseline, candidate, revision)
        self._schema()
        with self.engine.connect() as conn:
            last = store.latest_job(conn, key=key)
            undecided = store.undecided_jobs(conn, key=key, since_s=RETRY_WINDOW_S) if last else 0
        if last is not None and (last["state"] == "queued" or kind != "hook" and (
                last["state"] == "running" or self._still_answers(last, undecided))):
            return last  # (the fingerprint check asks the URLs: outside every lock)
        with self._submit_lock, self.engine.begin() as conn:
            # A request of this process or another may have opened it meanwhile: join it (a gate joins a
            # running job too; the hook only one that has not started).
            again = store.latest_job(conn, key=key)
            if again is not None and (again["state"] == "queued" or kind != "hook" and again["state"] == "running") \
                    and (last is None or again["id"] != last["id"]):
                return again
            if store.count_active_jobs(conn) >= self.max_jobs:
                raise QueueFull(f"{self.max_jobs} gate jobs are queued or running (HOOK_MAX_JOBS)")
            job_id = store.add_job(conn, key=key, kind=kind, baseline=baseline, candidate=candidate)
            if job_id is None:  # another process inserted the key's open job first (the unique index)
                job = store.open_job(conn, key=key)
                if job is not None:
                    return job
                raise QueueFull("the job of this request changed under it: ask again")
            job = store.get_job(conn, job_id)
        self._wake.set()
        return job

    def _still_answers(self, job: dict, undecided: int) -> bool:
        """May a finished gate job answer this request? A verdict only while both URL sides still
        serve the models it evaluated (asked now, whatever the revision: a revision groups requests,
        it is not identity); "cannot decide" only during its back-off."""
        if verdict_of(job) == ERROR:
            return not retry_due(job, undecided)
        sides = [(job["candidate"], job["candidate_fingerprint"])]
        base = (job["result"] or {}).get("baseline")
        if job["baseline"] and is_url(job["baseline"]):
            sides.append((job["baseline"], base.get("fingerprint") if isinstance(base, dict) else None))
        if any(not fp for url, fp in sides if is_url(url)):
            return False
        urls = [(url, fp) for url, fp in sides if is_url(url)]
        with ThreadPoolExecutor(max_workers=len(urls) or 1) as pool:  # both within the one answer budget
            return all(pool.map(lambda side: self._serves(*side), urls))

    def _serves(self, url: str, fingerprint: str) -> bool:
        """Does `url` announce `fingerprint` now (for a server without one: its canary answers)?"""
        try:
            client = connect(url, self.settings.opts.protocol, limits=SAME_MODEL_CHECK, retries=0,
                             echo_errors=False, policy=self.policy)
            try:
                return client.metadata()["fingerprint"] == fingerprint
            finally:
                client.close()
        except ModelServerError:
            return False  # cannot tell: evaluate again (a wrong verdict is worse than a late one)

    def job(self, job_id: str) -> dict | None:
        self._schema()
        with self.engine.connect() as conn:
            return store.get_job(conn, job_id)

    def wait(self, job_id: str, poll_s: float = 0.1, timeout: float | None = None) -> dict | None:
        """The job once it has ended (done or failed), or as it stands after `timeout` seconds (or
        when this process stops); None when there is no such job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job is None or job["state"] in ("done", "failed") or self._stop.is_set() or self.draining or (
                    deadline is not None and time.monotonic() >= deadline):
                return job
            self._stop.wait(poll_s)

    def recent(self, n: int = 20) -> list[dict]:
        self._schema()
        with self.engine.connect() as conn:
            return [job_status(j) for j in store.recent_jobs(conn, limit=n)]

    def _ensure_schema(self) -> None:
        store.ensure_schema(self.engine, migrate=self.migrate)  # the stack may start before ./setup_db.sh ran

    def _schema(self) -> None:
        """Before the first request that reads or writes jobs: the table exists (StoreError, DBAPIError)."""
        if not self._ready:
            with self._schema_lock:
                if not self._ready:
                    self._ensure_schema()
                    self._ready = True

    # ---- running -------------------------------------------------------------------------
    def _loop(self) -> None:
        next_beat, said = 0.0, None
        while not self._stop.is_set():
            try:
                if not self._ready:
                    self._schema()
                    next_beat = 0.0
                next_beat = self._tick(next_beat)
            except (DBAPIError, store.StoreError) as e:  # the database is away: not ready, try again
                self._ready = False
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                if reason != said:  # once per cause, not at every retry
                    log.warning("gate jobs: database unavailable (retrying every second): %s", reason)
                said = reason
            else:
                said = None
            with self._lock:
                busy = bool(self._mine)
            self._wake.wait(self.poll_s if busy else max(self.poll_s, IDLE_POLL_S))
            self._wake.clear()

    def _tick(self, next_beat: float) -> float:
        """Heartbeat and requeue every HEARTBEAT_S (at `next_beat`); claim what the free slots allow."""
        if time.monotonic() >= next_beat:
            with self.engine.begin() as conn:
                with self._lock:
                    store.beat_jobs(conn, job_ids=sorted(self._mine))
                requeued = store.requeue_dead_jobs(conn)
            if requeued:
                log.warning("gate jobs %s were left running by a process that died: queued again", requeued)
            next_beat = time.monotonic() + store.HEARTBEAT_S
        with self._lock:
            free = self.max_jobs - len(self._mine)
        if free > 0 and not self._stop.is_set() and not self.draining:
            with self.engine.begin() as conn:
                for job_id in store.startable_jobs(conn, limit=free):
                    if store.claim_job(conn, job_id=job_id):
                        with self._lock:
                            self._mine.add(job_id)
                        self._pool.submit(self._run, job_id)
        return next_beat

    def _run(self, job_id: str) -> None:
        job = self.job(job_id)
        verdict, result, error, fp = ERROR, None, None, None
        try:
            if job["kind"] == "hook":
                from .deploy import evaluate_deployment

                self._ensure_schema()
                result = evaluate_deployment(job["candidate"], engine=self.engine, settings=self.settings)
                verdict, fp = result["verdict"], result.get("fingerprint") or None
                state = "failed" if verdict == ERROR else "done"
            else:
                gate = run_gate(job["baseline"], job["candidate"], engine=self.engine, settings=self.settings)
                result, verdict = gate.to_dict(), gate.verdict
                fp = gate.candidate["fingerprint"] if gate.candidate else None
                state = "done"
        except (DatabaseFailure, store.StoreError, DBAPIError) as e:
            state, error = "failed", f"database: {getattr(e, 'orig', e)}".splitlines()[0]
        except Exception as e:  # noqa: BLE001 - a bug: the job says so, the log has the traceback
            log.error("gate job %s failed unexpectedly", job_id, exc_info=e)
            state, error = "failed", "internal error"
        said = (result or {}).get("summary") or error or (result or {}).get("error") or verdict
        (log.info if verdict == PASS else log.warning)("gate job %s: %s", job_id, said)  # what an operator reads
        try:
            with self.engine.begin() as conn:
                store.finish_job(conn, job_id=job_id, state=state, verdict=verdict, result=result, error=error,
                                 candidate_fingerprint=fp)
        except DBAPIError as e:  # stays running until a process requeues it
            log.error("gate job %s: cannot record its end: %s", job_id, e)
        finally:
            with self._lock:
                self._mine.discard(job_id)
            self._wake.set()


def retry_due(job: dict, undecided: int) -> bool:
    """Whether a job that ended without a verdict may be tried again now (see RETRY_BASE_S)."""
    if undecided >= RETRY_MAX_ATTEMPTS:
        wait = RETRY_WINDOW_S
    else:
        wait = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, undecided - 1))
    ended = job["finished_at"] or job["submitted_at"]
    return ended is None or (store.now() - ended).total_seconds() >= wait


def verdict_of(job: dict) -> str:
    """running while queued or running; else the verdict (error when the job itself failed)."""
    if job["state"] in ("queued", "running"):
        return RUNNING
    return (job["verdict"] or ERROR) if job["state"] == "done" else ERROR


def job_status(job: dict) -> dict:
    """What GET /jobs/ID answers: state, verdict, result, and links into the web view."""
    out = {"id": job["id"], "kind": job["kind"], "url": job["candidate"], "baseline": job["baseline"],
           "candidate": job["candidate"], "state": job["state"], "verdict": verdict_of(job),
           "submitted_at": iso(job["submitted_at"], "seconds"), "finished_at": iso(job["finished_at"], "seconds"),
           "attempts": job["attempts"], "status_url": f"/jobs/{job['id']}"}
    result = job["result"] or {}
    if job["error"]:
        out["error"] = job["error"]
    if job["result"] is not None:
        out["result"] = result
        out["regressed_classes"] = result.get("regressed_classes", [])
        out["reasons"] = result.get("reasons", [])
        if result.get("summary"):
            out["summary"] = result["summary"]
    out["links"] = _links(job, result)
    return out


def _links(job: dict, result: dict) -> dict:
    cand = (result.get("candidate") or {}).get("fingerprint") or result.get("fingerprint")
    base = (result.get("baseline") or {}).get("fingerprint") if isinstance(result.get("baseline"), dict) \
        else result.get("baseline")
    links = {}
    if cand and job["state"] == "done" and result.get("status") not in ("failed", "error"):
        links["model"] = f"/models/{quote(cand)}"
        if base and base != cand:
            links["compare"] = f"/compare?baseline={quote(base)}&candidate={quote(cand)}"
    return links


# ---- the controllers' endpoints --------------------------------------------------------------
class GateEndpoints:
    """Argo Rollouts: GET/POST /gates/verdict. Flagger: POST /gates/flagger/{pre-rollout,
    confirm-promotion,rollback}. Both with the hook's token (Argo: Bearer header; Flagger, which
    sends no custom header: metadata.token)."""

    def __init__(self, service: GateService, *, token: str | SecretFile | None, enabled: bool):
        self.service, self.token, self.enabled = service, token, enabled

    def register(self, app: Flask) -> None:
        app.add_url_rule("/gates/verdict", "gate_verdict", self.verdict, methods=["GET", "POST"])
        for phase in ("pre-rollout", "confirm-promotion", "rollback"):
            app.add_url_rule(f"/gates/flagger/{phase}", f"flagger_{phase}",
                             lambda phase=phase: self.flagger(phase), methods=["POST"])

    def _token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return token_matches(self.token, given)

    def verdict(self):
        """Argo's web provider: start or join the job, answer at once with its verdict."""
        if not self.enabled:
            return jsonify({"error": "the gate is off on this server: start it with HOOK_TOKEN set"}), 503
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._token_ok(given):
            return jsonify({"error": "missing or wrong token: send Authorization: Bearer <token>"}), 401
        args = request.args.to_dict() if request.method == "GET" else _json_object(request.get_data(cache=False))
        if args is None:
            return jsonify({"error": 'body must be JSON {"baseline": URL, "candidate": URL}'}), 400
        try:
            job = self._submit("argo", args.get("baseline"), args.get("candidate"), args.get("revision"))
        except RequestError as e:
            return jsonify({"error": str(e)}), e.status
        status = job_status(job)
        # "Cannot decide" is no verdict: a non-2xx answer is an Error measurement for Argo Rollouts
        # (counted by consecutiveErrorLimit, asked again), never a Failed one that aborts the rollout.
        code = 503 if status["verdict"] == ERROR else 200
        return jsonify({k: status[k] for k in ("verdict", "state", "status_url", "baseline", "candidate")}
                       | {"job": job["id"], "regressed_classes": status.get("regressed_classes", []),
                          "reasons": status.get("reasons", []),
                          "summary": status.get("summary") or status.get("error") or ""}), code

    def _submit(self, kind: str, baseline, candidate, revision) -> dict:
        if not isinstance(candidate, str) or not candidate:
            raise RequestError(400, "candidate is required: a model URL (or a stored model selector)")
        if revision is not None and (not isinstance(revision, str) or len(revision) > 300):
            raise RequestError(400, "revision must be a short string")
        base = self.service.check_side(baseline, "baseline")
        cand = self.service.check_side(candidate, "candidate")
        try:
            return self.service.submit(kind, base, cand, revision)
        except QueueFull as e:
            raise RequestError(429, f"too many evaluations waiting: {e}; retry later") from None

    def flagger(self, phase: str):
        """Flagger's webhook: its JSON body as it sends it; the answer's body goes into events."""
        if not self.enabled:
            return _line(503, "the gate is off on this server: start it with HOOK_TOKEN set")
        body = _json_object(request.get_data(cache=False))
        meta = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or not all(isinstance(body.get(k), str) for k in ("name", "namespace")):
            return _line(400, 'body must be Flagger\'s {"name", "namespace", "phase", "checksum", "metadata": {...}}')
        if not self._token_ok(meta.get("token")):
            return _line(401, "missing or wrong metadata.token")
        revision = f"{body['namespace']}/{body['name']}/{body.get('checksum') or ''}"
        try:
            job = self._submit("flagger", meta.get("baseline"), meta.get("candidate"), revision)
        except RequestError as e:
            return _line(e.status, str(e))
        verdict, summary = verdict_of(job), job_status(job).get("summary") or job.get("error") or ""
        if phase == "pre-rollout":
            return _line(200, f"gate job {job['id']}: {verdict}")
        if phase == "confirm-promotion":
            if verdict == PASS:
                return _line(200, summary)
            return _line(409 if verdict == RUNNING else 412, summary or f"gate job {job['id']}: {verdict}")
        if verdict == FAIL:  # rollback: 2xx aborts the canary
            return _line(200, summary)
        return _line(409, f"no rollback: {verdict}" + (f" ({summary})" if summary else ""))


def _line(status: int, text: str):
    one = " ".join(str(text).split())[:1000]
    return one + "\n", status, {"Content-Type": "text/plain; charset=utf-8"}


def _json_object(raw: bytes) -> dict | None:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None
