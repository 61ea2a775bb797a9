"""Train one Pokemon classifier and write a complete model folder.

    python -m model_creation.train --labels bulbasaur charmander mewtwo pikachu squirtle \
        --out trained_models/ml_original

Story: load data (serving preprocessing) -> balance scarce classes -> augment with Keras
preprocessing layers -> train (AdamW, cosine schedule) -> evaluate on the validation split and on
test_data -> export the model without optimizer state -> config.json, training-curve plot,
MODEL_CARD.md.

`--members K` trains K networks with seeds SEED, SEED+1, ... (each exactly as a one-network run
with that seed would train it) and ships them as one model that averages their probabilities.

Recipe choices are made on the training side: the validation split (`--no-test` evaluates only
there) or `model_creation.cross_validate` (folds over training and validation data); the test
numbers are computed once, by the run that produces the shipped model.
`--remove pikachu:0.75` drops a fixed subset (by content hash, the same for every seed) of one
class's training images: the deliberately degraded retrains of the gate study.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from collector.formatting import num  # noqa: E402
from model_server.model import CONFIG_FILE, MODEL_FILE, fingerprint  # noqa: E402
from model_server.preprocessing import Preprocessing  # noqa: E402

from .architectures import ARCHITECTURES, make_model  # noqa: E402
from .create_config import create_config, write_model_card  # noqa: E402
from .data import data_hash, load_split, per_class_metrics  # noqa: E402
from .export import export as export_tflite  # noqa: E402
from .split_data import TEST_DIR, TRAIN_DIR, VALIDATION_DIR  # noqa: E402

SEED = 42
EPOCHS = 120
BATCH_SIZE = 32
LEARNING_RATE = 3e-3
WARMUP_EPOCHS = 3
LABEL_SMOOTHING = 0.05
MIN_CLASS_SHARE = 0.6  # oversample every class to >= 60% of the largest one
WEIGHT_DECAY = 0.005  # decoupled (AdamW); BatchNorm and biases excluded
# TensorFlow's default is one thread per core, and the summation order of its kernels follows
# the thread count: pinned, the weights do not depend on how many cores the machine has.
TRAIN_THREADS = 2
# CPU features that decide which kernels oneDNN runs (and so the float summation order).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512dq",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
KERNEL_ENV = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
              "OMP_NUM_THREADS")


def pin_threads(n: int = TRAIN_THREADS) -> bool:
    """Fix TensorFlow's thread pools; False when the runtime was already started (then unpinned)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
        return True
    except RuntimeError:  # TensorFlow already ran an op in this process (e.g. inside a test session)
        return False


def platform_facts(*, threads: int, pinned: bool) -> dict:
    """What decides whether another machine reproduces these weights bit for bit."""
    import platform

    cpu, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "isa_flags": [f for f in ISA_FLAGS if f in flags],
            "threads": {"intra_op": threads if pinned else "default (one per core)",
                        "inter_op": threads if pinned else "default (one per core)"},
            "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}}


