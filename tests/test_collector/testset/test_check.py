"""`data-collector testset check`: duplicates, leakage, undecodable files, folders, thin classes."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

from PIL import Image

from bench.bench_testset_check import drawing  # random shapes: a picture of its own per seed
from collector.testset.check import check
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[3]


def save(im: Image.Image, path: Path, fmt: str = "PNG", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kw)
    return path


def clean_set(root: Path, labels=("a", "b", "c"), per_class: int = 16, seed: int = 0) -> Path:
    for k, lab in enumerate(labels):
        for i in range(per_class):
            save(drawing(seed + 1000 * k + i), root / lab / f"{i:02d}.png")
    return root


def kinds(result: dict, level: str | None = None) -> list[str]:
    return [f["kind"] for f in result["findings"] if level is None or f["level"] == level]


def test_a_clean_set_has_no_error_and_different_drawings_do_not_match(tmp_path):
    test = clean_set(tmp_path / "test")
    train = clean_set(tmp_path / "train", seed=50_000)
    r = check(test, [train], min_drop=0.5)
    assert r["errors"] == 0 and not kinds(r), r["findings"]  # 48 + 48 drawings: no near duplicate
    assert r["images"] == 48 and r["classes"]["a"]["images"] == 16


def test_copies_are_found_and_sorted_into_errors_and_warnings(tmp_path):
    test = clean_set(tmp_path / "test")
    train = clean_set(tmp_path / "train", seed=50_000)
    a0 = drawing(0)
    # A smaller JPEG copy in its own class: counted twice (warning).
    save(a0.resize((60, 60)), test / "a" / "copy.jpg", "JPEG", quality=60)
    # The same bytes under another label, and a cropped copy under a third: one image, three labels.
    shutil.copy(test / "a" / "01.png", test / "b" / "same-bytes.png")
    w = drawing(1).crop((3, 3, 93, 93))
    save(w, test / "c" / "cropped.png")
    # A recompressed test image in the training data: leaked.
    buf = io.BytesIO()
    drawing(2002).save(buf, "WEBP", quality=85)
    (train / "c" / "leak.webp").write_bytes(buf.getvalue())
    # A file that does not decode; a folder without images; an image outside any label folder.
    (test / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (test / "empty").mkdir()
    save(drawing(7), test / "stray.png")
    r = check(test, [train], min_drop=0.5)
    by_kind = {}
    for f in r["findings"]:
        by_kind.setdefault(f["kind"], []).append(f)
    assert [f["paths"] for f in by_kind["near-duplicates"]] == [["a/00.png", "a/copy.jpg"]]
    (conflict,) = by_kind["conflicting-labels"]
    assert set(conflict["paths"]) == {"a/01.png", "b/same-bytes.png", "c/cropped.png"}
    assert conflict["level"] == "error" and "(a, b, c)" in conflict["message"]
    (leak,) = by_kind["leaked"]
    assert leak["paths"] == ["c/02.png", f"{train}/c/leak.webp"] and leak["level"] == "error"
    (broken,) = by_kind["undecodable"]
    assert broken["paths"] == ["b/broken.png"]
    not_labels = " ".join(f["message"] for f in by_kind["not-a-label"])
    assert "empty" in not_labels and "1 images outside a label folder" in not_labels
    assert r["errors"] == 3 and r["warnings"] == 3


def test_a_label_no_model_learnt_and_thin_classes_are_warnings(tmp_path):
    test = clean_set(tmp_path / "test", labels=("a", "b", "zebra"), per_class=5)
    train = clean_set(tmp_path / "train", labels=("a", "b"), seed=50_000)
    r = check(test, [train], min_drop=0.1)
    assert r["errors"] == 0
    msgs = {f["kind"]: f["message"] for f in r["findings"]}
    assert "zebra" in msgs["not-a-label"]
    needed = r["classes"]["a"]["needed"]
    assert needed > 5 and f"needs {needed} images" in msgs["few-images"] and "a 5, b 5, zebra 5" in msgs["few-images"]


def test_the_repository_test_set_is_clean():
    r = run_cli("testset", "check", "--test-data", str(ROOT / "test_data"), "--against",
                str(ROOT / "model_creation" / "dataset"), "--against", str(ROOT / "model_creation" / "validation"),
                "--hash-cache", "off", "--json")
    body = json.loads(r.output)
    assert body["errors"] == 0, [f["message"] for f in body["findings"] if f["level"] == "error"]


def test_near_pairs_is_the_pairwise_distance_in_blocks(monkeypatch):
    """The vectorised search (in blocks) finds exactly the pairs the scalar distance says are near."""
    import collector.testset.check as tc

    rng = random.Random(1)
    base = [rng.getrandbits(64) for _ in range(40)]
    # Images whose hashes are a few bits from one another, so that some pairs are near.
    items = [tc.Image("test", f"x/{i}.png", "x", "photo", str(i),
                      tuple(b ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for _ in range(tc.N_HASHES)))
             for i, b in enumerate(base + base[:20])]
    monkeypatch.setattr(tc, "BLOCK", 7)  # several blocks, one cut short
    got = {(i, j) for i, j, _ in tc.near_pairs(items)}
    want = {(i, j) for i in range(len(items)) for j in range(i + 1, len(items))
            if tc.hash_distance(items[i].hashes, items[j].hashes) <= tc.NEAR_DISTANCE}
    assert got == want and len(want) >= 20


def _transparent_sprites(n: int) -> list[Path]:
    found = []
    for p in sorted((ROOT / "model_creation" / "dataset").glob("*/*.png")):
        with Image.open(p) as im:
            if im.convert("RGBA").getextrema()[3][0] < 255 and min(im.size) >= 40:
                found.append(p)
        if len(found) == n:
            return found
    raise AssertionError("the training side has too few transparent sprites")


def test_a_copy_saved_without_its_transparency_is_found_whatever_it_was_flattened_onto(tmp_path):
    """The naive JPEG export: transparency flattened onto black, a colour or grey; also the
    colour conversions (grayscale, a palette) that keep it."""
    rng = random.Random(7)
    originals = _transparent_sprites(6)
    train, test = tmp_path / "train", tmp_path / "test"
    made = []
    for k, src in enumerate(originals):
        label = src.parent.name
        shutil.copy(src, (train / label).mkdir(parents=True, exist_ok=True) or train / label / src.name)
        with Image.open(src) as im:
            rgba = im.convert("RGBA")
        colour = [(0, 0, 0), tuple(rng.randrange(256) for _ in range(3)), (128, 128, 128),
                  tuple(rng.randrange(256) for _ in range(3))][k % 4]
        flat = Image.new("RGBA", rgba.size, (*colour, 255))
        flat.alpha_composite(rgba)
        made.append(save(flat.convert("RGB"), test / label / f"flat-{k}.jpg", "JPEG", quality=85))
        if k % 2:
            made.append(save(rgba.convert("LA"), test / label / f"gray-{k}.png"))
        else:
            made.append(save(rgba.quantize(colors=64, method=Image.Quantize.FASTOCTREE), test / label / f"pal-{k}.png"))
    result = check(test, [train])
    leaked = {f["paths"][0] for f in result["findings"] if f["kind"] == "leaked"}
    assert leaked == {p.relative_to(test).as_posix() for p in made}, result["findings"]


def test_the_perturbed_copies_are_checked_for_leaks_but_never_against_their_own_source(tmp_path):
    import hashlib

    from collector.testset.perturb import PERTURBATIONS, make

    test = clean_set(tmp_path / "test", per_class=4)
    train = clean_set(tmp_path / "train", per_class=4, seed=50_000)
    r = check(test, [train], min_drop=0.5, perturbed=True)
    assert r["errors"] == 0 and r["perturbed_copies"] == 12 * len(PERTURBATIONS), r["findings"]
    # the training side holds the rotated copy of one test image (not the image itself)
    source = (test / "b" / "02.png").read_bytes()
    (train / "b" / "rotated.png").write_bytes(make(source, hashlib.sha256(source).hexdigest(), "rotate"))
    plain = check(test, [train], min_drop=0.5)
    assert plain["errors"] == 0, plain["findings"]  # the image itself is not within reach of the rotation
    r = check(test, [train], min_drop=0.5, perturbed=True)
    (leak,) = [f for f in r["findings"] if f["kind"] == "leaked"]
    assert leak["paths"] == ["b/02.png", f"{train}/b/rotated.png"] and "perturbed copy" in leak["message"]
    assert "rotate" in leak["message"]
    out = run_cli("testset", "check", "--test-data", str(test), "--against", str(train), "--robustness",
                  "--hash-cache", "off")
    text = " ".join(out.output.split())  # the summary wraps at the terminal's width, wherever the path ends
    assert out.exit_code == 1 and f"{12 * len(PERTURBATIONS)} perturbed copies" in text
