"""Credentials from files (`DATABASE_URL_FILE`, `VIEW_DATABASE_URL_FILE`, `HOOK_TOKEN_FILE`), rotated live.

The rotation tests run against a private PostgreSQL cluster that checks passwords
(peers/postgres_cluster.py): the machine's own trusts every local login, where a stale password
would pass unnoticed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text

from collector.storage import store
from collector.storage.schema import predictions
from collector.storage.secrets import SecretFile, SecretFileError, secret_or_file, token_matches
from helpers import free_port, make_test_data, run_cli, store_model
from peers import postgres_cluster

DEADLINE_S = 240


def write_like_kubernetes(folder: Path, name: str, value: str) -> Path:
    """What the kubelet does with a Secret volume: a new timestamped folder, then one symlink swap."""
    folder.mkdir(exist_ok=True)
    stamp = folder / f"..{time.monotonic_ns()}"
    stamp.mkdir()
    (stamp / name).write_text(value + "\n")
    tmp = folder / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp.name)
    os.replace(tmp, folder / "..data")
    link = folder / name
    if not link.is_symlink():
        link.symlink_to(f"..data/{name}")
    return link


def test_a_secret_file_is_read_again_when_it_changes_and_keeps_its_last_value(tmp_path):
    path = write_like_kubernetes(tmp_path / "s", "token", "first-value-123456")
    secret = SecretFile(path, "HOOK_TOKEN_FILE")
    assert secret.read() == "first-value-123456"  # the trailing newline is not part of it
    write_like_kubernetes(tmp_path / "s", "token", "second-value-123456")
    assert secret.read() == "second-value-123456"
    plain = tmp_path / "plain"
    plain.write_text("abc\n")
    edited = SecretFile(plain, "X_FILE")
    plain.write_text("abcd\n")  # rewritten in place, one byte longer
    assert edited.read() == "abcd"
    plain.unlink()  # gone mid-rotation: the last good value stays
    assert edited.read() == "abcd"
    plain.write_text("\n")  # emptied: the same
    assert edited.read() == "abcd"
    with pytest.raises(SecretFileError, match="X_FILE: cannot read .*missing"):
        SecretFile(tmp_path / "missing", "X_FILE")
    with pytest.raises(SecretFileError, match="both HOOK_TOKEN and HOOK_TOKEN_FILE"):
        secret_or_file("a", str(path), "HOOK_TOKEN")
    assert secret_or_file("a", None, "HOOK_TOKEN") == ("a", None)


def test_a_token_file_rotated_to_a_weak_value_matches_nothing(tmp_path):
    path = tmp_path / "token"
    path.write_text("s" * 20)
    secret = SecretFile(path, "HOOK_TOKEN_FILE")
    assert token_matches(secret, "s" * 20) and not token_matches(secret, "t" * 20) and not token_matches(secret, None)
    path.write_text("change-me-please-now!")
    assert not token_matches(secret, "change-me-please-now!")
    path.write_text("short")
    assert not token_matches(secret, "short")


def test_the_previous_token_counts_for_the_grace_window_then_not(tmp_path, monkeypatch):
    """A controller holding the old token finishes its rollout; after the window it is refused."""
    import collector.storage.secrets as secrets_module

    clock = [1000.0]
    monkeypatch.setattr(secrets_module.time, "monotonic", lambda: clock[0])
    path = tmp_path / "token"
    path.write_text("o" * 20)
    secret = SecretFile(path, "HOOK_TOKEN_FILE", grace_s=300)
    path.write_text("n" * 21)  # another size: seen as a change whatever the file system's clock
    assert token_matches(secret, "n" * 21) and token_matches(secret, "o" * 20)
    clock[0] += 299
    assert token_matches(secret, "o" * 20) and not token_matches(secret, "x" * 20)
    clock[0] += 2
    assert not token_matches(secret, "o" * 20) and token_matches(secret, "n" * 21)
    path.write_text("short")  # rotated to a weak value: neither the weak one nor the old one
    assert not token_matches(secret, "short") and not token_matches(secret, "n" * 21)
    no_grace = SecretFile(path, "HOOK_TOKEN_FILE")
    path.write_text("p" * 22)
    assert token_matches(no_grace, "p" * 22) and not token_matches(no_grace, "short")


def test_the_cli_reads_the_database_url_from_a_file_and_refuses_both(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    url_file = tmp_path / "url"
    url_file.write_text(db + "\n")
    r = run_cli("db", "upgrade", env={"DATABASE_URL_FILE": str(url_file)})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "db.sqlite").exists()
    both = run_cli("db", "upgrade", env={"DATABASE_URL_FILE": str(url_file), "DATABASE_URL": db})
    assert both.exit_code == 2 and "both DATABASE_URL and DATABASE_URL_FILE are set" in both.output
    missing = run_cli("db", "upgrade", env={"DATABASE_URL_FILE": str(tmp_path / "nope")})
    assert missing.exit_code == 2 and "DATABASE_URL_FILE: cannot read" in missing.output
    assert "Traceback" not in missing.output
    # --db on the command line wins over the file, as options win over the environment
    other = tmp_path / "other.sqlite"
    r = run_cli("--db", f"sqlite:///{other}", "db", "upgrade", env={"DATABASE_URL_FILE": str(url_file)})
    assert r.exit_code == 0 and other.exists()


@pytest.fixture(scope="module")
def pg():
    if not postgres_cluster.available():
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("no PostgreSQL server binaries to start a cluster that checks passwords")
    with postgres_cluster.PasswordPostgres() as cluster:
        yield cluster


def _app_role(pg, name: str) -> str:
    password = secrets.token_urlsafe(18)
    pg.admin(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\'', f'CREATE DATABASE "{name}" OWNER "{name}"')
    return password


def _rotate(pg, role: str) -> str:
    """A new password for `role`, and every open session of it cut (a pool must reconnect)."""
    new = secrets.token_urlsafe(18)
    pg.admin(f"ALTER ROLE \"{role}\" PASSWORD '{new}'",
             f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
    return new


def _answers(n: int, start: int = 0):
    return [(f"{i:064x}", "red", "photo", "red") for i in range(start, start + n)]


def test_a_rotated_password_is_used_by_the_next_connection_and_nothing_is_lost(pg, tmp_path):
    import psycopg2

    role = "rot_engine"
    old = _app_role(pg, role)
    url_file = write_like_kubernetes(tmp_path / "secret", "database-url", pg.url(role, old, role))
    engine = store.make_engine(url_file.read_text().strip(), SecretFile(url_file, "DATABASE_URL_FILE"))
    store.ensure_schema(engine)
    static = store.make_engine(pg.url(role, old, role))  # the same URL, read once: the control
    store_model(engine, name="m", version="1", fingerprint="a" * 64, labels=["red"], answers=_answers(5))

    new = _rotate(pg, role)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(pg.dsn(role, old, role), connect_timeout=30)  # the old password is dead
    write_like_kubernetes(tmp_path / "secret", "database-url", pg.url(role, new, role))

    store_model(engine, name="m", version="2", fingerprint="b" * 64, labels=["red"], answers=_answers(5, 5))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar_one() == 10
    with pytest.raises(Exception, match="password authentication failed"), static.connect() as conn:
        conn.execute(text("SELECT 1"))


def _serve(env: dict, tmp: Path, port: int) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "data-collector")
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - the process owns it
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HOOK_TOKEN", "VIEW_DATABASE_URL")}
    return subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--allowed-hosts",
                             "127.0.0.1", "--test-data", str(make_test_data(tmp / "td")), "--report-dir",
                             str(tmp / "reports")], env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _get(url: str, **kw) -> requests.Response:
    """GET, retried while nothing listens yet (to an overall deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return requests.get(url, timeout=60, **kw)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_a_running_serve_picks_up_a_rotated_password_and_token_without_a_restart(pg, tmp_path):
    role = "rot_serve"
    old = _app_role(pg, role)
    secret_dir = tmp_path / "secret"
    url_file = write_like_kubernetes(secret_dir, "database-url", pg.url(role, old, role))
    token_file = write_like_kubernetes(tmp_path / "token", "hook-token", "t" * 24)
    r = run_cli("db", "upgrade", env={"DATABASE_URL_FILE": str(url_file)})
    assert r.exit_code == 0, r.output
    engine = store.make_engine(pg.url(role, old, role))
    store_model(engine, name="m", version="1", fingerprint="c" * 64, labels=["red"], answers=_answers(4))
    engine.dispose()

    port = free_port()
    proc = _serve({"DATABASE_URL_FILE": str(url_file), "HOOK_TOKEN_FILE": str(token_file),
                   "HOOK_TOKEN_GRACE": "5"}, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        before = _get(f"{base}/api/models")
        assert before.status_code == 200, before.text
        assert _get(f"{base}/gates/verdict", headers={"Authorization": "Bearer " + "t" * 24}).status_code == 400

        new = _rotate(pg, role)  # the server's pooled connections are cut too
        write_like_kubernetes(secret_dir, "database-url", pg.url(role, new, role))
        write_like_kubernetes(tmp_path / "token", "hook-token", "u" * 24)

        after = _get(f"{base}/api/models")
        assert after.status_code == 200, after.text
        assert after.json() == before.json()  # nothing lost
        assert _get(f"{base}/gates/verdict", headers={"Authorization": "Bearer " + "u" * 24}).status_code == 400
        # The old token: accepted for HOOK_TOKEN_GRACE seconds after the change, then refused.
        deadline = time.monotonic() + 120
        while _get(f"{base}/gates/verdict", headers={"Authorization": "Bearer " + "t" * 24}).status_code != 401:
            assert time.monotonic() < deadline, "the old token was never refused"
            time.sleep(0.5)
        assert proc.poll() is None  # the same process all along
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(60)
    log = (tmp_path / "serve.log").read_text()
    assert old not in log and new not in log  # no password in the log


def test_answer_decoders_are_built_once_and_shared_by_threads():
    """msgspec works a type out on first use; two threads doing it at once crashed `collect`
    (a segfault under load). Each type's decoder is built once, under a lock, then shared."""
    import threading

    import msgspec

    from model_server.oip import decoder_for

    class Fresh(msgspec.Struct):
        label: str
        score: float

    got, start = [], threading.Barrier(8)

    def work():
        start.wait()
        got.append((decoder_for(Fresh), decoder_for(Fresh).decode(b'{"label": "a", "score": 0.5}')))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 8 and len({id(d) for d, _ in got}) == 1
    assert all(v == Fresh("a", 0.5) for _, v in got)
