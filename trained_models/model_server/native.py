"""This project's native API as types: one definition for the server that answers and the
collector that reads (`collector.protocols.answers`).

The server builds every `POST /predict` answer from these structs and encodes it with msgspec;
the collector decodes a server's bytes straight into the same structs, so both sides agree on
each field's type and bound: strings have a length cap, probabilities lie in [0, 1], lists and
score maps have a maximum size, unknown fields are ignored. `decoder_for` is the one msgspec
decoder per type both protocols' codecs use (this module needs no numpy, so neither does the
collector's native path).
"""

from __future__ import annotations

import threading
from typing import Annotated

import msgspec

MAX_LABELS = 1000
MAX_LABEL_CHARS = 200  # the collector stores labels in String(200) columns
MAX_NAME_CHARS = 200
MAX_VERSION_CHARS = 100
MAX_BATCH_ANSWERS = 4096  # predictions in one answer (a batch is at most 256 images)
MAX_VERSION_NUMBER = 2**53  # an integer version, bounded before it becomes text

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LABEL_CHARS)]
VersionText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_VERSION_CHARS)]
VersionNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_VERSION_NUMBER)]
Version = VersionText | VersionNumber
Fingerprint = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Labels = Annotated[list[Label], msgspec.Meta(min_length=1, max_length=MAX_LABELS)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Backend = Annotated[str, msgspec.Meta(max_length=40)]
Milliseconds = Annotated[float, msgspec.Meta(ge=0.0)]


class Metadata(msgspec.Struct):
    """What `GET /metadata` says of the model (the collector reads these fields; the server says more)."""

    name: Name
    version: Version
    fingerprint: Fingerprint
    labels: Labels
    backend: Backend | None = None


class AnsweringModel(msgspec.Struct, omit_defaults=True):
    """The model that answered a request (a change of fingerprint during a run stops it)."""

    fingerprint: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    version: Version | None = None
    name: Name | None = None


class Prediction(msgspec.Struct):
    label: Label
    confidence: Probability
    scores: Annotated[dict[Label, Probability], msgspec.Meta(max_length=MAX_LABELS)]


class Timing(msgspec.Struct):
    decode: Milliseconds
    predict: Milliseconds
    total: Milliseconds


class Answer(msgspec.Struct, omit_defaults=True):
    """`POST /predict`: one prediction per image, in the order sent."""

    model: AnsweringModel
    predictions: Annotated[list[Prediction], msgspec.Meta(max_length=MAX_BATCH_ANSWERS)]
    timing_ms: Timing | None = None


_ENCODER = msgspec.json.Encoder()


def encode(answer: Answer) -> bytes:
    return _ENCODER.encode(answer)


_DECODERS: dict = {}
_DECODERS_LOCK = threading.Lock()


def decoder_for(kind) -> msgspec.json.Decoder:
    """One decoder per type, built once under a lock. msgspec works out a type's layout on its first
    use (resolving the string annotations of `from __future__ import annotations`), and two threads
    doing that at once for one type crashed the process (a segfault seen in `collect` under load);
    a built decoder is only read afterwards, safely from any thread."""
    found = _DECODERS.get(kind)
    if found is None:
        with _DECODERS_LOCK:
            found = _DECODERS.get(kind)
            if found is None:
                found = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return found
