"""`data-collector report` and `data-collector compare`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import store
from ..compare import COMPARE_LEGEND, class_verdict, compare
from ..formatting import interval, num
from ..reports import model_report
from ..selectors import SelectorError, resolve
from .common import fail, open_store, out, table, threshold_options, thresholds_from


def print_model_report(rep: dict) -> None:
    m = rep["model"]
    kinds = ", ".join(f"{k} {num(v['accuracy'])} (n={v['n']})" for k, v in rep["by_kind"].items())
    out.print(f"\n[bold]{m['name']}[/] v{m['version']} ({m['fingerprint'][:12]}): accuracy "
              f"{num(rep['accuracy'])} on {rep['n']} labelled images" + (f"; {kinds}" if kinds else ""))
    t = table()
    t.add_column("class", no_wrap=True)
    for col in ("support", "precision", "recall", "F1"):
        t.add_column(col, justify="right")
    for lab, c in rep["classes"].items():
        t.add_row(lab, str(c["support"]), num(c["precision"]), num(c["recall"]), num(c["f1"]))
    out.print(t)
    labels = rep["confusion"]["labels"]
    # Columns are numbered like the rows: full names on the rows, a grid that fits 80 columns.
    cm = table("confusion: rows true, columns predicted (numbered as the rows)")
    cm.add_column("", no_wrap=True)
    for i in range(len(labels)):
        cm.add_column(str(i + 1), justify="right")
    for i, (lab, row) in enumerate(zip(labels, rep["confusion"]["matrix"], strict=True)):
        cm.add_row(f"{i + 1} {lab}", *map(str, row))
    out.print(cm)
    c, p = rep["confidence"], rep["probes"]
    out.print(f"mean confidence: right {num(c['mean_when_right'])}, wrong {num(c['mean_when_wrong'])}")
    if p["n"]:
        hist = "  ".join(f"{k}: {v}" for k, v in p["histogram"].items())
        out.print(f"lookalike probes (n={p['n']}): mean max confidence {num(p['mean_max_confidence'])}, "
                  f"share >= 0.9: {num(p['share_over_0_9'])}; histogram {hist}")


def build_reports(conn, selectors: tuple[str, ...]) -> list[dict]:
    models = [resolve(conn, s) for s in selectors] if selectors else store.list_models(conn)
    return [model_report(m, store.load_rows(conn, model_id=m.id)) for m in models]


@click.command("report")
@click.option("--model", "selectors", multiple=True,
              help="NAME, fingerprint prefix, NAME@latest or NAME@previous (repeatable)  [default: every model]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="also write JSON here")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write a self-contained HTML report here")
@click.pass_context
def report_cmd(ctx, selectors, json_path, html_path):
    """Per model: per-class metrics, confusion, lookalike probes."""
    engine = open_store(ctx, migrate=False)
    with engine.connect() as conn:
        try:
            reports = build_reports(conn, selectors)
        except SelectorError as e:
            fail(str(e), 2)
        history = None
        if html_path:
            from ..html_report import recall_history
            history = recall_history(conn)
    if not reports:
        out.print("no models evaluated yet: run `data-collector collect URL...` first")
        return
    for rep in reports:
        print_model_report(rep)
    if json_path:
        json_path.write_text(json.dumps({"models": reports}, indent=2))
        out.print(f"\nwrote {json_path}", markup=False)
    if html_path:
        from ..html_report import render_html
        html_path.write_text(render_html(reports, history))
        out.print(f"wrote {html_path}", markup=False)


VERDICT_SHORT = {"regressed": "REGRESSED", "dropped-not-significant": "n.s. drop", "ok": ""}


def print_comparison(c: dict) -> None:
    b, k = c["baseline"], c["candidate"]
    th = c["thresholds"]
    out.print(f"baseline  {b['name']} v{b['version']} ({b['fingerprint'][:12]})", markup=False)
    out.print(f"candidate {k['name']} v{k['version']} ({k['fingerprint'][:12]})", markup=False)
    out.print(f"{c['n_common_images']} images seen by both, of labels both know; regressed = drop > "
              f"{th['max_drop']} and McNemar p < {th['alpha']}", markup=False)
    t = table()
    t.add_column("class", no_wrap=True)
    for col in ("n", "base", "cand", "change"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("95% CI", justify="right", no_wrap=True)
    t.add_column("b/c", justify="right", no_wrap=True)
    t.add_column("p", justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    for lab, x in list(c["classes"].items()) + [("(overall)", c["overall"])]:
        verdict = VERDICT_SHORT[x["status"]]
        t.add_row(lab, str(x["n"]), num(x["baseline"]), num(x["candidate"]), num(x["delta"], signed=True),
                  interval(*x["ci95"]), f"{x['b_baseline_only']}/{x['c_candidate_only']}", num(x["p_value"]),
                  verdict)
    out.print(t)
    out.print(COMPARE_LEGEND, markup=False)
    if c["dropped_not_significant"]:
        out.print("n.s. drop: dropped by more than max-drop, but not significant on this many images",
                  markup=False)
    for lab, x in c["new_labels"].items():
        out.print(f"new label {lab}: recall {num(x['recall'])} (n={x['n']}), not compared", markup=False)
    if c["dropped_labels"]:
        out.print(f"labels the candidate no longer has: {', '.join(c['dropped_labels'])}", markup=False)
    for lab in c["regressed_classes"]:
        out.print(f"{lab}: {class_verdict(c['classes'][lab])}", markup=False)
    for lab in c["dropped_not_significant"]:
        out.print(f"{lab}: {class_verdict(c['classes'][lab])} (dropped by more than {th['max_drop']}, "
                  f"p = {num(c['classes'][lab]['p_value'])} is not below {th['alpha']})", markup=False)
    if c["verdict"] == "regression":
        names = ", ".join(c["regressed_classes"]) or "overall accuracy"
        out.print(f"[bold red]REGRESSION[/]: {names}")
    elif c["dropped_not_significant"]:
        out.print("[bold green]PASS[/]: no class regressed significantly; "
                  f"{len(c['dropped_not_significant'])} dropped without enough images to tell")
    else:
        out.print("[bold green]PASS[/]: no class regressed")


@click.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@threshold_options
@click.option("--json", "as_json", is_flag=True, help="print JSON (for CI) instead of tables")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="also write HTML here")
@click.pass_context
def compare_cmd(ctx, baseline, candidate, as_json, html_path, **kw):
    """Compare two models per class; exit 1 on a regression.

    Exit 0: no regression, 1: regression, 2: usage or data error. BASELINE and CANDIDATE: a
    model name (its newest version), a fingerprint prefix, NAME@latest, or NAME@previous (the
    version before CANDIDATE, or before the newest).
    """
    engine = open_store(ctx, migrate=False)
    with engine.connect() as conn:
        try:
            cand = resolve(conn, candidate)
            base = resolve(conn, baseline, relative_to=cand)
        except SelectorError as e:
            fail(str(e), 2)
        if base.fingerprint == cand.fingerprint:
            fail(f"baseline and candidate are the same model ({cand.title})", 2)
        base_rows = store.load_rows(conn, model_id=base.id)
        cand_rows = store.load_rows(conn, model_id=cand.id)
        result = compare(base, base_rows, cand, cand_rows, thresholds_from(kw))
        if html_path:
            from ..html_report import recall_history, render_html
            reports = [model_report(base, base_rows), model_report(cand, cand_rows)]
            html_path.write_text(render_html(reports, recall_history(conn), result))
    if result["n_common_images"] == 0:
        fail("the two models share no evaluated images with labels both know", 2)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_comparison(result)
    ctx.exit(1 if result["verdict"] == "regression" else 0)
