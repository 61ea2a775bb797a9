"""The two revisions of a KServe canary, as gate URLs.

With the annotation `serving.kserve.io/enable-tag-routing: "true"`, KServe lists the predictor's
revisions in `status.components.predictor.traffic[]`, the new one tagged `latest` and the one
it replaces `prev`, each with its own URL. From outside the mesh those host names do not
resolve: requests go to the ingress gateway with the revision's host in a `Host` header, which
the collector sends per URL (`URL#Host=...`, read by protocols/urls.parse_model_url).
"""

from __future__ import annotations

import json

from ..protocols.urls import BadURL, header_suffix, parse_target


class NotACanary(ValueError):
    pass


def revision_urls(doc: object, *, ingress: str | None = None, path: str = "") -> tuple[str, str]:
    """(prev, latest) gate URLs from `kubectl get inferenceservice NAME -o json`."""
    if not isinstance(doc, dict) or doc.get("kind") != "InferenceService":
        raise NotACanary("not an InferenceService (kubectl get inferenceservice NAME -o json)")
    traffic = (((doc.get("status") or {}).get("components") or {}).get("predictor") or {}).get("traffic")
    if not isinstance(traffic, list):
        raise NotACanary("status.components.predictor.traffic is missing: is the InferenceService ready?")
    tagged = {t.get("tag"): t.get("url") for t in traffic if isinstance(t, dict)}
    missing = [tag for tag in ("prev", "latest") if not isinstance(tagged.get(tag), str)]
    if missing:
        raise NotACanary(f"no {' or '.join(missing)} revision URL in status.components.predictor.traffic: set "
                         "canaryTrafficPercent and the annotation serving.kserve.io/enable-tag-routing: \"true\"")
    return _gate_url(tagged["prev"], ingress, path), _gate_url(tagged["latest"], ingress, path)


def _gate_url(revision_url: str, ingress: str | None, path: str) -> str:
    try:
        rev = parse_target(revision_url.rstrip("/") + path)
    except BadURL as e:
        raise NotACanary(f"revision URL {revision_url[:200]!r}: {e}") from None
    if ingress is None:
        return rev.url
    try:
        gateway = parse_target(ingress.rstrip("/") + path)
    except BadURL as e:
        raise NotACanary(f"--ingress: {e}") from None
    return gateway.url + header_suffix({"Host": rev.authority})


def read(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as e:
        raise NotACanary(f"not JSON: {e}") from None
