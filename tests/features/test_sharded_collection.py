"""Sharded collection: N collectors at once over one database, killed and rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.testset.images import in_shard, scan
from helpers import engine_for, run_cli, start_server_process


class _Collector(subprocess.Popen):
    """`data-collector collect` as its own process; its output goes to a file (no pipe to fill)."""

    def output(self) -> str:
        return Path(self.log).read_text()[-3000:]


def _collector(db: str, url: str, data: Path, tmp: Path, *args: str, env: dict | None = None) -> _Collector:
    exe = str(Path(sys.executable).parent / "data-collector")
    log = tmp / f"collector-{time.monotonic_ns()}.log"
    with open(log, "w") as f:
        p = _Collector([exe, "--db", db, "collect", "--test-data", str(data), "--batch-size", "4",
                        "--hash-cache", str(tmp / "hashes.sqlite3"), *args, url],
                       env={**os.environ, **(env or {})}, stdout=f, stderr=subprocess.STDOUT)
    p.log = log
    return p


def _stored(db: str) -> tuple[list[dict], set[str]]:
    from sqlalchemy import text

    engine = engine_for(db)
    with engine.connect() as conn:
        shas = {r[0] for r in conn.execute(text(
            "SELECT i.sha256 FROM predictions p JOIN images i ON i.id = p.image_id"))}
        n = conn.execute(text("SELECT count(*) FROM predictions")).scalar_one()
    assert n == len(shas)  # no image stored twice for the one model
    r = run_cli("--db", db, "models", "--json")
    return json.loads(r.output), shas


@pytest.mark.postgres
def test_four_shards_at_once_store_exactly_one_run(pg_url, color_model, big_data, tmp_path):
    proc, (url,) = start_server_process([color_model], tmp_path)
    try:
        single = f"sqlite:///{tmp_path / 'single.db'}"
        p = _collector(single, url, big_data, tmp_path)
        assert p.wait(600) == 0, p.output()
        _, want = _stored(single)
        shards = [_collector(pg_url, url, big_data, tmp_path, "--shard", f"{i}/4") for i in range(4)]
        for s in shards:
            assert s.wait(600) == 0, s.output()
        models, got = _stored(pg_url)
        assert got == want and len(models) == 1 and models[0]["predictions"] == len(want)
        r = run_cli("--db", pg_url, "report")
        assert r.exit_code == 0 and r.output.count("colors v1") == 1
    finally:
        proc.kill()


@pytest.mark.postgres
def test_a_shard_killed_mid_run_is_rerun_to_the_same_rows(pg_url, color_model, big_data, tmp_path):
    """Kubernetes restarts a failed index: its rerun adds what it lacked, nothing twice.

    One image per request and a server that takes a second per request keep the victim's share
    (~46 images) going for ~20 s, however busy the machine: it is killed once it stored some."""
    proc, (url,) = start_server_process([color_model], tmp_path, predict_delay=1.0)
    try:
        env = {"JOB_COMPLETION_INDEX": "1"}
        victim = _collector(pg_url, url, big_data, tmp_path, "--shards", "2", "--batch-size", "1", env=env)
        others = _collector(pg_url, url, big_data, tmp_path, "--shards", "2", env={"JOB_COMPLETION_INDEX": "0"})
        deadline = time.monotonic() + 600
        mine = set()
        while time.monotonic() < deadline and victim.poll() is None:
            mine = {s for s in (_stored(pg_url)[1] if _has_models(pg_url) else set()) if in_shard(s, (1, 2))}
            if mine:
                break
            time.sleep(0.2)
        assert victim.poll() is None and mine, "the victim finished (or stored nothing) before it could be killed"
        victim.kill()
        victim.wait(60)
        assert others.wait(600) == 0, others.output()
        _, partial = _stored(pg_url)
        rerun = _collector(pg_url, url, big_data, tmp_path, "--shards", "2", env=env)
        assert rerun.wait(600) == 0, rerun.output()
        _, got = _stored(pg_url)
        assert partial < got
        assert got == {i.sha256 for i in scan(big_data)}  # every image once: the two shards are the whole set
    finally:
        proc.kill()


def _has_models(db: str) -> bool:
    from sqlalchemy import inspect

    return "predictions" in inspect(engine_for(db)).get_table_names()


def test_shard_options_are_checked(tmp_path, test_data, monkeypatch):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    r = run_cli("--db", db, "collect", "--test-data", str(test_data), "--shard", "4/4", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "need 0 <= I < N" in r.output
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    r = run_cli("--db", db, "collect", "--test-data", str(test_data), "--shards", "3", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "JOB_COMPLETION_INDEX" in r.output
    r = run_cli("--db", db, "collect", "--test-data", str(test_data), "--shards", "3", "--shard", "0/3",
                "http://127.0.0.1:9")
    assert r.exit_code == 2 and "not both" in r.output


def test_a_test_set_streams_by_in_chunks_to_the_rows_of_one_pass(db_url, color_model, big_data, tmp_path,
                                                                  monkeypatch):
    """Chunks of 7 images (and a copy of one image in a later chunk) store what one chunk stores."""
    from sqlalchemy import text

    from collector import early as early_mod
    from collector.collect import collect
    from helpers import serve_model

    (big_data / "red" / "zz-copy.png").write_bytes((big_data / "red" / "red-00.png").read_bytes())
    seen = {}

    def run(url: str, db: str, chunk: int) -> tuple[list, set[str], tuple]:
        monkeypatch.setattr(early_mod, "CHUNK_IMAGES", chunk)
        engine = engine_for(db)
        steps: list[tuple[int, int]] = []
        (r,) = collect([url], engine=engine, test_dir=big_data, say=lambda m: None,
                       progress=lambda key, advance, total: steps.append((advance, total)))
        with engine.connect() as conn:
            shas = {row[0] for row in conn.execute(text(
                "SELECT i.sha256 FROM predictions p JOIN images i ON i.id = p.image_id"))}
            n = conn.execute(text("SELECT count(*) FROM predictions")).scalar_one()
            run_row = tuple(conn.execute(text("SELECT n_planned, n_sent, test_set_hash, status FROM runs")).one())
        engine.dispose()
        assert n == len(shas)
        seen[chunk] = steps
        return r, shas, run_row

    with serve_model(color_model) as srv:
        one, want, one_run = run(srv.url, f"sqlite:///{tmp_path / 'one.db'}", 10_000)
        many, got, many_run = run(srv.url, db_url, 7)
        again = collect([srv.url], engine=engine_for(db_url), test_dir=big_data, say=lambda m: None)[0]
    distinct = len({i.sha256 for i in scan(big_data)})
    assert one.status == many.status == "completed" and got == want and len(got) == distinct
    assert one_run[2] == many_run[2] and len(many_run[2]) == 64  # the test set's hash, whatever the chunking
    assert many_run[0] >= distinct and many_run[3] == "completed"
    totals = [t for _, t in seen[7]]
    assert totals == sorted(totals) and len(set(totals)) > 3 and totals[-1] == many_run[0]  # grows as planned
    assert sum(a for a, _ in seen[7]) == totals[-1]
    assert again.status == "skipped" and again.n_sent == 0
