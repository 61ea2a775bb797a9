"""A tiny real model trained for one epoch in tmp_path; the model folder it writes round-trips."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import COLORS, color_png
from model_creation.split_data import write_manifest
from model_creation.train import balanced_indices, train
from model_server.model import load_model_folder
from model_server.preprocessing import Preprocessing


def labelled_folder(base: Path, counts: dict[str, int], seed: int) -> Path:
    rows = []
    for label, n in counts.items():
        (base / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            data = color_png(COLORS[label], seed=seed + i + 100 * len(label))
            (base / label / f"{i}.png").write_bytes(data)
            rows.append({"path": f"{label}/{i}.png", "label": label, "sha256": hashlib.sha256(data).hexdigest(),
                         "kind": "sprite", "source": f"s{i}"})
    write_manifest(base / "manifest.csv", rows)
    return base


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    train_dir = labelled_folder(tmp / "train", {"red": 6, "green": 6, "blue": 2}, seed=0)
    test_dir = labelled_folder(tmp / "test", {"red": 2, "green": 2, "blue": 2}, seed=500)
    val_dir = labelled_folder(tmp / "val", {"red": 1, "green": 1, "blue": 1}, seed=900)
    out = tmp / "ml_tiny"
    config = train(labels=["red", "green", "blue"], out=out, arch="tiny", epochs=1, batch_size=4,
                   train_dir=train_dir, test_dir=test_dir, validation_dir=val_dir, verbose=0, version="7",
                   remove={"green": 0.5})
    return out, config


def test_model_folder_is_complete(trained):
    out, config = trained
    assert {p.name for p in out.iterdir()} >= {"model.keras", "config.json", "training.png", "MODEL_CARD.md"}
    assert (out / "model.keras").stat().st_size < 5_000_000
    card = (out / "MODEL_CARD.md").read_text()
    assert "python -m model_creation.train" in card and "| blue | 2 |" in card


def test_config_round_trip(trained):
    out, config = trained
    on_disk = json.loads((out / "config.json").read_text())
    assert on_disk == config
    assert on_disk["labels"] == ["red", "green", "blue"] and on_disk["version"] == "7"
    assert on_disk["input"] == {"height": 96, "width": 96, "channels": 3}
    assert Preprocessing.from_dict(on_disk["preprocessing"]) == Preprocessing()
    for key in ("architecture", "training_data_hash", "seed", "library_versions", "metrics", "created_at"):
        assert key in on_disk
    assert on_disk["metrics"]["sprites"]["n"] == 6
    assert on_disk["validation_metrics"]["all"]["n"] == 3  # the validation split, reported apart
    assert on_disk["training"]["removed"] == {"green": 0.5} and on_disk["training"]["train_images"] == 6 + 3 + 2
    assert "## Validation all: accuracy" in (out / "MODEL_CARD.md").read_text()
    assert set(on_disk["metrics"]["sprites"]["classes"]) == {"red", "green", "blue"}


def test_remove_fraction_is_a_fixed_subset_and_bad_specs_are_refused():
    from model_creation.train import parse_removals, remove_fraction
    rows = [{"label": lab, "sha256": f"{lab}{i:02d}"} for lab in ("a", "b") for i in range(8)]
    kept = remove_fraction(rows, "a", 0.75)
    assert [r["sha256"] for r in kept if r["label"] == "a"] == ["a06", "a07"]  # by hash order, not by chance
    assert remove_fraction(list(reversed(rows)), "a", 0.75) == [r for r in reversed(rows) if r in kept]
    assert sum(r["label"] == "b" for r in kept) == 8
    assert parse_removals(["pikachu:0.75", "squirtle:0.5"]) == {"pikachu": 0.75, "squirtle": 0.5}
    for bad in (["pikachu"], ["pikachu:x"], [":0.5"]):
        with pytest.raises(SystemExit, match="LABEL:FRACTION"):
            parse_removals(bad)
    for frac in (0.0, 1.0):
        with pytest.raises(SystemExit, match="between 0 and 1"):
            remove_fraction(rows, "a", frac)
    with pytest.raises(SystemExit, match="no training images"):
        remove_fraction(rows, "zzz", 0.5)


def test_saved_model_loads_without_optimizer_and_predicts(trained):
    out, _ = trained
    m = load_model_folder(out)
    assert getattr(m.keras_model, "optimizer", None) is None  # saved uncompiled
    import zipfile
    with zipfile.ZipFile(out / "model.keras") as z:
        cfg = json.loads(z.read("config.json"))
    assert not cfg.get("compile_config")  # no optimizer, no loss
    probs = m.predict(np.zeros((2, 96, 96, 3), np.float32))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-4)


def test_balanced_indices_lift_scarce_classes():
    y = np.array([0] * 50 + [1] * 4)
    idx = balanced_indices(y, np.random.default_rng(0))
    assert np.sum(y[idx] == 1) == 30 and np.sum(y[idx] == 0) == 50


def test_training_is_reproducible(trained, tmp_path):
    """Same data, seed and library versions: the same weights, hence the same fingerprint."""
    out, config = trained
    base = out.parent
    again = tmp_path / "ml_tiny"
    train(labels=["red", "green", "blue"], out=again, arch="tiny", epochs=1, batch_size=4,
          train_dir=base / "train", test_dir=base / "test", validation_dir=None, verbose=0, version="7",
          remove={"green": 0.5})
    assert load_model_folder(again).fingerprint == load_model_folder(out).fingerprint


TRAIN_IN_A_FRESH_PROCESS = r"""
import hashlib, json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers import COLORS, color_png
from model_creation.split_data import write_manifest
from model_creation.train import train