def balanced_indices(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices that repeat scarce classes (mimikyu has four training sprites) up to a floor."""
    counts = np.bincount(y)
    floor = int(counts.max() * MIN_CLASS_SHARE)
    parts = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(y == c)
        if 0 < n < floor:
            idx = np.concatenate([idx, rng.choice(idx, floor - n, replace=True)])
        parts.append(idx)
    return np.concatenate(parts)


def augmenter(seed: int):
    import keras
    from keras import layers

    # Fill with 1.0 (white): the background the preprocessing composites transparency onto.
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.08, fill_mode="constant", fill_value=1.0, seed=seed),
        layers.RandomZoom((-0.25, 0.15), fill_mode="constant", fill_value=1.0, seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=1.0, seed=seed),
        layers.RandomContrast(0.25, value_range=(0.0, 1.0), seed=seed),
        layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed),
    ], name="augment")


def make_dataset(x: np.ndarray, y: np.ndarray, num_classes: int, batch_size: int, seed: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, num_classes)))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def with_augmentation(model, input_shape: tuple[int, int, int], seed: int):
    """The model behind augmentation layers (active only in training); `model` is what ships."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Lambda(lambda t: keras.ops.clip(t, 0.0, 1.0))(augmenter(seed)(inputs))
    return keras.Model(inputs, model(x), name="train_" + model.name)


def remove_fraction(rows: list[dict], label: str, fraction: float) -> list[dict]:
    """`rows` without the first `fraction` of `label`'s images in content-hash order (a fixed subset)."""
    if not 0.0 < fraction < 1.0:
        raise SystemExit(f"error: --remove {label}:{fraction}: the fraction must be between 0 and 1 (exclusive)")
    of_label = sorted((r for r in rows if r["label"] == label), key=lambda r: r["sha256"])
    if not of_label:
        raise SystemExit(f"error: --remove {label}: no training images of that label")
    dropped = {r["sha256"] for r in of_label[:round(len(of_label) * fraction)]}
    return [r for r in rows if not (r["label"] == label and r["sha256"] in dropped)]


def parse_removals(specs: list[str]) -> dict[str, float]:
    out = {}
    for spec in specs:
        label, _, frac = spec.partition(":")
        try:
            out[label] = float(frac)
        except ValueError:
            out[label] = float("nan")
        if not label or out[label] != out[label]:  # no label, or not a number (NaN included)
            raise SystemExit(f"error: --remove {spec!r}: expected LABEL:FRACTION, e.g. pikachu:0.75")
    return out


def evaluate(model, labels: list[str], spec: Preprocessing, test_dir: Path) -> dict:
    metrics = {}
    for subset, kinds in (("photos", ("photo",)), ("sprites", ("sprite",)), ("all", ("photo", "sprite"))):
        x, y, _ = load_split(test_dir, labels, spec, kinds)
        pred = np.argmax(model.predict(x, batch_size=64, verbose=0), axis=1) if len(x) else y
        metrics[subset] = per_class_metrics(y, pred, labels)
    return metrics


def save_plot(histories: list[dict], seeds: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for history, seed in zip(histories, seeds, strict=True):
        which = f" (seed {seed})" if len(seeds) > 1 else ""
        a1.plot(history["loss"], label="train loss" + which)
        a2.plot(history["accuracy"], label="train accuracy (augmented)" + which)
    for ax in (a1, a2):
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fit_network(x: np.ndarray, y: np.ndarray, *, arch: str, num_classes: int, input_shape: tuple[int, int, int],
                epochs: int, batch_size: int, seed: int, weight_decay: float, verbose: int):
    """One network trained from scratch with `seed`: the same weights whatever was trained before it."""
    import keras

    keras.backend.clear_session()  # fresh layer names and random state, as in a new process
    keras.utils.set_random_seed(seed)
    idx = balanced_indices(y, np.random.default_rng(seed))
    ds = make_dataset(x[idx], y[idx], num_classes, batch_size, seed)
    model = make_model(arch, input_shape, num_classes)
    steps_per_epoch = int(np.ceil(len(idx) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        LEARNING_RATE / 10, decay_steps=steps_per_epoch * epochs, warmup_target=LEARNING_RATE,
        warmup_steps=steps_per_epoch * WARMUP_EPOCHS)
    trainer = with_augmentation(model, input_shape, seed)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    trainer.compile(optimizer=optimizer,
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
                    metrics=["accuracy"])
    history = trainer.fit(ds, epochs=epochs, verbose=verbose, shuffle=False).history  # ds shuffles itself
    return model.get_weights(), history, int(len(idx))


def build_export(arch: str, input_shape: tuple[int, int, int], num_classes: int, weights: list[list[np.ndarray]]):
    """The model that ships: fresh, uncompiled networks carrying the trained weights (no optimizer
    state); several are averaged (one input, one `probabilities` output)."""
    import keras
    from keras import layers

    keras.backend.clear_session()
    nets = []
    for w in weights:
        net = make_model(arch, input_shape, num_classes)
        net.set_weights(w)
        nets.append(net)
    if len(nets) == 1:
        return nets[0]
    inputs = keras.Input(shape=input_shape, name="image")
    outs = [keras.Model(net.input, net.output, name=f"member_{i}")(inputs) for i, net in enumerate(nets)]
    outputs = layers.Average(name="probabilities")(outs)
    return keras.Model(inputs, outputs, name=f"{arch}_x{len(nets)}")


def _training_data(train_dir: Path, labels: list[str], spec: Preprocessing,
                   remove: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The training images of `labels`, less the fraction of a class `remove` names (a study's retrain)."""
    x, y, rows = load_split(train_dir, labels, spec)
    for label, fraction in (remove or {}).items():
        kept = {r["sha256"] for r in remove_fraction(rows, label, fraction)}
        keep = np.array([r["sha256"] in kept for r in rows], dtype=bool)
        x, y, rows = x[keep], y[keep], [r for r, k in zip(rows, keep, strict=True) if k]
    missing = sorted(set(labels) - {r["label"] for r in rows})
    if missing:
        raise SystemExit(f"error: no training images for {missing} in {train_dir}")
    return x, y, rows


def train(*, labels: list[str], out: Path, name: str | None = None, version: str = "1",
          arch: str = "compact", epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, seed: int = SEED,
          members: int = 1, train_dir: Path = TRAIN_DIR, test_dir: Path | None = TEST_DIR,
          validation_dir: Path | None = VALIDATION_DIR, command: str = "", verbose: int = 2,
          weight_decay: float = WEIGHT_DECAY, remove: dict[str, float] | None = None) -> dict:
    if members < 1:
        raise SystemExit(f"error: --members {members}: at least one network")
    pinned = pin_threads(TRAIN_THREADS)  # before TensorFlow runs anything
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # same data, seed and versions: same weights
    spec = Preprocessing()
    labels = list(labels)
    name = name or out.name

    x, y, rows = _training_data(train_dir, labels, spec, remove)
    input_shape = (spec.height, spec.width, 3)
    seeds = [seed + i for i in range(members)]
    weights, histories = [], []
    for s in seeds:
        if members > 1 and verbose:
            print(f"network {len(weights) + 1} of {members} (seed {s})", flush=True)
        w, history, n_balanced = fit_network(x, y, arch=arch, num_classes=len(labels), input_shape=input_shape,
                                             epochs=epochs, batch_size=batch_size, seed=s,
                                             weight_decay=weight_decay, verbose=verbose)
        weights.append(w)
        histories.append(history)

    export = build_export(arch, input_shape, len(labels), weights)
    out.mkdir(parents=True, exist_ok=True)
    export.save(out / MODEL_FILE)

    metrics = evaluate(export, labels, spec, test_dir) if test_dir else {}
    validation = (evaluate(export, labels, spec, validation_dir)
                  if validation_dir and (validation_dir / "manifest.csv").is_file() else {})
    config = create_config(
        out, name=name, version=version, labels=labels, spec=spec, architecture=arch,
        training_data_hash=data_hash(rows), seed=seed, metrics=metrics, validation_metrics=validation,
        training={"epochs": epochs, "batch_size": batch_size, "learning_rate": LEARNING_RATE,
                  "schedule": "cosine with warmup", "label_smoothing": LABEL_SMOOTHING,
                  "weight_decay": weight_decay, "deterministic_ops": True,
                  "train_images": len(rows), "balanced_samples_per_epoch": n_balanced,
                  **({"members": members, "member_seeds": seeds} if members > 1 else {}),
                  **({"removed": remove} if remove else {}),
                  "platform": platform_facts(threads=TRAIN_THREADS, pinned=pinned)})
    export_tflite(out)  # model.tflite for the LiteRT backend, recorded in config.json
    config = json.loads((out / CONFIG_FILE).read_text())
    save_plot(histories, seeds, out / "training.png",
              f"{name} ({arch}" + (f", {members} networks averaged)" if members > 1 else ")"))
    write_model_card(out, config, fingerprint=fingerprint(export.get_weights(), labels, spec),
                     command=command or "python -m model_creation.train " + shlex.join(
                         ["--labels", *labels, "--out", str(out), "--arch", arch, "--epochs", str(epochs),
                          "--members", str(members)]),
                     n_params=export.count_params(), model_bytes=(out / MODEL_FILE).stat().st_size)
    return config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train one classifier into a model folder.")
    ap.add_argument("--labels", nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", help="model name (default: the folder name)")
    ap.add_argument("--version", default="1")
    ap.add_argument("--arch", default="compact", choices=sorted(ARCHITECTURES))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    ap.add_argument("--seed", type=int, default=SEED, help="seed of the first network (the others: +1, +2, ...)")
    ap.add_argument("--members", type=int, default=1,
                    help="train this many networks (seeds SEED, SEED+1, ...) and average their probabilities")
    ap.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    ap.add_argument("--remove", action="append", default=[], metavar="LABEL:FRACTION",
                    help="drop a fixed subset of one class's training images (repeatable)")
    ap.add_argument("--no-test", action="store_true",
                    help="evaluate on the validation split only (recipe selection)")
    args = ap.parse_args(argv)
    command = "python -m model_creation.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    config = train(labels=args.labels, out=args.out, name=args.name, version=args.version, arch=args.arch,
                   epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, members=args.members,
                   command=command,
                   weight_decay=args.weight_decay, remove=parse_removals(args.remove),
                   test_dir=None if args.no_test else TEST_DIR)
    for where, metrics in (("validation", config.get("validation_metrics", {})), ("test", config["metrics"])):
        for subset, m in metrics.items():
            if m["n"]:
                recalls = ", ".join(f"{k} {num(v['recall'], 2)}" for k, v in m["classes"].items() if v["support"])
                print(f"{where} {subset}: accuracy {num(m['accuracy'])} (n={m['n']}); recall: {recalls}")


if __name__ == "__main__":
    main()
