"""`data-collector collect` and `data-collector models`."""

from __future__ import annotations

import json
import signal
import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..formatting import num
from ..text import literal
from ..vocab import FAILED_STATUSES
from .common import (
    URLS_ENV,
    collect_options,
    collect_options_from,
    err,
    fail,
    lines,
    nothing_collected,
    open_store,
    out,
    split_urls,
    table,
)


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:6.1f} img/s" if task.speed else "     - img/s")


@click.command("collect")
@click.argument("urls", nargs=-1, required=True, envvar=URLS_ENV)
@collect_options
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON (for scripts) instead of a table")
@click.pass_context
def collect_cmd(ctx, urls, as_json, **kw):
    """Evaluate model URLs on the test images they have not seen.

    URLS: model server addresses (or env MODEL_URLS, space-separated).
    """
    from ..early import Early
    from ..protocols.client import ModelServerError
    from ..testset.images import TestSetError

    try:  # the test set is hashed and the servers asked while the database opens (early.py)
        early = Early(list(split_urls(urls)), kw["test_data"], collect_options_from(kw))
    except TestSetError as e:
        fail(str(e), 2)
    results = []
    try:
        from ..collect import DatabaseFailure, collect
        from ..storage import store

        engine = open_store(ctx, migrate=not kw["no_migrate"])
    except BaseException:
        early.close(wait=False)  # what it asked is not waited for
        raise

    def _on_sigterm(_sig, _frame):  # `docker stop`, Kubernetes: stop like Ctrl-C, keep what is stored
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(key: str, advance: int, total: int) -> None:
            if key not in tasks:
                tasks[key] = bar.add_task(literal(key), total=total)
            bar.update(tasks[key], total=total, advance=advance)  # the total grows as the test set streams by

        try:
            results = collect(early.urls, engine=engine, test_dir=early.test_dir, opts=early.opts,
                              progress=on_progress, say=lambda m: err.print(m), early=early)
        except TestSetError as e:
            fail(str(e), 2)
        except (ModelServerError, DatabaseFailure, store.StoreError) as e:
            fail(str(e))
        except KeyboardInterrupt:  # collect() has marked this process's runs interrupted
            fail("interrupted; what was stored is kept, run again to resume", 130)
    if as_json:
        click.echo(json.dumps({"results": [{**vars(r), "status": str(r.status)} for r in results]}, indent=2))
    else:
        print_summary(results)
    bad = [r for r in results if r.status in FAILED_STATUSES]
    failed_images = sum(r.n_failed for r in results)
    if failed_images:
        err.print(f"warning: {failed_images} image(s) could not be classified and were skipped; "
                  "see the failures table")
    if bad:
        for r in bad:
            err.print(f"error: {r.url}: {r.status}: {r.error}")
        sys.exit(1)


def print_summary(results: list) -> None:  # collect.ModelResult
    t = table("Collection summary")
    # The name never wraps (it tells the rows apart); the URL under it may fold.
    t.add_column("model / url", overflow="fold", min_width=max((len(r.name) for r in results), default=5))
    t.add_column("ver", no_wrap=True)
    t.add_column("fingerprint", no_wrap=True)
    t.add_column("status", no_wrap=True)
    for col in ("sent", "failed", "accuracy", "n"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in results:
        t.add_row(lines(r.name, r.url), r.version, r.fingerprint[:12], r.status, str(r.n_sent), str(r.n_failed),
                  num(r.accuracy), str(r.n_scored) if r.accuracy is not None else "-")
    out.print(t)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def models_cmd(ctx, as_json):
    """List the evaluated models and the URLs they were seen at."""
    from ..analysis.selectors import conflicts, describe_claimants, version_key
    from ..storage import store

    engine = open_store(ctx, migrate=False, reading=True)
    with engine.connect() as conn:
        rows = store.list_models(conn)
    clash = conflicts(rows)
    if as_json:
        click.echo(json.dumps([{**m.to_dict(), "predictions": m.predictions, "urls": m.urls,
                                "first_seen": m.first_seen.isoformat() if m.first_seen else None,
                                "conflict": [o.fingerprint for o in clash.get(m.id, [])]}
                               for m in rows], indent=2))
        return
    if not rows:
        out.print(nothing_collected(ctx))
        return
    t = table("Evaluated models")
    # The name never wraps (it tells the rows apart); the URLs under it may fold.
    t.add_column("model / urls", overflow="fold", min_width=max(len(m.name) for m in rows))
    t.add_column("version", no_wrap=True)
    t.add_column("fingerprint", no_wrap=True)  # with the identity kind (and protocol) under it
    t.add_column("labels", justify="right", no_wrap=True)
    t.add_column("predictions", justify="right", no_wrap=True)
    t.add_column("first seen", no_wrap=True)
    for m in sorted(rows, key=lambda x: (x.name, version_key(x))):
        how = m.identity + ("" if m.protocol == "native" else f", {m.protocol}")
        version = lines(m.version, "CONFLICT") if m.id in clash else m.version
        fingerprint = lines(m.fingerprint[:12], how, *(["CONFLICTING"] if m.conflicts else []))
        t.add_row(lines(m.name, *m.urls), version, fingerprint, str(len(m.labels)),
                  str(m.predictions), m.first_seen.strftime("%Y-%m-%d") if m.first_seen else "")
    out.print(t)
    for m in rows:
        if m.conflicts:
            err.print(f"conflicting: {m.title}: URLs announcing its fingerprint answered {m.conflicts} image(s) "
                      f"differently; compare and gate refuse it "
                      f"(data-collector conflicts --model fp:{m.fingerprint[:12]})")
    for m in rows:
        if m.id in clash:
            err.print(f"conflict: {m.name} v{m.version} is claimed by {len(clash[m.id]) + 1} fingerprints: "
                      f"{describe_claimants([m, *clash[m.id]])}; select them by fingerprint prefix")
            clash = {k: v for k, v in clash.items() if k not in {m.id, *(o.id for o in clash[m.id])}}
