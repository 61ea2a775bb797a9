"""The console entry (`collector.cli.entry`): exit codes and every output kept when it skips the
interpreter's teardown; a thread still working is waited for as usual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "collector.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_output_reaches_a_pipe_whole_and_the_exit_code_is_kept(tmp_path):
    ok = _run("collect", "--help")
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("Show this message and exit.")
    bad = _run("collect", "--test-data", str(tmp_path / "nowhere"), "http://127.0.0.1:9")
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    unknown = _run("nosuch")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


def test_a_thread_still_working_is_waited_for():
    code = ("import threading, time\nfrom collector.cli import entry\n"
            "t = threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True)))\n"
            "t.start()\nentry(['--version'])\n")
    done = _run(code=code)
    assert done.returncode == 0 and "data-collector" in done.stdout and "thread done" in done.stdout
