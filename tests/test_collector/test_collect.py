"""Collection against real loopback model servers, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from collector.collect import CollectOptions, collect
from collector.storage.schema import claim_conflicts, failures, images, models, pending_predictions, predictions, runs
from helpers import COLORS, LiveServer, color_png, engine_for, serve_model, start_server_process, write_color_model

ROOT = Path(__file__).resolve().parents[2]


def pred_rows(engine, fingerprint=None):
    q = (select(models.c.fingerprint, images.c.sha256, predictions.c.predicted_label)
         .select_from(predictions.join(models, models.c.id == predictions.c.model_id)
                      .join(images, images.c.id == predictions.c.image_id)))
    if fingerprint:
        q = q.where(models.c.fingerprint == fingerprint)
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(q))


def count(engine, table):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def quiet(_msg):
    pass


def test_collect_then_skip_by_fingerprint(db_url, color_model, test_data):
    engine = engine_for(db_url)
    with serve_model(color_model) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
        assert res.status == "completed" and res.n_sent == 21 and res.accuracy == 1.0
        again_msgs = []
        (res2,) = collect([srv.url], engine=engine, test_dir=test_data, say=again_msgs.append)
    assert res2.status == "skipped" and res2.n_sent == 0
    assert "already fully evaluated" in again_msgs[0]
    assert count(engine, predictions) == 21
    with engine.connect() as c:
        assert c.execute(select(runs.c.status)).scalars().all() == ["completed"]


def test_model_is_identified_by_fingerprint_not_url(db_url, color_model, test_data, tmp_path):
    """Two URLs of one fingerprint are both asked (neither owns it by order), agree on every
    image, and count once; a third URL is only asked stored answers again, and agrees."""
    engine = engine_for(db_url)
    with serve_model(color_model) as a, serve_model(color_model) as b:
        r1, r2 = collect([a.url, b.url], engine=engine, test_dir=test_data, say=quiet)
    assert r1.status == r2.status == "completed"
    assert r1.checked >= 21 and r2.checked >= 21 and r1.disagreed == r2.disagreed == 0
    assert count(engine, models) == 1 and count(engine, predictions) == 21
    with engine.connect() as c:
        states = c.execute(select(pending_predictions.c.state)).scalars().all()
    assert set(states) == {"counted"} and count(engine, claim_conflicts) == 0  # kept apart, then counted
    with serve_model(color_model) as c:  # a new URL for a known model: its stored answers asked again
        (r3,) = collect([c.url], engine=engine, test_dir=test_data, say=quiet)
    assert r3.status == "skipped" and r3.checked == 21 and r3.n_sent == 0


def test_retrained_model_behind_same_url_is_evaluated_again(db_url, color_model, test_data, tmp_path):
    engine = engine_for(db_url)
    folder = tmp_path / "m"
    write_color_model(folder, ["red", "green", "blue"])
    with serve_model(folder) as srv:
        (r1,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
    write_color_model(folder, ["red", "green", "blue"], swap=("green", "blue"), version="2")
    with serve_model(folder) as srv:
        (r2,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
    assert r1.fingerprint != r2.fingerprint and r2.status == "completed" and r2.n_sent == 21
    assert count(engine, models) == 2 and count(engine, predictions) == 42
    assert r2.accuracy == pytest.approx(12 / 18)


def test_label_filtering_and_probes(db_url, tmp_path, test_data):
    engine = engine_for(db_url)
    two = write_color_model(tmp_path / "two", ["red", "blue"], name="two")
    with serve_model(two) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
    with engine.connect() as c:
        sent = c.execute(select(images.c.label, images.c.kind).select_from(
            predictions.join(images, images.c.id == predictions.c.image_id))).all()
    labels = {lab for lab, _ in sent}
    assert "green" not in labels and {"red", "blue", "purple"} <= labels
    assert res.n_sent == 6 + 6 + 3
    assert {k for lab, k in sent if lab == "purple"} == {"lookalike"}


def test_image_added_later_is_sent_alone(db_url, color_model, test_data):
    engine = engine_for(db_url)
    with serve_model(color_model) as srv:
        collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
        (test_data / "red" / "new.png").write_bytes(color_png(COLORS["red"], seed=4242))
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
    assert res.status == "completed" and res.n_sent == 1
    assert count(engine, predictions) == 22


def test_corrupt_image_is_reported_and_skipped(db_url, color_model, test_data):
    engine = engine_for(db_url)
    (test_data / "green" / "broken.png").write_bytes(color_png(COLORS["green"])[:50])
    with serve_model(color_model) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data,
                         opts=CollectOptions(batch_size=8), say=quiet)
    assert res.status == "completed" and res.n_sent == 21 and res.n_failed == 1
    with engine.connect() as c:
        (path, error), = c.execute(select(failures.c.path, failures.c.error)).all()
    assert path == "green/broken.png" and "truncated" in error


def test_bad_url_and_unreachable_server(db_url, color_model, test_data):
    engine = engine_for(db_url)
    msgs = []
    with serve_model(color_model) as srv:
        bad, down, ok = collect(["ftp://x", "http://127.0.0.1:9", srv.url], engine=engine, test_dir=test_data,
                                opts=CollectOptions(retries=1, backoff=0.01, timeout=60), say=msgs.append)
    assert bad.status == "error" and "not an http(s) URL" in bad.error
    assert down.status == "error" and "cannot connect" in down.error
    assert ok.status == "completed"  # one bad URL does not stop the others


def test_server_that_dies_mid_run_then_resume(db_url, color_model, test_data):
    """The server goes away after two batches: the run is incomplete, stored rows stay, a rerun completes."""
    from model_server.app import create_app

    engine = engine_for(db_url)
    app = create_app({"model_dir": str(color_model), "load_async": False})
    served = {"n": 0}

    @app.before_request
    def _die_after_two():
        from flask import request
        if request.path == "/predict":
            served["n"] += 1
            if served["n"] > 2:
                return {"error": "server going down"}, 503
        return None

    with LiveServer(app) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data,
                         opts=CollectOptions(batch_size=4, max_in_flight=1, retries=1, backoff=0.01), say=quiet)
    assert res.status == "incomplete" and "503" in res.error and res.url == srv.url
    assert res.n_sent == 8 and count(engine, predictions) == 8
    with serve_model(color_model) as srv2:
        (res2,) = collect([srv2.url], engine=engine, test_dir=test_data, say=quiet)
    assert res2.status == "completed" and res2.n_sent == 13 and count(engine, predictions) == 21
    with engine.connect() as c:
        assert sorted(c.execute(select(runs.c.status)).scalars()) == ["completed", "incomplete"]


def test_sigterm_marks_the_run_interrupted_and_a_rerun_completes(tmp_path, color_model, test_data):
    for i in range(40):
        (test_data / "red" / f"extra-{i}.png").write_bytes(color_png(COLORS["red"], seed=8000 + i))
    db_url = f"sqlite:///{tmp_path / 't.db'}"
    server, (url,) = start_server_process([color_model], tmp_path, predict_delay=0.2)  # interrupted mid-run
    try:
        cmd = [sys.executable, "-m", "collector.cli", "--db", db_url, "collect", "--test-data", str(test_data),
               "--batch-size", "2", "--max-in-flight", "1", url]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        engine = engine_for(db_url)
        deadline = time.time() + 300  # a loaded machine may take long to start the collector
        while count(engine, predictions) < 6 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None and count(engine, predictions) >= 6, "the run never got going"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        with engine.connect() as c:
            assert c.execute(select(runs.c.status)).scalars().all() == ["interrupted"]
        stored = count(engine, predictions)
        assert 0 < stored < 61
        assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
        assert count(engine, predictions) == 61
    finally:
        server.kill()
        server.wait()


def test_sigkill_mid_run_then_resume_equals_uninterrupted(db_url, tmp_path, color_model, test_data):
    """SIGKILL the collector process mid-run, rerun, compare with an uninterrupted run."""
    for i in range(40):  # more images so the kill lands mid-run
        (test_data / "blue" / f"extra-{i}.png").write_bytes(color_png(COLORS["blue"], seed=7000 + i))
    server, (url,) = start_server_process([color_model], tmp_path, predict_delay=0.2)  # interrupted mid-run
    try:
        cmd = [sys.executable, "-m", "collector.cli", "--db", db_url, "collect", "--test-data", str(test_data),
               "--batch-size", "2", "--max-in-flight", "1", url]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine = engine_for(db_url)
        deadline = time.time() + 300  # a loaded machine may take long to start the collector
        while count(engine, predictions) < 10 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None and count(engine, predictions) >= 10, "the run never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = count(engine, predictions)
        assert 0 < partial < 61, partial
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        resumed = pred_rows(engine)
        with engine.connect() as c:
            statuses = sorted(c.execute(select(runs.c.status)).scalars())
        assert statuses == ["completed", "interrupted"]

        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
        clean = subprocess.run(cmd[:4] + [clean_url] + cmd[5:], capture_output=True, text=True, timeout=120)
        assert clean.returncode == 0, clean.stderr
        reference = pred_rows(engine_for(clean_url))
    finally:
        server.kill()
        server.wait()
    assert len(resumed) == len(set(resumed)) == 61
    assert resumed == reference


def test_model_swapped_mid_run_stops_that_run_as_incomplete(db_url, color_model, test_data, tmp_path):
    """The server is redeployed after the first batch: its answers now name another fingerprint."""
    from model_server.app import create_app

    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", scale=14.0)
    apps = [create_app({"model_dir": str(f), "load_async": False}) for f in (color_model, v2)]
    predicts = []

    def redeploying(environ, start_response):
        if environ["PATH_INFO"] == "/predict":
            predicts.append(1)
        return apps[0 if len(predicts) <= 1 else 1](environ, start_response)

    engine = engine_for(db_url)
    with LiveServer(redeploying) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet,
                         opts=CollectOptions(batch_size=4, max_in_flight=1))
        assert res.status == "incomplete" and "the model changed during the run" in res.error
        assert res.n_sent == 4  # the first batch, answered by the model the run started with
        with engine.connect() as c:
            assert c.execute(select(runs.c.status)).scalars().all() == ["incomplete"]
        assert {fp for fp, _, _ in pred_rows(engine)} == {res.fingerprint}
        (again,) = collect([srv.url], engine=engine, test_dir=test_data, say=quiet)
    assert again.status == "completed" and again.fingerprint != res.fingerprint  # the new model, in full
    assert len(pred_rows(engine, again.fingerprint)) == 21


def test_rejected_images_after_accepted_ones_do_not_abandon_the_model(db_url, color_model, test_data, monkeypatch):
    """The give-up rule counts answers accepted, not rows already written: a server that answered
    its first image and then refuses 12 is not abandoned as 'rejecting every image', although
    nothing was flushed to the database when the 8th refusal came."""
    import io
    import threading

    from werkzeug.wrappers import Request, Response

    from collector.protocols.client import ModelClient
    from model_server.app import create_app

    monkeypatch.setattr(ModelClient, "request_form", "multipart")  # the server below picks by file name

    real = create_app({"model_dir": str(color_model), "load_async": False})
    state = {"answered": 0}
    lock = threading.Lock()

    def picky(environ, start_response):
        if environ["PATH_INFO"] == "/predict":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)  # read here, and again by the real server
            with Request({**environ, "wsgi.input": io.BytesIO(body)}) as parsed:  # closes its spooled files
                names = [f.filename for f in parsed.files.getlist("images")]
            with lock:
                first = state["answered"] == 0
                state["answered"] += 1
            if not first and any(n.startswith(("r", "g")) for n in names):  # red and green images
                return Response('{"error": "refused"}', 400, mimetype="application/json")(environ, start_response)
        return real(environ, start_response)

    engine = engine_for(db_url)
    with LiveServer(picky) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data,
                         opts=CollectOptions(batch_size=1, max_in_flight=1), say=quiet)
    assert res.n_failed >= 8 and res.status == "completed", (res.status, res.error, res.n_failed)
    assert count(engine, predictions) == res.n_sent == 21 - res.n_failed


def test_a_liar_beside_the_honest_server_makes_the_fingerprint_conflicting_until_resolved(color_model, tmp_path):
    """A fresh database, a liar listed first that claims the honest model's fingerprint: neither
    URL is skipped or counted, the evidence is stored, compare refuses; `conflicts resolve
    --forget` and a collect from the trusted URL alone make it evaluated again."""
    import json

    from flask import Flask, Response, request

    from helpers import LiveServer, make_test_data, run_cli

    data = make_test_data(tmp_path / "td")
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine = engine_for(db)
    with serve_model(color_model) as honest:
        liar = Flask("liar")

        @liar.get("/metadata")
        def metadata():
            meta = requests.get(honest.url + "/metadata", timeout=60).json()
            meta.pop("predict_forms", None)  # it relays multipart only
            return Response(json.dumps(meta), mimetype="application/json")

        @liar.post("/predict")
        def predict():
            files = [("images", (f.filename, f.read(), "image/png")) for f in request.files.getlist("images")]
            body = requests.post(honest.url + "/predict", files=files, timeout=60).json()
            for p in body["predictions"]:  # the scores under rotated labels
                labs = list(p["scores"])
                p["scores"] = {labs[(i + 1) % len(labs)]: p["scores"][lab] for i, lab in enumerate(labs)}
                p["label"] = max(p["scores"], key=p["scores"].get)
                p["confidence"] = p["scores"][p["label"]]
            return Response(json.dumps(body), mimetype="application/json")

        with LiveServer(liar) as bad:
            r_bad, r_honest = collect([bad.url, honest.url], engine=engine, test_dir=data, say=quiet)
        assert r_bad.status == r_honest.status == "failed" and r_bad.disagreed and r_honest.disagreed
        assert count(engine, predictions) == 0 and count(engine, claim_conflicts) > 0
        out = run_cli("--db", db, "conflicts", "--json")
        evidence = json.loads(out.output)
        assert out.exit_code == 1 and {e["url"] for e in evidence} == {bad.url, honest.url}
        assert run_cli("--db", db, "compare", "fp:" + r_honest.fingerprint, "fp:" + r_honest.fingerprint).exit_code == 2
        assert run_cli("--db", db, "conflicts", "resolve", "fp:" + r_honest.fingerprint).exit_code == 2  # say how
        r = run_cli("--db", db, "conflicts", "resolve", "fp:" + r_honest.fingerprint, "--forget")
        assert r.exit_code == 0 and "closed" in r.output
        assert run_cli("--db", db, "conflicts").exit_code == 0
        (again,) = collect([honest.url], engine=engine, test_dir=data, say=quiet)
    assert again.status == "completed" and count(engine, predictions) == 21


def _stored(engine) -> list[tuple]:
    """Every stored answer, as the database holds it (no ids, no timing)."""
    q = (select(models.c.fingerprint, images.c.sha256, predictions.c.predicted_label, predictions.c.confidence,
                predictions.c.scores)
         .select_from(predictions.join(models, models.c.id == predictions.c.model_id)
                      .join(images, images.c.id == predictions.c.image_id)))
    with engine.connect() as c:
        return sorted((fp, sha, label, conf, json.dumps(scores)) for fp, sha, label, conf, scores in c.execute(q))


def test_the_image_batch_form_stores_the_same_answers_as_multipart(tmp_path, color_model, test_data, monkeypatch):
    """The fast request form (one body, a score matrix back) against the form before it: the same
    rows from the same server and images (scores equal but for float32 rounding); and the server
    was sent each form."""
    from collector.protocols.client import ModelClient

    seen = {}
    with serve_model(color_model) as srv:
        for form in ("multipart", "image-batch"):
            monkeypatch.setattr(ModelClient, "request_form", form)
            real = ModelClient.predict

            def spy(self, images, _real=real, _form=form):
                seen.setdefault(_form, set()).add(self.form)
                return _real(self, images)

            monkeypatch.setattr(ModelClient, "predict", spy)
            engine = engine_for(f"sqlite:///{tmp_path / form}.db")
            (res,) = collect([srv.url], engine=engine, test_dir=test_data, opts=CollectOptions(batch_size=4),
                             say=quiet)
            assert res.status == "completed" and res.n_sent == 21
            seen[form + " rows"] = _stored(engine)
            monkeypatch.setattr(ModelClient, "predict", real)
    assert seen["multipart"] == {"multipart"} and seen["image-batch"] == {"image-batch"}
    a, b = seen["multipart rows"], seen["image-batch rows"]
    assert len(a) == 21 and [r[:3] for r in a] == [r[:3] for r in b]  # the same images, the same labels
    for x, y in zip(a, b, strict=True):  # the same scores, to float32's last bit or two
        assert json.loads(x[4]).keys() == json.loads(y[4]).keys()
        assert all(_same_float32(v, w) for v, w in zip([x[3], *json.loads(x[4]).values()],
                                                       [y[3], *json.loads(y[4]).values()], strict=True)), (x, y)


def _same_float32(a: float, b: float) -> bool:
    """Equal but for float32 rounding: Keras on CPU may round an image's scores differently in a
    batch of another size (which requests went out before the run was planned varies, early.py)."""
    return abs(a - b) <= 4 * 2 ** -23 * max(abs(a), abs(b))


def test_a_lone_claimants_answers_are_not_read_back_into_memory(tmp_path, color_model, test_data, monkeypatch):
    """A known model at a new URL with images to send (a claimant alone) is checked against stored
    answers during the run; its answers are counted in the database without being read back, so
    the collector's memory does not grow with the test set. Two claimants of one new fingerprint are
    still compared answer by answer."""
    from collector.storage import store

    reads = []
    real = store.pending_answers
    monkeypatch.setattr(store, "pending_answers",
                        lambda conn, run_id: reads.append(run_id) or real(conn, run_id=run_id))
    engine = engine_for(f"sqlite:///{tmp_path / 'lone.db'}")
    red = tmp_path / "red-only"
    shutil.copytree(test_data / "red", red / "red")
    with serve_model(color_model) as a, serve_model(color_model) as b:
        collect([a.url], engine=engine, test_dir=red, say=quiet)  # the model, known by 6 images
        assert reads == []  # a founder: nothing pending
        (res,) = collect([b.url], engine=engine, test_dir=test_data, say=quiet)  # 15 new images, at a new URL
        assert res.status == "completed" and res.n_sent == 15 and res.checked >= 1 and res.disagreed == 0
        assert reads == [] and count(engine, predictions) == 21  # counted, never read back
        other = engine_for(f"sqlite:///{tmp_path / 'pair.db'}")
        r1, r2 = collect([a.url, b.url], engine=other, test_dir=test_data, say=quiet)
    assert r1.status == r2.status == "completed" and len(reads) == 2  # the pair compared answer by answer
    assert count(other, predictions) == 21
