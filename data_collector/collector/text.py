"""Text from model servers, requests and the database is data: shown literally, never run.

`literal` escapes every control and format character (Unicode Cc, Cf, Zl, Zp: ANSI and OSC
sequences, CR/LF, zero-width characters, bidi overrides) as a visible `\\x1b` / `\\u202e`, so a
stored name cannot clear a terminal, forge a line, hide a hyperlink or read as another name.
`unsafe_chars` is the boundary's test: names, versions and labels holding any of them are refused.
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _unsafe(c: str) -> bool:
    return unicodedata.category(c) in _UNSAFE_CATEGORIES


def unsafe_chars(text: str) -> bool:
    """True when `text` holds a character that is not shown as itself."""
    return any(_unsafe(c) for c in text)


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def literal(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character escaped (newlines kept when asked: our own line breaks)."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return s
    return "".join(c if (keep_newlines and c == "\n") or not _unsafe(c) else _escape(c) for c in s)
