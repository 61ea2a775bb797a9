"""Processes that start at once on a fresh SQLite file all succeed: the first migration is
serialized across processes (a lock file beside the database, taken before the revision is
read again), as PostgreSQL's advisory lock does for shards."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import func, select

from collector.storage import store
from collector.storage.schema import models
from helpers import engine_for, serve_model

ROUNDS = int(os.environ.get("CONCURRENT_START_ROUNDS", "5"))


def test_four_collectors_at_once_on_a_fresh_file(color_model, test_data, tmp_path):
    failures = []
    with serve_model(color_model) as srv:
        for r in range(ROUNDS):
            db = f"sqlite:///{tmp_path / f'race{r}.db'}"
            procs = [subprocess.Popen([sys.executable, "-m", "collector.cli", "--db", db, "collect", "--test-data",
                                       str(test_data), "--hash-cache", "off", srv.url],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for _ in range(4)]
            for p in procs:
                out, _ = p.communicate(timeout=600)
                if p.returncode != 0:
                    failures.append(f"round {r}: exit {p.returncode}: {out[-600:]}")
            engine = engine_for(db)
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(models)).scalar_one() == 1
            assert store.current_revision(engine) == store.head_revision()
            engine.dispose()
    assert not failures, "\n".join(failures)
