"""The collector's vocabulary: run statuses, image kinds, protocols and rules, named once."""

from __future__ import annotations

from enum import StrEnum

PROTOCOLS = ("native", "v2", "v1")  # how a model server is spoken to (protocols/urls.py reads it from a URL)
INPUT_MODES = ("bytes", "tensor")  # encoded images, or preprocessed FP32 tensors
RULES = ("scores", "mcnemar")  # the regression rules of compare.py
# What the collector determined about a model (models.metadata["collector"]; the first value of
# each is what a row that says nothing is read as). A server's own keys are kept apart.
IDENTITIES = ("declared", "behavioural")  # the server's fingerprint, or one computed from its answers
SCORE_KINDS = ("probabilities", "logits (softmax applied)")
BACKENDS = ("", "keras", "litert")  # the runtime a server announced; "" when it said none


class RunStatus(StrEnum):
    """What happened to one model in one collection; all but SKIPPED and ERROR are stored in
    `runs.status` (those two start no run)."""

    RUNNING = "running"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"  # stopped by an error after some answers were stored
    FAILED = "failed"  # stopped with nothing stored: every image rejected, or invalid answers
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or a process that died while running
    SKIPPED = "skipped"  # nothing to send: already evaluated (its stored answers asked again agreed)
    ERROR = "error"  # never started: the server could not be reached or described itself badly


FAILED_STATUSES = frozenset({RunStatus.INCOMPLETE, RunStatus.FAILED, RunStatus.ERROR})


class ImageKind(StrEnum):
    PHOTO = "photo"
    SPRITE = "sprite"
    LOOKALIKE = "lookalike"  # an unknown-class probe: no right answer, only a confidence
    PERTURBED = "perturbed"  # a copy of a labelled image with a perturbation (perturb.py): judged apart


NOT_CLEAN = (ImageKind.LOOKALIKE.value, ImageKind.PERTURBED.value)  # kinds the per-class verdict leaves out


def is_probe(kind: str) -> bool:
    """A lookalike probe: sent to every model, never scored as right or wrong."""
    return kind == ImageKind.LOOKALIKE


def is_clean(kind: str) -> bool:
    """A labelled test image as it is on disk (not a probe, not a perturbed copy)."""
    return kind not in NOT_CLEAN
