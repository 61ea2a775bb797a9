"""The HTTP client of one model server: metadata, batched predict, retries, errors."""

from __future__ import annotations

import threading

import pytest
from flask import Flask, jsonify

from collector.protocols import validate
from collector.protocols.client import ModelClient, ModelServerError
from helpers import COLORS, LiveServer, color_png, serve_model


@pytest.mark.parametrize("form", ["image-batch", "multipart"])
def test_metadata_and_predict_against_a_real_server(color_model, form, monkeypatch):
    monkeypatch.setattr(ModelClient, "request_form", form)
    with serve_model(color_model) as srv:
        client = ModelClient(srv.url + "/")  # a trailing slash is dropped
        assert client.url == srv.url
        meta = client.metadata()
        assert meta["name"] == "colors" and meta["labels"] == ["red", "green", "blue"]
        assert len(meta["fingerprint"]) == 64
        assert client.form == form  # the server lists both forms
        body = client.predict([("a/r.png", color_png(COLORS["red"])), ("b/g.png", color_png(COLORS["green"]))])
        rows = validate.predictions(body, n_sent=2, labels=meta["labels"], fingerprint=meta["fingerprint"],
                                    version=meta["version"])
        assert [r["label"] for r in rows] == ["red", "green"]
        assert (body.scores is not None, bool(body.predictions)) == (form == "image-batch", form == "multipart")
        assert body.model.fingerprint == meta["fingerprint"]
        with pytest.raises(ModelServerError) as e:
            client.predict([("x.png", b"not an image")])
        name = "images[0]" if form == "image-batch" else "x.png"  # the batch form carries no file names
        assert e.value.status == 400 and f"POST /predict answered HTTP 400: image 0 ({name})" in str(e.value)
        client.close()


def test_a_server_that_lists_no_forms_is_sent_multipart():
    """An older native server (no `predict_forms` in its metadata) reads multipart: so it is sent."""
    app = Flask(__name__)
    seen = []

    @app.get("/metadata")
    def metadata():
        return jsonify({"name": "old", "version": "1", "fingerprint": "a" * 64, "labels": ["x", "y"]})

    @app.post("/predict")
    def predict():
        from flask import request

        seen.append(request.mimetype)
        n = len(request.files.getlist("images"))
        return jsonify({"model": {"fingerprint": "a" * 64}, "predictions": [
            {"label": "x", "confidence": 0.9, "scores": {"x": 0.9, "y": 0.1}}] * n})

    with LiveServer(app) as srv:
        client = ModelClient(srv.url)
        client.metadata()
        assert client.form == "multipart"
        body = client.predict([("a.png", b"1"), ("b.png", b"2")])
        assert seen == ["multipart/form-data"] and len(body.predictions) == 2


@pytest.mark.parametrize("url", ["ftp://host", "host:8080", "http://", "file:///etc/passwd"])
def test_a_url_that_is_not_http_is_refused_before_any_connection(url):
    with pytest.raises(ModelServerError, match="not an http"):
        ModelClient(url)


def test_5xx_is_retried_then_reported_with_the_attempts():
    app = Flask(__name__)
    calls = []

    @app.get("/metadata")
    def metadata():
        calls.append(1)
        return jsonify({"error": "model exploded"}), 500

    with LiveServer(app) as srv:
        with pytest.raises(ModelServerError) as e:
            ModelClient(srv.url, retries=2, backoff=0.01).metadata()
    assert len(calls) == 3
    assert "(after 3 attempts)" in str(e.value) and "HTTP 500: model exploded" in str(e.value)


def test_metadata_that_is_not_a_model_server():
    app = Flask(__name__)

    @app.get("/metadata")
    def metadata():
        return jsonify({"name": "x"})

    with LiveServer(app) as srv:
        with pytest.raises(ModelServerError, match=r"invalid metadata: .*missing required field `version`"):
            ModelClient(srv.url).metadata()


def test_one_watchdog_thread_keeps_every_deadline_in_order_and_skips_the_disarmed():
    from collector.protocols.client import Watchdog

    dog, fired, last = Watchdog(name="test-deadlines"), [], threading.Event()
    early = dog.arm(0.05, lambda: fired.append("early"))
    dog.arm(0.1, lambda: fired.append("middle"))
    dog.arm(0.2, lambda: (fired.append("late"), last.set()))
    dog.disarm(early)  # due first: had it fired, it would be in the list before "late"
    assert last.wait(60)
    assert fired == ["middle", "late"]
    assert [t.name for t in threading.enumerate()].count("test-deadlines") == 1


def test_requests_share_the_one_watchdog_thread(color_model, monkeypatch):
    def no_timer(*args, **kwargs):
        raise AssertionError("a thread per request")

    monkeypatch.setattr(threading, "Timer", no_timer)
    with serve_model(color_model) as srv:
        client = ModelClient(srv.url)
        for _ in range(20):
            assert client.metadata()["fingerprint"]
        client.close()
    assert [t.name for t in threading.enumerate()].count("request-deadlines") == 1
