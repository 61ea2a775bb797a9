"""A real MLflow tracking server (`mlflow server`, its own venv): SQLite backend, artifacts served
through the server from a local folder, on loopback."""

from __future__ import annotations

from pathlib import Path

from helpers import free_port
from peers.process import PeerServer
from peers.venvs import peer_python


class MlflowServer(PeerServer):
    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        mlflow = peer_python("mlflow").parent / "mlflow"
        super().__init__([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                          "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                          "--port", str(port), "--workers", "1"],
                         f"http://127.0.0.1:{port}", ["/health"], root / "mlflow.log", cwd=root,
                         # No background job runner (seven worker processes the tests do not use).
                         env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
