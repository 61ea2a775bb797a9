"""A third-party server process from a peer venv, on loopback, ready when one of its paths answers 200."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from devtools.health import NotHealthy, wait_healthy


class PeerServer:
    """`with PeerServer(argv, url, ready_paths, log) as srv:` starts it, waits for every ready path
    (to an overall deadline), and stops it; a start that fails shows the end of its log."""

    def __init__(self, argv: list[str], url: str, ready_paths: list[str], log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None):
        self.argv, self.url, self.ready_paths, self.log_path, self.cwd = argv, url, ready_paths, log, cwd
        self.env = {**os.environ, **(env or {})}

    def __enter__(self):
        self.log = open(self.log_path, "w")
        # A session of its own: stopping it stops the workers it started too.
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        try:
            for path in self.ready_paths:
                wait_healthy(self.url, deadline_s=300, path=path, proc=self.proc)
        except NotHealthy as e:
            self.__exit__()
            raise AssertionError(f"{e}\n{self.log_path.read_text()[-3000:]}") from None
        return self

    def __exit__(self, *exc):
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(30)
        self._signal(signal.SIGKILL)  # any worker that outlived its parent
        self.log.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
