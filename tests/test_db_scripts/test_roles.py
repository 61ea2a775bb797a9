"""setup_db.py against the real PostgreSQL: migrations as owner, a collector role that cannot destroy."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

ROOT = Path(__file__).resolve().parents[2]


def test_collector_role_cannot_drop_truncate_or_delete(pg_url, tmp_path):
    role = f"pct_collector_{uuid.uuid4().hex[:8]}"
    secret = tmp_path / "pw"
    secret.write_text("a-test-password\n")
    env = dict(os.environ, DATABASE_OWNER_URL=pg_url, COLLECTOR_DB_USER=role,
               COLLECTOR_DB_PASSWORD_FILE=str(secret), DB_ATTEMPTS="3")
    r = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"role '{role}'" in r.stdout
    # Idempotent: a second run updates the role instead of failing.
    assert subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env,
                          capture_output=True, timeout=120).returncode == 0
    as_role = create_engine(pg_url.replace("postgres@", f"{role}:a-test-password@"))
    try:
        with as_role.begin() as c:
            c.execute(text("INSERT INTO images (sha256, path, label, kind) VALUES ('ab', 'p', 'l', 'photo')"))
            c.execute(text("UPDATE images SET path = 'q' WHERE sha256 = 'ab'"))
            assert c.execute(text("SELECT path FROM images")).scalar_one() == "q"
        for stmt in ("DROP TABLE predictions", "TRUNCATE images", "DELETE FROM images",
                     "CREATE TABLE evil (x int)", "ALTER TABLE images ADD COLUMN y int", "DROP VIEW v_confusion"):
            with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
                with as_role.begin() as c:
                    c.execute(text(stmt))
        with as_role.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM images")).scalar_one() == 1
    finally:
        as_role.dispose()
        owner = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with owner.connect() as c:
            c.execute(text(f'DROP OWNED BY "{role}"'))
            c.execute(text(f'DROP ROLE "{role}"'))
        owner.dispose()


def test_the_web_view_role_can_only_read(pg_url, tmp_path):
    role, viewer = f"pct_collector_{uuid.uuid4().hex[:8]}", f"pct_viewer_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DATABASE_OWNER_URL=pg_url, COLLECTOR_DB_USER=role, COLLECTOR_DB_PASSWORD="c-password",
               VIEWER_DB_USER=viewer, VIEWER_DB_PASSWORD="v-password", DB_ATTEMPTS="3")
    r = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and f"role '{viewer}' may SELECT" in r.stdout, r.stderr
    owner = create_engine(pg_url)
    with owner.begin() as c:
        c.execute(text("INSERT INTO images (sha256, path, label, kind) VALUES ('ab', 'p', 'l', 'photo')"))
    as_viewer = create_engine(pg_url.replace("postgres@", f"{viewer}:v-password@"))
    try:
        with as_viewer.connect() as c:
            assert c.execute(text("SELECT path FROM images")).scalar_one() == "p"
        for stmt in ("INSERT INTO images (sha256, path, label, kind) VALUES ('cd', 'p', 'l', 'photo')",
                     "UPDATE images SET path = 'q'", "DELETE FROM images", "TRUNCATE images",
                     "SELECT nextval('images_id_seq')"):
            with pytest.raises(ProgrammingError, match="permission denied"):
                with as_viewer.begin() as c:
                    c.execute(text(stmt))
    finally:
        as_viewer.dispose()
        owner.dispose()
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for r_ in (role, viewer):
                c.execute(text(f'DROP OWNED BY "{r_}"'))
                c.execute(text(f'DROP ROLE "{r_}"'))
        admin.dispose()


def test_setup_db_errors_are_clear(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "COLLECTOR_"))}
    r = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "DATABASE_OWNER_URL is not set" in r.stderr
    env.update(DATABASE_OWNER_URL="postgresql://u@127.0.0.1:1/x", COLLECTOR_DB_PASSWORD="p", DB_ATTEMPTS="2")
    r = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "cannot reach the database" in r.stderr and "Traceback" not in r.stderr


def test_iam_users_get_privileges_and_no_password(pg_url):
    """DB_IAM_AUTH=true (Cloud SQL IAM database authentication): the roles exist already (gcloud
    creates them), setup_db only sets their privileges and never gives them a password."""
    tag = uuid.uuid4().hex[:8]
    collector, nightly = f"pct-c-{tag}@pct-project.iam", f"pct-n-{tag}@pct-project.iam"
    viewer = f"pct-v-{tag}@pct-project.iam"
    env = dict(os.environ, DATABASE_OWNER_URL=pg_url, COLLECTOR_DB_USER=f"{collector},{nightly}", VIEWER_DB_USER=viewer,
               DB_IAM_AUTH="true", DB_ATTEMPTS="3")
    for k in ("COLLECTOR_DB_PASSWORD", "VIEWER_DB_PASSWORD"):
        env.pop(k, None)
    missing = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 1 and "does not exist: create it first" in missing.stderr, missing.stderr
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            for r_ in (collector, nightly, viewer):
                c.execute(text(f'CREATE ROLE "{r_}" LOGIN'))  # as `gcloud sql users create --type=...` does
        r = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and "IAM users, no passwords" in r.stdout, r.stderr
        with admin.connect() as c:
            def can(role, priv):
                return c.execute(text("SELECT has_table_privilege(:r, 'images', :p)"), {"r": role, "p": priv}
                                 ).scalar_one()
            for role in (collector, nightly):
                assert can(role, "INSERT") and can(role, "UPDATE") and not can(role, "DELETE")
            assert can(viewer, "SELECT") and not can(viewer, "INSERT")
            pw = c.execute(text("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (:a, :b, :c)"),
                           {"a": collector, "b": nightly, "c": viewer}).all()
            assert len(pw) == 3 and all(p is None for _, p in pw)
        with_pw = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT,
                                 env=dict(env, COLLECTOR_DB_PASSWORD="x"), capture_output=True, text=True, timeout=60)
        assert with_pw.returncode == 2 and "take no password" in with_pw.stderr
        bad = subprocess.run([sys.executable, "db_scripts/setup_db.py"], cwd=ROOT,
                             env=dict(env, COLLECTOR_DB_USER='x"; DROP TABLE images; --'), capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and "invalid IAM user" in bad.stderr
    finally:
        with admin.connect() as c:
            for r_ in (collector, nightly, viewer):
                if c.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": r_}).first():
                    c.execute(text(f'DROP OWNED BY "{r_}"'))
                    c.execute(text(f'DROP ROLE "{r_}"'))
        admin.dispose()
