"""Response headers of the collector's own HTTP services (web view, deploy hook)."""

from __future__ import annotations

from flask import Flask, Response

SERVER_NAME = "data-collector"  # no product or language version in `Server`
HTML_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"


def secure_headers(app: Flask) -> None:
    """Every answer: `nosniff`, no framing, and `no-store` unless the view set a cache policy
    (thumbnails are named by their content and may be cached)."""

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = HTML_CSP if resp.mimetype == "text/html" else OTHER_CSP
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp
