"""`data-collector collect` and `models` as a person meets them: exit codes and messages."""

from __future__ import annotations

from helpers import run_cli, serve_model


def test_cli_collect_models_and_unreachable_database(tmp_path, color_model, test_data):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with serve_model(color_model) as srv:
        r = run_cli("--db", url, "collect", "--test-data", str(test_data), srv.url)
        assert r.exit_code == 0, r.output
        assert "completed" in r.output and "1.000" in r.output
        r = run_cli("--db", url, "collect", "--test-data", str(test_data), srv.url)
        assert r.exit_code == 0 and "skipped" in r.output
    r = run_cli("--db", url, "models")
    assert "colors" in r.output and "21" in r.output
    r = run_cli("--db", "postgresql://nobody@127.0.0.1:1/x", "collect", "--test-data", str(test_data), "http://h:1")
    assert r.exit_code == 1 and "cannot reach the database" in r.output
    r = run_cli("--db", "not a url", "models")
    assert r.exit_code == 1 and "not a database URL" in r.output
    r = run_cli("--db", url, "collect", "--test-data", str(tmp_path / "nope"), "http://h:1")
    assert r.exit_code == 2 and "does not exist" in r.output
    r = run_cli("--db", url, "collect", "--test-data", str(test_data), "--retries", "0", "http://127.0.0.1:9")
    assert r.exit_code == 1 and "cannot connect" in r.output
