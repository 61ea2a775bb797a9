"""Storage: schema, migrations, views and the data-access functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from collector.collect import collect
from collector.storage import store
from collector.storage.schema import images, runs
from collector.vocab import RunStatus
from helpers import engine_for, serve_model, store_model


def test_views_answer_for_psql_users(db_url, color_model, test_data):
    from sqlalchemy import text

    engine = engine_for(db_url)
    with serve_model(color_model) as srv:
        collect([srv.url], engine=engine, test_dir=test_data, say=lambda m: None)
    with engine.connect() as c:
        rows = c.execute(text("SELECT label, n, correct, accuracy FROM v_class_accuracy ORDER BY label")).all()
        conf = c.execute(text("SELECT SUM(n) FROM v_confusion")).scalar_one()
    assert [(r[0], r[1], r[2], float(r[3])) for r in rows] == [
        ("blue", 6, 6, 1.0), ("green", 6, 6, 1.0), ("red", 6, 6, 1.0)]
    assert conf == 21


def _answers(labels, n_per_class, wrong=0, probes=0):
    """n_per_class images per label, the first `wrong` of each answered with the next label."""
    out = []
    for li, lab in enumerate(labels):
        for i in range(n_per_class):
            pred = labels[(li + 1) % len(labels)] if i < wrong else lab
            out.append((f"{lab}-{i:04d}".ljust(64, "0"), lab, "photo", pred))
    out += [(f"probe-{i:04d}".ljust(64, "0"), "purple", "lookalike", labels[0]) for i in range(probes)]
    return out


def test_list_models_in_two_queries_with_counts_and_urls(db_url):
    from sqlalchemy import event

    engine = engine_for(db_url)
    store_model(engine, name="a", version="1", fingerprint="a" * 64, labels=["x", "y"],
                answers=_answers(["x", "y"], 3), url="http://a:1")
    store_model(engine, name="a", version="2", fingerprint="b" * 64, labels=["x", "y"],
                answers=_answers(["x", "y"], 2, probes=1), url="http://a:1")
    with engine.begin() as conn:  # the same model seen at a second URL
        store.upsert_model(conn, meta={"name": "a", "version": "1", "fingerprint": "a" * 64, "labels": ["x", "y"]},
                           url="http://a:2")
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.connect() as conn:
        ms = store.list_models(conn)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
    assert [(m.name, m.version, m.predictions, m.urls) for m in ms] == [
        ("a", "1", 6, ["http://a:1", "http://a:2"]), ("a", "2", 5, ["http://a:1"])]
    assert ms[0].title == f"a v1 ({'a' * 12})"


def test_model_accuracy_counts_labelled_images_only(db_url):
    engine = engine_for(db_url)
    model_id = store_model(engine, name="m", version="1", fingerprint="c" * 64, labels=["x", "y"],
                           answers=_answers(["x", "y"], 4, wrong=1, probes=3))
    with engine.connect() as conn:
        acc, n = store.model_accuracy(conn, model_id=model_id)
        rows = store.load_rows(conn, model_id=model_id)
    assert n == 8 and acc == 0.75  # 6 of 8 right; the 3 probes are neither right nor wrong
    assert len(rows) == 11 and sum(r["kind"] == "lookalike" for r in rows) == 3


def test_insert_predictions_is_idempotent(db_url):
    engine = engine_for(db_url)
    model_id = store_model(engine, name="m", version="1", fingerprint="d" * 64, labels=["x"],
                           answers=_answers(["x"], 2))
    with engine.begin() as conn:
        image_id = conn.execute(select(images.c.id)).scalars().first()
        run_id = store.start_run(conn, model_id=model_id, url="u", n_planned=1, collector_version="t",
                                 test_set_hash="0" * 64)
        row = {"run_id": run_id, "model_id": model_id, "image_id": image_id, "predicted_label": "x",
               "confidence": 0.5, "scores": {}, "latency_ms": 1.0}
        assert store.insert_predictions(conn, rows=[row]) == 0  # already stored by the first run
        assert store.insert_predictions(conn, rows=[]) == 0


def test_only_a_dead_process_runs_are_marked_interrupted(db_url):
    import subprocess
    import sys
    from datetime import timedelta

    from sqlalchemy import update

    engine = engine_for(db_url)
    model_id = store_model(engine, name="m", version="1", fingerprint="e" * 64, labels=["x"],
                           answers=_answers(["x"], 1))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is gone
    host = store.process_owner().split(":")[0]
    runs_by_case = {}
    with engine.begin() as conn:
        for case in ("mine", "dead pid", "stale heartbeat", "other host, fresh", "other host, no heartbeat"):
            runs_by_case[case] = store.start_run(conn, model_id=model_id, url="u", n_planned=1,
                                                 collector_version="t", test_set_hash="0" * 64)
        owners = {"dead pid": f"{host}:{dead.pid}:abc", "stale heartbeat": "elsewhere:1:abc",
                  "other host, fresh": "elsewhere:2:abc", "other host, no heartbeat": "elsewhere:3:abc"}
        for case, owner in owners.items():
            conn.execute(update(runs).where(runs.c.id == runs_by_case[case]).values(owner=owner))
        conn.execute(update(runs).where(runs.c.id == runs_by_case["stale heartbeat"])
                     .values(heartbeat_at=store.now() - timedelta(seconds=store.STALE_AFTER_S + 60)))
        conn.execute(update(runs).where(runs.c.id == runs_by_case["other host, no heartbeat"])
                     .values(heartbeat_at=None))
    with engine.begin() as conn:
        reaped = store.reap_dead_runs(conn)
    assert sorted(reaped) == sorted(runs_by_case[c] for c in ("dead pid", "stale heartbeat",
                                                             "other host, no heartbeat"))
    with engine.connect() as conn:
        status = dict(conn.execute(select(runs.c.id, runs.c.status)).all())
    assert status[runs_by_case["mine"]] == RunStatus.RUNNING  # this process is alive
    assert status[runs_by_case["other host, fresh"]] == RunStatus.RUNNING
    assert status[runs_by_case["dead pid"]] == RunStatus.INTERRUPTED
    with engine.begin() as conn:
        store.heartbeat(conn, run_ids=[runs_by_case["other host, fresh"]])
        assert store.reap_dead_runs(conn) == []


ODD = 'a, "quoted" \\ label\twith a tab\nand a newline é'  # COPY text-format escaping


def test_bulk_inserts_are_idempotent_on_both_paths(db_url):
    """PostgreSQL takes COPY from 64 rows (falling back to ON CONFLICT when a row is already
    stored); fewer rows and SQLite take the multi-row INSERT. Either way: nothing twice."""
    engine = engine_for(db_url)
    n = store.COPY_MIN_ROWS * 3
    shas = [f"{i:064x}" for i in range(n)]
    with engine.begin() as conn:
        ids, _ = store.upsert_images(conn, rows=[{"sha256": s, "path": f"x/{s[:8]}.png", "label": "x", "kind": "photo"}
                                              for s in shas])
        model_id = store.upsert_model(conn, meta={"name": "m", "version": "1", "fingerprint": "e" * 64,
                                                  "labels": ["x", "y"]}, url="http://m:1")
        run_id = store.start_run(conn, model_id=model_id, url="http://m:1", n_planned=n, collector_version="t",
                                 test_set_hash="0" * 64)

    def rows(part):
        return [{"run_id": run_id, "model_id": model_id, "image_id": ids[(s, "x")], "predicted_label": ODD,
                 "confidence": 0.75, "scores": {ODD: 0.75, "y": 0.25}, "latency_ms": 1.0} for s in part]

    with engine.begin() as conn:
        assert store.insert_predictions(conn, rows=rows(shas[:n // 2])) == n // 2  # COPY, no conflict
    with engine.begin() as conn:  # overlaps the first half: the conflicting rows are skipped
        assert store.insert_predictions(conn, rows=rows(shas[n // 3:])) == n - n // 2
    with engine.begin() as conn:
        assert store.insert_predictions(conn, rows=rows(shas[:5])) == 0  # the small path, all stored
        assert store.insert_predictions(conn, rows=rows(shas)) == 0  # the COPY path, all stored
    with engine.connect() as conn:
        stored = store.load_rows(conn, model_id=model_id)
    assert sorted(r["sha256"] for r in stored) == sorted(shas)
    assert all(r["scores"] == {ODD: 0.75, "y": 0.25} and r["confidence"] == 0.75 and r["predicted_label"] == ODD
               for r in stored)


def test_the_predictions_mark_follows_commits_not_ids(pg_url):
    """On PostgreSQL ids are taken before commit: a batch with lower ids can commit after one with
    higher ids. The web view's cache key must change when it does."""
    import hashlib

    engine = engine_for(pg_url)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]
    store_model(engine, name="m", version="1", fingerprint="1" * 64, labels=["a"],
                answers=[(shas[0], "a", "photo", "a")])
    with engine.begin() as c:
        ids, _ = store.upsert_images(c, rows=[{"sha256": s, "path": f"a/{s[:8]}.png", "label": "a", "kind": "photo"}
                                           for s in shas[1:]])
        model_id, run_id = c.execute(select(runs.c.model_id, runs.c.id)).one()

    def row(sha):
        return {"run_id": run_id, "model_id": model_id, "image_id": ids[(sha, "a")], "predicted_label": "a",
                "confidence": 1.0, "scores": {"a": 1.0}, "latency_ms": 1.0}

    def mark():
        with engine.connect() as c:
            return store.predictions_mark(c)

    with engine.connect() as first, engine.connect() as second:
        t1 = first.begin()
        store.insert_predictions(first, rows=[row(shas[1])])  # the lower id
        t2 = second.begin()
        store.insert_predictions(second, rows=[row(shas[2])])  # the higher id, committed first
        t2.commit()
        before = mark()
        t1.commit()
    assert mark() != before
    engine.dispose()
