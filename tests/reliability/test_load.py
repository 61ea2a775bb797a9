"""Load: 16 concurrent clients against one gunicorn server in a bounded loop on loopback.

`make test` runs it for a few seconds; `make reliability` for RELIABILITY_LOAD_SECONDS (60).
No errors; throughput reported; the server's memory stays flat.
"""

from __future__ import annotations

import os
import threading
import time

import requests

from helpers import COLORS, MlServerProcess, color_png, rss_mb

SECONDS = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "4"))
CLIENTS = 16


def test_sixteen_clients(color_model):
    with MlServerProcess(color_model, "--threads", "8") as srv:
        url, worker = srv.url, srv.worker
        files = [("images", (f"{i}.png", color_png(COLORS["green"], seed=i), "image/png")) for i in range(8)]
        requests.post(url + "/predict", files=files, timeout=30).raise_for_status()  # warm up
        samples = [rss_mb(worker)]
        counts, errors = [0] * CLIENTS, []
        stop_at = time.monotonic() + SECONDS

        def client(k: int) -> None:
            s = requests.Session()
            while time.monotonic() < stop_at:  # bounded in time
                try:
                    r = s.post(url + "/predict", files=files, timeout=30)
                    if r.status_code != 200:
                        errors.append(r.status_code)
                    counts[k] += 1
                except requests.RequestException as e:
                    errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            samples.append(rss_mb(worker))
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        total = sum(counts)
        print(f"load: {CLIENTS} clients, {elapsed:.0f} s, {total} requests, {total / elapsed:.1f} req/s, "
              f"{8 * total / elapsed:.0f} img/s; RSS {samples[0]:.0f} -> {max(samples):.0f} MB")
        assert not errors, errors[:5]
        assert total > CLIENTS and min(counts) > 0
        half = len(samples) // 2
        assert max(samples[half:]) - max(samples[1:half + 1] or samples) < 50, "memory keeps growing"
