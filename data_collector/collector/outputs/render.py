"""HTML fragments and inline SVG plots shared by the static report (`report --html`) and the web view.

Every string that came from a model server or the database (names, labels, versions) goes
through `esc`: a model is untrusted input, its name too. The SVG is inline (no external
resource, no script), sized by its viewBox so that it shrinks with the page.
"""

from __future__ import annotations

import html
import math

from ..analysis.compare import COMPARE_LEGEND, class_verdict, test_set_note
from ..formatting import interval, num
from ..text import literal

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22"]
LOW_RECALL = 0.85  # rows and bars under this are marked


def page(title: str, body: str, *, css: str | None = None, header: str = "") -> str:
    """The one HTML page shell (web view and report files): `title` is text (escaped), `body` and
    `header` are markup built with esc(). The icon is inline: no request that can fail."""
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><link rel='icon' href='data:,'><style>{css or BASE_CSS}</style></head>"
            f"<body>{header}<main>{body}</main></body></html>")


def esc(value) -> str:
    """Text as HTML data: escaped, its control and format characters (bidi overrides, zero-width)
    shown as visible escapes."""
    return html.escape(literal(value), quote=True)


def recall_colour(r: float | None) -> str:
    """White (no data), then red (0) through yellow to green (1)."""
    if r is None:
        return "#eeeeee"
    r = max(0.0, min(1.0, r))
    hue = int(120 * r**2)  # the top of the scale is where the differences matter
    return f"hsl({hue},70%,{55 if r < 1 else 45}%)"


def recall_strip(recalls: dict[str, float | None]) -> str:
    """One small coloured cell per class, the class and its recall in the tooltip and under it."""
    cells = "".join(
        f"<span class='cell' style='background:{recall_colour(r)}' title='{esc(lab)}: {num(r)}'>"
        f"<span class='cell-label'>{esc(lab[:3])}</span></span>" for lab, r in recalls.items())
    return f"<span class='strip'>{cells}</span>"


def bar_chart_svg(title: str, items: list[tuple[str, float | None]], *, vmax: float = 1.0,
                  mark_below: float | None = LOW_RECALL) -> str:
    """Vertical bars with their value printed on top and a title; None is an empty slot."""
    w_bar, gap, top, h = 46, 14, 30, 150
    width = max(7.5 * len(title) + 20, 34 + len(items) * (w_bar + gap) + gap)  # the title fits
    left = width - len(items) * (w_bar + gap) - gap
    height = top + h + 70
    out = [f"<svg class='chart' width='{width:.0f}' height='{height}' viewBox='0 0 {width:.0f} {height}' role='img' "
           f"aria-label='{esc(title)}'>",
           f"<text x='{width / 2}' y='18' text-anchor='middle' class='title'>{esc(title)}</text>"]
    for frac in (0, 0.5, 1):
        y = top + h - frac * h
        out.append(f"<line x1='{left}' x2='{width}' y1='{y}' y2='{y}' class='grid'/>"
                   f"<text x='{left - 4}' y='{y + 4}' text-anchor='end' class='axis'>{frac * vmax:g}</text>")
    for i, (lab, v) in enumerate(items):
        x = left + gap + i * (w_bar + gap)
        if v is not None:
            bh = h * max(0.0, min(v, vmax)) / vmax
            colour = "#c0392b" if mark_below is not None and v < mark_below else "#2e86c1"
            out.append(f"<rect x='{x}' y='{top + h - bh}' width='{w_bar}' height='{bh}' fill='{colour}'>"
                       f"<title>{esc(lab)}: {num(v)}</title></rect>"
                       f"<text x='{x + w_bar / 2}' y='{top + h - bh - 4}' text-anchor='middle' "
                       f"class='value'>{num(v, 2)}</text>")
        out.append(f"<text x='{x + w_bar / 2}' y='{top + h + 14}' text-anchor='end' class='axis' "
                   f"transform='rotate(-35 {x + w_bar / 2} {top + h + 14})'>{esc(lab)}</text>")
    out.append("</svg>")
    return "".join(out)


def histogram_svg(title: str, bins: dict[str, int]) -> str:
    total = sum(bins.values()) or 1
    return bar_chart_svg(title, [(k, v / total) for k, v in bins.items()], mark_below=None)


