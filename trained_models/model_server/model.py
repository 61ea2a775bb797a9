"""A model folder loaded for inference, with its fingerprint, on one of two backends.

- `keras`: `model.keras` through TensorFlow (a graph-compiled forward pass);
- `litert`: `model.tflite` through the LiteRT interpreter (no TensorFlow in the process).

Identity is the Keras weight fingerprint either way. The `.tflite` file is an export of exactly
those weights: `model_creation.export` records its sha256 and the fingerprint of the weights it
was converted from in `config.json` (`tflite`), and the loader checks both before serving it.
`MODEL_BACKEND=auto` (the default) serves LiteRT when the export is there and checks out, else
Keras; see `load_model_folder`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .preprocessing import Preprocessing
from .settings import ServerSettings

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
CONFIG_FILE = "config.json"
EXPORT_KEY = "tflite"  # the export record in config.json
BACKENDS = ("auto", "litert", "keras")
_DEFAULTS = ServerSettings.model_fields
LITERT_THREADS = _DEFAULTS["litert_threads"].default
LITERT_SLICE = _DEFAULTS["litert_slice"].default  # images per interpreter call

log = logging.getLogger("model_server")


class ModelFolderError(RuntimeError):
    """The model folder is missing files or its config is inconsistent."""


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def fingerprint(weights: list[np.ndarray], labels: list[str], spec: Preprocessing) -> str:
    """sha256 over weight values in layer order plus the prediction-relevant config.

    Values, not file bytes: a `.keras` file is a zip whose bytes change on every re-save.
    """
    h = hashlib.sha256()
    for w in weights:
        a = np.ascontiguousarray(w)
        h.update(canonical_json({"dtype": a.dtype.str, "shape": list(a.shape)}))
        h.update(a.tobytes())
    h.update(canonical_json({"labels": list(labels), "preprocessing": spec.to_dict()}))
    return h.hexdigest()


def prediction_config_digest(labels: list[str], spec: Preprocessing) -> str:
    """What of config.json enters the fingerprint besides the weights (labels, preprocessing)."""
    return hashlib.sha256(canonical_json({"labels": list(labels), "preprocessing": spec.to_dict()})).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(model_dir: Path) -> dict:
    path = Path(model_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path} not found: is {model_dir} a model folder?") from None
    except json.JSONDecodeError as e:
        raise ModelFolderError(f"{path} is not valid JSON: {e}") from None
    for key in ("name", "labels", "preprocessing"):
        if key not in config:
            raise ModelFolderError(f"{path} lacks the field {key!r}")
    return config


@dataclass
class LoadedModel:
    name: str
    version: str
    labels: list[str]
    spec: Preprocessing
    fingerprint: str
    backend: str  # "keras" or "litert": what answers predict()
    runtime: object  # has predict(batch) -> probabilities
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # why this backend (logged at start)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """One batched forward pass; returns probabilities (N, len(labels))."""
        return np.asarray(self.runtime.predict(np.asarray(batch, dtype=np.float32)), dtype=np.float32)

    @property
    def keras_model(self):
        return getattr(self.runtime, "keras_model", None)

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "labels": list(self.labels),
            "input": {"height": self.spec.height, "width": self.spec.width, "channels": 3},
            "preprocessing": self.spec.to_dict(),
            "backend": self.backend,
            "framework": {"name": self.backend, **self.runtime.versions(),
                          "architecture": self.config.get("architecture")},
        }


class KerasRuntime:
    """`model.keras` behind a `tf.function` for any batch size (about 2x faster than eager on CPU)."""

    def __init__(self, path: Path, spec: Preprocessing):
        import keras
        import tensorflow as tf

        self.keras_model = keras.saving.load_model(path, compile=False)
        sig = [tf.TensorSpec([None, spec.height, spec.width, 3], tf.float32)]
        self._call = tf.function(lambda x: self.keras_model(x, training=False), input_signature=sig)

    @property
    def outputs(self) -> int:
        return int(self.keras_model.output_shape[-1])

    def weights(self) -> list[np.ndarray]:
        return self.keras_model.get_weights()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch))

    @staticmethod
    def versions() -> dict:
        import keras
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__}


class LiteRTRuntime:
    """`model.tflite` in the LiteRT interpreter (XNNPACK on CPU).

    One interpreter per process; it is not thread-safe, so calls are serialised (gunicorn threads
    decode images in parallel, the forward pass is one at a time; XNNPACK uses LITERT_THREADS
    cores for it). A batch runs in slices of at most LITERT_SLICE images: the interpreter's
    activation memory grows with the batch it is sized for (about 0.6 MB per 96x96 image here,
    so 150 MB at MAX_BATCH 256), and slices of 16 cost no measurable throughput.
    """

    def __init__(self, path: Path, spec: Preprocessing, threads: int = LITERT_THREADS, slice_: int = LITERT_SLICE):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._it = Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as e:
            raise ModelFolderError(f"{path} is not a loadable LiteRT model: {e}") from None
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFolderError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]
        want = [spec.height, spec.width, 3]
        if list(inputs[0]["shape_signature"][1:]) != want or inputs[0]["dtype"] != np.float32:
            raise ModelFolderError(f"{path}: input is {inputs[0]['dtype'].__name__} "
                                   f"{list(inputs[0]['shape_signature'])}, config says float32 [-1, {want}]")
        self.outputs = int(outputs[0]["shape_signature"][-1])
        self.slice, self.threads = max(1, slice_), threads
        self._size = None
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            return np.concatenate([self._invoke(batch[i:i + self.slice]) for i in range(0, len(batch), self.slice)])

    def _invoke(self, part: np.ndarray) -> np.ndarray:
        if part.shape[0] != self._size:  # the activation arena is sized for the slice, not the request
            self._it.resize_tensor_input(self._in, list(part.shape), strict=False)
            self._it.allocate_tensors()
            self._size = part.shape[0]
        self._it.set_tensor(self._in, part)
        self._it.invoke()
        return self._it.get_tensor(self._out).copy()

    @staticmethod
    def versions() -> dict:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"litert": version("ai-edge-litert")}
        except PackageNotFoundError:
            return {}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _keras_fingerprint(runtime: KerasRuntime, labels: list[str], spec: Preprocessing) -> str:
    return fingerprint(runtime.weights(), labels, spec)


def check_export(model_dir: Path, config: dict, labels: list[str], spec: Preprocessing) -> tuple[dict | None, str]:
    """The export record if `model.tflite` is usable as recorded, else (None, why not)."""
    record = config.get(EXPORT_KEY)
    path = model_dir / TFLITE_FILE
    if not path.is_file():
        return None, f"no {TFLITE_FILE} in {model_dir}"
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("sha256", "keras_fingerprint")):
        return None, f"{CONFIG_FILE} has no '{EXPORT_KEY}' record for {TFLITE_FILE} (export it: " \
                     f"python -m model_creation.export {model_dir})"
    actual = file_sha256(path)
    if actual != record["sha256"]:
        return None, (f"{TFLITE_FILE} has sha256 {actual[:12]}, {CONFIG_FILE} records {record['sha256'][:12]}: "
                      "it is not the file that was exported")
    if record.get("config_digest") != prediction_config_digest(labels, spec):
        return None, (f"the labels or preprocessing in {CONFIG_FILE} changed since {TFLITE_FILE} was exported: "
                      "export again")
    return record, ""


def requested_backend(value: str | None = None) -> str:
    """`value`, else the settings' (MODEL_BACKEND, default `auto`); checked."""
    requested = (value or ServerSettings.from_env().model_backend or "auto").strip().lower()
    if requested not in BACKENDS:
        raise ModelFolderError(f"MODEL_BACKEND must be one of {', '.join(BACKENDS)}, got {requested!r}")
    return requested


