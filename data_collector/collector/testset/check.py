"""Is the test set sound? Duplicates, leakage into training, undecodable files, thin classes.

`data-collector testset check [--against DIR]...` looks at the test set (and each `--against`
folder, the training and validation sides) image by image:

- **exact duplicates**: the sha256 of the bytes;
- **near duplicates**: a perceptual hash (`imagehash.phash`, 64 bits) of the image drawn on white
  (transparency flattened), and of its central 94% and 88%: two images are near duplicates when
  the smallest Hamming distance between the full hash of one and any of the other's three is at
  most `NEAR_DISTANCE` (4). Measured on the 969 images of this repository (`python -m
  bench.near_duplicates`; copies of the 655 images of 64 px or more a side): every copy resized
  to 60% or 150%, recompressed as JPEG quality 40 or re-encoded as WebP is within 4; of copies
  cropped by 2%, 4% or 5% a side, 95-97% are (all within 8); of 2,148 pairs of different drawings
  of one Pokemon (sprites of different sources) none is (the closest is 8). Pairs at 6 found
  between this test set and the training data were redrawings of one pose and a 20-pixel sprite
  against a drawing: not copies. Recoloured sprites (shiny variants) and one drawing at two
  sizes (box icon, menu icon) do match: for a classifier they are one image.
  An image with transparency is also hashed drawn on 16 greys (0, 16, ..., 240): of its copies
  saved the naive way (flattened onto black, grey or a random colour and saved as JPEG quality 85),
  100%, 100% and 99.6% are within 4 (the rest within 6), as are all its grayscale and 64-colour
  palette copies; the different drawings stay at 8 or more.

Findings (`Finding.level`: error makes the command exit 1):
- error `conflicting-labels`: the same (or a near-duplicate) image under two labels;
- error `leaked`: a test image that is (nearly) an image of an `--against` folder;
- error `undecodable`: a file with an image suffix that does not decode;
- warning `near-duplicates`: near-duplicate images inside one class (each counts in the verdict);
- warning `not-a-label`: a folder of the test set that no `--against` folder has (no model trained
  on it), a folder without images, or images outside a label folder;
- warning `few-images`: a class with fewer images than `plan` asks for a `--min-drop` drop.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..stats.power import images_needed
from ..vocab import ImageKind
from .images import IMAGE_SUFFIXES, LOOKALIKES, HashCache, _manifest_kinds, _sha_or_none, _walk, label_and_kind

NEAR_DISTANCE = 4  # bits of 64; see the module's docstring for the measurements
CROPS = (0.0, 0.03, 0.06)  # each side: the full image, its central 94% and 88%
# A transparent image is also hashed drawn on these greys, so that a copy saved without
# transparency still matches: the hash sees luminance only, so a copy flattened onto any colour is
# the image on that colour's grey, and a grey every 16 levels is near enough (bench.near_duplicates).
BACKGROUNDS = tuple((g, g, g) for g in range(0, 255, 16))
N_HASHES = len(CROPS) + len(BACKGROUNDS)
BLOCK = 1024  # rows of the distance matrix computed at once


@dataclass(frozen=True)
class Image:
    side: str  # "test" or the --against folder as given
    path: str  # relative to its folder, POSIX
    label: str
    kind: str
    sha256: str
    hashes: tuple[int, ...] | None  # None: undecodable


@dataclass
class Finding:
    level: str  # error | warning
    kind: str
    message: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"level": self.level, "kind": self.kind, "message": self.message, "paths": self.paths}


def perceptual_hashes(path: str) -> tuple[int, ...]:
    """phash of the image on white, of its central crops (CROPS), then of the whole image on each
    of BACKGROUNDS (for an image without transparency those equal the first); raises on an
    undecodable file."""
    import imagehash
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        im.load()
        rgba = im.convert("RGBA")

    def on(colour: tuple[int, int, int]) -> PILImage.Image:
        flat = PILImage.new("RGBA", rgba.size, (*colour, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")

    def phash(img: PILImage.Image) -> int:
        return int(str(imagehash.phash(img, hash_size=8)), 16)

    flat = on((255, 255, 255))
    out = []
    for f in CROPS:
        w, h = flat.size
        dx, dy = round(w * f), round(h * f)
        part = flat.crop((dx, dy, w - dx, h - dy)) if f and w - 2 * dx >= 8 and h - 2 * dy >= 8 else flat
        out.append(phash(part))
    transparent = rgba.getextrema()[3][0] < 255
    out += [phash(on(c)) if transparent else out[0] for c in BACKGROUNDS]
    return tuple(out)


class PerceptualCache:
    """Perceptual hashes by sha256 (the bytes decide the hash), in the hash cache's SQLite file."""

    def __init__(self, cache: HashCache | None):
        self.conn = cache.conn if cache is not None else None
        if self.conn is not None:
            try:
                self.conn.execute("CREATE TABLE IF NOT EXISTS phashes (sha256 TEXT PRIMARY KEY, version INTEGER "
                                  "NOT NULL, hashes TEXT NOT NULL)")
                self.conn.commit()
            except sqlite3.Error:
                self.conn = None
        self.computed = 0

    VERSION = 2  # of CROPS, BACKGROUNDS and the hash: a change recomputes every cached value

    def get(self, items: list[tuple[str, str]]) -> dict[str, tuple[int, ...] | None]:
        """sha256 -> hashes (None: undecodable) for (sha256, absolute path) pairs."""
        known: dict[str, tuple[int, ...] | None] = {}
        if self.conn is not None:
            try:  # the hashes as one JSON array parameter: one fixed statement for any number
                rows = self.conn.execute("SELECT sha256, hashes FROM phashes WHERE version = ? AND sha256 IN "
                                         "(SELECT value FROM json_each(?))",
                                         (self.VERSION, json.dumps([s for s, _ in items]))).fetchall()
            except sqlite3.Error:
                rows = []
            for sha, text in rows:
                known[sha] = tuple(int(x, 16) for x in text.split()) if text else None
        new = []
        for sha, path in items:
            if sha in known:
                continue
            try:
                known[sha] = perceptual_hashes(path)
            except Exception:  # noqa: BLE001 - whatever PIL raises for a file it cannot decode
                known[sha] = None
            self.computed += 1
            new.append((sha, self.VERSION, " ".join(f"{h:016x}" for h in known[sha]) if known[sha] else ""))
        if self.conn is not None and new:
            try:
                self.conn.executemany("INSERT OR REPLACE INTO phashes VALUES (?, ?, ?)", new)
                self.conn.commit()
            except sqlite3.Error:
                pass
        return known


