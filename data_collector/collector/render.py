"""HTML fragments and inline SVG plots shared by the static report (`report --html`) and the web view.

Every string that came from a model server or the database (names, labels, versions) goes
through `esc`: a model is untrusted input, its name too. The SVG is inline (no external
resource, no script), sized by its viewBox so that it shrinks with the page.
"""

from __future__ import annotations

import html
import math

from .compare import COMPARE_LEGEND, class_verdict, test_set_note
from .formatting import interval, num
from .text import literal

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
.strip{display:inline-flex;gap:2px}.cell{display:inline-block;width:2.1em;height:1.4em;border-radius:2px;
 text-align:center;font-size:.7em;line-height:1.4em;color:#000}
"""
