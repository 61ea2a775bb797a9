"""How far apart copies and different drawings are, in the perceptual hash of `testset check`.

    python -m bench.near_duplicates      # about 1 minute on 2 cores

On every image of `test_data/`, `model_creation/dataset/` and `model_creation/validation/`
(images of at least 64 px a side for the copies: a 1-pixel crop of a 20-pixel icon is no
"slight" crop), it makes copies (resized to 60% and 150%, JPEG quality 40, WebP quality 90,
cropped by 2%, 4% and 5% a side) and prints the distance of each copy to its original, as
`testset check` measures it; then the distances between different drawings of one Pokemon:
sprites of one class from different sources, where the box icon, the menu icon and the gen-7 box
sprite count as one drawing (they are the same pixel art at two sizes). NEAR_DISTANCE must
catch the copies and none of the different drawings. Every image with transparency, whatever its
size, is also copied the naive ways: flattened onto black, grey or a random colour and saved as
JPEG, converted to grayscale, or to a 64-colour palette.
"""

from __future__ import annotations

import csv
import io
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from collector.testset import check as tc

ROOT = Path(__file__).resolve().parent.parent
SIDES = ["test_data", "model_creation/dataset", "model_creation/validation"]
ONE_DRAWING = {"gen7x", "icon", "menu"}
RECOLOURED = {"on black", "on grey", "on a colour", "grayscale", "palette 64"}


def _copies(im: Image.Image) -> dict[str, Image.Image]:
    def crop(f):
        w, h = im.size
        dx, dy = round(w * f), round(h * f)
        return im.crop((dx, dy, w - dx, h - dy))

    def encoded(fmt, q):  # drawn on white, as an editor exports a transparent PNG to JPEG
        flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
        flat.alpha_composite(im.convert("RGBA"))
        b = io.BytesIO()
        flat.convert("RGB").save(b, fmt, quality=q)
        return Image.open(io.BytesIO(b.getvalue()))

    def flattened(colour, mode="RGB"):  # transparency dropped the naive way, saved as JPEG
        flat = Image.new("RGBA", im.size, (*colour, 255))
        flat.alpha_composite(im.convert("RGBA"))
        b = io.BytesIO()
        flat.convert(mode).save(b, "JPEG", quality=85)
        return Image.open(io.BytesIO(b.getvalue()))

    def converted(mode):  # transparency kept
        rgba = im.convert("RGBA")
        return rgba.convert(mode) if mode != "P" else rgba.quantize(colors=64, method=Image.Quantize.FASTOCTREE)

    w, h = im.size
    rng = np.random.default_rng(sum(im.size))
    return {"on black": flattened((0, 0, 0)), "on grey": flattened((128, 128, 128)),
            "on a colour": flattened(tuple(int(x) for x in rng.integers(0, 256, 3))),
            "grayscale": converted("LA"), "palette 64": converted("P"),
            "resized 60%": im.resize((int(w * 0.6), int(h * 0.6)), Image.BILINEAR),
            "resized 150%": im.resize((int(w * 1.5), int(h * 1.5)), Image.BICUBIC),
            "JPEG q40": encoded("JPEG", 40), "WebP q90": encoded("WEBP", 90),
            "cropped 2%": crop(0.02), "cropped 4%": crop(0.04), "cropped 5%": crop(0.05)}


def _hash(im: Image.Image, tmp: Path) -> tuple[int, ...]:
    path = tmp / "x.png"
    im.save(path)
    return tc.perceptual_hashes(str(path))


def main() -> int:
    rows = []
    for side in SIDES:
        with open(ROOT / side / "manifest.csv", newline="") as f:
            rows += [(side, r) for r in csv.DictReader(f)]
    hashes, copies = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, r in rows:
            path = ROOT / side / r["path"]
            h = tc.perceptual_hashes(str(path))
            hashes[(side, r["path"])] = (h, r)
            with Image.open(path) as im:
                im.load()
                transparent = im.convert("RGBA").getextrema()[3][0] < 255
                for name, c in _copies(im).items():
                    if name in RECOLOURED:  # every size; of transparent images only (others are unchanged)
                        if not transparent:
                            continue
                    elif min(im.size) < 64:
                        continue
                    copies.setdefault(name, []).append(tc.hash_distance(h, _hash(c, Path(tmp))))
    print(f"{len(rows)} images; NEAR_DISTANCE = {tc.NEAR_DISTANCE} (bits of 64)")
    print(f"{'copy':14} {'n':>5} {'median':>6} {'p95':>5} {'max':>4} {'caught':>7}")
    for name, d in copies.items():
        a = np.array(d)
        print(f"{name:14} {len(a):5d} {np.median(a):6.0f} {np.percentile(a, 95):5.0f} {a.max():4d} "
              f"{(a <= tc.NEAR_DISTANCE).mean():7.1%}")
    sprites = [(h, r) for h, r in hashes.values() if r["kind"] == "sprite"]

    def drawing(r):
        return "box icon" if r["source"] in ONE_DRAWING else r["source"]

    diff = np.array([tc.hash_distance(a[0], b[0]) for a, b in itertools.combinations(sprites, 2)
                     if a[1]["label"] == b[1]["label"] and drawing(a[1]) != drawing(b[1])])
    print(f"different drawings of one Pokemon: {len(diff)} pairs, min {diff.min()}, "
          f"matched at NEAR_DISTANCE: {(diff <= tc.NEAR_DISTANCE).sum()}; "
          f"<= 6: {(diff <= 6).sum()}, <= 8: {(diff <= 8).sum()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
