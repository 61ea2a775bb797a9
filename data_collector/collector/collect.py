"""`collect`: ask each model for the test images it has not been evaluated on, store the answers.

Done = a row in `predictions` for (model fingerprint, image sha256). What is missing is computed
from the database at every start, so skip, incremental and resume are one mechanism.

Every answer is checked (validate.py) before anything of it is stored; a server that breaks the
rules fails alone, the other models of the run go on.

A declared fingerprint is a claim, verified by behaviour (`_Claims`): an endpoint is a *founder*
only when nothing is stored for its fingerprint and no other URL of the run claims it; every other
endpoint is a *claimant*, whose answers are kept apart (pending_predictions) until they agree with
the fingerprint's other answers on the same images — stored answers asked again at random points
of the run, the other claimants' answers, and its own earlier answers repeated in later batches.
A disagreement marks the fingerprint conflicting (claim_conflicts holds the evidence); nothing of
that endpoint is counted, and compare and gate refuse the model until `conflicts resolve`.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from . import __version__
from .early import CollectOptions, Early, shown
from .protocols import validate
from .protocols.client import CLAIM_REFUSED, NOT_A_MODEL_SERVER, ModelClient, ModelServerError
from .protocols.urls import ModelURL
from .protocols.validate import InvalidAnswer, ModelChanged
from .redact import contains_secret, redact_secrets
from .storage import store
from .testset.images import TestImage, eligible, in_shard
from .vocab import RunStatus

REJECTED_BEFORE_GIVING_UP = 8  # images refused (4xx) with none accepted: the server rejects everything
RESERVOIR = 64  # answered images an endpoint may be asked again later in its run (self-repeats)
REPEATS_AT_END = 4  # ... of which at least this many (or all it answered), in a last request if need be
EVIDENCE_KEPT = 20  # disagreeing images stored as evidence per endpoint and run (all are counted)
WRITE_ROWS = 1024  # answers stored per transaction at most (see _Writer)
WRITE_INTERVAL_S = 1.0  # ... or after this long, whichever comes first
SCORE_NOISE = 1e-3  # one image answered twice under one fingerprint: each score within this of the other
_rng = random.SystemRandom()  # which images are checks and where they go: nothing a server can predict


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
    checked: int = 0  # answers compared with another answer of the same fingerprint (and agreeing)
    disagreed: int = 0  # ... and disagreeing: the fingerprint is conflicting


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
    founder: bool = True  # its answers are stored as the model's at once; else kept apart until verified
    established: bool = False  # the fingerprint had counted answers when the run started
    checks_left: int = 0  # stored answers still to ask again (planned per chunk)
    expected: dict[int, dict] = field(default_factory=dict)  # image id -> the stored answer a check must give
    answered: dict[int, tuple[TestImage, dict]] = field(default_factory=dict)  # self-repeat reservoir
    seen: int = 0  # answers offered to the reservoir
    repeated: int = 0  # images of the reservoir asked again so far
    evidence: list[dict] = field(default_factory=list)  # disagreements (EVIDENCE_KEPT at most)
    conflict: bool = False
    counted: bool = False  # a claimant's answers, verified, moved into predictions
    meta: dict = field(default_factory=dict)  # what the server described itself as (stored once it counts)
    endpoint: int = -1  # its URL's place in the run (Early's endpoints)

    def compare(self, item_id: int, other: str, expected: dict, got: dict, *, same_labels: bool = True) -> bool:
        """One image answered twice under this fingerprint: True when the two agree (and the two
        URLs announced the same labels in the same order: the fingerprint covers that order)."""
        same = same_labels and agree(expected, got)
        with self.lock:
            if same:
                self.result.checked += 1
                return True
            self.result.disagreed += 1
            self.conflict = True
            if len(self.evidence) < EVIDENCE_KEPT:
                self.evidence.append({"image_id": item_id, "other": other[:2000],
                                      "expected": {"label": expected["label"], "scores": expected["scores"]},
                                      "answered": {"label": got["label"], "scores": got["scores"]}})
        return False

    def remember(self, item: TestImage, image_id: int, answer: dict) -> None:
        """Reservoir sampling over the run's answers: any of them may come back in a later batch."""
        with self.lock:
            self.seen += 1
            if len(self.answered) < RESERVOIR:
                self.answered[image_id] = (item, answer)
            elif (slot := _rng.randrange(self.seen)) < RESERVOIR:
                self.answered.pop(next(itertools.islice(iter(self.answered), slot, None)))
                self.answered[image_id] = (item, answer)

    def repeat(self) -> tuple[int, TestImage, dict] | None:
        with self.lock:
            if not self.answered:
                return None
            image_id = _rng.choice(list(self.answered))
            item, answer = self.answered[image_id]
            return image_id, item, answer

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


