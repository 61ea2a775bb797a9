"""Scratch PostgreSQL databases for tests and benchmarks (not part of the shipped package)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(admin_url: str, *, prefix: str = "pct_scratch") -> Iterator[str]:
    """A new, empty PostgreSQL database for a test or a benchmark; dropped afterwards."""
    import psycopg2
    from psycopg2 import sql

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connect_args = make_url(admin_url).translate_connect_args(username="user", database="dbname")

    def run(statement, *args) -> None:
        raw = psycopg2.connect(**connect_args)
        try:
            raw.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
            with raw.cursor() as cur:
                cur.execute(statement, *args)
        finally:
            raw.close()

    run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        run(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
