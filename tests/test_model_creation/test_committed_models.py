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


# Per-class recall on test_data/ of what ships, written here (not read from the folders under test):
# (images the model must get right, of how many). A model that falls below one of these fails.
# Measured with `python -m model_creation.train`'s models on LiteRT; each floor allows one image
# fewer than what ships, for float kernels that differ a hair between machines.
FLOORS = {
    "ml_original": {
        "photos": {
            "bulbasaur": (22, 23), "charmander": (24, 26), "mewtwo": (23, 25), "pikachu": (26, 27),
            "squirtle": (21, 24),
        },
        "sprites": {
            "bulbasaur": (4, 5), "charmander": (3, 5), "mewtwo": (5, 6), "pikachu": (7, 8),
            "squirtle": (5, 6),
        },
    },
    "ml_ditto": {
        "photos": {
            "bulbasaur": (22, 23), "charmander": (24, 26), "mewtwo": (23, 25), "pikachu": (24, 27),
            "squirtle": (20, 24),
        },
        "sprites": {
            "bulbasaur": (4, 5), "charmander": (3, 5), "mewtwo": (5, 6), "pikachu": (7, 8),
            "squirtle": (5, 6), "ditto": (4, 8),
        },
    },
    "ml_ditto_and_mimikyu": {
        "photos": {
            "bulbasaur": (22, 23), "charmander": (24, 26), "mewtwo": (23, 25), "pikachu": (25, 27),
            "squirtle": (20, 24),
        },
        "sprites": {
            "bulbasaur": (4, 5), "charmander": (2, 5), "mewtwo": (5, 6), "pikachu": (7, 8),
            "squirtle": (5, 6), "ditto": (4, 8), "mimikyu": (1, 2),
        },
    },
}
PHOTO_ACCURACY = {"ml_original": 0.95, "ml_ditto": 0.92, "ml_ditto_and_mimikyu": 0.92}
# Targets the shipped models miss, measured on the drawing-aware split (docs/models.md).
NOT_REACHED: dict[str, str] = {}  # every photo target is reached (2026-12-07: 0.968, 0.944, 0.952)
EVERY_CLASS = 0.90


def _recomputed(model, kinds: tuple[str, ...]) -> dict:
    """Per-class metrics of `model` on the test images of `kinds`, computed here from its answers."""
    x, y, _ = load_split(ROOT / "test_data", model.labels, model.spec, kinds)
    probs = np.concatenate([model.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
    assert probs.shape == (len(x), len(model.labels))
    return per_class_metrics(y, probs.argmax(1), model.labels)


@pytest.fixture(scope="module")
def recomputed(committed):
    name, _, model = committed
    return name, {"photos": _recomputed(model, ("photo",)), "sprites": _recomputed(model, ("sprite",))}


def test_every_class_keeps_its_recall_floor(recomputed):
    name, got = recomputed
    for subset, floors in FLOORS[name].items():
        for label, (right, n) in floors.items():
            c = got[subset]["classes"][label]
            assert c["support"] == n, (name, subset, label)
            assert round(c["recall"] * n) >= right, f"{name} {subset} {label}: recall {c['recall']:.3f} < {right}/{n}"


def test_photo_accuracy_target(recomputed, request):
    name, got = recomputed
    if name in NOT_REACHED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=NOT_REACHED[name]))
    assert got["photos"]["n"] == 125
    assert got["photos"]["accuracy"] >= PHOTO_ACCURACY[name]


def test_the_config_records_what_the_model_does(committed, recomputed):
    """The card's numbers (config.json) are the model's: a stale card is noticed."""
    name, folder, _ = committed
    recorded = json.loads((folder / "config.json").read_text())["metrics"]
    for subset in ("photos", "sprites"):
        assert recorded[subset]["n"] == recomputed[1][subset]["n"]
        assert recorded[subset]["accuracy"] == pytest.approx(recomputed[1][subset]["accuracy"], abs=0.02)


def test_mimikyu_target():
    sprites = _recomputed(load_model_folder(ROOT / "trained_models" / "ml_ditto_and_mimikyu"), ("sprite",))
    assert sprites["classes"]["mimikyu"]["recall"] >= 0.5


@pytest.mark.xfail(strict=True, reason="target not reached: ditto recall 0.62 on its 8 test sprites (5 of 8) in "
                                       "ml_ditto_and_mimikyu and in ml_ditto")
def test_ditto_target():
    sprites = _recomputed(load_model_folder(ROOT / "trained_models" / "ml_ditto_and_mimikyu"), ("sprite",))
    assert sprites["classes"]["ditto"]["recall"] >= 0.8


def test_ml_original_every_class_target():
    model = load_model_folder(ROOT / "trained_models" / "ml_original")
    photos = _recomputed(model, ("photo",))
    assert min(c["recall"] for c in photos["classes"].values()) >= EVERY_CLASS


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
