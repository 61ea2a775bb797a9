"""Open Inference Protocol v2 conformance, through the official tritonclient and raw HTTP.

A real `ml-server` (gunicorn) on loopback serving a LiteRT export of a tiny real Keras model.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import zlib

import numpy as np
import pytest
import requests

from helpers import COLORS, LiveServer, MlServerProcess, color_png

INFER = "/v2/models/colors/infer"


@pytest.fixture(scope="module")
def exported(color_model, tmp_path_factory):
    from model_creation.export import export

    folder = tmp_path_factory.mktemp("oip") / "colors"
    shutil.copytree(color_model, folder)
    export(folder)
    return folder


@pytest.fixture(scope="module")
def server(exported):
    with MlServerProcess(exported, "--threads", "2") as srv:
        yield srv.url


@pytest.fixture(scope="module")
def triton(server):
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=server.removeprefix("http://"), network_timeout=120)


def _images(*colors: str):
    import tritonclient.http as httpclient

    inp = httpclient.InferInput("images", [len(colors)], "BYTES")
    inp.set_data_from_numpy(np.array([color_png(COLORS[c]) for c in colors], dtype=np.object_), binary_data=True)
    return inp


def test_served_on_litert(server):
    meta = requests.get(server + "/metadata", timeout=60).json()
    assert meta["backend"] == "litert" and meta["framework"]["name"] == "litert"
    assert requests.get(server + "/v2/models/colors", timeout=60).json()["parameters"]["backend"] == "litert"


def test_only_the_requested_outputs(triton):
    import tritonclient.http as httpclient

    res = triton.infer("colors", [_images("green", "red")], outputs=[httpclient.InferRequestedOutput("labels")])
    names = [o["name"] for o in res.get_response()["outputs"]]
    assert names == ["labels"]
    assert [v.decode() for v in res.as_numpy("labels")] == ["green", "red"]
    assert res.as_numpy("probabilities") is None


def test_binary_data_per_output(triton):
    import tritonclient.http as httpclient

    outs = [httpclient.InferRequestedOutput("probabilities", binary_data=True),
            httpclient.InferRequestedOutput("labels", binary_data=False)]
    res = triton.infer("colors", [_images("blue")], outputs=outs)
    by_name = {o["name"]: o for o in res.get_response()["outputs"]}
    assert by_name["probabilities"]["parameters"]["binary_data_size"] == 3 * 4
    assert "data" not in by_name["probabilities"]
    assert by_name["labels"]["data"] == ["blue"]
    assert res.as_numpy("probabilities").shape == (1, 3)


def test_unknown_output_is_a_400_naming_the_outputs(triton, server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="unknown output 'scores'.*'probabilities', 'labels'"):
        triton.infer("colors", [_images("red")], outputs=[httpclient.InferRequestedOutput("scores")])
    b64 = base64.b64encode(color_png(COLORS["red"])).decode()
    r = requests.post(server + INFER, json={"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                                        "data": [b64]}], "outputs": [{"name": "scores"}]}, timeout=60)
    assert r.status_code == 400


def test_inputs_match_the_metadata_by_name(triton, server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    meta_inputs = {i["name"] for i in triton.get_model_metadata("colors")["inputs"]}
    assert meta_inputs == {"images", "input"}
    wrong = httpclient.InferInput("image_bytes", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([color_png(COLORS["red"])], dtype=np.object_), binary_data=True)
    with pytest.raises(InferenceServerException, match="unknown input 'image_bytes'.*'images'.*'input'"):
        triton.infer("colors", [wrong])
    x = httpclient.InferInput("input", [1, 16, 16, 3], "FP32")
    x.set_data_from_numpy(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(InferenceServerException, match="exactly one input"):
        triton.infer("colors", [_images("red"), x])


def test_bytes_base64_content_type(server):
    b64 = [base64.b64encode(color_png(COLORS[c])).decode() for c in ("red", "blue")]
    req = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2, 1], "data": b64,
                       "parameters": {"content_type": "base64"}}]}
    r = requests.post(server + INFER, json=req, timeout=60)
    assert r.status_code == 200, r.text
    labels = {o["name"]: o for o in r.json()["outputs"]}["labels"]["data"]
    assert labels == ["red", "blue"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(triton, algorithm):
    res = triton.infer("colors", [_images("green", "blue")], request_compression_algorithm=algorithm)
    assert [v.decode() for v in res.as_numpy("labels")] == ["green", "blue"]


def test_raw_deflate_and_bad_encodings(server):
    body = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                   "data": [base64.b64encode(color_png(COLORS["red"])).decode()]}]}).encode()
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = c.compress(body) + c.flush()
    r = requests.post(server + INFER, data=raw, headers={"Content-Encoding": "deflate"}, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(server + INFER, data=b"not gzip", headers={"Content-Encoding": "gzip"}, timeout=60)
    assert r.status_code == 400 and "not valid gzip" in r.json()["error"]
    r = requests.post(server + INFER, data=gzip.compress(body), headers={"Content-Encoding": "br"}, timeout=60)
    assert r.status_code == 415 and "gzip, deflate" in r.json()["error"]


def test_decompressed_size_is_bounded(exported):
    """A 64 KB gzip body that inflates to 5 MB is refused against a 1 MB limit, before it is inflated whole."""
    from model_server.app import create_app

    app = create_app({"model_dir": str(exported), "load_async": False, "max_content_length": 1_000_000})
    bomb = gzip.compress(b"{" + b" " * 5_000_000 + b"}")
    assert len(bomb) < 64_000
    with LiveServer(app) as srv:
        r = requests.post(srv.url + INFER, data=bomb, headers={"Content-Encoding": "gzip"}, timeout=60)
        assert r.status_code == 413 and "decompressed body is over the limit of 1000000" in r.json()["error"]
        fine = gzip.compress(json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": [
            base64.b64encode(color_png(COLORS["green"])).decode()]}]}).encode())
        r = requests.post(srv.url + INFER, data=fine, headers={"Content-Encoding": "gzip"}, timeout=60)
        assert r.status_code == 200


def test_config_repository_and_statistics(triton):
    from tritonclient.utils import InferenceServerException

    config = triton.get_model_config("colors")
    assert config["max_batch_size"] > 0 and [i["name"] for i in config["input"]] == ["images", "input"]
    assert config["parameters"]["labels"] == ["red", "green", "blue"]
    index = triton.get_model_repository_index()
    assert [(m["name"], m["state"]) for m in index] == [("colors", "READY")]
    with pytest.raises(InferenceServerException, match="model control is not supported"):
        triton.load_model("colors")
    with pytest.raises(InferenceServerException, match="/metrics"):
        triton.get_inference_statistics("colors")


def test_not_ready_is_a_4xx_and_live_stays_200(tmp_path):
    """A server whose model cannot load: live, not ready (the spec's 4xx), and `/health` keeps its 503."""
    import tritonclient.http as httpclient

    from model_server.app import create_app

    app = create_app({"model_dir": str(tmp_path), "load_async": True})
    app.extensions["dataplane"].wait(240)
    with LiveServer(app) as srv:
        r = requests.get(srv.url + "/v2/health/ready", timeout=60)
        assert r.status_code == 400 and r.json()["ready"] is False and "config.json" in r.json()["error"]
        assert requests.get(srv.url + "/v2/models/colors/ready", timeout=60).status_code == 400
        assert requests.get(srv.url + "/health", timeout=60).status_code == 503
        client = httpclient.InferenceServerClient(url=srv.url.removeprefix("http://"), network_timeout=120)
        assert client.is_server_live() is True
        assert client.is_server_ready() is False
        assert client.is_model_ready("colors") is False


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
