"""The first requests of a collection, sent while the database opens.

Opening the store (importing SQLAlchemy, connecting, checking the schema) takes a few tenths of a
second: as long as a model server needs for a few batches. `Early` starts before it, with nothing
of the database: it hashes the test set's first chunk, asks each URL who it is, and sends it the
chunk's first eligible images, in as many requests at once as `collect` would send, until `stop()`
(when `collect` plans its run) or EARLY_BATCHES batches. Every answer is checked as any answer is
(`validate.predictions`, against the metadata the URL gave) and held.

`collect` then takes the URL's client and metadata from here, and a held answer for an image the
model has not answered yet is used as if it had been asked for then: stored, remembered for the
self-repeats, a founder's or a claimant's like any other. An answer to an image already stored for
the model is dropped, as is a batch that failed any check: its images are asked again the ordinary
way, which reports the failure. A rerun with nothing to send wastes these batches at most. A server
cannot tell these requests from the others: they are the ones `collect` sends first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .protocols import ProtocolOptions, connect, validate
from .protocols.client import Limits, ModelClient, ModelServerError, display_url
from .protocols.urls import BadURL, HostPolicy, ModelURL, parse_model_url
from .protocols.validate import InvalidAnswer, ModelChanged
from .settings import IN_FLIGHT_PER_MODEL, MAX_IN_FLIGHT, CollectorSettings
from .testset.images import HashCache, TestImage, TestSetHash, check_root, chunks, eligible, in_shard, with_perturbed

CHUNK_IMAGES = 2048  # images hashed, stored and planned together (memory is bounded by this)
EARLY_BATCHES = 8  # batches per model sent before the run is planned, at most
log = logging.getLogger(__name__)


@dataclass
class CollectOptions:
    batch_size: int = CollectorSettings.default("batch_size")
    max_in_flight: int | None = CollectorSettings.default("max_in_flight")  # None: IN_FLIGHT_PER_MODEL each, <= 8
    timeout: float = CollectorSettings.default("request_timeout")  # one request: connect + whole response
    retries: int = CollectorSettings.default("request_retries")
    backoff: float = 0.5
    max_response_bytes: int = Limits.max_response_bytes
    max_metadata_bytes: int = Limits.max_metadata_bytes
    echo_errors: bool = True  # repeat a server's own error text in messages (off in the deploy hook)
    protocol: ProtocolOptions = field(default_factory=ProtocolOptions)  # other serving stacks (protocols/foreign.py)
    shard: tuple[int, int] | None = None  # (I, N): only the images whose sha256 % N == I (testset.in_shard)
    hash_cache: Path | None = None  # testset.HashCache file; None: hash every file
    policy: HostPolicy | None = None  # the hosts every connection may reach (the deploy hook's allowlist)
    claim_checks: int = CollectorSettings.default("claim_checks")  # stored answers asked again per endpoint, per chunk
    robustness: bool = CollectorSettings.default("robustness")  # also send the perturbed copies (perturb.py)

    def limits(self) -> Limits:
        return Limits(deadline=self.timeout, connect_timeout=min(10.0, self.timeout),
                      max_response_bytes=self.max_response_bytes, max_metadata_bytes=self.max_metadata_bytes)

    def in_flight(self, n_models: int) -> int:
        """Requests in flight over all models."""
        return self.max_in_flight or min(MAX_IN_FLIGHT, IN_FLIGHT_PER_MODEL * max(n_models, 1))


def parsed(url: str | ModelURL, opts: CollectOptions) -> str | ModelURL:
    """A URL's text as the one parse reads it; a text it refuses stays text, and `connect` says why
    (the model fails, the others go on)."""
    if not isinstance(url, str):
        return url
    try:
        return parse_model_url(url, opts.protocol.protocol)
    except BadURL:
        return url


def shown(target: str | ModelURL) -> str:
    if isinstance(target, ModelURL):
        return target.display
    return display_url(target) if isinstance(target, str) else str(target)


@dataclass
class Held:
    """An answer to an image sent before the run was planned."""

    answer: dict  # {label, confidence, scores}, checked
    latency_ms: float  # per image, of the request that brought it


@dataclass
class _Endpoint:
    """One URL's early state."""

    target: str | ModelURL
    described: threading.Event = field(default_factory=threading.Event)
    client: ModelClient | None = None
    meta: dict | None = None
    error: ModelServerError | None = None
    handed: bool = False  # its client belongs to `collect` now
    queue: list[list[TestImage]] = field(default_factory=list)  # batches not sent yet
    sending: dict[str, threading.Event] = field(default_factory=dict)  # sha256 -> set when its batch ended
    held: dict[str, Held] = field(default_factory=dict)