def folder(base, counts, seed):
    rows = []
    for label, n in counts.items():
        (base / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            data = color_png(COLORS[label], seed=seed + i + 100 * len(label), size=40)
            (base / label / f"{{i}}.png").write_bytes(data)
            rows.append({{"path": f"{{label}}/{{i}}.png", "label": label, "kind": "sprite", "source": f"s{{i}}",
                          "sha256": hashlib.sha256(data).hexdigest()}})
    write_manifest(base / "manifest.csv", rows)
    return base

tmp = Path({tmp!r})
config = train(labels=["red", "green", "blue"], out=tmp / "m", arch="compact", epochs=1, batch_size=8,
               train_dir=folder(tmp / "train", {{"red": 16, "green": 16, "blue": 16}}, 0),
               test_dir=folder(tmp / "test", {{"red": 2, "green": 2, "blue": 2}}, 500), verbose=0)
from model_server.model import load_model_folder
print(json.dumps({{"fingerprint": load_model_folder(tmp / "m").fingerprint,
                  "platform": config["training"]["platform"]}}))
"""


def test_weights_do_not_depend_on_the_thread_environment(tmp_path):
    """The promise of the model cards: the same weights whatever the core count or thread settings.

    TensorFlow left alone sizes its thread pools from the environment or the core count, and the
    compact network's weights then differ (measured: 1 vs 2 intra-op threads give two fingerprints);
    training pins both pools.
    """
    import os
    import subprocess
    import sys

    tests = str(Path(__file__).resolve().parents[1])
    results = []
    for i, threads in enumerate(("1", "4")):
        env = {**os.environ, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads,
               "OMP_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
        (tmp_path / str(i)).mkdir()
        code = TRAIN_IN_A_FRESH_PROCESS.format(tests=tests, tmp=str(tmp_path / str(i)))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert results[0]["fingerprint"] == results[1]["fingerprint"]
    platform = results[0]["platform"]
    assert platform["threads"] == {"intra_op": 2, "inter_op": 2}
    assert platform["kernel_env"]["TF_NUM_INTRAOP_THREADS"] == "1"  # recorded, and overridden
    assert platform["machine"] and isinstance(platform["isa_flags"], list)


def test_networks_averaged_are_the_one_network_runs_of_their_seeds(trained, tmp_path):
    """--members 2: networks with seeds 42 and 43, each as a one-network run would train it, averaged."""
    out, _ = trained
    base = out.parent
    common = {"labels": ["red", "green", "blue"], "arch": "tiny", "epochs": 1, "batch_size": 4, "verbose": 0,
              "train_dir": base / "train", "test_dir": base / "test", "validation_dir": None,
              "remove": {"green": 0.5}}
    config = train(out=tmp_path / "pair", members=2, **common)
    train(out=tmp_path / "seed43", seed=43, **common)
    assert config["training"]["members"] == 2 and config["training"]["member_seeds"] == [42, 43]

    pair, one, other = (load_model_folder(p, backend="keras") for p in (tmp_path / "pair", out, tmp_path / "seed43"))
    x = np.random.default_rng(3).random((5, 96, 96, 3), dtype=np.float32)
    want = (one.predict(x) + other.predict(x)) / 2
    assert np.allclose(pair.predict(x), want, atol=1e-6)
    assert np.allclose(pair.predict(x).sum(1), 1, atol=1e-4)
    assert len({pair.fingerprint, one.fingerprint, other.fingerprint}) == 3
    assert load_model_folder(tmp_path / "pair", backend="litert").predict(x) == pytest.approx(want, abs=1e-4)
    card = (tmp_path / "pair" / "MODEL_CARD.md").read_text()
    assert "2 networks trained alike with seeds 42, 43" in card and "--members 2" in card
    with pytest.raises(SystemExit, match="at least one network"):
        train(out=tmp_path / "none", members=0, **common)
