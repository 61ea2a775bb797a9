"""Screenshots of calibration, latency and robustness in the web view: `make beyond-screenshots`.

Serves the shipped `ml_original` v2 (trained_models/archive) and v3 with `ml-server`, starts
`data-collector serve` with the gate service on (a random token, LATENCY=1, ROBUSTNESS=1) on a
fresh SQLite database, asks it for the gate v2 -> v3 as Argo Rollouts would, and takes from the
job's page in Debian's chromium docs/screenshots/calibration.png, latency.png and robustness.png
(each section of the page).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]  # bench, devtools, screenshots: the repository's
from screenshots import OUT, load_images, shrink_png  # noqa: E402

from bench.common import free_port, servers  # noqa: E402
from devtools.health import wait_healthy  # noqa: E402


def _verdict(url: str, token: str, base: str, cand: str) -> dict:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/gates/verdict", params={"baseline": base, "candidate": cand},
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if r.json().get("verdict") != "running":
            return r.json()
        time.sleep(1)
    sys.exit("error: no verdict in 15 minutes")


def main() -> int:
    token = secrets.token_urlsafe(24)
    with servers([ROOT / "trained_models" / "archive" / "ml_original_v2", "ml_original"]) as (v2, v3), \
            tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "HOOK_TOKEN": token, "LATENCY": "1", "ROBUSTNESS": "1", "HASH_CACHE": f"{tmp}/h"}
        proc = subprocess.Popen([str(Path(sys.executable).parent / "data-collector"), "--db",
                                 f"sqlite:///{tmp}/db.sqlite", "serve", "--port", str(port), "--allowed-hosts",
                                 "127.0.0.1", "--test-data", str(ROOT / "test_data")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, deadline_s=120, proc=proc)
            answer = _verdict(url, token, v2, v3)
            print(f"gate: {answer.get('summary')}")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/jobs/view/{answer['job'][:8]}", wait_until="load")
                load_images(page, "the job's page")
                for name in ("calibration", "latency", "robustness"):
                    path = OUT / f"{name}.png"
                    page.locator(f"#{name}").screenshot(path=str(path))
                    shrink_png(path)
                    print(f"wrote {path}")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
