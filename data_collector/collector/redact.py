"""Secrets never shown: passwords in database URLs and userinfo in model URLs."""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote, unquote

# scheme://, then up to the last '@' of the word: a password may hold '@', '/' or ':'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s'\"]*)@(?P<host>[^@\s'\"/?#]*)")


def redact_url(url: str) -> str:
    """Every URL in `url` with its password hidden: `scheme://user:***@host/...`.

    The userinfo ends at the last '@' before the path, so a password holding '@' is hidden whole.
    """
    def _sub(m: re.Match) -> str:
        user, colon, _ = m["userinfo"].partition(":")
        shown = f"{user}:***" if colon and "/" not in user else "***"
        return f"{m['scheme']}{shown}@{m['host']}"
    return _USERINFO.sub(_sub, url)


# Credentials this process sends to model servers (userinfo of their URLs), in every form the
# collector sends them: a server that answers with them gets them replaced by *** in every
# ModelServerError, hence in every message and every stored run error.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MIN_SECRET_CHARS = 3  # shorter values would blot out ordinary text; such a password is no secret anyway


def register_userinfo(userinfo: str) -> None:
    """Remember the user, the password and the Basic token of `user:password` (percent-decoded)."""
    user, _, password = (unquote(x) for x in userinfo.partition(":"))
    forms = {user, password, quote(user, safe=""), quote(password, safe=""),
             base64.b64encode(f"{user}:{password}".encode()).decode()}
    with _SECRETS_LOCK:
        _SECRETS.update(f for f in forms if len(f) >= MIN_SECRET_CHARS)


def redact_secrets(text: str) -> str:
    """`text` with every registered credential replaced by ***, longest first."""
    if not _SECRETS:
        return text
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text
