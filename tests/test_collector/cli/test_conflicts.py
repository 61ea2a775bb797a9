"""`data-collector conflicts` and `conflicts resolve`: the evidence shown (as data, never markup),
exit 1 while a conflict is open, and a resolution that says which answers to keep."""

from __future__ import annotations

import json

from sqlalchemy import select

from collector.storage import store
from collector.storage.schema import images, runs
from helpers import engine_for, run_cli, store_model

FP = "c0ffee" + "0" * 58
OTHER = "beef" + "1" * 60


def _conflicting_db(tmp_path) -> str:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = engine_for(db)
    answers = [(f"{i:02d}".ljust(64, "a"), "pikachu", "photo", "pikachu", {"pikachu": 0.9, "[b]x": 0.1})
               for i in range(3)]
    model_id = store_model(engine, name="ml_original", version="2", fingerprint=FP,
                           labels=["pikachu", "[b]x"], answers=answers)
    store_model(engine, name="ml_other", version="1", fingerprint=OTHER, labels=["pikachu"],
                answers=[("ff".ljust(64, "b"), "pikachu", "photo", "pikachu")])
    with engine.begin() as conn:
        image_id = conn.execute(select(images.c.id).where(images.c.sha256 == answers[0][0])).scalar_one()
        run_id = conn.execute(select(runs.c.id).where(runs.c.model_id == model_id)).scalar_one()
        store.record_conflicts(conn, rows=[{
            "model_id": model_id, "url": "http://impostor:8080", "run_id": run_id, "image_id": image_id,
            "other": "http://model:8080", "expected": {"label": "pikachu", "scores": {"pikachu": 0.9}},
            "answered": {"label": "[b]x", "scores": {"[b]x": 0.8}}}])
    return db


def test_an_open_conflict_is_listed_with_its_evidence_and_exits_1(tmp_path):
    db = _conflicting_db(tmp_path)
    r = run_cli("--db", db, "conflicts")
    assert r.exit_code == 1, r.output
    assert FP[:12] in r.output and "[b]x" in r.output, r.output  # a label is shown literally, not as markup
    (row,) = json.loads(run_cli("--db", db, "conflicts", "--json").output)
    assert (row["fingerprint"], row["url"], row["answered"]["label"]) == (FP, "http://impostor:8080", "[b]x")
    r = run_cli("--db", db, "conflicts", "--model", "ml_other@1")
    assert r.exit_code == 0 and "no conflicting fingerprint" in r.output
    assert run_cli("--db", db, "conflicts", "--model", "nosuch@1").exit_code == 2


def test_resolving_says_which_answers_to_keep_and_closes_only_that_model(tmp_path):
    db = _conflicting_db(tmp_path)
    r = run_cli("--db", db, "conflicts", "resolve", "fp:" + FP)
    assert r.exit_code == 2 and "--keep-stored or --forget" in r.output
    r = run_cli("--db", db, "conflicts", "resolve", "ml_other@1", "--keep-stored")
    assert r.exit_code == 2 and "is not conflicting" in r.output
    r = run_cli("--db", db, "conflicts", "resolve", "fp:" + FP, "--keep-stored")
    assert r.exit_code == 0 and "1 evidence row(s) closed, 0 answer(s) dropped" in r.output, r.output
    assert run_cli("--db", db, "conflicts").exit_code == 0
    with engine_for(db).connect() as conn:  # the stored answers are kept
        (model,) = [m for m in store.list_models(conn) if m.fingerprint == FP]
        assert len(store.load_rows(conn, model_id=model.id)) == 3
