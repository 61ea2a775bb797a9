"""`ml-server` on the command line."""

from __future__ import annotations

import subprocess
import sys


def test_ml_server_help_shows_defaults():
    r = subprocess.run([sys.executable, "-m", "model_server.cli", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    assert "(default: 8080)" in r.stdout and "(default: 127.0.0.1)" in r.stdout
