"""`report` (and the reporting commands that build on it) for the `data-collector` group."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from .cli import fail, main, open_store, out
from .reports import SelectorError, all_models, load_rows, model_report, resolve


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_model_report(rep: dict) -> None:
    m = rep["model"]
    kinds = ", ".join(f"{k} {_fmt(v['accuracy'])} (n={v['n']})" for k, v in rep["by_kind"].items())
    out.print(f"\n[bold]{m['name']}[/] v{m['version']} ({m['fingerprint'][:12]}): accuracy "
              f"{_fmt(rep['accuracy'])} on {rep['n']} labelled images" + (f" — {kinds}" if kinds else ""))
    t = Table(show_edge=False)
    for col in ("class", "support", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for lab, c in rep["classes"].items():
        t.add_row(lab, str(c["support"]), _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]))
    out.print(t)
    labels = rep["confusion"]["labels"]
    cm = Table(title="confusion (rows: true, columns: predicted)", show_edge=False)
    cm.add_column("")
    for lab in labels:
        cm.add_column(lab[:8], justify="right")
    for lab, row in zip(labels, rep["confusion"]["matrix"], strict=True):
        cm.add_row(lab, *map(str, row))
    out.print(cm)
    c, p = rep["confidence"], rep["probes"]
    out.print(f"mean confidence: right {_fmt(c['mean_when_right'])}, wrong {_fmt(c['mean_when_wrong'])}")
    if p["n"]:
        hist = "  ".join(f"{k}: {v}" for k, v in p["histogram"].items())
        out.print(f"lookalike probes (n={p['n']}): mean max confidence {_fmt(p['mean_max_confidence'])}, "
                  f"share >= 0.9: {_fmt(p['share_over_0_9'])}; histogram {hist}")


def build_reports(conn, selectors: tuple[str, ...]) -> list[dict]:
    models = [resolve(conn, s) for s in selectors] if selectors else all_models(conn)
    return [model_report(m, load_rows(conn, m.id)) for m in models]


@main.command("report")
@click.option("--model", "selectors", multiple=True, help="NAME, fingerprint prefix or NAME@previous (repeatable)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="write JSON here")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="write a self-contained HTML report here")
@click.pass_context
def report_cmd(ctx, selectors, json_path, html_path):
    """Per model: accuracy, per-class precision/recall/F1, confusion, confidence, lookalike probes."""
    engine = open_store(ctx, migrate=False)
    with engine.connect() as conn:
        try:
            reports = build_reports(conn, selectors)
        except SelectorError as e:
            fail(str(e), 2)
        history = None
        if html_path:
            from .html_report import recall_history
            history = recall_history(conn)
    if not reports:
        out.print("no models evaluated yet: run `data-collector collect URL...` first")
        return
    for rep in reports:
        print_model_report(rep)
    if json_path:
        json_path.write_text(json.dumps({"models": reports}, indent=2))
        out.print(f"\nwrote {json_path}")
    if html_path:
        from .html_report import render_html
        html_path.write_text(render_html(reports, history))
        out.print(f"wrote {html_path}")