def collect(urls: list[str | ModelURL], *, engine: Engine, test_dir: Path, opts: CollectOptions | None = None,
            progress: ProgressHook | None = None, say: Callable[[str], None] = print,
            early: Early | None = None) -> list[ModelResult]:
    """The test set streams by in chunks of early.CHUNK_IMAGES: each chunk is hashed (through the hash
    cache), stored, checked against what each model has already answered, and sent; memory does
    not grow with the size of the test set. `early`: the same URLs, test set and options started
    before the database was opened (early.py); else started here. Closed here either way."""
    early = early or Early(urls, test_dir, opts)
    if early.urls != list(urls) or (opts is not None and early.opts is not opts):
        early.close(wait=False)
        raise ValueError("collect: `early` was started for other URLs or options")
    opts = early.opts
    jobs: list[_Job] = []
    try:
        first = early.first_chunk()  # an empty test set stops here, before any server is asked
        with engine.begin() as conn:
            reaped = store.reap_dead_runs(conn)
        if reaped:
            say(f"{len(reaped)} run(s) left 'running' by a collector that died are now marked interrupted")
        results = [ModelResult(url=shown(ep.target)) for ep in early.endpoints]
        described = [(i, res, d) for i, res in enumerate(results) if (d := _describe(res, i, early, engine=engine))]
        jobs = _register(described, engine=engine, opts=opts)
        whole = _run(jobs, itertools.chain([first], early.stream), engine=engine, test_dir=early.test_dir,
                     opts=opts, progress=progress, say=say, early=early)
        _judge(jobs, engine)
        _finish(jobs, engine, test_set_hash=early.digest.hexdigest() if whole else None)
    finally:
        early.close()
        if early.cache is not None and early.cache.error:
            say(f"warning: {early.cache.error}")
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
        if job.run_id is None and not job.conflict and not job.aborted:
            share = f" (shard {opts.shard[0]}/{opts.shard[1]})" if opts.shard else ""
            checked = f"; {res.checked} stored answers asked again agree" if res.checked else ""
            say(f"{res.name} v{res.version} ({res.fingerprint[:12]}) at {res.url}: already fully evaluated{share}"
                f"{checked}, nothing to send")


def _describe(res: ModelResult, i: int, early: Early, *, engine: Engine) -> tuple[ModelClient, dict] | None:
    """Who URL i said it is (asked by `early`); refuse what cannot be that model (other labels than
    the stored model of its fingerprint, the URL's credentials as its name or labels). Nothing is stored."""
    try:
        client, meta = early.describe(i)
        res.url = client.url
    except ModelServerError as e:
        res.error, res.category = e.reason, e.category
        return None
    res.name, res.version, res.fingerprint = meta["name"], meta["version"], meta["fingerprint"]
    if contains_secret(json.dumps(meta.get("server"), default=str)):  # a server's own keys echoing them
        meta = {**{k: v for k, v in meta.items() if k != "server"}, "server_dropped": "held the URL's credentials"}
    problem = _claim_problem(meta, engine=engine)
    if problem:
        res.name = res.version = "?"
        res.error, res.category = problem, CLAIM_REFUSED
        client.close()
        return None
    return client, meta


def _claim_problem(meta: dict, *, engine: Engine) -> str | None:
    """Why a server cannot be the model whose fingerprint it announces, from what it says alone."""
    if any(contains_secret(str(x)) for x in (meta["name"], meta["version"], *meta["labels"])):
        return ("uses the URL's credentials as its name, version or a label: refused for this run, nothing "
                "stored")
    with engine.connect() as conn:
        known = store.find_model(conn, fingerprint=meta["fingerprint"])
        counted = known is not None and store.done_any(conn, model_id=known.id)
    if counted and list(known.labels) != meta["labels"]:  # labels are fixed once answers count
        return (f"announces fingerprint {meta['fingerprint'][:12]} of the stored model {known.title} but "
                f"other labels: refused, nothing stored (a fingerprint names one model)")
    return None


