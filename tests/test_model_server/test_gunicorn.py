"""A real gunicorn process on loopback (`ml-server`), driven by requests and the official tritonclient."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from helpers import COLORS, MlServerProcess, color_png, free_port, wait_healthy

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
    meta = requests.get(url + "/metadata", timeout=60).json()
    assert meta["name"] == "colors"
    files = [("images", (f"{c}.png", color_png(COLORS[c]), "image/png")) for c in ("green", "blue", "red")]
    r = requests.post(url + "/predict", files=files, timeout=60)
    assert r.status_code == 200
    assert [p["label"] for p in r.json()["predictions"]] == ["green", "blue", "red"]
    r = requests.post(url + "/predict", files=[("images", ("x.png", b"garbage", "image/png"))], timeout=60)
    assert r.status_code == 400 and proc.poll() is None
    assert "gunicorn" in requests.get(url + "/health", timeout=60).headers.get("Server", "").lower()


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


def _images_total(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=60).text  # a new connection: any worker may answer
    (line,) = [ln for ln in text.splitlines() if ln.startswith("model_server_images_total ")]
    return float(line.split()[1])


@pytest.mark.parametrize("given_dir", [False, True], ids=["own-dir", "PROMETHEUS_MULTIPROC_DIR"])
def test_metrics_are_summed_over_workers(color_model, tmp_path, monkeypatch, given_dir):
    """With two gunicorn workers, /metrics counts what both served, whichever worker answers it."""
    from concurrent.futures import ThreadPoolExecutor

    if given_dir:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        (tmp_path / "counter_99999.db").write_bytes(b"stale values of an earlier run")
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with MlServerProcess(color_model, "--workers", "2", "--threads", "2") as srv:
        pid = srv.proc.pid
        workers = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert len(workers) == 2
        png = color_png(COLORS["red"])

        def post(_):
            deadline = time.monotonic() + 240  # a worker answers 503 until its own copy of the model is loaded
            while True:
                r = requests.post(srv.url + "/predict", files=[("images", ("x.png", png, "image/png"))], timeout=60)
                if r.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            r.raise_for_status()

        def counter_files() -> set[Path]:  # the value files each worker has mapped
            return {Path(line.split()[-1]) for w in workers
                    for line in Path(f"/proc/{w}/maps").read_text().splitlines()
                    if "/counter_" in line and line.rstrip().endswith(".db")}

        def served_by(files: set[Path]) -> set[int]:  # counter_<pid>.db
            return {int(f.stem.split("_")[-1]) for f in files}

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # until both workers have served some (bounded)
                list(pool.map(post, range(16)))
                sent += 16
                files = counter_files()
                if served_by(files) == set(workers):
                    break
        assert served_by(files) == set(workers)
        (shared,) = {f.parent for f in files}
        assert (shared == tmp_path) is given_dir
        for _ in range(6):
            assert _images_total(srv.url) == sent
    assert shared.exists() is given_dir  # a directory of its own goes with the server


def test_a_litert_only_folder_is_served(tmp_path):
    """A folder with config.json and model.tflite but no model.keras: ml-server serves it on LiteRT."""
    folder = tmp_path / "ml_original"
    folder.mkdir()
    for name in ("config.json", "model.tflite"):
        shutil.copy(ROOT / "trained_models" / "ml_original" / name, folder / name)
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(folder / "config.json", empty / "config.json")
    bad = subprocess.run([sys.executable, "-m", "model_server.cli", "--model-dir", str(empty)], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "model.keras or model.tflite" in bad.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "model_server.cli", "--model-dir", str(folder), "--port", str(port),
                             "--workers", "1"], env={**os.environ, "MODEL_BACKEND": "litert"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        meta = requests.get(url + "/metadata", timeout=60).json()
        assert meta["name"] == "ml_original" and meta["backend"] == "litert"
    finally:
        proc.terminate()
        proc.wait(20)
