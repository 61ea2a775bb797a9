"""This project's REST API (`GET /health`, `GET /metadata`, `POST /predict`) through the Flask
test client with a real tiny model: every body form, every bad shape a 4xx."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from helpers import COLORS, color_png, multipart
from model_server.app import create_app


def test_health_and_metadata(client, color_model):
    assert client.get("/health").get_json() == {"status": "ok"}
    meta = client.get("/metadata").get_json()
    assert meta["name"] == "colors" and meta["version"] == "1"
    assert meta["labels"] == ["red", "green", "blue"]
    assert meta["input"] == {"height": 16, "width": 16, "channels": 3}
    assert len(meta["fingerprint"]) == 64
    assert meta["preprocessing"]["resize"] == "pad_to_square"
    assert "tensorflow" in meta["framework"]


def test_health_is_503_until_loaded(color_model):
    import threading

    gate = threading.Event()

    def slow_loader(path):
        from model_server.model import load_model_folder
        gate.wait(10)
        return load_model_folder(path)

    app = create_app({"model_dir": str(color_model), "load_async": True}, loader=slow_loader)
    c = app.test_client()
    assert c.get("/health").status_code == 503
    assert c.get("/metadata").status_code == 503
    r = c.get("/v2/health/ready")  # the spec: 200 means ready, 4xx not ready
    assert r.status_code == 400 and r.get_json()["ready"] is False
    assert c.get("/v2/models/colors/ready").status_code == 400
    gate.set()
    assert app.extensions["dataplane"].wait(240)
    assert c.get("/health").status_code == 200


def test_predict_multipart_in_input_order(client):
    blobs = [color_png(COLORS[c], seed=i) for i, c in enumerate(["blue", "red", "green", "red"])]
    r = client.post("/predict", data=multipart(*blobs))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert [p["label"] for p in body["predictions"]] == ["blue", "red", "green", "red"]
    p = body["predictions"][0]
    assert set(p["scores"]) == {"red", "green", "blue"}
    assert abs(sum(p["scores"].values()) - 1) < 1e-4 and p["confidence"] == max(p["scores"].values())
    assert body["model"]["fingerprint"] == client.get("/metadata").get_json()["fingerprint"]
    assert set(body["timing_ms"]) == {"decode", "predict", "total"}


def test_predict_json_b64(client):
    inst = [{"b64": base64.b64encode(color_png(COLORS["green"])).decode()}]
    r = client.post("/predict", json={"instances": inst})
    assert r.status_code == 200 and r.get_json()["predictions"][0]["label"] == "green"


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP", "BMP"])
def test_predict_accepts_formats(client, fmt):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), COLORS["red"]).save(buf, fmt)
    r = client.post("/predict", data=multipart(buf.getvalue()))
    assert r.status_code == 200 and r.get_json()["predictions"][0]["label"] == "red"


@pytest.mark.parametrize("body", [
    {"instances": "x"}, {"instances": [{"b64": 3}]}, {"instances": [{"b64": "!!notbase64"}]}, [1, 2], {}])
def test_wrong_json_shapes(client, body):
    r = client.post("/predict", json=body)
    assert r.status_code == 400 and "error" in r.get_json()


def test_wrong_content_type_and_field(client):
    assert client.post("/predict", data=b"abc", content_type="text/plain").status_code == 415
    r = client.post("/predict", data={"files": [(io.BytesIO(color_png(COLORS["red"])), "a.png")]})
    assert r.status_code == 400 and "'images'" in r.get_json()["error"]
    r = client.post("/predict", data="{not json", content_type="application/json")
    assert r.status_code == 400


def test_deeply_nested_json_is_a_400_not_a_500(client):
    deep = b"[" * 50_000 + b"]" * 50_000
    for path in ("/predict", "/v2/models/colors/infer"):
        r = client.post(path, data=b'{"instances": ' + deep + b"}" if path == "/predict" else b'{"inputs": ' + deep
                        + b"}", content_type="application/json")
        assert r.status_code == 400, (path, r.status_code, r.get_json())
        error = r.get_json()["error"]
        # /v2 decodes into types: a list where an object belongs is refused before any nesting is read
        assert "nested too deeply" in error or "Expected `object`, got `array`" in error, error
    r = client.post("/v2/models/colors/infer", data=b'{"inputs": [{"name": "images", "datatype": "BYTES", '
                    b'"shape": [1], "data": ' + deep + b"}]}", content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.get_json()["error"], r.get_json()
