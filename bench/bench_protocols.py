"""The collector through each protocol against the native one, same server, model and images.

    python -m bench.bench_protocols [--images 2000] [--repeats 3]

One `ml-server` (ml_original) answers both its own API and the Open Inference Protocol v2. For
each mode, `data-collector collect` runs as its own process into a fresh SQLite file, on the
same synthetic test set (augmented copies of test_data/): wall time, median of the repeats,
modes interleaved so that machine noise falls on all of them alike.
Target: OIP v2 with binary tensors costs at most 10% more wall time than the native protocol.
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

from bench.common import augmented_testset, servers

MODES = {
    "native": ([], ""),
    "v2 binary, encoded images": ([], "/v2/models/ml_original"),
    "v2 JSON base64": (["--no-binary-tensors"], "/v2/models/ml_original"),
    "v2 binary, FP32 tensors": (["--input-mode", "tensor"], "/v2/models/ml_original"),
    "v2 JSON, FP32 tensors": (["--input-mode", "tensor", "--no-binary-tensors"], "/v2/models/ml_original"),
}
TARGET = 1.10


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    exe = str(Path(sys.executable).parent / "data-collector")
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp, servers(["ml_original"]) as (url,):
        data = augmented_testset(Path(tmp) / "td", args.images, seed=7)
        for _ in range(args.repeats):
            for mode, (extra, path) in MODES.items():
                db = Path(tmp) / f"{len(times[mode])}-{abs(hash(mode))}.db"
                t = time.perf_counter()
                subprocess.run([exe, "--db", f"sqlite:///{db}", "collect", "--test-data", str(data), *extra,
                                url + path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[mode].append(time.perf_counter() - t)
    med = {m: statistics.median(v) for m, v in times.items()}
    out = {"images": args.images, "repeats": args.repeats, "seconds": med,
           "ratio_over_native": {m: med[m] / med["native"] for m in MODES}, "target": TARGET}
    for m in MODES:
        print(f"{m:28s} {med[m]:6.2f} s  ({out['ratio_over_native'][m]:.2f} of native)")
    ratio = out["ratio_over_native"]["v2 binary, encoded images"]
    print(f"OIP v2 binary / native wall time {ratio:.2f} (target <= {TARGET}): {'ok' if ratio <= TARGET else 'MISSED'}")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
