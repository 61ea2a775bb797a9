"""gunicorn settings for containers: `gunicorn -c gunicorn.conf.py "model_server.app:create_app()"`.

One model copy per worker (a 96x96 compact model is ~0.6 MB as a LiteRT export; a worker on
LiteRT holds about 100 MB resident, on Keras/TensorFlow about 780 MB, see bench/bench_runtime.py).
One worker's forward pass uses LITERT_THREADS (2) cores, so 1 worker with a few threads is the
default; raise WEB_CONCURRENCY only on machines with more cores.
"""

import os

from model_server import metrics_dir

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"  # nosec B104: in a container
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
_metrics_dir = metrics_dir.prepare(workers)  # shared /metrics across workers (see metrics_dir)
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG") or None


def child_exit(_arbiter, worker):
    metrics_dir.worker_exited(worker.pid)


def on_exit(_arbiter):
    metrics_dir.remove(_metrics_dir)
