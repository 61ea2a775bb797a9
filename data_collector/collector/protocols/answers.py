"""What a model server may say, as types: every answer is decoded into these before anything reads it.

msgspec decodes the bytes straight into the types below (OIP v2's are in `model_server.oip`, the
codec the server parses its requests with): unknown fields are ignored, every field that is read
has a type, strings a length cap, numbers a range (checked before any conversion: a 400-digit
integer is "out of range", never an OverflowError), floats are finite (JSON has no NaN, and
probabilities are within [0, 1]). Names, versions, labels and fingerprints holding control or
format characters (ANSI, CR/LF, zero-width, bidi overrides) or leading/trailing space are refused.
A violation raises InvalidAnswer naming the field; the caller fails that model only.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from model_server.grammar import GrammarError, check_version
from model_server.native import (  # the types the server answers with, for the collector's checks
    MAX_BATCH_ANSWERS,
    MAX_VERSION_CHARS,
    AnsweringModel,  # noqa: F401
    VersionNumber,
    decoder_for,
)
from model_server.native import Answer as NativeAnswer  # noqa: F401 - the collector's names for the shared types
from model_server.native import Metadata as _Metadata
from model_server.native import Prediction as NativePrediction  # noqa: F401

from ..text import unsafe_chars

KNOWN_BACKENDS = ("keras", "litert")  # what a native server may say it runs on (anything else: not shown)


class InvalidAnswer(ValueError):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


class ModelChanged(Exception):
    def __init__(self, fingerprint: str, version: str):
        super().__init__(fingerprint)
        self.fingerprint, self.version = fingerprint, version


def check_text(value: str, field: str) -> str:
    """A name, version or label as the boundary accepts it: shown as itself, no outer spaces."""
    if unsafe_chars(value):
        raise InvalidAnswer(field, "contains control or format characters")
    if value != value.strip():
        raise InvalidAnswer(field, "has leading or trailing space")
    return value


def version_text(v: str | int, field: str) -> str:
    """A version as text, in the one grammar (model_server.grammar): `3²` or `v 2` is refused here."""
    if not isinstance(v, str):
        return str(v)
    check_text(v, field)
    try:
        return check_version(v, "is not a version: it")
    except GrammarError as e:
        raise InvalidAnswer(field, str(e)) from None


def check_labels(labels: list[str], field: str) -> list[str]:
    for i, lab in enumerate(labels):
        check_text(lab, f"{field}[{i}]")
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise InvalidAnswer(field, f"label {dup!r} appears more than once")
    return labels


# ---- this project's API: GET /metadata, POST /predict ----------------------------------------
_HEXLIKE = re.compile(r"[0-9A-Fa-f]{4,}")


def check_name(name: str, field: str = "name") -> str:
    """A model name that can only be read as a name: selectors (selectors.pick) read 4+ hex digits
    as a fingerprint prefix, `@` as NAME@VERSION and `fp:`/`sha256:` as a typed fingerprint."""
    check_text(name, field)
    if _HEXLIKE.fullmatch(name):
        raise InvalidAnswer(field, "looks like a fingerprint (only hex digits): a name must not read as one")
    if "@" in name or name.lower().startswith(("fp:", "sha256:")):
        raise InvalidAnswer(field, "holds '@' or starts with fp:/sha256:, which selectors read as a version "
                                   "or a fingerprint")
    return name


class NativeMetadata(_Metadata):
    """`GET /metadata` with the boundary's checks: names that read only as names, versions in the
    one grammar, labels without control characters or duplicates."""

    def __post_init__(self):
        check_name(self.name)
        version_text(self.version, "version")
        check_labels(self.labels, "labels")


# ---- TF Serving / KServe v1 --------------------------------------------------------------------
class V1VersionStatus(msgspec.Struct):
    version: Annotated[str, msgspec.Meta(max_length=MAX_VERSION_CHARS)] | VersionNumber | None = None
    state: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class V1Status(msgspec.Struct):
    model_version_status: Annotated[list[V1VersionStatus], msgspec.Meta(max_length=1000)] | None = None
    ready: bool | None = None


class V1Answer(msgspec.Struct):
    predictions: Annotated[list[Any], msgspec.Meta(max_length=MAX_BATCH_ANSWERS)]


T = TypeVar("T")


def decode(body: bytes, kind: type[T], what: str) -> T:
    """`body` as `kind`, or InvalidAnswer(what, the field and the problem); never another exception."""
    try:
        return decoder_for(kind).decode(body)
    except msgspec.ValidationError as e:  # a __post_init__'s InvalidAnswer arrives as one too
        raise InvalidAnswer(what, str(e)) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise NotJSON from None


class NotJSON(Exception):
    """The body is not JSON (or is nested deeper than anything decodes)."""


def convert(obj: Any, kind: type[T], what: str) -> T:
    """A Python value (what the collector assembled from a foreign server's answer) as `kind`."""
    decoder_for(kind)  # the type's layout worked out once, under the lock (see decoder_for)
    try:
        return msgspec.convert(obj, kind, strict=True)
    except msgspec.ValidationError as e:
        raise InvalidAnswer(what, str(e)) from None


# Every answer type's decoder built now, while importing is single-threaded (decoder_for).
for _kind in (NativeMetadata, NativeAnswer, V1Status, V1Answer):
    decoder_for(_kind)
