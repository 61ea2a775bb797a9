"""Wait for a server's health endpoint, to an overall deadline (demo, tests, benchmarks)."""

from __future__ import annotations

import time

import requests


class NotHealthy(RuntimeError):
    pass


def wait_healthy(url: str, *, deadline_s: float = 180.0, path: str = "/health", proc=None,
                 request_timeout: float = 10.0, interval: float = 0.2) -> None:
    """Poll GET url+path until it answers 200, retrying on any transport error or status.

    One slow answer on a busy machine is not a failure: only the overall deadline is. With
    `proc` (a Popen), fail at once when the server process has exited.
    """
    deadline = time.monotonic() + deadline_s
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if getattr(proc, "stderr", None):
                try:
                    tail = proc.stderr.read()[-2000:]
                except (OSError, ValueError):
                    tail = ""
            raise NotHealthy(f"server for {url} exited with {proc.returncode}: {tail}")
        wait_s = max(0.5, min(request_timeout, deadline - time.monotonic()))
        try:
            r = requests.get(url + path, timeout=wait_s)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = type(e).__name__
        if time.monotonic() >= deadline:
            raise NotHealthy(f"{url}{path} not healthy after {deadline_s:g} s (last: {last})")
        time.sleep(interval)
