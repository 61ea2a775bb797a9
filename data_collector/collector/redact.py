"""Secrets never shown: passwords in database URLs and userinfo in model URLs."""

from __future__ import annotations

import re

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
