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


# Credentials this process sends to model servers (userinfo of their URLs), in every form a
# server could echo them: raw, percent-escaped (either case), base64 and base64url of
# `user:password` and of each part, hex (either case). A server that answers with them gets them
# replaced by *** in every ModelServerError, hence in every message and stored run error; one that
# uses them as its name, version or labels is refused (collect._register, `contains_secret`).
_SECRETS: set[str] = set()  # every form: replaced in text
_PASSWORDS: set[str] = set()  # the forms with the password: a name or label holding one is refused
_SECRETS_LOCK = threading.Lock()
_PATTERN: list[re.Pattern | None] = [None, None]  # [_SECRETS, _PASSWORDS]
MIN_SECRET_CHARS = 3  # shorter values would blot out ordinary text; such a password is no secret anyway


def _encodings(value: str) -> set[str]:
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    url64 = base64.urlsafe_b64encode(raw).decode()
    return {value, quote(value, safe=""), b64, b64.rstrip("="), url64, url64.rstrip("="), raw.hex()}


def register_userinfo(userinfo: str) -> None:
    """Remember the user, the password and `user:password` (percent-decoded) in every form above."""
    user, _, password = (unquote(x) for x in userinfo.partition(":"))
    pair = f"{user}:{password}"  # as text it is the user and the password, each replaced: `***:***`
    with_password = {f for f in _encodings(password) | (_encodings(pair) - {pair}) if len(f) >= MIN_SECRET_CHARS}
    if not password:
        with_password = set()
    with _SECRETS_LOCK:
        _PASSWORDS.update(with_password)
        _SECRETS.update(with_password | {f for f in (user, quote(user, safe="")) if len(f) >= MIN_SECRET_CHARS})
        # Case-insensitive: percent escapes and hex have two spellings; over-matching base64 only hides more.
        for i, forms in enumerate((_SECRETS, _PASSWORDS)):
            if forms:
                _PATTERN[i] = re.compile("|".join(re.escape(x) for x in sorted(forms, key=len, reverse=True)), re.I)


def contains_secret(text: str) -> bool:
    """True when `text` holds a registered password (alone or as user:password) in any of its forms."""
    pattern = _PATTERN[1]
    return pattern is not None and pattern.search(text) is not None


def redact_secrets(text: str) -> str:
    """`text` with every registered credential replaced by ***, longest first."""
    pattern = _PATTERN[0]
    return text if pattern is None else pattern.sub("***", text)
