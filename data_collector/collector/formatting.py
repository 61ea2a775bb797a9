"""Number and time formatting shared by the terminal, HTML, Markdown and JSON outputs."""

from __future__ import annotations


def num(v: float | None, digits: int = 3, *, signed: bool = False) -> str:
    """`0.933`, `+0.050` with signed=True, `-` for a missing value."""
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def interval(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def iso(t, timespec: str = "auto") -> str | None:
    """A datetime as ISO 8601 (`timespec` as datetime.isoformat's), None for None."""
    return t.isoformat(timespec=timespec) if t is not None else None
