"""Split invariants: no image on both sides, no drawing group (near duplicates, a sprite family) straddling."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

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
            if r["source"] != "photo":
                sides[(r["label"], r["source"])].add(side)
    straddling = [k for k, v in sides.items() if len(v) > 1]
    assert not straddling, f"drawing groups on both sides: {straddling}"


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
            _drawing((cls == "b") * 1000 + i).convert("RGB").save(src / "photos" / cls / f"{cls}{i}.jpg")
        for fam in ("bw-front", "bw-shiny", "bw-back", "icon-regular", "icon-shiny", "artwork"):
            for f in range(3):
                seed = len(fam) * 100 + f + (cls == "b") * 10000 + 50
                _drawing(seed).save(src / "sprites" / cls / f"{fam}-{f:02d}.png")
    (src / "lookalikes" / "z").mkdir(parents=True)
    _drawing(99999).save(src / "lookalikes" / "z" / "artwork-00.png")
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


def _drawing(seed: int, size: int = 96) -> Image.Image:
    """A random blocky picture on transparency: its perceptual hash is its own."""
    rng = random.Random(seed)
    im = Image.new("RGBA", (8, 8))
    im.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256), 255) for _ in range(64)])
    return im.resize((size, size), Image.NEAREST)


def test_split_keeps_a_drawing_on_one_side_and_leaves_out_images_of_two_labels(tmp_path):
    """Box icon and menu icon of one drawing, a photo of the artwork: one unit; a photo of a lookalike: out."""
    src = tmp_path / "src"
    for cls in ("a", "b"):
        (src / "photos" / cls).mkdir(parents=True)
        (src / "sprites" / cls).mkdir(parents=True)
        base = 1000 if cls == "b" else 0
        for i in range(20):
            _drawing(base + i).convert("RGB").save(src / "photos" / cls / f"p{i:02d}.jpg", quality=90)
        for fam in ("bw-front", "bw-back", "dreamworld"):
            for f in range(2):
                _drawing(base + 100 + len(fam) * 10 + f).save(src / "sprites" / cls / f"{fam}-{f:02d}.png")
        # One drawing under three sprite names, at two sizes, and a printed photo of it.
        _drawing(base + 500, 68).save(src / "sprites" / cls / "gen7x-regular-00.png")
        _drawing(base + 500, 40).save(src / "sprites" / cls / "icon-regular-00.png")
        _drawing(base + 500, 30).save(src / "sprites" / cls / "menu-00.png")
        _drawing(base + 500, 150).convert("RGB").save(src / "photos" / cls / "printed.jpg", quality=60)
        _drawing(base + 600).save(src / "sprites" / cls / "artwork-00.png")
    (src / "lookalikes" / "z").mkdir(parents=True)
    _drawing(7000).save(src / "lookalikes" / "z" / "artwork-00.png")
    _drawing(7000, 120).convert("RGB").save(src / "photos" / "a" / "really-z.jpg", quality=80)  # mislabelled
    counts = split(src, tmp_path / "train", tmp_path / "test", tmp_path / "val")
    rows = {side: read_manifest(tmp_path / side / "manifest.csv") for side in ("train", "val", "test")}
    assert counts["ambiguous"] == 1
    assert not any(r["path"].endswith("really-z.jpg") for rs in rows.values() for r in rs)
    assert any(r["path"] == "lookalikes/z/artwork-00.png" for r in rows["test"])  # the probe stays
    for cls in ("a", "b"):
        names = ("gen7x-regular-00.png", "icon-regular-00.png", "menu-00.png", "printed.jpg")
        where = {side for side, rs in rows.items() for r in rs if r["path"] in {f"{cls}/{n}" for n in names}}
        sources = {r["source"] for rs in rows.values() for r in rs if r["path"] in {f"{cls}/{n}" for n in names}}
        assert len(where) == 1 and sources == {"gen7x+icon+menu"}, (cls, where, sources)
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert_split_invariants(rows[a], rows[b])
    from collector.testset.check import check

    report = check(tmp_path / "test", [tmp_path / "train", tmp_path / "val"])
    assert report["errors"] == 0, [f["message"] for f in report["findings"] if f["level"] == "error"]


def test_invariant_checker_catches_a_straddling_photo_group():
    row = {"sha256": "1", "label": "a", "kind": "photo", "source": "photo-0123456789ab"}
    with pytest.raises(AssertionError, match="both sides"):
        assert_split_invariants([row], [dict(row, sha256="2")])
