"""The committed models load, predict over their own labels, and still score what their cards say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_creation.data import load_split, per_class_metrics
from model_server.model import load_model_folder

ROOT = Path(__file__).resolve().parents[2]
BASE = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]
MODELS = {"ml_original": BASE, "ml_ditto": BASE + ["ditto"], "ml_ditto_and_mimikyu": BASE + ["ditto", "mimikyu"]}


@pytest.fixture(scope="module", params=sorted(MODELS))
def committed(request):
    folder = ROOT / "trained_models" / request.param
    return request.param, folder, load_model_folder(folder)


def test_loads_with_its_labels_and_small_file(committed):
    name, folder, model = committed
    assert model.name == name and model.labels == MODELS[name]
    assert (folder / "model.keras").stat().st_size <= 5_000_000
    for f in ("config.json", "MODEL_CARD.md", "training.png", "ml_server.py"):
        assert (folder / f).is_file()
    assert "python -m model_creation.train" in (folder / "MODEL_CARD.md").read_text()


def test_recomputed_test_metrics_match_the_config(committed):
    name, folder, model = committed
    config = json.loads((folder / "config.json").read_text())
    for subset, kinds in (("photos", ("photo",)), ("sprites", ("sprite",))):
        x, y, _ = load_split(ROOT / "test_data", model.labels, model.spec, kinds)
        probs = np.concatenate([model.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
        assert probs.shape == (len(x), len(model.labels))
        got = per_class_metrics(y, probs.argmax(1), model.labels)
        want = config["metrics"][subset]
        assert got["n"] == want["n"]
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=0.02)  # float kernels may differ a hair


def metrics(name: str) -> dict:
    return json.loads((ROOT / "trained_models" / name / "config.json").read_text())["metrics"]


def test_targets_reached():
    assert metrics("ml_ditto_and_mimikyu")["sprites"]["classes"]["mimikyu"]["recall"] >= 0.5
    for name in MODELS:  # floors under what ships, so a worse retrain is noticed
        assert metrics(name)["photos"]["accuracy"] >= 0.92


def test_ml_original_photo_accuracy_target():
    assert metrics("ml_original")["photos"]["accuracy"] >= 0.95


@pytest.mark.xfail(strict=True, reason="target not reached: pikachu recall 0.84 on test photos (21 of 25; the four "
                                       "misses are fan art: a blue recolour, a dark variant, a two-character drawing, "
                                       "a faded collage)")
def test_ml_original_every_class_target():
    photos = metrics("ml_original")["photos"]
    assert min(c["recall"] for c in photos["classes"].values()) >= 0.90


def test_archived_version_still_loads_and_scores_what_it_recorded():
    """make demo compares ml_original 2 and 3: version 2 must stay servable and unchanged."""
    folder = ROOT / "trained_models" / "archive" / "ml_original_v2"
    model = load_model_folder(folder)
    assert model.name == "ml_original" and model.version == "2" and model.labels == BASE
    assert model.fingerprint != load_model_folder(ROOT / "trained_models" / "ml_original").fingerprint
    x, y, _ = load_split(ROOT / "test_data", model.labels, model.spec, ("photo",))
    got = per_class_metrics(y, model.predict(x).argmax(1), model.labels)
    want = json.loads((folder / "config.json").read_text())["metrics"]["photos"]
    assert got["n"] == want["n"] and got["accuracy"] == pytest.approx(want["accuracy"], abs=0.02)


def test_ditto_recall_target():
    assert metrics("ml_ditto_and_mimikyu")["sprites"]["classes"]["ditto"]["recall"] >= 0.8