def scan(root: Path, side: str, cache: HashCache | None, phash: PerceptualCache,
         findings: list[Finding]) -> list[Image]:
    """Every image file under `root` (labels from `<label>/<file>` and `lookalikes/<name>/<file>`)."""
    kinds = _manifest_kinds(root)
    files: list[tuple[str, str, str, str]] = []  # rel, label, kind, absolute path
    stray: list[str] = []
    for rel, path in _walk(os.path.abspath(root)):
        if os.path.splitext(rel)[1].lower() not in IMAGE_SUFFIXES:
            continue
        placed = label_and_kind(rel, kinds)
        if placed is None:
            stray.append(rel)
        else:
            files.append((rel, *placed, path))
    if stray:
        findings.append(Finding("warning", "not-a-label", f"{side}: {len(stray)} images outside a label folder "
                                "(not part of the test set)", stray))
    empty = [e.name for e in os.scandir(root) if e.is_dir() and e.name != LOOKALIKES and not e.name.startswith(".")
             and e.name not in {label for _, label, _, _ in files}]
    if empty:
        findings.append(Finding("warning", "not-a-label", f"{side}: folders without images: {', '.join(sorted(empty))}",
                                sorted(empty)))
    stats = []
    for *_, path in files:
        try:
            stats.append((path, os.stat(path)))
        except OSError:
            stats.append((path, None))
    shas = (cache.sha256s([(p, st) for p, st in stats if st is not None]) if cache is not None
            else [_sha_or_none(p) for p, st in stats if st is not None])
    it = iter(shas)
    readable = [(f, next(it)) for f, (_, st) in zip(files, stats, strict=True) if st is not None]
    known = phash.get([(sha, f[3]) for f, sha in readable if sha])
    return [Image(side, rel, label, kind, sha, known.get(sha)) for (rel, label, kind, _), sha in readable if sha]


