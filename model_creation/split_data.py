"""Split the shared labelled images into training, validation and the preset test data.

    python -m model_creation.split_data --source ../shared/datasets

Deterministic (fixed seed, files sorted by content hash). Photos are split per class, about
20% to test. Sprites are split by *source family*: every frame of one animation, and its
shiny/female recolours, stay on one side, because they are near-duplicates. A class known only
from sprites (ditto, mimikyu) whose sprites come both from Gen V animations (`bw-*`) and from
one-off styles (artwork, menu icons...) gets at least one Gen V family in test and at least one
one-off style in training, so that its test number measures more than a change of drawing
style. Lookalike Pokemon all go to test_data/lookalikes/<name>/ as unknown-class probes.

Then about 15% of the training side of each class that has photos (same rules: photos per
class, sprites by family) becomes the validation split, model_creation/validation/: recipe and
threshold choices are made there, never on test_data/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN_DIR = ROOT / "model_creation" / "dataset"
VALIDATION_DIR = ROOT / "model_creation" / "validation"
TEST_DIR = ROOT / "test_data"
SEED = 42
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.15  # of the training side
GEN_V_PREFIX = "bw-"
MANIFEST_FIELDS = ["path", "label", "sha256", "kind", "source"]
_VARIANT_TOKENS = {"shiny", "female", "regular"}


@dataclass(frozen=True)
class Item:
    src: Path
    label: str
    kind: str  # photo | sprite | lookalike
    source: str
    sha256: str


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sprite_family(filename: str) -> str:
    """`bw-shiny-female-03.png` -> `bw-front`: one animation and its recolours are one source."""
    stem = re.sub(r"-\d+$", "", Path(filename).stem)
    tokens = [t for t in stem.split("-") if t not in _VARIANT_TOKENS]
    if tokens == ["bw"]:
        tokens = ["bw", "front"]
    return "-".join(tokens) or stem


def _items(folder: Path, label: str, kind: str) -> list[Item]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            source = "photo" if kind == "photo" else sprite_family(p.name)
            out.append(Item(p, label, kind, source, sha256_file(p)))
    return out


def split_photos(items: list[Item], rng: random.Random, fraction: float = TEST_FRACTION
                 ) -> tuple[list[Item], list[Item]]:
    items = sorted(items, key=lambda i: i.sha256)
    rng.shuffle(items)
    n_test = round(len(items) * fraction)
    return items[n_test:], items[:n_test]


def _families(items: list[Item]) -> dict[str, list[Item]]:
    families: dict[str, list[Item]] = {}
    for it in items:
        families.setdefault(it.source, []).append(it)
    return families


def split_sprites(items: list[Item], rng: random.Random, fraction: float = TEST_FRACTION
                  ) -> tuple[list[Item], list[Item]]:
    families = _families(items)
    names = sorted(families)
    rng.shuffle(names)
    target = max(2, round(len(items) * fraction))
    slack = max(2, round(len(items) * 0.1))
    test_names: list[str] = []
    count = 0
    for name in names:
        if count >= target:
            break
        size = len(families[name])
        if count + size <= target + slack:
            test_names.append(name)
            count += size
    train = [i for n in names if n not in test_names for i in families[n]]
    test = [i for n in test_names for i in families[n]]
    return train, test


def mix_styles(train: list[Item], test: list[Item]) -> tuple[list[Item], list[Item]]:
    """Gen V on both sides and a one-off style on both sides where the class has enough of each.

    Moves the smallest Gen V family into test when test has none (and training keeps one), and
    the smallest one-off family into training when training has none (and test keeps one).
    """
    def pick(side: list[Item], gen_v: bool) -> list[str]:
        fams = _families(side)
        return sorted((n for n in fams if n.startswith(GEN_V_PREFIX) == gen_v), key=lambda n: (len(fams[n]), n))

    def move(name: str, src: list[Item], dst: list[Item]) -> tuple[list[Item], list[Item]]:
        return [i for i in src if i.source != name], dst + [i for i in src if i.source == name]

    if not pick(test, True) and len(pick(train, True)) >= 2:
        train, test = move(pick(train, True)[0], train, test)
    if not pick(train, False) and len(pick(test, False)) >= 2:
        test, train = move(pick(test, False)[0], test, train)
    return train, test


def write_manifest(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: r["path"])
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def read_manifest(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _copy(items: list[Item], base: Path, subdir: str) -> list[dict]:
    rows = []
    for it in items:
        dest = base / subdir / it.src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(it.src, dest)
        rows.append({"path": dest.relative_to(base).as_posix(), "label": it.label,
                     "sha256": it.sha256, "kind": it.kind, "source": it.source})
    return rows


def split(source: Path, train_dir: Path = TRAIN_DIR, test_dir: Path = TEST_DIR,
          validation_dir: Path = VALIDATION_DIR) -> dict:
    classes = sorted({p.name for sub in ("photos", "sprites") for p in (source / sub).iterdir()
                      if p.is_dir()})
    for d in (train_dir, validation_dir, test_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    train_rows: list[dict] = []
    validation_rows: list[dict] = []
    test_rows: list[dict] = []
    groups = {(cls, kind): _items(source / sub / cls, cls, kind)
              for cls in classes for kind, sub in (("photo", "photos"), ("sprite", "sprites"))
              if (source / sub / cls).is_dir()}
    # The same bytes under two labels (a group picture) has no single true label: leave it out.
    labels_of: dict[str, set[str]] = {}
    for items in groups.values():
        for it in items:
            labels_of.setdefault(it.sha256, set()).add(it.label)
    ambiguous = {sha for sha, labs in labels_of.items() if len(labs) > 1}
    for (cls, kind), items in groups.items():
        splitter = split_photos if kind == "photo" else split_sprites
        rng = random.Random(f"{SEED}-{kind}-{cls}")  # nosec B311: a reproducible split, not security
        train, test = splitter([i for i in items if i.sha256 not in ambiguous], rng)
        if kind == "sprite" and (cls, "photo") not in groups:
            train, test = mix_styles(train, test)
        test_hashes = {i.sha256 for i in test}
        train = [i for i in train if i.sha256 not in test_hashes]  # exact duplicates stay in test
        validation: list[Item] = []
        # Classes known only from sprites have too few to spare (mimikyu: four): no validation.
        if (cls, "photo") in groups and (kind == "photo" or len(_families(train)) >= 2):
            vrng = random.Random(f"{SEED}-validation-{kind}-{cls}")  # nosec B311: reproducible split
            train, validation = splitter(train, vrng, VALIDATION_FRACTION)
            if kind == "sprite" and not train:
                train, validation = validation, []
        val_hashes = {i.sha256 for i in validation}
        train = [i for i in train if i.sha256 not in val_hashes]
        train_rows += _copy(train, train_dir, cls)
        validation_rows += _copy(validation, validation_dir, cls)
        test_rows += _copy(test, test_dir, cls)
    for folder in sorted((source / "lookalikes").iterdir()):
        if folder.is_dir():
            test_rows += _copy(_items(folder, folder.name, "lookalike"), test_dir, f"lookalikes/{folder.name}")
    write_manifest(train_dir / "manifest.csv", train_rows)
    write_manifest(validation_dir / "manifest.csv", validation_rows)
    write_manifest(test_dir / "manifest.csv", test_rows)
    return {"train": len(train_rows), "validation": len(validation_rows), "test": len(test_rows),
            "ambiguous": len(ambiguous)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = ap.parse_args()
    if not (args.source / "photos").is_dir():
        raise SystemExit(f"error: {args.source} has no photos/ folder (see --source)")
    counts = split(args.source)
    print(f"train images: {counts['train']}, validation images: {counts['validation']}, "
          f"test images: {counts['test']}, "
          f"left out (same image under two labels): {counts['ambiguous']}")


if __name__ == "__main__":
    main()
