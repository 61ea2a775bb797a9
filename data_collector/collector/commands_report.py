"""`report` (and the reporting commands that build on it) for the `data-collector` group."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.table import Table

from . import store
from .cli import collect_options, err, fail, main, open_store, out
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


# ---- compare -----------------------------------------------------------------------------------
def print_comparison(c: dict) -> None:
    b, k = c["baseline"], c["candidate"]
    out.print(f"baseline  {b['name']} v{b['version']} ({b['fingerprint'][:12]})")
    out.print(f"candidate {k['name']} v{k['version']} ({k['fingerprint'][:12]})")
    out.print(f"{c['n_common_images']} images seen by both, labels both know; regressed = drop > "
              f"{c['thresholds']['max_drop']} and McNemar p < {c['thresholds']['alpha']}")
    t = Table(show_edge=False)
    for col in ("class", "n", "baseline", "candidate", "change", "95% CI", "b/c", "p", "verdict"):
        t.add_column(col, justify="left" if col in ("class", "verdict") else "right")
    for lab, x in list(c["classes"].items()) + [("(overall)", c["overall"])]:
        verdict = "REGRESSED" if x["regressed"] else ""
        if x["regressed"] and x.get("previously_easy"):
            verdict += " (previously easy)"
        t.add_row(lab, str(x["n"]), _fmt(x["baseline"]), _fmt(x["candidate"]),
                  "-" if x["delta"] is None else f"{x['delta']:+.3f}",
                  f"[{x['ci95'][0]:+.3f}, {x['ci95'][1]:+.3f}]", f"{x['b_baseline_only']}/{x['c_candidate_only']}",
                  f"{x['p_value']:.4f}", verdict)
    out.print(t)
    for lab, x in c["new_labels"].items():
        out.print(f"new label {lab}: recall {_fmt(x['recall'])} (n={x['n']}), not compared")
    if c["dropped_labels"]:
        out.print(f"labels the candidate no longer has: {', '.join(c['dropped_labels'])}")
    if c["verdict"] == "regression":
        names = ", ".join(c["regressed_classes"]) or "overall accuracy"
        out.print(f"[bold red]REGRESSION[/]: {names}")
    else:
        out.print("[bold green]PASS[/]: no class regressed")


@main.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--max-drop", type=click.FloatRange(0, 1), default=0.05, show_default=True, envvar="MAX_DROP",
              help="accuracy drop a class may have before it can count as regressed")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              envvar="ALPHA", help="significance level of the paired exact McNemar test")
@click.option("--json", "as_json", is_flag=True, help="print JSON (for CI) instead of tables")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="also write HTML here")
@click.pass_context
def compare_cmd(ctx, baseline, candidate, max_drop, alpha, as_json, html_path):
    """Compare two models per class. Exit 0: no regression, 1: regression, 2: usage or data error.

    BASELINE and CANDIDATE: a model name (its newest version), a fingerprint prefix, or
    NAME@previous (the version before CANDIDATE, or before the newest).
    """
    from .compare import Thresholds, compare

    engine = open_store(ctx, migrate=False)
    with engine.connect() as conn:
        try:
            cand = resolve(conn, candidate)
            base = resolve(conn, baseline, relative_to=cand)
        except SelectorError as e:
            fail(str(e), 2)
        if base.fingerprint == cand.fingerprint:
            fail(f"baseline and candidate are the same model ({cand.title})", 2)
        base_rows, cand_rows = load_rows(conn, base.id), load_rows(conn, cand.id)
        result = compare(base, base_rows, cand, cand_rows, Thresholds(max_drop=max_drop, alpha=alpha))
        if html_path:
            from .html_report import recall_history, render_html
            reports = [model_report(base, base_rows), model_report(cand, cand_rows)]
            html_path.write_text(render_html(reports, recall_history(conn), result))
    if result["n_common_images"] == 0:
        fail("the two models share no evaluated images with labels both know", 2)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_comparison(result)
    ctx.exit(1 if result["verdict"] == "regression" else 0)


# ---- watch and hook ----------------------------------------------------------------------------
def _deploy_settings(kw: dict, report_dir: Path, max_drop: float, alpha: float):
    from .cli import options_from
    from .compare import Thresholds
    from .deploy import DeploySettings

    return DeploySettings(test_dir=kw["test_data"], report_dir=report_dir, opts=options_from(kw),
                          thresholds=Thresholds(max_drop=max_drop, alpha=alpha))


def _verdict_line(r: dict) -> str:
    if r["verdict"] == "error":
        return f"{r['url']}: error: {r.get('error')}"
    regressed = f" regressed: {', '.join(r['regressed_classes'])}" if r.get("regressed_classes") else ""
    return (f"{r['url']}: {r['name']} v{r['version']} ({r['fingerprint'][:12]}) evaluated on "
            f"{r['images_sent']} images; verdict {r['verdict']}{regressed}; report {r.get('report')}")


@main.command("watch")
@click.argument("urls", nargs=-1, required=True, envvar="MODEL_URLS")
@click.option("--interval", type=click.FloatRange(0.1), default=60.0, show_default=True, envvar="WATCH_INTERVAL",
              help="seconds between polls of each URL's /metadata")
@click.option("--cycles", type=click.IntRange(0), default=0, envvar="WATCH_CYCLES",
              help="stop after this many polls (0: run until interrupted)")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, envvar="REPORT_DIR", help="where reports of new versions are written")
@click.option("--max-drop", type=click.FloatRange(0, 1), default=0.05, show_default=True, envvar="MAX_DROP")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              envvar="ALPHA")
@collect_options
@click.pass_context
def watch_cmd(ctx, urls, interval, cycles, report_dir, max_drop, alpha, **kw):
    """Poll model URLs; evaluate, compare and report each fingerprint not seen before."""
    import time

    from .client import ModelClient, ModelServerError
    from .deploy import evaluate_deployment

    if len(urls) == 1 and " " in urls[0]:
        urls = tuple(urls[0].split())
    engine = open_store(ctx, migrate=not kw["no_migrate"])
    settings = _deploy_settings(kw, report_dir, max_drop, alpha)
    handled: dict[str, str] = {}  # url -> fingerprint already dealt with by this process
    n = 0
    try:
        while True:
            n += 1
            for url in urls:
                try:
                    client = ModelClient(url, timeout=kw["timeout"], retries=0)
                    fp = client.metadata()["fingerprint"]
                    client.close()
                except ModelServerError as e:
                    err.print(f"watch: {e}", markup=False)
                    continue
                if handled.get(url) == fp:
                    continue
                result = evaluate_deployment(url, engine=engine, settings=settings)
                if result["verdict"] != "error":
                    handled[url] = fp
                if result["evaluated"] or result["verdict"] == "error":
                    out.print(_verdict_line(result), markup=False)
            if cycles and n >= cycles:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        err.print("watch: stopped", markup=False)


@main.command("hook")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="HOOK_HOST")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True, envvar="HOOK_PORT")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, envvar="REPORT_DIR")
@click.option("--max-drop", type=click.FloatRange(0, 1), default=0.05, show_default=True, envvar="MAX_DROP")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              envvar="ALPHA")
@collect_options
@click.pass_context
def hook_cmd(ctx, host, port, report_dir, max_drop, alpha, **kw):
    """Serve POST /hooks/deployed {"url": ...} for CI/CD (bearer token from HOOK_TOKEN if set)."""
    from werkzeug.serving import make_server

    from .hook import create_hook_app

    try:  # no connection yet: the stack may start before ./setup_db.sh creates the role
        engine = store.make_engine(ctx.obj["db"])
    except store.StoreError as e:
        fail(str(e))
    app = create_hook_app(engine=engine, settings=_deploy_settings(kw, report_dir, max_drop, alpha),
                          token=os.environ.get("HOOK_TOKEN") or None, migrate=not kw["no_migrate"])
    # Evaluations are serialised anyway (one lock): a small threaded server is enough.
    server = make_server(host, port, app, threaded=True)
    err.print(f"deploy hook listening on http://{host}:{port}/hooks/deployed", markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