def _register(described: list[tuple[int, ModelResult, tuple[ModelClient, dict]]], *, engine: Engine,
              opts: CollectOptions) -> list[_Job]:
    """Register every described model. URLs announcing one fingerprint are all collected, none
    skipped: one founder only when nothing is stored for it and no other URL of the run claims it;
    otherwise each is a claimant (see the module doc). Claimants of a new fingerprint that differ in
    their labels cannot give answers that agree: their fingerprint becomes conflicting, and no URL is
    refused for what another said."""
    groups: dict[str, list] = {}
    for i, res, (client, meta) in described:
        groups.setdefault(meta["fingerprint"], []).append((i, res, client, meta))
    jobs = []
    for members in groups.values():
        with engine.begin() as conn:
            for _i, _res, _client, meta in members:
                model_id = store.upsert_model(conn, meta=meta, url=None)
            established = bool(store.done_any(conn, model_id=model_id))
            founder = not established and len(members) == 1
            if founder:  # a claimant's URL and description are recorded once its answers agree (_judge)
                store.set_model_identity(conn, model_id=model_id, meta=members[0][3])
                store.add_model_url(conn, model_id=model_id, url=members[0][2].url)
        for i, res, client, meta in members:
            res.status = RunStatus.SKIPPED  # until the stream brings an image it has not answered
            jobs.append(_Job(res, client, model_id, list(meta["labels"]), founder=founder, established=established,
                             checks_left=opts.claim_checks if established else 0, meta=meta, endpoint=i))
    return jobs


def agree(a: dict, b: dict) -> bool:
    """Two answers to one image are one model's: every score within SCORE_NOISE (the labels then
    differ only at a tie within that noise)."""
    keys = set(a["scores"]) | set(b["scores"])
    if set(a["scores"]) != set(b["scores"]):
        return False
    return all(abs(_score(a, k) - _score(b, k)) <= SCORE_NOISE for k in keys)


def _score(answer: dict, label: str) -> float:
    v = answer["scores"].get(label)
    return v if isinstance(v, float | int) and not isinstance(v, bool) else float("nan")


WRITE, CHECK, REPEAT = "write", "check", "repeat"  # what an image in a batch is for
Batch = list[tuple[TestImage, int, str]]  # images, their database ids and what each is for


