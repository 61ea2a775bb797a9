"""Real tiny models, synthetic labelled images and loopback servers for the tests."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

from bench.synthetic import COLORS, color_png, write_color_model  # noqa: F401

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def make_test_data(root: Path, *, per_class: int = 6, labels=("red", "green", "blue"), probes: int = 3,
                   colors: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """`colors` gives each label folder its colour (default: the label names a colour)."""
    root.mkdir(parents=True, exist_ok=True)
    for li, lab in enumerate(labels):
        (root / lab).mkdir(exist_ok=True)
        for i in range(per_class):
            rgb = (colors or COLORS)[lab]
            (root / lab / f"{lab}-{i:02d}.png").write_bytes(color_png(rgb, seed=li * 1000 + i))
    (root / "lookalikes" / "purple").mkdir(parents=True, exist_ok=True)
    for i in range(probes):
        (root / "lookalikes" / "purple" / f"p-{i}.png").write_bytes(color_png((150, 20, 160), seed=9000 + i))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A Flask app on a real loopback socket, in a thread (werkzeug's threaded server)."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        # Port 0: the kernel picks a free port at bind time (a port chosen beforehand can be
        # taken by another test in between).
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __exit__(self, *exc):
        self.stop()


def serve_model(model_dir: Path, *, predict_delay: float = 0.0) -> LiveServer:
    """The real model server on loopback; `predict_delay` seconds added to every POST /predict
    keep a run going long enough for a test to interrupt it mid-way, however busy the machine."""
    from model_server.app import create_app

    app = create_app({"model_dir": str(model_dir), "load_async": False})
    if predict_delay:
        import time

        from flask import request

        @app.before_request
        def _slow():
            if request.path == "/predict":
                time.sleep(predict_delay)
    return LiveServer(app)


class Switch:
    """A WSGI app whose model can be replaced behind the same URL (a redeploy)."""

    def __init__(self, folder):
        self.before = None  # called before every request when set (holds answers back)
        self.set(folder)

    def set(self, folder):
        from model_server.app import create_app
        self.app = create_app({"model_dir": str(folder), "load_async": False})

    def __call__(self, environ, start_response):
        if self.before is not None:
            self.before()
        return self.app(environ, start_response)


class DelayProxy:
    """A WSGI proxy in front of a model server: every POST to a predict path is forwarded, then
    held `delay` seconds plus `factor` times what the server took (a slower deployment of the
    same model); other requests pass as they are."""

    def __init__(self, upstream: str, *, delay: float = 0.0, factor: float = 0.0):
        import requests

        self.upstream, self.delay, self.factor = upstream, delay, factor
        self.session = requests.Session()

    def __call__(self, environ, start_response):
        import time

        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        query = environ.get("QUERY_STRING")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        headers = {"Content-Type": environ["CONTENT_TYPE"]} if environ.get("CONTENT_TYPE") else {}
        t0 = time.perf_counter()
        r = self.session.request(method, self.upstream + path + (f"?{query}" if query else ""), data=body,
                                 headers=headers)
        if method == "POST":
            time.sleep(self.delay + self.factor * (time.perf_counter() - t0))
        start_response(f"{r.status_code} {r.reason}", [("Content-Type", r.headers.get("Content-Type", "text/plain"))])
        return [r.content]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def wait_healthy(url: str, proc, timeout: float = 240) -> None:
    """Poll GET /health until 200, to an overall deadline; fail early if the server process exits."""
    from devtools.health import NotHealthy
    from devtools.health import wait_healthy as _wait

    try:
        _wait(url, deadline_s=timeout, proc=proc)
    except NotHealthy as e:
        raise AssertionError(str(e)) from None


SERVE_SCRIPT = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers import serve_model
urls = []
for folder in {models!r}:
    srv = serve_model(Path(folder), predict_delay={delay!r})
    srv.__enter__()
    urls.append(srv.url)
Path({url_file!r}).write_text(" ".join(urls))
time.sleep(3600)
"""


