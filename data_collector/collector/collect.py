"""`collect`: ask each model for the test images it has not been evaluated on, store the answers.

Done = a row in `predictions` for (model fingerprint, image sha256). What is missing is computed
from the database at every start, so skip, incremental and resume are one mechanism.

Every answer is checked (validate.py) before anything of it is stored; a server that breaks the
rules fails alone, the other models of the run go on.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from . import __version__, store, validate
from .client import CLAIM_REFUSED, NOT_A_MODEL_SERVER, Limits, ModelClient, ModelServerError, display_url
from .protocols import ProtocolOptions, connect
from .settings import CollectorSettings
from .testset import HashCache, TestImage, TestSetHash, check_root, chunks, eligible, in_shard
from .urls import HostPolicy
from .validate import InvalidAnswer, ModelChanged
from .vocab import RunStatus

REJECTED_BEFORE_GIVING_UP = 8  # images refused (4xx) with none accepted: the server rejects everything
# A fingerprint already in the database is trusted only after the server answers this many of
# its stored images (chosen at random) as stored: same label, every score within SCORE_NOISE.
VERIFY_IMAGES = 4
CHUNK_IMAGES = 2048  # images hashed, stored and planned together (memory is bounded by this)
WRITE_ROWS = 1024  # answers stored per transaction at most (see _Writer)
WRITE_INTERVAL_S = 1.0  # ... or after this long, whichever comes first
SCORE_NOISE = 1e-3  # a stored answer given again: each score within this of the stored one


@dataclass
class CollectOptions:
    batch_size: int = CollectorSettings.default("batch_size")
    max_in_flight: int | None = CollectorSettings.default("max_in_flight")  # None: 2 per model, at most 8
    timeout: float = CollectorSettings.default("request_timeout")  # one request: connect + whole response
    retries: int = CollectorSettings.default("request_retries")
    backoff: float = 0.5
    max_response_bytes: int = Limits.max_response_bytes
    max_metadata_bytes: int = Limits.max_metadata_bytes
    echo_errors: bool = True  # repeat a server's own error text in messages (off in the deploy hook)
    protocol: ProtocolOptions = field(default_factory=ProtocolOptions)  # other serving stacks (protocols.py)
    shard: tuple[int, int] | None = None  # (I, N): only the images whose sha256 % N == I (testset.in_shard)
    hash_cache: Path | None = None  # testset.HashCache file; None: hash every file
    policy: HostPolicy | None = None  # the hosts every connection may reach (the deploy hook's allowlist)

    def limits(self) -> Limits:
        return Limits(deadline=self.timeout, connect_timeout=min(10.0, self.timeout),
                      max_response_bytes=self.max_response_bytes, max_metadata_bytes=self.max_metadata_bytes)


@dataclass
class ModelResult:
    url: str
    name: str = "?"
    version: str = "?"
    fingerprint: str = ""
    status: RunStatus = RunStatus.ERROR
    n_sent: int = 0
    n_failed: int = 0
    accuracy: float | None = None
    n_scored: int = 0
    error: str | None = None  # the reason, without the URL
    category: str | None = None  # of a failure: client.REFUSED, NO_ANSWER, NOT_A_MODEL_SERVER, CLAIM_REFUSED


@dataclass
class _Job:
    result: ModelResult
    client: ModelClient
    model_id: int
    labels: list[str]
    run_id: int | None = None  # started when the stream brings the first image it needs
    planned: int = 0
    failures: list[tuple[str, str | None, str]] = field(default_factory=list)
    aborted: bool = False
    accepted: int = 0  # answers that passed every check, stored or still in the write batch
    lock: threading.Lock = field(default_factory=threading.Lock)

    def abort(self, reason: str, category: str = NOT_A_MODEL_SERVER) -> None:
        with self.lock:
            if not self.aborted:
                self.aborted, self.result.error, self.result.category = True, reason, category

    def reject(self, item: TestImage, reason: str) -> None:
        """The server refused this one image (4xx): report it and go on, unless it refuses everything."""
        self.failures.append((item.path, item.sha256, reason))
        if len(self.failures) >= REJECTED_BEFORE_GIVING_UP and self.accepted == 0:
            self.abort(f"every image was rejected ({len(self.failures)} so far): {reason}")


class DatabaseFailure(RuntimeError):
    pass


ProgressHook = Callable[[str, int, int], None]  # (model key, advance, total planned so far)


def _accuracy(engine: Engine, model_id: int) -> tuple[float | None, int]:
    with engine.connect() as conn:
        return store.model_accuracy(conn, model_id=model_id)


def collect(urls: list[str], *, engine: Engine, test_dir: Path, opts: CollectOptions | None = None,
            progress: ProgressHook | None = None, say: Callable[[str], None] = print) -> list[ModelResult]:
    """The test set streams by in chunks of CHUNK_IMAGES: each chunk is hashed (through the hash
    cache), stored, checked against what each model has already answered, and sent; memory does
    not grow with the size of the test set."""
    opts = opts or CollectOptions()
    test_dir = check_root(Path(test_dir))
    cache = HashCache(opts.hash_cache) if opts.hash_cache else None
    digest = TestSetHash()
    stream = chunks(test_dir, CHUNK_IMAGES, cache, digest)
    try:
        first = next(stream)  # an empty test set stops here, before any server is asked
        with engine.begin() as conn:
            reaped = store.reap_dead_runs(conn)
        if reaped:
            say(f"{len(reaped)} run(s) left 'running' by a collector that died are now marked interrupted")
        results = [ModelResult(url=display_url(u) if isinstance(u, str) else str(u)) for u in urls]
        seen_fp: dict[str, tuple[str, list[str]]] = {}
        jobs = [job for res, url in zip(results, urls, strict=True)
                if (job := _register(res, url, engine=engine, opts=opts, seen_fp=seen_fp, say=say,
                                     test_dir=test_dir))]
        whole = _run(jobs, itertools.chain([first], stream), engine=engine, test_dir=test_dir, opts=opts,
                     progress=progress, say=say)
        _finish(jobs, engine, test_set_hash=digest.hexdigest() if whole else None)
    finally:
        stream.close()
        if cache is not None:
            cache.close()
            if cache.error:
                say(f"warning: {cache.error}")
    _summarise(jobs, engine=engine, opts=opts, say=say)
    return results


def _run(jobs: list[_Job], stream: Iterator[list[TestImage]], **kw) -> bool:
    """_Collection.run, with every run closed however it ends: incomplete after a database error
    (where the database still answers), interrupted after Ctrl-C, SIGTERM or a bug."""
    try:
        return _Collection(jobs, **kw).run(stream)
    except (DatabaseFailure, DBAPIError) as e:
        for job in jobs:
            job.abort("stopped by a database error")
        _finish(jobs, kw["engine"], quiet=True)
        if isinstance(e, DatabaseFailure):
            raise
        raise DatabaseFailure(f"database error: {_first_line(e)}") from None
    except BaseException:
        _finish(jobs, kw["engine"], interrupted=True, quiet=True)
        raise


def _summarise(jobs: list[_Job], *, engine: Engine, opts: CollectOptions, say: Callable[[str], None]) -> None:
    """Each model's accuracy over everything stored; a line for each model that needed nothing."""
    for job in jobs:
        res = job.result
        res.accuracy, res.n_scored = _accuracy(engine, job.model_id)
        if job.run_id is None:
            share = f" (shard {opts.shard[0]}/{opts.shard[1]})" if opts.shard else ""
            say(f"{res.name} v{res.version} ({res.fingerprint[:12]}) at {res.url}: already fully evaluated{share}, "
                "nothing to send")


