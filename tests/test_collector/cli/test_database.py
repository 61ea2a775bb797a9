"""`data-collector db upgrade|destroy`: idempotent, and destroy asks first."""

from __future__ import annotations

from collector.storage import store
from helpers import run_cli


def test_db_destroy_asks_and_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert run_cli("--db", url, "db", "upgrade").exit_code == 0
    assert run_cli("--db", url, "db", "upgrade").exit_code == 0
    r = run_cli("--db", url, "db", "destroy")
    assert r.exit_code != 0 and "--yes" in r.output
    engine = store.make_engine(url)
    assert store.current_revision(engine) == store.head_revision()
    r = run_cli("--db", url, "db", "destroy", "--yes")
    assert r.exit_code == 0 and store.current_revision(engine) is None


def test_no_environment_variable_skips_the_destroy_question(tmp_path):
    db = f"sqlite:///{tmp_path / 'd.db'}"
    assert run_cli("--db", db, "db", "upgrade").exit_code == 0
    for var in ("COLLECTOR_DB_DESTROY_YES", "COLLECTOR_YES", "YES"):
        r = run_cli("--db", db, "db", "destroy", env={var: "1"})
        assert r.exit_code == 2 and "without --yes" in r.output
    assert store.current_revision(store.make_engine(db)) == store.head_revision()
