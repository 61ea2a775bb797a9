"""perturb.py and robustness.py: the perturbed copies are collected like any image, and a candidate
that answers the clean images like the baseline but the perturbed copies of one class worse is
flagged on robustness for that class only, with real model servers."""

from __future__ import annotations

import hashlib
import json

import pytest

from collector.analysis.robustness import model_robustness
from collector.storage import store
from collector.testset.perturb import PERTURBATIONS, make, parse_path, perturbed_path, read
from helpers import COLORS, LiveServer, color_png, engine_for, run_cli, serve_model, write_color_model

LABELS = ["red", "green", "blue"]


def test_copies_are_the_same_bytes_every_time_and_their_paths_name_source_and_perturbation(big_data):
    src = "green/green-03.png"
    data = (big_data / src).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    copies = {name: make(data, sha, name) for name in PERTURBATIONS}
    assert len(set(copies.values())) == len(PERTURBATIONS) and data not in copies.values()
    for name, body in copies.items():
        path = perturbed_path(src, name)
        assert parse_path(path) == (name, src) and read(big_data, path) == body == make(data, sha, name)
    assert copies["jpeg-q20"][:2] == b"\xff\xd8" and copies["blur"][:4] == b"\x89PNG"
    assert parse_path(src) is None and parse_path("perturbed/robustness-v1/nosuch/x.png") is None
    with pytest.raises(ValueError, match="not an image"):
        make(b"not an image", sha, "blur")


class Hurting:
    """A proxy in front of a model server that answers the clean images as the server does and
    sends the server a blue square instead of each image whose sha256 is in `hurt`."""

    def __init__(self, upstream: str, hurt: set[str]):
        import requests

        self.upstream, self.hurt, self.session = upstream, hurt, requests.Session()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        req = Request(environ)
        if req.method == "POST" and req.path == "/predict":
            files = []
            for f in req.files.getlist("images"):
                data = f.read()
                if hashlib.sha256(data).hexdigest() in self.hurt:
                    data = color_png(COLORS["blue"], seed=1)
                files.append(("images", (f.filename, data, "application/octet-stream")))
            r = self.session.post(self.upstream + "/predict", files=files)
        else:
            r = self.session.get(self.upstream + req.full_path.rstrip("?"))
        body = r.content
        if req.path == "/metadata" and r.ok:  # it reads multipart only: it does not list the image-batch form
            body = json.dumps({k: v for k, v in r.json().items() if k != "predict_forms"}).encode()
        return Response(body, status=r.status_code, content_type=r.headers.get("Content-Type"))(
            environ, start_response)


