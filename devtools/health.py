"""Wait for a server's health endpoint, to an overall deadline (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import time

import requests


class NotHealthy(RuntimeError):
    pass


def wait_healthy(url: str, *, deadline_s: float = 180.0, path: str = "/health", proc=None,
                 request_timeout: float = 10.0, interval: float = 0.2, pid: int | None = None) -> None:
    """Poll GET url+path until it answers 200, retrying on any transport error or status.

    One slow answer on a busy machine is not a failure: only the overall deadline is. With
    `proc` (a Popen), or the `pid` of a process started by someone else (the demo's shell), fail
    at once when the server process has exited.
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
        if pid is not None and not _alive(pid):
            raise NotHealthy(f"the server for {url} (pid {pid}) has exited")
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


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
