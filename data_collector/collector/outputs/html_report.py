"""One self-contained HTML file (plots as inline SVG): opens offline, mails well. Its fragments
(tables, plots) are the web view's (render.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from ..analysis.reports import identity_line, recalls
from ..formatting import num
from ..storage import store
from .render import (
    bar_chart_svg,
    class_table,
    compare_table,
    confusion_table,
    esc,
    facets_html,
    histogram_svg,
    line_chart_svg,
    page,
)


def recall_history(conn: Connection) -> dict[str, list[dict]]:
    """Per model name: its versions in order of first appearance, with per-class recall (one
    aggregate query, as the web view's history)."""
    counts = store.class_counts(conn)
    out: dict[str, list[dict]] = {}
    for m in store.list_models(conn):
        out.setdefault(m.name, []).append({**m.to_dict(), "recall": recalls(counts.get(m.id, {}), m.labels)})
    return out


def history_svg(name: str, versions: list[dict]) -> str:
    xs = [f"v{v['version']} {v['fingerprint'][:6]}" for v in versions]
    labels = sorted({k for v in versions for k in v["recall"]})
    return line_chart_svg(f"{name}: per-class recall by version", xs,
                          {lab: [v["recall"].get(lab) for v in versions] for lab in labels})


def model_section(rep: dict) -> str:
    """Per-class table (with the photo/sprite split), confusion matrix, recall bars, probe histogram."""
    m = rep["model"]
    kinds = {k: v for k, v in rep["by_kind"].items() if k != "lookalike"}
    parts = [f"<p class='identity'>{esc(identity_line(m, with_url=False))}</p>",
             f"<p>Accuracy {num(rep['accuracy'])} on {rep['n']} labelled images"
             + "".join(f"; {esc(k)} {num(v['accuracy'])} ({v['n']})" for k, v in kinds.items())
             + f"; mean confidence when right {num(rep['confidence']['mean_when_right'])}, when wrong "
             f"{num(rep['confidence']['mean_when_wrong'])}.</p>",
             f"<div class='scroll'>{class_table(rep, by_kind=kinds if len(kinds) > 1 else None)}</div>",
             f"<div class='scroll'>{confusion_table(rep['confusion']['labels'], rep['confusion']['matrix'])}</div>",
             bar_chart_svg(f"Recall per class, {m['name']} v{m['version']}",
                           [(k, c["recall"]) for k, c in rep["classes"].items()])]
    p = rep["probes"]
    if p["n"]:
        parts.append(histogram_svg(f"Lookalike probes: share by top confidence (n={p['n']})", p["histogram"]))
        parts.append(f"<p>Lookalike probes (n={p['n']}): mean max confidence {num(p['mean_max_confidence'])}, "
                     f"share &ge; 0.9: {num(p['share_over_0_9'])}. A model that knows only its classes should "
                     "not be sure about these.</p>")
    return "\n".join(parts)


def render_html(reports: list[dict], history: dict[str, list[dict]] | None = None,
                comparison: dict | None = None) -> str:
    parts = ["<h1>Pokemon classifier report</h1>",
             f"<p>Generated {esc(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}, {len(reports)} model(s).</p>"]
    if comparison:
        b, k = comparison["baseline"], comparison["candidate"]
        parts.append(f"<h2>Comparison: {esc(b['name'])} v{esc(b['version'])} &rarr; {esc(k['name'])} "
                     f"v{esc(k['version'])}: <b>{esc(comparison['verdict'].upper())}</b></h2>"
                     f"<p>{esc(comparison['thresholds']['description'])}</p>"
                     f"<div class='scroll'>{compare_table(comparison)}</div>{facets_html(comparison)}")
    if history:
        multi = {k: v for k, v in history.items() if len(v) > 1}
        if multi:
            parts.append("<h2>Per-class recall across versions</h2>")
            parts += [history_svg(k, v) for k, v in multi.items()]
    for rep in reports:
        m = rep["model"]
        parts.append(f"<section class='model'><h2>{esc(m['name'])} v{esc(m['version'])} "
                     f"<small><code>{esc(m['fingerprint'][:16])}</code></small></h2>")
        if m.get("claim_conflict"):
            parts.append("<p class='bad claim-conflict'>Conflicting fingerprint: URLs announcing it answered the "
                         "same images differently; no comparison or gate uses it until <code>data-collector "
                         "conflicts resolve</code>.</p>")
        parts.append(model_section(rep))
        parts.append("</section>")
    return page("Pokemon classifier report", "\n".join(parts))
