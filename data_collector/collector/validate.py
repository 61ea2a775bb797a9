"""What a model server answers is untrusted input: every field is checked before it is used or
stored. A violation raises InvalidAnswer naming the field; the caller fails that model only."""

from __future__ import annotations

import json
import math
import re

MAX_LABELS = 1000
MAX_LABEL_CHARS = 200  # images.label and predictions.predicted_label are String(200)
MAX_NAME_CHARS = 200
MAX_VERSION_CHARS = 100
MAX_STORED_METADATA_BYTES = 64 * 1024  # what is kept of a server's metadata in models.metadata
SUM_TOLERANCE = 0.01  # float32 probabilities of one image sum to 1 within this
MATCH_TOLERANCE = 1e-3  # confidence vs the score of the predicted label

FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class InvalidAnswer(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _text(value, field: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidAnswer(field, f"must be a string, got {_kind(value)}")
    if not value:
        raise InvalidAnswer(field, "must not be empty")
    if len(value) > max_chars:
        raise InvalidAnswer(field, f"has {len(value)} characters, more than {max_chars}")
    if _CONTROL.search(value):
        raise InvalidAnswer(field, "contains control characters")
    return value


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidAnswer(field, f"must be a number, got {_kind(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidAnswer(field, f"must be finite, got {v}")
    if not 0.0 <= v <= 1.0:
        raise InvalidAnswer(field, f"must be within [0, 1], got {v:g}")
    return v


def metadata(meta) -> dict:
    """The model's identity from its metadata, checked; returns what may be stored."""
    if not isinstance(meta, dict):
        raise InvalidAnswer("metadata", f"must be a JSON object, got {_kind(meta)}")
    for key in ("name", "version", "fingerprint", "labels"):
        if key not in meta:
            raise InvalidAnswer(f"metadata.{key}", "is missing: is this a model server?")
    name = _text(meta["name"], "metadata.name", MAX_NAME_CHARS)
    version = meta["version"]
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    version = _text(version, "metadata.version", MAX_VERSION_CHARS)
    fp = meta["fingerprint"]
    if not isinstance(fp, str) or not FINGERPRINT.fullmatch(fp):
        raise InvalidAnswer("metadata.fingerprint", "must be 64 lowercase hex characters (a sha256)")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels:
        raise InvalidAnswer("metadata.labels", f"must be a non-empty list, got {_kind(labels)}"
                            + (" (empty)" if labels == [] else ""))
    if len(labels) > MAX_LABELS:
        raise InvalidAnswer("metadata.labels", f"has {len(labels)} labels, more than {MAX_LABELS}")
    for i, lab in enumerate(labels):
        _text(lab, f"metadata.labels[{i}]", MAX_LABEL_CHARS)
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise InvalidAnswer("metadata.labels", f"label {dup!r} appears more than once")
    clean = {"name": name, "version": version, "fingerprint": fp, "labels": list(labels)}
    extra = {k: v for k, v in meta.items() if k not in clean}
    if len(json.dumps(extra, default=str)) <= MAX_STORED_METADATA_BYTES:
        clean.update({k: v for k, v in extra.items() if isinstance(k, str)})
    else:
        clean["metadata_truncated"] = True
    return clean


def predictions(body, *, n_sent: int, labels: list[str], fingerprint: str, version: str) -> list[dict]:
    """One checked prediction per image sent, in order: {label, confidence, scores}.

    Raises ModelChanged when the answer names another model than the run started with.
    """
    if not isinstance(body, dict):
        raise InvalidAnswer("response", f"must be a JSON object, got {_kind(body)}")
    model = body.get("model")
    if not isinstance(model, dict):
        raise InvalidAnswer("model", "missing: an answer must name the model that gave it")
    got_fp, got_version = model.get("fingerprint"), model.get("version")
    if got_fp != fingerprint or (got_version is not None and str(got_version) != version):
        raise ModelChanged(str(got_fp)[:12], str(got_version)[:20])
    preds = body.get("predictions")
    if not isinstance(preds, list):
        raise InvalidAnswer("predictions", f"must be a list, got {_kind(preds)}")
    if len(preds) != n_sent:
        raise InvalidAnswer("predictions", f"has {len(preds)} entries for {n_sent} images sent")
    known = set(labels)
    out = []
    for i, p in enumerate(preds):
        f = f"predictions[{i}]"
        if not isinstance(p, dict):
            raise InvalidAnswer(f, f"must be an object, got {_kind(p)}")
        label = p.get("label")
        if not isinstance(label, str) or label not in known:
            shown = repr(label)[:40] if isinstance(label, str) else _kind(label)
            raise InvalidAnswer(f"{f}.label", f"{shown} is not one of the model's labels")
        conf = _number(p.get("confidence"), f"{f}.confidence")
        scores = p.get("scores")
        if not isinstance(scores, dict):
            raise InvalidAnswer(f"{f}.scores", f"must be an object with one score per label, got {_kind(scores)}")
        if set(scores) != known:
            missing, extra = len(known - set(scores)), len(set(scores) - known)
            raise InvalidAnswer(f"{f}.scores", f"must cover exactly the model's labels ({missing} missing, "
                                               f"{extra} unknown)")
        vals = {k: _number(v, f"{f}.scores[{k!r}]") for k, v in scores.items()}
        total = math.fsum(vals.values())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise InvalidAnswer(f"{f}.scores", f"sum to {total:.4g}, not 1")
        if vals[label] < max(vals.values()) - MATCH_TOLERANCE:
            raise InvalidAnswer(f"{f}.label", f"{label!r} is not the label with the highest score")
        if abs(vals[label] - conf) > MATCH_TOLERANCE:
            raise InvalidAnswer(f"{f}.confidence", f"{conf:g} is not the score of {label!r} ({vals[label]:g})")
        out.append({"label": label, "confidence": conf, "scores": {lab: vals[lab] for lab in labels}})
    return out


class ModelChanged(Exception):
    def __init__(self, fingerprint: str, version: str):
        super().__init__(fingerprint)
        self.fingerprint, self.version = fingerprint, version
