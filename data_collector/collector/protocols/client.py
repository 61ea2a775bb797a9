"""HTTP client for one model server: metadata and batched predict, bounded in time and size.

A model server is untrusted: every request has a total deadline (connect + whole response,
enforced by a watchdog that shuts the socket, so a server dripping one byte a second cannot
hold it), responses are capped in size before and after decompression, redirects are not
followed, and every failure becomes one ModelServerError naming the URL and the reason.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3.exceptions
import urllib3.util.connection
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from model_server.grammar import is_digits, parse_uint
from model_server.native import IMAGE_BATCH, pack_images

from ..redact import redact_secrets, register_userinfo
from ..settings import CollectorSettings
from ..text import literal
from .answers import InvalidAnswer, NativeAnswer, NativeMetadata, NotJSON, decode
from .urls import BadURL, HostPolicy, ModelURL, NotAllowed, parse_model_url
from .urls import display as display_url
from .validate import native_facts, stored_metadata

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one model server may cost the collector."""

    deadline: float = CollectorSettings.default("request_timeout")  # one request: connect, send, the whole answer
    connect_timeout: float = 10.0
    max_response_bytes: int = CollectorSettings.default("max_response_bytes")  # compressed or decompressed
    max_metadata_bytes: int = CollectorSettings.default("max_metadata_bytes")


# What a caller of the deploy hook is told of a failed target: a category, never the socket's
# own error (which would tell an open port from a closed one).
REFUSED = "refused by allowlist"
NO_ANSWER = "no answer"
NOT_A_MODEL_SERVER = "not a model server"
CLAIM_REFUSED = "not the stored model whose fingerprint it announces"


class ModelServerError(RuntimeError):
    """One line for the user: `URL: reason`. `reason` alone is what a run records; `category`
    (REFUSED, NO_ANSWER, NOT_A_MODEL_SERVER) is all the deploy hook's caller sees."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, category: str = NOT_A_MODEL_SERVER):
        reason = redact_secrets(reason)  # a server that echoes the credentials it was sent
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status, self.category = url, reason, status, category


class _DeadlineExceeded(Exception):
    pass


class _TooLarge(Exception):
    pass


MAX_HEADER_BYTES = 64 * 1024  # a response's status line and headers, all together
MAX_HEADERS = 100


class _HeadersTooLarge(http.client.HTTPException):
    pass


class _HeaderBudget:
    """A response's socket file while its status line and headers are read: counts bytes and lines."""

    def __init__(self, fp):
        self._fp, self.used, self.lines = fp, 0, 0

    def readline(self, limit: int = -1) -> bytes:
        line = self._fp.readline(limit)
        self.used += len(line)
        self.lines += 1
        if self.used > MAX_HEADER_BYTES or self.lines > MAX_HEADERS + 2:  # + status line and blank line
            raise _HeadersTooLarge(f"more than {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} headers")
        return line

    def __getattr__(self, name):
        return getattr(self._fp, name)


class _BoundedResponse(http.client.HTTPResponse):
    """http.client's response, its headers counted against MAX_HEADER_BYTES and MAX_HEADERS (the
    standard library allows 100 lines of 64 KiB each: 6 MB a response)."""

    def begin(self):
        real = self.fp
        self.fp = _HeaderBudget(real)
        try:
            super().begin()
        finally:
            if self.fp is not None:
                self.fp = real


class Refused(Exception):
    """A connection the allowlist refused (deliberately no OSError: urllib3 must not retry or wrap it)."""


# ---- sockets the watchdog can shut ---------------------------------------------------------
_current = threading.local()


class Watchdog:
    """One thread for every request's deadline: `arm(seconds, fire)` calls `fire()` once the time has
    passed unless `disarm` came first (a thread per request was ~100 short-lived threads a run)."""

    def __init__(self, name: str = "request-deadlines"):
        self.name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._armed: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fire: Callable[[], None]) -> int:
        with self._cond:
            handle = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle, fire))
            self._armed.add(handle)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return handle

    def disarm(self, handle: int) -> None:
        with self._cond:
            self._armed.discard(handle)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed: dropped when it reaches the top
                if not self._heap:
                    self._cond.wait(60)
                    continue
                due, handle, fire = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(handle)
            try:
                fire()
            except Exception:  # noqa: BLE001 - a deadline's action never stops the others'
                logging.getLogger(__name__).exception("a request deadline's action failed")


