"""A private PostgreSQL cluster that checks passwords (scram-sha-256), for credential rotation tests.

The machine's PostgreSQL trusts every local connection, so a wrong password would pass there.
This one is created with the same server binaries (`initdb`, `pg_ctl`) in a temporary folder, on
a free loopback port, run as the `postgres` user when the tests run as root (PostgreSQL refuses
root), and removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from helpers import free_port


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    if not (_bin("initdb") and _bin("pg_ctl")):
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


class PasswordPostgres:
    """`with PasswordPostgres() as pg:` -> pg.url(user, password, db), pg.admin_url."""

    def __init__(self):
        self.port = free_port()
        self.admin_password = secrets.token_urlsafe(18)
        self.dir = Path(tempfile.mkdtemp(prefix="pct-pg-", dir="/tmp"))
        self.data = self.dir / "data"

    def _run(self, *args: str, timeout: float = 300) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {r.stderr[-2000:]}")

    def __enter__(self) -> PasswordPostgres:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.admin_password + "\n")
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-t", "240",
                  "start")
        deadline = time.monotonic() + 240
        import psycopg2

        while True:  # pg_ctl -w waited; still, a busy machine may be slow to accept the first login
            try:
                psycopg2.connect(self.dsn("postgres", self.admin_password, "postgres"), connect_timeout=30).close()
                return self
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def dsn(self, user: str, password: str, db: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={user} password={password} dbname={db}"

    def url(self, user: str, password: str, db: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def admin(self, *statements: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn("postgres", self.admin_password, "postgres"), connect_timeout=30)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
        finally:
            conn.close()

    def __exit__(self, *exc) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "120", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
