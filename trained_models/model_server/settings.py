"""Server settings: the one object that holds every default and reads every environment variable.

Each field is read from the environment variable of its own name in capitals (`max_batch` from
`MAX_BATCH`); `ml-server`'s options take their defaults and help from here, the app, the data
plane and the model loader take their values from here. Tests pass a dict (`from_mapping`),
which reads no environment.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .preprocessing import DEFAULT_MAX_PIXELS


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError(f"must be positive, got {v}")
    return v


Positive = Annotated[int, AfterValidator(_positive)]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", protected_namespaces=(), case_sensitive=False)

    model_dir: str = Field("", description="model folder")
    model_backend: str = Field("auto", description="runtime: auto (LiteRT when its export checks out, else "
                                                   "Keras), litert or keras")
    max_batch: Positive = Field(256, description="images per request")
    max_content_length: Positive = Field(64 * 1024 * 1024, description="bytes per request body, compressed or not")
    max_pixels: Positive = Field(DEFAULT_MAX_PIXELS, description="pixels per image, checked before decoding")
    load_async: bool = Field(True, description="load the model in the background; /health answers 503 until then")
    litert_threads: Positive = Field(2, description="threads of the LiteRT interpreter's forward pass")
    litert_slice: Positive = Field(16, description="images per LiteRT interpreter call (bounds activation memory)")
    # The HTTP server (gunicorn, started by `ml-server`).
    host: str = Field("127.0.0.1", description="bind address")
    port: Positive = Field(8080, description="port")
    web_concurrency: Positive = Field(1, description="gunicorn worker processes, each with its own model copy")
    gunicorn_threads: Positive = Field(4, description="threads per worker")
    gunicorn_timeout: Positive = Field(120, description="worker timeout in seconds")
    access_log: str = Field("", description="gunicorn access log ('-': stdout; empty: none)")

    @classmethod
    def env_name(cls, field: str) -> str:
        return field.upper()

    @classmethod
    def from_mapping(cls, values: dict) -> ServerSettings:
        """From a dict alone (tests): no environment variable is read."""
        given = {k: v for k, v in values.items() if v is not None}
        try:
            checked = _GivenOnly(**given)
        except ValidationError as e:
            raise ValueError(_message(e)) from None
        return cls.model_construct(**checked.model_dump())

    @classmethod
    def from_env(cls, overrides: dict | None = None) -> ServerSettings:
        """The environment, with `overrides` (values that are not None) winning."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as e:
            raise ValueError(_message(e)) from None


class _GivenOnly(ServerSettings):
    """The same fields and checks, from the values given alone."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):
        return (init_settings,)


def _message(e: ValidationError) -> str:
    """One line per bad value, naming the field and its variable: `max_batch must be positive, got 0 (MAX_BATCH)`."""
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]
        parts.append(f"{field} {msg} ({ServerSettings.env_name(field)})")
    return "; ".join(parts)


OPTION_OF = {"model_dir": "--model-dir", "host": "--host", "port": "--port", "web_concurrency": "--workers",
             "gunicorn_threads": "--threads", "gunicorn_timeout": "--timeout"}  # ml-server's options


def markdown_table() -> str:
    """The table of the model server's settings in docs/settings.md."""
    rows = ["| variable | `ml-server` option | default | meaning |", "|---|---|---|---|"]
    for name, f in ServerSettings.model_fields.items():
        flag = OPTION_OF.get(name)
        default = f"`{f.default}`" if f.default != "" else "none"
        rows.append(f"| `{ServerSettings.env_name(name)}` | {f'`{flag}`' if flag else ''} | {default} | "
                    f"{f.description} |")
    return "\n".join(rows)