WATCHDOG = Watchdog()


class _Tracked:
    """Registers the socket of each connection used by the request running in this thread, and
    connects only to addresses its `policy` allows (None: any)."""

    policy: HostPolicy | None = None
    response_class = _BoundedResponse

    def _new_conn(self) -> socket.socket:
        if self.policy is None:
            return super()._new_conn()
        host = self._dns_host.strip("[]").lower()
        try:
            addresses = self.policy.resolve(host, self.port)
        except NotAllowed as e:
            raise Refused(str(e)) from None
        refusal, failure = None, None
        for addr in addresses:
            try:
                self.policy.check_peer(host, addr)
            except NotAllowed as e:
                refusal = e
                continue
            try:  # to the address just checked: no second lookup between the check and the connect
                sock = urllib3.util.connection.create_connection(
                    (str(addr), self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except TimeoutError as e:
                raise urllib3.exceptions.ConnectTimeoutError(self, f"connect to {host} timed out") from e
            except OSError as e:
                failure = e
                continue
            try:  # the peer of the socket itself
                self.policy.check_peer(host, ipaddress.ip_address(sock.getpeername()[0].split("%")[0]))
            except (NotAllowed, OSError, ValueError) as e:
                sock.close()
                raise Refused(str(e)) from None
            return sock
        if failure is not None:
            raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {failure}")
        raise Refused(str(refusal or f"host {host!r} has no allowed address"))

    def _track(self) -> None:
        socks = getattr(_current, "socks", None)
        if socks is not None and getattr(self, "sock", None) is not None:
            socks.append(self.sock)

    def connect(self):
        super().connect()
        self._track()

    def getresponse(self, *args, **kwargs):
        self._track()
        return super().getresponse(*args, **kwargs)


class _HTTPConnection(_Tracked, HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    def __init__(self, policy: HostPolicy | None = None, **kwargs):
        self._policy = policy  # read by init_poolmanager, which HTTPAdapter.__init__ calls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        if self._policy is None:
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
            return
        extra = {"policy": self._policy}
        http_conn = type("_PolicedHTTPConnection", (_HTTPConnection,), extra)
        https_conn = type("_PolicedHTTPSConnection", (_HTTPSConnection,), extra)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("_PolicedHTTPPool", (_HTTPPool,), {"ConnectionCls": http_conn}),
            "https": type("_PolicedHTTPSPool", (_HTTPSPool,), {"ConnectionCls": https_conn})}


class ModelClient:
    predict_path = "/predict"  # as named in messages
    # The request form when the server lists it in its metadata (`predict_forms`): the images in one
    # body, answered by a score matrix; else multipart, which every native server reads.
    request_form = "image-batch"

    def __init__(self, url: str | ModelURL, *, limits: Limits | None = None, retries: int = 3, backoff: float = 0.5,
                 pool_size: int = 4, echo_errors: bool = True, policy: HostPolicy | None = None):
        if not isinstance(url, ModelURL):
            try:
                url = parse_model_url(url)
            except BadURL as e:
                raise ModelServerError(display_url(url), str(e)) from None
        self.address = url
        self._target = url.base  # the canonical string: what urllib3 parses back is what was checked
        if url.target.userinfo:
            register_userinfo(url.target.userinfo)
        self.url = url.display  # what messages and the database see
        self.form = "multipart"  # until the server's metadata lists a faster one
        self.limits = limits or Limits()
        self.retries = retries
        self.backoff = backoff
        self.echo_errors = echo_errors  # False: never repeat what the server said (the deploy hook)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or netrc credentials from the environment
        self.session.headers.update(url.header_map)  # a URL's own headers (URL#Name=value): Host, Seldon-Model
        adapter = _Adapter(policy, pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    # ---- one bounded exchange -----------------------------------------------------------
    def _exchange(self, method: str, path: str, *, max_bytes: int, **kwargs) -> tuple[int, dict, bytes]:
        lim = self.limits
        socks: list[socket.socket] = []
        fired = threading.Event()

        def _shut() -> None:
            fired.set()
            for s in list(socks):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        _current.socks = socks
        resp = None
        deadline = WATCHDOG.arm(lim.deadline, _shut)
        try:
            resp = self.session.request(method, self._target + path, stream=True, allow_redirects=False,
                                        timeout=(min(lim.connect_timeout, lim.deadline), lim.deadline), **kwargs)
            declared = resp.headers.get("Content-Length", "")
            if is_digits(declared) and parse_uint(declared, "Content-Length") > max_bytes:
                raise _TooLarge(f"declares {declared} bytes")
            chunks, n = [], 0
            for chunk in resp.raw.stream(64 * 1024, decode_content=True):
                n += len(chunk)
                if n > max_bytes or resp.raw.tell() > max_bytes:
                    raise _TooLarge("is larger")
                chunks.append(chunk)
            if fired.is_set():
                raise _DeadlineExceeded
            return resp.status_code, dict(resp.headers), b"".join(chunks)
        except _TooLarge as e:
            raise ModelServerError(self.url, f"{method} {path}: the response {e} than the limit of {max_bytes} "
                                             "bytes (--max-response-bytes / --max-metadata-bytes)") from None
        except Refused as e:
            raise ModelServerError(self.url, f"{method} {path}: refused by the allowlist: {e}",
                                   category=REFUSED) from None
        except (_DeadlineExceeded, requests.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException, OSError, ValueError) as e:
            if fired.is_set():
                raise ModelServerError(self.url, f"{method} {path}: no complete answer within the deadline of "
                                                 f"{lim.deadline:g} s (--timeout)", category=NO_ANSWER) from None
            reason = _transport_reason(e, lim)
            category = NOT_A_MODEL_SERVER if reason.startswith("the response body does not decode") else NO_ANSWER
            raise ModelServerError(self.url, f"{method} {path}: {reason}", category=category) from None
        finally:
            WATCHDOG.disarm(deadline)
            _current.socks = None
            if resp is not None:
                resp.close()

    def _request(self, method: str, path: str, *, max_bytes: int, **kwargs) -> tuple[int, dict, bytes]:
        """Retries with exponential backoff and jitter on refused/reset connections and 5xx only:
        a server that hangs or answers garbage is not asked again."""
        last: ModelServerError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2))  # nosec B311
            try:
                status, headers, body = self._exchange(method, path, max_bytes=max_bytes, **kwargs)
            except ModelServerError as e:
                if "cannot connect" not in e.reason and "connection reset" not in e.reason:
                    raise
                last = e
                continue
            if status >= 500:
                last = ModelServerError(self.url, f"{method} {path} answered {self._describe(status, headers, body)}",
                                        status=status)
                continue
            return status, headers, body
        if last is None:  # retries < 0 cannot happen (click bounds it); say so rather than loop
            raise ModelServerError(self.url, f"{method} {path}: no attempt made")
        raise ModelServerError(self.url, f"{last.reason} (after {self.retries + 1} attempts)", status=last.status,
                               category=last.category)

    def _describe(self, status: int, headers: dict, body: bytes) -> str:
        """`HTTP 404: <the server's JSON error>` or a summary; never a dump of the body."""
        what = f"HTTP {status}"
        if 300 <= status < 400:
            return f"{what} (a redirect; redirects are not followed)"
        if not self.echo_errors:
            return what
        data = _json(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return f"{what}: {_one_line(data['error'])}"
        ctype = headers.get("Content-Type", "no content type").split(";")[0]
        return f"{what} ({ctype}, {len(body)} bytes)"

    # ---- the protocol --------------------------------------------------------------------
    def _call(self, method: str, path: str, *, max_bytes: int, **kwargs) -> tuple[bytes, dict]:
        """A 200 answer's body and headers, or a ModelServerError saying what came instead."""
        status, headers, body = self._request(method, path, max_bytes=max_bytes, **kwargs)
        if status != 200:
            raise ModelServerError(self.url, f"{method} {path} answered {self._describe(status, headers, body)}",
                                   status=status)
        return body, headers

    def _call_typed(self, method: str, path: str, kind, what: str, *, max_bytes: int, hint: str = "",
                    **kwargs):
        """A 200 answer decoded as `kind` (answers.py) and its raw body, or a ModelServerError."""
        body, headers = self._call(method, path, max_bytes=max_bytes, **kwargs)
        return self._decode(body, kind, what, f"{method} {path}", hint), body, headers

    def _decode(self, body: bytes, kind, what: str, request_line: str, hint: str = ""):
        try:
            return decode(body, kind, what)
        except NotJSON:
            raise ModelServerError(self.url, f"{request_line} did not return JSON{hint}") from None
        except InvalidAnswer as e:
            raise ModelServerError(self.url, f"invalid {what}: {e.problem}") from None

    def metadata(self) -> dict:
        """The model's checked identity (name, version, fingerprint, labels), the collector's facts
        about it, and the server's other keys as opaque JSON."""
        meta, body, _ = self._call_typed("GET", "/metadata", NativeMetadata, "metadata",
                                         max_bytes=self.limits.max_metadata_bytes, hint=": is this a model server?")
        self.form = self.request_form if self.request_form in (meta.predict_forms or ()) else "multipart"
        return stored_metadata(meta, facts=native_facts(meta), server=extra_keys(body, NativeMetadata))

    def predict(self, images: list[tuple[str, bytes]]) -> NativeAnswer:
        """The typed answer to one batch (checked further by validate.predictions)."""
        if self.form == "image-batch":
            body = {"data": pack_images([data for _, data in images]), "headers": {"Content-Type": IMAGE_BATCH}}
        else:
            body = {"files": [("images", (name.rsplit("/", 1)[-1], data, "application/octet-stream"))
                              for name, data in images]}
        answer, _, _ = self._call_typed("POST", "/predict", NativeAnswer, "answer to POST /predict",
                                        max_bytes=self.limits.max_response_bytes, **body)
        return answer


def extra_keys(body: bytes, kind) -> dict | None:
    """The keys of a JSON object `body` that `kind` does not read: kept as opaque data only."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    known = set(kind.__struct_fields__)
    return {literal(k)[:200]: v for k, v in doc.items() if k not in known} or None


_NOT_JSON = object()


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _NOT_JSON


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    flat = "".join(c if c.isprintable() else "?" for c in flat)
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _transport_reason(e: BaseException, lim: Limits) -> str:
    """Every exception the HTTP stack can raise, as a short reason."""
    chain = [e]
    while chain[-1].__cause__ or chain[-1].__context__:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt in chain or len(chain) > 8:
            break
        chain.append(nxt)
    names = " ".join(type(x).__name__ for x in chain)
    text = " ".join(str(x) for x in chain).lower()
    if any(isinstance(x, _HeadersTooLarge) for x in chain):
        return f"the response headers are over the limit ({MAX_HEADER_BYTES} bytes, {MAX_HEADERS} headers)"
    if isinstance(e, requests.ConnectTimeout) or "connecttimeout" in names.lower():
        return f"cannot connect: no answer within {lim.connect_timeout:g} s"
    if "refused" in text:
        return "cannot connect (connection refused)"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "cannot connect (unknown host)"
    if isinstance(e, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        # The same words as the watchdog's: which of the two fires first on a hung server is a race.
        return f"no complete answer within the deadline of {lim.deadline:g} s (--timeout)"
    if isinstance(e, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return "the response body does not decode as its Content-Encoding says (invalid gzip or deflate)"
    if "reset" in text:
        return "connection reset by the server"
    if isinstance(e, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError
                  | http.client.IncompleteRead):
        return "the connection broke in the middle of the response"
    if isinstance(e, http.client.HTTPException) or "lineto" in names.lower() or "header" in text:
        return f"not a valid HTTP response ({type(chain[-1]).__name__})"
    if isinstance(e, requests.ConnectionError):
        return f"cannot connect ({type(chain[-1]).__name__})"
    if isinstance(e, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema | ValueError):
        return "not a valid URL or HTTP exchange"
    return f"request failed ({type(e).__name__})"
