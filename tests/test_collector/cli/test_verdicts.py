"""The verdict commands' exit codes: 1 only for a regression, 2 when the collector cannot decide."""

from __future__ import annotations

import pytest

from helpers import run_cli


@pytest.mark.parametrize("command", ["compare", "gate"])
def test_an_outage_or_an_empty_database_is_cannot_decide_not_regressed(command, tmp_path):
    """compare and gate exit 1 only for "regressed": an unreachable or empty database is 2."""
    unreachable = "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    for db in (unreachable, empty):
        r = run_cli("--db", db, command, "colors@1", "colors@2")
        assert r.exit_code == 2, (db, r.output)
        assert "Traceback" not in r.output and r.output.strip()
