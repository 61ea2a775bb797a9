"""`ml-server --model-dir DIR --host H --port P`: serve one model folder with gunicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import metrics_dir
from .model import CONFIG_FILE, MODEL_FILE, TFLITE_FILE


def _positive(v: str) -> int:
    n = int(v)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return n


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    ap = argparse.ArgumentParser(prog="ml-server", description="Serve one model folder over HTTP.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model-dir", default=env("MODEL_DIR"), help="model folder (env MODEL_DIR)")
    ap.add_argument("--host", default=env("HOST", "127.0.0.1"), help="bind address (env HOST)")
    ap.add_argument("--port", type=_positive, default=int(env("PORT", "8080")), help="port (env PORT)")
    ap.add_argument("--workers", type=_positive, default=int(env("WEB_CONCURRENCY", "1")),
                    help="gunicorn worker processes, each with its own model copy (env WEB_CONCURRENCY)")
    ap.add_argument("--threads", type=_positive, default=int(env("GUNICORN_THREADS", "4")),
                    help="threads per worker (env GUNICORN_THREADS)")
    ap.add_argument("--timeout", type=_positive, default=int(env("GUNICORN_TIMEOUT", "120")),
                    help="worker timeout in seconds (env GUNICORN_TIMEOUT)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    os.environ["MODEL_DIR"] = str(model_dir)

    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("timeout", args.timeout)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", os.environ.get("ACCESS_LOG") or None)
            self.cfg.set("child_exit", lambda _arbiter, worker: metrics_dir.worker_exited(worker.pid))

        def load(self):
            # Imported here: each worker loads TensorFlow and the model after the fork.
            from .app import create_app

            return create_app()

    created = metrics_dir.prepare(args.workers)  # before any worker imports prometheus_client
    try:
        _App().run()
    finally:
        metrics_dir.remove(created)
    return 0


if __name__ == "__main__":
    sys.exit(main())
