"""The one grammar for numbers and versions in text that crossed a boundary (a model server's
answer, a request header, a URL, a database row), shared by the server and the collector.

Python's own tests are wider than they look: `"²".isdigit()` and `"٣".isdecimal()` are True,
`int("٣")` is 3 and `int("²")` raises, `int(" 7 ")` and `int("1_000")` succeed. Here a number is
ASCII digits only, bounded in length, and a version is a short ASCII word. Nothing else in either
package calls `isdigit`, `isnumeric`, `int()` or `float()` on such text
(tests/test_model_server/test_grammar.py walks the code to check).
"""

from __future__ import annotations

import re

MAX_DIGITS = 18  # fits an int64; a header or a port needs far fewer
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")
MAX_VERSION_CHARS = 100
# A version: ASCII letters and digits, with . _ + - between them (1, 3, v2, 2024-06-01, 1.0.0-rc1+build.5).
VERSION = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._+-]{{0,{MAX_VERSION_CHARS - 2}}}[A-Za-z0-9])?")
_VERSION_PARTS = re.compile(r"[._+-]")


class GrammarError(ValueError):
    """Text that is not in the grammar; the message says what was expected (never echoes it whole)."""


def is_digits(text: object) -> bool:
    """True for 1..18 ASCII digits and nothing else (no sign, space, underscore or other script)."""
    return isinstance(text, str) and _DIGITS.fullmatch(text) is not None


def parse_uint(text: object, what: str, *, maximum: int | None = None) -> int:
    """ASCII digits as a non-negative int (at most `maximum`), or GrammarError naming `what`."""
    if not is_digits(text):
        raise GrammarError(f"{what} must be ASCII digits (at most {MAX_DIGITS}), got {str(text)[:20]!r}")
    value = int(text)  # the grammar is checked: only ASCII digits reach int()
    if maximum is not None and value > maximum:
        raise GrammarError(f"{what} must be at most {maximum}, got {value}")
    return value


def is_version(text: object) -> bool:
    return isinstance(text, str) and VERSION.fullmatch(text) is not None


def check_version(text: str, what: str = "version") -> str:
    """`text` if it is a version in the grammar, else GrammarError ("WHAT must be ...")."""
    if not is_version(text):
        raise GrammarError(f"{what} must be 1-{MAX_VERSION_CHARS} ASCII letters or digits with . _ + - between "
                           "them (for example 3, v2, 1.0.0-rc1)")
    return text


def version_order(text: str) -> tuple:
    """A sort key in natural order: 2 < 10, numbers before words, whatever the text (stored rows
    from before the grammar included): a part is a number only when it is ASCII digits."""
    return tuple((0, int(p), "") if is_digits(p) else (1, 0, p) for p in _VERSION_PARTS.split(text))
