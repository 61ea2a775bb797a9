"""Plant wrong labels in a copy of test_data/ and count what the label suspects find.

    python -m bench.label_suspects [--planted 5] [--seed 0]

Copies `test_data/`, moves `--planted` photos (one per class, chosen by `--seed`) into the folder
of another class of the original models, collects the four shipped models (`ml_original` v2 from
trained_models/archive and v3, `ml_ditto`, `ml_ditto_and_mimikyu`, on real `ml-server`s) into a
scratch SQLite database, and prints how many planted images the suspects list holds and which
other images it names (false suspects, or real doubts about the shipped labels).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, servers
from collector.analysis.suspects import label_suspects
from collector.collect import collect
from collector.storage import store

CLASSES = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]
MODELS = [ROOT / "trained_models" / "archive" / "ml_original_v2", "ml_original", "ml_ditto", "ml_ditto_and_mimikyu"]


def plant(root: Path, n: int, seed: int) -> dict[str, str]:
    """Move n photos to another class's folder; returns new path -> true label."""
    rng = random.Random(seed)
    moved = {}
    for k in range(n):
        true = CLASSES[k % len(CLASSES)]
        photos = sorted(p for p in (root / true).iterdir() if p.suffix in (".jpg", ".png") and "-" not in p.stem)
        src = rng.choice([p for p in photos if f"{true}/{p.name}" not in moved])  # not one planted here
        wrong = rng.choice([c for c in CLASSES if c != true])
        shutil.move(src, root / wrong / src.name)
        moved[f"{wrong}/{src.name}"] = true
    return moved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planted", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-suspects-") as tmp:
        data = Path(tmp) / "test_data"
        shutil.copytree(ROOT / "test_data", data)
        (data / "manifest.csv").unlink()  # it names the old paths; kinds fall back to photo
        planted = plant(data, args.planted, args.seed)
        engine = store.make_engine(f"sqlite:///{tmp}/suspects.db")
        store.ensure_schema(engine)
        with servers(MODELS) as urls:
            for r in collect(urls, engine=engine, test_dir=data, say=lambda m: None):
                assert r.status == "completed", r.error
        with engine.connect() as conn:
            suspects = label_suspects(conn)
    named = {s["path"]: s for s in suspects}
    found = [p for p in planted if p in named]
    print(f"planted {len(planted)} wrong labels (seed {args.seed}); suspects: {len(suspects)}")
    for p, true in planted.items():
        s = named.get(p)
        how = f"found: suggested {s['suggested']}, {s['flagged_by']} of {s['seen_by']} models" if s else "missed"
        print(f"  {p} (really {true}): {how}")
    others = [s for s in suspects if s["path"] not in planted]
    for s in others:
        print(f"  other suspect: {s['path']} labelled {s['label']}, suggested {s['suggested']} "
              f"({s['flagged_by']} of {s['seen_by']})")
    print(f"found {len(found)} of {len(planted)}; other suspects: {len(others)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