def load_model_folder(model_dir: str | os.PathLike, backend: str | None = None, *,
                      settings: ServerSettings | None = None) -> LoadedModel:
    """Load a model folder on `backend` (`auto`, `litert`, `keras`; default: the settings' MODEL_BACKEND);
    LiteRT with the settings' threads and slice (default: ServerSettings.from_env())."""
    model_dir = Path(model_dir)
    settings = settings or ServerSettings.from_env()
    requested, notes = requested_backend(backend or settings.model_backend), []
    litert = {"threads": settings.litert_threads, "slice_": settings.litert_slice}
    config = read_config(model_dir)
    labels = list(config["labels"])
    try:
        spec = Preprocessing.from_dict(config["preprocessing"])
    except (TypeError, ValueError) as e:
        raise ModelFolderError(f"{model_dir / CONFIG_FILE}: preprocessing: {e}") from None
    keras_path = model_dir / MODEL_FILE

    record, why_not = check_export(model_dir, config, labels, spec) if requested != "keras" else (None, "")
    if requested == "litert":
        if record is None:
            raise ModelFolderError(f"MODEL_BACKEND=litert: {why_not}")
        if not _installed("ai_edge_litert"):
            raise ModelFolderError("MODEL_BACKEND=litert: the LiteRT runtime is not installed "
                                   "(pip install ai-edge-litert)")
        if keras_path.is_file() and record.get("keras_sha256") not in (None, file_sha256(keras_path)):
            notes.append(f"{MODEL_FILE} changed since the export; serving the exported weights "
                         f"(fingerprint {record['keras_fingerprint'][:12]}); MODEL_BACKEND=auto would check them")
        return _litert(model_dir, config, labels, spec, record, notes, **litert)

    keras_runtime = None
    if requested == "auto":
        record, why_not, keras_runtime = _usable_export(model_dir, record, why_not, spec, labels, notes)
        if record is not None:
            return _litert(model_dir, config, labels, spec, record, notes, **litert)
        if (model_dir / TFLITE_FILE).is_file() or config.get(EXPORT_KEY):  # an export that cannot be used
            notes.append(f"serving Keras: {why_not}")

    if not keras_path.is_file():
        raise ModelFolderError(f"{keras_path} not found" + (f" ({why_not})" if why_not else ""))
    if not _installed("tensorflow"):
        raise ModelFolderError(f"{model_dir} can only be served by Keras ({why_not or 'MODEL_BACKEND=keras'}), "
                               "and TensorFlow is not installed")
    keras_runtime = keras_runtime or _keras_runtime(keras_path, spec, labels)
    model = LoadedModel(name=config["name"], version=str(config.get("version", "0")), labels=labels, spec=spec,
                        fingerprint=_keras_fingerprint(keras_runtime, labels, spec), backend="keras",
                        runtime=keras_runtime, config=config, notes=notes)
    model.predict(np.zeros((1, spec.height, spec.width, 3), np.float32))  # trace now, not on request 1
    return model


