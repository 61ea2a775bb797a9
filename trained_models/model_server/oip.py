"""Open Inference Protocol v2 (KServe / Triton) REST codec, with the binary tensor extension.

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

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"


class OIPError(ValueError):
    """A malformed inference request; maps to HTTP 400."""


def parse_request(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """Split the body into the JSON header and the binary tail (binary tensor extension)."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise OIPError(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 <= n <= len(body):
            raise OIPError(f"{HEADER_LENGTH}={n} does not fit a body of {len(body)} bytes")
        head, tail = body[:n], body[n:]
    else:
        head, tail = body, b""
    try:
        req = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OIPError(f"request is not valid JSON: {e}") from None
    except RecursionError:
        raise OIPError("request JSON is nested too deeply") from None
    if not isinstance(req, dict):
        raise OIPError("request must be a JSON object")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise OIPError("request needs a non-empty 'inputs' list")
    return req, tail


def _shape(inp: dict) -> list[int]:
    shape = inp.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise OIPError(f"input {inp.get('name')!r}: 'shape' must be a list of non-negative integers")
    return shape


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


def decode_input(inp: dict, tail: bytes, offset: int) -> tuple[str, object, int]:
    """One input tensor -> ("bytes", [bytes...]) or ("fp32", ndarray); returns the new offset."""
    if not isinstance(inp, dict):
        raise OIPError("each input must be a JSON object")
    name = inp.get("name", "")
    dtype = inp.get("datatype")
    shape = _shape(inp)
    params = inp.get("parameters") or {}
    if not isinstance(params, dict):
        raise OIPError(f"input {name!r}: 'parameters' must be an object")
    size = params.get("binary_data_size")
    raw = None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(tail):
            raise OIPError(f"input {name!r}: binary_data_size {size!r} does not fit the binary data")
        raw, offset = tail[offset:offset + size], offset + size
    elif "data" not in inp:
        raise OIPError(f"input {name!r} has neither 'data' nor binary_data_size")

    count = int(np.prod(shape)) if shape else 1
    if dtype == "BYTES":
        if not (len(shape) == 1 or len(shape) == 2 and shape[1] == 1):
            raise OIPError(f"input {name!r}: BYTES images must have shape [N] (or [N, 1]), got {shape}")
        content_type = params.get("content_type")
        if content_type not in (None, "base64"):
            raise OIPError(f"input {name!r}: parameters.content_type {content_type!r} is not supported for images: "
                           "send them base64 in JSON (content_type 'base64') or raw in the binary extension")
        if raw is not None:
            return "bytes", _split_bytes(raw, count, name), offset
        data = inp["data"]
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
                arr = np.asarray(inp["data"], dtype=np.float32).ravel()
            except (TypeError, ValueError):
                raise OIPError(f"input {name!r}: 'data' must be numbers for FP32") from None
            if arr.size != count:
                raise OIPError(f"input {name!r}: shape {shape} needs {count} values, got {arr.size}")
        return "fp32", arr.reshape(shape).astype(np.float32, copy=False), offset
    raise OIPError(f"input {name!r}: datatype {dtype!r} not supported (use BYTES images or FP32 [N,H,W,3])")


def requested_outputs(req: dict, available: list[str]) -> list[tuple[str, bool]]:
    """(name, binary) of each output to return: the request's `outputs`, else all of them.

    `binary` follows Triton: the request's `parameters.binary_data_output` is the default, each
    requested output's `parameters.binary_data` overrides it.
    """
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise OIPError("'parameters' must be an object")
    default = bool(params.get("binary_data_output", False))
    outs = req.get("outputs")
    if outs is None:
        return [(name, default) for name in available]
    if not isinstance(outs, list):
        raise OIPError("'outputs' must be a list of {\"name\": ...} objects")
    chosen = []
    for o in outs:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise OIPError("each requested output must be an object with a 'name'")
        if o["name"] not in available:
            raise OIPError(f"unknown output {o['name']!r}: this model's outputs are "
                           + ", ".join(repr(a) for a in available))
        p = o.get("parameters") or {}
        if not isinstance(p, dict):
            raise OIPError(f"output {o['name']!r}: 'parameters' must be an object")
        chosen.append((o["name"], bool(p.get("binary_data", default))))
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