def _register(res: ModelResult, url: str, *, engine: Engine, opts: CollectOptions,
              seen_fp: dict[str, tuple[str, list[str]]], say, test_dir: Path) -> _Job | None:
    """Ask one server who it is; check its claim (_claim_problem); register the model."""
    try:
        client = connect(url, opts.protocol, limits=opts.limits(), retries=opts.retries, backoff=opts.backoff,
                         echo_errors=opts.echo_errors, policy=opts.policy)
        res.url = client.url
        meta = client.metadata()
    except ModelServerError as e:
        res.error, res.category = e.reason, e.category
        return None
    res.name, res.version, res.fingerprint = meta["name"], meta["version"], meta["fingerprint"]
    if res.fingerprint in seen_fp:
        client.close()
        first_url, first_labels = seen_fp[res.fingerprint]
        if first_labels != meta["labels"]:
            res.error = (f"announces fingerprint {res.fingerprint[:12]} of {first_url} but other labels: refused, "
                         "nothing stored (a fingerprint names one model)")
            res.category = CLAIM_REFUSED
            return None
        res.status, res.error = RunStatus.SKIPPED, f"same model as {first_url}"
        say(f"{res.url}: same fingerprint as {first_url}; evaluated once")
        return None
    seen_fp[res.fingerprint] = (res.url, list(meta["labels"]))
    problem = _claim_problem(client, meta, engine=engine, test_dir=test_dir)
    if problem:
        res.error, res.category = problem, CLAIM_REFUSED
        client.close()
        return None
    with engine.begin() as conn:
        model_id = store.upsert_model(conn, meta=meta, url=client.url)
    res.status = RunStatus.SKIPPED  # until the stream brings an image it has not answered
    return _Job(res, client, model_id, list(meta["labels"]))


