"""Headers of `data-collector serve` as a client meets them: a real process on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from collector.storage import store
from helpers import free_port, make_test_data, wait_healthy


def test_every_answer_has_the_security_headers_and_no_versions(tmp_path):
    data = make_test_data(tmp_path / "td", per_class=1)
    db = f"sqlite:///{tmp_path / 'v.db'}"
    store.ensure_schema(store.make_engine(db))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HOOK_TOKEN"}
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "data-collector"), "--db", db, "serve",
                                 "--no-auth", "--port", str(port), "--test-data", str(data),
                                 "--report-dir", str(tmp_path / "r")],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            answers = {path: requests.get(url + path, timeout=60) for path in
                       ("/", "/compare", "/jobs/view", "/api/models", "/jobs", "/health", "/no-such-page",
                        "/models/nothing@1", "/api/models/nothing@1")}
            answers["POST /hooks/deployed"] = requests.post(url + "/hooks/deployed", data=b"x", timeout=60)
            icon = requests.get(url + "/favicon.ico", timeout=60)
        finally:
            proc.terminate()
            proc.wait(60)
    assert answers["/"].status_code == 200 and answers["/api/models/nothing@1"].status_code == 404
    assert answers["POST /hooks/deployed"].status_code == 400
    for path, r in answers.items():
        h = r.headers
        assert h["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], path
        assert h["Cache-Control"] == "no-store", path
        assert h["Server"] == "data-collector", (path, h["Server"])
        assert "werkzeug" not in str(h).lower() and "python" not in str(h).lower(), (path, h)
    assert answers["/"].headers["Content-Type"].startswith("text/html")
    assert icon.status_code == 204 and icon.headers["X-Content-Type-Options"] == "nosniff"  # not a 404
    assert "default-src 'none'" in answers["/"].headers["Content-Security-Policy"]
