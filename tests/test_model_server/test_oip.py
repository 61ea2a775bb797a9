"""The Open Inference Protocol codec both sides use: requests parsed into typed messages, bad
binary headers refused."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from model_server import oip


def test_oip_bad_binary_header(client):
    r = client.post("/v2/models/colors/infer", data=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400 and "does not fit" in r.get_json()["error"]


def _binary_request(inputs: list[dict], tail: bytes) -> tuple[bytes, str]:
    head = json.dumps({"inputs": inputs}).encode()
    return head + tail, str(len(head))


def test_a_binary_request_splits_into_its_typed_header_and_each_tensor():
    images = [b"\x89PNG one", b"\x89PNG two!"]
    packed = b"".join(struct.pack("<I", len(b)) + b for b in images)
    pixels = np.arange(2 * 2 * 2 * 3, dtype="<f4")
    body, length = _binary_request([
        {"name": "images", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(packed)}},
        {"name": "x", "datatype": "FP32", "shape": [2, 2, 2, 3], "parameters": {"binary_data_size": pixels.nbytes}},
    ], packed + pixels.tobytes())
    req, tail = oip.parse_request(body, length)
    assert [i.name for i in req.inputs] == ["images", "x"]
    kind, blobs, offset = oip.decode_input(req.inputs[0], tail, 0)
    assert (kind, blobs, offset) == ("bytes", images, len(packed))
    kind, arr, offset = oip.decode_input(req.inputs[1], tail, offset)
    assert kind == "fp32" and arr.shape == (2, 2, 2, 3) and np.array_equal(arr.ravel(), pixels)
    assert offset == len(tail)


@pytest.mark.parametrize("inputs,tail,words", [
    ([{"name": "i", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}],
     struct.pack("<I", 5) + b"abcde", "shape says 2 elements"),
    ([{"name": "i", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 8}}],
     struct.pack("<I", 50) + b"abcd", "longer than the data"),
    ([{"name": "i", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 4}}],
     b"\0\0\0\0", "do not make an FP32 tensor"),
    ([{"name": "i", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 40}}],
     b"\0\0\0\0", "does not fit the binary data"),
    ([{"name": "i", "datatype": "INT8", "shape": [1], "data": [1]}], b"", "not supported"),
    ([{"name": "i", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}], b"", "invalid base64"),
    ([{"name": "i", "datatype": "BYTES", "shape": [1]}], b"", "neither 'data' nor binary_data_size"),
])
def test_a_tensor_that_does_not_fit_its_declaration_is_refused_by_name(inputs, tail, words):
    body, length = _binary_request(inputs, tail)
    req, rest = oip.parse_request(body, length)
    with pytest.raises(oip.OIPError, match=words):
        oip.decode_input(req.inputs[0], rest, 0)


@pytest.mark.parametrize("body,length,words", [
    (b'{"inputs": []}', None, "invalid inference request"),
    (b"{not json", None, "not valid JSON"),
    (b'{"inputs": [{"name": "i", "datatype": "FP32", "shape": [1]}]}', "-1", "Inference-Header-Content-Length"),
    (b"[" * 100_000 + b"]" * 100_000, None, "invalid inference request: Expected `object`"),
])
def test_a_request_header_that_is_not_one_is_a_clear_error(body, length, words):
    with pytest.raises(oip.OIPError, match=words):
        oip.parse_request(body, length)