class _Collection:
    """One pass over the test-set stream for the registered models: each chunk's images are stored
    and planned per model (`_plan_chunk`), the batches go to a bounded thread pool (`_send`), the
    answers to the write batches (`_Writer`), and a heartbeat keeps the runs marked alive."""

    def __init__(self, jobs: list[_Job], *, engine: Engine, test_dir: Path, opts: CollectOptions,
                 progress: ProgressHook | None, early: Early, say: Callable[[str], None] = print):
        self.jobs, self.engine, self.test_dir, self.opts, self.progress = jobs, engine, test_dir, opts, progress
        self.say, self.early = say, early
        self.relabelled: list[str] = []  # paths of images stored before under another label
        self.writer = _Writer(engine)
        self.db_errors: list[BaseException] = []
        self.bugs: list[BaseException] = []
        self.in_flight = opts.in_flight(len(jobs))
        self._pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="collect")
        # Batches queued or running at most: the stream is read only as fast as the servers answer.
        self._slots = threading.BoundedSemaphore(2 * self.in_flight)
        self._progress_lock = threading.Lock()
        self._stop_beating = threading.Event()
        self._beater = threading.Thread(target=self._beat, name="collect-heartbeat", daemon=True)

    def run(self, stream: Iterator[list[TestImage]]) -> bool:
        """Send what each model lacks of the stream; False when the stream was cut short."""
        self.early.stop()  # from here on, only what the run planned is sent
        self._beater.start()
        try:
            whole = self._consume(stream)
            self._pool.shutdown(wait=True)
            for job in self.jobs:
                self._repeat_tail(job)
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

    def _repeat_tail(self, job: _Job) -> None:
        """A last request of REPEATS_AT_END images the URL answered earlier in the run, at random:
        every URL that answered anything is asked some of it again, however its batches raced
        (in-flight batches go out before any answer can be repeated)."""
        with job.lock:
            owed = min(len(job.answered), REPEATS_AT_END) - job.repeated
            picks = _rng.sample(list(job.answered.items()), owed) if owed > 0 else []
        if job.aborted or self.db_errors or not picks:
            return
        payload = []
        for image_id, (item, answer) in picks:
            try:
                payload.append((item, image_id, REPEAT, item.read(self.test_dir), answer))
            except (OSError, ValueError):
                continue
        self._predict(job, [p[:4] for p in payload], earlier={p[1]: p[4] for p in payload})

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
        self.early.close()  # its requests in flight end before the clients close
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
            ids, relabelled = store.upsert_images(conn, rows=[i.row() for i in chunk])
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
        todo = [(i, k, WRITE) for i, k in wanted if i.sha256 not in done]
        checks = self._checks(conn, job, [(i, k) for i, k in wanted if i.sha256 in done])
        if todo and job.run_id is None:
            job.run_id = store.start_run(conn, model_id=job.model_id, url=job.client.url, n_planned=len(todo),
                                         collector_version=__version__, test_set_hash="")
            job.result.status = RunStatus.RUNNING
        elif todo:
            store.plan_more(conn, run_id=job.run_id, n=len(todo))
        work = todo + checks
        if checks:
            _rng.shuffle(work)  # the checks anywhere among the ordinary work
        job.planned += len(work)
        size = self.opts.batch_size
        return [work[i:i + size] for i in range(0, len(work), size)]

    def _checks(self, conn, job: _Job, done: list[tuple[TestImage, int]]) -> list[tuple[TestImage, int, str]]:
        """Stored answers of the fingerprint to ask again, chosen at random among this chunk's images."""
        if job.checks_left <= 0 or not done:
            return []
        chosen = _rng.sample(done, min(len(done), job.checks_left))
        truth = store.stored_answers(conn, model_id=job.model_id, shas=[i.sha256 for i, _ in chosen])
        out = []
        for item, image_id in chosen:
            if item.sha256 in truth:
                job.expected[image_id] = truth[item.sha256]
                out.append((item, image_id, CHECK))
        job.checks_left -= len(out)
        return out

    def _send(self, job: _Job, batch: Batch) -> None:
        if job.aborted or self.db_errors:
            return
        held = self._held(job, batch)  # answered early (early.py): not asked again
        ask = [b for b in batch if b[1] not in held]
        payload: list[tuple[TestImage, int, str, bytes]] = []
        again = job.repeat() if ask else None  # one image it answered earlier in this run, at a random place
        if again is not None:
            image_id, item, _ = again
            ask.insert(_rng.randrange(len(ask) + 1), (item, image_id, REPEAT))
        for item, image_id, role in ask:
            try:
                data = item.read(self.test_dir)
            except (OSError, ValueError) as e:
                if role == WRITE:
                    job.failures.append((item.path, item.sha256, f"cannot read: {e}"))
                continue
            payload.append((item, image_id, role, data))
        with job.lock:
            job.repeated += again is not None
        rows = list(held.values()) + self._predict(job, payload, {again[0]: again[2]} if again else None)
        if rows:
            try:
                self.writer.add(job, rows)
            except DBAPIError as e:
                self.db_errors.append(e)
                return
        if self.progress:
            with self._progress_lock:  # one report at a time, its total read inside: a total never shrinks
                self.progress(job.result.url, sum(1 for *_, role in batch if role != REPEAT), job.planned)

    def _held(self, job: _Job, batch: Batch) -> dict[int, dict]:
        """The rows of the batch's images to store that `early` holds a checked answer to, by image id."""
        rows = {}
        for item, image_id, role in batch:
            got = self.early.held(job.endpoint, item.sha256) if role == WRITE else None
            if got is not None:
                job.remember(item, image_id, got.answer)
                rows[image_id] = _row(job, image_id, got.answer, got.latency_ms)
        with job.lock:
            job.accepted += len(rows)
        return rows

    def _predict(self, job: _Job, payload: list[tuple[TestImage, int, str, bytes]],
                 earlier: dict[int, dict] | None = None) -> list[dict]:
        """The checked answers to `payload` as prediction rows; a rejected batch is halved until the
        rejected images are found (each reported, the others answered). Checks and repeats are
        compared, never stored."""
        if not payload or job.aborted:
            return []
        t0 = time.perf_counter()
        try:
            body = job.client.predict([(it.path, data) for it, _, _, data in payload])
        except ModelServerError as e:
            if e.status is None or not 400 <= e.status < 500 or e.status in (404, 405):
                job.abort(e.reason, e.category)
                return []
            if len(payload) > 1:
                mid = len(payload) // 2
                return self._predict(job, payload[:mid], earlier) + self._predict(job, payload[mid:], earlier)
            if payload[0][2] == WRITE:
                job.reject(payload[0][0], e.reason)
            return []
        preds = _checked(job, body, len(payload))
        if preds is None:
            return []
        per_image_ms = (time.perf_counter() - t0) * 1000 / len(payload)
        rows = []
        for (item, image_id, role, _), p in zip(payload, preds, strict=True):
            if role == CHECK:
                job.compare(image_id, "its stored answers", job.expected[image_id], p)
            elif role == REPEAT:
                job.compare(image_id, "its own earlier answer in this run", (earlier or {})[image_id], p)
            else:
                job.remember(item, image_id, p)
                rows.append(_row(job, image_id, p, per_image_ms))
        if job.conflict:
            job.abort(_conflict_reason(job), CLAIM_REFUSED)
            return [] if not job.founder else rows
        return rows


