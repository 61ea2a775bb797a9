"""`data-collector export mlflow`: what it needs is said before anything is sent (the export
itself, against a real MLflow tracking server, is tests/test_collector/outputs/test_mlflow_export.py)."""

from __future__ import annotations

from helpers import engine_for, run_cli, store_model


def test_the_export_says_what_is_missing_before_it_sends_anything(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    engine = engine_for(db)
    r = run_cli("--db", db, "export", "mlflow")
    assert r.exit_code == 2 and "--tracking-uri" in r.output
    nowhere = ("--tracking-uri", "http://127.0.0.1:9")  # nothing listens: any request would fail differently
    r = run_cli("--db", db, "export", "mlflow", *nowhere)
    assert r.exit_code == 2 and "no models evaluated yet" in " ".join(r.output.split()), r.output
    store_model(engine, name="colors", version="1", fingerprint="ab" * 32, labels=["red"],
                answers=[("01".ljust(64, "0"), "red", "photo", "red")])
    r = run_cli("--db", db, "export", "mlflow", "colors@7", *nowhere)
    assert r.exit_code == 2 and "has no version '7'" in r.output, r.output
