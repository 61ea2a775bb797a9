"""A small configurable fake model server that misbehaves on purpose (one way per instance).

Raw `http.server`, so that it can do what a framework would not: drip headers, lie about
Content-Encoding, stream 100 MB, hang, or reset the connection.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABELS = ["red", "green", "blue"]
FP = "f" * 63 + "0"
MiB = 1024 * 1024
# Announces a stored model's fingerprint and labels and answers well-formed, in that model's
# name: only its answers give it away. Not in BEHAVIOURS: within one run next to the real model
# it is simply the same fingerprint twice (skipped); it matters in a later run.
THIEF = "reuses a stored fingerprint with the same labels"


def honest_metadata() -> dict:
    return {"name": "hostile", "version": "1", "fingerprint": FP, "labels": list(LABELS)}


def honest_prediction() -> dict:
    return {"label": "red", "confidence": 0.8, "scores": {"red": 0.8, "green": 0.1, "blue": 0.1}}


def _gzip_bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * MiB
    return b"".join([c.compress(chunk) for _ in range(size // MiB)] + [c.flush()])


def _predictions_body(n: int, **override) -> dict:
    pred = {**honest_prediction(), **override}
    return {"model": {"name": "hostile", "version": "1", "fingerprint": FP}, "predictions": [pred] * n}


# name -> (what it does to GET /metadata or POST /predict, expected reason in the collector's output)
BEHAVIOURS: dict[str, str] = {
    "labels null": "invalid metadata: Expected `array`, got `null` - at `$.labels`",
    "labels empty": "invalid metadata: Expected `array` of length >= 1 - at `$.labels`",
    "labels duplicated": "appears more than once",
    "label of 100k characters": "Expected `str` of length <= 200 - at `$.labels[0]`",
    "name is a dict": "Expected `str`, got `object` - at `$.name`",
    "NUL in the name": "name: contains control or format characters",
    "CRLF in the version": "version: contains control or format characters",
    "fingerprint is an int": "Expected `str`, got `int` - at `$.fingerprint`",
    "fingerprint too short": "- at `$.fingerprint`",
    "metadata is a list": "invalid metadata: Expected `object`, got `array`",
    "metadata not JSON": "did not return JSON",
    "metadata padded to 100 MB": "than the limit of 1048576 bytes",
    "reuses a stored fingerprint with other labels": "other labels: refused, nothing stored",
    "confidence NaN": "POST /predict did not return JSON",  # JSON has no NaN
    "confidence inf": "POST /predict did not return JSON",
    "confidence -5": "Expected `float` >= 0.0 - at `$.predictions[0].confidence`",
    "confidence 'high'": "Expected `float`, got `str` - at `$.predictions[0].confidence`",
    "label it does not have": "predictions[0].label: is not one of the model's labels",
    "scores sum to 2.75": "scores: sum to 2.75, not 1",
    "scores miss a label": "must cover exactly the model's labels (1 missing",
    "label is not the top score": "is not the label with the highest score",
    "fewer predictions than images": "entries for",
    "answers as another model": "the model changed during the run",
    "predict not JSON": "POST /predict did not return JSON",
    "predict nested 100k deep": "invalid answer to POST /predict: Expected `object`, got `array`",
    "400 for every image": "every image was rejected",
    "500 with an HTML page": "answered HTTP 500 (text/html, ",
    "redirect loop": "a redirect; redirects are not followed",
    "invalid gzip body": "does not decode as its Content-Encoding says",
    "gzip bomb of 200 MB": "than the limit of",
    "100 MB response": "than the limit of",
    "1 byte every 2 s": "no complete answer within the deadline",
    "headers dripped": "no complete answer within the deadline",
    "hangs after the request": "no complete answer within the deadline",
    "resets the connection": "connection",
}


# The misbehaviours of GET /metadata: such a server is refused before anything of it is stored.
METADATA_BEHAVIOURS = frozenset({
    "labels null", "labels empty", "labels duplicated", "label of 100k characters", "name is a dict",
    "NUL in the name", "CRLF in the version", "fingerprint is an int", "fingerprint too short",
    "metadata is a list", "metadata not JSON", "metadata padded to 100 MB",
    "reuses a stored fingerprint with other labels",
})
assert METADATA_BEHAVIOURS <= set(BEHAVIOURS)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    behaviour = ""
    stored_fingerprint = ""

    def log_message(self, *args):  # quiet
        pass

    # ---- helpers --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200):
        self._send(status, json.dumps(obj, allow_nan=True).encode())

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _stream(self, chunks, headers: dict):
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            for c in chunks:
                self.wfile.write(c)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    # ---- GET /metadata ----------------------------------------------------------------------
    def do_GET(self):  # noqa: N802
        b = self.behaviour
        meta = honest_metadata()
        if self.path != "/metadata":
            return self._json({"error": "not found"}, 404)
        if b == "labels null":
            meta["labels"] = None
        elif b == "labels empty":
            meta["labels"] = []
        elif b == "labels duplicated":
            meta["labels"] = ["red", "green", "red"]
        elif b == "label of 100k characters":
            meta["labels"] = ["x" * 100_000, "green", "blue"]
        elif b == "name is a dict":
            meta["name"] = {"evil": True}
        elif b == "NUL in the name":
            meta["name"] = "hostile\x00model"
        elif b == "CRLF in the version":
            meta["version"] = "1\r\nX-Injected: yes"
        elif b == "fingerprint is an int":
            meta["fingerprint"] = 12345
        elif b == "fingerprint too short":
            meta["fingerprint"] = "abc123"
        elif b == "metadata is a list":
            return self._json([meta])
        elif b == "metadata not JSON":
            return self._send(200, b"<html>hello</html>", "text/html")
        elif b == "metadata padded to 100 MB":
            pad = b'{"name": "hostile", "version": "1", "fingerprint": "' + FP.encode() + \
                  b'", "labels": ["red", "green", "blue"], "padding": "'
            return self._stream([pad] + [b"x" * MiB] * 100 + [b'"}'], {"Content-Type": "application/json"})
        elif b == "reuses a stored fingerprint with other labels":
            meta["fingerprint"] = self.stored_fingerprint
            meta["labels"] = ["red", "green"]
        elif b == THIEF:
            meta["fingerprint"] = self.stored_fingerprint
        return self._json(meta)

    # ---- POST /predict ----------------------------------------------------------------------
    def do_POST(self):  # noqa: N802
        b = self.behaviour
        body = self._read_body()
        n = body.count(b'name="images"')
        if b == "confidence NaN":
            return self._json(_predictions_body(n, confidence=math.nan))
        if b == "confidence inf":
            return self._send(200, json.dumps(_predictions_body(n)).replace("0.8,", "Infinity,", 1).encode())
        if b == "confidence -5":
            return self._json(_predictions_body(n, confidence=-5))
        if b == "confidence 'high'":
            return self._json(_predictions_body(n, confidence="high"))
        if b == "label it does not have":
            return self._json(_predictions_body(n, label="purple"))
        if b == "scores sum to 2.75":
            return self._json(_predictions_body(n, confidence=0.95, scores={"red": 0.95, "green": 0.9, "blue": 0.9}))
        if b == "scores miss a label":
            return self._json(_predictions_body(n, scores={"red": 0.8, "green": 0.2}))
        if b == "label is not the top score":
            return self._json(_predictions_body(n, label="blue", confidence=0.1))
        if b == "fewer predictions than images":
            return self._json(_predictions_body(max(0, n - 1)))
        if b == THIEF:  # well-formed answers in the stolen name: only the answers themselves differ
            out = _predictions_body(n)
            out["model"]["fingerprint"] = self.stored_fingerprint
            return self._json(out)
        if b == "answers as another model":
            out = _predictions_body(n)
            out["model"]["fingerprint"] = "e" * 64
            return self._json(out)
        if b == "predict not JSON":
            return self._send(200, b"OK then", "text/plain")
        if b == "predict nested 100k deep":
            return self._send(200, b"[" * 100_000 + b"]" * 100_000)
        if b == "400 for every image":
            return self._json({"error": "I refuse"}, 400)
        if b == "500 with an HTML page":
            return self._send(500, b"<html><body>" + b"<p>Internal Server Error</p>" * 200 + b"</body></html>",
                              "text/html")
        if b == "redirect loop":
            return self._send(302, b"", headers={"Location": "/predict"})
        if b == "invalid gzip body":
            return self._send(200, b"this is not gzip at all" * 10, headers={"Content-Encoding": "gzip"})
        if b == "gzip bomb of 200 MB":
            return self._send(200, BOMB, headers={"Content-Encoding": "gzip"})
        if b == "100 MB response":
            return self._stream((b" " * MiB for _ in range(100)), {"Content-Type": "application/json"})
        if b == "1 byte every 2 s":
            data = json.dumps(_predictions_body(n)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return None
        if b == "headers dripped":
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(200):
                    self.wfile.write(b"X-Slow: a\r\n")
                    self.wfile.flush()
                    time.sleep(1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return None
        if b == "hangs after the request":
            time.sleep(120)
            self.close_connection = True
            return None
        if b == "resets the connection":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            self.connection.close()
            self.close_connection = True
            return None
        return self._json(_predictions_body(n))


BOMB = _gzip_bomb(200 * MiB)
assert len(BOMB) < MiB  # about 200 kB that inflate to 200 MB


class HostileServer:
    """`with HostileServer("confidence NaN") as url:` a fake model server on loopback."""

    def __init__(self, behaviour: str, *, stored_fingerprint: str = ""):
        assert behaviour in BEHAVIOURS or behaviour in ("honest", THIEF), behaviour
        handler = type("Handler", (_Handler,), {"behaviour": behaviour, "stored_fingerprint": stored_fingerprint})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