def _row(job: _Job, image_id: int, answer: dict, latency_ms: float) -> dict:
    return {"run_id": job.run_id, "model_id": job.model_id, "image_id": image_id, "predicted_label": answer["label"],
            "confidence": answer["confidence"], "scores": answer["scores"], "latency_ms": latency_ms}


def _conflict_reason(job: _Job) -> str:
    res = job.result
    first = job.evidence[0]["other"] if job.evidence else "another answer"
    kept = "its answers were kept apart, none counted" if not job.founder else "its answers are marked"
    return (f"answers {res.disagreed} image(s) differently from {first} of fingerprint {res.fingerprint[:12]}: "
            f"{kept}; the fingerprint is now conflicting (data-collector conflicts)")


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
    batch (the rerun asks those images again). One writer at a time, as SQLite needs. A founder's
    answers go to `predictions`, a claimant's to `pending_predictions` (module doc)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.rows: list[dict] = []
        self.pending: list[dict] = []
        self.owners: dict[int, tuple[_Job, int]] = {}
        self.since = 0.0

    def add(self, job: _Job, rows: list[dict]) -> None:
        with self.lock:
            if not self.rows and not self.pending:
                self.since = time.monotonic()
            (self.rows if job.founder else self.pending).extend(rows)
            held = self.owners.get(id(job), (job, 0))[1]
            self.owners[id(job)] = (job, held + len(rows))
            if len(self.rows) + len(self.pending) >= WRITE_ROWS or time.monotonic() - self.since >= WRITE_INTERVAL_S:
                self._write()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        if not self.rows and not self.pending:
            return
        rows, pending, owners = self.rows, self.pending, list(self.owners.values())
        self.rows, self.pending, self.owners = [], [], {}  # a failed write is rolled back: rerun to complete
        with self.engine.begin() as conn:
            store.insert_predictions(conn, rows=rows)
            store.insert_pending(conn, rows=pending)
            store.heartbeat(conn, run_ids=[job.run_id for job, _ in owners])
        for job, n in owners:
            with job.lock:
                job.result.n_sent += n


