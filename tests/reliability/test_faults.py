"""Crash and fault injection: a collector killed at random points, servers that die or hang,
a database that goes away mid-run. Each must end in a clear error or a clean resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from collector.storage import store
from collector.storage.schema import models, predictions, runs
from helpers import make_test_data, start_server_process, write_color_model

KILL_POINTS = int(os.environ.get("RELIABILITY_KILL_POINTS", "5"))


def engine_for(url):
    e = store.make_engine(url)
    store.ensure_schema(e)
    return e


def n_predictions(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(predictions)).scalar_one()


def all_rows(engine) -> list[tuple]:
    q = (select(models.c.fingerprint, predictions.c.image_id, predictions.c.predicted_label)
         .select_from(predictions.join(models, models.c.id == predictions.c.model_id)))
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(q))


def collector_cmd(db_url: str, test_data: Path, urls: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "collector.cli", "--db", db_url, "collect", "--test-data", str(test_data),
            "--batch-size", "3", *extra, *urls]


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("three")
    return [write_color_model(base / "a", ["red", "green", "blue"], name="a"),
            write_color_model(base / "b", ["red", "green"], name="b"),
            write_color_model(base / "c", ["red", "green", "blue"], name="c", swap=("green", "blue"))]


def test_sigkill_at_random_points_of_a_three_model_run(db_url, tmp_path, three_models):
    data = make_test_data(tmp_path / "td", per_class=25)
    server, urls = start_server_process(three_models, tmp_path)
    try:
        ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
        assert subprocess.run(collector_cmd(ref_url, data, urls), capture_output=True, timeout=300).returncode == 0
        reference = all_rows(engine_for(ref_url))
        total = len(reference)
        engine = engine_for(db_url)
        rng = random.Random(1234)
        for point in sorted(rng.sample(range(3, total - 3), KILL_POINTS)):
            proc = subprocess.Popen(collector_cmd(db_url, data, urls), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.time() + 120
            while n_predictions(engine) < point and time.time() < deadline and proc.poll() is None:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            rows = all_rows(engine)
            assert len(rows) == len(set(rows)), "duplicated rows after a kill"
        done = subprocess.run(collector_cmd(db_url, data, urls), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert all_rows(engine) == reference
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_server_that_dies_or_hangs_mid_run(fault, tmp_path, color_model):
    data = make_test_data(tmp_path / "td", per_class=30)
    server, (url,) = start_server_process([color_model], tmp_path, predict_delay=0.5)  # still running at the fault
    db_url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = engine_for(db_url)
    try:
        proc = subprocess.Popen(collector_cmd(db_url, data, [url], "--timeout", "1.5", "--retries", "2",
                                              "--max-in-flight", "1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while n_predictions(engine) < 9 and time.time() < deadline:
            time.sleep(0.005)
        server.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        t = time.time()
        out, err = proc.communicate(timeout=120)
        gave_up_after = time.time() - t
        assert proc.returncode == 1
        assert url in err and ("cannot connect" in err or "deadline" in err) and "Traceback" not in err
        assert gave_up_after < 30, "retries and timeouts must be bounded"
        with engine.connect() as c:
            assert c.execute(select(runs.c.status)).scalars().all() == ["incomplete"]
        partial = n_predictions(engine)
        assert 9 <= partial < 93
    finally:
        if fault == "hung":
            server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait()
    server, (url2,) = start_server_process([color_model], tmp_path)
    try:
        done = subprocess.run(collector_cmd(db_url, data, [url2]), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert n_predictions(engine) == 93  # 90 labelled + 3 probes, nothing twice
    finally:
        server.kill()
        server.wait()


def test_database_that_goes_away_mid_run(pg_url, tmp_path, color_model):
    """Connections are cut and refused mid-run: clear error, whole batches only, a rerun completes."""
    data = make_test_data(tmp_path / "td", per_class=40)
    engine_for(pg_url)  # migrated by the owner
    role = f"pct_fault_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        c.execute(text(f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{role}"'))
        c.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    role_url = pg_url.replace("postgres@", f"{role}@")
    engine = engine_for(pg_url)
    server, (url,) = start_server_process([color_model], tmp_path, predict_delay=0.5)  # still running at the fault
    try:
        proc = subprocess.Popen(collector_cmd(role_url, data, [url], "--max-in-flight", "1", "--no-migrate"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while n_predictions(engine) < 12 and time.time() < deadline:
            time.sleep(0.005)
        with admin.connect() as c:  # the database "goes away" for this role
            c.execute(text(f'ALTER ROLE "{role}" NOLOGIN'))
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role})
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (out, err)
        assert "database" in err and "Traceback" not in err
        stored = n_predictions(engine)
        assert stored > 0 and stored % 3 == 0, "a half-written batch"
        with admin.connect() as c:
            c.execute(text(f'ALTER ROLE "{role}" LOGIN'))
        done = subprocess.run(collector_cmd(role_url, data, [url], "--no-migrate"), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert n_predictions(engine) == 123
    finally:
        server.kill()
        server.wait()
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"'))
            c.execute(text(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"'))
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role})
            c.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
