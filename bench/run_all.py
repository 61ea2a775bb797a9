"""`make bench`: every benchmark in one run; prints the ratios and writes bench/results.json.

    python -m bench.run_all [--smoke] [--out bench/results.json]

Every figure is a ratio to a baseline measured in the same run (this machine is noisy).
--smoke runs the smallest sizes, in well under a minute of benchmarking, as a check that the
benchmarks still work.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    bench_architectures,
    bench_collector,
    bench_limit,
    bench_protocols,
    bench_runtime,
    bench_scale,
    bench_server,
    bench_stream,
    bench_web,
)
from bench.common import ROOT, machine


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="smallest sizes: checks that the benchmarks run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args(argv)
    small = args.smoke
    results = {
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {**machine(), "python": platform.python_version()},
        "smoke": small,
    }
    print("== architectures")
    results["architectures"] = bench_architectures.main(["--repeats", "2" if small else "10"])
    print("== model server")
    results["server"] = bench_server.main(["--rounds", "1" if small else "5",
                                           "--latency-requests", "20" if small else "200"])
    print("== model-server runtime: LiteRT vs Keras")
    results["runtime"] = bench_runtime.main(["--predictions", "200" if small else "1000"])
    print("== protocols: the collector over OIP v2 against the native API")
    results["protocols"] = bench_protocols.main(["--images", "200" if small else "2000",
                                                 "--repeats", "1" if small else "3"])
    print("== collector")
    results["collector"] = bench_collector.main(["--images", "150" if small else "1000",
                                                 "--rows", "2000" if small else "20000"])
    print("== the collector at the runtime's limit: end to end / in-process, start-up, the sweep")
    results["limit"] = bench_limit.main(["--images", "200", "--repeats", "1", "--no-sweep", "--samples", "3"] if small
                                        else [])
    print("== scale")
    results["scale"] = bench_scale.main(["--sizes", "100", "200"] if small else [])
    print("== streaming: 10k -> 200k synthetic images")
    results["stream"] = bench_stream.main(["--sizes", "500", "2000"] if small else [])
    print("== web view: 50 models x 2,000 images")
    results["web"] = bench_web.main(["--models", "4", "--images", "200", "--requests", "3"] if small else [])
    print("== scale targets" + (" (smoke sizes: far too small for these targets to mean anything)" if small else ""))
    for line in scale_targets(results):
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


def scale_targets(results: dict) -> list[str]:
    """The scaling issue's four ratios against their targets, one line each."""
    st, co = results["stream"], results["collector"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    return [
        f"flat memory: collector peak RSS {st['rss_growth_mb']:+.0f} MB from {st['sizes'][0]['images']} to "
        f"{st['sizes'][-1]['images']} images (target <= +50 MB): {verdict(st['rss_growth_mb'] <= 50)}",
        f"flat throughput: net img/s largest / smallest {st['net_img_s_ratio']:.2f} (target 0.85-1.15): "
        f"{verdict(0.85 <= st['net_img_s_ratio'] <= 1.15)}",
        f"no rehashing: rerun with nothing to send {st['rerun_ratio']:.1%} of the first run (target <= 10%): "
        f"{verdict(st['rerun_ratio'] <= 0.10)}",
        f"bulk inserts: PostgreSQL rows/s ours / COPY {co['ratio_pg_over_copy']:.2f} (target >= 0.6): "
        f"{verdict(co['ratio_pg_over_copy'] >= 0.6)}",
    ]


if __name__ == "__main__":
    main()
