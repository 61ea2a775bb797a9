"""How fast the gate service answers while it evaluates: `python -m bench.bench_gates`.

A real `data-collector serve` (gunicorn) on a fresh SQLite database gates the shipped
ml_original version 2 (baseline) against version 3 (candidate), both on real `ml-server`
processes. While that job runs, one client asks, round robin, the Argo endpoint, Flagger's
confirm-promotion, the job's status and the readiness probe; the script prints each one's
median and maximum answer time, and how long the evaluation took.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import ROOT, free_port, servers
from devtools.health import wait_healthy

TOKEN = secrets.token_urlsafe(24)  # this run's HOOK_TOKEN


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp, \
            servers([ROOT / "trained_models" / "archive" / "ml_original_v2", "ml_original"]) as (base, cand):
        port = free_port()
        exe = str(Path(sys.executable).parent / "data-collector")
        proc = subprocess.Popen([exe, "--db", f"sqlite:///{tmp}/gate.db", "serve", "--port", str(port),
                                 "--allowed-hosts", "127.0.0.1", "--test-data", str(ROOT / "test_data"),
                                 "--report-dir", f"{tmp}/reports"],
                                env={**os.environ, "HOOK_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, path="/readyz", deadline_s=120, proc=proc)
            return _measure(url, base, cand)
        finally:
            proc.terminate()
            proc.wait(60)


def _measure(url: str, base: str, cand: str) -> dict:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    args = {"baseline": base, "candidate": cand}
    flagger = json.dumps({"name": "ml-original", "namespace": "bench", "phase": "Promoting", "checksum": "1",
                          "metadata": {**args, "token": TOKEN}})
    t0 = time.perf_counter()
    job = requests.get(f"{url}/gates/verdict", params=args, headers=auth, timeout=30).json()["job"]
    calls = {
        "GET /gates/verdict": lambda: requests.get(f"{url}/gates/verdict", params=args, headers=auth, timeout=30),
        "POST /gates/flagger/confirm-promotion": lambda: requests.post(
            f"{url}/gates/flagger/confirm-promotion", data=flagger, headers={"Content-Type": "application/json"},
            timeout=30),
        "GET /jobs/ID": lambda: requests.get(f"{url}/jobs/{job}", timeout=30),
        "GET /readyz": lambda: requests.get(f"{url}/readyz", timeout=30),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    verdict = "running"
    while verdict == "running":
        for name, call in calls.items():
            s = time.perf_counter()
            r = call()
            times[name].append(time.perf_counter() - s)
            if name == "GET /gates/verdict":
                verdict = r.json()["verdict"]
    took = time.perf_counter() - t0
    out = {"evaluation_s": took, "verdict": verdict,
           "endpoints_ms": {k: {"n": len(v), "median": statistics.median(v) * 1000, "max": max(v) * 1000}
                            for k, v in times.items()}}
    print(f"gate ml_original v2 -> v3: {verdict} after {took:.1f} s of evaluation (both models, test_data/)")
    for k, v in out["endpoints_ms"].items():
        print(f"  {k:40s} n={v['n']:4d}  median {v['median']:6.1f} ms  max {v['max']:6.1f} ms")
    return out


if __name__ == "__main__":
    main()
