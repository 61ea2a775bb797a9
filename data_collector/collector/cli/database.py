"""`data-collector db upgrade | destroy`."""

from __future__ import annotations

import sys

import click

from ..storage import store
from .common import fail, open_store, out


@click.group("db")
def db_group():
    """Create, migrate or drop the database tables."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx):
    """Run the migrations up to the newest schema (idempotent)."""
    engine = open_store(ctx, check_schema=False)
    try:
        store.upgrade(engine)
    except Exception as e:  # noqa: BLE001 - reported, not a traceback
        fail(f"migration failed: {getattr(e, 'orig', e)}")
    out.print(f"schema at revision {store.current_revision(engine)} on {store.redact_url(ctx.obj['db'])}")


@db_group.command("destroy")
@click.option("--yes", is_flag=True, help="drop without asking (no environment variable does this)")
@click.pass_context
def db_destroy(ctx, yes):
    """Drop every table and view (all stored predictions are lost)."""
    target = store.redact_url(ctx.obj["db"])
    if not yes:
        if not sys.stdin.isatty():
            fail(f"refusing to drop {target} without --yes", 2)
        click.confirm(f"Drop all tables in {target}?", abort=True)
    engine = open_store(ctx, check_schema=False)
    try:
        store.destroy(engine)
    except Exception as e:  # noqa: BLE001
        fail(f"could not drop the tables: {getattr(e, 'orig', e)}")
    out.print(f"dropped all tables in {target}")
