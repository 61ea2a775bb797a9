"""Prometheus metrics: per-request counters and latency, batch sizes, images; `GET /metrics`."""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from . import metrics_dir

bp = Blueprint("metrics", __name__)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("model_server_requests_total", "HTTP requests",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("model_server_request_latency_seconds", "Request latency",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch = Histogram("model_server_batch_size", "Images per inference call",
                               registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.images = Counter("model_server_images_total", "Images classified", registry=self.registry)
        self.errors = Counter("model_server_errors_total", "Requests answered with an error",
                              ["endpoint", "status"], registry=self.registry)


def instrument(app: Flask, metrics: Metrics) -> None:
    """Count and time every request of `app`."""

    @app.before_request
    def _start_timer():
        g.t0 = time.perf_counter()

    @app.after_request
    def _record(resp):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, request.method, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.get("t0", time.perf_counter()))
        if resp.status_code >= 400:
            metrics.errors.labels(endpoint, str(resp.status_code)).inc()
        return resp


@bp.get("/metrics")
def prometheus():
    registry = current_app.extensions["dataplane"].metrics.registry
    if os.environ.get(metrics_dir.ENV):  # several gunicorn workers: sum every worker's values
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
