"""How cost grows with the test set: 1k, 5k and 20k images.

    python -m bench.bench_scale [--sizes 1000 5000 20000]

For each size: augmented copies of test_data written to a temp folder; a fresh ml_original
server; the collector as its own process (`data-collector collect`, into SQLite). Reports
collection time and img/s (should stay flat within +-20%), peak RSS of the collector and of the
server worker (should not grow with the size), and database bytes per prediction.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import augmented_testset, children, proc_status_kb, servers


def server_pids() -> list[int]:
    """gunicorn masters started by bench.common.servers (our children) and their workers."""
    import os

    out = []
    for master in children(os.getpid()):
        out.append(master)
        out += children(master)
    return out


def run_size(n: int, tmp: Path) -> dict:
    data = augmented_testset(tmp / f"td{n}", n, seed=n)
    db = tmp / f"scale{n}.db"
    exe = str(Path(sys.executable).parent / "data-collector")
    with servers(["ml_original"]) as (url,):
        peak = {"collector": 0, "server": 0}
        stop = threading.Event()
        proc = subprocess.Popen([exe, "--db", f"sqlite:///{db}", "collect", "--test-data", str(data), url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def sample():
            while not stop.is_set():
                peak["collector"] = max(peak["collector"], proc_status_kb(proc.pid, "VmHWM"))
                peak["server"] = max([peak["server"],
                                      *(proc_status_kb(p, "VmHWM") for p in server_pids() if p != proc.pid)])
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        t = time.perf_counter()
        sampler.start()
        rc = proc.wait()
        wall = time.perf_counter() - t
        stop.set()
        sampler.join()
        # The same command again has nothing to send: its wall time is the fixed cost (interpreter
        # start, imports, hashing the test set, /metadata), which a small set cannot amortise.
        t = time.perf_counter()
        subprocess.run([exe, "--db", f"sqlite:///{db}", "collect", "--test-data", str(data), url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        fixed = time.perf_counter() - t
    if rc != 0:
        raise RuntimeError(f"collector exited {rc} at size {n}")
    db_bytes = sum(p.stat().st_size for p in tmp.glob(f"scale{n}.db*"))
    sent = n  # every augmented image carries a label ml_original knows
    return {"images": n, "seconds": wall, "img_s": sent / wall, "fixed_seconds": fixed,
            "net_img_s": sent / max(wall - fixed, 1e-9), "collector_peak_rss_mb": peak["collector"] / 1024,
            "server_peak_rss_mb": peak["server"] / 1024, "db_bytes_per_prediction": db_bytes / sent}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            rows.append(run_size(n, Path(tmp)))
            r = rows[-1]
            print(f"{n:>6} images: {r['seconds']:7.1f} s  {r['img_s']:7.1f} img/s ({r['net_img_s']:6.1f} net of "
                  f"{r['fixed_seconds']:.1f} s fixed cost)  collector peak "
                  f"{r['collector_peak_rss_mb']:6.0f} MB  server peak {r['server_peak_rss_mb']:6.0f} MB  "
                  f"{r['db_bytes_per_prediction']:6.0f} DB bytes/prediction")
    rates = [r["net_img_s"] for r in rows]
    spread = max(rates) / min(rates) - 1
    out = {"sizes": rows, "net_img_s_spread": spread,
           "collector_rss_growth": rows[-1]["collector_peak_rss_mb"] / rows[0]["collector_peak_rss_mb"],
           "server_rss_growth": rows[-1]["server_peak_rss_mb"] / max(rows[0]["server_peak_rss_mb"], 1)}
    print(f"net img/s spread across sizes: {spread:.0%} (target within 20%); peak RSS largest/smallest: collector "
          f"{out['collector_rss_growth']:.2f}x, server {out['server_rss_growth']:.2f}x")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
