"""Split invariants: no image on both sides, no sprite source family straddling the split."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest

from helpers import color_png
from model_creation.split_data import read_manifest, split, sprite_family

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "model_creation" / "dataset"
VALIDATION = ROOT / "model_creation" / "validation"
TEST = ROOT / "test_data"


def assert_split_invariants(train_rows: list[dict], test_rows: list[dict]) -> None:
    train_hashes = {r["sha256"] for r in train_rows}
    test_hashes = {r["sha256"] for r in test_rows}
    assert not train_hashes & test_hashes, "an image is on both sides"
    sides: dict[tuple[str, str], set[str]] = defaultdict(set)
    for side, rows in (("train", train_rows), ("test", test_rows)):
        for r in rows:
            if r["kind"] == "sprite":
                sides[(r["label"], r["source"])].add(side)
    straddling = [k for k, v in sides.items() if len(v) > 1]
    assert not straddling, f"sprite sources on both sides: {straddling}"


def test_committed_split_invariants():
    train, val, test = (read_manifest(d / "manifest.csv") for d in (TRAIN, VALIDATION, TEST))
    assert_split_invariants(train, test)
    assert_split_invariants(train, val)
    assert_split_invariants(val, test)


def test_committed_validation_split():
    train, val = read_manifest(TRAIN / "manifest.csv"), read_manifest(VALIDATION / "manifest.csv")
    for label in ("bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"):
        n_val = sum(r["label"] == label and r["kind"] == "photo" for r in val)
        n_train = sum(r["label"] == label and r["kind"] == "photo" for r in train)
        assert 0.1 <= n_val / (n_val + n_train) <= 0.2, (label, n_val, n_train)
    assert not any(r["label"] in ("ditto", "mimikyu") for r in val)  # too scarce to spare any


def test_sprite_only_classes_have_gen_v_in_test_and_a_one_off_style_in_training():
    train, test = read_manifest(TRAIN / "manifest.csv"), read_manifest(TEST / "manifest.csv")
    ditto_train = {r["source"] for r in train if r["label"] == "ditto"}
    ditto_test = {r["source"] for r in test if r["label"] == "ditto"}
    assert any(s.startswith("bw-") for s in ditto_test) and any(not s.startswith("bw-") for s in ditto_train)
    assert any(s.startswith("bw-") for s in ditto_train) and any(not s.startswith("bw-") for s in ditto_test)


@pytest.mark.parametrize("base", [TRAIN, VALIDATION, TEST])
def test_manifest_matches_the_files(base):
    rows = read_manifest(base / "manifest.csv")
    listed = {r["path"] for r in rows}
    on_disk = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and p.name != "manifest.csv"}
    assert listed == on_disk
    for r in rows:
        assert hashlib.sha256((base / r["path"]).read_bytes()).hexdigest() == r["sha256"]


def test_committed_test_share_per_class():
    train = read_manifest(TRAIN / "manifest.csv")
    test = read_manifest(TEST / "manifest.csv")
    for label in ("bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"):
        for kind in ("photo", "sprite"):
            n_train = sum(r["label"] == label and r["kind"] == kind for r in train)
            n_test = sum(r["label"] == label and r["kind"] == kind for r in test)
            share = n_test / (n_train + n_test)
            assert 0.1 <= share <= 0.35, (label, kind, share)
    assert {r["label"] for r in test if r["kind"] == "lookalike"} == {
        "charmeleon", "ivysaur", "mew", "pichu", "raichu", "wartortle"}
    assert sum(r["label"] == "mimikyu" for r in test) >= 1 and sum(r["label"] == "ditto" for r in test) >= 1


def test_sprite_family_folds_recolours_and_frames():
    assert sprite_family("bw-front-03.png") == "bw-front"
    assert sprite_family("bw-shiny-female-07.png") == "bw-front"
    assert sprite_family("bw-back-shiny-01.png") == "bw-back"
    assert sprite_family("gen7x-regular-00.png") == sprite_family("gen7x-shiny-00.png") == "gen7x"
    assert sprite_family("artwork-00.png") == "artwork"


def test_split_function_on_synthetic_source(tmp_path):
    src = tmp_path / "src"
    for cls in ("a", "b"):
        (src / "photos" / cls).mkdir(parents=True)
        (src / "sprites" / cls).mkdir(parents=True)
        for i in range(20):
            (src / "photos" / cls / f"{cls}{i}.jpg").write_bytes(color_png((i * 10, 5, 5), seed=hash(cls) % 99 + i))
        for fam in ("bw-front", "bw-shiny", "bw-back", "icon-regular", "icon-shiny", "artwork"):
            for f in range(3):
                (src / "sprites" / cls / f"{fam}-{f:02d}.png").write_bytes(
                    color_png((5, f * 30, 9), seed=len(fam) * 100 + f + (cls == "b") * 1000))
    (src / "lookalikes" / "z").mkdir(parents=True)
    (src / "lookalikes" / "z" / "artwork-00.png").write_bytes(color_png((1, 2, 3), seed=5))
    counts = split(src, tmp_path / "train", tmp_path / "test", tmp_path / "val")
    train = read_manifest(tmp_path / "train" / "manifest.csv")
    val = read_manifest(tmp_path / "val" / "manifest.csv")
    test = read_manifest(tmp_path / "test" / "manifest.csv")
    assert counts == {"train": len(train), "validation": len(val), "test": len(test), "ambiguous": 0}
    assert val and all(r["kind"] != "lookalike" for r in val)
    assert_split_invariants(train, test)
    assert_split_invariants(train, val)
    assert_split_invariants(val, test)
    assert any(r["kind"] == "lookalike" for r in test)
    again = tmp_path / "again"
    split(src, again / "train", again / "test", again / "val")
    assert read_manifest(again / "test" / "manifest.csv") == test  # deterministic
    assert read_manifest(again / "val" / "manifest.csv") == val


def test_mix_styles_moves_families_only_where_a_side_lacks_a_style():
    from model_creation.split_data import Item, mix_styles

    def items(*fams):
        return [Item(Path(f"{f}-{i}.png"), "ditto", "sprite", f, f"{f}{i}") for f in fams for i in range(2)]

    train, test = mix_styles(items("bw-back", "bw-front", "artwork"), items("menu", "dreamworld"))
    assert {i.source for i in test} == {"bw-back", "menu", "dreamworld"}  # the smallest Gen V family
    assert {i.source for i in train} == {"bw-front", "artwork"}
    train, test = mix_styles(items("bw-back", "bw-front"), items("menu", "dreamworld"))
    assert {i.source for i in test} == {"bw-back", "menu"} and {i.source for i in train} == {"bw-front", "dreamworld"}
    # already mixed: nothing moves
    tr, te = items("bw-back", "artwork"), items("bw-front", "menu")
    assert mix_styles(tr, te) == (tr, te)


def test_invariant_checker_catches_a_straddling_source():
    row = {"sha256": "1", "label": "a", "kind": "sprite", "source": "bw-front"}
    with pytest.raises(AssertionError, match="both sides"):
        assert_split_invariants([row], [dict(row, sha256="2")])