def _claim_problem(client: ModelClient, meta: dict, *, engine: Engine, test_dir: Path) -> str | None:
    """Why a server announcing a stored fingerprint is not that model (other labels, other answers);
    None for a new fingerprint or a claim that holds."""
    with engine.connect() as conn:
        known = store.find_model(conn, fingerprint=meta["fingerprint"])
        stored = store.sample_predictions(conn, model_id=known.id, limit=4 * VERIFY_IMAGES) if known else []
    if known is not None and list(known.labels) != meta["labels"]:
        return (f"announces fingerprint {meta['fingerprint'][:12]} of the stored model {known.title} but "
                f"other labels: refused, nothing stored (a fingerprint names one model)")
    return _verify(client, meta, known, stored, test_dir) if stored else None


def _verify(client: ModelClient, meta: dict, known: store.ModelInfo, stored: list[dict],
            test_dir: Path) -> str | None:
    """None when the server answers stored images as stored; else why it is refused.

    A fingerprint is a claim: before the collector skips a model as evaluated or adds answers
    to it, the server must give the stored answers again for a few stored images chosen at
    random (those found under their stored path with their stored bytes). Another model
    announcing this fingerprint, or the model changed behind it, fails.
    """
    payload = []
    for row in stored:
        try:
            data = (test_dir / row["path"]).read_bytes()
        except (OSError, ValueError):
            continue  # an image no longer in the test set: nothing to send
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            continue
        payload.append((row, data))
        if len(payload) == VERIFY_IMAGES:
            break
    if not payload:
        return None
    refused = "refused, nothing stored"
    try:
        body = client.predict([(row["path"], data) for row, data in payload])
        preds = validate.predictions(body, n_sent=len(payload), labels=meta["labels"],
                                     fingerprint=meta["fingerprint"], version=meta["version"])
    except ModelServerError as e:
        return f"cannot check it is the stored model {known.title}: {e.reason}; {refused}"
    except (InvalidAnswer, ModelChanged) as e:
        return f"invalid answer while checking it is the stored model {known.title}: {e}; {refused}"
    for (row, _), p in zip(payload, preds, strict=True):
        diff = max(abs(float(p["scores"][k]) - float((row["scores"] or {}).get(k, -1.0))) for k in p["scores"])
        if p["label"] != row["predicted_label"] or diff > SCORE_NOISE:
            return (f"answers differ from the stored predictions of {known.title} ({row['path']}: "
                    f"{p['label']} now, {row['predicted_label']} stored; scores differ by up to {diff:.3g}): "
                    f"the fingerprint is reused by another model, or the model changed; {refused}")
    return None


Batch = list[tuple[TestImage, int]]  # images and their database ids


