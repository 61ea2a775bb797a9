"""Evaluating models behind other serving stacks: Open Inference Protocol v2 addresses, labels,
inputs, scores and identity, against our own server's /v2 endpoints and a real MLServer 1.7."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from collector.protocols import ProtocolOptions, read_labels_file
from collector.protocols.foreign import are_probabilities, behavioural_fingerprint, canary_images
from helpers import MlServerProcess, free_port, run_cli
from peers.process import PeerServer
from peers.venvs import peer_python

ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / "tests" / "peers"
ORIGINAL = ROOT / "trained_models" / "ml_original"
BASE = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]


# ---- labels, identity -----------------------------------------------------------------------
def test_labels_file_is_one_label_per_line():
    assert read_labels_file("a\n\n b \nc\n") == ("a", "b", "c")
    with pytest.raises(ValueError, match="no label"):
        read_labels_file("\n \n")


def test_behavioural_fingerprint_ignores_float_noise_and_sees_weight_changes():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=8)
    p = np.round(p, 2) + 0.001  # away from the rounding boundaries, as almost every value is
    p /= p.sum(1, keepdims=True)
    fp = behavioural_fingerprint("m", "1", BASE, p)
    assert behavioural_fingerprint("m", "1", BASE, p + rng.normal(0, 1e-6, p.shape)) == fp
    moved = p.copy()
    moved[3] = np.roll(moved[3], 1)
    assert behavioural_fingerprint("m", "1", BASE, moved) != fp
    assert behavioural_fingerprint("m", "2", BASE, p) != fp
    assert behavioural_fingerprint("m", "1", BASE[::-1], p) != fp


def test_canaries_are_fixed_images():
    a, b = canary_images(), canary_images()
    assert len(a) == 8 and a == b and len({data for _, data in a}) == 8


def test_logits_are_told_from_probabilities():
    assert are_probabilities(np.array([[0.2, 0.8], [1.0, 0.0]]))
    assert not are_probabilities(np.array([[2.0, -1.0]]))
    assert not are_probabilities(np.array([[0.2, 0.2]]))


# ---- our own server, through its /v2 endpoints -------------------------------------------
@pytest.fixture(scope="module")
def native():
    with MlServerProcess(ORIGINAL) as srv:
        yield srv.url


def _collect(db: str, *args: str, expect: int = 0):
    r = run_cli("--db", db, "collect", "--json", *args)
    assert r.exit_code == expect, r.output
    return json.loads(r.stdout) if expect == 0 else r.output


def _models(db: str) -> list[dict]:
    r = run_cli("--db", db, "models", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_our_server_over_v2_is_the_same_model(native, tmp_path):
    db = f"sqlite:///{tmp_path / 'v2.db'}"
    out = _collect(db, native + "/v2/models/ml_original")
    (res,) = out["results"]
    assert res["status"] == "completed" and res["n_sent"] > 300
    again = _collect(db, native)  # the declared fingerprint: the native address is the same model
    assert again["results"][0]["status"] == "skipped" and again["results"][0]["n_sent"] == 0
    (m,) = _models(db)
    assert m["identity"] == "declared" and m["protocol"] == "v2"


def test_tensor_mode_preprocesses_here_and_agrees(native, tmp_path):
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    bytes_acc = _collect(a, native + "/v2/models/ml_original")["results"][0]["accuracy"]
    tensor = _collect(b, "--input-mode", "tensor", native + "/v2/models/ml_original")["results"][0]
    assert tensor["status"] == "completed" and abs(tensor["accuracy"] - bytes_acc) <= 0.005


# ---- MLServer 1.7, serving the shipped model through a custom LiteRT runtime -----------------
def _model_settings(name: str, folder: Path, *, mode: str, version: str = "2", logits: bool = False) -> dict:
    inp = ({"name": "image", "datatype": "BYTES", "shape": [-1]} if mode == "bytes"
           else {"name": "input_1", "datatype": "FP32", "shape": [-1, 96, 96, 3]})
    extra = {"input": mode, "logits": logits, "project_runtime": str(ROOT / "trained_models")}
    return {"name": name, "implementation": "runtime.LiteRTModel",
            "parameters": {"uri": str(folder), "version": version, "extra": extra},
            "inputs": [inp], "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 5]}]}


class MLServer(PeerServer):
    """MLServer 1.7 (its own venv) serving `models` (name -> model-settings) from a repository in `root`."""

    def __init__(self, root: Path, models: dict[str, dict]):
        root.mkdir(parents=True, exist_ok=True)
        for name, settings in models.items():
            (root / name).mkdir()
            shutil.copy(PEERS / "mlserver_litert" / "runtime.py", root / name / "runtime.py")
            (root / name / "model-settings.json").write_text(json.dumps(settings))
        http = free_port()
        (root / "settings.json").write_text(json.dumps({"http_port": http, "grpc_port": free_port(),
                                                        "metrics_port": free_port(), "parallel_workers": 0,
                                                        "host": "127.0.0.1"}))
        mlserver = peer_python("mlserver").parent / "mlserver"
        super().__init__([str(mlserver), "start", str(root)], f"http://127.0.0.1:{http}",
                         [f"/v2/models/{name}/ready" for name in models], root / "mlserver.log", cwd=root)


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlserver")
    with MLServer(root / "repo", {
        "pokemon": _model_settings("pokemon", ORIGINAL, mode="bytes"),
        "pokemon-tensor": _model_settings("pokemon-tensor", ORIGINAL, mode="tensor", logits=True),
    }) as srv:
        yield srv


@pytest.fixture
def labels_file(tmp_path) -> Path:
    f = tmp_path / "labels.txt"
    f.write_text("\n".join(BASE) + "\n")
    return f


def test_a_server_without_labels_needs_the_option(mlserver, tmp_path):
    out = _collect(f"sqlite:///{tmp_path / 'x.db'}", mlserver.url + "/v2/models/pokemon", expect=1)
    assert "--labels a,b,c or --labels-file FILE" in out


def test_mlserver_bytes_and_tensor_agree_with_the_native_numbers(native, mlserver, labels_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'm.db'}"
    ours = _collect(db, native)["results"][0]
    via = _collect(db, "--labels-file", str(labels_file), mlserver.url + "/v2/models/pokemon")["results"][0]
    assert via["status"] == "completed" and via["fingerprint"] != ours["fingerprint"]
    assert abs(via["accuracy"] - ours["accuracy"]) <= 0.005 and via["n_scored"] == ours["n_scored"]
    tensor = _collect(db, "--labels", ",".join(BASE), mlserver.url + "/v2/models/pokemon-tensor")["results"][0]
    assert tensor["status"] == "completed" and abs(tensor["accuracy"] - ours["accuracy"]) <= 0.005
    models = {m["name"]: m for m in _models(db)}
    assert models["pokemon"]["identity"] == "behavioural" and models["pokemon"]["protocol"] == "v2"
    assert "logits" in models["pokemon-tensor"]["scores"]
    # Reported and compared like any other model: per class, the same numbers as served natively.
    r = run_cli("--db", db, "report", "--json", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    assert "behavioural fingerprint" in r.output and "protocol v2" in r.output
    reps = {m["model"]["name"]: m for m in json.loads((tmp_path / "r.json").read_text())["models"]}
    for label in BASE:
        native_recall = reps["ml_original"]["classes"][label]["recall"]
        for via_name in ("pokemon", "pokemon-tensor"):
            assert abs(reps[via_name]["classes"][label]["recall"] - native_recall) <= 0.005, (via_name, label)
    r = run_cli("--db", db, "compare", "--json", ours["fingerprint"][:12], via["fingerprint"][:12])
    assert r.exit_code == 0, r.output
    verdict = json.loads(r.stdout)
    assert verdict["verdict"] == "pass" and verdict["regressed_classes"] == []
    assert verdict["baseline"]["fingerprint"] == ours["fingerprint"]
    again = _collect(db, "--labels-file", str(labels_file), mlserver.url + "/v2/models/pokemon",
                     mlserver.url + "/v2/models/pokemon-tensor")
    assert [r["n_sent"] for r in again["results"]] == [0, 0]  # same behavioural identity: nothing new


def test_a_model_swapped_behind_the_same_name_and_version_is_a_new_model(mlserver, labels_file, tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    first = _collect(db, "--labels-file", str(labels_file), mlserver.url + "/v2/models/pokemon")["results"][0]
    swapped = ROOT / "trained_models" / "archive" / "ml_original_v2"  # other weights, same labels
    with MLServer(tmp_path / "swap", {"pokemon": _model_settings("pokemon", swapped, mode="bytes")}) as other:
        second = _collect(db, "--labels-file", str(labels_file), other.url + "/v2/models/pokemon")["results"][0]
    assert second["fingerprint"] != first["fingerprint"]
    assert second["status"] == "completed" and second["n_sent"] == first["n_sent"]
    assert len(_models(db)) == 2


# ---- KServe's Python model server (v1 and v2 REST), the shipped model through LiteRT ----------
class KServe(PeerServer):
    """KServe 0.21's model server (its own venv) serving `folder` as `name`, taking `mode` inputs."""

    def __init__(self, tmp: Path, name: str, folder: Path, mode: str):
        port = free_port()
        argv = [str(peer_python("kserve")), str(PEERS / "kserve_server.py"), str(port), name, str(folder),
                str(ROOT / "trained_models"), mode]
        super().__init__(argv, f"http://127.0.0.1:{port}", [f"/v1/models/{name}"], tmp / f"kserve-{name}-{mode}.log")


