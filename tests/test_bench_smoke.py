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
    # Ranges wide enough for a busy machine and tiny sizes, narrow enough that a broken measurement
    # (a zero, a swapped numerator, a baseline that did not run) fails.
    assert 1.0 < res["architectures"]["ratio_compact_over_smallervggnet"] < 50  # fewer FLOPs: faster
    server = res["server"]
    assert 0.02 < server["ratio_server_over_raw_predict"] <= 1.5  # the raw forward pass bounds the server
    assert 0.8 < server["ratio_server_over_naive"] < 100  # batched beats one image per call
    assert "batch1_latency_by_clients" in server
    col = res["collector"]
    assert 0.02 < col["ratio_collector_over_raw_predict"] <= 1.5
    assert 0.8 < col["ratio_three_over_slowest"] < 3.5  # three servers at once: at most three times one
    assert 0.05 < col["ratio_pg_over_copy"] <= 1.5  # COPY is the bound of the PostgreSQL writes
    assert 0.05 < col["ratio_sqlite_over_executemany"] <= 1.5
    assert col["collector_pg_img_s"] > 0
    assert [s["images"] for s in res["scale"]["sizes"]] == [100, 200]
    rt = res["runtime"]
    assert (rt["keras"]["backend"], rt["litert"]["backend"]) == ("keras", "litert")
    assert 0.5 < rt["ratio_litert_over_keras"] < 20
    assert rt["litert"]["worker_rss_mb"] > 0 and rt["litert"]["start_s"] > 0
    assert "throughput ratio LiteRT / Keras" in r.stdout
    ratios = res["protocols"]["ratio_over_native"]
    assert ratios["native"] == 1.0 and len(ratios) == 5
    assert all(0.2 < v < 20 for v in ratios.values()), ratios  # wall time over the native protocol's
    assert "OIP v2 binary / native wall time" in r.stdout
    assert "speed ratio compact / smallervggnet" in r.stdout
    lim = res["limit"]
    for k in ("large", "test_data"):  # the collector and the server alone, each over in-process inference
        assert 0.02 < lim[k]["collector_ratio"]["median"] <= 3, lim[k]
        assert 0.1 < lim[k]["server_ratio"]["median"] <= 5, lim[k]
        assert lim[k]["collector_ratio"]["median"] < lim[k]["server_ratio"]["median"] * 1.5  # the server bounds it
    assert 0 < lim["help_s"]["median"] < lim["first_request_s"]["median"] < 30  # collect loads more than --help
    assert lim["imports_help"][0][0] == "(all imports)" and len(lim["imports_collect"]) == 11
    assert "start-up to the first request" in r.stdout


def test_gate_study_pipeline_on_real_servers(tmp_path, big_data):
    """bench/gate_study.py's serve -> collect -> compare -> count, with tiny real models.

    Retrains that only change confidence (scale) are no regression under either rule; the
    candidate with green broken is caught by both, and no other class is flagged.
    """
    from bench.gate_study import BASELINE, collect_all, markdown, run_comparisons, study_pairs, summarize
    from helpers import write_color_model

    labels = ["red", "green", "blue"]
    folders = {BASELINE: write_color_model(tmp_path / "v1", labels, version="1"),
               "surer": write_color_model(tmp_path / "s1", labels, version="s1", scale=14.0),
               "shyer": write_color_model(tmp_path / "s2", labels, version="s2", scale=10.0),
               "broken": write_color_model(tmp_path / "b", labels, version="b", swap=("green", "blue"))}
    db = f"sqlite:///{tmp_path / 'study.db'}"
    collect_all(folders, db, test_dir=big_data)
    comparisons = run_comparisons(folders, db, study_pairs([BASELINE, "surer", "shyer"],
                                                           [(BASELINE, "broken", "green")]))
    assert len(comparisons) == 6 + 1  # 3 seed-like models, every ordered pair; one regression
    s = summarize(comparisons)
    for rule in ("scores", "mcnemar"):
        assert s[rule]["false_alarms_seed"] == 0 and s[rule]["seed_class_comparisons"] == 18
        assert s[rule]["detected"] == 1 and s[rule]["other_classes_flagged"] == 0
    shyer = next(c for c in comparisons if c["baseline"] == BASELINE and c["candidate"] == "shyer")
    assert all(x["score_change"] < 0 for x in shyer["classes"].values())  # confidence fell, no answer did
    table = markdown(comparisons, s)
    assert "green (degraded)" in table and "| scores (default) | 6 (18) | 0 | 1 of 1 | 0 |" in table


def test_gate_study_retrains_the_baselines_recipe(tmp_path):
    """Seed retrains are named by their networks' seeds, and a model trained with another number
    of networks, seed, or removal is not reused as a retrain of the recipe."""
    import json

    from bench.gate_study import RECIPES, reusable, seed_variants

    assert list(seed_variants("v3")) == ["seeds45-47", "seeds48-50", "seeds51-53"]
    assert list(seed_variants("v2")) == ["seed43", "seed44", "seed45"]
    v3_members = {s for spec in seed_variants("v3").values() for s in range(spec["seed"], spec["seed"] + 3)}
    assert v3_members.isdisjoint({42, 43, 44})  # no network shared with the shipped model

    base = json.loads((RECIPES["v3"]["dir"] / "config.json").read_text())
    out = tmp_path / "seeds45-47"
    out.mkdir()
    (out / "model.keras").write_bytes(b"")
    cfg = {**base, "seed": 45, "training": {**base["training"], "members": 3}}
    (out / "config.json").write_text(json.dumps(cfg))
    spec = {"seed": 45, "remove": []}
    assert reusable(out, spec, "v3", None, None)
    assert not reusable(out, spec, "v2", None, None)  # one network is another recipe
    assert not reusable(out, {"seed": 48, "remove": []}, "v3", None, None)
    assert not reusable(out, {"seed": 45, "remove": ["pikachu:0.5"]}, "v3", None, None)
    (out / "config.json").write_text(json.dumps({**cfg, "training_data_hash": "other"}))
    assert not reusable(out, spec, "v3", None, None)  # other data: stale


def test_gate_study_serves_each_network_of_the_shipped_model_alone(tmp_path):
    """The networks of an averaged model, split into one-network model folders: each loads and
    serves with its own identity, and their mean is the shipped model's answer."""
    import numpy as np

    from bench.gate_study import RECIPES, networks_of
    from model_server.model import load_model_folder

    shipped = RECIPES["v3"]["dir"]
    nets = networks_of("v3", shipped, tmp_path)
    assert list(nets) == ["v3-net42", "v3-net43", "v3-net44"]
    whole = load_model_folder(shipped, backend="keras")
    alone = [load_model_folder(path, backend="keras") for path in nets.values()]
    assert len({m.fingerprint for m in alone} | {whole.fingerprint}) == 4
    assert {m.version for m in alone} == {"3-net42", "3-net43", "3-net44"}
    rng = np.random.default_rng(0)
    x = rng.random((6, 96, 96, 3), dtype=np.float32)
    mean = np.mean([m.predict(x) for m in alone], axis=0)
    np.testing.assert_allclose(mean, whole.predict(x), atol=1e-5)
    assert networks_of("v3", shipped, tmp_path) == nets  # done already: reused
