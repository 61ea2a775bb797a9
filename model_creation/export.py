"""`python -m model_creation.export DIR [DIR ...]`: write `model.tflite` for a trained model folder.

Converts `model.keras` with TensorFlow's LiteRT converter, checks that both give the same
probabilities on a fixed batch, and records in `config.json` (key `tflite`) what the server
checks before it serves the export: the file's sha256, the fingerprint of the Keras weights it
came from, the sha256 of `model.keras` at export time and a digest of the labels and
preprocessing. Needs TensorFlow; serving the result does not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from model_server.model import (  # noqa: E402
    CONFIG_FILE,
    EXPORT_KEY,
    MODEL_FILE,
    TFLITE_FILE,
    KerasRuntime,
    LiteRTRuntime,
    ModelFolderError,
    file_sha256,
    fingerprint,
    prediction_config_digest,
    read_config,
)
from model_server.preprocessing import Preprocessing  # noqa: E402

from .create_config import export_card_line  # noqa: E402

CARD_FILE = "MODEL_CARD.md"
MAX_ABS_DIFF = 1e-4  # largest probability difference accepted between the two runtimes
CHECK_IMAGES = 16


def convert(keras_model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # the converter prints every traced variable
        return converter.convert()


def export(model_dir: Path) -> dict:
    """Write `model.tflite` next to `model.keras` and its record into `config.json`; returns the record."""
    import tensorflow as tf

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    labels = list(config["labels"])
    spec = Preprocessing.from_dict(config["preprocessing"])
    keras_path = model_dir / MODEL_FILE
    if not keras_path.is_file():
        raise ModelFolderError(f"{keras_path} not found")
    keras_runtime = KerasRuntime(keras_path, spec)
    data = convert(keras_runtime.keras_model)
    out = model_dir / TFLITE_FILE
    tmp = out.with_suffix(".tflite.tmp")
    tmp.write_bytes(data)
    try:
        batch = np.random.default_rng(0).random((CHECK_IMAGES, spec.height, spec.width, 3), dtype=np.float32)
        diff = float(np.abs(LiteRTRuntime(tmp, spec).predict(batch) - keras_runtime.predict(batch)).max())
        if diff > MAX_ABS_DIFF:
            raise ModelFolderError(f"the LiteRT export differs from {MODEL_FILE} by {diff:.2g} (limit {MAX_ABS_DIFF})")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    record = {
        "file": TFLITE_FILE,
        "sha256": file_sha256(out),
        "bytes": out.stat().st_size,
        "keras_fingerprint": fingerprint(keras_runtime.weights(), labels, spec),
        "keras_sha256": file_sha256(keras_path),
        "config_digest": prediction_config_digest(labels, spec),
        "converter": f"tensorflow {tf.__version__}",
        "max_abs_diff_check": float(f"{diff:.3g}"),
    }
    config[EXPORT_KEY] = record
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    _update_card(model_dir / CARD_FILE, export_card_line(record))
    return record


def _update_card(card: Path, line: str) -> None:
    """Replace the card's export line, or add it after the fingerprint."""
    if not card.is_file():
        return
    lines = card.read_text().splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith("- LiteRT export:")), None)
    if at is not None:
        lines[at] = line
    else:
        at = next((i for i, ln in enumerate(lines) if ln.startswith("- Fingerprint:")), len(lines) - 1)
        lines.insert(at + 1, line)
    card.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_creation.export", description=__doc__.split("\n")[0])
    ap.add_argument("model_dirs", nargs="+", type=Path, metavar="DIR", help="model folder(s) holding model.keras")
    args = ap.parse_args(argv)
    status = 0
    for d in args.model_dirs:
        try:
            r = export(d)
        except ModelFolderError as e:
            print(f"error: {d}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{d / TFLITE_FILE}: {r['bytes'] / 1e6:.2f} MB, sha256 {r['sha256'][:12]}, "
              f"weights {r['keras_fingerprint'][:12]}, max abs difference {r['max_abs_diff_check']:.2g}")
    return status


if __name__ == "__main__":
    sys.exit(main())
