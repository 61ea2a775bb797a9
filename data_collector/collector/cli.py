"""`data-collector`: collect predictions, manage the database, report and compare models."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from . import __version__, store
from .client import ModelServerError
from .collect import CollectOptions, DatabaseFailure, collect, mark_interrupted
from .testset import TestSetError

# Wide tables when piped (CI logs, `make demo | tee`); the terminal width otherwise.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def default_test_data() -> str:
    for cand in ("test_data", "../test_data"):
        if Path(cand).is_dir():
            return cand
    return "test_data"


def fail(msg: str, code: int = 1):
    err.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False)
    sys.exit(code)


def open_store(ctx: click.Context, *, migrate: bool = True, check_schema: bool = True):
    url = ctx.obj["db"]
    try:
        engine = store.make_engine(url)
        store.connect_check(engine, attempts=ctx.obj["db_attempts"])
        if check_schema:
            store.ensure_schema(engine, migrate=migrate)
    except store.StoreError as e:
        fail(str(e))
    return engine


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "COLLECTOR"})
@click.option("--db", envvar="DATABASE_URL", default=store.DEFAULT_DB_URL, show_default=True,
              help="SQLAlchemy database URL (env DATABASE_URL), e.g. postgresql://user:pw@host/db")
@click.option("--db-attempts", envvar="DB_ATTEMPTS", type=click.IntRange(1, 600), default=1, show_default=True,
              help="connection attempts, 1 s apart, before giving up (env DB_ATTEMPTS)")
@click.option("-v", "--verbose", is_flag=True, help="log debug details to stderr")
@click.version_option(__version__, prog_name="data-collector")
@click.pass_context
def main(ctx: click.Context, db: str, db_attempts: int, verbose: bool) -> None:
    """Evaluate model servers on the labelled test set and store every prediction."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    ctx.obj = {"db": db, "db_attempts": db_attempts}


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:6.1f} img/s" if task.speed else "     - img/s")


def collect_options(f):
    """Options shared by every command that collects (collect, watch, hook)."""
    opts = [
        click.option("--test-data", envvar="TEST_DATA_DIR", default=default_test_data, show_default="test_data",
                     type=click.Path(path_type=Path), help="labelled test images (env TEST_DATA_DIR)"),
        click.option("--batch-size", envvar="BATCH_SIZE", type=click.IntRange(1, 256), default=32,
                     show_default=True, help="images per request (env BATCH_SIZE)"),
        click.option("--max-in-flight", envvar="MAX_IN_FLIGHT", type=click.IntRange(1, 64), default=None,
                     help="requests in flight over all models [default: 2 per model, at most 8] (env MAX_IN_FLIGHT)"),
        click.option("--timeout", envvar="REQUEST_TIMEOUT", type=click.FloatRange(0.1), default=60.0,
                     show_default=True, help="seconds to wait for one response (env REQUEST_TIMEOUT)"),
        click.option("--retries", envvar="REQUEST_RETRIES", type=click.IntRange(0, 20), default=3,
                     show_default=True,
                     help="retries on connection errors and 5xx, with exponential backoff (env REQUEST_RETRIES)"),
        click.option("--no-migrate", is_flag=True, envvar="NO_MIGRATE",
                     help="never create or migrate tables; fail if the schema is not current (env NO_MIGRATE)"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def options_from(kw: dict) -> CollectOptions:
    return CollectOptions(batch_size=kw["batch_size"], max_in_flight=kw["max_in_flight"], timeout=kw["timeout"],
                          retries=kw["retries"])


@main.command("collect")
@click.argument("urls", nargs=-1, required=True, envvar="MODEL_URLS")
@collect_options
@click.pass_context
def collect_cmd(ctx, urls, **kw):
    """Evaluate each model URL on the test images it has not been evaluated on yet."""
    if len(urls) == 1 and " " in urls[0]:
        urls = tuple(urls[0].split())  # MODEL_URLS="http://a:8080 http://b:8080"
    engine = open_store(ctx, migrate=not kw["no_migrate"])
    opts = options_from(kw)
    test_data = kw["test_data"]
    results = []

    def _on_sigterm(_sig, _frame):  # `docker stop`, Kubernetes: stop like Ctrl-C, keep what is stored
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(key: str, advance: int, total: int) -> None:
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=total)
            bar.advance(tasks[key], advance)

        try:
            results = collect(list(urls), engine=engine, test_dir=test_data, opts=opts, progress=on_progress,
                              say=lambda m: err.print(m, markup=False))
        except TestSetError as e:
            fail(str(e), 2)
        except (ModelServerError, DatabaseFailure, store.StoreError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            mark_interrupted(engine)
            fail("interrupted; what was stored is kept, run again to resume", 130)
    print_summary(results)
    bad = [r for r in results if r.status in ("error", "incomplete")]
    failed_images = sum(r.n_failed for r in results)
    if failed_images:
        err.print(f"warning: {failed_images} image(s) could not be classified and were skipped; "
                  "see the failures table", markup=False)
    if bad:
        for r in bad:
            err.print(f"error: {r.url}: {r.status}: {r.error}", markup=False)
        sys.exit(1)


def print_summary(results) -> None:
    t = Table(title="Collection summary")
    for col in ("model", "version", "fingerprint", "url", "status", "sent", "failed", "accuracy"):
        t.add_column(col, justify="right" if col in ("sent", "failed", "accuracy") else "left")
    for r in results:
        acc = f"{r.accuracy:.3f} (n={r.n_scored})" if r.accuracy is not None else "-"
        t.add_row(r.name, r.version, r.fingerprint[:12], r.url, r.status, str(r.n_sent), str(r.n_failed), acc)
    out.print(t)


@main.command("models")
@click.pass_context
def models_cmd(ctx):
    """List the evaluated models (by fingerprint) and where they were seen."""
    engine = open_store(ctx, migrate=False)
    with engine.connect() as conn:
        rows = store.list_models(conn)
    if not rows:
        out.print("no models evaluated yet")
        return
    t = Table(title="Evaluated models")
    for col in ("name", "version", "fingerprint", "labels", "predictions", "first seen", "urls"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["version"], r["fingerprint"][:16], ",".join(r["labels"]), str(r["predictions"]),
                  r["first_seen"].strftime("%Y-%m-%d %H:%M:%S") if r["first_seen"] else "", " ".join(r["urls"]))
    out.print(t)


@main.group("db")
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
    out.print(f"schema at revision {store.current_revision(engine)} on {store.safe_url(ctx.obj['db'])}")


@db_group.command("destroy")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
def db_destroy(ctx, yes):
    """Drop every table and view (all stored predictions are lost)."""
    target = store.safe_url(ctx.obj["db"])
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


def _register_optional_commands() -> None:
    from . import commands_report  # noqa: F401  (report, compare, watch, hook)


_register_optional_commands()


if __name__ == "__main__":
    sys.exit(main(prog_name=os.path.basename(sys.argv[0])))
