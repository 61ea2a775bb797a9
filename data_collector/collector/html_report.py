"""One self-contained HTML file (plots embedded as PNG data URIs): opens offline, mails well."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

from sqlalchemy import Connection

from . import store
from .compare import COMPARE_LEGEND, class_verdict
from .formatting import interval, num
from .reports import identity_line, model_report


def recall_history(conn: Connection) -> dict[str, list[dict]]:
    """Per model name: its versions in order of first appearance, with per-class recall."""
    out: dict[str, list[dict]] = {}
    for m in store.list_models(conn):
        rep = model_report(m, store.load_rows(conn, model_id=m.id))
        out.setdefault(m.name, []).append({"version": m.version, "fingerprint": m.fingerprint,
                                           "recall": {k: v["recall"] for k, v in rep["classes"].items()}})
    return out


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(rep: dict) -> str:
    plt = _plt()
    labels, cm = rep["confusion"]["labels"], rep["confusion"]["matrix"]
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in cm), default=0) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=8)
    return _png(fig)


def recall_bars_png(rep: dict) -> str:
    plt = _plt()
    labels = list(rep["classes"])
    vals = [rep["classes"][k]["recall"] or 0.0 for k in labels]
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(labels), 2.6))
    ax.bar(labels, vals, color=["#c0392b" if v < 0.85 else "#2e86c1" for v in vals])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def history_png(name: str, versions: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 2.8))
    xs = [f"v{v['version']}\n{v['fingerprint'][:6]}" for v in versions]
    for lab in sorted({k for v in versions for k in v["recall"]}):
        ys = [v["recall"].get(lab) for v in versions]
        ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", label=lab)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_title(name)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return _png(fig)


def render_html(reports: list[dict], history: dict[str, list[dict]] | None = None,
                comparison: dict | None = None) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Pokemon classifier report</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th:first-child,td:first-child{text-align:left}.bad{background:#fadbd8}.unsure{background:#fdebd0}.model{margin-top:2em}"
             "img{margin:.3em}</style></head><body>",
             "<h1>Pokemon classifier report</h1>",
             f"<p>Generated {e(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}, {len(reports)} model(s).</p>"]
    if comparison:
        parts.append(_comparison_html(comparison))
    if history:
        multi = {k: v for k, v in history.items() if len(v) > 1}
        if multi:
            parts.append("<h2>Per-class recall across versions</h2>")
            parts += [f"<img alt='recall history {e(k)}' src='{history_png(k, v)}'>" for k, v in multi.items()]
    for rep in reports:
        m = rep["model"]
        parts.append(f"<div class='model'><h2>{e(m['name'])} v{e(m['version'])} "
                     f"<small><code>{e(m['fingerprint'][:16])}</code></small></h2>")
        parts.append(f"<p class='identity'>{e(identity_line(m, with_url=False))}</p>")
        parts.append(f"<p>Accuracy {num(rep['accuracy'])} on {rep['n']} labelled images; mean confidence "
                     f"when right {num(rep['confidence']['mean_when_right'])}, when wrong "
                     f"{num(rep['confidence']['mean_when_wrong'])}.</p>")
        parts.append("<table><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th>"
                     "<th>MDD</th></tr>")
        for lab, c in rep["classes"].items():
            cls = " class='bad'" if c["recall"] is not None and c["recall"] < 0.85 else ""
            parts.append(f"<tr{cls}><td>{e(lab)}</td><td>{c['support']}</td><td>{num(c['precision'])}</td>"
                         f"<td>{num(c['recall'])}</td><td>{num(c['f1'])}</td>"
                         f"<td>{num(c['min_detectable_drop'], 2)}</td></tr>")
        parts.append("</table>")
        pw = rep["power"]
        parts.append(f"<p>Pink rows: recall under 0.85. MDD: the smallest accuracy drop the class's images can "
                     f"show on answers alone (exact McNemar, alpha {pw['alpha']}); to detect a {pw['drop']:.2f} "
                     f"drop with 80% power a class needs about {pw['images_needed_per_class']} images "
                     f"(<code>data-collector plan</code>).</p>")
        parts.append(f"<img alt='confusion {e(m['name'])}' src='{confusion_png(rep)}'>"
                     f"<img alt='recall {e(m['name'])}' src='{recall_bars_png(rep)}'>")
        p = rep["probes"]
        if p["n"]:
            hist = ", ".join(f"{e(k)}: {v}" for k, v in p["histogram"].items())
            parts.append(f"<p>Lookalike probes (n={p['n']}): mean max confidence "
                         f"{num(p['mean_max_confidence'])}, share &ge; 0.9: {num(p['share_over_0_9'])} ({hist}).</p>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _comparison_html(c: dict) -> str:
    e = html.escape
    b, k = c["baseline"], c["candidate"]
    rows = [f"<h2>Comparison: {e(b['name'])} v{e(b['version'])} &rarr; {e(k['name'])} v{e(k['version'])}: "
            f"<b>{e(c['verdict'].upper())}</b></h2>",
            f"<p>{e(c['thresholds']['description'])}</p>",
            "<table><tr><th>class</th><th>n</th><th>baseline</th><th>candidate</th><th>change</th>"
            "<th>95% CI</th><th>b/c</th><th>p (McNemar)</th><th>score change</th><th>p (score, Holm)</th>"
            "<th>MDD</th><th>verdict</th></tr>"]
    for lab, x in list(c["classes"].items()) + [("overall", c["overall"])]:
        cls = " class='bad'" if x["regressed"] else " class='unsure'" if x["status"] != "ok" else ""
        rows.append(f"<tr{cls}><td>{e(lab)}</td><td>{x['n']}</td><td>{num(x['baseline'])}</td>"
                    f"<td>{num(x['candidate'])}</td><td>{num(x['delta'], signed=True)}</td>"
                    f"<td>{interval(*x['ci95'])}</td><td>{x['b_baseline_only']}/{x['c_candidate_only']}</td>"
                    f"<td>{x['p_value']:.4f}</td><td>{num(x['score_change'], signed=True)}</td>"
                    f"<td>{x['score_p_adjusted']:.4f}</td><td>{num(x['min_detectable_drop'], 2)}</td>"
                    f"<td>{e(class_verdict(x))}</td></tr>")
    rows.append("</table>")
    rows.append(f"<p>{e(COMPARE_LEGEND)}</p>")
    return "\n".join(rows)