class Early:
    """The test set's stream and each URL's client, started before the database is open (module doc).
    `close()` when done: it closes the stream, the hash cache and every client `collect` did not take."""

    def __init__(self, urls: list[str | ModelURL], test_dir: Path, opts: CollectOptions | None = None):
        self.urls = list(urls)
        self.opts = opts or CollectOptions()
        self.test_dir = check_root(Path(test_dir))  # a missing folder is said at once, before any request
        self.cache = HashCache(self.opts.hash_cache) if self.opts.hash_cache else None
        self.digest = TestSetHash()
        stream = chunks(self.test_dir, CHUNK_IMAGES, self.cache, self.digest)
        self.stream: Iterator[list[TestImage]] = (with_perturbed(stream, self.test_dir, self.cache)
                                                  if self.opts.robustness else stream)
        self.endpoints = [_Endpoint(parsed(u, self.opts)) for u in self.urls]
        self.first: list[TestImage] | None = None
        self.stream_error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopped = self._closed = False
        self._chunked = threading.Event()
        self._threads: list[threading.Thread] = []
        # Daemon threads: a command that fails before collecting (no database) exits without waiting for them.
        self._spawn(self._start, "early")

    # ---- what collect takes -------------------------------------------------------------
    def first_chunk(self) -> list[TestImage]:
        """The stream's first chunk (TestSetError: nothing to evaluate; no server was asked)."""
        self._chunked.wait()
        if self.stream_error is not None:
            raise self.stream_error
        return self.first

    def describe(self, i: int) -> tuple[ModelClient, dict]:
        """URL i's client and metadata, its client `collect`'s from now on; ModelServerError as connect
        and metadata raise it."""
        self.first_chunk()  # no URL is asked before the test set has an image
        ep = self.endpoints[i]
        ep.described.wait()
        if ep.error is not None:
            raise ep.error
        ep.handed = True
        return ep.client, ep.meta

    def held(self, i: int, sha256: str) -> Held | None:
        """URL i's checked answer to the image, once: waits for its batch when in flight; None when
        it was not sent early or its batch failed a check."""
        ep = self.endpoints[i]
        with self._lock:
            done = ep.sending.pop(sha256, None)
        if done is None:
            return None
        done.wait()
        with self._lock:
            return ep.held.pop(sha256, None)

    def stop(self) -> None:
        """No early batch from now on (the run is planned); those in flight end as they will."""
        with self._lock:
            self._stopped = True

    def close(self, *, wait: bool = True) -> None:
        """Stop; with `wait`, let the early requests in flight end first (their answers are dropped),
        then close the stream, the hash cache and every client `collect` did not take."""
        self.stop()
        if self._closed:
            return
        self._closed = True
        if wait:
            for t in self._threads:
                t.join()
        if wait or self._chunked.is_set():
            self.stream.close()
            if self.cache is not None:
                self.cache.close()
        for ep in self.endpoints:
            if ep.client is not None and not ep.handed:
                ep.client.close()

    # ---- the early threads --------------------------------------------------------------
    def _spawn(self, target, name: str, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _start(self) -> None:
        try:
            self.first = next(self.stream)  # an empty test set raises here, before any server is asked
        except BaseException as e:  # noqa: BLE001 - handed to the caller by first_chunk()
            self.stream_error = e
        finally:
            self._chunked.set()
        if self.stream_error is None:
            for ep in self.endpoints:
                self._spawn(self._describe, "early-describe", ep)

    def _describe(self, ep: _Endpoint) -> None:
        opts = self.opts
        try:
            # Connections kept: every request `collect` may have in flight, all to this URL, while
            # this URL's early requests end.
            ep.client = connect(ep.target, opts.protocol, limits=opts.limits(), retries=opts.retries,
                                backoff=opts.backoff, echo_errors=opts.echo_errors, policy=opts.policy,
                                pool_size=opts.in_flight(len(self.endpoints)) + self._per_model())
            ep.meta = ep.client.metadata()
        except ModelServerError as e:
            ep.error = e
        except Exception as e:  # noqa: BLE001 - a bug: said as this URL's failure, the others go on
            ep.error = ModelServerError(shown(ep.target), f"unexpected {type(e).__name__}: {e}")
        finally:
            ep.described.set()
        if ep.error is not None:
            if ep.client is not None:
                ep.client.close()
                ep.client = None
            return
        size = self.opts.batch_size
        wanted = [i for i in eligible(self.first, ep.meta["labels"]) if in_shard(i.sha256, self.opts.shard)]
        ep.queue = [wanted[k:k + size] for k in range(0, len(wanted), size)][:EARLY_BATCHES]
        for _ in range(min(self._per_model(), len(ep.queue)) - 1):
            self._spawn(self._send, "early-send", ep)
        self._send(ep)

    def _per_model(self) -> int:
        """Early requests in flight per URL: its share of the run's."""
        return max(1, self.opts.in_flight(len(self.endpoints)) // len(self.endpoints))

    def _send(self, ep: _Endpoint) -> None:
        while True:
            with self._lock:
                if self._stopped or not ep.queue:
                    return
                batch = ep.queue.pop(0)
                done = threading.Event()
                for item in batch:
                    ep.sending[item.sha256] = done
            answers = None
            try:
                answers = self._answers(ep, batch)
            finally:
                with self._lock:
                    ep.held.update(answers or {})
                done.set()
            if answers is None:
                return  # this URL failed a check: the ordinary requests find out why

    def _answers(self, ep: _Endpoint, batch: list[TestImage]) -> dict[str, Held] | None:
        try:
            images = [(item, item.read(self.test_dir)) for item in batch]
        except (OSError, ValueError):
            return {}
        t0 = time.perf_counter()
        try:
            body = ep.client.predict([(item.path, data) for item, data in images])
            preds = validate.predictions(body, n_sent=len(images), labels=ep.meta["labels"],
                                         fingerprint=ep.meta["fingerprint"], version=ep.meta["version"])
        except (ModelServerError, InvalidAnswer, ModelChanged):
            return None
        except Exception:  # noqa: BLE001 - dropped like a failed check; the ordinary requests go on
            log.debug("an early batch to %s failed", shown(ep.target), exc_info=True)
            return None
        per_image_ms = (time.perf_counter() - t0) * 1000 / len(images)
        return {item.sha256: Held(p, per_image_ms) for (item, _), p in zip(images, preds, strict=True)}
