"""Split the shared labelled images into training, validation and the preset test data.

    python -m model_creation.split_data --source ../shared/datasets

Deterministic (fixed seed, files sorted by content hash). The unit of the split is a *drawing*:
images that are near duplicates of one another (the perceptual hash and threshold of
`data-collector testset check`, joined transitively) stay on one side, and so does every frame
of one sprite animation with its shiny/female recolours (its *source family*). So a box icon and
the menu icon of the same drawing, or a photo of the official artwork and the artwork itself,
never sit on both sides. An image that is (nearly) the same as an image of another label (a
group picture filed twice, a "squirtle" photo that is Wartortle's artwork) has no single true
label: it is left out of every side (lookalike probes stay).

Photos are split per class, about 20% to test. Sprites are split by drawing group. A class known
only from sprites (ditto, mimikyu) whose sprites come both from Gen V animations (`bw-*`) and from
one-off styles (artwork, menu icons...) gets at least one Gen V family in test and at least one
one-off style in training, so that its test number measures more than a change of drawing
style. Lookalike Pokemon all go to test_data/lookalikes/<name>/ as unknown-class probes.

Then about 15% of the training side of each class that has photos (same rules: photos per
class, sprites by drawing group) becomes the validation split, model_creation/validation/:
recipe and threshold choices are made there, never on test_data/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from collector.testset.check import Image, connected_groups, near_pairs, perceptual_hashes

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
    source: str  # "photo" (a photo alone), or the drawing group it must stay with
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
    """About `fraction` of the photos to test, a photo alone or with its near duplicates."""
    units: dict[str, list[Item]] = {}
    for it in items:
        units.setdefault(it.sha256 if it.source == "photo" else it.source, []).append(it)
    # Ordered by a salted hash of each unit: adding or removing an image moves no other one.
    salt = rng.getrandbits(64)
    keys = sorted(units, key=lambda k: hashlib.sha256(f"{salt}:{k}".encode()).digest())
    n_test = round(len(items) * fraction)
    test: list[Item] = []
    for key in keys:
        if len(test) >= n_test:
            break
        test += units[key]
    chosen = {id(i) for i in test}
    return [i for k in keys for i in units[k] if id(i) not in chosen], test


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


def drawing_groups(items: list[Item]) -> tuple[list[Item], int]:
    """Each image with the drawing group it must stay with, and how many were left out.

    Near duplicates are pairs within `NEAR_DISTANCE` of `testset check`'s perceptual hash. An
    image of a class that is a near duplicate of an image of another label is left out (no single
    true label; a lookalike probe stays, it is never trained on). The rest are joined, per label,
    through near duplicates and sprite source families; a group is named after its sprite
    families (`gen7x+icon+menu`), or `photo-<sha256 prefix>` when it holds photos only. A photo
    alone keeps the source `photo`.
    """
    hashed = []
    for it in items:
        try:
            hashed.append(Image("data", str(it.src), it.label, it.kind, it.sha256, perceptual_hashes(str(it.src))))
        except Exception as e:  # noqa: BLE001 - any decoder error: name the file
            raise SystemExit(f"error: {it.src} does not decode as an image: {e}") from None
    near = [(i, j) for i, j, _ in near_pairs(hashed)]
    left_out = {k for i, j in near if items[i].label != items[j].label
                for k in (i, j) if items[k].kind != "lookalike"}
    links = [(i, j) for i, j in near if items[i].label == items[j].label and not {i, j} & left_out]
    first_of_family: dict[tuple[str, str], int] = {}
    for k, it in enumerate(items):
        if it.kind != "photo" and k not in left_out:
            links.append((first_of_family.setdefault((it.label, it.source), k), k))
    source = {k: it.source for k, it in enumerate(items)}
    for group in connected_groups(links, len(items)):
        families = sorted({items[k].source for k in group if items[k].kind != "photo"})
        name = "+".join(families) if families else "photo-" + min(items[k].sha256 for k in group)[:12]
        source.update(dict.fromkeys(group, name))
    kept = [replace(it, source=source[k]) for k, it in enumerate(items) if k not in left_out]
    return kept, len(left_out)


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
    loaded = [it for cls in classes for kind, sub in (("photo", "photos"), ("sprite", "sprites"))
              if (source / sub / cls).is_dir() for it in _items(source / sub / cls, cls, kind)]
    lookalikes = [it for folder in sorted((source / "lookalikes").iterdir()) if folder.is_dir()
                  for it in _items(folder, folder.name, "lookalike")]
    kept, left_out = drawing_groups(loaded + lookalikes)
    # A photo drawn from a sprite (the official artwork, printed) is split with that sprite's group.
    sprite_groups = {it.source for it in kept if it.kind == "sprite"}
    groups: dict[tuple[str, str], list[Item]] = {}
    for it in kept:
        if it.kind != "lookalike":
            kind = "sprite" if it.kind == "sprite" or it.source in sprite_groups else "photo"
            groups.setdefault((it.label, kind), []).append(it)
    has_photos = {it.label for it in loaded if it.kind == "photo"}
    for (cls, kind), items in sorted(groups.items()):
        splitter = split_photos if kind == "photo" else split_sprites
        rng = random.Random(f"{SEED}-{kind}-{cls}")  # nosec B311: a reproducible split, not security
        train, test = splitter(items, rng)
        if kind == "sprite" and cls not in has_photos:
            train, test = mix_styles(train, test)
        test_hashes = {i.sha256 for i in test}
        train = [i for i in train if i.sha256 not in test_hashes]  # exact duplicates stay in test
        validation: list[Item] = []
        # Classes known only from sprites have too few to spare (mimikyu: four): no validation.
        if cls in has_photos and (kind == "photo" or len(_families(train)) >= 2):
            vrng = random.Random(f"{SEED}-validation-{kind}-{cls}")  # nosec B311: reproducible split
            train, validation = splitter(train, vrng, VALIDATION_FRACTION)
            if kind == "sprite" and not train:
                train, validation = validation, []
        val_hashes = {i.sha256 for i in validation}
        train = [i for i in train if i.sha256 not in val_hashes]
        train_rows += _copy(train, train_dir, cls)
        validation_rows += _copy(validation, validation_dir, cls)
        test_rows += _copy(test, test_dir, cls)
    for it in kept:
        if it.kind == "lookalike":
            test_rows += _copy([it], test_dir, f"lookalikes/{it.label}")
    write_manifest(train_dir / "manifest.csv", train_rows)
    write_manifest(validation_dir / "manifest.csv", validation_rows)
    write_manifest(test_dir / "manifest.csv", test_rows)
    return {"train": len(train_rows), "validation": len(validation_rows), "test": len(test_rows),
            "ambiguous": left_out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = ap.parse_args()
    if not (args.source / "photos").is_dir():
        raise SystemExit(f"error: {args.source} has no photos/ folder (see --source)")
    counts = split(args.source)
    print(f"train images: {counts['train']}, validation images: {counts['validation']}, "
          f"test images: {counts['test']}, "
          f"left out (the same or a near-duplicate image under two labels): {counts['ambiguous']}")


if __name__ == "__main__":
    main()
