"""Response headers of the collector's own HTTP services (web view, deploy hook)."""

from __future__ import annotations

from flask import Flask, Response

SERVER_NAME = "data-collector"  # no product or language version in `Server`
HTML_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
# An image opened on its own is shown in the browser's image document, whose styles are its own
# inline ones (Chromium logs a refused style for each under default-src 'none').
IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"


def csp_for(mimetype: str) -> str:
    """A policy per content type: pages, images, everything else (JSON, text)."""
    if mimetype == "text/html":
        return HTML_CSP
    return IMAGE_CSP if mimetype.startswith("image/") else OTHER_CSP


def secure_headers(app: Flask) -> None:
    """Every answer: `nosniff`, no framing, and `no-store` unless the view set a cache policy
    (thumbnails are named by their content and may be cached)."""

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = csp_for(resp.mimetype or "")
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp
