"""Every endpoint and every bad input, through the Flask test client with a real tiny model."""

from __future__ import annotations

from helpers import multipart
from model_server.app import create_app


def test_unknown_route_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.get_json()
    assert client.get("/predict").status_code == 405


# ---- Open Inference Protocol v2 -------------------------------------------------------------


# ---- fingerprint -----------------------------------------------------------------------------


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
