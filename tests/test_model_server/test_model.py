"""The two runtimes: LiteRT answers as Keras does, and `auto` never serves an export it cannot vouch for."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import write_color_model
from model_server.model import ModelFolderError, load_model_folder

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["ml_original", "ml_ditto", "ml_ditto_and_mimikyu", "archive/ml_original_v2"]


@pytest.mark.parametrize("name", SHIPPED)
def test_litert_answers_as_keras_on_every_test_image(name):
    """Every image in test_data/ (photos, sprites, other classes, lookalikes) through both backends."""
    from model_server.preprocessing import preprocess_file

    folder = ROOT / "trained_models" / name
    lite, keras_ = load_model_folder(folder, "litert"), load_model_folder(folder, "keras")
    assert (lite.backend, keras_.backend) == ("litert", "keras")
    assert lite.fingerprint == keras_.fingerprint  # identity unchanged: the Keras weight fingerprint
    paths = sorted(p for p in (ROOT / "test_data").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    assert len(paths) >= 300
    x = np.stack([preprocess_file(p, lite.spec) for p in paths])
    a = np.concatenate([lite.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
    b = np.concatenate([keras_.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
    assert a.shape == b.shape == (len(paths), len(lite.labels))
    assert (a.argmax(1) == b.argmax(1)).all()
    assert float(np.abs(a - b).max()) <= 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from model_creation.export import export

    folder = write_color_model(tmp_path_factory.mktemp("backends") / "colors", ["red", "green", "blue"])
    record = export(folder)
    assert (folder / "model.tflite").stat().st_size == record["bytes"]
    return folder


@pytest.fixture
def folder(exported, tmp_path):
    out = tmp_path / "colors"
    shutil.copytree(exported, out)
    return out


def test_auto_takes_litert_when_the_export_checks_out(folder):
    lite, keras_ = load_model_folder(folder), load_model_folder(folder, "keras")
    assert lite.backend == "litert" and not lite.notes
    assert lite.fingerprint == keras_.fingerprint
    assert lite.metadata()["backend"] == "litert" and keras_.metadata()["backend"] == "keras"


def test_env_chooses_the_backend(folder, monkeypatch):
    monkeypatch.setenv("MODEL_BACKEND", "keras")
    assert load_model_folder(folder).backend == "keras"
    monkeypatch.setenv("MODEL_BACKEND", "tensorrt")
    with pytest.raises(ModelFolderError, match="MODEL_BACKEND must be one of auto, litert, keras"):
        load_model_folder(folder)


def test_a_swapped_tflite_is_refused_by_litert_and_skipped_by_auto(folder, tmp_path):
    from model_creation.export import export

    other = write_color_model(tmp_path / "other", ["red", "green", "blue"], swap=("green", "blue"))
    export(other)
    shutil.copy(other / "model.tflite", folder / "model.tflite")  # another model's export, same shapes
    with pytest.raises(ModelFolderError, match="not the file that was exported"):
        load_model_folder(folder, "litert")
    m = load_model_folder(folder)
    assert m.backend == "keras" and "not the file that was exported" in m.notes[0]


@pytest.fixture
def stale(folder):
    record = json.loads((folder / "config.json").read_text())["tflite"]
    old = load_model_folder(folder, "keras").fingerprint
    write_color_model(folder, ["red", "green", "blue"], swap=("green", "blue"))  # retrained, not exported
    config = json.loads((folder / "config.json").read_text())
    config["tflite"] = record
    (folder / "config.json").write_text(json.dumps(config))
    return folder, old


def test_auto_serves_keras_when_the_export_is_stale(stale):
    folder, old = stale
    m = load_model_folder(folder)
    assert m.backend == "keras" and m.fingerprint != old
    assert "is stale" in m.notes[0] and "python -m model_creation.export" in m.notes[0]


def test_explicit_litert_serves_the_export_under_its_own_fingerprint(stale):
    folder, old = stale
    m = load_model_folder(folder, "litert")
    assert m.backend == "litert" and m.fingerprint == old  # the weights it serves, not model.keras's
    assert "changed since the export" in m.notes[0]


def test_without_tensorflow_auto_serves_the_export_and_says_it_could_not_check(stale, monkeypatch):
    import model_server.model as mm

    folder, old = stale
    monkeypatch.setattr(mm, "_installed", lambda module: module != "tensorflow")
    m = load_model_folder(folder)
    assert m.backend == "litert" and m.fingerprint == old and "TensorFlow is not installed" in m.notes[0]


def test_a_resaved_keras_file_with_the_same_weights_keeps_litert(folder):
    import keras

    model = keras.saving.load_model(folder / "model.keras", compile=False)
    (folder / "model.keras").unlink()
    model.save(folder / "model.keras")  # new zip bytes, same weights
    m = load_model_folder(folder)
    assert m.backend == "litert" and not m.notes


def test_changed_labels_invalidate_the_export(folder):
    config = json.loads((folder / "config.json").read_text())
    config["labels"] = ["rouge", "vert", "bleu"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="labels or preprocessing .* changed"):
        load_model_folder(folder, "litert")
    m = load_model_folder(folder)
    assert m.backend == "keras" and m.labels == ["rouge", "vert", "bleu"]


def test_litert_without_an_export_is_a_clear_error(tmp_path):
    folder = write_color_model(tmp_path / "plain", ["red", "green"])
    with pytest.raises(ModelFolderError, match="no model.tflite"):
        load_model_folder(folder, "litert")
    assert load_model_folder(folder).backend == "keras"


def test_litert_serving_never_imports_tensorflow(folder):
    """What lets the model-server image leave TensorFlow out."""
    code = ("import sys; from model_server.model import load_model_folder; import numpy as np; "
            f"m = load_model_folder({str(folder)!r}); m.predict(np.zeros((2, 16, 16, 3), 'f4')); "
            "from model_server.app import create_app; create_app({'model_dir': %r, 'load_async': False}); "
            "print(m.backend, 'tensorflow' in sys.modules, 'keras' in sys.modules)" % str(folder))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["litert", "False", "False"]


def test_export_cli(folder, capsys):
    from model_creation.export import main

    (folder / "model.tflite").unlink()
    assert main([str(folder)]) == 0
    assert "model.tflite" in capsys.readouterr().out and (folder / "model.tflite").is_file()
    assert main([str(folder.parent / "nothing")]) == 1
    assert "config.json not found" in capsys.readouterr().err


def test_litert_slices_give_the_same_answers(exported):
    """A batch runs in slices (bounded activation memory): same probabilities as one call, in order."""
    from model_server.model import LiteRTRuntime
    from model_server.preprocessing import Preprocessing

    spec = Preprocessing(height=16, width=16)
    x = np.random.default_rng(1).random((37, 16, 16, 3), dtype=np.float32)
    whole = LiteRTRuntime(exported / "model.tflite", spec, slice_=64).predict(x)
    sliced = LiteRTRuntime(exported / "model.tflite", spec, slice_=5).predict(x)
    assert whole.shape == sliced.shape == (37, 3)
    assert float(np.abs(whole - sliced).max()) <= 1e-6


def test_the_loader_takes_backend_and_litert_knobs_from_the_settings(folder, monkeypatch):
    from model_server.settings import ServerSettings

    monkeypatch.setenv("MODEL_BACKEND", "keras")  # the settings given win over the environment
    given = ServerSettings.from_mapping({"model_backend": "litert", "litert_slice": 3, "litert_threads": 1})
    model = load_model_folder(folder, settings=given)
    assert model.backend == "litert" and (model.runtime.slice, model.runtime.threads) == (3, 1)
    assert load_model_folder(folder).backend == "keras"  # no settings given: the environment's
    with pytest.raises(ModelFolderError, match="MODEL_BACKEND must be one of"):
        load_model_folder(folder, settings=ServerSettings.from_mapping({"model_backend": "tensorrt"}))


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
