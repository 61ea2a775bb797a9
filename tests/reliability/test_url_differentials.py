"""URLs that parsers read differently, sent to the deploy hook with an allowlist of 127.0.0.1.

Two raw listeners share one port number: 127.0.0.1:P (allowed) and 127.0.0.2:P (not allowed;
the whole 127/8 is loopback on Linux). Every corpus URL aims at 127.0.0.2 one way or another, or
at the allowed listener in an unusual spelling. Each must be refused with 400/403, or fail as a
job that reached only the allowed listener; the listener on 127.0.0.2 must accept **no**
connection. The allowlist is also enforced on the socket: a name that resolves to 127.0.0.1 when
the job is queued and to 127.0.0.2 when the collector connects (DNS rebinding) is refused at
connect time, on the first connection and on a retry.
"""

from __future__ import annotations

import socket
import threading

import pytest

from collector.collect import CollectOptions
from collector.protocols.urls import BadURL, parse_target
from collector.service.deploy import DeploySettings
from collector.service.hook import HostPolicy, create_hook_app
from collector.storage import store
from helpers import make_test_data

TOKEN = "a-hook-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANSWER_503 = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class CountingListener:
    """A TCP listener that counts the connections it accepts and answers each with `answer`."""

    def __init__(self, host: str, port: int = 0, answer: bytes = ANSWER_503):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.answer, self.accepted = answer, 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(self.answer)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def listeners():
    allowed = CountingListener("127.0.0.1")
    forbidden = CountingListener("127.0.0.2", allowed.port)
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


def _hook(tmp_path, policy: HostPolicy, *, retries: int = 0):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'hook.db'}")
    store.ensure_schema(engine)
    opts = CollectOptions(timeout=30.0, retries=retries, backoff=0.01)
    settings = DeploySettings(test_dir=make_test_data(tmp_path / "td", per_class=2), report_dir=tmp_path / "r",
                              opts=opts)
    return create_hook_app(engine=engine, settings=settings, token=TOKEN, allowed=policy).test_client()


def corpus(p: int) -> list[str]:
    """At least 40 URL strings from the known parser-differential families; P is both ports."""
    fw = str(p).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    return [
        # backslash: urllib3 ends the host at '\', RFC 3986 at the last '@'
        f"http://127.0.0.1:{p}\\@127.0.0.2:{p}",
        f"http://127.0.0.2:{p}\\@127.0.0.1:{p}",
        f"http:\\\\127.0.0.2:{p}/",
        f"http://127.0.0.1:{p}\\\\127.0.0.2:{p}",
        f"http://127.0.0.2\\.127.0.0.1:{p}",
        # '@' in several places
        f"http://127.0.0.1:{p}@127.0.0.2:{p}",
        f"http://127.0.0.2:{p}@127.0.0.1:{p}",
        f"http://a@127.0.0.1:{p}@127.0.0.2:{p}",
        f"http://127.0.0.1:{p}#@127.0.0.2:{p}",
        f"http://127.0.0.1:{p}?@127.0.0.2:{p}",
        f"http://127.0.0.1:{p}/@127.0.0.2:{p}",
        f"http://%40127.0.0.1:{p}@127.0.0.2:{p}",
        f"http://user:pass@127.0.0.1:{p}",
        # tabs, newlines and spaces (WHATWG strips them, others keep them)
        f"http://127.0.0.1:{p}\t@127.0.0.2:{p}",
        f"http://127.0.0.2\n:{p}",
        f"http://127.0.0.1:{p}\r\n@127.0.0.2:{p}",
        f"http://127.0.0.\t2:{p}",
        f" http://127.0.0.2:{p}",
        f"http://127.0.0.1 :{p}",
        # percent-encoding
        f"http://127.0.0.%32:{p}",
        f"http://127%2e0%2e0%2e2:{p}",
        f"http://127.0.0.1:{p}%40127.0.0.2:{p}",
        f"http://%31%32%37.0.0.2:{p}",
        f"http://127.0.0.1:{p}/%2e%2e/",
        f"http://127.0.0.1:{p}/v2/models/%2e%2e",
        # scheme spelling
        f"HTTP://127.0.0.2:{p}",
        f"HtTp:/127.0.0.2:{p}",
        f"http:127.0.0.2:{p}",
        f"http:///127.0.0.2:{p}",
        # IPv4 in other forms (WHATWG and inet_aton read these as 127.0.0.2)
        f"http://2130706434:{p}",
        f"http://0177.0.0.2:{p}",
        f"http://0x7f.0.0.2:{p}",
        f"http://0x7f000002:{p}",
        f"http://127.2:{p}",
        f"http://127.0.2:{p}",
        f"http://017700000002:{p}",
        f"http://127.000.000.002:{p}",
        # IPv6 forms of 127.0.0.2, and zone ids
        f"http://[::ffff:127.0.0.2]:{p}",
        f"http://[::ffff:7f00:2]:{p}",
        f"http://[0:0:0:0:0:ffff:127.0.0.2]:{p}",
        f"http://[::127.0.0.2]:{p}",
        f"http://[fe80::1%25lo]:{p}",
        f"http://[::1%lo]:{p}",
        # trailing dots
        f"http://127.0.0.2.:{p}",
        f"http://127.0.0.1.:{p}",
        f"http://localhost.:{p}",
        # unicode dots and fullwidth digits
        f"http://127\u30020\u30020\u30022:{p}",
        f"http://127\uff0e0\uff0e0\uff0e2:{p}",
        f"http://\uff11\uff12\uff17.0.0.2:{p}",
        f"http://127.0.0.2:{fw}",
        f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{p}",
        # the allowed listener in unusual but consistent spellings: may reach it, nothing else
        f"hTtP://127.0.0.1:{p}",
        f"http://[::ffff:127.0.0.1]:{p}",
        f"http://127.0.0.1:{p}/v2/models/x",
        # the forbidden address named plainly
        f"http://127.0.0.2:{p}",
    ]


