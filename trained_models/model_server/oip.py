"""Open Inference Protocol v2 (KServe / Triton) REST codec, with the binary tensor extension.

The one codec of both sides: the server parses requests with these types, the collector parses
the answers of any OIP server with them (`collector.protocols.foreign.OIPClient`). Every message is
decoded by msgspec straight into typed structs: unknown fields are ignored, the fields read have
types, bounded strings and bounded integers (checked before any conversion); a body that does
not fit is a 400 here and an invalid answer there, never an exception that escapes.

Request inputs accepted:
- `images`-style BYTES tensor [N] (or [N, 1]) of encoded images (PNG, JPEG, ...). In JSON every
  element is a base64 string, whether or not `parameters.content_type` says "base64" (image bytes
  are not text, so a JSON string can only carry them encoded); in the binary tensor extension each
  element is a 4-byte little-endian length, then the raw bytes;
- FP32 tensor [N, H, W, 3] already preprocessed: JSON (flat or nested) or binary little-endian.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Annotated, Any

import msgspec
import numpy as np

from .grammar import GrammarError, parse_uint
from .native import decoder_for  # one decoder per type, shared by both protocols

HEADER_LENGTH = "Inference-Header-Content-Length"

Short = Annotated[str, msgspec.Meta(max_length=256)]
Dim = Annotated[int, msgspec.Meta(ge=-1, le=2**31 - 1)]  # -1: variable (metadata only)
Shape = Annotated[list[Dim], msgspec.Meta(max_length=8)]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**40)]
TextList = Annotated[list[Annotated[str, msgspec.Meta(max_length=1000)]], msgspec.Meta(max_length=10_000)]


class OIPError(ValueError):
    """A malformed inference request; maps to HTTP 400."""


# ---- the messages --------------------------------------------------------------------------------
class TensorParameters(msgspec.Struct, omit_defaults=True):
    binary_data_size: Size | None = None
    binary_data: bool | None = None
    content_type: Short | None = None


class TensorMetadata(msgspec.Struct, omit_defaults=True):
    name: Short
    datatype: Short
    shape: Shape


class ModelParameters(msgspec.Struct, omit_defaults=True):
    labels: TextList | None = None
    fingerprint: Short | None = None
    backend: Short | None = None
    preprocessing: dict[str, Any] | None = None


class ModelMetadata(msgspec.Struct, omit_defaults=True):
    """GET /v2/models/NAME[/versions/V]."""

    name: Short = ""
    versions: Annotated[list[Short | Annotated[int, msgspec.Meta(ge=0, le=2**53)]],
                        msgspec.Meta(max_length=1000)] | None = None
    platform: Short | None = None
    inputs: Annotated[list[TensorMetadata], msgspec.Meta(max_length=64)] = []
    outputs: Annotated[list[TensorMetadata], msgspec.Meta(max_length=64)] = []
    parameters: ModelParameters | None = None


class ServerMetadata(msgspec.Struct, omit_defaults=True):
    """GET /v2."""

    name: Short = ""
    version: Short | None = None
    extensions: TextList = []


class RequestInput(msgspec.Struct, omit_defaults=True):
    name: Short
    datatype: Short
    shape: Shape
    parameters: TensorParameters | None = None
    data: Any = msgspec.UNSET


class RequestOutput(msgspec.Struct, omit_defaults=True):
    name: Short
    parameters: TensorParameters | None = None


class RequestParameters(msgspec.Struct, omit_defaults=True):
    binary_data_output: bool | None = None


class InferenceRequest(msgspec.Struct, omit_defaults=True):
    """POST /v2/models/NAME[/versions/V]/infer (its JSON part)."""

    inputs: Annotated[list[RequestInput], msgspec.Meta(min_length=1, max_length=64)]
    id: Short | None = None
    outputs: Annotated[list[RequestOutput], msgspec.Meta(max_length=64)] | None = None
    parameters: RequestParameters | None = None


class ResponseOutput(msgspec.Struct, omit_defaults=True):
    name: Short
    datatype: Short
    shape: Shape
    parameters: TensorParameters | None = None
    data: list[Any] | None = None


class InferenceResponse(msgspec.Struct, omit_defaults=True):
    """The answer to an inference request (its JSON part)."""

    outputs: Annotated[list[ResponseOutput], msgspec.Meta(max_length=64)]
    model_name: Short = ""
    model_version: Short | Annotated[int, msgspec.Meta(ge=0, le=2**53)] | None = None
    id: Short | None = None


def encode(msg: msgspec.Struct) -> bytes:
    return msgspec.json.encode(msg)


def decode(raw: bytes, kind):
    """`raw` JSON as `kind`; msgspec's errors name the field (`at $.inputs[0].name`)."""
    return decoder_for(kind).decode(raw)


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """Split the body into the typed JSON header and the binary tail (binary tensor extension)."""
    if header_length is not None:
        try:
            n = parse_uint(header_length, HEADER_LENGTH)
        except GrammarError as e:
            raise OIPError(str(e)) from None
        if not 0 <= n <= len(body):
            raise OIPError(f"{HEADER_LENGTH}={n} does not fit a body of {len(body)} bytes")
        head, tail = body[:n], body[n:]
    else:
        head, tail = body, b""
    try:
        return decode(head, InferenceRequest), tail
    except msgspec.ValidationError as e:
        raise OIPError(f"invalid inference request: {e}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise OIPError(f"request is not valid JSON: {e}") from None
    except RecursionError:
        raise OIPError("request JSON is nested too deeply") from None


def _split_bytes(buf: bytes, count: int, name: str) -> list[bytes]:
    out, pos = [], 0
    while pos < len(buf):
        if pos + 4 > len(buf):
            raise OIPError(f"input {name!r}: truncated BYTES element length")
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + n > len(buf):
            raise OIPError(f"input {name!r}: BYTES element longer than the data")
        out.append(buf[pos:pos + n])
        pos += n
    if len(out) != count:
        raise OIPError(f"input {name!r}: shape says {count} elements, data has {len(out)}")
    return out


def decode_input(inp: RequestInput, tail: bytes, offset: int) -> tuple[str, object, int]:
    """One input tensor -> ("bytes", [bytes...]) or ("fp32", ndarray); returns the new offset."""
    name, dtype, shape = inp.name, inp.datatype, inp.shape
    if any(d < 0 for d in shape):
        raise OIPError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    params = inp.parameters or TensorParameters()
    size = params.binary_data_size
    raw = None
    if size is not None:
        if offset + size > len(tail):
            raise OIPError(f"input {name!r}: binary_data_size {size!r} does not fit the binary data")
        raw, offset = tail[offset:offset + size], offset + size
    elif inp.data is msgspec.UNSET:
        raise OIPError(f"input {name!r} has neither 'data' nor binary_data_size")

    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dtype == "BYTES":
        if not (len(shape) == 1 or len(shape) == 2 and shape[1] == 1):
            raise OIPError(f"input {name!r}: BYTES images must have shape [N] (or [N, 1]), got {shape}")
        if params.content_type not in (None, "base64"):
            raise OIPError(f"input {name!r}: parameters.content_type {params.content_type!r} is not supported for "
                           "images: send them base64 in JSON (content_type 'base64') or raw in the binary extension")
        if raw is not None:
            return "bytes", _split_bytes(raw, count, name), offset
        data = inp.data
        if not isinstance(data, list) or len(data) != count or not all(isinstance(d, str) for d in data):
            raise OIPError(f"input {name!r}: 'data' must be {count} base64 strings")
        try:
            return "bytes", [base64.b64decode(d, validate=True) for d in data], offset
        except (binascii.Error, ValueError):
            raise OIPError(f"input {name!r}: 'data' holds invalid base64") from None
    if dtype == "FP32":
        if raw is not None:
            if len(raw) != count * 4:
                raise OIPError(f"input {name!r}: {len(raw)} bytes do not make an FP32 tensor of shape {shape}")
            arr = np.frombuffer(raw, dtype="<f4")
        else:
            try:
                arr = np.asarray(inp.data, dtype=np.float32).ravel()
            except (TypeError, ValueError, OverflowError):
                raise OIPError(f"input {name!r}: 'data' must be numbers for FP32") from None
            if arr.size != count:
                raise OIPError(f"input {name!r}: shape {shape} needs {count} values, got {arr.size}")
        return "fp32", arr.reshape(shape).astype(np.float32, copy=False), offset
    raise OIPError(f"input {name!r}: datatype {dtype!r} not supported (use BYTES images or FP32 [N,H,W,3])")


def requested_outputs(req: InferenceRequest, available: list[str]) -> list[tuple[str, bool]]:
    """(name, binary) of each output to return: the request's `outputs`, else all of them.

    `binary` follows Triton: the request's `parameters.binary_data_output` is the default, each
    requested output's `parameters.binary_data` overrides it.
    """
    default = bool(req.parameters and req.parameters.binary_data_output)
    if req.outputs is None:
        return [(name, default) for name in available]
    chosen = []
    for o in req.outputs:
        if o.name not in available:
            raise OIPError(f"unknown output {o.name!r}: this model's outputs are "
                           + ", ".join(repr(a) for a in available))
        binary = o.parameters.binary_data if o.parameters and o.parameters.binary_data is not None else default
        chosen.append((o.name, bool(binary)))
    if len({name for name, _ in chosen}) != len(chosen):
        raise OIPError("an output is requested twice")
    return chosen


def encode_bytes(items: list[bytes]) -> bytes:
    """BYTES elements in the binary extension: each a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def encode_response(*, model_name: str, model_version: str, request_id, probs: np.ndarray,
                    labels: list[str], outputs: list[tuple[str, bool]]) -> tuple[bytes, dict]:
    """The inference response holding `outputs` ((name, binary) from `requested_outputs`)."""
    n, k = probs.shape
    predicted = [labels[i] for i in np.argmax(probs, axis=1)] if n else []
    tensors = {
        "probabilities": ("FP32", [n, k], lambda: [float(v) for v in probs.ravel()],
                          lambda: probs.astype("<f4").tobytes()),
        "labels": ("BYTES", [n], lambda: predicted, lambda: encode_bytes([s.encode() for s in predicted])),
    }
    body, blobs = [], []
    for name, binary in outputs:
        datatype, shape, as_json, as_binary = tensors[name]
        out = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = as_binary()
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = as_json()
        body.append(out)
    resp = {"model_name": model_name, "model_version": model_version, "outputs": body}
    if request_id is not None:
        resp["id"] = request_id
    head = json.dumps(resp).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


# The decoders of the request and answer types built now, while importing is single-threaded.
for _kind in (InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata):
    decoder_for(_kind)
