"""`data-collector serve` and `hook` on gunicorn: one worker process (the deploy hook's queue is
per process; gate jobs are in the database), threads for concurrent requests, and a stop that fits
Kubernetes. On SIGTERM:
1. for DRAIN_S the server keeps answering while `/readyz` says 503 (the endpoints drop the pod; a
   controller's poll in that window still gets its answer), claims no new job, and cuts `?wait=1`;
2. then the listener closes, requests in flight are answered, running gate jobs get HANDBACK_S to
   finish and are queued again for the next process, and the worker exits (GRACEFUL_S at most).
The whole process tree is gone within DRAIN_S + GRACEFUL_S = 15 s, under the manifests'
terminationGracePeriodSeconds (30 s, Kubernetes' default). A second SIGTERM skips the drain."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from flask import Flask

from ..outputs.http_headers import SERVER_NAME

THREADS = 16  # requests at once: polls of controllers, the web view, and long ?wait=1 hook requests
DRAIN_S = 5.0
HANDBACK_S = 3.0
GRACEFUL_S = 10  # gunicorn's graceful_timeout: in-flight requests, then the hand-back
TIMEOUT_S = 120  # a worker silent this long is restarted (gthread workers heartbeat while requests run)
DRAIN_SIGNAL = signal.SIGUSR2  # arbiter -> worker: start draining (gunicorn's workers leave it unused)


def run_gunicorn(build: Callable[[], Flask], *, host: str, port: int) -> None:
    import gunicorn.http.wsgi
    from gunicorn.app.base import BaseApplication

    gunicorn.http.wsgi.SERVER = SERVER_NAME  # `Server: data-collector`, no product or version
    holder: dict[str, Flask] = {}

    from gunicorn.arbiter import Arbiter

    class _Arbiter(Arbiter):
        drain_until: float | None = None

        def handle_term(self):
            if self.drain_until is not None:  # asked twice: stop now
                raise StopIteration
            self.log.info("SIGTERM: draining for %g s (readiness fails, requests are still answered)", DRAIN_S)
            self.drain_until = time.monotonic() + DRAIN_S
            for pid in list(self.WORKERS):
                try:
                    os.kill(pid, DRAIN_SIGNAL)
                except ProcessLookupError:
                    pass

        def murder_workers(self):
            if self.drain_until is not None and time.monotonic() >= self.drain_until:
                raise StopIteration  # the run loop halts: listener closed, workers stopped gracefully
            super().murder_workers()

    class _App(BaseApplication):
        def load_config(self):
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for key, value in {"bind": bind, "workers": 1, "threads": THREADS, "worker_class": "gthread",
                               "timeout": TIMEOUT_S, "graceful_timeout": GRACEFUL_S, "keepalive": 5,
                               "accesslog": None, "worker_exit": _worker_exit(holder),
                               "post_worker_init": _on_drain(holder)}.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 24+: no socket in $HOME
                self.cfg.set("control_socket_disable", True)

        def load(self):
            holder["app"] = build()
            return holder["app"]

        def run(self):
            _Arbiter(self).run()

    _App().run()


def _service(holder: dict):
    app = holder.get("app")
    return app.extensions.get("gate_service") if app is not None else None


def _on_drain(holder: dict):
    def post_worker_init(_worker) -> None:
        def drain(_sig, _frame) -> None:
            service = _service(holder)
            if service is not None:
                service.drain()
        signal.signal(DRAIN_SIGNAL, drain)
    return post_worker_init


def _worker_exit(holder: dict):
    def worker_exit(_server, _worker) -> None:
        service = _service(holder)
        if service is not None:
            service.stop(HANDBACK_S)
    return worker_exit