def test_a_candidate_hurt_on_perturbed_green_images_is_flagged_for_green_only(tmp_path, big_data):
    base = write_color_model(tmp_path / "v1", LABELS, version="1")
    cand = write_color_model(tmp_path / "v2", LABELS, version="2", scale=14.0)  # the same answers, clean
    copies = {}  # sha256 of each distinct perturbed copy -> its class (near-equal squares can share a JPEG)
    for lab in LABELS:
        for f in sorted((big_data / lab).iterdir()):
            data = f.read_bytes()
            for n in PERTURBATIONS:
                copies.setdefault(hashlib.sha256(make(data, hashlib.sha256(data).hexdigest(), n)).hexdigest(), lab)
    hurt = {sha for sha, lab in copies.items() if lab == "green"}
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with serve_model(base) as b, serve_model(cand) as up, LiveServer(Hurting(up.url, hurt)) as c:
        plain = run_cli("--db", db, "gate", "--test-data", str(big_data), "--json", b.url, c.url)
        assert plain.exit_code == 0, plain.output  # clean images only: nothing to see
        r = run_cli("--db", db, "gate", "--test-data", str(big_data), "--json", "--robustness", b.url, c.url)
        again = run_cli("--db", db, "gate", "--test-data", str(big_data), "--json", "--robustness", b.url, c.url)
    assert json.loads(again.stdout)["images_sent"] == 0  # collected once per model, like any image
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["verdict"] == "fail", out["summary"]
    assert out["regressed_classes"] == [] and out["images_sent"] == 2 * len(copies)
    rob = out["comparison"]["robustness"]
    assert rob["regressed_classes"] == ["green"]
    assert out["reasons"] == [f"robustness: green under {', '.join(PERTURBATIONS)}"]
    assert {r["perturbation"] for r in rob["regressed"]} == set(PERTURBATIONS)
    cell = rob["cells"]["green"]["blur"]
    assert cell["n"] == 30 and cell["candidate"] == 0.0 and cell["harm"] == pytest.approx(-cell["baseline"])
    assert cell["examples"] and all(e["candidate"] == "blue" for e in cell["examples"])
    assert all(not c["regressed"] for lab in ("red", "blue") for c in rob["cells"][lab].values())
    # the numbers are those of the stored predictions, recomputed
    engine = engine_for(db)
    with engine.connect() as conn:
        models = {m.version: m for m in store.list_models(conn)}
        rows = store.load_rows(conn, model_id=models["2"].id)
        kinds = {r["kind"] for r in rows}
    green_blur = [r for r in rows if r["perturbation"] == "blur" and r["label"] == "green"]
    assert kinds == {"photo", "lookalike", "perturbed"} and len(green_blur) == 30
    assert all(r["source_sha256"] and parse_path(r["path"])[0] == "blur" for r in green_blur)
    from sqlalchemy import text

    with engine.connect() as conn:  # the cells' accuracies, recomputed from the stored rows in SQL
        sql = conn.execute(text(
            "SELECT m.version, i.label, i.perturbation, AVG(CASE WHEN p.predicted_label = i.label THEN 1.0 ELSE 0.0 "
            "END) FROM predictions p JOIN images i ON i.id = p.image_id JOIN models m ON m.id = p.model_id "
            "WHERE i.kind = 'perturbed' GROUP BY m.version, i.label, i.perturbation")).all()
    assert len(sql) == 2 * 3 * len(PERTURBATIONS)
    for version, lab, pert, acc in sql:
        side = {"1": "baseline", "2": "candidate"}[version]
        assert rob["cells"][lab][pert][side] == pytest.approx(float(acc)), (version, lab, pert)
    mine = model_robustness(rows, LABELS)
    assert mine == rob["candidate"] and mine["green"]["by_perturbation"]["blur"]["accuracy"] == sum(
        r["predicted_label"] == "green" for r in green_blur) / 30
    assert mine["green"]["clean"]["accuracy"] == 1.0 and mine["red"]["perturbed"]["n"] == sum(
        lab == "red" for lab in copies.values())
    _every_output_shows_it(db, big_data, engine, models)


def _every_output_shows_it(db, data, engine, models):
    """The stored robustness verdict in the web view (with the perturbed images, made again from
    their sources), the HTML report, the Markdown summary, the JUnit file and the terminal."""
    import xml.etree.ElementTree as ET

    from collector.outputs.web import create_web_app

    client = create_web_app(engine=engine, test_dir=data).test_client()
    page = client.get(f"/compare?baseline={models['1'].fingerprint}&candidate={models['2'].fingerprint}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<h3>Robustness</h3>" in html and "<h3>Calibration</h3>" in html
    assert html.count("data-perturbation=") == len(PERTURBATIONS)  # green under each: with its images
    sha = html.split("data-perturbation='blur'")[1].split("src='/images/")[1][:64]
    img = client.get(f"/images/{sha}")
    assert img.status_code == 200 and img.mimetype == "image/png"
    assert client.get("/images/" + "0" * 64).status_code == 404
    report = data.parent / "cmp.html"
    junit, summary = data.parent / "j.xml", data.parent / "s.md"
    r = run_cli("--db", db, "compare", "colors@1", "colors@2", "--robustness", "--html", str(report),
                "--junit", str(junit), "--markdown", str(summary))
    assert r.exit_code == 1 and "robustness (robustness-v1" in r.stdout and "REGRESSION: robustness: green" in r.stdout
    assert "calibration: ECE" in r.stdout
    assert "<h3>Robustness</h3>" in report.read_text() and "class='chart reliability'" in report.read_text()
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["robustness"].find("failure") is not None and cases["calibration"].find("failure") is None
    assert "**Beyond answers**" in summary.read_text() and "green under blur" in summary.read_text()
    plain = run_cli("--db", db, "compare", "colors@1", "colors@2")  # the part left out: clean images only
    assert plain.exit_code == 0 and "robustness" not in plain.stdout
