"""text.py: what is shown of server, request and database text (the views: tests/features/test_hostile_text.py)."""

from __future__ import annotations

from collector.text import literal, unsafe_chars


def test_literal_escapes_controls_and_format_characters_only():
    assert literal("pikachu v2") == "pikachu v2"
    assert literal("Pokémon ピカチュウ") == "Pokémon ピカチュウ"  # printable text stays itself
    assert literal("a\x1b[2Jb\r\nc\u202ed\u200b") == "a\\x1b[2Jb\\x0d\\x0ac\\u202ed\\u200b"
    assert literal("line one\nline two", keep_newlines=True) == "line one\nline two"
    assert literal(3) == "3"


def test_unsafe_chars_is_the_boundarys_test():
    assert not unsafe_chars("ml_original 3.1-rc")
    assert unsafe_chars("ml\u200boriginal") and unsafe_chars("x\x00") and unsafe_chars("a\u2028b")
