"""What each part of the gate costs, on the shipped models.

    python -m bench.gate_parts [--repeats 3]

Serves `ml_original` v2 (trained_models/archive) and v3 with `ml-server`, then times
`data-collector gate V2_URL V3_URL` on a fresh database (and a fresh hash cache) for each
setting: answers only (the default; calibration is always computed), `--calibration-rule`,
`--latency`, `--robustness` (its first run: the perturbed copies are made, collected from both
models and judged), and `--robustness` again on that database (everything stored: judged only).
Prints the median of the repeats and its ratio to the default; writes bench/gate_parts.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, servers

PARTS = [("answers only (default)", []), ("--calibration-rule", ["--calibration-rule"]),
         ("--latency", ["--latency"]), ("--robustness, first run", ["--robustness"]),
         ("--robustness, all stored", ["--robustness"])]


def _gate(db: str, cache: str, urls: list[str], extra: list[str]) -> tuple[float, dict]:
    exe = str(Path(sys.executable).parent / "data-collector")
    t0 = time.perf_counter()
    r = subprocess.run([exe, "--db", db, "gate", "--json", "--hash-cache", cache, *extra, *urls],
                       capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"gate failed ({r.returncode}): {r.stderr[-500:]}")
    return elapsed, json.loads(r.stdout)


def run(repeats: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name, _ in PARTS}
    sent: dict[str, int] = {}
    summaries: dict[str, str] = {}
    with servers([ROOT / "trained_models" / "archive" / "ml_original_v2", "ml_original"]) as urls:
        for i in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                for k, (name, extra) in enumerate(PARTS):
                    fresh = k < 4  # the last part reuses the --robustness run's database
                    db = f"sqlite:///{tmp}/{k if fresh else 3}.db"
                    elapsed, out = _gate(db, f"{tmp}/cache-{k if fresh else 3}.sqlite3", urls, extra)
                    times[name].append(elapsed)
                    sent[name] = out["images_sent"]
                    print(f"repeat {i + 1}: {name}: {elapsed:.1f} s, {out['images_sent']} images sent, "
                          f"{out['summary']}", flush=True)
                    summaries[name] = out["summary"]
    base = statistics.median(times[PARTS[0][0]])
    return {"repeats": repeats, "parts": {name: {"median_s": statistics.median(ts), "runs_s": ts,
                                                 "ratio": statistics.median(ts) / base, "images_sent": sent[name],
                                                 "last_summary": summaries[name]}
                                          for name, ts in times.items()}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    result = run(ap.parse_args(argv).repeats)
    print("| gate | images sent | seconds (median) | ÷ default |\n|---|--:|--:|--:|")
    for name, p in result["parts"].items():
        print(f"| {name} | {p['images_sent']} | {p['median_s']:.1f} | {p['ratio']:.2f} |")
    (ROOT / "bench" / "gate_parts.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
