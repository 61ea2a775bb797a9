"""Every endpoint and every bad input, through the Flask test client with a real tiny model."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from helpers import COLORS, color_png, write_color_model
from model_server.app import create_app


@pytest.fixture(scope="module")
def app(color_model):
    return create_app({"model_dir": str(color_model), "load_async": False, "max_batch": 8,
                       "max_content_length": 2_000_000, "max_pixels": 1_000_000})


@pytest.fixture
def client(app):
    return app.test_client()


def multipart(*blobs: bytes) -> dict:
    return {"images": [(io.BytesIO(b), f"img{i}.png") for i, b in enumerate(blobs)]}


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


def test_broken_model_folder_reports_on_health(tmp_path):
    app = create_app({"model_dir": str(tmp_path), "load_async": True})
    app.extensions["dataplane"].wait(240)
    r = app.test_client().get("/health")
    assert r.status_code == 503 and "config.json" in r.get_json()["error"]


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


def _png_bomb(side: int = 6000) -> bytes:
    """A tiny file that decodes to side*side pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


BAD_INPUTS = {
    "text": (b"hello, I am not an image", 400, "not a decodable image"),
    "zero bytes": (b"", 400, "empty file"),
    "truncated png": (color_png(COLORS["red"])[:60], 400, "image 1 (img1.png): corrupt or truncated"),
    "pixel bomb": (_png_bomb(), 400, "too large"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_images_are_4xx_and_server_goes_on(client, case):
    data, status, words = BAD_INPUTS[case]
    r = client.post("/predict", data=multipart(color_png(COLORS["red"]), data) if case != "zero bytes"
                    else multipart(data))
    assert r.status_code == status
    assert words in r.get_json()["error"]
    assert client.post("/predict", data=multipart(color_png(COLORS["red"]))).status_code == 200


def test_empty_batch_over_batch_and_size_limits(client):
    assert client.post("/predict", json={"instances": []}).status_code == 400
    r = client.post("/predict", data=multipart(*[color_png(COLORS["red"], seed=i) for i in range(9)]))
    assert r.status_code == 413 and "limit of 8" in r.get_json()["error"]
    r = client.post("/predict", data=multipart(b"\0" * 2_100_000))
    assert r.status_code == 413 and "body over the limit" in r.get_json()["error"]


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


def test_unknown_route_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.get_json()
    assert client.get("/predict").status_code == 405


# ---- Open Inference Protocol v2 -------------------------------------------------------------
def test_oip_metadata_and_health(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    m = client.get("/v2/models/colors").get_json()
    assert m["versions"] == ["1"] and m["outputs"][0]["shape"] == [-1, 3]
    assert client.get("/v2/models/colors/ready").get_json()["ready"] is True
    r = client.get("/v2/models/pikachu")
    assert r.status_code == 404 and "unknown model" in r.get_json()["error"]
    assert client.get("/v2/models/colors/versions/9").status_code == 404


def test_oip_infer_bytes_json(client):
    data = [base64.b64encode(color_png(COLORS[c])).decode() for c in ("green", "red")]
    r = client.post("/v2/models/colors/infer", json={
        "id": "req-7", "inputs": [{"name": "images", "datatype": "BYTES", "shape": [2], "data": data}]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["id"] == "req-7" and body["model_version"] == "1"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["labels"]["data"] == ["green", "red"]
    assert out["probabilities"]["shape"] == [2, 3] and len(out["probabilities"]["data"]) == 6


def test_oip_infer_fp32_and_binary_extension(client):
    x = np.zeros((2, 16, 16, 3), np.float32)
    x[0, ..., 2] = 0.9  # blue
    x[1, ..., 0] = 0.9  # red
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 16, 16, 3],
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    r = client.post("/v2/models/colors/infer", data=head + x.tobytes(),
                    headers={"Inference-Header-Content-Length": str(len(head))},
                    content_type="application/octet-stream")
    assert r.status_code == 200
    n = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.data[:n])
    probs_size = meta["outputs"][0]["parameters"]["binary_data_size"]
    probs = np.frombuffer(r.data[n:n + probs_size], "<f4").reshape(2, 3)
    assert list(np.argmax(probs, 1)) == [2, 0]


@pytest.mark.parametrize("req,words", [
    ({"inputs": []}, "length >= 1 - at `$.inputs`"),
    ({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]},
     "unknown input 'x': this model's inputs are 'images' (BYTES"),
    ({"inputs": [{"name": "images", "datatype": "INT8", "shape": [1], "data": [1]}]}, "must be BYTES, got 'INT8'"),
    ({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]}, "must be FP32"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]},
                 {"name": "input", "datatype": "FP32", "shape": [1], "data": [0.0]}]}, "exactly one input"),
    ({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2, 2, 3], "data": [0.0] * 12}]}, "shape"),
    ({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 16, 16, 3], "data": [1.0]}]}, "needs 768"),
    ({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 16, 16, 3], "data": ["a"] * 768}]}, "numbers"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}, "base64"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]}, "image 0"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": "1", "data": []}]}, "shape"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [0], "data": []}]}, "empty batch"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="],
                  "parameters": {"content_type": "str"}}]}, "content_type 'str' is not supported"),
    ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}],
      "outputs": [{"name": "logits"}]}, "unknown output 'logits': this model's outputs are 'probabilities'"),
])
def test_oip_bad_requests(client, req, words):
    r = client.post("/v2/models/colors/infer", json=req)
    assert 400 <= r.status_code < 500
    assert words in r.get_json()["error"]