def _usable_export(model_dir: Path, record: dict | None, why_not: str, spec: Preprocessing, labels: list[str],
                   notes: list[str]) -> tuple[dict | None, str, KerasRuntime | None]:
    """MODEL_BACKEND=auto: the export record still usable (or None and why not), and the Keras
    runtime when loading it was how the export was checked."""
    keras_path = model_dir / MODEL_FILE
    if record is not None and not _installed("ai_edge_litert"):
        return None, "the LiteRT runtime is not installed", None
    if record is None or not keras_path.is_file() or record.get("keras_sha256") == file_sha256(keras_path):
        return record, why_not, None
    # model.keras was re-saved or retrained after the export: are they still the same weights?
    if not _installed("tensorflow"):
        notes.append(f"{MODEL_FILE} changed since the export and TensorFlow is not installed to check it; "
                     f"serving the exported weights (fingerprint {record['keras_fingerprint'][:12]})")
        return record, why_not, None
    keras_runtime = _keras_runtime(keras_path, spec, labels)
    current = _keras_fingerprint(keras_runtime, labels, spec)
    if current == record["keras_fingerprint"]:
        return record, why_not, None  # same weights, re-saved: the export is good
    return None, (f"{TFLITE_FILE} is stale: it was exported from weights {record['keras_fingerprint'][:12]}, "
                  f"{MODEL_FILE} now holds {current[:12]} (export again: python -m model_creation.export "
                  f"{model_dir})"), keras_runtime


def _keras_runtime(path: Path, spec: Preprocessing, labels: list[str]) -> KerasRuntime:
    runtime = KerasRuntime(path, spec)
    if runtime.outputs != len(labels):
        raise ModelFolderError(f"{path} has {runtime.outputs} outputs but config lists {len(labels)} labels")
    return runtime


def _litert(model_dir: Path, config: dict, labels: list[str], spec: Preprocessing, record: dict,
            notes: list[str], *, threads: int, slice_: int) -> LoadedModel:
    path = model_dir / TFLITE_FILE
    runtime = LiteRTRuntime(path, spec, threads, slice_)
    if runtime.outputs != len(labels):
        raise ModelFolderError(f"{path} has {runtime.outputs} outputs but config lists {len(labels)} labels")
    model = LoadedModel(name=config["name"], version=str(config.get("version", "0")), labels=labels, spec=spec,
                        fingerprint=record["keras_fingerprint"], backend="litert", runtime=runtime,
                        config=config, notes=notes)
    model.predict(np.zeros((1, spec.height, spec.width, 3), np.float32))
    return model
