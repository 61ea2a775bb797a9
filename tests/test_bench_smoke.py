"""`make bench` at its smallest sizes: the benchmarks still run and report every ratio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke(tmp_path):
    out = tmp_path / "results.json"
    r = subprocess.run([sys.executable, "-m", "bench.run_all", "--smoke", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["smoke"] is True and res["machine"]["cores"] >= 1
    assert res["architectures"]["ratio_compact_over_smallervggnet"] > 0
    for key in ("ratio_server_over_raw_predict", "ratio_server_over_naive", "batch1_latency_by_clients"):
        assert key in res["server"]
    for key in ("ratio_collector_over_raw_predict", "ratio_three_over_slowest", "ratio_pg_over_copy",
                "ratio_sqlite_over_executemany", "collector_pg_img_s"):
        assert res["collector"][key] > 0
    assert [s["images"] for s in res["scale"]["sizes"]] == [100, 200]
    assert "speed ratio compact / smallervggnet" in r.stdout
