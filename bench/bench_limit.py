"""The collector at the runtime's limit: end to end against in-process inference, and its start-up.

    python -m bench.bench_limit [--images 3000] [--repeats 3] [--no-sweep]

On the same files, interleaved so that machine noise falls on every side alike:
- in-process: one process decodes, preprocesses and runs LiteRT on every eligible image (64-image
  batches) -- the runtime's limit on this machine;
- the collector end to end: `data-collector collect` into a fresh SQLite file, from process start
  to exit (start-up included), against one `ml-server` with its defaults;
- the server alone: a minimal client (http.client, no checks, no storage) sending the same images
  in the collector's request form, as many requests in flight as the collector's default.
Each ratio is in-process seconds / the other's seconds (1.0: as fast as the runtime alone), for
`test_data/` and for an `--images` set of distinct augmented copies; the median and the spread
(min-max) of `--repeats` runs. Start-up: `data-collector --help`, and process start to the first
request a listening socket receives (collect against an up-to-date database), median of 10; and the
ten slowest imports of each (`python -X importtime`, cumulative). The sweep times the collector at
each in-flight x batch-size pair on the large set (the table in docs/performance.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import ROOT, augmented_testset, servers  # noqa: E402

MODEL = "ml_original"
TARGETS = {"large": 0.85, "test_data": 0.6, "help_s": 0.2, "first_request_s": 0.25}
EXE = str(Path(sys.executable).parent / "data-collector")
TEMPLATE = Path(tempfile.gettempdir()) / f"bench-limit-{os.getpid()}.db"


def make_template() -> None:
    TEMPLATE.unlink(missing_ok=True)
    subprocess.run([EXE, "--db", f"sqlite:///{TEMPLATE}", "db", "upgrade"], check=True, stdout=subprocess.DEVNULL)


def eligible_files(test_dir: Path, labels: list[str]) -> list[Path]:
    from collector.testset.images import eligible, scan

    return [test_dir / i.path for i in eligible(scan(test_dir), labels)]


def in_process(files: list[Path], model) -> float:
    """Seconds to decode, preprocess and classify every file in this process (64-image batches)."""
    import numpy as np

    from model_server.preprocessing import preprocess_bytes

    t = time.perf_counter()
    for i in range(0, len(files), 64):
        model.predict(np.stack([preprocess_bytes(f.read_bytes(), model.spec) for f in files[i:i + 64]]))
    return time.perf_counter() - t


def collector(url: str, test_dir: Path, db: Path, extra: list[str] = ()) -> float:
    """Wall seconds of one `data-collector collect` process into a SQLite file at the current schema
    that holds nothing of this model (a copy of TEMPLATE: what a team's database is on every run but
    its first, whose one-off migration is not the collector's speed)."""
    shutil.copyfile(TEMPLATE, db)
    t = time.perf_counter()
    subprocess.run([EXE, "--db", f"sqlite:///{db}", "collect", "--test-data", str(test_dir), *extra, url],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def request_form() -> str:
    """The native request form the collector sends (what the server-alone client imitates)."""
    from collector.protocols.client import ModelClient

    return getattr(ModelClient, "request_form", "multipart")


def encode_batch(batch: list[bytes], form: str) -> tuple[bytes, str]:
    if form == "image-batch":
        from model_server.native import IMAGE_BATCH, pack_images

        return pack_images(batch), IMAGE_BATCH
    boundary = "benchboundary0123456789"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{i}.jpg"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
             for i, data in enumerate(batch)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def server_alone(url: str, files: list[Path], *, batch: int, in_flight: int, form: str) -> float:
    """Seconds for a minimal client to have the server classify `files` (read from disk, as the collector does)."""
    host = urlsplit(url)
    local = threading.local()

    def send(chunk: list[Path]) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        body, ctype = encode_batch([f.read_bytes() for f in chunk], form)
        conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"server alone: HTTP {resp.status}: {data[:200]!r}")

    t = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(send, [files[i:i + batch] for i in range(0, len(files), batch)]))
    return time.perf_counter() - t