class _Collection:
    """One pass over the test-set stream for the registered models: each chunk's images are stored
    and planned per model (`_plan_chunk`), the batches go to a bounded thread pool (`_send`), the
    answers to the write batches (`_Writer`), and a heartbeat keeps the runs marked alive."""

    def __init__(self, jobs: list[_Job], *, engine: Engine, test_dir: Path, opts: CollectOptions,
                 progress: ProgressHook | None, say: Callable[[str], None] = print):
        self.jobs, self.engine, self.test_dir, self.opts, self.progress = jobs, engine, test_dir, opts, progress
        self.say = say
        self.relabelled: list[str] = []  # paths of images stored before under another label
        self.writer = _Writer(engine)
        self.db_errors: list[BaseException] = []
        self.bugs: list[BaseException] = []
        self.in_flight = opts.max_in_flight or min(8, 2 * max(len(jobs), 1))
        self._pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="collect")
        # Batches queued or running at most: the stream is read only as fast as the servers answer.
        self._slots = threading.BoundedSemaphore(2 * self.in_flight)
        self._stop_beating = threading.Event()
        self._beater = threading.Thread(target=self._beat, name="collect-heartbeat", daemon=True)

    def run(self, stream: Iterator[list[TestImage]]) -> bool:
        """Send what each model lacks of the stream; False when the stream was cut short."""
        self._beater.start()
        try:
            whole = self._consume(stream)
            self._pool.shutdown(wait=True)
            if self.bugs:
                raise self.bugs[0]  # re-raise programming errors instead of hiding them
        except BaseException:  # Ctrl-C, SIGTERM or a bug: stop sending, keep what is stored
            for job in self.jobs:
                job.aborted = True
            raise
        finally:
            self._close()
        if self.db_errors:
            raise DatabaseFailure(f"database error during the run (the failed batch was rolled back; "
                                  f"rerun to complete): {_first_line(self.db_errors[0])}")
        return whole

    def _consume(self, stream: Iterator[list[TestImage]]) -> bool:
        try:
            for chunk in stream:
                self._submit(self._plan_chunk(chunk))
                if self.bugs or self.db_errors or (self.jobs and all(job.aborted for job in self.jobs)):
                    return False
            return True
        finally:
            if self.relabelled:
                shown = ", ".join(self.relabelled[:5]) + (" ..." if len(self.relabelled) > 5 else "")
                self.say(f"{len(self.relabelled)} images are stored under another label (relabelled): {shown}; "
                         "models answer them once, judged against the label they were asked with, and compare "
                         "leaves out an image the two models saw under different labels")

    def _submit(self, queues: list[list[Batch]]) -> None:
        """Interleave the models' batches so that every server is busy at once."""
        for k in range(max(map(len, queues), default=0)):
            for job, q in zip(self.jobs, queues, strict=True):
                if k < len(q):
                    self._slots.acquire()
                    self._pool.submit(self._send, job, q[k]).add_done_callback(self._done)

    def _done(self, f) -> None:
        self._slots.release()
        if not f.cancelled() and f.exception() is not None:
            self.bugs.append(f.exception())

    def _close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.writer.flush()  # what was answered is stored, however the run ends
        except DBAPIError as e:
            self.db_errors.append(e)
        self._stop_beating.set()
        if self._beater.is_alive():
            self._beater.join()
        for job in self.jobs:
            job.client.close()

    def _beat(self) -> None:
        """Tells other collectors that these runs are alive."""
        while not self._stop_beating.wait(store.HEARTBEAT_S):
            try:
                with self.writer.lock, self.engine.begin() as conn:
                    store.heartbeat(conn, run_ids=[j.run_id for j in self.jobs if not j.aborted and j.run_id])
            except DBAPIError:
                pass  # the batch writes will report a database that is gone

    def _plan_chunk(self, chunk: list[TestImage]) -> list[list[Batch]]:
        """Store the chunk's images; start or extend each model's run with what it lacks of them."""
        with self.writer.lock, self.engine.begin() as conn:
            ids, relabelled = store.upsert_images(conn, rows=[vars(i) for i in chunk])
            self.relabelled += [r["path"] for r in relabelled]
            return [self._plan_job(conn, job, chunk, ids) for job in self.jobs]

    def _plan_job(self, conn, job: _Job, chunk: list[TestImage], ids: dict[tuple[str, str], int]) -> list[Batch]:
        if job.aborted:
            return []
        wanted = [(i, ids[(i.sha256, i.label)]) for i in eligible(chunk, job.labels)
                  if in_shard(i.sha256, self.opts.shard)]
        # A model is asked about bytes once: a relabelled image it answered keeps that answer, under the
        # label it was asked with.
        done = store.done_among(conn, model_id=job.model_id, shas=[i.sha256 for i, _ in wanted])
        todo = [(i, k) for i, k in wanted if i.sha256 not in done]
        if todo and job.run_id is None:
            job.run_id = store.start_run(conn, model_id=job.model_id, url=job.client.url, n_planned=len(todo),
                                         collector_version=__version__, test_set_hash="")
            job.result.status = RunStatus.RUNNING
        elif todo:
            store.plan_more(conn, run_id=job.run_id, n=len(todo))
        job.planned += len(todo)
        size = self.opts.batch_size
        return [todo[i:i + size] for i in range(0, len(todo), size)]

    def _send(self, job: _Job, batch: Batch) -> None:
        if job.aborted or self.db_errors:
            return
        payload: list[tuple[TestImage, int, bytes]] = []
        for item, image_id in batch:
            try:
                data = (self.test_dir / item.path).read_bytes()
            except OSError as e:
                job.failures.append((item.path, item.sha256, f"cannot read: {e}"))
                continue
            payload.append((item, image_id, data))
        rows = self._predict(job, payload)
        if rows:
            try:
                self.writer.add(job, rows)
            except DBAPIError as e:
                self.db_errors.append(e)
                return
        if self.progress:
            self.progress(job.result.url, len(batch), job.planned)

    def _predict(self, job: _Job, payload: list[tuple[TestImage, int, bytes]]) -> list[dict]:
        """The checked answers to `payload` as prediction rows; a rejected batch is halved until the
        rejected images are found (each reported, the others answered)."""
        if not payload or job.aborted:
            return []
        t0 = time.perf_counter()
        try:
            body = job.client.predict([(it.path, data) for it, _, data in payload])
        except ModelServerError as e:
            if e.status is None or not 400 <= e.status < 500 or e.status in (404, 405):
                job.abort(e.reason, e.category)
                return []
            if len(payload) > 1:
                mid = len(payload) // 2
                return self._predict(job, payload[:mid]) + self._predict(job, payload[mid:])
            job.reject(payload[0][0], e.reason)
            return []
        preds = _checked(job, body, len(payload))
        if preds is None:
            return []
        per_image_ms = (time.perf_counter() - t0) * 1000 / len(payload)
        return [{"run_id": job.run_id, "model_id": job.model_id, "image_id": image_id,
                 "predicted_label": p["label"], "confidence": p["confidence"], "scores": p["scores"],
                 "latency_ms": per_image_ms} for (_, image_id, _), p in zip(payload, preds, strict=True)]


