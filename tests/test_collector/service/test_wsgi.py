"""`serve` on gunicorn (wsgi.py): one worker that names itself only `data-collector`; the first
SIGTERM starts the drain (readiness fails while everything else still answers), a second one
stops it at once. The whole stop with a running job is tests/features/test_graceful_stop.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from collector.service import wsgi
from helpers import free_port, run_cli

DEADLINE_S = 240  # start-up on a busy machine; every poll retries until then
TOKEN = "w" * 24


def _get(url: str):
    try:
        return requests.get(url, timeout=30)
    except requests.ConnectionError:
        return None


def _until(what: str, check):
    deadline = time.monotonic() + DEADLINE_S
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def test_serve_names_itself_only_drains_on_sigterm_and_stops_on_the_second(tmp_path):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    assert run_cli("--db", db, "db", "upgrade").exit_code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOOK_TOKEN": TOKEN, "TEST_DATA_DIR": str(tmp_path), "REPORT_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "--db", db, "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _until("serve did not become ready", lambda: (r := _get(f"{url}/readyz")) is not None and r.status_code == 200)
        live = _get(f"{url}/livez")
        assert live.status_code == 200 and live.headers["Server"] == wsgi.SERVER_NAME
        os.kill(proc.pid, signal.SIGTERM)
        _until("readiness did not fail during the drain",
               lambda: (r := _get(f"{url}/readyz")) is not None and r.status_code == 503)
        if proc.poll() is None:  # still draining: it answers everything else meanwhile
            r = _get(f"{url}/livez")
            assert r is None or r.status_code == 200
            os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, stderr
    assert stderr.count("SIGTERM: draining") == 1, stderr
    assert "Traceback" not in stderr
