"""Request bodies, decompressed (`Content-Encoding: gzip` or `deflate`) within the body limit."""

from __future__ import annotations

import zlib

from flask import request

from .dataplane import ApiError

# zlib's wbits: gzip header, or zlib (RFC 1950) header; raw deflate is tried if the header is absent.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def read_body(limit: int) -> bytes:
    """The body as sent, decompressed if it says so; never more than `limit` bytes once decompressed."""
    data = request.get_data(cache=False)
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return data
    if encoding not in _WBITS:
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported: use gzip, deflate or none")
    out = _inflate(data, _WBITS[encoding], limit)
    if out is None and encoding == "deflate":  # some clients send raw deflate without the zlib header
        out = _inflate(data, -zlib.MAX_WBITS, limit)
    if out is None:
        raise ApiError(400, f"the body is not valid {encoding} data")
    return out


def _inflate(data: bytes, wbits: int, limit: int) -> bytes | None:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(out) > limit:
        raise ApiError(413, f"the decompressed body is over the limit of {limit} bytes (MAX_CONTENT_LENGTH)")
    if not d.eof:
        return None
    return out
