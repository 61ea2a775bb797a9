"""The schema: the migrations build exactly `schema.py`'s metadata, and an upgrade keeps every row."""

from __future__ import annotations

import pytest

from collector.storage import store
from helpers import engine_for


def test_migrations_match_schema_metadata(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from collector.storage.schema import metadata

    engine = engine_for(db_url)
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert diff == []


def test_upgrade_to_image_label_identity_keeps_every_row(db_url):
    """0003 -> head on a database holding predictions: SQLite rebuilds `images` (its rows keep their
    references, the views come back), PostgreSQL alters it; a relabelled image is then a new row."""
    from alembic import command
    from sqlalchemy import text

    engine = store.make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (fingerprint, name, version, labels, metadata, first_seen, last_seen) "
                          "VALUES (:fp, 'm', '1', '[\"x\", \"y\"]', '{}', :t, :t)"),
                     {"fp": "f" * 64, "t": store.now()})
        conn.execute(text("INSERT INTO images (sha256, path, label, kind) VALUES (:s, 'x/a.png', 'x', 'photo')"),
                     {"s": "a" * 64})
        conn.execute(text("INSERT INTO runs (model_id, url, started_at, status, n_planned, n_sent, n_failed, "
                          "collector_version, test_set_hash) VALUES (1, 'http://m', :t, 'completed', 1, 1, 0, "
                          "'t', '')"), {"t": store.now()})
        conn.execute(text("INSERT INTO predictions (run_id, model_id, image_id, predicted_label, confidence, scores, "
                          "latency_ms) VALUES (1, 1, 1, 'x', 0.9, '{\"x\": 0.9}', 1.0)"))
    store.upgrade(engine)
    assert store.current_revision(engine) == store.head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT label, n, correct FROM v_class_accuracy")).all() == [("x", 1, 1)]
        assert store.load_rows(conn, model_id=1)[0]["predicted_label"] == "x"
    with engine.begin() as conn:
        ids, relabelled = store.upsert_images(conn, rows=[{"sha256": "a" * 64, "path": "y/a.png", "label": "y",
                                                          "kind": "photo"}])
        assert ids[("a" * 64, "x")] == 1 and ids[("a" * 64, "y")] != 1 and [r["label"] for r in relabelled] == ["y"]
        assert conn.execute(text("SELECT count(*) FROM images")).scalar_one() == 2
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # back on


def test_the_head_revision_without_alembic_is_alembics_and_so_is_the_current_one(tmp_path):
    from alembic.runtime.migration import MigrationContext

    assert store.head_revision() == store.alembic_head()
    engine = store.make_engine(f"sqlite:///{tmp_path / 'r.db'}")

    def alembics() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    assert store.current_revision(engine) is None and alembics() is None  # nothing there yet
    store.ensure_schema(engine)
    assert store.current_revision(engine) == alembics() == store.head_revision()
    with engine.begin() as conn:  # a database stamped twice (branches): said, not guessed
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('0003')")
    with pytest.raises(store.StoreError, match="2 schema revisions"):
        store.current_revision(engine)
