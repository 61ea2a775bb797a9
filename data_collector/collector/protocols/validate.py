"""The checks on a model server's answers that types cannot state (`answers` holds the types):
what is stored of its metadata, and one prediction per image that is consistent with itself."""

from __future__ import annotations

import json
import math

from model_server.native import MAX_LABEL_CHARS, MAX_LABELS, MAX_NAME_CHARS, MAX_VERSION_CHARS

from .answers import (
    KNOWN_BACKENDS,
    InvalidAnswer,
    ModelChanged,
    NativeAnswer,
    NativeMetadata,
    convert,
    version_text,
)

__all__ = ["MAX_LABEL_CHARS", "MAX_LABELS", "MAX_NAME_CHARS", "MAX_VERSION_CHARS", "InvalidAnswer", "ModelChanged",
           "identity", "predictions", "stored_metadata"]

MAX_STORED_METADATA_BYTES = 64 * 1024  # what is kept of a server's own metadata in models.metadata
SUM_TOLERANCE = 0.01  # float32 probabilities of one image sum to 1 within this
MATCH_TOLERANCE = 1e-3  # confidence vs the score of the predicted label


def stored_metadata(m: NativeMetadata, *, facts: dict, server: dict | None = None) -> dict:
    """What is stored of a model: its checked identity, the collector's facts, the server's own
    extra keys as opaque JSON (dropped, and `server_truncated` set, past 64 KiB)."""
    out = {"name": m.name, "version": version_text(m.version, "metadata.version"), "fingerprint": m.fingerprint,
           "labels": list(m.labels), "collector": facts}
    if server:
        if len(json.dumps(server, default=str)) <= MAX_STORED_METADATA_BYTES:
            out["server"] = server
        else:
            out["server_truncated"] = True
    return out


def native_facts(m: NativeMetadata) -> dict:
    return {"identity": "declared", "protocol": "native", "scores": "probabilities",
            "backend": m.backend if m.backend in KNOWN_BACKENDS else None}


def identity(*, name, version, fingerprint: str, labels: list, facts: dict, server: dict | None = None) -> dict:
    """The stored metadata of a model the collector described itself (other serving stacks)."""
    m = convert({"name": name, "version": version, "fingerprint": fingerprint, "labels": labels},
                NativeMetadata, "metadata")
    return stored_metadata(m, facts=facts, server=server)


def predictions(answer: NativeAnswer, *, n_sent: int, labels: list[str], fingerprint: str,
                version: str) -> list[dict]:
    """One checked prediction per image sent, in order: {label, confidence, scores}.

    Raises ModelChanged when the answer names another model than the run started with.
    """
    got_fp, got_version = answer.model.fingerprint, answer.model.version
    if got_fp != fingerprint or (got_version is not None and str(got_version) != version):
        raise ModelChanged(str(got_fp)[:12], str(got_version)[:20])
    if answer.scores is not None or (answer.labels is not None and not answer.predictions):
        return _score_matrix(answer, n_sent=n_sent, labels=labels)  # (`labels` beside predictions: ignored)
    preds = answer.predictions
    if len(preds) != n_sent:
        raise InvalidAnswer("predictions", f"has {len(preds)} entries for {n_sent} images sent")
    known = set(labels)
    out = []
    for i, p in enumerate(preds):
        f = f"predictions[{i}]"
        if p.label not in known:
            raise InvalidAnswer(f"{f}.label", "is not one of the model's labels")
        if set(p.scores) != known:
            missing, extra = len(known - set(p.scores)), len(set(p.scores) - known)
            raise InvalidAnswer(f"{f}.scores", f"must cover exactly the model's labels ({missing} missing, "
                                               f"{extra} unknown)")
        vals = p.scores
        # Typed on the wire already; other stacks' answers are assembled here, so checked for all.
        for where, values in ((f"{f}.confidence", [p.confidence]), (f"{f}.scores", vals.values())):
            bad = next((v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)), None)
            if bad is not None:
                raise InvalidAnswer(where, f"must be finite and within [0, 1], got {bad:g}")
        total = math.fsum(vals.values())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise InvalidAnswer(f"{f}.scores", f"sum to {total:.4g}, not 1")
        if vals[p.label] < max(vals.values()) - MATCH_TOLERANCE:
            raise InvalidAnswer(f"{f}.label", "is not the label with the highest score")
        if abs(vals[p.label] - p.confidence) > MATCH_TOLERANCE:
            raise InvalidAnswer(f"{f}.confidence", f"{p.confidence:g} is not the score of the predicted label "
                                                   f"({vals[p.label]:g})")
        out.append({"label": p.label, "confidence": p.confidence, "scores": {lab: vals[lab] for lab in labels}})
    return out


def _score_matrix(answer: NativeAnswer, *, n_sent: int, labels: list[str]) -> list[dict]:
    """The answer to an image-batch request: the model's labels once, then a row of scores per image
    in that order; each image's label is its highest score (the first, at a tie)."""
    if answer.predictions:
        raise InvalidAnswer("predictions", "given beside a score matrix (one form per answer)")
    if answer.labels != labels:
        raise InvalidAnswer("labels", "are not the model's labels in the order its metadata gives")
    rows = answer.scores
    if rows is None or len(rows) != n_sent:
        raise InvalidAnswer("scores", f"has {0 if rows is None else len(rows)} rows for {n_sent} images sent")
    out = []
    for i, row in enumerate(rows):
        if len(row) != len(labels):
            raise InvalidAnswer(f"scores[{i}]", f"has {len(row)} scores for {len(labels)} labels")
        total = math.fsum(row)  # each within [0, 1] by its type
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise InvalidAnswer(f"scores[{i}]", f"sum to {total:.4g}, not 1")
        best = max(range(len(row)), key=row.__getitem__)
        out.append({"label": labels[best], "confidence": row[best], "scores": dict(zip(labels, row, strict=True))})
    return out