def _perturbed_leaks(good: list[Image], root: Path, sides: dict[str, list[Image]], phash: PerceptualCache,
                     findings: list[Finding]) -> int:
    """Check the perturbed copies (perturb.py) of the labelled test images against each --against
    side; a copy is never compared with the test set (it is near its own source by design), and a
    copy of an image already reported as leaked is not reported again. Returns the copies made."""
    import hashlib
    import io

    from . import perturb

    copies: list[tuple[Image, str]] = []  # the copy, its source's path
    bodies: dict[str, bytes] = {}
    for t in good:
        if t.kind == ImageKind.LOOKALIKE.value:
            continue
        try:
            data = (Path(root) / t.path).read_bytes()
        except OSError:
            continue
        for name in perturb.PERTURBATIONS:
            body = perturb.make(data, t.sha256, name)
            sha = hashlib.sha256(body).hexdigest()
            bodies[sha] = body
            copies.append((Image("test", perturb.perturbed_path(t.path, name), t.label, perturb.KIND, sha, None),
                           t.path))
    hashes = phash.get([(sha, io.BytesIO(body)) for sha, body in bodies.items()])
    items = [(Image(i.side, i.path, i.label, i.kind, i.sha256, hashes.get(i.sha256)), src) for i, src in copies]
    items = [(i, src) for i, src in items if i.hashes is not None]
    reported = {f.paths[0] for f in findings if f.kind == "leaked"}
    for side, other_all in sides.items():
        other = [o for o in other_all if o.hashes is not None]
        seen: set[str] = set()
        for i, j, d in near_pairs([i for i, _ in items], other):
            copy, src = items[i]
            if src in reported or src in seen:
                continue
            seen.add(src)
            findings.append(Finding("error", "leaked", f"perturbed copy {copy.path} of test {src} is a near duplicate "
                                    f"(distance {d}) of {side}/{other[j].path}", [src, f"{side}/{other[j].path}"]))
    return len(copies)


def hash_distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """The distance near_pairs uses, for two images: whole to whole, or a crop of one to the other whole."""
    pairs = [(a[0], b[0])] + [(a[k], b[0]) for k in range(1, len(a))] + [(a[0], b[k]) for k in range(1, len(b))]
    return min((x ^ y).bit_count() for x, y in pairs)


def _matrix(items: list[Image]) -> np.ndarray:
    return np.array([i.hashes for i in items], dtype=np.uint64).reshape(len(items), N_HASHES)


def near_pairs(a: list[Image], b: list[Image] | None = None) -> Iterable[tuple[int, int, int]]:
    """(i, j, distance) of near-duplicate pairs: within `a` (i < j) or between `a` and `b`."""
    ha = _matrix(a)
    hb = ha if b is None else _matrix(b)
    if not len(ha) or not len(hb):
        return
    for start in range(0, len(ha), BLOCK):
        block = ha[start:start + BLOCK]
        d = np.bitwise_count(block[:, None, 0] ^ hb[None, :, 0]).astype(np.int16)
        for k in range(1, N_HASHES):  # a crop, or another background, of one against the other whole
            d = np.minimum(d, np.bitwise_count(block[:, None, k] ^ hb[None, :, 0]))
            d = np.minimum(d, np.bitwise_count(block[:, None, 0] ^ hb[None, :, k]))
        rows, cols = np.nonzero(d <= NEAR_DISTANCE)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if b is None and c <= i:
                continue
            yield i, c, int(d[r, c])