def start_server_process(model_dirs: list[Path], tmp: Path, *, predict_delay: float = 0.0):
    """Model servers in a separate process (so it can be killed or stopped); returns (proc, urls)."""
    import subprocess
    import sys
    import time

    url_file = tmp / f"urls-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT.format(
        tests=str(Path(__file__).resolve().parent), models=[str(m) for m in model_dirs], url_file=str(url_file),
        delay=predict_delay)])
    deadline = time.monotonic() + 240  # TensorFlow's import alone can take a minute on a busy machine
    while time.monotonic() < deadline:
        if url_file.exists() and url_file.read_text():
            return proc, url_file.read_text().split()
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("model server process did not start")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MlServerProcess:
    """`ml-server` (gunicorn) for a model folder on a free loopback port; `.worker` is its worker pid."""

    def __init__(self, model_dir: Path, *extra: str):
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "model_server.cli", "--model-dir", str(model_dir),
                                      "--port", str(self.port), *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self):
        try:
            wait_healthy(self.url, self.proc)
        except BaseException:
            self.__exit__()
            raise
        pid = self.proc.pid
        self.worker = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:  # gunicorn's graceful stop can outlast a short wait on a busy machine: then it is killed
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(60)


def run_cli(*args, env: dict | None = None):
    """`data-collector ARGS` in this process (click's runner); exceptions propagate."""
    from click.testing import CliRunner

    from collector.cli import main

    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def engine_for(url: str):
    """An engine on `url` with the schema at head."""
    from collector.storage import store

    engine = store.make_engine(url)
    store.ensure_schema(engine)
    return engine


def collect_models(db_url: str, data: Path, *folders: Path):
    """Serve each model folder in turn and collect it into `db_url`; returns the engine."""
    from collector.collect import collect

    engine = engine_for(db_url)
    for f in folders:
        with serve_model(f) as srv:
            (r,) = collect([srv.url], engine=engine, test_dir=data, say=lambda m: None)
            assert r.status == "completed", r.error
    return engine


def store_model(engine, *, name: str, version: str, fingerprint: str, labels: list[str],
                answers: list[tuple], url: str = "http://model:8080") -> int:
    """Store a model and its answers directly: (image sha256, true label, kind, predicted label[, scores])."""
    from collector.storage import store

    with engine.begin() as conn:
        ids, _ = store.upsert_images(conn, rows=[{"sha256": sha, "path": f"{label}/{sha[:8]}.png", "label": label,
                                               "kind": kind} for sha, label, kind, *_ in answers])
        model_id = store.upsert_model(conn, meta={"name": name, "version": version, "fingerprint": fingerprint,
                                                  "labels": labels}, url=url)
        run_id = store.start_run(conn, model_id=model_id, url=url, n_planned=len(answers), collector_version="t",
                                 test_set_hash="0" * 64)
        preds = []
        for sha, label, _, pred, *given in answers:
            scores = given[0] if given else {pred: 0.9}
            preds.append({"run_id": run_id, "model_id": model_id, "image_id": ids[(sha, label)],
                          "predicted_label": pred, "confidence": max(scores.values()), "scores": scores,
                          "latency_ms": 1.0})
        store.insert_predictions(conn, rows=preds)
        store.finish_run(conn, run_id=run_id, status="completed", n_sent=len(answers), n_failed=0)
    return model_id


POKEMON_LABELS = ["charmander", "bulbasaur", "pikachu"]
POKEMON_CHANNELS = {"charmander": 0, "bulbasaur": 1, "pikachu": 2}
POKEMON_COLOURS = {"charmander": (230, 20, 20), "bulbasaur": (20, 200, 30), "pikachu": (20, 30, 220)}


def pokemon_models(tmp_path: Path, db_url: str):
    """Two versions of a colour model named like Pokemon, collected into `db_url`: v2 lost pikachu
    (an injected regression: its images are answered bulbasaur). Returns (engine, test-data folder)."""
    data = make_test_data(tmp_path / "td", per_class=30, labels=POKEMON_LABELS, colors=POKEMON_COLOURS)
    v1 = write_color_model(tmp_path / "v1", POKEMON_LABELS, name="pokemon", version="1", channels=POKEMON_CHANNELS)
    v2 = write_color_model(tmp_path / "v2", POKEMON_LABELS, name="pokemon", version="2", channels=POKEMON_CHANNELS,
                           swap=("pikachu", "bulbasaur"))
    return collect_models(db_url, data, v1, v2), data


def multipart(*blobs: bytes) -> dict:
    """A Flask test client's multipart body: the images in field `images`."""
    return {"images": [(io.BytesIO(b), f"img{i}.png") for i, b in enumerate(blobs)]}
