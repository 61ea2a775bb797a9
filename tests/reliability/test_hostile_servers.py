"""Model servers as attackers: each misbehaviour, next to an honest bystander in one `collect`.

Each case runs the real CLI in its own process, on SQLite and on PostgreSQL, and checks:
the bystander is evaluated in full; nothing of the bad server is stored under any other
model; the bad model's run has the right status and the exit code is 1; the output names the
URL and the reason, with no traceback; and time, memory and database growth stay bounded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile_server import BEHAVIOURS, FP, METADATA_BEHAVIOURS, THIEF, HostileServer
from sqlalchemy import func, select

from collector.storage import store
from collector.storage.schema import models, predictions, runs
from devtools.pg import scratch_database
from helpers import COLORS, PG_ADMIN_URL, color_png

DEADLINE_S = 3.0  # --timeout of every case
RETRIES = 1
# Bounds, stated: a case may take the deadline once per attempt plus start-up and the
# bystander's own evaluation (generous, for a busy machine); the collector's peak RSS stays
# under MAX_RSS_MB (a 100 MB answer or a 200 MB gzip bomb must never be held); the database
# holds at most MAX_STORED_BYTES for the bad server (its model row and failed run, if its
# metadata was valid), and a SQLite file stays under 8 MB.
MAX_WALL_S = 60 + (RETRIES + 1) * DEADLINE_S
MAX_RSS_MB = 300
MAX_STORED_BYTES = 16 * 1024
PARALLEL_CASES = 4  # cases run side by side (each with its own database and servers)



def stored_bytes(conn, model_ids: list[int]) -> int:
    """Bytes the database holds for these models: metadata, runs, failures and predictions."""
    import json

    from collector.storage.schema import failures

    ids = model_ids or [-1]
    total = sum(len(json.dumps(m)) + len(json.dumps(lab)) for m, lab in
                conn.execute(select(models.c.metadata, models.c.labels).where(models.c.id.in_(ids))))
    run_ids = conn.execute(select(runs.c.id).where(runs.c.model_id.in_(ids))).scalars().all() or [-1]
    total += sum(len(e or "") + len(u) for e, u in conn.execute(select(runs.c.error, runs.c.url)
                                                                .where(runs.c.id.in_(run_ids))))
    total += sum(len(e) for e in conn.execute(select(failures.c.error).where(failures.c.run_id.in_(run_ids)))
                 .scalars())
    total += sum(len(json.dumps(s)) for s in conn.execute(select(predictions.c.scores)
                                                          .where(predictions.c.model_id.in_(ids))).scalars())
    return total


# The collector, reporting its own peak RSS at exit (VmHWM of its own address space: a fork
# from this big test process would otherwise count the parent's pages).
LAUNCH = """
import atexit, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("\\nPEAK_RSS_KB " + line.split()[1] + "\\n")
atexit.register(_peak)
from collector.cli import main
main(prog_name="data-collector")
"""


def run_collect(db_url: str, data: Path, urls: list[str], *, extra: tuple = ()) -> tuple[int, str, float, float]:
    """(exit code, stdout+stderr, wall seconds, peak RSS MB) of `data-collector collect`."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", LAUNCH, "--db", db_url, "collect", "--test-data", str(data),
                        "--timeout", str(DEADLINE_S), "--retries", str(RETRIES), "--batch-size", "8", *extra, *urls],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600)
    wall = time.monotonic() - t0
    peak = re.search(r"^PEAK_RSS_KB (\d+)$", r.stderr, re.M)
    assert peak, r.stderr[-2000:]
    return r.returncode, r.stdout + r.stderr.replace(peak.group(0), ""), wall, int(peak.group(1)) / 1024


def _bystander_fp(bystander: str) -> str:
    import requests

    return requests.get(bystander + "/metadata", timeout=60).json()["fingerprint"]


