"""Number formatting shared by the terminal, HTML and Markdown outputs."""

from __future__ import annotations


def num(v: float | None, digits: int = 3, *, signed: bool = False) -> str:
    """`0.933`, `+0.050` with signed=True, `-` for a missing value."""
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def interval(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"
