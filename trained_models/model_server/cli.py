"""`ml-server --model-dir DIR --host H --port P`: serve one model folder with gunicorn.

The containers run it too (`python ml_server.py`); every default is a ServerSettings field."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import metrics_dir
from .model import CONFIG_FILE, MODEL_FILE, TFLITE_FILE
from .settings import OPTION_OF, ServerSettings


def build_parser(settings: ServerSettings | None = None) -> argparse.ArgumentParser:
    """Defaults from `settings` (the environment's), help from the settings' field descriptions."""
    settings = settings or ServerSettings.from_env()
    ap = argparse.ArgumentParser(prog="ml-server", description="Serve one model folder over HTTP.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, flag in OPTION_OF.items():  # each a settings field: default and help from ServerSettings
        field = ServerSettings.model_fields[name]
        ap.add_argument(flag, dest=name, default=getattr(settings, name), metavar=name.upper(),
                        type=_checked(name) if field.annotation is not str else str,
                        help=f"{field.description} (env {ServerSettings.env_name(name)})")
    return ap


def _checked(name: str):
    def convert(text: str):
        try:
            return getattr(ServerSettings.from_mapping({name: text}), name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def main(argv: list[str] | None = None) -> int:
    try:
        settings = ServerSettings.from_env()
    except ValueError as e:
        print(f"ml-server: error: {e}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    if not args.model_dir:
        print("ml-server: error: --model-dir (or MODEL_DIR) is required", file=sys.stderr)
        return 2
    model_dir = Path(args.model_dir).resolve()
    # A folder holds its config and weights for Keras, a LiteRT export, or both; the loader
    # chooses (MODEL_BACKEND) and says why when it cannot serve what is there.
    if not (model_dir / CONFIG_FILE).is_file() or not any((model_dir / f).is_file() for f in (MODEL_FILE, TFLITE_FILE)):
        print(f"ml-server: error: {model_dir} is not a model folder (it needs {CONFIG_FILE} and {MODEL_FILE} or "
              f"{TFLITE_FILE})", file=sys.stderr)
        return 2
    settings = settings.model_copy(update={"model_dir": str(model_dir), **{
        name: getattr(args, name) for name in OPTION_OF if name != "model_dir"}})
    from .ports import busy_message, in_use

    if in_use(settings.host, settings.port):
        print(f"ml-server: error: {busy_message(settings.host, settings.port, 'choose another with --port (or PORT)')}",
              file=sys.stderr)
        return 2
    created = metrics_dir.prepare(settings.web_concurrency)  # before any worker imports prometheus_client
    try:
        _gunicorn(settings).run()
    finally:
        metrics_dir.remove(created)
    return 0


def _gunicorn(settings: ServerSettings):
    """gunicorn with `settings` (gthread workers, each loading the model after the fork)."""
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{settings.host}:{settings.port}", "workers": settings.web_concurrency,
                               "threads": settings.gunicorn_threads, "timeout": settings.gunicorn_timeout,
                               "graceful_timeout": 30, "keepalive": 5, "worker_class": "gthread",
                               "accesslog": settings.access_log or None}.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 24+: no socket in $HOME
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("child_exit", lambda _arbiter, worker: metrics_dir.worker_exited(worker.pid))

        def load(self):
            # Imported here: each worker loads the runtime and the model after the fork.
            from .app import create_app

            return create_app(settings=settings)

    return _App()


if __name__ == "__main__":
    sys.exit(main())
