"""The latency rule on a shipped model: false alarms and detections over repeated timings.

    python -m bench.latency_rule                  # 20 repeats, 2 CPU-bound processes beside it
    python -m bench.latency_rule --repeats 5 --busy 0

Serves `ml_original` twice (two `ml-server` processes: the same model on two servers), each
behind a forwarding proxy of its own (a separate process, so both sides pay the same extra hop).
Each repeat times, with the gate's defaults (latency.LatencyRule: interleaved pairs, 32-image
requests of the test images):
- **same**: server A against server B, both proxies forwarding as they are (a false alarm if flagged);
- **slower**: A against B behind a proxy that holds each answer a fixed `--slower` (0.3) times the
  median request time of A in a pilot timing of A against B (as the repeats time it): a candidate
  30% slower as the client sees it; flagged is a detection.
Prints the count flagged of each, with the p95 ratios seen; writes bench/latency_rule.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, free_port, servers
from devtools.health import wait_healthy


def proxy_main(upstream: str, port: int, delay_s: float) -> None:
    """A threaded forwarding proxy: POSTs are held `delay_s` seconds more."""
    import logging

    import requests
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    session = requests.Session()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    def app(environ, start_response):
        req = Request(environ)
        r = session.request(req.method, upstream + req.full_path.rstrip("?"), data=req.get_data(),
                            headers={"Content-Type": req.content_type} if req.content_type else {})
        if req.method == "POST" and delay_s:
            time.sleep(delay_s)
        return Response(r.content, status=r.status_code, content_type=r.headers.get("Content-Type"))(
            environ, start_response)

    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def _proxy(upstream: str, delay_s: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.latency_rule", "--proxy", upstream, "--port", str(port),
                             "--delay", str(delay_s)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, deadline_s=120, proc=proc)
    return proc, url


def run(repeats: int, busy: int, pairs: int, slower: float) -> dict:
    import tempfile

    from collector.analysis.latency import LatencyRule, Side, measure
    from collector.collect import collect
    from collector.protocols import connect
    from collector.storage import store

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    procs = []
    try:
        with servers(["ml_original", "ml_original"], threads=4) as (a, b), tempfile.TemporaryDirectory() as tmp:
            engine = store.make_engine(f"sqlite:///{tmp}/l.db")
            store.ensure_schema(engine)
            (res,) = collect([a], engine=engine, test_dir=ROOT / "test_data", say=lambda m: None)
            with engine.connect() as conn:
                info = store.find_model(conn, fingerprint=res.fingerprint)
                rows = [r for r in store.load_rows(conn, model_id=info.id) if r["kind"] != "lookalike"]
            answers = {r["sha256"]: r["predicted_label"] for r in rows}
            images = [(r["sha256"], r["path"], (ROOT / "test_data" / r["path"]).read_bytes()) for r in rows]
            urls = {}
            for name, up in (("a", a), ("b", b)):
                proc, urls[name] = _proxy(up, 0.0)
                procs.append(proc)
            rule = LatencyRule(pairs=pairs)

            def side(url):
                return Side(connect(url), info.fingerprint, list(info.labels), info.version, answers)

            # The typical request as the timing sees it: a pilot timing of A against B, A's median.
            pilot = measure(side(urls["a"]), side(urls["b"]), images, batch_size=32, rule=rule)
            typical = pilot["baseline"]["p50_ms"] / 1000
            delay = slower * typical
            proc, urls["b_slow"] = _proxy(b, delay)
            procs.append(proc)

            out = {"same": [], "slower": []}
            for i in range(repeats):
                for cond, cand in (("same", "b"), ("slower", "b_slow")) if i % 2 == 0 else (
                        ("slower", "b_slow"), ("same", "b")):
                    lat = measure(side(urls["a"]), side(urls[cand]), images, batch_size=32, rule=rule)
                    out[cond].append({k: lat[k] for k in ("flagged", "p95_ratio", "p95_change_ms", "p95_change_ci95",
                                                          "p_value", "paired_ratio_median")}
                                     | {"p95_base_ms": lat["baseline"]["p95_ms"]})
                print(f"repeat {i + 1}/{repeats}: " + ", ".join(
                    f"{c} x{out[c][-1]['p95_ratio']:.2f} (paired x{out[c][-1]['paired_ratio_median']:.2f}, "
                    f"p {out[c][-1]['p_value']:.2g}){' FLAGGED' if out[c][-1]['flagged'] else ''}" for c in out),
                    flush=True)
    finally:
        for p in procs + burners:
            p.kill()
            p.wait()
    summary = {c: {"repeats": len(v), "flagged": sum(x["flagged"] for x in v),
                   "p95_ratio_median": float(np.median([x["p95_ratio"] for x in v])),
                   "p95_ratio_min": min(x["p95_ratio"] for x in v), "p95_ratio_max": max(x["p95_ratio"] for x in v),
                   "p95_base_ms_median": float(np.median([x["p95_base_ms"] for x in v]))} for c, v in out.items()}
    for c, v in out.items():
        summary[c]["paired_ratio_median"] = float(np.median([x["paired_ratio_median"] for x in v]))
        summary[c]["paired_ratio_min"] = min(x["paired_ratio_median"] for x in v)
        summary[c]["paired_ratio_max"] = max(x["paired_ratio_median"] for x in v)
    return {"busy_processes": busy, "pairs": pairs, "slower": slower, "added_delay_ms": delay * 1000,
            "rule": rule.describe(), "summary": summary, "runs": out}


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes run beside it")
    ap.add_argument("--pairs", type=int, default=50)
    ap.add_argument("--slower", type=float, default=0.3, help="the slow proxy's hold, times the typical request")
    ap.add_argument("--proxy", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.proxy:
        proxy_main(args.proxy, args.port, args.delay)
        return None
    result = run(args.repeats, args.busy, args.pairs, args.slower)
    for cond, s in result["summary"].items():
        print(f"{cond}: flagged {s['flagged']} of {s['repeats']}; paired ratio median {s['paired_ratio_median']:.2f} "
              f"(min {s['paired_ratio_min']:.2f}, max {s['paired_ratio_max']:.2f}); "
              f"p95 ratio median {s['p95_ratio_median']:.2f} "
              f"(min {s['p95_ratio_min']:.2f}, max {s['p95_ratio_max']:.2f}); baseline p95 "
              f"{s['p95_base_ms_median']:.1f} ms")
    Path(ROOT / "bench" / "latency_rule.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
