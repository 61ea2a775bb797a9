"""Server settings: one object, read from the environment in production, a dict in tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .preprocessing import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ServerSettings:
    model_dir: str = ""
    max_batch: int = 256  # images per request
    max_content_length: int = 64 * 1024 * 1024  # bytes per request body
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked before decoding
    load_async: bool = True  # /health answers 503 while the model loads

    ENV = {
        "model_dir": "MODEL_DIR",
        "max_batch": "MAX_BATCH",
        "max_content_length": "MAX_CONTENT_LENGTH",
        "max_pixels": "MAX_PIXELS",
        "load_async": "LOAD_ASYNC",
    }

    @classmethod
    def from_mapping(cls, values: dict) -> ServerSettings:
        kwargs = {}
        for f in fields(cls):
            if f.name not in values or values[f.name] is None:
                continue
            v = values[f.name]
            if f.type in ("int", int):
                v = int(v)
                if v <= 0:
                    raise ValueError(f"{f.name} must be positive, got {v}")
            elif f.type in ("bool", bool) and isinstance(v, str):
                v = v.strip().lower() in ("1", "true", "yes", "on")
            kwargs[f.name] = v
        return cls(**kwargs)

    @classmethod
    def from_env(cls, overrides: dict | None = None) -> ServerSettings:
        values = {name: os.environ.get(var) for name, var in cls.ENV.items()}
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values)
