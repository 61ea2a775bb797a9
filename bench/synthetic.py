"""Synthetic labelled images and a real tiny Keras model that classifies them (tests and benchmarks)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

COLORS = {"red": (230, 20, 20), "green": (20, 200, 30), "blue": (20, 30, 220)}


def color_png(rgb: tuple[int, int, int], *, size: int = 24, seed: int = 0) -> bytes:
    """A noisy square of one colour: distinct bytes per seed, same class."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb, np.int16) + rng.integers(-15, 16, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def write_color_model(out: Path, labels: list[str], *, name: str = "colors", version: str = "1",
                      swap: tuple[str, str] | None = None, scale: float = 12.0,
                      channels: dict[str, int] | None = None) -> Path:
    """A real Keras model that classifies a square by its mean colour.

    `swap=("green", "blue")` sends green images to blue: a candidate with one class broken.
    `channels` names the class of each colour channel (default: red 0, green 1, blue 2).
    """
    import keras
    from keras import layers

    from model_creation.create_config import create_config
    from model_server.model import MODEL_FILE
    from model_server.preprocessing import Preprocessing

    spec = Preprocessing(height=16, width=16)
    inputs = keras.Input((16, 16, 3))
    x = layers.GlobalAveragePooling2D()(inputs)
    outputs = layers.Dense(len(labels), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    w = np.zeros((3, len(labels)), np.float32)
    b = np.zeros(len(labels), np.float32)
    channel = channels or {"red": 0, "green": 1, "blue": 2}
    for j, lab in enumerate(labels):
        if lab in channel:
            w[channel[lab], j] = scale
            b[j] = -scale / 2
        if swap and lab == swap[1]:
            w[channel[swap[0]], j] = scale  # e.g. blue's output also fires on green images
        if swap and lab == swap[0]:
            w[:, j] = 0.0
            b[j] = -scale
    model.layers[-1].set_weights([w, b])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    create_config(out, name=name, version=version, labels=labels, spec=spec, architecture="color-probe",
                  training_data_hash="0" * 64, seed=0, metrics={})
    return out