def test_kserve_v1_and_v2_are_one_model_with_the_native_numbers(native, tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    ours = _collect(db, native)["results"][0]
    labels = ",".join(BASE)
    with KServe(tmp_path, "pokemon", ORIGINAL, "bytes") as ks:
        v1 = _collect(db, "--labels", labels, ks.url + "/v1/models/pokemon")["results"][0]
        assert v1["status"] == "completed" and abs(v1["accuracy"] - ours["accuracy"]) <= 0.005
        v2 = _collect(db, "--labels", labels, ks.url + "/v2/models/pokemon")["results"][0]
        # Same name, version, labels and canary answers: the same behavioural identity, nothing new.
        assert v2["fingerprint"] == v1["fingerprint"] and v2["n_sent"] == 0
    with KServe(tmp_path, "pokemon", ORIGINAL, "tensor") as ks:
        t = _collect(db, "--labels", labels, "--input-mode", "tensor", ks.url + "/v1/models/pokemon")["results"][0]
        assert t["fingerprint"] == v1["fingerprint"] and t["n_sent"] == 0  # tensors: the same answers
    models = {m["fingerprint"]: m for m in _models(db)}
    assert models[v1["fingerprint"]]["protocol"] == "v1" and models[v1["fingerprint"]]["identity"] == "behavioural"


def test_a_v1_address_on_a_server_without_v1_is_a_clear_error(native, tmp_path):
    db = f"sqlite:///{tmp_path / 'n.db'}"
    out = _collect(db, native + "/v1/models/ml_original", expect=1)
    assert "GET /v1/models/ml_original answered HTTP 404" in out
    out = _collect(db, "--labels", "a,b", native + "/v1/models/ml_original", expect=1)
    assert "HTTP 404" in out


def test_a_declared_fingerprint_reused_by_other_weights_is_refused(native, tmp_path):
    """An OIP server that announces ml_original's fingerprint but answers otherwise stores nothing."""
    from flask import Flask, jsonify, request

    from helpers import LiveServer

    db = f"sqlite:///{tmp_path / 'f.db'}"
    real = _collect(db, native)["results"][0]
    fake = Flask("impostor")

    @fake.get("/v2")
    def _server():
        return jsonify({"name": "impostor", "version": "1", "extensions": []})

    @fake.get("/v2/models/ml_original")
    def _meta():
        return jsonify({"name": "ml_original", "versions": ["2"], "platform": "x",
                        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 5]}],
                        "parameters": {"labels": BASE, "fingerprint": real["fingerprint"]}})

    @fake.post("/v2/models/ml_original/infer")
    def _infer():
        n = request.get_json()["inputs"][0]["shape"][0]
        return jsonify({"model_name": "ml_original", "model_version": "2", "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [n, 5], "data": [0.6, 0.1, 0.1, 0.1, 0.1] * n}]})

    with LiveServer(fake) as srv:
        out = _collect(db, srv.url + "/v2/models/ml_original", expect=1)
    assert "differently from its stored answers of fingerprint" in out and "now conflicting" in out
    (m,) = _models(db)
    assert m["predictions"] == real["n_sent"] and m["urls"] == [native]  # nothing counted from the impostor
    assert m["claim_conflict"] is True


def test_the_deploy_path_takes_an_oip_address(mlserver, labels_file, tmp_path):
    """What the hook and watch run for one URL: collect, compare with the previous version, report."""
    from collector.collect import CollectOptions
    from collector.protocols import read_labels_file
    from collector.service.deploy import DeploySettings, evaluate_deployment
    from helpers import engine_for

    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    opts = CollectOptions(protocol=ProtocolOptions(labels=read_labels_file(labels_file.read_text())))
    settings = DeploySettings(test_dir=ROOT / "test_data", report_dir=tmp_path / "reports", opts=opts)
    out = evaluate_deployment(mlserver.url + "/v2/models/pokemon", engine=engine, settings=settings)
    assert out["status"] == "completed" and out["images_sent"] > 300 and out["name"] == "pokemon"
    assert out["verdict"] == "no-baseline"  # the first version of its name: nothing to compare with
    again = evaluate_deployment(mlserver.url + "/v2/models/pokemon", engine=engine, settings=settings)
    assert again["images_sent"] == 0 and again["fingerprint"] == out["fingerprint"]


def _oip_impostor(answer):
    """An OIP server with valid metadata whose infer answer is `answer(n)` -> (body bytes, headers)."""
    from flask import Flask, Response, jsonify, request

    app = Flask("hostile")

    @app.get("/v2")
    def _server():
        return jsonify({"name": "h", "version": "1", "extensions": ["binary_tensor_data"]})

    @app.get("/v2/models/m")
    def _meta():
        return jsonify({"name": "m", "versions": ["1"], "platform": "x",
                        "inputs": [{"name": "images", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": [{"name": "p", "datatype": "FP32", "shape": [-1, 2]}],
                        "parameters": {"labels": ["red", "green"]}})

    calls = {"n": 0}

    @app.post("/v2/models/m/infer")
    def _infer():
        head_len = int(request.headers.get("Inference-Header-Content-Length", "0"))
        n = json.loads(request.get_data()[:head_len])["inputs"][0]["shape"][0]
        calls["n"] += 1
        body, headers = answer(n, calls["n"])
        return Response(body, headers=headers)

    return app


def _json_answer(outputs, version="1"):
    return json.dumps({"model_name": "m", "model_version": version, "outputs": outputs}).encode(), \
        {"Content-Type": "application/json"}


GOOD = [0.9, 0.1]


@pytest.mark.parametrize("answer,words", [
    (lambda n, c: (b"not json", {}), "is not JSON"),
    (lambda n, c: _json_answer([]), "lack 'p'"),
    (lambda n, c: _json_answer([{"name": "p", "datatype": "FP32", "shape": [n, 3], "data": [0.5] * 3 * n}]),
     "expected"),
    (lambda n, c: _json_answer([{"name": "p", "datatype": "FP32", "shape": [n, 2], "data": [True, False] * n}]),
     "must be numbers"),
    (lambda n, c: _json_answer([{"name": "p", "datatype": "INT8", "shape": [n, 2], "data": [1, 0] * n}]),
     "not a float"),
    (lambda n, c: _json_answer([{"name": "p", "datatype": "FP32", "shape": [n, 2], "data": ["NaN", 1] * n}]),
     "must be numbers"),
    (lambda n, c: (json.dumps({"outputs": [{"name": "p", "datatype": "FP32", "shape": [n, 2],
                                            "parameters": {"binary_data_size": 999999}}]}).encode(),
                   {"Inference-Header-Content-Length": "10"}), "invalid inference response"),
    (lambda n, c: _json_answer([{"name": "p", "datatype": "FP32", "shape": [n, 2], "data": [2.0, -1.0] * n}]
                               if c > 1 else [{"name": "p", "datatype": "FP32", "shape": [n, 2], "data": GOOD * n}]),
     "invalid answer to POST /v2/models/m/infer: predictions[0].confidence: must be finite and within [0, 1]"),
    # probabilities at the canaries, then rows that are not: refused, not softmaxed
    (lambda n, c: _json_answer([{"name": "p", "datatype": "FP32", "shape": [n, 2], "data": GOOD * n}],
                               version="1" if c == 1 else "2"), "the model changed during the run"),
])
def test_hostile_oip_answers_are_refused_with_the_reason(answer, words, tmp_path, test_data):
    from helpers import LiveServer

    db = f"sqlite:///{tmp_path / 'h.db'}"
    with LiveServer(_oip_impostor(answer)) as srv:
        r = run_cli("--db", db, "collect", "--test-data", str(test_data), "--batch-size", "4",
                    srv.url + "/v2/models/m")
    assert r.exit_code == 1 and words in r.output, r.output
    stored = _models(db)
    assert all(m["predictions"] == 0 for m in stored)
