"""A real gunicorn process on loopback (`ml-server`), driven by requests and the official tritonclient."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from helpers import COLORS, color_png, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gunicorn_server(color_model, tmp_path_factory):
    """Started the seed's way: `python ml_server.py` inside a model folder (which runs gunicorn)."""
    folder = tmp_path_factory.mktemp("seed") / "colors"
    shutil.copytree(color_model, folder)
    shutil.copy(ROOT / "trained_models" / "ml_original" / "ml_server.py", folder / "ml_server.py")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "ml_server.py", "--port", str(port), "--threads", "2"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(20)


def test_gunicorn_serves_rest(gunicorn_server):
    url, proc = gunicorn_server
    meta = requests.get(url + "/metadata", timeout=5).json()
    assert meta["name"] == "colors"
    files = [("images", (f"{c}.png", color_png(COLORS[c]), "image/png")) for c in ("green", "blue", "red")]
    r = requests.post(url + "/predict", files=files, timeout=10)
    assert r.status_code == 200
    assert [p["label"] for p in r.json()["predictions"]] == ["green", "blue", "red"]
    r = requests.post(url + "/predict", files=[("images", ("x.png", b"garbage", "image/png"))], timeout=10)
    assert r.status_code == 400 and proc.poll() is None
    assert "gunicorn" in requests.get(url + "/health", timeout=5).headers.get("Server", "").lower()


def test_tritonclient_bytes_and_fp32(gunicorn_server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    url, _ = gunicorn_server
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("colors")
    md = client.get_model_metadata("colors")
    assert md["versions"] == ["1"]

    imgs = np.array([color_png(COLORS["blue"]), color_png(COLORS["red"])], dtype=np.object_)
    inp = httpclient.InferInput("images", [2], "BYTES")
    inp.set_data_from_numpy(imgs, binary_data=True)
    outs = [httpclient.InferRequestedOutput("probabilities", binary_data=True),
            httpclient.InferRequestedOutput("labels", binary_data=False)]
    res = client.infer("colors", [inp], outputs=outs, request_id="abc")
    assert res.get_response()["id"] == "abc"
    assert res.get_response()["model_version"] == "1"
    probs = res.as_numpy("probabilities")
    assert probs.shape == (2, 3) and list(probs.argmax(1)) == [2, 0]

    x = np.zeros((1, 16, 16, 3), np.float32)
    x[..., 1] = 0.9
    fp = httpclient.InferInput("input", list(x.shape), "FP32")
    fp.set_data_from_numpy(x, binary_data=False)
    res = client.infer("colors", [fp])
    assert [v.decode() if isinstance(v, bytes) else v for v in res.as_numpy("labels")] == ["green"]

    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("pikachu", [fp])
    bad = httpclient.InferInput("images", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_), binary_data=True)
    with pytest.raises(InferenceServerException, match="not a decodable image"):
        client.infer("colors", [bad])
