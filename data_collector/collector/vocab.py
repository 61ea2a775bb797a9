"""The collector's vocabulary: run statuses and image kinds, named once."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """What happened to one model in one collection; all but SKIPPED and ERROR are stored in
    `runs.status` (those two start no run)."""

    RUNNING = "running"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"  # stopped by an error after some answers were stored
    FAILED = "failed"  # stopped with nothing stored: every image rejected, or invalid answers
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or a process that died while running
    SKIPPED = "skipped"  # nothing to send: already evaluated, or the same model at another URL
    ERROR = "error"  # never started: the server could not be reached or described itself badly


FAILED_STATUSES = frozenset({RunStatus.INCOMPLETE, RunStatus.FAILED, RunStatus.ERROR})


class ImageKind(StrEnum):
    PHOTO = "photo"
    SPRITE = "sprite"
    LOOKALIKE = "lookalike"  # an unknown-class probe: no right answer, only a confidence


def is_probe(kind: str) -> bool:
    """A lookalike probe: sent to every model, never scored as right or wrong."""
    return kind == ImageKind.LOOKALIKE