def line_chart_svg(title: str, xs: list[str], series: dict[str, list[float | None]]) -> str:
    """One line per series over the x categories (versions), legend under the plot. The y axis
    starts at 0, or just under the lowest value when every value is above 0.5 (recall lives high)."""
    left, top, w, h = 44, 30, max(440, 90 * len(xs)), 220
    width = left + w + 20
    legend_rows = (len(series) + 3) // 4
    height = top + h + 40 + 18 * legend_rows
    values = [y for ys in series.values() for y in ys if y is not None]
    lo = 0.0 if not values or min(values) <= 0.5 else max(0.0, math.floor((min(values) - 0.05) * 10) / 10)
    ticks = [lo + (1 - lo) * k / 4 for k in range(5)]

    def y_at(v: float) -> float:
        return top + h - h * (v - lo) / (1 - lo)

    out = [f"<svg class='chart' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
           f"aria-label='{esc(title)}'>",
           f"<text x='{width / 2}' y='18' text-anchor='middle' class='title'>{esc(title)}</text>"]
    for t in ticks:
        out.append(f"<line x1='{left}' x2='{left + w}' y1='{y_at(t):.1f}' y2='{y_at(t):.1f}' class='grid'/>"
                   f"<text x='{left - 4}' y='{y_at(t) + 4:.1f}' text-anchor='end' class='axis'>{t:.3g}</text>")

    def x_at(i: int) -> float:
        return left + (w * (i + 0.5) / max(len(xs), 1))

    for i, x in enumerate(xs):
        out.append(f"<text x='{x_at(i)}' y='{top + h + 16}' text-anchor='middle' class='axis'>{esc(x)}</text>")
    for k, (name, ys) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(x_at(i), y_at(y), y) for i, y in enumerate(ys) if y is not None]
        if len(pts) > 1:
            out.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' "
                       f"points='{' '.join(f'{a:.1f},{b:.1f}' for a, b, _ in pts)}'/>")
        for a, b, y in pts:
            out.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3.5' fill='{colour}'>"
                       f"<title>{esc(name)}: {num(y)}</title></circle>")
        lx, ly = left + (k % 4) * (w / 4), top + h + 36 + 18 * (k // 4)
        out.append(f"<rect x='{lx}' y='{ly - 9}' width='10' height='10' fill='{colour}'/>"
                   f"<text x='{lx + 14}' y='{ly}' class='axis'>{esc(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def confusion_table(labels: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as a table (rows true, columns predicted), cells shaded by their row share."""
    head = "".join(f"<th class='rot'><span>{esc(lab)}</span></th>" for lab in labels)
    rows = []
    for lab, row in zip(labels, matrix, strict=True):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            share = v / total
            diag = labels[j] == lab
            bg = f"rgba(46,134,193,{share:.2f})" if diag else f"rgba(192,57,43,{share:.2f})"
            fg = "#fff" if share > 0.55 else "#000"
            cells.append(f"<td style='background:{bg};color:{fg}' title='true {esc(lab)}, predicted "
                         f"{esc(labels[j])}: {v}'>{v}</td>")
        rows.append(f"<tr><th>{esc(lab)}</th>{''.join(cells)}</tr>")
    return (f"<table class='confusion'><caption>Confusion matrix: rows are the true class, columns the "
            f"predicted one (blue: right, red: wrong; shade = share of the row)</caption>"
            f"<tr><th>true \\ predicted</th>{head}</tr>{''.join(rows)}</table>")


def class_table(rep: dict, *, by_kind: dict[str, dict] | None = None) -> str:
    """Per-class support, precision, recall, F1, minimum detectable drop; per image kind when given."""
    kinds = list(by_kind or {})
    head = "".join(f"<th>recall ({esc(k)})</th>" for k in kinds)
    out = [f"<table class='classes'><tr><th>class</th><th>support</th><th>precision</th><th>recall</th>"
           f"<th>F1</th>{head}<th>MDD</th></tr>"]
    for lab, c in rep["classes"].items():
        cls = " class='bad'" if c["recall"] is not None and c["recall"] < LOW_RECALL else ""
        extra = ""
        for k in kinds:
            kc = by_kind[k]["classes"].get(lab)
            extra += (f"<td>{num(kc['recall'])} <small>({kc['support']})</small></td>" if kc and kc["support"]
                      else "<td>-</td>")
        out.append(f"<tr{cls}><td>{esc(lab)}</td><td>{c['support']}</td><td>{num(c['precision'])}</td>"
                   f"<td>{num(c['recall'])}</td><td>{num(c['f1'])}</td>{extra}"
                   f"<td>{num(c['min_detectable_drop'], 2)}</td></tr>")
    out.append("</table>")
    pw = rep["power"]
    out.append(f"<p class='legend'>Rows in red: recall under {LOW_RECALL}. MDD: the smallest accuracy drop the "
               f"class's images can show on answers alone (exact McNemar, alpha {pw['alpha']}); to detect a "
               f"{pw['drop']:.2f} drop with 80% power a class needs about {pw['images_needed_per_class']} "
               f"images (<code>data-collector plan</code>).</p>")
    return "".join(out)


def compare_table(c: dict) -> str:
    rows = ["<table class='compare'><tr><th>class</th><th>n</th><th>baseline</th><th>candidate</th>"
            "<th>change</th><th>95% CI</th><th>b/c</th><th>p (McNemar)</th><th>score change</th>"
            "<th>p (score, Holm)</th><th>MDD</th><th>verdict</th></tr>"]
    for lab, x in list(c["classes"].items()) + [("overall", c["overall"])]:
        cls = " class='bad'" if x["regressed"] else " class='unsure'" if x["status"] != "ok" else ""
        rows.append(f"<tr{cls} data-class='{esc(lab)}'><td>{esc(lab)}</td><td>{x['n']}</td>"
                    f"<td>{num(x['baseline'])}</td><td>{num(x['candidate'])}</td>"
                    f"<td>{num(x['delta'], signed=True)}</td><td>{interval(*x['ci95']) if x['ci95'] else '-'}</td>"
                    f"<td>{x['b_baseline_only']}/{x['c_candidate_only']}</td><td>{x['p_value']:.4f}</td>"
                    f"<td>{num(x['score_change'], signed=True)}</td><td>{x['score_p_adjusted']:.4f}</td>"
                    f"<td>{num(x['min_detectable_drop'], 2)}</td><td class='verdict'>{esc(class_verdict(x))}</td>"
                    f"</tr>")
    rows.append("</table>")
    rows.append(f"<p class='legend'>Red: regressed; amber: dropped but not significant. {esc(COMPARE_LEGEND)}</p>")
    note = test_set_note(c)
    if note:
        moved = c["test_sets"]["examples"]["relabelled"]
        shown = "; ".join(f"{m['path']}: {m['baseline_label']} → {m['candidate_label']}" for m in moved)
        rows.append(f"<p class='test-sets'><strong>Test sets differ</strong>: {esc(note)}"
                    + (f". Relabelled: {esc(shown)}" if shown else "") + "</p>")
    return "\n".join(rows)


def reliability_svg(cal: dict) -> str:
    """The reliability diagram of both sides: accuracy against mean confidence per bin (a dot per
    non-empty bin, its area the bin's images), the diagonal being perfect calibration."""
    size, pad = 300, 40
    inner = size - 2 * pad

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return pad + conf * inner, size - pad - acc * inner

    parts = [f"<svg class='chart reliability' viewBox='0 0 {size + 110} {size}' width='{size + 110}' "
             f"role='img' aria-label='reliability diagram'>",
             f"<text class='title' x='{pad}' y='20'>Reliability: accuracy against confidence</text>",
             f"<line class='grid' x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}'/>",
             f"<rect x='{pad}' y='{pad}' width='{inner}' height='{inner}' fill='none' stroke='#999'/>",
             f"<text class='axis' x='{pad}' y='{size - 12}'>confidence 0 → 1</text>",
             f"<text class='axis' x='4' y='{pad - 6}'>accuracy</text>"]
    for k, (side, colour) in enumerate((("baseline", PALETTE[0]), ("candidate", PALETTE[1]))):
        bins = cal[side]["reliability"]
        total = sum(b["n"] for b in bins) or 1
        pts = [xy(b["confidence"], b["accuracy"]) for b in bins]
        if len(pts) > 1:
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='"
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + "'/>")
        for b, (x, y) in zip(bins, pts, strict=True):
            r = 2 + 10 * math.sqrt(b["n"] / total)
            parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}' fill='{colour}' fill-opacity='.5'>"
                         f"<title>{side}: {b['n']} images, confidence {b['confidence']:.3f}, accuracy "
                         f"{b['accuracy']:.3f}</title></circle>")
        ece = cal[side]["ece"]
        parts.append(f"<text class='axis' x='{size - 30}' y='{pad + 16 + 18 * k}' fill='{colour}'>{side} ECE "
                     f"{num(ece, 3)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def calibration_html(c: dict) -> str:
    cal = c.get("calibration")
    if not cal or cal["baseline"]["ece"] is None or cal["candidate"]["ece"] is None:
        return ""
    ch = cal["change"]
    rule = ("on, flagged" if cal["flagged"] else "on, not flagged") if cal["rule_on"] else "off"
    rows = ["<table class='calibration'><tr><th></th><th>baseline</th><th>candidate</th><th>change</th>"
            "<th>95% CI</th></tr>",
            f"<tr{' class=bad' if cal['flagged'] else ''}><td>ECE (top-1)</td><td>{num(cal['baseline']['ece'])}</td>"
            f"<td>{num(cal['candidate']['ece'])}</td><td>{num(ch['ece'], signed=True)}</td>"
            f"<td>{interval(*ch['ece_ci95'])}</td></tr>"]
    if ch["brier"] is not None:
        rows.append(f"<tr><td>Brier</td><td>{num(cal['baseline']['brier'])}</td><td>{num(cal['candidate']['brier'])}"
                    f"</td><td>{num(ch['brier'], signed=True)}</td><td>{interval(*ch['brier_ci95'])}</td></tr>")
    for lab, x in ch["classes"].items():
        rows.append(f"<tr data-class='{esc(lab)}'><td>class-wise ECE: {esc(lab)}</td>"
                    f"<td>{num(cal['baseline']['classes'].get(lab, {}).get('ece'))}</td>"
                    f"<td>{num(cal['candidate']['classes'].get(lab, {}).get('ece'))}</td>"
                    f"<td>{num(x['ece'], signed=True)}</td><td>{interval(*x['ece_ci95'])}</td></tr>")
    rows.append("</table>")
    return ("<section class='facet' id='calibration'><h3>Calibration</h3>"
            f"<p>Rule {rule}: flag when the top-1 ECE rose by more than "
            f"{num(cal['max_ece_rise'])} with its paired bootstrap interval above 0. {esc(cal['baseline']['binning'])}"
            f"; Brier summed over each model's labels.</p>{reliability_svg(cal)}<div class='scroll'>{''.join(rows)}"
            "</div></section>")


def latency_html(c: dict) -> str:
    lat = c.get("latency")
    if not lat:
        return ""
    rows = ["<table class='latency'><tr><th></th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>images/s</th></tr>"]
    for side in ("baseline", "candidate"):
        x = lat[side]
        rows.append(f"<tr><td>{side}</td><td>{x['p50_ms']:.1f}</td><td>{x['p95_ms']:.1f}</td><td>{x['p99_ms']:.1f}</td>"
                    f"<td>{x['images_per_s']:.0f}</td></tr>")
    ci = lat["p95_change_ci95"]
    rows.append(f"<tr{' class=bad' if lat['flagged'] else ''}><td>change</td>"
                f"<td>{lat['p50_change_ms']:+.1f}</td><td>{lat['p95_change_ms']:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}]</td>"
                f"<td></td><td>{'SLOWER' if lat['flagged'] else 'ok'}</td></tr></table>")
    return ("<section class='facet' id='latency'><h3>Latency</h3>"
            f"<p>{lat['pairs']} interleaved pairs of requests of {lat['images_per_request']} "
            f"images (baseline, candidate, candidate, baseline, …); {esc(lat['rule'])}.</p>{''.join(rows)}</section>")


def robustness_html(c: dict, image_url=None) -> str:
    """Per class and perturbation: accuracy baseline → candidate on the same perturbed images, the
    extra harm to the candidate, the verdict; with `image_url(sha256)`, the perturbed images the
    candidate gets wrong and the baseline right, for each cell that hurts the candidate more."""
    rob = c.get("robustness")
    if not rob:
        return ""
    if not rob["n_common_images"]:
        return ("<section class='facet' id='robustness'><h3>Robustness</h3><p>No perturbed image both models "
                "answered (collect with --robustness).</p></section>")
    names = list(rob["perturbations"])
    rows = ["<table class='robustness'><tr><th>class</th>" + "".join(
        f"<th title='{esc(rob['perturbations'][p])}'>{esc(p)}</th>" for p in names) + "</tr>"]
    shown = []
    for lab, cells in rob["cells"].items():
        tds = []
        for p in names:
            x = cells.get(p)
            if x is None:
                tds.append("<td>-</td>")
                continue
            hurts = (x["harm"] or 0) <= -HARM_SHOWN
            cls = " class='bad'" if x["regressed"] else " class='unsure'" if hurts else ""
            harm = f"<br><small>harm {num(x['harm'], 2, signed=True)}</small>" if hurts else ""
            tds.append(f"<td{cls}>{num(x['baseline'], 2)}→{num(x['candidate'], 2)}{harm}</td>")
            if image_url and x["examples"] and (x["regressed"] or hurts):
                shown.append((lab, p, x))
        rows.append(f"<tr data-class='{esc(lab)}'><td>{esc(lab)}</td>{''.join(tds)}</tr>")
    rows.append("</table>")
    out = ["<section class='facet' id='robustness'><h3>Robustness</h3>"
           f"<p>Suite {esc(rob['suite'])}: accuracy of baseline → candidate on the same "
           f"perturbed images ({rob['n_common_images']}); red: regressed (the gate's tests, Holm over every "
           f"cell), amber: the perturbation costs the candidate at least {HARM_SHOWN:.2f} more accuracy than the "
           "baseline, against each one's accuracy on the images it was made from (harm).</p>",
           f"<div class='scroll'>{''.join(rows)}</div>"]
    for lab, p, x in shown:
        figs = "".join(f"<figure><img src='{esc(image_url(e['sha256']))}' alt='{esc(e['path'])}' width='96' "
                       f"height='96' loading='lazy'><figcaption>{esc(e['baseline'])} → {esc(e['candidate'])}"
                       "</figcaption></figure>" for e in x["examples"])
        out.append(f"<div class='perturbed' data-class='{esc(lab)}' data-perturbation='{esc(p)}'><h4>{esc(lab)} "
                   f"under {esc(p)}: right in the baseline, wrong in the candidate</h4>{figs}</div>")
    return "".join(out) + "</section>"


HARM_SHOWN = 0.05  # harm (robustness.py) from which a cell is marked: a flip in 30 images is 0.033


def facets_html(c: dict, image_url=None) -> str:
    """Calibration, latency and robustness of a comparison (what it holds of them)."""
    return calibration_html(c) + latency_html(c) + robustness_html(c, image_url)


BASE_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{padding:1em;max-width:1200px;margin:auto}
h1,h2,h3{font-weight:600}
table{border-collapse:collapse;margin:.5em 0;background:#fff}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.bad{background:#fadbd8}.unsure{background:#fdebd0}
.legend{color:#555;font-size:.9em;max-width:60em}
.scroll{overflow-x:auto;max-width:100%}
svg.chart{max-width:100%;height:auto;background:#fff;border:1px solid #e3e3e3;margin:.3em .3em .3em 0;
 vertical-align:top}
svg .title{font:600 14px sans-serif}svg .axis{font:11px sans-serif;fill:#333}
svg .value{font:11px sans-serif;fill:#000}svg .grid{stroke:#ddd}
table.confusion td{min-width:2.6em;text-align:center;font-size:1.05em;padding:6px}
table.confusion th.rot{vertical-align:bottom;text-align:center}
.perturbed figure{display:inline-block;margin:.2em;text-align:center;font-size:.8em}
.strip{display:inline-flex;gap:2px}.cell{display:inline-block;width:2.1em;height:1.4em;border-radius:2px;
 text-align:center;font-size:.7em;line-height:1.4em;color:#000}
"""
