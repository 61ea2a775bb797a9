"""Credentials from files: `DATABASE_URL_FILE`, `VIEW_DATABASE_URL_FILE`, `HOOK_TOKEN_FILE`.

A file is how a secret manager hands a credential to a pod (a Kubernetes Secret mounted as a
volume, kept current by the External Secrets Operator; a Docker secret): unlike an environment
variable it can change under a running process. `SecretFile.read()` returns the file's content
(one trailing newline dropped) and reads it again only when it changed (inode, size or mtime:
Kubernetes swaps a symlink, an editor rewrites in place). `store.rotate_on_connect` makes an engine
take the user and password of the current file on every new database connection, so a rotated
role password is used without a restart while open connections carry on. A file that vanishes
or is emptied mid-rotation keeps the last good value (and says so in the log).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class SecretFileError(ValueError):
    """The file cannot be read, or holds no value (the message names the variable, never the value)."""


class SecretFile:
    """`grace_s`: how long the value before the last change still counts (`previous()`), so that a
    caller holding the old token is not refused mid-rollout while the new one reaches it."""

    def __init__(self, path: str | Path, variable: str, *, grace_s: float = 0.0):
        self.path, self.variable, self.grace_s = Path(path), variable, grace_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value: str | None = None
        self._previous: str | None = None
        self._changed_at = 0.0
        self.read()  # fail at start, not on the first request

    def _load(self) -> tuple[tuple[int, int, int], str]:
        try:
            st = os.stat(self.path)
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SecretFileError(f"{self.variable}: cannot read {self.path}: "
                                  f"{getattr(e, 'strerror', None) or type(e).__name__}") from None
        value = text[:-1] if text.endswith("\n") else text
        if value.endswith("\r"):
            value = value[:-1]
        if not value.strip():
            raise SecretFileError(f"{self.variable}: {self.path} is empty")
        return (st.st_ino, st.st_size, st.st_mtime_ns), value

    def read(self) -> str:
        with self._lock:
            try:
                st = os.stat(self.path)
                if self._value is not None and (st.st_ino, st.st_size, st.st_mtime_ns) == self._stamp:
                    return self._value
                old = self._value
                self._stamp, self._value = self._load()
                if old is not None and old != self._value:
                    self._previous, self._changed_at = old, time.monotonic()
            except (OSError, SecretFileError) as e:
                if self._value is None:
                    raise SecretFileError(str(e) if isinstance(e, SecretFileError)
                                          else f"{self.variable}: cannot read {self.path}: {e.strerror}") from None
                log.warning("%s: keeping the last value: %s", self.variable, e)
            return self._value

    def previous(self) -> str | None:
        """The value before the last change, while that change is younger than `grace_s`."""
        with self._lock:
            if self._previous is not None and time.monotonic() - self._changed_at < self.grace_s:
                return self._previous
            return None


def secret_or_file(value: str | None, file: str | None, variable: str, *, grace_s: float = 0.0
                   ) -> tuple[str | None, SecretFile | None]:
    """The value of VARIABLE, or of VARIABLE_FILE; both set is an error (which one would win?)."""
    if value and file:
        raise SecretFileError(f"both {variable} and {variable}_FILE are set: use one")
    if file:
        source = SecretFile(file, f"{variable}_FILE", grace_s=grace_s)
        return source.read(), source
    return value, None


MIN_TOKEN_CHARS = 16


def weak_token(value: str) -> bool:
    """Under 16 characters, or the example's `change-me...`: never accepted as the hook's token."""
    return len(value) < MIN_TOKEN_CHARS or value.lower().startswith("change-me")


def token_matches(expected: str | SecretFile, given: object) -> bool:
    """Whether `given` (a request's token) is the token now expected, compared in constant time. A
    token file rotated to a weak value (under 16 characters, the example's `change-me`) matches
    nothing: the hook refuses every request until the file holds a real token again."""
    if not isinstance(given, str):
        return False
    if not isinstance(expected, SecretFile):  # a fixed token: the CLI checked its strength at start
        return hmac.compare_digest(given.strip().encode(), expected.encode())
    value = expected.read()
    if weak_token(value):
        log.error("the hook's token is too weak (%d characters, or the example value): refusing requests",
                  len(value))
        return False
    token = given.strip().encode()
    if hmac.compare_digest(token, value.encode()):
        return True
    old = expected.previous()  # rotated within the grace window: the old token still counts
    return old is not None and not weak_token(old) and hmac.compare_digest(token, old.encode())
