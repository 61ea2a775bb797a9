"""`testset check` on 10,000 images: cold (every hash computed) and warm (the hash cache).

    python -m bench.bench_testset_check [--images 10000]

The images are 96x96 PNG drawings (bench_testset_check.drawing: random shapes, each its own),
20 classes, against a training folder of a tenth as many; every match the check reports between
them is a false one (the perceptual hash sees luminance and layout: two large plain shapes in one
place can meet). The baseline, in the same run, is the
sha256 scan of the same folders that every collection makes (testset.scan): the check's time is
printed as seconds and as a ratio to it.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from collector.testset import images as testset
from collector.testset.check import check


def drawing(seed: int, size: int = 96) -> Image.Image:
    rng = random.Random(seed)
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = rng.randrange(size - 20), rng.randrange(size - 20)
        box = (x0, y0, x0 + rng.randrange(12, size - x0), y0 + rng.randrange(12, size - y0))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


def write(root: Path, n: int, seed: int, classes: int = 20) -> None:
    for i in range(n):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        drawing(seed + i).save(folder / f"{i:05d}.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    n = ap.parse_args(argv).images
    with tempfile.TemporaryDirectory(prefix="bench-testset-") as tmp:
        test, train, cache_path = Path(tmp) / "test", Path(tmp) / "train", Path(tmp) / "cache.sqlite3"
        t = time.perf_counter()
        write(test, n, 0)
        write(train, n // 10, 10_000_000)
        print(f"wrote {n} + {n // 10} images in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        testset.scan(test)
        testset.scan(train)
        base = time.perf_counter() - t
        runs = {}
        for name in ("cold", "warm"):
            cache = testset.HashCache(cache_path)
            t = time.perf_counter()
            r = check(test, [train], cache=cache)
            runs[name] = time.perf_counter() - t
            cache.close()
            false = [f for f in r["findings"] if f["kind"] in ("conflicting-labels", "leaked", "near-duplicates")]
            print(f"{name}: {runs[name]:.1f} s ({runs[name] / base:.1f}x the sha256 scan of {base:.2f} s); "
                  f"{r['hashes_computed']} perceptual hashes computed; false matches between different "
                  f"drawings: {len(false)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
