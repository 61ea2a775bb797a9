"""The data plane: the one model behind every API, its loading, its limits and its forward pass.

The REST and Open Inference Protocol blueprints are thin: they parse their wire format into
encoded images or a float tensor, call `DataPlane`, and encode the answer. Batch limits,
image decoding and metrics live here, once.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .model import LoadedModel, load_model_folder
from .observability import Metrics
from .preprocessing import ImageError, preprocess_bytes
from .settings import ServerSettings

log = logging.getLogger("model_server")


class ApiError(Exception):
    """An error answered as JSON `{"error": message, **extra}` with an HTTP status."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


class DataPlane:
    """Loads the model once (optionally in the background) and runs every inference."""

    def __init__(self, settings: ServerSettings, loader=load_model_folder):
        self.settings = settings
        self.metrics = Metrics()
        self.model: LoadedModel | None = None
        self.error: str | None = None
        self._loader = loader
        self._thread: threading.Thread | None = None

    # ---- loading ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.load_async:
            self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
            self._thread.start()
        else:
            self._load()
            if self.error:
                raise RuntimeError(self.error)

    def _load(self) -> None:
        try:
            self.model = self._loader(self.settings.model_dir)
            for note in getattr(self.model, "notes", []):
                log.warning("%s", note)
            log.info("loaded %s v%s (%s) on %s", self.model.name, self.model.version, self.model.fingerprint[:12],
                     getattr(self.model, "backend", "?"))
        except Exception as e:  # reported on /health; the process stays up to say why
            self.error = f"model could not be loaded from {self.settings.model_dir!r}: {e}"
            log.error(self.error)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    def get(self) -> LoadedModel:
        if self.model is None:
            raise ApiError(503, self.error or "model is still loading")
        return self.model

    def model_named(self, name: str, version: str | None = None) -> LoadedModel:
        model = self.get()
        if name != model.name:
            raise ApiError(404, f"unknown model {name!r}; this server serves {model.name!r}")
        if version is not None and version != model.version:
            raise ApiError(404, f"model {name!r} has no version {version!r}; it serves {model.version!r}")
        return model

    # ---- inputs -----------------------------------------------------------------------------
    def check_batch(self, n: int) -> None:
        if n == 0:
            raise ApiError(400, "empty batch: send at least one image")
        if n > self.settings.max_batch:
            raise ApiError(413, f"batch of {n} images is over the limit of {self.settings.max_batch} (MAX_BATCH)")

    def images(self, blobs: list[tuple[str, bytes]], model: LoadedModel) -> np.ndarray:
        """Encoded images (name, bytes) -> the preprocessed batch, or a 400 naming the bad one."""
        self.check_batch(len(blobs))
        arrays = []
        for i, (name, data) in enumerate(blobs):
            try:
                arrays.append(preprocess_bytes(data, model.spec, max_pixels=self.settings.max_pixels))
            except ImageError as e:
                raise ApiError(400, f"image {i} ({name}): {e}", index=i) from None
        return np.stack(arrays)

    def tensor(self, value: np.ndarray, model: LoadedModel) -> np.ndarray:
        """An already preprocessed FP32 batch, checked against the model's input."""
        want = (model.spec.height, model.spec.width, 3)
        if value.ndim != 4 or value.shape[1:] != want:
            raise ApiError(400, f"FP32 input must have shape [N,{want[0]},{want[1]},3], got {list(value.shape)}")
        self.check_batch(value.shape[0])
        if not np.isfinite(value).all():
            raise ApiError(400, "FP32 input holds NaN or infinity")
        return value

    # ---- inference --------------------------------------------------------------------------
    def predict(self, batch: np.ndarray, model: LoadedModel) -> tuple[np.ndarray, float]:
        """Probabilities (N, labels) and the forward pass in milliseconds."""
        t = time.perf_counter()
        probs = model.predict(batch)
        self.metrics.batch.observe(len(batch))
        self.metrics.images.inc(len(batch))
        return probs, (time.perf_counter() - t) * 1000
