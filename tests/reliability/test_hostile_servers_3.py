"""The third hostile-server suite: servers that try to claim their way into another model's identity.

Each mode is one server next to the honest bystander (`colors` v1) in one `collect` (the real CLI
in its own process), on SQLite and on PostgreSQL; in an *established* mode the bystander was
collected alone first, so the database already holds its answers. Then every view of the
database runs (models, models --json, report, report --json, report --html, conflicts --json,
compare, gate, testset check, and the web pages /, /api/models, /models/fp:..., /compare) and
must exit cleanly, hold no credential, and say what the mode left behind. The families:

1. a name standing in for a fingerprint (hex names, fp:, @) -> refused at registration;
2. a fingerprint claimed by another behaviour (liars, relays, reorderers, self-inconsistent
   servers, other labels) -> never counted, never skipping the honest server, the fingerprint
   marked conflicting with its evidence, compare and gate refusing it (exit 2);
3. numbers and versions outside the grammar (`3²`, Arabic-Indic digits, a header length `²`);
4. ambiguous answers (two score lists, duplicate output names, labels changed mid-run, a wrong
   request id);
5. the URL's credentials as a name, version, label or metadata, in other encodings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from flask import Flask, Response, jsonify, request
from sqlalchemy import func, select
from test_hostile_servers import fresh_database, run_collect
from test_hostile_servers_2 import PATIENT

from collector.storage import schema, store
from collector.storage.schema import claim_conflicts, models, pending_predictions, predictions
from helpers import LiveServer, serve_model, write_color_model

LABELS = ["red", "green", "blue"]
OWN_FP = "c" * 63 + "3"
USER, PASSWORD = "deployer", "Hunter2-pass/word"
SECRET_FORMS = [PASSWORD, "Hunter2-pass%2fword", base64.b64encode(PASSWORD.encode()).decode().rstrip("="),
                base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), PASSWORD.encode().hex()]
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass
class Case:
    """One hostile server. expect: refused (nothing of it stored), failed (no answer of it
    counted), conflict (the bystander's fingerprint conflicting), agree (counted once, verified)."""

    expect: str
    reason: str = ""
    protocol: str = "native"
    meta: dict = field(default_factory=dict)  # overrides of GET /metadata (native)
    claim: bool = False  # announce the bystander's fingerprint (a relay of its metadata)
    lie: str = ""  # how its answers differ from the bystander's (see _answers)
    established: bool = False  # the bystander was collected alone before
    userinfo: bool = False  # its URL carries USER:PASSWORD
    oip: str = ""  # what an OIP server does wrong
    v1: str = ""  # what a TF Serving / KServe v1 server does wrong
    error_body: str = ""  # predict answers 400 with this error text
    by_n: int | None = None  # the bystander's counted answers afterwards (default: 21 when it was collected)


CASES: dict[str, Case] = {
    # ---- 1. a name standing in for a fingerprint
    "name is the bystander's fingerprint prefix": Case("refused", "looks like a fingerprint", meta={"name": "BY12"}),
    "name is a whole fingerprint": Case("refused", "looks like a fingerprint", meta={"name": "BY64"}),
    "name is four hex digits": Case("refused", "looks like a fingerprint", meta={"name": "beef"}),
    "name is a typed fingerprint": Case("refused", "starts with fp:", meta={"name": "fp:BY12"}),
    "name holds NAME@VERSION": Case("refused", "holds '@'", meta={"name": "colors@1"}),
    # ---- 2. a fingerprint claimed by another behaviour
    "liar listed first on a fresh database": Case("conflict", "answers", claim=True, lie="always"),
    "liar with the honest labels, established": Case("conflict", "answers", claim=True, lie="always",
                                                     established=True),
    "relay honest on its first request, then lies on ~10% (one per request at least)": Case(
        "conflict", "answers", claim=True, lie="tenth", established=True),
    "consistent liar that remembers its answers": Case("conflict", "answers", claim=True, lie="cached",
                                                       established=True),
    "answers in the reverse order of the images": Case("conflict", "answers", claim=True, lie="reverse",
                                                       established=True),
    "self-inconsistent server alone on its own fingerprint": Case("conflict", "answers", lie="noise"),
    "claims the fingerprint with other labels, established": Case(
        "refused", "other labels", claim=True, established=True, meta={"labels": ["red", "green"]}),
    "claims a new fingerprint with its labels reordered beside it": Case(
        "conflict", "answers", claim=True, meta={"labels": ["red", "blue", "green"]}),
    "honest replica listed first": Case("agree", claim=True),
    # ---- 3. numbers and versions outside the grammar
    "version 3 superscript 2": Case("refused", "is not a version", meta={"version": "3\u00b2"}),
    "version in Arabic-Indic digits": Case("refused", "is not a version", meta={"version": "\u0663"}),
    "version with an inner space": Case("refused", "is not a version", meta={"version": "1 0"}),
    "OIP header length superscript 2": Case("failed", "does not fit a body", protocol="v2", oip="header"),
    "OIP model version 3 superscript 2": Case("refused", "is not a version", protocol="v2", oip="version"),
    "v1 version status 3 superscript 2": Case("refused", "is not a version", protocol="v1", v1="version"),
    # ---- 4. ambiguous answers
    "v1 answer with class ids before probabilities": Case("failed", "outputs of 3 values", protocol="v1",
                                                          v1="two lists"),
    "OIP answer with two outputs of one name": Case("failed", "more than once", protocol="v2", oip="dup answer"),
    "OIP metadata with two outputs of one name": Case("refused", "more than once", protocol="v2", oip="dup meta"),
    "OIP labels reversed after the first inference": Case("failed", "metadata (labels, inputs, outputs or name) "
                                                          "changed", protocol="v2", oip="reverse labels"),
    "OIP answer with another request's id": Case("failed", "is not the id of the request", protocol="v2",
                                                 oip="wrong id"),
    # ---- 5. the URL's credentials
    "the password as its name": Case("refused", "credentials", userinfo=True, meta={"name": "PASSWORD"}),
    "the password percent-escaped in lower case as a label": Case(
        "refused", "credentials", userinfo=True, meta={"labels": ["red", "hunter2-pass%2fword", "blue"]}),
    "hex of the password as its version": Case("refused", "credentials", userinfo=True,
                                               meta={"version": PASSWORD.encode().hex()}),
    "base64 of user:password in its own metadata keys": Case("agree-own", userinfo=True,
                                                             meta={"token": SECRET_FORMS[3]}),
    "base64 of the password alone echoed in a 400": Case(
        "failed", "every image was rejected", userinfo=True,
        error_body="denied for " + base64.b64encode(PASSWORD.encode()).decode()),
}


def _noise(sha: str, salt: int) -> float:
    return int(hashlib.sha256(f"{sha}{salt}".encode()).hexdigest()[:4], 16) / 0xFFFF


class Hostile:
    """The hostile model server: native answers relayed from the bystander and changed as the case says."""

    def __init__(self, c: Case, bystander: str, by_fp: str):
        self.c, self.bystander, self.by_fp = c, bystander, by_fp
        self.calls = 0
        self.cache: dict[str, dict] = {}
        self.answers = 0
        self.lock = threading.Lock()

    def metadata(self) -> dict:
        meta = requests.get(self.bystander + "/metadata", timeout=60).json()
        meta = {k: meta[k] for k in ("name", "version", "fingerprint", "labels")}
        if not self.c.claim:
            meta.update(name="hostile", fingerprint=OWN_FP)
        for k, v in self.c.meta.items():
            meta[k] = v.replace("BY12", self.by_fp[:12]).replace("BY64", self.by_fp).replace(
                "PASSWORD", PASSWORD) if isinstance(v, str) else v
        return meta

    def predict(self, files) -> tuple[int, dict]:
        if self.c.error_body:
            return 400, {"error": self.c.error_body}
        blobs = [(f.filename, f.read()) for f in files]
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        r = requests.post(self.bystander + "/predict", timeout=60,
                          files=[("images", (name, data, "application/octet-stream")) for name, data in blobs])
        body = r.json()
        preds = body["predictions"]
        lie = self.c.lie
        for i, (_, data) in enumerate(blobs):
            sha = hashlib.sha256(data).hexdigest()
            if lie == "always" or (lie == "tenth" and not first and _noise(sha, 7) < 0.1) or (
                    lie == "tenth" and not first and i == 0):
                preds[i] = _flipped(preds[i])
            elif lie == "cached":
                with self.lock:
                    preds[i] = self.cache.setdefault(sha, _flipped(preds[i]))
            elif lie == "noise":
                with self.lock:
                    self.answers += 1
                    k = self.answers
                preds[i] = _jittered(preds[i], k)
        if lie == "reverse" and not first:
            preds.reverse()
        if not self.c.claim:
            body["model"] = {"name": "hostile", "version": body["model"]["version"], "fingerprint": OWN_FP}
        return 200, body


def _flipped(p: dict) -> dict:
    """The same scores under rotated labels: well-formed, consistent, and wrong."""
    labs = list(p["scores"])
    scores = {labs[(i + 1) % len(labs)]: p["scores"][lab] for i, lab in enumerate(labs)}
    best = max(scores, key=scores.get)
    return {"label": best, "confidence": scores[best], "scores": scores}


def _jittered(p: dict, k: int) -> dict:
    """The k-th answer moves 0.005-0.035 of the top score to another label: no two answers of one
    image agree unless k differs by a multiple of 14."""
    scores = dict(p["scores"])
    top = max(scores, key=scores.get)
    others = [lab for lab in scores if lab != top]
    move = min(0.005 * (1 + (k // 2) % 7), scores[top] / 4)
    scores[top] -= move
    scores[others[k % 2]] += move
    best = max(scores, key=scores.get)
    return {"label": best, "confidence": scores[best], "scores": scores}


def hostile_app(c: Case, bystander: str, by_fp: str) -> Flask:
    app = Flask("hostile3")
    h = Hostile(c, bystander, by_fp)
    infer = {"n": 0}
    labels = list(LABELS)

    @app.get("/metadata")
    def metadata():
        return jsonify(h.metadata())

    @app.post("/predict")
    def predict():
        status, body = h.predict(request.files.getlist("images"))
        return Response(json.dumps(body), status, mimetype="application/json")

    # ---- OIP v2 (own fingerprint: a behavioural identity)
    @app.get("/v2")
    def v2_server():
        return jsonify({"name": "h", "version": "1", "extensions": []})

    @app.get("/v2/models/m")
    def v2_meta():
        outs = [{"name": "p", "datatype": "FP32", "shape": [-1, 3]}]
        if c.oip == "dup meta":
            outs.append({"name": "p", "datatype": "FP32", "shape": [-1, 3]})
        labs = labels[::-1] if c.oip == "reverse labels" and infer["n"] > 1 else labels
        return jsonify({"name": "m", "versions": ["3\u00b2" if c.oip == "version" else "1"], "platform": "x",
                        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": outs, "parameters": {"labels": labs}})

    @app.post("/v2/models/m/infer")
    def v2_infer():
        req = json.loads(request.get_data())
        n = req["inputs"][0]["shape"][0]
        infer["n"] += 1
        real = infer["n"] > 1  # the first inference is the collector's 8 canaries
        out = {"name": "p", "datatype": "FP32", "shape": [n, 3], "data": [0.1, 0.8, 0.1] * n}
        body = {"model_name": "m", "model_version": "3\u00b2" if c.oip == "version" else "1", "outputs": [out],
                "id": req.get("id")}
        if c.oip == "dup answer" and real:
            body["outputs"] = [dict(out, data=[0.8, 0.1, 0.1] * n), out]
        if c.oip == "wrong id" and real:
            body["id"] = "another-request"
        headers = {}
        raw = json.dumps(body)
        if c.oip == "header" and real:
            headers["Inference-Header-Content-Length"] = "\u00b2"
        return Response(raw, 200, headers=headers, mimetype="application/json")

    # ---- TF Serving / KServe v1 (labels from --labels)
    @app.get("/v1/models/m")
    def v1_status():
        return jsonify({"model_version_status": [{"version": "3\u00b2" if c.v1 == "version" else "1",
                                                  "state": "AVAILABLE"}]})

    @app.post("/v1/models/m:predict")
    def v1_predict():
        n = len(json.loads(request.get_data())["instances"])
        infer["n"] += 1
        if c.v1 == "two lists" and infer["n"] > 1:
            return jsonify({"predictions": [{"all_class_ids": [0, 1, 2], "probabilities": [0.1, 0.8, 0.1]}] * n})
        return jsonify({"predictions": [[0.1, 0.8, 0.1]] * n})

    return app


def _url(c: Case, srv: LiveServer) -> str:
    base = srv.url.replace("http://", f"http://{USER}:{PASSWORD.replace('/', '%2F')}@") if c.userinfo else srv.url
    return base + {"native": "", "v2": "/v2/models/m", "v1": "/v1/models/m"}[c.protocol]


# Every view of the database in one process: output of each, then its exit code.
VIEWS = r"""
import json, sys
from collector.cli import main
db, test_data, by, other = sys.argv[1:5]
runs = [["models"], ["models", "--json"], ["report"], ["report", "--json", "-"], ["report", "--html", "-"],
        ["conflicts", "--json"], ["compare", "fp:" + other, "fp:" + by], ["gate", "fp:" + other, "fp:" + by],
        ["testset", "check", "--test-data", test_data]]
for args in runs:
    try:
        main(["--db", db, *args], prog_name="data-collector")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush(); sys.stderr.flush()
    print(f"\n=== {' '.join(args)} exit {code} ===", flush=True)
from flask import Flask
from collector.storage import store
from collector.analysis.compare import Thresholds
from collector.outputs.web import WebContext, register_web
from pathlib import Path
app = Flask("views")
register_web(app, WebContext(engine=store.make_engine(db), test_dir=Path(test_data), thresholds=Thresholds()))
client = app.test_client()
for path in ["/", "/api/models", f"/models/fp:{by}", f"/api/models/fp:{by}",
             f"/compare?baseline=fp:{other}&candidate=fp:{by}", f"/api/compare?baseline=fp:{other}&candidate=fp:{by}"]:
    r = client.get(path)
    print(r.get_data(as_text=True))
    print(f"\n=== web {path} exit {r.status_code} ===", flush=True)
"""


def run_views(db_url: str, data: Path, by_fp: str, other_fp: str) -> tuple[str, dict[str, int]]:
    r = subprocess.run([sys.executable, "-c", VIEWS, db_url, str(data), by_fp, other_fp], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=600)
    codes = {m.group(1): int(m.group(2)) for m in re.finditer(r"^=== (.+) exit (-?\d+) ===$", r.stdout, re.M)}
    return r.stdout, codes


def _section(out: str, name: str) -> str:
    parts = re.split(r"^=== (.+) exit -?\d+ ===$", out, flags=re.M)
    for i in range(1, len(parts), 2):
        if parts[i] == name:
            return parts[i - 1]
    return ""


def check_case(name: str, c: Case, db_url: str, bystander: str, by_fp: str, other: str, other_fp: str,
               data: Path) -> list[str]:
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    target = by_fp if c.claim or c.expect != "conflict" else OWN_FP  # the fingerprint the case is about
    code, seed_out, _, _ = run_collect(db_url, data, [other] + ([bystander] if c.established else []),
                                       extra=PATIENT)
    expect(code == 0, f"seeding failed: {seed_out[-800:]}")
    extra = ("--labels", "red,green,blue") if c.protocol == "v1" else ()
    with LiveServer(hostile_app(c, bystander, by_fp)) as srv:
        bad = _url(c, srv)
        shown = bad.replace(f"{USER}:{PASSWORD.replace('/', '%2F')}@", "***@") if c.userinfo else bad
        urls = [bad, bystander]  # every mode beside the honest server, listed first
        code, output, _, _ = run_collect(db_url, data, urls, extra=(*extra, *PATIENT))
    tail = output[-2000:]
    expect("Traceback" not in output, f"a traceback: {tail}")
    expect(not any(s.lower() in output.lower() for s in SECRET_FORMS), f"the credentials were printed: {tail}")
    expect(not UNSAFE.search(output), f"a control or format character reached the terminal: {tail!r}")
    if c.expect in ("agree", "agree-own"):
        expect(code == 0, f"exit code {code}: {tail}")
    else:
        expect(code == 1, f"exit code {code}: {tail}")
        expect(f"error: {shown}: " in output and c.reason in output, f"no line naming the URL and {c.reason!r}: {tail}")

    engine = store.make_engine(db_url)
    with engine.connect() as conn:
        by = conn.execute(select(models.c.id, models.c.labels).where(models.c.fingerprint == by_fp)).first()
        n_by = conn.execute(select(func.count()).select_from(predictions)
                            .where(predictions.c.model_id == (by.id if by else -1))).scalar_one()
        n_pending = conn.execute(select(func.count()).select_from(pending_predictions)
                                 .where(pending_predictions.c.state == "pending")).scalar_one()
        target_id = conn.execute(select(models.c.id).where(models.c.fingerprint == target)).scalar()
        evidence = conn.execute(select(func.count()).select_from(claim_conflicts)
                                .where(claim_conflicts.c.model_id == (target_id or -1))).scalar_one()
        own = conn.execute(select(models.c.id).where(models.c.fingerprint.notin_([by_fp, other_fp]))).scalars().all()
        n_own = conn.execute(select(func.count()).select_from(predictions)
                             .where(predictions.c.model_id.in_(own or [-1]))).scalar_one()
        dump = json.dumps([list(r) for r in conn.execute(select(models))], default=str)
        for t in ("failures", "runs", "claim_conflicts", "model_urls", "pending_predictions"):
            dump += json.dumps([list(r) for r in conn.execute(select(schema.metadata.tables[t]))], default=str)
    engine.dispose()
    # A model's description is fixed by the first URL whose answers count; before that it is a claim.
    expect(by is None or n_by == 0 or list(by.labels) == LABELS, f"the bystander's labels are now {by and by.labels}")
    expect(not any(s.lower() in dump.lower() for s in SECRET_FORMS), "the credentials were stored")
    # The bystander's answers count unless a liar claimed its fingerprint on a fresh database (then
    # neither URL's answers count: the fingerprint is conflicting).
    by_n = c.by_n if c.by_n is not None else 0 if c.expect == "conflict" and c.claim and not c.established else 21
    expect(n_by == by_n, f"the bystander's model has {n_by} counted answers, not {by_n}")
    if c.expect == "conflict":
        expect(evidence > 0, "no evidence of the conflict was stored")
    else:
        expect(evidence == 0, f"{evidence} evidence rows for a case without a conflict")
        expect(n_pending == 0, f"{n_pending} answers left kept apart")
        if c.expect in ("refused", "failed"):
            expect(n_own == 0, f"{n_own} answers of the hostile server were counted")
        if c.expect == "agree-own":
            expect(n_own == 21, f"the hostile server's own answers: {n_own}")

    views, codes = run_views(db_url, data, target, other_fp)
    expect(len(codes) == 15, f"views did not all run: {codes} {views[-1500:]}")
    expect("Traceback" not in views and "MarkupError" not in views, f"a view failed: {views[-2000:]}")
    expect(not UNSAFE.search(views), f"a control or format character in a view: {views[-1500:]!r}")
    expect(not any(s.lower() in views.lower() for s in SECRET_FORMS), "the credentials were shown")
    expect(all(v < 500 for k, v in codes.items() if k.startswith("web")), f"a page answered 5xx: {codes}")
    if c.expect == "conflict":
        listed = json.loads(_section(views, "models --json") or "[]")
        mine = [m for m in listed if m["fingerprint"] == target]
        expect(bool(mine) and mine[0]["claim_conflict"], f"models --json does not mark the conflict: {mine}")
        expect("CONFLICTING" in _section(views, "models") and "CONFLICTING" in _section(views, "report"),
               "models or report does not show the conflict")
        expect("claim-conflict" in _section(views, "report --html -"), "the HTML report hides the conflict")
        expect('"claim_conflict": true' in _section(views, "report --json -"), "report --json hides the conflict")
        cmp, gate = f"compare fp:{other_fp} fp:{target}", f"gate fp:{other_fp} fp:{target}"
        expect(codes.get(cmp) == 2 and codes.get(gate) == 2, f"compare/gate did not refuse the conflicting model: "
               f"{codes}")
        expect("is conflicting" in _section(views, gate), f"gate did not say why: {_section(views, gate)[-400:]}")
        ev = json.loads(_section(views, "conflicts --json") or "[]")
        expect(any(e["fingerprint"] == target for e in ev), f"conflicts --json lists no evidence: {ev[:2]}")
        expect("claim-conflict" in _section(views, f"web /models/fp:{target}"), "the model page hides the conflict")
        expect(codes.get(f"web /api/compare?baseline=fp:{other_fp}&candidate=fp:{target}") == 409,
               f"the web comparison of a conflicting model: {codes}")
    elif n_by:
        cmp = f"compare fp:{other_fp} fp:{target}"
        expect(codes.get(cmp) in (0, 1), f"compare refused: {codes} {_section(views, cmp)[-500:]}")
    return problems


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A second honest model (colors v2, green read as blue): the other side of compare and gate."""
    folder = write_color_model(tmp_path_factory.mktemp("models3") / "colors2", LABELS, version="2",
                               swap=("green", "blue"))
    with serve_model(folder) as srv:
        yield srv.url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_hostile_server_of_the_third_suite(backend, request, bystander, other_model, data, tmp_path):
    if backend == "postgres" and not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    by_fp = requests.get(bystander + "/metadata", timeout=60).json()["fingerprint"]
    other_fp = requests.get(other_model + "/metadata", timeout=60).json()["fingerprint"]

    def one(i_name):
        i, name = i_name
        with fresh_database(backend, tmp_path, f"case{i}") as db_url:
            return name, check_case(name, CASES[name], db_url, bystander, by_fp, other_model, other_fp, data)

    with ThreadPoolExecutor(4) as pool:
        results = dict(pool.map(one, enumerate(sorted(CASES))))
    failed = {b: p for b, p in results.items() if p}
    assert len(results) == len(CASES) >= 25
    assert not failed, "\n".join(f"{b}: {'; '.join(p)}" for b, p in failed.items())