def _judge(jobs: list[_Job], engine: Engine) -> None:
    """After the run: claimants of one fingerprint are compared on the images they both answered;
    a claimant with no disagreement and at least one agreeing comparison (or, for a fingerprint
    nothing was stored for, no other answer to compare with) has its answers counted; every
    disagreement is stored as evidence."""
    with engine.begin() as conn:
        by_fp: dict[str, list[_Job]] = {}
        for j in jobs:
            if not j.founder and j.run_id:
                by_fp.setdefault(j.result.fingerprint, []).append(j)
        # Answers are read back only where two claimants of one fingerprint are compared: a lone
        # claimant's (a known model with new images, checked against its stored answers during the
        # run) stay in the database, so memory does not grow with the test set.
        kept = {id(j): store.pending_answers(conn, run_id=j.run_id) if len(group) > 1 else None
                for group in by_fp.values() for j in group}
        for group in by_fp.values():
            for a, b in itertools.combinations(group, 2):
                for image_id in kept[id(a)].keys() & kept[id(b)].keys():
                    x, y = kept[id(a)][image_id], kept[id(b)][image_id]
                    same_labels = a.labels == b.labels
                    a.compare(image_id, b.client.url, y, x, same_labels=same_labels)
                    b.compare(image_id, a.client.url, x, y, same_labels=same_labels)
        for j in jobs:
            if j.conflict:
                if not j.aborted:
                    j.abort(_conflict_reason(j), CLAIM_REFUSED)
                store.record_conflicts(conn, rows=[{**e, "model_id": j.model_id, "url": j.client.url,
                                                    "run_id": j.run_id} for e in j.evidence])
            elif not j.founder and j.run_id is None and j.result.checked and not j.aborted:
                store.add_model_url(conn, model_id=j.model_id, url=j.client.url)  # its checks agreed
            elif id(j) in kept:
                # Alone: a new fingerprint no other URL of the run gave an answer for.
                alone = not j.established and not any(kept[id(o)] for o in by_fp[j.result.fingerprint] if o is not j)
                # (a lone claimant's group holds itself only: `any` over no other is False)
                if j.result.checked or alone:
                    if not store.done_any(conn, model_id=j.model_id):  # the first to count describes it
                        store.set_model_identity(conn, model_id=j.model_id, meta=j.meta)
                    store.merge_pending(conn, run_id=j.run_id)
                    store.add_model_url(conn, model_id=j.model_id, url=j.client.url)
                    j.counted = True
                else:
                    store.drop_pending(conn, run_id=j.run_id)
                    if not j.aborted:
                        j.abort(f"its claim of fingerprint {j.result.fingerprint[:12]} could not be checked: no "
                                "image it answered has another answer of that fingerprint; nothing of it was "
                                "counted", CLAIM_REFUSED)


def _first_line(e: BaseException) -> str:
    lines = str(getattr(e, "orig", e)).strip().splitlines()
    return store.redact_url(lines[0]) if lines else type(e).__name__


def _finish(jobs: list[_Job], engine: Engine, *, interrupted: bool = False, quiet: bool = False,
            test_set_hash: str | None = None) -> None:
    """Record each run's end. With quiet=True (already failing), a database error is swallowed:
    runs it cannot mark stay 'running' until the next start finds their process dead."""
    for job in jobs:
        res = job.result
        if job.run_id is None:  # nothing to collect: no run was started (status stays skipped) ...
            if job.aborted:  # ... but its checks failed, or its server did
                res.status, res.error = RunStatus.FAILED, redact_secrets(res.error or "")
            continue
        res.n_failed = len(job.failures)
        uncounted = not job.founder and not job.counted  # a claimant whose answers were kept apart
        if interrupted:
            res.status = RunStatus.INTERRUPTED
        elif job.conflict or (uncounted and job.aborted):
            res.status = RunStatus.FAILED
        elif job.aborted:
            res.status = RunStatus.INCOMPLETE if res.n_sent else RunStatus.FAILED
        elif res.n_sent == 0 and res.n_failed:
            res.status, res.error = RunStatus.FAILED, res.error or f"every image was rejected ({res.n_failed})"
        else:
            res.status = RunStatus.COMPLETED
        if res.error:
            res.error = redact_secrets(res.error)
        job.failures = [(path, sha, redact_secrets(reason)) for path, sha, reason in job.failures]
        try:
            with engine.begin() as conn:
                if interrupted and not job.founder and not job.conflict:
                    store.drop_pending(conn, run_id=job.run_id)  # unverified: the rerun asks again
                store.record_failures(conn, run_id=job.run_id, items=job.failures)
                job.failures = []  # recorded once, even if _finish runs again
                store.finish_run(conn, run_id=job.run_id, status=res.status, n_sent=res.n_sent,
                                 n_failed=res.n_failed, error=res.error, test_set_hash=test_set_hash)
        except DBAPIError:
            if not quiet:
                raise