def help_seconds(n: int = 10) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([EXE, "--help"], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def first_request_seconds(db: Path, test_dir: Path, n: int = 10) -> list[float]:
    """Process start to the first connection a listening socket accepts (the collector's first request)."""
    out = []
    for _ in range(n):
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(8)
            srv.settimeout(60)
            url = f"http://127.0.0.1:{srv.getsockname()[1]}"
            t = time.perf_counter()
            proc = subprocess.Popen([EXE, "--db", f"sqlite:///{db}", "collect", "--retries", "0", "--test-data",
                                     str(test_dir), url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                conn, _ = srv.accept()
                out.append(time.perf_counter() - t)
                conn.close()
            finally:
                proc.kill()
                proc.wait(60)
    return out


def import_top(argv: list[str], n: int = 10) -> list[tuple[str, float]]:
    """The `n` imports with the largest cumulative time (ms) when running `data-collector ARGV`."""
    code = "import sys; from collector.cli import main; sys.argv[0] = 'data-collector'; main()"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *argv], capture_output=True, text=True,
                          timeout=300)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((name[1:], int(cumulative) / 1000))  # nested imports are indented under their importer
    total = sum(ms for name, ms in rows if not name.startswith(" "))
    rows = sorted(((name.strip(), ms) for name, ms in rows), key=lambda r: -r[1])
    return [("(all imports)", round(total, 1))] + [(name, round(ms, 1)) for name, ms in rows[:n]]


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3000, help="size of the large set (distinct augmented copies)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the in-flight x batch sweep")
    ap.add_argument("--sweep-in-flight", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--sweep-batch", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--sweep-repeats", type=int, default=2)
    ap.add_argument("--samples", type=int, default=10, help="runs of --help and of the start-up measure")
    args = ap.parse_args(argv)
    from collector.settings import CollectorSettings
    from model_server.model import load_model_folder

    model = load_model_folder(ROOT / "trained_models" / MODEL)
    batch = CollectorSettings.default("batch_size")
    try:
        from collector.early import IN_FLIGHT_PER_MODEL as per_model
    except ImportError:  # the code before early.py (a before/after comparison)
        from collector import collect

        per_model = getattr(collect, "IN_FLIGHT_PER_MODEL", 2)
    in_flight = CollectorSettings.default("max_in_flight") or per_model
    form = request_form()
    out: dict = {"images": args.images, "repeats": args.repeats, "form": form, "batch": batch,
                 "in_flight": in_flight, "targets": TARGETS}
    make_template()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {"test_data": ROOT / "test_data", "large": augmented_testset(tmp / "large", args.images, seed=11)}
        files = {k: eligible_files(d, model.labels) for k, d in sets.items()}
        with servers([MODEL]) as (url,):
            runs = {k: {"in_process": [], "collector": [], "server": []} for k in sets}
            for r in range(args.repeats):
                for k, d in sets.items():
                    runs[k]["in_process"].append(in_process(files[k], model))
                    runs[k]["collector"].append(collector(url, d, tmp / f"{k}-{r}.db"))
                    runs[k]["server"].append(server_alone(url, files[k], batch=batch, in_flight=in_flight, form=form))
            for k in sets:
                rk = runs[k]
                out[k] = {"files": len(files[k]),
                          "collector_ratio": spread([a / b for a, b in zip(rk["in_process"], rk["collector"],
                                                                           strict=True)]),
                          "server_ratio": spread([a / b for a, b in zip(rk["in_process"], rk["server"], strict=True)]),
                          "in_process_img_s": len(files[k]) / statistics.median(rk["in_process"]),
                          "collector_img_s": len(files[k]) / statistics.median(rk["collector"])}
            current = tmp / "current.db"
            collector(url, sets["test_data"], current)  # an up-to-date database that has seen this model
            if args.sweep:
                out["sweep"] = sweep(url, sets["large"], model, files["large"], tmp, args)
        out["help_s"] = spread(help_seconds(args.samples))
        out["first_request_s"] = spread(first_request_seconds(current, sets["test_data"], args.samples))
        out["imports_help"] = import_top(["--help"])
        out["imports_collect"] = import_top(["--db", f"sqlite:///{current}", "collect", "--retries", "0",
                                             "--timeout", "1", "--test-data", str(sets["test_data"]),
                                             "http://127.0.0.1:9"])
    TEMPLATE.unlink(missing_ok=True)
    report(out)
    return out


def sweep(url: str, test_dir: Path, model, files: list[Path], tmp: Path, args) -> list[dict]:
    """The collector at each in-flight x batch pair on the large set, each run beside an in-process
    run; the cells interleaved over `--sweep-repeats` rounds, each cell's median ratio kept."""
    cells = [(f, b) for f in args.sweep_in_flight for b in args.sweep_batch]
    ratios: dict[tuple[int, int], list[float]] = {c: [] for c in cells}
    for _ in range(args.sweep_repeats):
        for f, b in cells:
            base = in_process(files, model)
            wall = collector(url, test_dir, tmp / f"sweep-{f}-{b}.db",
                             ["--max-in-flight", str(f), "--batch-size", str(b)])
            ratios[(f, b)].append(base / wall)
    rows = []
    for (f, b), rs in ratios.items():
        rows.append({"in_flight": f, "batch": b, "ratio": round(statistics.median(rs), 3),
                     "min": round(min(rs), 3), "max": round(max(rs), 3)})
        print(f"  sweep: {f} in flight, {b}-image batches: ratio {rows[-1]['ratio']:.2f} "
              f"[{rows[-1]['min']:.2f}-{rows[-1]['max']:.2f}]", flush=True)
    return rows


def report(out: dict) -> None:
    def ok(good: bool) -> str:
        return "ok" if good else "MISSED"

    print(f"request form {out['form']}, {out['in_flight']} in flight, {out['batch']}-image batches")
    for k in ("large", "test_data"):
        c, s = out[k]["collector_ratio"], out[k]["server_ratio"]
        print(f"{k} ({out[k]['files']} images): collector / in-process {c['median']:.2f} "
              f"[{c['min']:.2f}-{c['max']:.2f}] (target >= {TARGETS[k]}: {ok(c['median'] >= TARGETS[k])}); "
              f"server alone / in-process {s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]; "
              f"in-process {out[k]['in_process_img_s']:.0f} img/s, collector {out[k]['collector_img_s']:.0f} img/s")
    for key, what in (("help_s", "--help"), ("first_request_s", "start-up to the first request")):
        v = out[key]
        print(f"{what}: median of {len(v['runs'])} {v['median']:.3f} s [{v['min']:.3f}-{v['max']:.3f}] "
              f"(target < {TARGETS[key]}: {ok(v['median'] < TARGETS[key])})")
    for key in ("imports_help", "imports_collect"):
        print(f"{key}: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in out[key]))
    if out.get("sweep"):
        best = max(out["sweep"], key=lambda r: r["ratio"])
        print(f"sweep best: {best['in_flight']} in flight, {best['batch']}-image batches, ratio {best['ratio']:.2f}")


if __name__ == "__main__":
    print(json.dumps(main()))