def check_case(behaviour: str, db_url: str, bystander: str, by_fp: str, data: Path) -> list[str]:
    """Run one hostile server next to the bystander; return what went wrong (empty: all held)."""
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    if behaviour.startswith("reuses"):  # the fingerprint thief must meet a stored model: an earlier run
        assert run_collect(db_url, data, [bystander])[0] == 0
    with HostileServer(behaviour, stored_fingerprint=by_fp) as bad:
        urls = [bystander, bad] if behaviour.startswith("reuses") else [bad, bystander]
        code, output, wall, rss = run_collect(db_url, data, urls)
    tail = output[-1500:]
    expect(code == 1, f"exit code {code}: {tail}")
    expect("Traceback" not in output, f"a traceback: {tail}")
    expect(f"error: {bad}: " in output and BEHAVIOURS[behaviour] in output,
           f"no line naming the URL and {BEHAVIOURS[behaviour]!r}: {tail}")
    expect(output.count(f"error: {bad}") == 1, f"the error is not said exactly once: {tail}")
    expect(wall < MAX_WALL_S, f"took {wall:.1f} s (bound {MAX_WALL_S:g} s)")
    expect(rss < MAX_RSS_MB, f"collector peak RSS {rss:.0f} MB (bound {MAX_RSS_MB} MB)")

    engine = store.make_engine(db_url)
    with engine.connect() as c:
        by = c.execute(select(models.c.id, models.c.labels).where(models.c.fingerprint == by_fp)).one()
        expect(list(by.labels) == ["red", "green", "blue"], f"bystander labels now {by.labels}")
        n_by = c.execute(select(func.count()).select_from(predictions)
                         .where(predictions.c.model_id == by.id)).scalar_one()
        expect(n_by == 21, f"bystander has {n_by} predictions, not 21")
        by_runs = set(c.execute(select(runs.c.status).where(runs.c.model_id == by.id)).scalars())
        expect(by_runs == {"completed"}, f"bystander runs {by_runs}")
        fps = set(c.execute(select(models.c.fingerprint)).scalars())
        expect(fps <= {by_fp, FP}, f"a third identity was stored: {fps}")
        bad_ids = c.execute(select(models.c.id).where(models.c.fingerprint == FP)).scalars().all()
        bad_preds = c.execute(select(func.count()).select_from(predictions)
                              .where(predictions.c.model_id.in_(bad_ids or [-1]))).scalar_one()
        bad_runs = c.execute(select(runs.c.status).where(runs.c.model_id.in_(bad_ids or [-1]))).scalars().all()
        running = c.execute(select(func.count()).select_from(runs).where(runs.c.status == "running")).scalar_one()
        expect(running == 0, f"{running} run(s) left running")
        growth = stored_bytes(c, bad_ids)
    engine.dispose()
    if behaviour in METADATA_BEHAVIOURS:
        expect(bad_ids == [] and bad_runs == [], "a server that describes itself badly was stored")
    else:
        expect(bad_preds == 0, f"{bad_preds} predictions of the bad server were stored")
        expect(bad_runs == ["failed"], f"bad server's runs: {bad_runs}")
    expect(growth <= MAX_STORED_BYTES, f"{growth} bytes stored for the bad server (bound {MAX_STORED_BYTES})")
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        expect(size < 8 * 1024 * 1024, f"SQLite file of {size} bytes")
    return problems


@contextmanager
def fresh_database(backend: str, tmp: Path, name: str):
    """A new, empty database for one case (a file, or a PostgreSQL database dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / (name + '.db')}"
        return
    with scratch_database(PG_ADMIN_URL, prefix="pct_hostile") as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_hostile_server_fails_alone(backend, request, bystander, data, tmp_path):
    """Every misbehaviour in BEHAVIOURS, each in its own collect and database, a few at a time."""
    if backend == "postgres" and not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    by_fp = _bystander_fp(bystander)

    def one(i_behaviour):
        i, behaviour = i_behaviour
        with fresh_database(backend, tmp_path, f"case{i}") as db_url:
            return behaviour, check_case(behaviour, db_url, bystander, by_fp, data)

    with ThreadPoolExecutor(PARALLEL_CASES) as pool:
        results = dict(pool.map(one, enumerate(sorted(BEHAVIOURS))))
    failed = {b: p for b, p in results.items() if p}
    assert len(results) == len(BEHAVIOURS) >= 25
    assert not failed, "\n".join(f"{b}: {'; '.join(p)}" for b, p in failed.items())


def test_a_fingerprint_thief_is_refused_in_a_later_run(tmp_path, bystander, data):
    """The model is already stored (an earlier run); the thief comes alone and stores nothing."""
    db = f"sqlite:///{tmp_path / 'later.db'}"
    assert run_collect(db, data, [bystander])[0] == 0
    with HostileServer("reuses a stored fingerprint with other labels",
                       stored_fingerprint=_bystander_fp(bystander)) as bad:
        code, output, _, _ = run_collect(db, data, [bad])
    assert code == 1 and "other labels: refused, nothing stored" in output and f"error: {bad}: " in output
    engine = store.make_engine(db)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(runs)).scalar_one() == 1
        assert [list(x) for x in c.execute(select(models.c.labels)).scalars()] == [["red", "green", "blue"]]
        assert c.execute(select(func.count()).select_from(models)).scalar_one() == 1
    engine.dispose()


def test_a_fingerprint_thief_with_the_same_labels_is_caught_by_its_answers(tmp_path, bystander, data):
    """The stored model's name, labels and fingerprint, well-formed answers: the answers differ.

    A new test image gives the thief something to add under the stolen identity (the harmful
    case); a rerun with nothing new is refused the same way. The real model then passes the
    same check and adds the new image.
    """
    import shutil

    local = tmp_path / "td"
    shutil.copytree(data, local)
    db = f"sqlite:///{tmp_path / 'thief.db'}"
    assert run_collect(db, local, [bystander])[0] == 0
    engine = store.make_engine(db)

    def counts():
        with engine.connect() as c:
            return (c.execute(select(func.count()).select_from(predictions)).scalar_one(),
                    c.execute(select(func.count()).select_from(runs)).scalar_one())

    before = counts()
    (local / "green" / "late.png").write_bytes(color_png(COLORS["green"], seed=4242))
    for attempt in range(2):
        with HostileServer(THIEF, stored_fingerprint=_bystander_fp(bystander)) as bad:
            code, output, _, _ = run_collect(db, local, [bad])
        assert code == 1 and f"error: {bad}: " in output, output
        assert "differently from its stored answers of fingerprint" in output, output
        assert "its answers were kept apart, none counted" in output and "now conflicting" in output
        # Not one prediction counted; its attempt is a failed run of the model, with the evidence.
        assert counts() == (before[0], before[1] + attempt + 1)
    with engine.connect() as c:
        (m,) = store.list_models(c)
    assert m.conflicts > 0
    code, output, _, _ = run_collect(db, local, [bystander])
    assert code == 0, output
    assert counts() == (before[0] + 1, before[1] + 3)  # the real model passes the checks and adds the image
    engine.dispose()
