"""How fast the gate service answers while it evaluates: `python -m bench.bench_gates`.

A real `data-collector serve` (gunicorn) on a fresh SQLite database gates the shipped
ml_original version 2 (baseline) against version 3 (candidate), both on real `ml-server`
processes. While that job runs, one client asks, round robin, the Argo endpoint, Flagger's
confirm-promotion, the job's status and the readiness probe; the script prints each one's
median and maximum answer time, and how long the evaluation took.

Then, while a second job runs, 50 anonymous and 50 token-holding `GET /jobs/ID?wait=1` are held
open at once (gunicorn has 16 threads) and the Argo and Flagger endpoints are timed again: waits
are refused to anonymous callers and bounded in number and per caller, so the controllers' answers
stay under a second.
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
            out = _measure(url, base, cand)
            out["starvation"] = _starvation(url, base, cand)
            return out
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
        "GET /jobs/ID": lambda: requests.get(f"{url}/jobs/{job}", headers=auth, timeout=30),
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


def _starvation(url: str, base: str, cand: str, holders: int = 50, polls: int = 20) -> dict:
    """The controllers' answer times with `holders` anonymous and `holders` token-holding waits open."""
    from concurrent.futures import ThreadPoolExecutor

    auth = {"Authorization": f"Bearer {TOKEN}"}
    args = {"baseline": base, "candidate": cand, "revision": "starvation"}
    job = requests.get(f"{url}/gates/verdict", params=args, headers=auth, timeout=30).json()["job"]
    flagger = json.dumps({"name": "ml-original", "namespace": "bench", "phase": "Promoting", "checksum": "2",
                          "metadata": {"baseline": base, "candidate": cand, "token": TOKEN}})

    def hold(with_token: bool) -> int:
        try:
            return requests.get(f"{url}/jobs/{job}?wait=1", headers=auth if with_token else {}, timeout=120).status_code
        except requests.RequestException:
            return -1

    times: dict[str, list[float]] = {"GET /gates/verdict": [], "POST /gates/flagger/confirm-promotion": []}
    with ThreadPoolExecutor(2 * holders) as pool:
        held = [pool.submit(hold, i % 2 == 0) for i in range(2 * holders)]
        time.sleep(1.0)  # every holder has sent its request
        for _ in range(polls):
            s = time.perf_counter()
            requests.get(f"{url}/gates/verdict", params=args, headers=auth, timeout=30)
            times["GET /gates/verdict"].append(time.perf_counter() - s)
            s = time.perf_counter()
            requests.post(f"{url}/gates/flagger/confirm-promotion", data=flagger,
                          headers={"Content-Type": "application/json"}, timeout=30)
            times["POST /gates/flagger/confirm-promotion"].append(time.perf_counter() - s)
        codes = [f.result() for f in held]
    out = {"holders": {"anonymous": holders, "with_token": holders},
           "holder_answers": {str(c): codes.count(c) for c in sorted(set(codes))},
           "endpoints_ms": {k: {"n": len(v), "median": statistics.median(v) * 1000, "max": max(v) * 1000}
                            for k, v in times.items()}}
    print(f"with {holders} anonymous and {holders} token-holding ?wait=1 requests open "
          f"(their answers: {out['holder_answers']}):")
    for k, v in out["endpoints_ms"].items():
        print(f"  {k:40s} n={v['n']:4d}  median {v['median']:6.1f} ms  max {v['max']:6.1f} ms"
              f"  {'under' if v['max'] < 1000 else 'OVER'} 1 s")
    return out


if __name__ == "__main__":
    main()
