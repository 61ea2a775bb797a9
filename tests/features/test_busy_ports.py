"""A taken port is one line naming it and what moves it, before anything starts: `make demo`
(DEMO_BASE_PORT), `make view` (VIEW_PORT), `data-collector serve` and `ml-server` (--port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from helpers import free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@contextmanager
def listening(port: int):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    # The bound is only against a hang: the check itself answers in well under a second.
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env})


def test_make_demo_names_the_taken_port_and_starts_nothing(tmp_path):
    base = free_port()
    while any(_taken(p) for p in range(base, base + 4)):
        base = free_port()
    logs = ROOT / "demo_logs"
    before = {p.name: p.stat().st_mtime for p in logs.iterdir()} if logs.is_dir() else {}
    with listening(base + 2):
        r = _run(["bash", "scripts/demo.sh"], DEMO_BASE_PORT=str(base), DATABASE_URL=f"sqlite:///{tmp_path}/d.db")
    assert r.returncode == 2, r.stderr
    assert f"port {base + 2} on 127.0.0.1 is already in use" in r.stderr and "DEMO_BASE_PORT" in r.stderr
    assert "waiting for the model servers" not in r.stdout  # nothing was started
    after = {p.name: p.stat().st_mtime for p in logs.iterdir()} if logs.is_dir() else {}
    assert after == before and not (tmp_path / "d.db").exists()


def _taken(port: int) -> bool:
    from model_server.ports import in_use

    return in_use("127.0.0.1", port)


def test_make_view_names_view_port():
    port = free_port()
    with listening(port):
        r = _run([sys.executable, "-m", "devtools.ports", "VIEW_PORT", str(port)])
    assert r.returncode == 2 and f"port {port}" in r.stderr and "VIEW_PORT" in r.stderr
    assert _run([sys.executable, "-m", "devtools.ports", "VIEW_PORT", str(port)]).returncode == 0  # free again


def test_serve_names_its_port_flag(tmp_path):
    port = free_port()
    with listening(port):
        r = run_cli("--db", f"sqlite:///{tmp_path}/v.db", "serve", "--port", str(port))
    assert r.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in r.output and "--port" in r.output
    assert "Traceback" not in r.output


def test_ml_server_names_its_port_flag(color_model, capsys):
    from model_server.cli import main

    port = free_port()
    with listening(port):
        code = main(["--model-dir", str(color_model), "--host", "127.0.0.1", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err
