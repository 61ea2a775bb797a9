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

import struct
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


# `POST /predict`'s request forms. IMAGE_BATCH is the fast one: the images one after the other, each
# after its length as 4 bytes little-endian (the layout of a BYTES tensor in the Open Inference
# Protocol's binary extension); no multipart parser, and its answer is a score matrix.
IMAGE_BATCH = "application/x-image-batch"
FORMS = ("multipart", "json", "image-batch")
FormName = Annotated[str, msgspec.Meta(max_length=40)]


class Metadata(msgspec.Struct):
    """What `GET /metadata` says of the model (the collector reads these fields; the server says more)."""

    name: Name
    version: Version
    fingerprint: Fingerprint
    labels: Labels
    backend: Backend | None = None
    predict_forms: Annotated[list[FormName], msgspec.Meta(max_length=20)] | None = None  # None: multipart, json


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


ScoreRow = Annotated[list[Probability], msgspec.Meta(max_length=MAX_LABELS)]


class Answer(msgspec.Struct, omit_defaults=True):
    """`POST /predict`: one prediction per image, in the order sent. To a multipart or JSON request,
    `predictions` (each with its label, confidence and a score per label); to an IMAGE_BATCH request,
    `labels` once and `scores`, a row per image in that label order (no object per image)."""

    model: AnsweringModel
    predictions: Annotated[list[Prediction], msgspec.Meta(max_length=MAX_BATCH_ANSWERS)] = []
    labels: Labels | None = None
    scores: Annotated[list[ScoreRow], msgspec.Meta(max_length=MAX_BATCH_ANSWERS)] | None = None
    timing_ms: Timing | None = None


_ENCODER = msgspec.json.Encoder()
_LENGTH = struct.Struct("<I")


def pack_images(images: list[bytes]) -> bytes:
    """An IMAGE_BATCH body."""
    return b"".join(_LENGTH.pack(len(data)) + data for data in images)


class TooManyImages(ValueError):
    pass


def unpack_images(body: bytes, max_images: int) -> list[bytes]:
    """The images of an IMAGE_BATCH body; ValueError saying where it breaks (TooManyImages past
    `max_images`)."""
    view, out, at = memoryview(body), [], 0
    while at < len(view):
        if len(out) >= max_images:
            raise TooManyImages(f"batch of more than {max_images} images is over the limit (MAX_BATCH)")
        if at + 4 > len(view):
            raise ValueError(f"image {len(out)}: {len(view) - at} byte(s) where its 4-byte length should be")
        (n,) = _LENGTH.unpack_from(view, at)
        if at + 4 + n > len(view):
            raise ValueError(f"image {len(out)}: its length says {n} bytes, {len(view) - at - 4} remain")
        out.append(bytes(view[at + 4:at + 4 + n]))
        at += 4 + n
    return out


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
