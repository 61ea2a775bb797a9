"""HTTP client for one model server: metadata and batched predict, with timeouts and retries."""

from __future__ import annotations

import random
import time
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter

REQUIRED_METADATA = ("name", "version", "fingerprint", "labels")


class ModelServerError(RuntimeError):
    def __init__(self, url: str, message: str, *, status: int | None = None):
        super().__init__(f"{url}: {message}")
        self.url, self.status = url, status


def check_url(url: str) -> str:
    p = urlparse(url)
    if p.scheme not in ("http", "https") or not p.netloc:
        raise ModelServerError(url, "not an http(s) URL (e.g. http://ml_original:8080)")
    return url.rstrip("/")


class ModelClient:
    def __init__(self, url: str, *, timeout: float = 60.0, connect_timeout: float = 5.0, retries: int = 3,
                 backoff: float = 0.5, pool_size: int = 4):
        self.url = check_url(url)
        self.timeout = (connect_timeout, timeout)
        self.retries = retries
        self.backoff = backoff
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Retry with exponential backoff and jitter on connection errors, timeouts and 5xx."""
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2))  # nosec B311
            try:
                resp = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
            except requests.Timeout:
                last = f"timed out after {self.timeout[1]:g}s"
                continue
            except requests.ConnectionError as e:
                last = f"cannot connect ({type(e).__name__})"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {_error_text(resp)}"
                continue
            return resp
        raise ModelServerError(self.url, f"{method} {path} failed after {self.retries + 1} attempts: {last}")

    def metadata(self) -> dict:
        resp = self._request("GET", "/metadata")
        if resp.status_code != 200:
            raise ModelServerError(self.url, f"GET /metadata answered {resp.status_code}: {_error_text(resp)}",
                                   status=resp.status_code)
        try:
            meta = resp.json()
        except ValueError:
            raise ModelServerError(self.url, "GET /metadata did not return JSON: is this a model server?") from None
        missing = [k for k in REQUIRED_METADATA if not isinstance(meta, dict) or k not in meta]
        if missing:
            raise ModelServerError(self.url, f"metadata lacks {missing}: is this a model server?")
        return meta

    def predict(self, images: list[tuple[str, bytes]]) -> dict:
        files = [("images", (name.rsplit("/", 1)[-1], data, "application/octet-stream")) for name, data in images]
        resp = self._request("POST", "/predict", files=files)
        if resp.status_code != 200:
            raise ModelServerError(self.url, f"POST /predict answered {resp.status_code}: {_error_text(resp)}",
                                   status=resp.status_code)
        body = _json(resp)
        if not isinstance(body, dict) or not isinstance(body.get("predictions"), list) \
                or len(body["predictions"]) != len(images):
            raise ModelServerError(self.url, "POST /predict returned a malformed response")
        return body


def _json(resp: requests.Response):
    try:
        return resp.json()
    except ValueError:
        return None


def _error_text(resp: requests.Response) -> str:
    body = _json(resp)
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return resp.text[:200].strip() or resp.reason or ""
