"""The second hostile-server suite: servers whose words try to become instructions.

Each case is one server next to the honest bystander in one `collect` (the real CLI in its own
process), on SQLite and on PostgreSQL, with the first suite's checks (exit code, one line naming
the URL and the reason, no traceback, the bystander complete, nothing of a refused server stored,
time, memory and database bounds), and then `models`, `models --json`, `report`,
`report --html -` and `compare` on that database must exit cleanly (0, 1 or 2, no traceback)
with no escape sequence, CR, bidi or zero-width character of a server in what they write, and
HTML escaped. Categories: every text field (Rich markup, ANSI/OSC, CR/LF, zero-width, bidi,
outer spaces, claimed facts), every numeric field (400-digit integers, ±1e308 logits, huge
shapes and sizes), header floods, impostor claims of a stored NAME@VERSION on native, v1 and v2,
credential echo, and the error path itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask, Response, jsonify, request
from sqlalchemy import func, select
from test_hostile_servers import MAX_RSS_MB, MAX_STORED_BYTES, MAX_WALL_S, fresh_database, run_collect, stored_bytes

from collector.storage import store
from collector.storage.schema import failures, models, predictions, runs
from helpers import LiveServer

LABELS = ["red", "green", "blue"]
FP = "e" * 63 + "1"
SECRET_USER, SECRET_PASS = "deployer", "s3cret-pass-word"
BASIC = "ZGVwbG95ZXI6czNjcmV0LXBhc3Mtd29yZA=="  # base64 of deployer:s3cret-pass-word
HUGE = int("9" * 400)  # valid JSON; no float holds it
FLOOD = {f"X-Flood-{i}": "a" * 65_000 for i in range(96)}  # 6 MB of headers
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
PATIENT = ("--timeout", "30")  # overrides run_collect's 3 s (the last --timeout given wins)


@dataclass
class Case:
    """One hostile server: protocol, what it changes, and what must come of it.

    expect: "refused" (exit 1, nothing of it stored), "failed" (exit 1, stored as a model, no
    predictions), "stored" (evaluated; its text must render literally) or "impostor" (evaluated
    under a NAME@VERSION the bystander holds: every selector of it is ambiguous)."""

    protocol: str = "native"
    meta: dict = field(default_factory=dict)
    pred: dict = field(default_factory=dict)
    answer: object = None  # a whole predict/infer body (JSON-able) replacing the honest one
    status: int = 200  # of the predict/infer answer
    meta_status: int = 200
    meta_headers: dict = field(default_factory=dict)
    pred_headers: dict = field(default_factory=dict)
    expect: str = "refused"
    reason: str = ""
    userinfo: bool = False
    extra_args: tuple = ()


def _meta(c: Case) -> dict:
    return {"name": "hostile", "version": "1", "fingerprint": FP, "labels": list(LABELS), **c.meta}


CASES: dict[str, Case] = {
    # ---- text: refused at the boundary
    "ANSI clear-screen in the name": Case(meta={"name": "\x1b[2J\x1b[32mPASS"}, reason="name: contains control"),
    "OSC 8 hyperlink in the name": Case(meta={"name": "\x1b]8;;http://evil.example/\x1b\\colors\x1b]8;;\x1b\\"},
                                        reason="name: contains control"),
    "newline forging a line in the version": Case(meta={"version": "1\nPASS: no class regressed"},
                                                  reason="version: contains control"),
    "zero-width space in the name": Case(meta={"name": "col\u200bors"}, reason="name: contains control or format"),
    "right-to-left override in the version": Case(meta={"version": "1\u202e"}, reason="version: contains control"),
    "leading space in the name": Case(meta={"name": " colors"}, reason="name: has leading or trailing space"),
    "carriage return in a label": Case(meta={"labels": ["red\r", "green", "blue"]},
                                       reason="labels[0]: contains control"),
    "bidi isolate in a label": Case(meta={"labels": ["red", "gr\u2066een", "blue"]},
                                    reason="labels[1]: contains control or format"),
    # ---- text: accepted as text, and it must stay text everywhere it is shown
    "Rich markup closing tag as the name": Case(meta={"name": "[/]"}, expect="stored"),
    "Rich link markup as the name": Case(meta={"name": "[link=http://evil.example/]colors[/link]"}, expect="stored"),
    "markup in a label": Case(meta={"labels": ["[bold]red", "green", "blue"]}, expect="stored",
                              pred={"label": "green", "confidence": 0.8,
                                    "scores": {"[bold]red": 0.1, "green": 0.8, "blue": 0.1}}),
    "HTML in the name": Case(meta={"name": "<script>alert(1)</script>"}, expect="stored"),
    "claimed facts with escapes": Case(meta={"identity": "behavioural", "protocol": "\x1b[2Jv2",
                                             "scores": "\x1b[32mPASS", "backend": "\x1b]8;;http://e\x07x"},
                                       expect="stored"),
    # ---- numbers
    "confidence as a 400-digit integer": Case(pred={"confidence": HUGE}, expect="failed",
                                              reason="$.predictions[0].confidence"),
    "a score as a 400-digit integer": Case(pred={"scores": {"red": HUGE, "green": 0.1, "blue": 0.1}},
                                           expect="failed", reason="$.predictions[0].scores"),
    "version as a 400-digit integer": Case(meta={"version": HUGE}, reason="$.version"),
    "OIP logits of 1e308": Case(protocol="v2", answer="logits", expect="failed", reason="beyond"),
    "OIP shape of 10^400": Case(protocol="v2", answer="shape", expect="failed", reason="invalid inference response"),
    "OIP binary_data_size of 10^400": Case(protocol="v2", answer="size", expect="failed",
                                           reason="invalid inference response"),
    "v1 predictions of 400-digit integers": Case(protocol="v1", answer="huge", expect="failed",
                                                 reason="must be numbers", extra_args=("--labels", "red,green,blue")),
    # ---- headers
    "96 headers of 65 KB on metadata": Case(meta_headers=FLOOD, reason="response headers are over the limit"),
    "96 headers of 65 KB on predict": Case(pred_headers=FLOOD, expect="failed",
                                           reason="response headers are over the limit"),
    # ---- impostors of the bystander's NAME@VERSION
    "native impostor of colors v1": Case(meta={"name": "colors", "version": "1"}, expect="impostor"),
    "v2 impostor of colors v1": Case(protocol="v2", expect="impostor"),
    "v1 impostor of colors v1": Case(protocol="v1", expect="impostor", extra_args=("--labels", "red,green,blue")),
    # ---- credentials echoed back
    "500 echoing the credentials on metadata": Case(meta_status=500, userinfo=True, reason="HTTP 500"),
    "400 echoing the credentials on predict": Case(status=400, userinfo=True, expect="failed",
                                                   reason="every image was rejected"),
    # ---- the error path itself
    "error text with markup and escapes": Case(meta_status=404, reason="HTTP 404",
                                               meta={"error": "[/][bold red]\x1b[2JPASS"}),
    "error text forging a line": Case(status=422, expect="failed", reason="every image was rejected",
                                      pred={"error": "bad\r\nPASS: no class regressed"}),
}


def _honest_pred(c: Case) -> dict:
    labels = _meta(c)["labels"]
    scores = {lab: 0.1 for lab in labels}
    scores[labels[0]] = 1.0 - 0.1 * (len(labels) - 1)
    return {"label": labels[0], "confidence": scores[labels[0]], "scores": scores}


def hostile_app(c: Case) -> Flask:
    app = Flask("hostile")
    calls = {"infer": 0}  # the first inference is the collector's 8 canary images

    def echo() -> str:
        return f"denied: {request.headers.get('Authorization', '')} {SECRET_USER}:{SECRET_PASS}"

    @app.get("/metadata")
    def metadata():
        body = _meta(c)
        if c.meta_status != 200:
            msg = c.meta.get("error") or echo()
            return Response(json.dumps({"error": msg}), c.meta_status, mimetype="application/json")
        return Response(json.dumps(body), 200, headers=c.meta_headers, mimetype="application/json")

    @app.post("/predict")
    def predict():
        n = len(request.files.getlist("images"))
        if c.status != 200:
            msg = c.pred.get("error") or echo()
            return Response(json.dumps({"error": msg}), c.status, mimetype="application/json")
        pred = {**_honest_pred(c), **c.pred}
        body = {"model": {"name": _meta(c)["name"], "version": _meta(c)["version"],
                          "fingerprint": _meta(c)["fingerprint"]}, "predictions": [pred] * n}
        return Response(json.dumps(body), 200, headers=c.pred_headers, mimetype="application/json")

    # OIP v2: an impostor claims the name and version it is not; others answer badly.
    @app.get("/v2")
    def v2_server():
        return jsonify({"name": "h", "version": "1", "extensions": []})

    @app.get("/v2/models/anything")
    def v2_meta():
        return jsonify({"name": "colors", "versions": ["1"], "platform": "x",
                        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": [{"name": "p", "datatype": "FP32", "shape": [-1, 3]}],
                        "parameters": {"labels": LABELS}})

    @app.post("/v2/models/anything/infer")
    def v2_infer():
        n = json.loads(request.get_data())["inputs"][0]["shape"][0]
        calls["infer"] += 1
        real = calls["infer"] > 1
        probs = [0.1, 0.8, 0.1] * n
        out = {"name": "p", "datatype": "FP32", "shape": [n, 3], "data": probs}
        if c.answer == "logits" and real:  # the canaries pass; the first real batch does not
            out["data"] = [1e308, -1e308, 0.0] * n
        if c.answer == "shape" and real:
            out["shape"] = [HUGE, 3]
        if c.answer == "size" and real:
            out["parameters"] = {"binary_data_size": HUGE}
            del out["data"]
        body = json.dumps({"model_name": "colors", "model_version": "1", "outputs": [out]})
        return Response(body, 200, mimetype="application/json")

    # TF Serving / KServe v1 (no labels published: --labels)
    @app.get("/v1/models/colors")
    def v1_status():
        return jsonify({"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})

    @app.post("/v1/models/colors:predict")
    def v1_predict():
        n = len(json.loads(request.get_data())["instances"])
        calls["infer"] += 1
        rows = [[0.1, 0.8, 0.1]] * n
        if c.answer == "huge" and calls["infer"] > 1:
            rows = [[HUGE, 0, 0]] * n
        return jsonify({"predictions": rows})

    return app


def _url(c: Case, srv: LiveServer) -> str:
    base = srv.url
    if c.userinfo:
        base = base.replace("http://", f"http://{SECRET_USER}:{SECRET_PASS}@")
    return base + {"native": "", "v2": "/v2/models/anything", "v1": "/v1/models/colors"}[c.protocol]


# Every view of the database in one process: output of each, then its exit code.
VIEWS = """
import sys
from collector.cli import main
db = sys.argv[1]
runs = [["models"], ["models", "--json"], ["report"], ["report", "--html", "-"], *([["compare", *sys.argv[2:4]]]
        if len(sys.argv) > 3 else [])]