def _checked(job: _Job, body, n_sent: int) -> list[dict] | None:
    """The answers of one batch once every check passed (counted as accepted); None: the job is aborted."""
    try:
        preds = validate.predictions(body, n_sent=n_sent, labels=job.labels, fingerprint=job.result.fingerprint,
                                     version=job.result.version)
    except ModelChanged as e:
        job.abort(f"the model changed during the run (fingerprint {e.fingerprint}, version {e.version}; "
                  f"expected {job.result.fingerprint[:12]} v{job.result.version}); run again to evaluate "
                  "the new one")
        return None
    except InvalidAnswer as e:
        job.abort(f"invalid answer to POST {job.client.predict_path}: {e}; nothing of it was stored")
        return None
    with job.lock:
        job.accepted += len(preds)
    return preds


class _Writer:
    """Answers are stored in write batches of up to WRITE_ROWS rows, or after WRITE_INTERVAL_S:
    large enough for COPY speed on PostgreSQL, small enough that a kill loses at most one write
    batch (the rerun asks those images again). One writer at a time, as SQLite needs."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.rows: list[dict] = []
        self.owners: dict[int, tuple[_Job, int]] = {}
        self.since = 0.0

    def add(self, job: _Job, rows: list[dict]) -> None:
        with self.lock:
            if not self.rows:
                self.since = time.monotonic()
            self.rows += rows
            held = self.owners.get(id(job), (job, 0))[1]
            self.owners[id(job)] = (job, held + len(rows))
            if len(self.rows) >= WRITE_ROWS or time.monotonic() - self.since >= WRITE_INTERVAL_S:
                self._write()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        if not self.rows:
            return
        rows, owners = self.rows, list(self.owners.values())
        self.rows, self.owners = [], {}  # a failed write is rolled back and not retried: rerun to complete
        with self.engine.begin() as conn:
            store.insert_predictions(conn, rows=rows)
            store.heartbeat(conn, run_ids=[job.run_id for job, _ in owners])
        for job, n in owners:
            with job.lock:
                job.result.n_sent += n


def _first_line(e: BaseException) -> str:
    lines = str(getattr(e, "orig", e)).strip().splitlines()
    return store.redact_url(lines[0]) if lines else type(e).__name__


def _finish(jobs: list[_Job], engine: Engine, *, interrupted: bool = False, quiet: bool = False,
            test_set_hash: str | None = None) -> None:
    """Record each run's end. With quiet=True (already failing), a database error is swallowed:
    runs it cannot mark stay 'running' until the next start finds their process dead."""
    for job in jobs:
        if job.run_id is None:
            continue  # nothing to send: no run was started (status stays skipped)
        res = job.result
        res.n_failed = len(job.failures)
        if interrupted:
            res.status = RunStatus.INTERRUPTED
        elif job.aborted:
            res.status = RunStatus.INCOMPLETE if res.n_sent else RunStatus.FAILED
        elif res.n_sent == 0 and res.n_failed:
            res.status, res.error = RunStatus.FAILED, res.error or f"every image was rejected ({res.n_failed})"
        else:
            res.status = RunStatus.COMPLETED
        try:
            with engine.begin() as conn:
                store.record_failures(conn, run_id=job.run_id, items=job.failures)
                job.failures = []  # recorded once, even if _finish runs again
                store.finish_run(conn, run_id=job.run_id, status=res.status, n_sent=res.n_sent,
                                 n_failed=res.n_failed, error=res.error, test_set_hash=test_set_hash)
        except DBAPIError:
            if not quiet:
                raise
