"""Prepare a PostgreSQL database: wait for it, migrate as the owner, create the collector role
and the web view's read-only role.

    python db_scripts/setup_db.py            # settings from the environment (see .env.example)

Environment:
  DATABASE_OWNER_URL   owner connection (runs migrations), e.g. postgresql://owner:pw@postgres:5432/pokemon
  COLLECTOR_DB_USER    least-privilege role the collector uses (SELECT, INSERT, UPDATE only); with
                       DB_IAM_AUTH, a comma-separated list (one IAM user per workload)
  COLLECTOR_DB_PASSWORD its password (or COLLECTOR_DB_PASSWORD_FILE, a secret file)
  VIEWER_DB_USER       read-only role of the web view (SELECT only; default viewer)
  VIEWER_DB_PASSWORD   its password (or VIEWER_DB_PASSWORD_FILE); unset: no viewer role
  DB_IAM_AUTH          true: the collector and viewer roles are Cloud SQL IAM users (created with
                       `gcloud sql users create SA@PROJECT.iam --type=cloud_iam_service_account`):
                       they log in with IAM tokens and have no password; only their privileges are set
                       (the viewer's when VIEWER_DB_USER is set)
  DB_ATTEMPTS          connection attempts, 1 s apart (default 60)
"""

from __future__ import annotations

import os
import re
import sys

from sqlalchemy import text

from collector.storage import store

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A Cloud SQL IAM service-account user: the account's e-mail without ".gserviceaccount.com".
IAM_ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam$")


def secret(name: str) -> str | None:
    """VAR, or the contents of the file named by VAR_FILE (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get(name)


COLLECTOR_GRANTS = ("SELECT, INSERT, UPDATE", True)  # (table privileges, TEMPORARY for COPY staging)
VIEWER_GRANTS = ("SELECT", False)


def create_collector_role(engine, *, role: str, pw: str | None, grants: tuple[str, bool] = COLLECTOR_GRANTS) -> None:
    """Create or update the role; grant only what collecting needs (no DELETE, TRUNCATE, DDL), or
    with VIEWER_GRANTS only what reading needs. `pw=None`: an IAM user that must exist already
    (Cloud SQL creates it); only its privileges are set."""
    if pw is None and not IAM_ROLE_NAME.match(role):
        raise ValueError(f"invalid IAM user {role!r} (expected SERVICE_ACCOUNT@PROJECT.iam)")
    if pw is not None and not ROLE_NAME.match(role):
        raise ValueError(f"invalid role name {role!r} (lowercase letters, digits, underscore)")
    from psycopg2 import sql

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        if pw is None and verb == "CREATE":
            raise ValueError(f"the IAM user {role!r} does not exist: create it first (gcloud sql users create "
                             f"{role} --type=cloud_iam_service_account; deploy/gcp/setup.sh does)")
        if pw is not None:
            # psycopg2 binds the password client-side; the role name is quoted as an identifier.
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (pw,))
        cur.execute("SELECT current_database()")
        (db,) = cur.fetchone()
        ident = sql.Identifier(role)
        tables, temporary = grants
        if tables not in (COLLECTOR_GRANTS[0], VIEWER_GRANTS[0]):
            raise ValueError(f"unexpected privileges {tables!r}")
        for stmt in (
            "REVOKE ALL ON DATABASE {db} FROM {r}",
            # TEMPORARY: COPY staging (store.py)
            "GRANT CONNECT" + (", TEMPORARY" if temporary else "") + " ON DATABASE {db} TO {r}",
            "GRANT USAGE ON SCHEMA public TO {r}",
            "REVOKE CREATE ON SCHEMA public FROM {r}",
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
            "GRANT " + tables + " ON ALL TABLES IN SCHEMA public TO {r}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}" if temporary else
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}",
        ):
            cur.execute(sql.SQL(stmt).format(db=sql.Identifier(db), r=ident))
        raw.commit()
    finally:
        raw.close()


def main() -> int:
    owner_url = secret("DATABASE_OWNER_URL")
    role = os.environ.get("COLLECTOR_DB_USER", "collector")
    collector_pw = secret("COLLECTOR_DB_PASSWORD")
    viewer = os.environ.get("VIEWER_DB_USER", "viewer")
    viewer_pw = secret("VIEWER_DB_PASSWORD")
    iam = os.environ.get("DB_IAM_AUTH", "").lower() in ("1", "true", "yes")
    if not owner_url:
        print("setup_db: error: DATABASE_OWNER_URL is not set (see .env.example)", file=sys.stderr)
        return 2
    if iam and (collector_pw or viewer_pw):
        print("setup_db: error: DB_IAM_AUTH=true: the roles are IAM users and take no password; unset "
              "COLLECTOR_DB_PASSWORD and VIEWER_DB_PASSWORD", file=sys.stderr)
        return 2
    with_viewer = bool(viewer_pw) or (iam and "VIEWER_DB_USER" in os.environ)
    if not collector_pw and not iam:
        print("setup_db: error: COLLECTOR_DB_PASSWORD (or _FILE) is not set", file=sys.stderr)
        return 2
    try:
        engine = store.make_engine(owner_url)
        if engine.dialect.name != "postgresql":
            print("setup_db: error: roles need PostgreSQL; for SQLite run `data-collector db upgrade`",
                  file=sys.stderr)
            return 2
        store.connect_check(engine, attempts=int(os.environ.get("DB_ATTEMPTS", "60")))
        store.upgrade(engine)
        roles = [r.strip() for r in role.split(",")] if iam else [role]  # IAM: one user per workload
        for r in roles:
            create_collector_role(engine, role=r, pw=collector_pw)
        if with_viewer:
            if viewer in roles:
                raise ValueError("VIEWER_DB_USER must differ from COLLECTOR_DB_USER")
            create_collector_role(engine, role=viewer, pw=viewer_pw, grants=VIEWER_GRANTS)
        with engine.connect() as c:
            rev = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    except (store.StoreError, ValueError) as e:
        print(f"setup_db: error: {e}", file=sys.stderr)
        return 1
    print(f"setup_db: schema at revision {rev}; role {', '.join(map(repr, roles))} may SELECT, INSERT, UPDATE"
          + (f"; role {viewer!r} may SELECT" if with_viewer else "; no viewer role (VIEWER_DB_PASSWORD unset)")
          + ("; IAM users, no passwords" if iam else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
