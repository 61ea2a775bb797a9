"""`data-collector serve` and `hook` on gunicorn: one worker process (the deploy hook's queue is
per process; gate jobs are in the database), threads for concurrent requests, a graceful SIGTERM
(running gate jobs get GRACEFUL_S to finish, then are queued again for the next process)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from .http_headers import SERVER_NAME

THREADS = 16  # requests at once: polls of controllers, the web view, and long ?wait=1 hook requests
GRACEFUL_S = 25  # under Kubernetes' default terminationGracePeriodSeconds (30 s)
TIMEOUT_S = 120  # a worker silent this long is restarted (gthread workers heartbeat while requests run)


def run_gunicorn(build: Callable[[], Flask], *, host: str, port: int) -> None:
    import gunicorn.http.wsgi
    from gunicorn.app.base import BaseApplication

    gunicorn.http.wsgi.SERVER = SERVER_NAME  # `Server: data-collector`, no product or version
    holder: dict[str, Flask] = {}

    class _App(BaseApplication):
        def load_config(self):
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for key, value in {"bind": bind, "workers": 1, "threads": THREADS, "worker_class": "gthread",
                               "timeout": TIMEOUT_S, "graceful_timeout": GRACEFUL_S + 5, "keepalive": 5,
                               "accesslog": None, "worker_exit": _worker_exit(holder)}.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 24+: no socket in $HOME
                self.cfg.set("control_socket_disable", True)

        def load(self):
            holder["app"] = build()
            return holder["app"]

    _App().run()


def _worker_exit(holder: dict):
    def worker_exit(_server, _worker) -> None:
        app = holder.get("app")
        service = app.extensions.get("gate_service") if app is not None else None
        if service is not None:
            service.stop(GRACEFUL_S)
    return worker_exit
