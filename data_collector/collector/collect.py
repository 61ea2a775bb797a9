"""`collect`: ask each model for the test images it has not been evaluated on, store the answers.

Done = a row in `predictions` for (model fingerprint, image sha256). What is missing is computed
from the database at every start, so skip, incremental and resume are one mechanism.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from . import __version__, store
from .client import ModelClient, ModelServerError
from .testset import TestImage, eligible, scan, test_set_hash
from .vocab import RunStatus


@dataclass
class CollectOptions:
    batch_size: int = 32
    max_in_flight: int | None = None  # default: 2 per model, at most 8
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5


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
    error: str | None = None


@dataclass
class _Job:
    result: ModelResult
    client: ModelClient
    model_id: int
    run_id: int
    todo: list[TestImage]
    failures: list[tuple[str, str | None, str]] = field(default_factory=list)
    aborted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class DatabaseFailure(RuntimeError):
    pass


ProgressHook = Callable[[str, int, int], None]  # (model key, advance, total)


def _accuracy(engine: Engine, model_id: int) -> tuple[float | None, int]:
    with engine.connect() as conn:
        return store.model_accuracy(conn, model_id=model_id)


def collect(urls: list[str], *, engine: Engine, test_dir: Path, opts: CollectOptions | None = None,
            progress: ProgressHook | None = None, say: Callable[[str], None] = print) -> list[ModelResult]:
    opts = opts or CollectOptions()
    items = scan(test_dir)
    ts_hash = test_set_hash(items)
    by_sha = {i.sha256: i for i in items}
    with engine.begin() as conn:
        image_ids = store.upsert_images(conn, rows=[vars(i) for i in items])

    results: list[ModelResult] = []
    jobs: list[_Job] = []
    seen_fp: dict[str, str] = {}
    for url in urls:
        res = ModelResult(url=url)
        results.append(res)
        try:
            client = ModelClient(url, timeout=opts.timeout, retries=opts.retries, backoff=opts.backoff)
            meta = client.metadata()
        except ModelServerError as e:
            res.error = str(e)
            say(f"error: {e}")
            continue
        res.name, res.version, res.fingerprint = meta["name"], str(meta["version"]), meta["fingerprint"]
        if res.fingerprint in seen_fp:
            res.status, res.error = RunStatus.SKIPPED, f"same model as {seen_fp[res.fingerprint]}"
            say(f"{url}: same fingerprint as {seen_fp[res.fingerprint]}; evaluated once")
            continue
        seen_fp[res.fingerprint] = url
        with engine.begin() as conn:
            model_id = store.upsert_model(conn, meta=meta, url=client.url)
            done = store.done_image_ids(conn, model_id=model_id)
            todo = [i for i in eligible(items, meta["labels"]) if image_ids[i.sha256] not in done]
            if not todo:
                res.status = RunStatus.SKIPPED
                res.accuracy, res.n_scored = _accuracy(engine, model_id)
                say(f"{res.name} v{res.version} ({res.fingerprint[:12]}) at {url}: already fully evaluated, "
                    "nothing to send")
                continue
            run_id = store.start_run(conn, model_id=model_id, url=client.url, n_planned=len(todo),
                                     collector_version=__version__, test_set_hash=ts_hash)
        jobs.append(_Job(res, client, model_id, run_id, todo))

    if jobs:
        _run_jobs(jobs, engine=engine, test_dir=Path(test_dir), image_ids=image_ids, by_sha=by_sha,
                  opts=opts, progress=progress)
    for job in jobs:
        job.result.accuracy, job.result.n_scored = _accuracy(engine, job.model_id)
    return results


def _run_jobs(jobs: list[_Job], *, engine: Engine, test_dir: Path, image_ids: dict[str, int],
              by_sha: dict[str, TestImage], opts: CollectOptions, progress: ProgressHook | None) -> None:
    write_lock = threading.Lock()
    db_error: list[BaseException] = []

    def send(job: _Job, batch: list[TestImage]) -> None:
        if job.aborted or db_error:
            return
        payload: list[tuple[TestImage, bytes]] = []
        for item in batch:
            try:
                data = (test_dir / item.path).read_bytes()
            except OSError as e:
                job.failures.append((item.path, item.sha256, f"cannot read: {e}"))
                continue
            payload.append((item, data))
        rows = _predict(job, payload)
        if rows:
            try:
                with write_lock, engine.begin() as conn:
                    store.insert_predictions(conn, rows=rows)
            except DBAPIError as e:
                db_error.append(e)
                return
        with job.lock:
            job.result.n_sent += len(rows)
        if progress:
            progress(job.result.url, len(batch), len(job.todo))

    def _predict(job: _Job, payload: list[tuple[TestImage, bytes]]) -> list[dict]:
        if not payload or job.aborted:
            return []
        t0 = time.perf_counter()
        try:
            body = job.client.predict([(it.path, data) for it, data in payload])
        except ModelServerError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status != 404:
                if len(payload) == 1:  # this image is the problem: report it, go on
                    job.failures.append((payload[0][0].path, payload[0][0].sha256, str(e)))
                    return []
                mid = len(payload) // 2  # isolate the bad image(s) by halving
                return _predict(job, payload[:mid]) + _predict(job, payload[mid:])
            job.aborted = True
            job.result.error = str(e)
            return []
        got = body.get("model", {}).get("fingerprint")
        if got != job.result.fingerprint:
            job.aborted = True
            job.result.error = (f"{job.client.url}: the model changed during the run (fingerprint {str(got)[:12]}, "
                                f"expected {job.result.fingerprint[:12]}); run again to evaluate the new one")
            return []
        per_image_ms = (time.perf_counter() - t0) * 1000 / len(payload)
        rows = []
        for (item, _), pred in zip(payload, body["predictions"], strict=True):
            rows.append({"run_id": job.run_id, "model_id": job.model_id, "image_id": image_ids[item.sha256],
                         "predicted_label": str(pred["label"]), "confidence": float(pred["confidence"]),
                         "scores": pred.get("scores", {}), "latency_ms": per_image_ms})
        return rows

    # Interleave the models' batches so that every server is busy at once.
    queues = [[job.todo[i:i + opts.batch_size] for i in range(0, len(job.todo), opts.batch_size)] for job in jobs]
    order = [(jobs[j], q[k]) for k in range(max(map(len, queues))) for j, q in enumerate(queues) if k < len(q)]
    in_flight = opts.max_in_flight or min(8, 2 * len(jobs))
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="collect")
    interrupted = False
    try:
        futures = [pool.submit(send, job, batch) for job, batch in order]
        wait(futures)
        for f in futures:
            f.result()  # re-raise programming errors instead of hiding them
    except BaseException:  # Ctrl-C, SIGTERM or a bug: stop sending, keep what is stored
        interrupted = True
        for job in jobs:
            job.aborted = True
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for job in jobs:
            job.client.close()
        if not db_error:
            _finish(jobs, engine, interrupted=interrupted)
    if db_error:
        err = db_error[0]
        raise DatabaseFailure(f"database error during the run (the failed batch was rolled back; "
                              f"rerun to complete): {str(getattr(err, 'orig', err)).strip().splitlines()[0]}")


def _finish(jobs: list[_Job], engine: Engine, *, interrupted: bool = False) -> None:
    for job in jobs:
        res = job.result
        res.n_failed = len(job.failures)
        res.status = (RunStatus.INTERRUPTED if interrupted else RunStatus.INCOMPLETE if job.aborted
                      else RunStatus.COMPLETED)
        with engine.begin() as conn:
            store.record_failures(conn, run_id=job.run_id, items=job.failures)
            store.finish_run(conn, run_id=job.run_id, status=res.status, n_sent=res.n_sent,
                             n_failed=res.n_failed, error=res.error)


def mark_interrupted(engine: Engine) -> None:
    """After Ctrl-C: runs still 'running' become 'interrupted' (what they stored stays valid)."""
    with engine.begin() as conn:
        store.mark_interrupted(conn)
