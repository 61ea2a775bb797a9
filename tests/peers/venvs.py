"""Virtualenvs for third-party tools whose dependencies clash with ours (MLServer, KServe, MLflow's server, checkov).

    python tests/peers/venvs.py        # create or refresh them (make peer-venvs; the tests call it too)

Each lives in `.venvs/NAME` at the repository root (ignored by git), with a stamp holding its
requirements: a change of pins rebuilds it, an unchanged one is reused.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".venvs"
SPECS = {
    "mlserver": ["mlserver==1.7.1", "pillow==13.0.0", "requests==2.34.2", "ai-edge-litert==2.3.0"],
    "kserve": ["kserve==0.21.0", "ai-edge-litert==2.3.0", "pillow==13.0.0"],
    # The tracking server the MLflow export is tested against (the full package: server and UI).
    "mlflow": ["mlflow==3.17.2"],
    # Static analysis of the rendered Kubernetes manifests (deploy/k8s/overlays/gke).
    "checkov": ["checkov==3.3.30"],
}


def peer_python(name: str) -> Path:
    """The interpreter of peer venv `name`, created (pip install of its pins) if missing or stale."""
    spec = "\n".join(SPECS[name]) + "\n"
    where = HOME / name
    python = where / "bin" / "python"
    stamp = where / ".requirements"
    HOME.mkdir(exist_ok=True)
    with open(HOME / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == spec:
            return python
        venv.EnvBuilder(clear=True, with_pip=True).create(where)
        r = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *SPECS[name]],
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(SPECS[name])} into {where} failed:\n{r.stderr[-3000:]}")
        stamp.write_text(spec)
    return python


if __name__ == "__main__":
    for peer in sys.argv[1:] or sorted(SPECS):
        print(f"{peer}: {peer_python(peer)}")
