"""`data-collector conflicts`: fingerprints whose claimants answered the same images differently."""

from __future__ import annotations

import json

import click
from sqlalchemy.exc import DBAPIError

from ..analysis.selectors import SelectorError, pick
from ..storage import store
from .common import fail, open_store, out, table


def _evidence_json(e: dict) -> dict:
    return {"fingerprint": e["fingerprint"], "url": e["url"], "run_id": e["run_id"], "image": e["path"],
            "label": e["label"], "other": e["other"], "answered": e["answered"], "expected": e["expected"],
            "found_at": e["found_at"].isoformat() if e["found_at"] else None}


@click.group("conflicts", invoke_without_command=True)
@click.option("--model", "selector", help="one model: fp:PREFIX, a fingerprint prefix, NAME@VERSION, ...  "
                                          "[default: every model]")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def conflicts_group(ctx, selector, as_json):
    """Fingerprints whose URLs answered one image differently.

    The evidence: which URL answered which image how, against which other answer. Exit 0 when
    there is no conflict, 1 when there is one. `conflicts resolve SELECTOR` closes one.
    """
    if ctx.invoked_subcommand is not None:
        return
    engine = open_store(ctx, migrate=False, reading=True)
    with engine.connect() as conn:
        model_id = None
        if selector:
            try:
                model_id = pick(store.list_models(conn), selector).id
            except SelectorError as e:
                fail(str(e), 2)
        evidence = store.list_conflicts(conn, model_id=model_id)
    if as_json:
        click.echo(json.dumps([_evidence_json(e) for e in evidence], indent=2))
    elif not evidence:
        out.print("no conflicting fingerprint")
    else:
        t = table("Conflicting fingerprints: one image, two answers under one fingerprint")
        for col in ("fingerprint", "image", "URL", "answered", "other answer from", "other answered"):
            t.add_column(col, overflow="fold")
        for e in evidence:
            t.add_row(e["fingerprint"][:12], e["path"], e["url"], _answer(e["answered"]), e["other"],
                      _answer(e["expected"]))
        out.print(t)
        out.print("No compare or gate uses a conflicting model. Once you know which server is right: "
                  "`data-collector conflicts resolve SELECTOR --keep-stored` (the stored answers are right) or "
                  "`--forget` (drop every answer of it, then collect from the URL you trust).")
    ctx.exit(1 if evidence else 0)


def _answer(a: dict) -> str:
    scores = a.get("scores") or {}
    top = scores.get(a.get("label"))
    return f"{a.get('label')} {top:.3f}" if isinstance(top, float | int) else str(a.get("label"))


@conflicts_group.command("resolve")
@click.argument("selector")
@click.option("--keep-stored", "keep", is_flag=True, help="the counted answers are right: drop the ones kept apart")
@click.option("--forget", is_flag=True, help="drop every answer of this fingerprint: the next collect starts anew")
@click.pass_context
def conflicts_resolve(ctx, selector, keep, forget):
    """Close the conflict of one model, after you found which server is right."""
    if keep == forget:
        fail("say which answers to keep: --keep-stored or --forget", 2)
    engine = open_store(ctx, migrate=False, reading=True)
    try:
        with engine.begin() as conn:
            try:
                m = pick(store.list_models(conn), selector)
            except SelectorError as e:
                fail(str(e), 2)
            if not m.conflicts:
                fail(f"{m.title} is not conflicting", 2)
            n, dropped = store.resolve_conflicts(conn, model_id=m.id, forget=forget)
    except DBAPIError as e:  # --forget deletes: the collector's role may not (the owner's may)
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        fail(f"nothing changed: {reason} (resolving with --forget deletes answers: use the owner's role)", 2)
    out.print(f"{m.title}: {n} evidence row(s) closed, {dropped} answer(s) dropped"
              + ("; collect it again from the URL you trust" if forget else ""))