for args in runs:
    try:
        main(["--db", db, *args], prog_name="data-collector")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"\\n=== {' '.join(args)} exit {code} ===", flush=True)
"""


def run_views(db_url: str, compare: tuple[str, str] | None) -> tuple[str, list[tuple[str, int]]]:
    r = subprocess.run([sys.executable, "-c", VIEWS, db_url, *(compare or ())], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"}, timeout=600)
    codes = [(m.group(1), int(m.group(2))) for m in re.finditer(r"^=== (.+) exit (-?\d+) ===$", r.stdout, re.M)]
    return r.stdout + r.stderr, codes


def check_case(name: str, c: Case, db_url: str, bystander: str, by_fp: str, data: Path) -> list[str]:
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    with LiveServer(hostile_app(c)) as srv:
        bad = _url(c, srv)
        shown = bad.replace(f"{SECRET_USER}:{SECRET_PASS}@", "***@")
        urls = [bystander, bad] if c.expect == "impostor" else [bad, bystander]
        # No case here is about time (the first suite's are): a deadline a busy machine cannot miss.
        code, output, wall, rss = run_collect(db_url, data, urls, extra=(*c.extra_args, *PATIENT))
    tail = output[-1500:]
    expect("Traceback" not in output, f"a traceback: {tail}")
    expect(wall < MAX_WALL_S, f"took {wall:.1f} s (bound {MAX_WALL_S:g} s)")
    expect(rss < MAX_RSS_MB, f"collector peak RSS {rss:.0f} MB (bound {MAX_RSS_MB} MB)")
    expect(SECRET_PASS not in output and BASIC not in output, f"the credentials were printed: {tail}")
    expect(not UNSAFE.search(output), f"a control or format character reached the terminal: {tail!r}")
    if c.expect in ("refused", "failed"):
        expect(code == 1, f"exit code {code}: {tail}")
        expect(f"error: {shown}: " in output and c.reason in output,
               f"no line naming the URL and {c.reason!r}: {tail}")
        expect(output.count(f"error: {shown}") == 1, f"the error is not said exactly once: {tail}")
    else:
        expect(code == 0, f"exit code {code}: {tail}")

    engine = store.make_engine(db_url)
    with engine.connect() as conn:
        by = conn.execute(select(models.c.id).where(models.c.fingerprint == by_fp)).scalar_one()
        n_by = conn.execute(select(func.count()).select_from(predictions)
                            .where(predictions.c.model_id == by)).scalar_one()
        expect(n_by == 21, f"bystander has {n_by} predictions, not 21")
        others = conn.execute(select(models.c.id, models.c.fingerprint).where(models.c.id != by)).all()
        bad_ids = [o.id for o in others]
        bad_preds = conn.execute(select(func.count()).select_from(predictions)
                                 .where(predictions.c.model_id.in_(bad_ids or [-1]))).scalar_one()
        bad_runs = conn.execute(select(runs.c.status).where(runs.c.model_id.in_(bad_ids or [-1]))).scalars().all()
        texts = " ".join(str(x) for x in conn.execute(select(runs.c.error)).scalars()) + " ".join(
            conn.execute(select(failures.c.error)).scalars())
        expect(SECRET_PASS not in texts and BASIC not in texts, "the credentials were stored")
        growth = stored_bytes(conn, bad_ids)
        running = conn.execute(select(func.count()).select_from(runs).where(runs.c.status == "running")).scalar_one()
        expect(running == 0, f"{running} run(s) left running")
    engine.dispose()
    if c.expect == "refused":
        expect(bad_ids == [] and bad_runs == [], "a server refused at its metadata was stored")
    elif c.expect == "failed":
        expect(bad_preds == 0 and bad_runs == ["failed"], f"bad server: {bad_preds} predictions, runs {bad_runs}")
    else:
        expect(len(bad_ids) == 1 and bad_preds > 0, f"the server was not evaluated: {bad_ids}, {bad_preds}")
    expect(growth <= MAX_STORED_BYTES or c.expect in ("stored", "impostor"),
           f"{growth} bytes stored for the bad server (bound {MAX_STORED_BYTES})")

    # The database afterwards: every view exits cleanly and shows server text as text.
    other_fp = others[0].fingerprint if others else None
    pair = (by_fp[:12], other_fp[:12]) if other_fp else None
    views_out, codes = run_views(db_url, pair)
    expect(len(codes) == (5 if pair else 4), f"views did not all run: {codes} {views_out[-1500:]}")
    expect(all(code in (0, 1, 2) for _, code in codes), f"view exit codes {codes}")
    expect("Traceback" not in views_out and "MarkupError" not in views_out, f"a view failed: {views_out[-2000:]}")
    expect(not UNSAFE.search(views_out), f"a control or format character in a view: {views_out[-2000:]!r}")
    html = views_out.split("=== report exit")[-1].split("=== report --html - exit")[0]
    expect("<html" in html and "<script>alert" not in html, "HTML from a server was not escaped")
    listing = views_out.split("=== report exit")[0]  # models, models --json and report: no verdict in them
    expect(not re.search(r"^\s*(PASS|REGRESSION)\b", listing, re.M), "a forged verdict line")
    expect(SECRET_PASS not in views_out, "the credentials were shown")
    if c.expect == "stored":
        section = re.search(r"^=== models exit 0 ===$(.*?)^=== models --json exit", views_out, re.M | re.S)
        listed = json.loads(section.group(1)) if section else []
        mine = [m for m in listed if m["fingerprint"] == other_fp]
        expect([(m["identity"], m["protocol"], m["scores"]) for m in mine] == [("declared", "native", "probabilities")],
               f"the server's claimed facts were shown as facts: {mine}")
        if "[link=" in c.meta.get("name", "") or c.meta.get("name") == "[/]":
            expect(c.meta["name"] in views_out, "markup in a name was not printed literally")
    if c.expect == "impostor":
        amb, amb_codes = _cli(db_url, "report", "--model", "colors@1")
        expect(amb_codes == 2 and "ambiguous" in amb and by_fp[:12] in amb and other_fp[:12] in amb,
               f"report --model colors@1 was not refused as ambiguous: {amb_codes} {amb[-800:]}")
        amb, amb_codes = _cli(db_url, "compare", "colors@1", other_fp[:12])
        expect(amb_codes == 2 and "ambiguous" in amb, f"compare colors@1 was not refused: {amb[-800:]}")
        ok, ok_code = _cli(db_url, "report", "--model", by_fp[:12])
        expect(ok_code == 0 and "CONFLICT" in ok, f"a fingerprint prefix must select it, marked: {ok[-800:]}")
    return problems


def _cli(db_url: str, *args: str) -> tuple[str, int]:
    r = subprocess.run([sys.executable, "-m", "collector.cli", "--db", db_url, *args], capture_output=True,
                       text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600)
    return r.stdout + r.stderr, r.returncode


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_hostile_server_of_the_second_suite(backend, request, bystander, data, tmp_path):
    if backend == "postgres" and not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    import requests
    by_fp = requests.get(bystander + "/metadata", timeout=60).json()["fingerprint"]

    def one(i_name):
        i, name = i_name
        with fresh_database(backend, tmp_path, f"case{i}") as db_url:
            return name, check_case(name, CASES[name], db_url, bystander, by_fp, data)

    with ThreadPoolExecutor(4) as pool:
        results = dict(pool.map(one, enumerate(sorted(CASES))))
    failed = {b: p for b, p in results.items() if p}
    assert len(results) == len(CASES) >= 25
    assert not failed, "\n".join(f"{b}: {'; '.join(p)}" for b, p in failed.items())


def test_four_header_floods_beside_an_honest_server(tmp_path, bystander, data):
    """Four servers answering with 6 MB of headers (two on metadata, two on predict) and the
    bystander, in one collect: headers count against the caps, peak RSS stays under the bound."""
    from contextlib import ExitStack

    db = f"sqlite:///{tmp_path / 'floods.db'}"
    cases = [CASES["96 headers of 65 KB on metadata"]] * 2 + [
        Case(pred_headers=FLOOD, meta={"fingerprint": f"{'d' * 63}{i}"}) for i in range(2)]  # two identities
    with ExitStack() as stack:
        servers = [stack.enter_context(LiveServer(hostile_app(c))) for c in cases]
        code, output, _, rss = run_collect(db, data, [s.url for s in servers] + [bystander])
    assert code == 1 and output.count("response headers are over the limit") == 4, output[-2000:]
    assert rss < MAX_RSS_MB, f"collector peak RSS {rss:.0f} MB"
    engine = store.make_engine(db)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(predictions)).scalar_one() == 21  # the bystander's
    engine.dispose()
    print(f"four header floods: collector peak RSS {rss:.0f} MB")