def test_no_url_in_the_corpus_reaches_a_host_off_the_allowlist(tmp_path, listeners):
    allowed, forbidden = listeners
    with socket.create_connection(("127.0.0.2", forbidden.port), timeout=30):
        pass  # the counting listener counts: the test could see a request that got through
    _until(lambda: forbidden.accepted == 1)
    forbidden.accepted = 0
    hook = _hook(tmp_path, HostPolicy(["127.0.0.1"]))
    urls = corpus(allowed.port)
    assert len(urls) >= 40
    outcomes = {}
    for url in urls:
        r = hook.post("/hooks/deployed?wait=1", json={"url": url}, headers=AUTH)
        body = r.get_json()
        outcomes[url] = (r.status_code, body.get("error"))
        assert r.status_code in (400, 403, 502), (url, r.status_code, body)
        if r.status_code == 502:  # queued: it failed as a job, saying only a category
            assert body["error"] in ("could not evaluate URL: not a model server",
                                     "could not evaluate URL: no answer",
                                     "could not evaluate URL: refused by allowlist"), (url, body)
    assert forbidden.accepted == 0, outcomes
    reached = [u for u, (code, _) in outcomes.items() if code == 502]
    # The consistent spellings of the allowed address did get through (the hook works at all).
    assert f"hTtP://127.0.0.1:{allowed.port}" in reached and allowed.accepted >= 1
    assert all(u.lower().startswith(("http://127.0.0.1:", "http://[::ffff:127.0.0.1]:")) for u in reached), reached


def _until(condition, deadline_s: float = 60) -> None:
    import time
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def _rebinding(first: int):
    """A resolver for `rebind.test`: 127.0.0.1 for the first `first` look-ups, 127.0.0.2 after."""
    calls = []

    def resolve(host, port, proto=0):
        if host != "rebind.test":
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        calls.append(host)
        addr = "127.0.0.1" if len(calls) <= first else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))]
    return resolve, calls


def test_dns_rebinding_is_refused_at_connect_time(tmp_path, listeners):
    allowed, forbidden = listeners
    resolve, calls = _rebinding(first=1)  # the hook's check sees 127.0.0.1, the connection 127.0.0.2
    hook = _hook(tmp_path, HostPolicy(["127.0.0.1"], resolve=resolve))
    r = hook.post("/hooks/deployed?wait=1", json={"url": f"http://rebind.test:{allowed.port}"}, headers=AUTH)
    assert r.status_code == 502 and r.get_json()["error"] == "could not evaluate URL: refused by allowlist"
    assert len(calls) >= 2 and forbidden.accepted == 0 and allowed.accepted == 0


def test_every_retry_connects_through_the_allowlist(tmp_path, listeners):
    """The first connection goes to 127.0.0.1 (which answers 503 and closes); the retry looks the
    name up again, gets 127.0.0.2, and is refused before connecting."""
    allowed, forbidden = listeners
    resolve, calls = _rebinding(first=2)
    hook = _hook(tmp_path, HostPolicy(["127.0.0.1"], resolve=resolve), retries=2)
    r = hook.post("/hooks/deployed?wait=1", json={"url": f"http://rebind.test:{allowed.port}"}, headers=AUTH)
    assert r.status_code == 502 and r.get_json()["error"] == "could not evaluate URL: refused by allowlist"
    assert allowed.accepted == 1 and forbidden.accepted == 0 and len(calls) == 3


def test_errors_say_a_category_not_the_socket_error(tmp_path):
    """A closed port, a port that is not HTTP and one that hangs up: one wording each category."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port_closed = closed.getsockname()[1]
    closed.close()
    not_http = CountingListener("127.0.0.1", answer=b"\x00\x01garbage that is not HTTP\r\n\r\n")
    try:
        hook = _hook(tmp_path, HostPolicy(["127.0.0.1"]))
        answers = {}
        for port in (port_closed, not_http.port):
            r = hook.post("/hooks/deployed?wait=1", json={"url": f"http://127.0.0.1:{port}"}, headers=AUTH)
            answers[port] = r.get_json()["error"]
        assert answers[port_closed] == answers[not_http.port] == "could not evaluate URL: no answer", answers
        assert not_http.accepted == 1
    finally:
        not_http.close()


@pytest.mark.parametrize("url", ["http://localhost:18095\\@127.0.0.1:1", "http://127.0.0.1\\@evil.example/",
                                 "http://u@h/", "http://h/?q", "http://h:0", "http://h:65536", "http://[::1"])
def test_the_parse_refuses_what_parsers_read_differently(url):
    with pytest.raises(BadURL):
        parse_target(url, allow_userinfo=False)


def test_the_canonical_form_is_what_urllib3_parses():
    import urllib3.util
    t = parse_target("HTTP://ML_Original:8080/v2/models/x/")
    assert t.url == "http://ml_original:8080/v2/models/x"
    u = urllib3.util.parse_url(t.url)
    assert (u.host, u.port, u.path) == ("ml_original", 8080, "/v2/models/x")
    assert parse_target("http://u:p%40ss@h:1").display == "http://***@h:1"