def connected_groups(pairs: list[tuple[int, int]], n: int) -> list[list[int]]:
    """The connected components (of two or more) of the graph of `pairs` over items 0..n-1."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in {x for p in pairs for x in p}:
        groups[find(i)].append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def check(test_root: Path, against: list[Path], *, cache: HashCache | None = None, min_drop: float = 0.1,
          alpha: float = 0.05, perturbed: bool = False) -> dict:
    """The findings and per-class counts of the test set at `test_root` (with `perturbed`, the
    robustness suite's copies of its labelled images are checked for leaks too)."""
    findings: list[Finding] = []
    phash = PerceptualCache(cache)
    test = scan(test_root, "test", cache, phash, findings)
    sides = {str(p): scan(p, str(p), cache, phash, findings) for p in against}
    for side, items in [("test", test), *sides.items()]:
        bad = [i.path for i in items if i.hashes is None]
        if bad:
            findings.append(Finding("error", "undecodable", f"{side}: {len(bad)} files do not decode as images", bad))
    good = [i for i in test if i.hashes is not None]
    _duplicates_inside(test, good, findings)
    for side, items in sides.items():
        _leaks(good, side, [i for i in items if i.hashes is not None], findings)
    copies = _perturbed_leaks(good, test_root, sides, phash, findings) if perturbed else None
    counts = _label_findings(test, sides, min_drop, alpha, findings)
    probes = len({i.sha256 for i in test if i.kind == ImageKind.LOOKALIKE.value})
    errors = [f for f in findings if f.level == "error"]
    return {"test_data": str(test_root), "against": [str(p) for p in against], "images": len(test),
            "lookalike_probes": probes, "perturbed_copies": copies, "classes": counts, "near_distance": NEAR_DISTANCE,
            "hashes_computed": phash.computed, "errors": len(errors),
            "warnings": len(findings) - len(errors), "findings": [f.to_dict() for f in findings]}


def _duplicates_inside(test: list[Image], good: list[Image], findings: list[Finding]) -> None:
    """Inside the test set: one image under two labels (error), near duplicates in a class (warning)."""
    by_sha: dict[str, list[Image]] = defaultdict(list)
    for i in test:
        by_sha[i.sha256].append(i)
    index = {id(img): k for k, img in enumerate(good)}
    pairs = [(i, j) for i, j, _ in near_pairs(good)]
    pairs += [(index[id(g[0])], index[id(x)]) for g in by_sha.values() if len(g) > 1 and g[0].hashes is not None
              for x in g[1:] if x.hashes is not None]
    for g in connected_groups(pairs, len(good)):
        members = [good[k] for k in g]
        labels = sorted({m.label for m in members})
        paths = [m.path for m in members]
        if len(labels) > 1:
            findings.append(Finding("error", "conflicting-labels", f"one image under {len(labels)} labels "
                                    f"({', '.join(labels)}): {', '.join(paths)}", paths))
        else:
            findings.append(Finding("warning", "near-duplicates", f"{labels[0]}: {len(members)} near-duplicate "
                                    f"images count as {len(members)}: {', '.join(paths)}", paths))


def _leaks(good: list[Image], side: str, other: list[Image], findings: list[Finding]) -> None:
    """Between the test set and another side: each test image that is (nearly) one of the side's."""
    leaks: dict[int, list[tuple[Image, int]]] = defaultdict(list)
    for i, j, d in near_pairs(good, other):
        leaks[i].append((other[j], d))
    exact = {i.sha256: i for i in other}
    for k, t in enumerate(good):
        if t.sha256 in exact and not any(o.sha256 == t.sha256 for o, _ in leaks[k]):
            leaks[k].append((exact[t.sha256], 0))
    for k, matches in sorted(leaks.items()):
        t = good[k]
        if not matches:
            continue
        o, d = min(matches, key=lambda m: m[1])
        how = "the same file" if o.sha256 == t.sha256 else f"a near duplicate (distance {d})"
        relabel = "" if o.label == t.label else f", labelled {o.label} there"
        findings.append(Finding("error", "leaked", f"test {t.path} is {how} of {side}/{o.path}{relabel}"
                                + (f" (and {len(matches) - 1} more)" if len(matches) > 1 else ""),
                                [t.path, f"{side}/{o.path}"]))


def _label_findings(test: list[Image], sides: dict[str, list[Image]], min_drop: float, alpha: float,
                    findings: list[Finding]) -> dict:
    """Labels: folders no model was trained on; classes too thin for the gate. The per-class counts."""
    labels = sorted({i.label for i in test if i.kind != ImageKind.LOOKALIKE.value})
    if sides:
        trained = {i.label for items in sides.values() for i in items}
        missing = [lab for lab in labels if lab not in trained]
        if missing:
            findings.append(Finding("warning", "not-a-label", f"test folders no --against folder has (no model "
                                    f"learnt them): {', '.join(missing)}", missing))
    needed = images_needed(min_drop, alpha)
    counts = {lab: {"images": len({i.sha256 for i in test if i.label == lab}), "needed": needed} for lab in labels}
    thin = [f"{lab} {c['images']}" for lab, c in counts.items() if c["images"] < needed]
    if thin:
        findings.append(Finding("warning", "few-images", f"to see a {min_drop:.2f} accuracy drop on answers alone a "
                                f"class needs {needed} images (plan --min-drop {min_drop}); short: {', '.join(thin)}",
                                [lab.split(' ')[0] for lab in thin]))
    return counts
