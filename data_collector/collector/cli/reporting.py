"""`data-collector report` and `data-collector compare`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..analysis.compare import COMPARE_LEGEND, class_verdict, compare, test_set_note
from ..analysis.reports import identity_line, model_report
from ..analysis.selectors import ORDER_HELP, SelectorError, conflicts, pick, require_undisputed, resolve
from ..formatting import num
from ..outputs import ci_report, facets
from ..stats.power import DEFAULT_FLIP_RATE, DEFAULT_POWER, images_needed, min_detectable_drop
from ..storage import store
from ..testset import images as testset
from .common import (
    fail,
    latency_options,
    latency_rule_from,
    nothing_collected,
    open_store,
    option,
    out,
    setting_option,
    styled,
    table,
    threshold_options,
    thresholds_from,
)
from .verdicts import VerdictOutputs, verdict_options


def print_model_report(rep: dict) -> None:
    m = rep["model"]
    kinds = ", ".join(f"{k} {num(v['accuracy'])} (n={v['n']})" for k, v in rep["by_kind"].items())
    out.print()
    out.print(styled((m["name"], "bold"), f" v{m['version']} ({m['fingerprint'][:12]}): accuracy "
                     f"{num(rep['accuracy'])} on {rep['n']} labelled images" + (f"; {kinds}" if kinds else "")))
    out.print(identity_line(m))
    cal = rep.get("calibration") or {}
    if cal.get("ece") is not None:
        out.print(f"calibration: ECE {num(cal['ece'])} ({cal['binning']}), Brier {num(cal['brier'])}")
    if m.get("claim_conflict"):
        out.print(styled(("CONFLICTING", "bold red"), ": URLs announcing this fingerprint answered images "
                         "differently; no verdict until `data-collector conflicts resolve`"))
    if m.get("conflict"):
        out.print(styled(("CONFLICT", "bold red"), f": {m['name']} v{m['version']} is also claimed by "
                         + ", ".join(fp[:12] for fp in m["conflict"]) + "; select by fingerprint prefix"))
    t = table()
    t.add_column("class", no_wrap=True)
    for col in ("support", "precision", "recall", "F1", "MDD"):
        t.add_column(col, justify="right")
    for lab, c in rep["classes"].items():
        t.add_row(lab, str(c["support"]), num(c["precision"]), num(c["recall"]), num(c["f1"]),
                  num(c["min_detectable_drop"], 2))
    out.print(t)
    pw = rep["power"]
    short = [f"{lab} {c['support']}" for lab, c in rep["classes"].items()
             if c["support"] < pw["images_needed_per_class"]]
    out.print(f"MDD: smallest accuracy drop a class's images can show on answers alone (McNemar, alpha "
              f"{pw['alpha']}). To detect a {pw['drop']:.2f} drop with 80% power a class needs "
              f"~{pw['images_needed_per_class']} images" + (f"; short: {', '.join(short)}" if short else ""))
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


SUSPECTS_SHOWN = 30


def print_suspects(suspects: list[dict]) -> None:
    """The images whose label the stored answers doubt (suspects.py): check these labels."""
    out.print()
    if not suspects:
        out.print("label suspects: none (no image whose given label most models confidently doubt)")
        return
    t = table(f"label suspects: check these labels ({len(suspects)}; confident learning, a vote of the models)")
    t.add_column("image", no_wrap=True)
    for col in ("label", "suggested"):
        t.add_column(col, no_wrap=True)
    t.add_column("flagged by", justify="right")
    t.add_column("p(label)", justify="right")
    for x in suspects[:SUSPECTS_SHOWN]:
        t.add_row(x["path"], x["label"], x["suggested"], f"{x['flagged_by']} of {x['seen_by']}",
                  num(x["given_probability"], 2))
    out.print(t)
    if len(suspects) > SUSPECTS_SHOWN:
        out.print(f"... and {len(suspects) - SUSPECTS_SHOWN} more (--json)")


def build_reports(conn, selectors: tuple[str, ...]) -> list[dict]:
    """One report per selected model (every model: none selected), each saying which other
    fingerprints claim its NAME@VERSION."""
    ms = store.list_models(conn)
    models = [pick(ms, s) for s in selectors] if selectors else ms
    clash = conflicts(ms)
    reports = []
    for m in models:
        rep = model_report(m, store.load_rows(conn, model_id=m.id))
        rep["model"]["conflict"] = [o.fingerprint for o in clash.get(m.id, [])]
        reports.append(rep)
    return reports


def write_output(path: Path, text: str) -> None:
    """`path`, or standard output for `-`."""
    if str(path) == "-":
        click.echo(text)
    else:
        path.write_text(text)


@click.command("report")
@click.option("--model", "selectors", multiple=True,
              help="NAME, fingerprint prefix, NAME@VERSION, NAME@latest or NAME@previous (repeatable; "
                   f"{ORDER_HELP}; a version two fingerprints claim is refused)  [default: every model]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write JSON here ('-': standard output, instead of the tables)")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write a self-contained HTML report here ('-': standard output, instead of the tables)")
@click.pass_context
def report_cmd(ctx, selectors, json_path, html_path):
    """Per model: per-class metrics, confusion, lookalike probes."""
    engine = open_store(ctx, migrate=False, reading=True)
    with engine.connect() as conn:
        try:
            reports = build_reports(conn, selectors)
        except SelectorError as e:
            fail(str(e), 2)
        history = None
        if html_path:
            from ..outputs.html_report import recall_history
            history = recall_history(conn)
        from ..analysis.suspects import label_suspects

        suspects = label_suspects(conn)
    if not reports:
        out.print(nothing_collected(ctx))
        return
    to_stdout = "-" in (str(json_path), str(html_path))
    if not to_stdout:
        for rep in reports:
            print_model_report(rep)
        print_suspects(suspects)
    if json_path:
        write_output(json_path, json.dumps({"models": reports, "label_suspects": suspects}, indent=2))
        if not to_stdout:
            out.print()
            out.print(f"wrote {json_path}")
    if html_path:
        from ..outputs.html_report import render_html
        write_output(html_path, render_html(reports, history))
        if not to_stdout:
            out.print(f"wrote {html_path}")


VERDICT_SHORT = {"regressed": "REGRESSED", "dropped-not-significant": "n.s.", "ok": ""}


def print_comparison(c: dict) -> None:
    b, k = c["baseline"], c["candidate"]
    th = c["thresholds"]
    out.print(f"baseline  {b['name']} v{b['version']} ({b['fingerprint'][:12]})")
    out.print(f"candidate {k['name']} v{k['version']} ({k['fingerprint'][:12]})")
    out.print(f"{c['n_common_images']} images seen by both, of labels both know; {th['description']}")
    note = test_set_note(c)
    if note:
        out.print(styled(("NOTE", "bold yellow"), f": {note}"))
        for m in c["test_sets"]["examples"]["relabelled"]:
            out.print(f"  relabelled: {m['path']}: {m['baseline_label']} -> {m['candidate_label']}")
    t = table()
    t.add_column("class", no_wrap=True)
    # The bootstrap CI of the change is in --json and --html: with it the table outgrows 80 columns.
    for col in ("n", "base→cand", "change", "b/c", "p", "score", "p(s)", "MDD"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    for lab, x in list(c["classes"].items()) + [("(overall)", c["overall"])]:
        verdict = VERDICT_SHORT[x["status"]] + ("<MDD" if x.get("below_detectable") else "")
        t.add_row(lab, str(x["n"]), f"{num(x['baseline'], 2)}→{num(x['candidate'], 2)}",
                  num(x["delta"], 2, signed=True), f"{x['b_baseline_only']}/{x['c_candidate_only']}",
                  num(x["p_value"], 2), num(x["score_change"], 2, signed=True), num(x["score_p_adjusted"], 2),
                  num(x["min_detectable_drop"], 2), verdict)
    out.print(t)
    out.print(COMPARE_LEGEND)
    if c["dropped_not_significant"]:
        out.print(f"n.s.: dropped by more than {th['max_drop']} but not flagged; <MDD: by less than the "
                  "smallest drop its images can show on answers alone")
    for lab, x in c["new_labels"].items():
        out.print(f"new label {lab}: recall {num(x['recall'])} (n={x['n']}), not compared")
    if c["dropped_labels"]:
        out.print(f"labels the candidate no longer has: {', '.join(c['dropped_labels'])}")
    for lab in c["regressed_classes"]:
        x = c["classes"][lab]
        out.print(f"{lab}: {class_verdict(x)} (evidence: {' and '.join(x['flagged_by'])})")
    for lab in c["dropped_not_significant"]:
        out.print(f"{lab}: {class_verdict(c['classes'][lab])} (McNemar p = {num(c['classes'][lab]['p_value'])}, "
                  f"score p = {num(c['classes'][lab]['score_p_adjusted'])})")
    for line in facets.lines(c):
        out.print(line)
    if c["verdict"] == "regression":
        out.print(styled(("REGRESSION", "bold red"), f": {facets.failed_because(c)}"))
    elif c["dropped_not_significant"]:
        out.print(styled(("PASS", "bold green"), ": no class regressed significantly; "
                         f"{len(c['dropped_not_significant'])} dropped without enough evidence to tell"))
    else:
        out.print(styled(("PASS", "bold green"), ": no class regressed"))


@click.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@threshold_options
@setting_option("robustness")
@latency_options
@setting_option("test_data_dir", "test_data")
@click.option("--json", "as_json", is_flag=True, help="print JSON (for CI) instead of tables")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write HTML here ('-': standard output, instead of the tables)")
@verdict_options
@click.pass_context
def compare_cmd(ctx, baseline, candidate, as_json, html_path, **kw):
    """Compare two models per class; exit 1 on a regression.

    Exit 0: no regression, 1: regression, 2: usage or data error. BASELINE and CANDIDATE: a
    model name (its newest version), a fingerprint prefix, NAME@VERSION, NAME@latest, or
    NAME@previous (the version before CANDIDATE, or before the newest). Newest and previous follow
    version order (2 < 10), then first seen; a NAME@VERSION that two fingerprints claim is refused
    (exit 2) until a fingerprint prefix names one.

    In GitHub Actions the Markdown summary goes to the step summary and each regressed class
    becomes an error annotation; --junit writes the JUnit XML GitLab and Jenkins read.
    """
    outputs = VerdictOutputs.of(kw, as_json, html_path)
    engine = open_store(ctx, migrate=False, code=2, reading=True)  # 1 means "regressed": an outage is "cannot decide"
    with engine.connect() as conn:
        try:
            cand = resolve(conn, candidate)
            base = resolve(conn, baseline, relative_to=cand)
            require_undisputed(base, cand)
        except SelectorError as e:
            fail(str(e), 2)
        if base.fingerprint == cand.fingerprint:
            fail(f"baseline and candidate are the same model ({cand.title})", 2)
        base_rows = store.load_rows(conn, model_id=base.id)
        cand_rows = store.load_rows(conn, model_id=cand.id)
        result = compare(base, base_rows, cand, cand_rows, thresholds_from(kw))
        if kw["latency"]:
            seen_at = (store.latest_url(conn, model_id=base.id), store.latest_url(conn, model_id=cand.id))
            _time_stored(result, (base, cand), (base_rows, cand_rows), seen_at, kw)
        if html_path:
            from ..outputs.html_report import recall_history, render_html
            reports = [model_report(base, base_rows), model_report(cand, cand_rows)]
            write_output(html_path, render_html(reports, recall_history(conn), result))
    if result["n_common_images"] == 0:
        fail("the two models share no evaluated images with labels both know", 2)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not outputs.stdout_taken:
        with outputs.fence():
            print_comparison(result)
    outputs.write(junit=lambda: ci_report.junit_xml([result], name="data-collector compare"),
                  markdown=lambda: ci_report.markdown_summary(result),
                  annotations=lambda: ci_report.github_annotations(result))
    outputs.export(engine, result, [base.fingerprint, cand.fingerprint])
    ctx.exit(1 if result["verdict"] == "regression" else 0)


def _time_stored(result: dict, infos: tuple, rows: tuple, seen_at: tuple, kw) -> None:
    """compare --latency: time both models at the URLs they were seen at last (each checked to be
    that model by its fingerprint and its answers)."""
    from ..analysis.latency import LatencyError
    from ..collect import CollectOptions
    from ..service.deploy import DeploySettings
    from ..service.gate import add_latency, time_sides

    settings = DeploySettings(test_dir=kw["test_data"], report_dir=Path("."), opts=CollectOptions(),
                              latency=latency_rule_from(kw))
    try:
        add_latency(result, time_sides((None, None), infos, rows, seen_at, settings))
    except LatencyError as e:
        fail(f"latency: {e}", 2)


@click.command("plan")
@option("--min-drop", type=click.FloatRange(0, 1, min_open=True), default=0.1,
        help="accuracy drop per class the test set should be able to detect")
@option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
        help="significance level of the gate")
@option("--power", type=click.FloatRange(0.5, 1, max_open=True), default=DEFAULT_POWER,
        help="chance of detecting a drop of that size")
@option("--flip-rate", type=click.FloatRange(0, 0.5), default=DEFAULT_FLIP_RATE,
        help="share of images whose answer flips each way between two retrains of one recipe")
@setting_option("test_data_dir", "test_data")
def plan_cmd(min_drop, alpha, power, flip_rate, test_data):
    """Images per class needed to see an accuracy drop.

    Prints them against what the test set has.

    Counts are of answers alone (the McNemar test); the score test of `compare` sees smaller drops.
    """
    try:
        items = testset.scan(test_data)
    except testset.TestSetError as e:
        fail(str(e), 2)
    counts: dict[str, dict[str, int]] = {}
    for i in items:
        if not i.is_probe:
            counts.setdefault(i.label, {}).setdefault(i.kind, 0)
            counts[i.label][i.kind] += 1
    needed = images_needed(min_drop, alpha, power, flip_rate)
    out.print(f"to detect a {min_drop:.2f} accuracy drop (McNemar, alpha {alpha}, power {power}, flip rate "
              f"{flip_rate} each way) a class needs {needed} images")
    t = table()
    t.add_column("class", no_wrap=True)
    for col in ("photos", "sprites", "images", "MDD now", "needed", "short by"):
        t.add_column(col, justify="right", no_wrap=True)
    for lab in sorted(counts):
        c = counts[lab]
        n = sum(c.values())
        t.add_row(lab, str(c.get("photo", 0)), str(c.get("sprite", 0)), str(n),
                  num(min_detectable_drop(n, alpha), 2), str(needed), str(max(0, needed - n)) if n < needed else "")
    out.print(t)
    out.print("MDD now: smallest accuracy drop the class's images can show at all (every flip one way)")
