"""Choose between one network and the average of several by grouped cross-validation.

    python -m model_creation.cross_validate [--folds 3] [--members 3] [--out cv.json]

The data: the training side only (`model_creation/dataset/` and `model_creation/validation/`),
the five classes of `ml_original`; `test_data/` plays no part. Folds are grouped and stratified
as the split is: photos one by one, sprites by drawing group (the frames of one animation never
sit on both sides), dealt per class in a fixed shuffled order. In each fold, networks with seeds
42, 43, ... are trained on the other folds exactly as `model_creation.train` trains one, and
classify the held-out fold; every training-side image is held out once.

The rule, fixed before the numbers were read: a one-network recipe is judged by what one retrain
gives, its metrics averaged over the seeds; the averaged networks by the metrics of their averaged
probabilities. The average is chosen when its accuracy is at least MIN_GAIN higher and its log-loss
lower; otherwise one network. (A validation split of 80 images cannot tell them apart: one error
is 1.25 points, and which seed drew the luckiest network decides more than the recipe.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from model_server.preprocessing import Preprocessing  # noqa: E402

from .data import load_split, per_class_metrics  # noqa: E402
from .split_data import SEED, TRAIN_DIR, VALIDATION_DIR  # noqa: E402
from .train import BATCH_SIZE, EPOCHS, TRAIN_THREADS, WEIGHT_DECAY, build_export, fit_network, pin_threads  # noqa: E402

LABELS = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle"]
MIN_GAIN = 0.005


def group_key(row: dict) -> str:
    """Images that must stay on one side: a photo alone, or the whole drawing group it is in."""
    return row["sha256"] if row["source"] == "photo" else f"{row['label']}/{row['source']}"


def assign_folds(rows: list[dict], folds: int, seed: int = SEED) -> np.ndarray:
    """Fold of each row: groups dealt round-robin per (label, kind) in a fixed shuffled order."""
    rng = random.Random(seed)  # nosec B311: reproducible folds, not security
    fold_of: dict[str, int] = {}
    # A group's stratum: its label, and "sprite" when it holds a sprite (a photo of the artwork
    # goes with the artwork's sprites).
    stratum_of: dict[str, tuple[str, str]] = {}
    for r in rows:
        key = group_key(r)
        if stratum_of.get(key, ("", ""))[1] != "sprite":
            stratum_of[key] = (r["label"], r["kind"])
    for stratum in sorted(set(stratum_of.values())):
        keys = sorted(k for k, s in stratum_of.items() if s == stratum)
        rng.shuffle(keys)
        start = rng.randrange(folds)  # small strata do not all start on fold 0
        fold_of.update({k: (start + i) % folds for i, k in enumerate(keys)})
    return np.array([fold_of[group_key(r)] for r in rows])


def scores(probs: np.ndarray, y: np.ndarray, photo: np.ndarray) -> dict:
    true_p = probs[np.arange(len(y)), y]
    pred = probs.argmax(1)
    every, photos = per_class_metrics(y, pred, LABELS), per_class_metrics(y[photo], pred[photo], LABELS)
    recall = {lab: c["recall"] for lab, c in every["classes"].items() if c["support"]}
    return {"accuracy": every["accuracy"], "photo_accuracy": photos["accuracy"],
            "min_recall": min(recall.values()), "recall": recall,
            "log_loss": float(-np.mean(np.log(np.clip(true_p, 1e-7, 1.0))))}


def mean_scores(many: list[dict]) -> dict:
    keys = ("accuracy", "photo_accuracy", "min_recall", "log_loss")
    return {k: float(np.mean([s[k] for s in many])) for k in keys} | {
        "recall": {lab: float(np.mean([s["recall"][lab] for s in many])) for lab in many[0]["recall"]}}


def decide(single: dict, averaged: dict, min_gain: float = MIN_GAIN) -> bool:
    """True when the averaged networks win by the rule above."""
    return averaged["accuracy"] >= single["accuracy"] + min_gain and averaged["log_loss"] < single["log_loss"]


def _print_table(seeds: list[int], each: list[dict], single: dict, averaged: dict) -> None:
    """Held-out scores: each network, their mean, and the networks averaged."""
    print(f"\n{'held-out, every training-side image once':44} {'accuracy':>8} {'photos':>7} {'min recall':>10} "
          f"{'log-loss':>8}")
    for s, sc in zip(seeds, each, strict=True):
        print(f"{f'one network, seed {s}':44} {sc['accuracy']:8.3f} {sc['photo_accuracy']:7.3f} "
              f"{sc['min_recall']:10.3f} {sc['log_loss']:8.4f}")
    for name, sc in ((f"one network (mean over {len(seeds)} seeds)", single),
                     (f"{len(seeds)} networks averaged", averaged)):
        print(f"{name:44} {sc['accuracy']:8.3f} {sc['photo_accuracy']:7.3f} {sc['min_recall']:10.3f} "
              f"{sc['log_loss']:8.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One network or the average of several: grouped cross-validation.")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42, help="seed of the first network (the others: +1, +2, ...)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--arch", default="compact")
    ap.add_argument("--out", type=Path, help="write every number as JSON here")
    args = ap.parse_args(argv)
    if args.folds < 2 or args.members < 2:
        ap.error("--folds and --members must be at least 2")

    pin_threads(TRAIN_THREADS)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    spec = Preprocessing()
    parts = [load_split(d, LABELS, spec) for d in (TRAIN_DIR, VALIDATION_DIR)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    rows = [r for p in parts for r in p[2]]
    photo = np.array([r["kind"] == "photo" for r in rows])
    fold = assign_folds(rows, args.folds)
    seeds = [args.seed + i for i in range(args.members)]
    print(f"{len(rows)} training-side images ({int(photo.sum())} photos), {args.folds} folds of "
          f"{np.bincount(fold).tolist()}, networks with seeds {seeds}", flush=True)

    probs = np.zeros((len(seeds), len(y), len(LABELS)), np.float32)
    t0 = time.monotonic()
    for f in range(args.folds):
        held, used = fold == f, fold != f
        for i, s in enumerate(seeds):
            weights, _, _ = fit_network(x[used], y[used], arch=args.arch, num_classes=len(LABELS),
                                        input_shape=x.shape[1:], epochs=args.epochs, batch_size=BATCH_SIZE,
                                        seed=s, weight_decay=WEIGHT_DECAY, verbose=0)
            net = build_export(args.arch, x.shape[1:], len(LABELS), [weights])
            probs[i, held] = net.predict(x[held], batch_size=64, verbose=0)
            print(f"fold {f + 1}/{args.folds}, seed {s}: held-out accuracy "
                  f"{np.mean(probs[i, held].argmax(1) == y[held]):.3f} ({time.monotonic() - t0:.0f} s)", flush=True)

    each = [scores(p, y, photo) for p in probs]
    single = mean_scores(each)
    averaged = scores(probs.mean(0), y, photo)
    choice = decide(single, averaged)
    _print_table(seeds, each, single, averaged)
    print(f"choice: {f'{len(seeds)} networks averaged' if choice else 'one network'} "
          f"(averaged wins when accuracy +{MIN_GAIN} or more and log-loss lower)")
    if args.out:
        args.out.write_text(json.dumps({"folds": args.folds, "seeds": seeds, "n": len(rows),
                                        "fold_sizes": np.bincount(fold).tolist(), "each": each,
                                        "one_network": single, "averaged": averaged,
                                        "choice": "averaged" if choice else "one",
                                        "seconds": round(time.monotonic() - t0)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
