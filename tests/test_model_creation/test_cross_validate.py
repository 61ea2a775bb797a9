"""The folds of the recipe cross-validation: grouped like the split, stratified, fixed; the rule."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from model_creation.cross_validate import assign_folds, decide, group_key
from model_creation.split_data import read_manifest

ROOT = Path(__file__).resolve().parents[2]


def training_side() -> list[dict]:
    return [r for d in ("dataset", "validation") for r in read_manifest(ROOT / "model_creation" / d / "manifest.csv")]


def test_a_sprite_family_never_sits_in_two_folds_and_every_class_is_in_every_fold():
    rows = training_side()
    fold = assign_folds(rows, 3)
    families: dict[str, set[int]] = {}
    for r, f in zip(rows, fold, strict=True):
        families.setdefault(group_key(r), set()).add(int(f))
    assert all(len(fs) == 1 for fs in families.values())
    assert sum(r["kind"] == "sprite" for r in rows) > len({group_key(r) for r in rows if r["kind"] == "sprite"})
    for label in ("bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"):
        # Photos are dealt one unit at a time: a photo alone, or its near duplicates together.
        photos = Counter(f for f, _ in {(int(f), group_key(r)) for r, f in zip(rows, fold, strict=True)
                                         if r["label"] == label and r["kind"] == "photo"
                                         and r["source"].startswith("photo")})
        assert sorted(photos) == [0, 1, 2] and max(photos.values()) - min(photos.values()) <= 1
    assert np.array_equal(fold, assign_folds(list(rows), 3))  # fixed: the same folds every run
    assert not np.array_equal(fold, assign_folds(rows, 3, seed=7))


def test_the_average_must_win_on_accuracy_and_log_loss():
    one = {"accuracy": 0.950, "log_loss": 0.20}
    assert decide(one, {"accuracy": 0.956, "log_loss": 0.18})
    assert not decide(one, {"accuracy": 0.953, "log_loss": 0.18})  # less than half a point
    assert not decide(one, {"accuracy": 0.970, "log_loss": 0.21})  # surer of its errors
