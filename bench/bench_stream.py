"""Streaming collection at scale: flat memory, flat throughput, and a rerun that reads nothing.

    python -m bench.bench_stream [--sizes 10000 200000]

Synthetic distinct images (noisy colour squares, three classes) are generated into a temporary
folder; a tiny real Keras model classifies them behind the real model server (gunicorn, on
loopback); the collector runs as its own process into SQLite with its own hash cache. For each
size: the collector's peak RSS (from the kernel, at exit), images per second net of start-up
(start-up = the same command on an evaluated one-image set), and the wall time of a rerun that has
nothing to send, against the first run's.

Targets (issue "scale past one machine"): peak RSS grows <= 50 MB from the smallest to the
largest size; net img/s within 15%; the rerun takes <= 10% of the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import proc_status_kb, servers
from bench.synthetic import COLORS, color_png, write_color_model

LABELS = list(COLORS)


def make_images(dest: Path, n: int, *, source: Path | None = None) -> Path:
    """`n` distinct labelled images in dest/<label>/; hard links to `source`'s files where it has them."""
    for lab in LABELS:
        (dest / lab).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        lab = LABELS[k % len(LABELS)]
        name = f"{k:07d}.png"
        if source is not None and (source / lab / name).exists():
            os.link(source / lab / name, dest / lab / name)
        else:
            (dest / lab / name).write_bytes(color_png(COLORS[lab], seed=k, size=12))
    return dest


def run_collector(db: Path, cache: Path, data: Path, url: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one `data-collector collect`; raises if it fails."""
    exe = str(Path(sys.executable).parent / "data-collector")
    t = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([exe, "--db", f"sqlite:///{db}", "collect", "--test-data", str(data),
                                 "--hash-cache", str(cache), url], stdout=subprocess.DEVNULL, stderr=log)
        # VmHWM (the high-water mark of this process image, set afresh at exec) only grows: the
        # last reading before exit is the peak, to within one sampling interval. (ru_maxrss would
        # count the forking parent's memory.)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, proc_status_kb(proc.pid, "VmHWM"))
            time.sleep(0.05)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"collector exited {proc.returncode}: {log.read().decode()[-2000:]}")
    return wall, peak / 1024


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    args = ap.parse_args(argv)
    sizes = sorted(args.sizes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        model = write_color_model(tmp / "model", LABELS, name="stream-bench")
        largest = make_images(tmp / f"td{sizes[-1]}", sizes[-1])
        sets = {n: make_images(tmp / f"td{n}", n, source=largest) for n in sizes[:-1]}
        sets[sizes[-1]] = largest
        one = make_images(tmp / "td1", 1, source=largest)
        print(f"generated {sizes[-1]} images in {time.perf_counter() - t:.0f} s")
        with servers([model]) as (url,):
            for n in sizes:
                db, cache = tmp / f"s{n}.db", tmp / f"hashes{n}.sqlite3"
                run_collector(db, cache, one, url)  # the one-image set, evaluated: start-up is all that is left
                startup, _ = run_collector(db, cache, one, url)
                wall, rss = run_collector(db, cache, sets[n], url)
                rerun, _ = run_collector(db, cache, sets[n], url)
                row = {"images": n, "seconds": wall, "startup_seconds": startup,
                       "net_img_s": n / max(wall - startup, 1e-9), "collector_peak_rss_mb": rss,
                       "rerun_seconds": rerun, "rerun_ratio": rerun / wall}
                rows.append(row)
                print(f"{n:>7} images: {wall:7.1f} s  {row['net_img_s']:7.1f} img/s net of {startup:.1f} s start-up"
                      f"  collector peak {rss:5.0f} MB  rerun {rerun:5.1f} s ({row['rerun_ratio']:.1%} of the run)")
    small, big = rows[0], rows[-1]
    out = {"sizes": rows,
           "rss_growth_mb": big["collector_peak_rss_mb"] - small["collector_peak_rss_mb"],
           "net_img_s_ratio": big["net_img_s"] / small["net_img_s"],
           "rerun_ratio": big["rerun_ratio"]}
    print(f"collector peak RSS {small['images']} -> {big['images']} images: {out['rss_growth_mb']:+.0f} MB "
          f"(target <= +50 MB); net img/s largest / smallest {out['net_img_s_ratio']:.2f} (target 0.85-1.15); "
          f"rerun with nothing to send {out['rerun_ratio']:.1%} of the first run (target <= 10%)")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
