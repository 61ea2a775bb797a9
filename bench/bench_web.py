"""How fast the web view answers with 50 models x 2,000 images in the database.

    python -m bench.bench_web [--models 50] [--images 2000] [--requests 10]

Generates a SQLite database (10 model names x 5 versions, 7 classes, 2,000 labelled images and
their predictions: 100,000 rows; each version a little worse or better per class), starts
`data-collector serve` on it as its own process and times each page over HTTP (keep-alive, the
first request of each page not counted). Targets (issue "a live web view"): every page <= 300 ms,
the models page <= 150 ms (median).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port

LABELS = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle", "ditto", "mimikyu"]
TARGET_MS = 300.0
MODELS_TARGET_MS = 150.0


def make_database(url: str, n_models: int, n_images: int, seed: int = 0) -> list[dict]:
    """Fill a fresh database; returns the models as (name, version, fingerprint)."""
    from collector.storage import store
    from collector.storage.schema import images, models, predictions, runs

    rng = random.Random(seed)
    engine = store.make_engine(url)
    store.upgrade(engine)
    out = []
    with engine.begin() as c:
        c.execute(images.insert(), [{"id": i + 1, "sha256": f"{i:064x}", "path": f"{LABELS[i % 7]}/{i:06d}.png",
                                     "label": LABELS[i % 7], "kind": "photo" if i % 3 else "sprite"}
                                    for i in range(n_images)])
        for k in range(n_models):
            name, version = f"model_{k // 5:02d}", str(k % 5 + 1)
            fp = f"{k + 1:064x}"
            now = store.now()
            c.execute(models.insert().values(id=k + 1, fingerprint=fp, name=name, version=version, labels=LABELS,
                                             metadata={"backend": "litert"}, first_seen=now, last_seen=now))
            c.execute(runs.insert().values(id=k + 1, model_id=k + 1, url=f"http://{name}:8080", started_at=now,
                                           finished_at=now, status="completed", n_planned=n_images,
                                           n_sent=n_images, n_failed=0, collector_version="b", test_set_hash="h"))
            skill = {lab: rng.uniform(0.75, 0.98) for lab in LABELS}
            rows = []
            for i in range(n_images):
                true = LABELS[i % 7]
                right = rng.random() < skill[true]
                pred = true if right else rng.choice([x for x in LABELS if x != true])
                conf = rng.uniform(0.5, 0.99)
                rest = (1 - conf) / 6
                rows.append({"run_id": k + 1, "model_id": k + 1, "image_id": i + 1, "predicted_label": pred,
                             "confidence": conf, "scores": {lab: (conf if lab == pred else rest) for lab in LABELS},
                             "latency_ms": 1.0})
            c.execute(predictions.insert(), rows)
            out.append({"name": name, "version": version, "fingerprint": fp})
    engine.dispose()
    return out


def time_pages(base: str, pages: dict[str, str], n: int) -> dict[str, dict]:
    import requests

    s = requests.Session()
    out = {}
    for label, path in pages.items():
        r = s.get(base + path, timeout=120)
        r.raise_for_status()  # the first request (imports, caches) is not counted
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            r = s.get(base + path, timeout=120)
            ms.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
        out[label] = {"path": path, "median_ms": statistics.median(ms), "max_ms": max(ms), "bytes": len(r.content)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=10)
    args = ap.parse_args(argv)
    from devtools.health import wait_healthy

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/web.db"
        t = time.perf_counter()
        ms = make_database(db, args.models, args.images)
        print(f"database: {args.models} models x {args.images} images in {time.perf_counter() - t:.1f} s")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "HOOK_TOKEN"}
        proc = subprocess.Popen([str(Path(sys.executable).parent / "data-collector"), "--db", db, "serve", "--port",
                                 str(port), "--test-data", tmp], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, deadline_s=120, proc=proc)
            last, prev = ms[-1], ms[-2]
            pages = {
                "models page": "/", "models JSON": "/api/models",
                "model page": f"/models/{last['fingerprint']}", "model JSON": f"/api/models/{last['fingerprint']}",
                "compare page": f"/compare?baseline={prev['fingerprint']}&candidate={last['fingerprint']}",
                "compare JSON": f"/api/compare?baseline={prev['fingerprint']}&candidate={last['fingerprint']}",
                "history page": f"/history/{last['name']}", "history JSON": f"/api/history/{last['name']}",
            }
            res = time_pages(base, pages, args.requests)
        finally:
            proc.terminate()
            proc.wait(30)
    worst = max(v["median_ms"] for v in res.values())
    for label, v in res.items():
        target = MODELS_TARGET_MS if label == "models page" else TARGET_MS
        print(f"{label:>13}: median {v['median_ms']:6.1f} ms, max {v['max_ms']:6.1f} ms, {v['bytes'] / 1024:6.0f} KB"
              f"  (target <= {target:.0f} ms: {'ok' if v['median_ms'] <= target else 'MISSED'})")
    out = {"pages": res, "models": args.models, "images": args.images, "slowest_median_ms": worst,
           "models_page_median_ms": res["models page"]["median_ms"]}
    print(f"slowest page {worst:.0f} ms (target <= {TARGET_MS:.0f}); models page "
          f"{out['models_page_median_ms']:.0f} ms (target <= {MODELS_TARGET_MS:.0f})")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
