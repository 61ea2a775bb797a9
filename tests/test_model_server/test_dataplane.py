"""The data plane: loading (and saying why it failed), batch and size limits, bad images as 4xx."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from helpers import COLORS, color_png, multipart
from model_server.app import create_app


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


def test_broken_model_folder_reports_on_health(tmp_path):
    app = create_app({"model_dir": str(tmp_path), "load_async": True})
    app.extensions["dataplane"].wait(240)
    r = app.test_client().get("/health")
    assert r.status_code == 503 and "config.json" in r.get_json()["error"]


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