def test_oip_bad_binary_header(client):
    r = client.post("/v2/models/colors/infer", data=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400 and "does not fit" in r.get_json()["error"]


def test_metrics_count_requests_and_batches(client):
    client.post("/predict", data=multipart(color_png(COLORS["red"]), color_png(COLORS["blue"])))
    client.post("/predict", data=multipart(b"junk"))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model_server_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    assert 'model_server_errors_total{endpoint="/predict",status="400"}' in text
    assert "model_server_batch_size_bucket" in text
    assert "model_server_request_latency_seconds_bucket" in text


# ---- fingerprint -----------------------------------------------------------------------------
def test_fingerprint_stable_across_restart_move_and_resave(tmp_path, color_model):
    import shutil

    import keras

    from model_server.model import load_model_folder

    a = load_model_folder(color_model).fingerprint
    assert load_model_folder(color_model).fingerprint == a  # restart
    moved = tmp_path / "elsewhere"
    shutil.copytree(color_model, moved)
    assert load_model_folder(moved).fingerprint == a  # moved folder
    m = keras.saving.load_model(moved / "model.keras", compile=False)
    m.save(moved / "model.keras")  # re-save: new zip bytes, same values
    assert load_model_folder(moved).fingerprint == a


def test_fingerprint_changes_with_weights_labels_and_preprocessing(tmp_path, color_model):
    from model_server.model import load_model_folder

    base = load_model_folder(color_model).fingerprint
    retrained = write_color_model(tmp_path / "r", ["red", "green", "blue"], swap=("green", "blue"))
    assert load_model_folder(retrained).fingerprint != base
    relabeled = write_color_model(tmp_path / "l", ["red", "blue", "green"])
    assert load_model_folder(relabeled).fingerprint != load_model_folder(
        write_color_model(tmp_path / "l2", ["red", "green", "blue"])).fingerprint
    cfg = json.loads((color_model / "config.json").read_text())
    cfg["preprocessing"]["resize"] = "stretch"
    other = tmp_path / "p"
    import shutil
    shutil.copytree(color_model, other)
    (other / "config.json").write_text(json.dumps(cfg))
    assert load_model_folder(other).fingerprint != base
    # Fields that do not change predictions do not change the fingerprint.
    cfg = json.loads((color_model / "config.json").read_text())
    cfg["created_at"] = "2000-01-01T00:00:00+00:00"
    (other / "config.json").write_text(json.dumps(cfg))
    assert load_model_folder(other).fingerprint == base


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


def test_413_names_the_limit_that_was_hit(color_model):
    app = create_app({"model_dir": str(color_model), "load_async": False, "max_batch": 2,
                      "max_content_length": 4096})
    c = app.test_client()
    r = c.post("/predict", data=b"x" * 5000, content_type="application/json")
    assert r.status_code == 413 and "over the limit of 4096 bytes (MAX_CONTENT_LENGTH): it has 5000" in \
        r.get_json()["error"]
    parts = {f"f{i}": "v" for i in range(20)}  # small, but more parts than a batch of 2 may have
    r = c.post("/predict", data=parts, content_type="multipart/form-data")
    assert r.status_code == 413 and "too many multipart parts: at most 18" in r.get_json()["error"]


def test_error_messages_carry_no_python_reprs(client):
    for junk in (b"hello, I am not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"GIF89a" + b"\0" * 20):
        r = client.post("/predict", data=multipart(junk))
        assert r.status_code == 400
        assert " object at 0x" not in r.get_json()["error"], r.get_json()
