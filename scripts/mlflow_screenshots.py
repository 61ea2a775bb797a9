"""Screenshots of the MLflow UI for docs/mlflow.md: `make demo`, then `make mlflow-screenshots`.

Starts a real MLflow tracking server (the peer venv of the tests, `make peer-venvs`) on a free
loopback port with a scratch SQLite store, exports the demo database's models and one comparison
to it (`data-collector compare ... --mlflow-uri`), opens the run pages in Debian's chromium
(playwright, no browser download) and writes docs/screenshots/mlflow-*.png.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # devtools and the peer venvs: the repository's, not installed
from screenshots import shrink_png  # noqa: E402 - beside this script

from peers.process import PeerServer  # noqa: E402
from peers.venvs import peer_python  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
BASELINE, CANDIDATE = "ml_ditto", "ml_ditto_and_mimikyu"
EXPERIMENT = "pokemon-classifier-tester"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, env: dict) -> str:
    r = subprocess.run([str(Path(sys.executable).parent / "data-collector"), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode not in (0, 1):
        sys.exit(f"error: data-collector {' '.join(args)}: {r.stderr.strip()[-500:]}")
    return r.stdout + r.stderr


def _shoot(page, url: str, out: Path, *, text: str, height: int) -> None:
    page.goto(url, wait_until="load")
    deadline = time.monotonic() + 120
    while page.get_by_text(text).count() == 0:  # the UI renders after its API calls answer
        if time.monotonic() > deadline:
            sys.exit(f"error: {url} never showed {text!r}")
        page.wait_for_timeout(250)
    close = page.locator("button[aria-label*='lose']").last  # the assistant's side panel, if open
    if "Assistant" in page.inner_text("body") and close.count():
        close.click()
    more = page.get_by_text("Show more", exact=True)  # the run's description, whole
    if more.count():
        more.first.click()
    page.wait_for_timeout(1500)  # charts and images settle
    page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1400, "height": height})
    shrink_png(out)
    print(f"wrote {out}")


def main() -> int:
    db = os.environ.get("DATABASE_URL", "sqlite:///pokemon_tester.db")
    with tempfile.TemporaryDirectory(prefix="mlflow-shots-") as tmp:
        root, port = Path(tmp), _port()
        mlflow = peer_python("mlflow").parent / "mlflow"
        argv = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1"]
        with PeerServer(argv, f"http://127.0.0.1:{port}", ["/health"], root / "mlflow.log", cwd=root,
                        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}) as srv:
            env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
            _cli("--db", db, "compare", BASELINE, CANDIDATE, "--mlflow-uri", srv.url, env=env)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(srv.url)
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                sys.exit("error: nothing was exported: run `make demo` first")
            runs = client.search_runs([exp.experiment_id])
            comp = next(r for r in runs if r.data.tags.get("pokemon_tester.kind") == "comparison")
            model = next(r for r in runs if r.data.tags.get("model.name") == CANDIDATE)
            base = f"{srv.url}/#/experiments/{exp.experiment_id}/runs"
            OUT.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                  "--disable-component-update", "--disable-sync"])
                page = browser.new_page(viewport={"width": 1400, "height": 1700})
                _shoot(page, f"{base}/{model.info.run_id}", OUT / "mlflow-model-run.png", text="recall_pikachu",
                       height=1250)
                _shoot(page, f"{base}/{model.info.run_id}/artifacts/confusion_matrix.png",
                       OUT / "mlflow-confusion-matrix.png", text="confusion_matrix.png", height=900)
                _shoot(page, f"{base}/{comp.info.run_id}", OUT / "mlflow-comparison-run.png",
                       text="Regression gate", height=1250)
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
