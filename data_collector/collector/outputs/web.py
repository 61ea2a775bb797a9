"""The web view: a read-only look at the evaluations, served by `data-collector serve`.

Pages (and the JSON behind each, from views.py):
  /                      models, grouped by name, newest version first     /api/models
  /models/SELECTOR       one model: per class, per image kind, confusion,   /api/models/SELECTOR
                         probes, runs, misclassified images (?label=)
  /compare               baseline vs candidate (?baseline=&candidate=),     /api/compare
                         the images that flipped
  /history/NAME          per-class recall across versions                  /api/history/NAME
  /suspects              label suspects: images whose label the answers     /api/suspects
                         doubt (suspects.py), a gallery to check
  /jobs/view             recent deploy-hook and gate jobs (hook enabled)    /api/jobs
  /images/SHA256         an image of the test set by its sha256 (?size= thumbnail)

Images are looked up by sha256 in the database, read from the test-data folder only, and served
only when their bytes still have that sha256: no path from a request reaches the filesystem.
Everything is served by the app (no CDN, no script): the pages work offline.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from ..analysis import views
from ..analysis.compare import Thresholds
from ..analysis.selectors import AmbiguousSelector, ConflictingModel, SelectorError
from ..analysis.suspects import label_suspects
from ..formatting import num
from ..storage import store
from ..testset import perturb
from .html_report import history_svg, model_section
from .http_headers import secure_headers
from .render import BASE_CSS, compare_table, esc, facets_html, page, recall_strip

log = logging.getLogger("collector.outputs.web")

SHA256 = re.compile(r"^[0-9a-f]{64}$")
THUMB_SIZES = (64, 96, 128, 256)
GALLERY_SUSPECTS = 120  # suspects shown on /suspects (all in /api/suspects)
THUMB_CACHE = 2048  # thumbnails kept in memory (a few KB each)

bp = Blueprint("web", __name__)

WEB_CSS = BASE_CSS + """
header{background:#22313f;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header .brand{font-size:1.1em;margin-right:1em}
.group{margin:1.2em 0}.versions td{vertical-align:middle}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(120px,1fr));gap:.6em;margin:.5em 0}
.gallery figure{margin:0;background:#fff;border:1px solid #ddd;padding:4px;text-align:center;font-size:.8em}
.gallery img{width:96px;height:96px;object-fit:contain;image-rendering:auto;background:#f3f3f3}
.gallery .wrong{color:#b03a2e;font-weight:600}.gallery .right{color:#1e8449;font-weight:600}
.verdict-pass{color:#1e8449}.verdict-regression{color:#b03a2e}
form.pick{display:flex;flex-wrap:wrap;gap:.5em;align-items:end;margin:.5em 0}
form.pick select{max-width:100%}
.filters a{margin-right:.6em}
h1,h2{overflow-wrap:anywhere}
@media (max-width:600px){main{padding:.5em}td,th{padding:2px 4px;font-size:.85em}h1{font-size:1.5em}
 .gallery{grid-template-columns:repeat(auto-fill,minmax(100px,1fr))}}
"""


@dataclass
class WebContext:
    engine: Engine
    test_dir: Path
    thresholds: Thresholds
    jobs: object | None = None  # gates.GateService when the deploy hook is served by the same app


class _Thumbs:
    """Thumbnails by (sha256, size), least recently used dropped."""

    def __init__(self, size: int = THUMB_CACHE):
        self.size, self.lock, self.items = size, threading.Lock(), OrderedDict()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def register_web(app: Flask, ctx: WebContext) -> None:
    app.extensions["web"] = ctx
    threading.Thread(target=_warm_up, daemon=True, name="web-warm-up").start()
    app.extensions["web_thumbs"] = _Thumbs()
    app.url_map.merge_slashes = False  # a model named "/a" is /history/%2Fa, not a redirect to /history/a
    app.register_blueprint(bp)


def _warm_up() -> None:
    """scipy.stats (the comparison's tests) takes a second to import: not on the first page's time."""
    import scipy.stats  # noqa: F401


def create_web_app(*, engine: Engine, test_dir: Path, thresholds: Thresholds | None = None) -> Flask:
    """The view alone (tests, benchmarks); `data-collector serve` adds it to the hook's app."""
    app = Flask(__name__)
    secure_headers(app)
    register_web(app, WebContext(engine, Path(test_dir), thresholds or Thresholds()))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        return jsonify({"error": e.description}), e.code or 500

    @app.errorhandler(Exception)
    def _unexpected(e):
        log.error("unexpected error on %s %s", request.path, request.method, exc_info=e)
        return jsonify({"error": "internal error"}), 500

    return app


def _ctx() -> WebContext:
    return current_app.extensions["web"]


class _NotFound(Exception):
    status = 404


class _Ambiguous(_NotFound):
    status = 409


def _read(fn, *args, **kw):
    """Run a view function on a read-only connection; selector errors become 404s."""
    try:
        with _ctx().engine.connect() as conn:
            return fn(conn, *args, **kw)
    except (AmbiguousSelector, ConflictingModel) as e:
        raise _Ambiguous(str(e)) from None
    except SelectorError as e:
        raise _NotFound(str(e)) from None


@bp.errorhandler(_NotFound)
def _not_found(e):
    if request.path.startswith("/api/"):
        return jsonify({"error": str(e)}), e.status
    title = "Ambiguous" if e.status == 409 else "Not found"
    return _page(title, f"<h1>{title}</h1><p>{esc(e)}</p><p><a href='/'>All models</a></p>"), e.status


@bp.errorhandler(DBAPIError)
@bp.errorhandler(store.StoreError)
def _db_down(e):
    msg = "the database is not reachable or not set up (./setup_db.sh)"
    if request.path.startswith("/api/"):
        return jsonify({"error": msg}), 503
    return _page("Database unavailable", f"<h1>Database unavailable</h1><p>{esc(msg)}</p>"), 503


NAV = ("<header><a class='brand' href='/'>Classifier tester</a><a href='/'>Models</a>"
       "<a href='/compare'>Compare</a><a href='/suspects'>Label suspects</a><a href='/jobs/view'>Jobs</a></header>")


def _page(title: str, body: str) -> Response:
    html = page(f"{title} - Pokemon classifier tester", body, css=WEB_CSS, header=NAV)
    return Response(html, mimetype="text/html")  # headers: http_headers.secure_headers


def _model_href(fp: str) -> str:
    return f"/models/{quote(fp)}"


def _compare_href(base_fp: str, cand_fp: str) -> str:
    return "/compare?" + urlencode({"baseline": base_fp, "candidate": cand_fp})


# ---- JSON

@bp.get("/api/models")
def api_models():
    return jsonify(_read(views.models_overview))


@bp.get("/api/models/<path:selector>")
def api_model(selector: str):
    return jsonify(_read(views.model_detail, selector, label=request.args.get("label") or None))


@bp.get("/api/compare")
def api_compare():
    return jsonify(_compare_data())


@bp.get("/api/suspects")
def api_suspects():
    return jsonify({"label_suspects": _read(label_suspects)})


@bp.get("/api/history/<path:name>")
def api_history(name: str):
    return jsonify(_read(views.history, name))


def _compare_data() -> dict:
    cand, base = request.args.get("candidate") or None, request.args.get("baseline") or None
    if cand is None:
        cand = _read(_default_candidate)
    return _read(views.comparison, cand, base, _ctx().thresholds)


def _default_candidate(conn) -> str:
    """The highest version of the most recently evaluated model name that has two or more versions."""
    ms = store.list_models(conn)
    for m in reversed(ms):
        versions = views.by_version(ms, m.name)
        if len(versions) > 1:
            return versions[-1].fingerprint
    raise SelectorError("no model has two evaluated versions yet: nothing to compare")


@bp.get("/favicon.ico")
def favicon():
    """Pages name an inline icon; a browser that asks anyway gets an empty answer, not a 404."""
    resp = Response(status=204)
    resp.headers["Cache-Control"] = "public, max-age=86400"
    return resp


# ---- images

@bp.get("/images/<sha>")
def image(sha: str):
    if not SHA256.fullmatch(sha):
        return jsonify({"error": "images are named by their sha256 (64 lowercase hex characters)"}), 404
    size = request.args.get("size", type=int)
    if size is not None and size not in THUMB_SIZES:
        return jsonify({"error": f"size must be one of {THUMB_SIZES}"}), 400
    thumbs: _Thumbs = current_app.extensions["web_thumbs"]
    cached = thumbs.get((sha, size))
    if cached is None:
        cached = _load_image(sha, size)
        if cached is None:
            return jsonify({"error": "no such image in the test-data folder"}), 404
        thumbs.put((sha, size), cached)
    data, mimetype = cached
    resp = Response(data, mimetype=mimetype)
    resp.headers["Cache-Control"] = "public, max-age=86400, immutable"  # named by its content
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _load_image(sha: str, size: int | None) -> tuple[bytes, str] | None:
    with _ctx().engine.connect() as conn:
        rel = store.image_path(conn, sha256=sha)
    if not rel:
        return None
    root = _ctx().test_dir.resolve()
    copy = perturb.parse_path(rel)  # a perturbed copy: made again from its source file
    try:
        path = (root / (copy[1] if copy else rel)).resolve()
        path.relative_to(root)  # a stored path that leaves the folder is not served
        data = path.read_bytes()
        if copy:
            data = perturb.make(data, hashlib.sha256(data).hexdigest(), copy[0])
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != sha:
        return None  # the file changed since it was stored: not the image the predictions are about
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size or 512, size or 512))
            img = img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB")
            img.thumbnail((size or 512, size or 512))
            buf = io.BytesIO()
            img.save(buf, "PNG", optimize=False)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return buf.getvalue(), "image/png"


# ---- pages

def _fmt_time(iso: str | None) -> str:
    return esc(iso[:16].replace("T", " ")) if iso else "-"


@bp.get("/")
def models_page():
    data = _read(views.models_overview)
    if not data["groups"]:
        return _page("Models", "<h1>Models</h1><p>No model evaluated yet: run <code>data-collector collect "
                               "URL</code>.</p>")
    parts = [f"<h1>Models</h1><p>{data['n_models']} evaluated model(s). Per-class recall strip: green 1.0, "
             "red 0; hover for the class and its value.</p>"]
    for g in data["groups"]:
        name = g["name"]
        parts.append(f"<section class='group'><h2>{esc(name)} <small><a href='/history/{quote(name, safe='')}'>"
                     f"history</a></small></h2><div class='scroll'><table class='versions'><tr><th>version</th>"
                     "<th>fingerprint</th><th>identity</th><th>backend / protocol</th><th>evaluated</th>"
                     "<th>run</th><th>accuracy</th><th>per-class recall</th><th></th></tr>")
        for i, v in enumerate(g["versions"]):
            prev = g["versions"][i + 1] if i + 1 < len(g["versions"]) else None
            cmp_link = f"<a href='{_compare_href(prev['fingerprint'], v['fingerprint'])}'>compare with " \
                       f"v{esc(prev['version'])}</a>" if prev else ""
            parts.append(
                f"<tr data-fingerprint='{esc(v['fingerprint'])}'><td><a href='{_model_href(v['fingerprint'])}'>"
                f"v{esc(v['version'])}</a></td><td><code>{esc(v['fingerprint'][:12])}</code></td>"
                f"<td>{esc(v['identity'])}</td><td>{esc(v['backend'] or '-')} / {esc(v['protocol'])}</td>"
                f"<td>{_fmt_time(v['evaluated_at'])}</td><td>{esc(v['run_status'] or '-')}</td>"
                f"<td>{num(v['accuracy'])} <small>({v['n']})</small></td><td>{recall_strip(v['recall'])}</td>"
                f"<td>{cmp_link}{_conflict_badge(v)}</td></tr>")
        parts.append("</table></div></section>")
    parts.append(_jobs_html(10))
    return _page("Models", "".join(parts))


def _conflict_text(m: dict) -> str:
    others = ", ".join(f"<code>{esc(fp[:12])}</code>" for fp in m["conflict"])
    return (f"Conflict: {esc(m['name'])} v{esc(m['version'])} is also claimed by {others}. Name and version are "
            "claims; select these models by fingerprint.")


def _conflict_badge(v: dict) -> str:
    badge = ""
    if v.get("claim_conflict"):
        badge = (" <strong class='bad claim-conflict' title='URLs announcing this fingerprint answered images "
                 "differently: no verdict until resolved'>conflicting fingerprint</strong>")
    if not v["conflict"]:
        return badge
    title = "also claimed by " + ", ".join(fp[:12] for fp in v["conflict"])
    return f" <strong class='bad conflict' title='{esc(title)}'>conflict</strong>" + badge


def _claim_conflict_html(evidence: list[dict]) -> str:
    """The evidence of a conflicting fingerprint: which URL answered which image how, against what."""
    rows = "".join(
        f"<tr><td>{esc(e['path'])}</td><td>{esc(e['label'])}</td><td>{esc(e['url'])}</td>"
        f"<td>{esc(e['answered']['label'])}</td><td>{esc(e['other'])}</td><td>{esc(e['expected']['label'])}</td></tr>"
        for e in evidence)
    return ("<p class='bad' id='claim-conflict'>Conflicting fingerprint: URLs announcing it answered the same "
            "images differently. No comparison or gate uses this model until <code>data-collector conflicts "
            "resolve</code>.</p><div class='scroll'><table><tr><th>image</th><th>label</th><th>URL</th>"
            "<th>answered</th><th>other answer from</th><th>other answered</th></tr>" + rows + "</table></div>")


JOB_FIELDS = ("kind", "url", "state", "verdict", "submitted_at", "finished_at", "regressed_classes", "links")


@bp.get("/api/jobs")
def api_jobs():
    """What the jobs page shows, as JSON: the job's id only as its first 8 characters (the whole id
    reads a job's result on the hook, with the token)."""
    if _ctx().jobs is None:
        return jsonify({"error": "the deploy hook is not enabled on this server (set HOOK_TOKEN)", "jobs": []}), 404
    return jsonify({"jobs": [{"id": j["id"][:8], **{k: j[k] for k in JOB_FIELDS if k in j}}
                             for j in _ctx().jobs.recent(50)]})


def _jobs_html(n: int) -> str:
    jobs = _ctx().jobs
    if jobs is None:
        return ""
    recent = jobs.recent(n)
    if not recent:
        return "<h2>Recent deploy-hook and gate jobs</h2><p>None yet.</p>"
    rows = ["<h2>Recent deploy-hook and gate jobs</h2><div class='scroll'><table><tr><th>submitted</th><th>url</th>"
            "<th>state</th><th>verdict</th><th>why</th><th>links</th></tr>"]
    for j in recent:
        links = " ".join(f"<a href='{esc(href)}'>{esc(k)}</a>" for k, href in j.get("links", {}).items())
        details = f"<a href='/jobs/view/{esc(j['id'][:8])}'>details</a>" if _job_comparison(j) else ""
        rows.append(f"<tr><td>{_fmt_time(j['submitted_at'])}</td><td>{esc(j['url'])}</td><td>{esc(j['state'])}</td>"
                    f"<td>{esc(j.get('verdict', '-'))}</td><td>{esc('; '.join(j.get('reasons') or []))}</td>"
                    f"<td><code>{esc(j['id'][:8])}</code> {links} {details}</td></tr>")
    rows.append("</table></div>")
    return "".join(rows)


@bp.get("/jobs/view")
def jobs_page():
    if _ctx().jobs is None:
        return _page("Jobs", "<h1>Jobs</h1><p>The deploy hook is not enabled on this server (set HOOK_TOKEN).</p>")
    return _page("Jobs", "<h1>Jobs</h1>" + _jobs_html(50))


def _job_comparison(job: dict) -> dict | None:
    result = job.get("result") or {}
    c = result.get("comparison")
    return c if isinstance(c, dict) and "baseline" in c else None


@bp.get("/jobs/view/<prefix>")
def job_page(prefix: str):
    """One gate job's comparison as it was decided, with what only a job holds: its paired latency."""
    jobs = _ctx().jobs
    if jobs is None or not re.fullmatch(r"[0-9a-f]{8}", prefix):
        return _page("Job", "<h1>Job</h1><p>No such job.</p>"), 404
    job = next((j for j in jobs.recent(200) if j["id"].startswith(prefix)), None)
    c = _job_comparison(job) if job else None
    if c is None:
        return _page("Job", "<h1>Job</h1><p>No such job with a comparison among the recent ones.</p>"), 404
    b, k = c["baseline"], c["candidate"]
    body = (f"<h1>Job <code>{esc(prefix)}</code>: {esc(b['name'])} v{esc(b['version'])} &rarr; {esc(k['name'])} "
            f"v{esc(k['version'])}: <span id='verdict'>{esc(job.get('verdict', '-').upper())}</span></h1>"
            f"<p>{esc(job.get('summary') or '')}</p><div class='scroll'>{compare_table(c)}</div>"
            + facets_html(c, image_url=lambda sha: f"/images/{sha}?size=96"))
    return _page(f"Job {prefix}", body)


def _gallery(items: list[dict], *, show_baseline: bool = False) -> str:
    if not items:
        return "<p>None.</p>"
    figs = []
    for it in items:
        before = (f"<br>was <span class='right'>{esc(it['baseline_predicted'])}</span>"
                  if show_baseline else "")
        cls = "wrong" if it["predicted"] != it["label"] else "right"
        figs.append(f"<figure data-sha='{esc(it['sha256'])}'><a href='/images/{esc(it['sha256'])}'>"
                    f"<img src='/images/{esc(it['sha256'])}?size=96' width='96' height='96' loading='lazy' "
                    f"alt='{esc(it['label'])} image'></a><figcaption>{esc(it['label'])} "
                    f"<small>({esc(it['kind'])})</small><br>&rarr; <span class='{cls}'>{esc(it['predicted'])}</span> "
                    f"{num(it['confidence'], 2)}{before}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(figs)}</div>"


@bp.get("/models/<path:selector>")
def model_page(selector: str):
    label = request.args.get("label") or None
    d = _read(views.model_detail, selector, label=label)
    m, rep = d["model"], d["report"]
    fp = m["fingerprint"]
    parts = [f"<h1>{esc(m['name'])} v{esc(m['version'])} <small><code>{esc(fp[:16])}</code></small></h1>"]
    if m["conflict"]:
        parts.append(f"<p class='bad' id='conflict'>{_conflict_text(m)}</p>")
    if m["claim_conflict"]:
        parts.append(_claim_conflict_html(d["claim_conflicts"]))
    links = [f"<a href='/history/{quote(m['name'], safe='')}'>history of {esc(m['name'])}</a>"]
    if d["previous"]:
        links.append(f"<a href='{_compare_href(d['previous']['fingerprint'], fp)}'>compare with "
                     f"v{esc(d['previous']['version'])}</a>")
    parts.append(f"<p>{' · '.join(links)}</p>")
    parts.append(model_section(rep))
    mis = d["misclassified"]
    filters = [f"<a href='{_model_href(fp)}'>all classes</a>"] + [
        f"<a href='{_model_href(fp)}?{urlencode({'label': lab})}'>{esc(lab)}</a>" for lab in m["labels"]]
    shown = f" of class {esc(label)}" if label else ""
    more = f" (the {len(mis['images'])} surest shown)" if mis["total"] > len(mis["images"]) else ""
    parts.append(f"<h2 id='misclassified'>Misclassified images{shown}: {mis['total']}{more}</h2>"
                 f"<p class='filters'>Filter: {' '.join(filters)}</p>{_gallery(mis['images'])}")
    if d["lookalikes"]:
        parts.append("<h2>Most confident answers on lookalike probes</h2><p class='legend'>Pokemon the model "
                     "does not know: a confident answer here is a confident mistake.</p>"
                     + _gallery(d["lookalikes"]))
    run_rows = []
    for r in d["runs"]:
        fails = "".join(f"<li>{esc(f['path'])}: {esc(f['error'])}</li>" for f in r["failures"])
        run_rows.append(f"<tr><td>{_fmt_time(r['started_at'])}</td><td>{esc(r['status'])}</td><td>{r['n_sent']}"
                        f"</td><td>{r['n_failed']}</td><td>{esc(r['error'] or '')}"
                        f"{f'<ul>{fails}</ul>' if fails else ''}</td></tr>")
    parts.append("<h2>Runs</h2><div class='scroll'><table><tr><th>started</th><th>status</th><th>sent</th>"
                 f"<th>failed</th><th>error / failures</th></tr>{''.join(run_rows)}</table></div>")
    return _page(f"{m['name']} v{m['version']}", "".join(parts))


@bp.get("/compare")
def compare_page():
    try:
        d = _compare_data()
    except _NotFound as e:
        with _ctx().engine.connect() as conn:
            ms = [m.to_dict() for m in store.list_models(conn)]
        return _page("Compare", f"<h1>Compare</h1>{_picker(ms, None, None)}<p>{esc(e)}</p>"), \
            404 if request.args else 200
    c, b, k = d["comparison"], d["baseline"], d["candidate"]
    verdict = c["verdict"]
    parts = [f"<h1>{esc(b['name'])} v{esc(b['version'])} &rarr; {esc(k['name'])} v{esc(k['version'])}: "
             f"<span class='verdict-{esc(verdict)}' id='verdict'>{esc(verdict.upper())}</span></h1>",
             _picker(d["models"], b["fingerprint"], k["fingerprint"]),
             f"<p>{esc(c['thresholds']['description'])}. {c['n_common_images']} images seen by both.</p>"]
    if c["regressed_classes"]:
        parts.append("<p class='bad' id='regressed'>Regressed: "
                     + ", ".join(f"<b>{esc(x)}</b>" for x in c["regressed_classes"]) + "</p>")
    parts.append(f"<div class='scroll'>{compare_table(c)}</div>")
    parts.append(facets_html(c, image_url=lambda sha: f"/images/{sha}?size=96"))
    if c["new_labels"]:
        parts.append("<p>New classes: " + ", ".join(
            f"{esc(lab)} (recall {num(v['recall'])}, {v['n']} images)" for lab, v in c["new_labels"].items()) + "</p>")
    f = d["flipped"]
    parts.append(f"<h2 id='lost'>Right &rarr; wrong: {f['n_right_to_wrong']} image(s)</h2>"
                 + _gallery(f["right_to_wrong"], show_baseline=True))
    parts.append(f"<h2 id='gained'>Wrong &rarr; right: {f['n_wrong_to_right']} image(s)</h2>"
                 + _gallery(f["wrong_to_right"]))
    return _page(f"Compare {b['name']} v{b['version']} and v{k['version']}", "".join(parts))


def _picker(ms: list[dict], base: str | None, cand: str | None) -> str:
    def options(selected: str | None) -> str:
        return "".join(f"<option value='{esc(m['fingerprint'])}'{' selected' if m['fingerprint'] == selected else ''}>"
                       f"{esc(m['name'])} v{esc(m['version'])} ({esc(m['fingerprint'][:8])})</option>" for m in ms)

    return ("<form class='pick' method='get' action='/compare'><label>baseline<br><select name='baseline'>"
            f"{options(base)}</select></label><label>candidate<br><select name='candidate'>{options(cand)}"
            "</select></label><button type='submit'>compare</button></form>")


@bp.get("/suspects")
def suspects_page():
    suspects = _read(label_suspects)
    parts = ["<h1>Label suspects: check these labels</h1><p class='legend'>Test images whose given label most "
             "models that evaluated them confidently doubt (confident learning: a model flags an image when it "
             "gives another class at least its usual confidence on that class, and its answer is that class). "
             "A suspect is a question, not a verdict: fix the label in the test set if it is wrong; a relabelled "
             "image is a new image to the store.</p>"]
    if not suspects:
        parts.append("<p>None.</p>")
    figs = []
    for x in suspects[:GALLERY_SUSPECTS]:
        sha = esc(x["sha256"])
        figs.append(f"<figure data-sha='{sha}'><a href='/images/{sha}'><img src='/images/{sha}?size=96' width='96' "
                    f"height='96' loading='lazy' alt='{esc(x['label'])} image'></a><figcaption>{esc(x['path'])}<br>"
                    f"labelled <span class='wrong'>{esc(x['label'])}</span><br>&rarr; <span class='right'>"
                    f"{esc(x['suggested'])}</span>? {x['flagged_by']} of {x['seen_by']} models, p(label) "
                    f"{num(x['given_probability'], 2)}</figcaption></figure>")
    if figs:
        parts.append(f"<div class='gallery'>{''.join(figs)}</div>")
    if len(suspects) > GALLERY_SUSPECTS:
        parts.append(f"<p>… and {len(suspects) - GALLERY_SUSPECTS} more: <a href='/api/suspects'>all, as JSON</a></p>")
    return _page("Label suspects", "".join(parts))


@bp.get("/history/<path:name>")
def history_page(name: str):
    d = _read(views.history, name)
    versions = d["versions"]
    parts = [f"<h1>History of {esc(name)}</h1>",
             history_svg(name, [{"version": v["version"], "fingerprint": v["fingerprint"], "recall": v["recall"]}
                                for v in versions])]
    head = "".join(f"<th>{esc(lab)}</th>" for lab in d["labels"])
    rows = []
    for v in versions:
        cells = "".join(f"<td>{num(v['recall'].get(lab))}</td>" for lab in d["labels"])
        rows.append(f"<tr><td><a href='{_model_href(v['fingerprint'])}'>v{esc(v['version'])}</a> "
                    f"<code>{esc(v['fingerprint'][:8])}</code></td>{cells}</tr>")
    parts.append(f"<div class='scroll'><table><tr><th>version</th>{head}</tr>{''.join(rows)}</table></div>")
    return _page(f"History of {name}", "".join(parts))

