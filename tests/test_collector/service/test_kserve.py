"""kserve.py and `data-collector kserve-urls`; per-URL headers (`URL#Host=...`) through a real
Host-routing ingress in front of two real model servers."""

from __future__ import annotations

import json

import pytest

from collector.protocols.urls import BadURL, split_headers
from collector.service.kserve import NotACanary, revision_urls
from helpers import LiveServer, run_cli, write_color_model

# The shape of KServe's documentation (canary rollout with tag routing), values of this test.
ISVC = {
    "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
    "metadata": {"name": "colors", "namespace": "models",
                 "annotations": {"serving.kserve.io/enable-tag-routing": "true"}},
    "spec": {"predictor": {"canaryTrafficPercent": 10}},
    "status": {"components": {"predictor": {
        "latestCreatedRevision": "colors-predictor-00002", "latestReadyRevision": "colors-predictor-00002",
        "traffic": [
            {"latestRevision": True, "percent": 10, "revisionName": "colors-predictor-00002", "tag": "latest",
             "url": "http://latest-colors-predictor.models.example.com"},
            {"latestRevision": False, "percent": 90, "revisionName": "colors-predictor-00001", "tag": "prev",
             "url": "http://prev-colors-predictor.models.example.com"}]}}},
}


def test_revision_urls_direct_and_through_an_ingress():
    assert revision_urls(ISVC) == ("http://prev-colors-predictor.models.example.com",
                                   "http://latest-colors-predictor.models.example.com")
    prev, latest = revision_urls(ISVC, ingress="http://istio-ingressgateway.istio-system", path="/v2/models/colors")
    assert prev == ("http://istio-ingressgateway.istio-system/v2/models/colors"
                    "#Host=prev-colors-predictor.models.example.com")
    assert split_headers(latest) == ("http://istio-ingressgateway.istio-system/v2/models/colors",
                                     {"Host": "latest-colors-predictor.models.example.com"})


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Deployment"}, "not an InferenceService"),
    ({"kind": "InferenceService", "status": {}}, "traffic is missing"),
    ({**ISVC, "status": {"components": {"predictor": {"traffic": [ISVC["status"]["components"]["predictor"]
                                                                 ["traffic"][0]]}}}}, "no prev revision"),
])
def test_what_is_not_a_canary_is_said(doc, message):
    with pytest.raises(NotACanary, match=message):
        revision_urls(doc)


@pytest.mark.parametrize("url", ["http://a#Host", "http://a#Content-Length=3", "http://a#Authorization=x",
                                 "http://a#Host=a%0d%0aX: y", "http://a#B@d=1"])
def test_headers_that_cannot_be_sent_are_refused(url):
    with pytest.raises(BadURL):
        split_headers(url)


class HostRouter:
    """An ingress: one socket, the app chosen by the Host header (404 for an unknown host)."""

    def __init__(self, apps: dict):
        self.apps = apps

    def __call__(self, environ, start_response):
        app = self.apps.get(environ.get("HTTP_HOST", "").split(":")[0])
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such host"]
        return app(environ, start_response)


def test_gate_through_one_ingress_with_a_host_header_per_revision(tmp_path, big_data):
    from model_server.app import create_app

    labels = ["red", "green", "blue"]
    prev = create_app({"model_dir": str(write_color_model(tmp_path / "p", labels, version="1")), "load_async": False})
    latest = create_app({"model_dir": str(write_color_model(tmp_path / "l", labels, version="2",
                                                            swap=("green", "blue"))), "load_async": False})
    db = f"sqlite:///{tmp_path / 'k.db'}"
    with LiveServer(HostRouter({"prev-colors.example.com": prev, "latest-colors.example.com": latest})) as gw:
        r = run_cli("--db", db, "gate", "--test-data", str(big_data), "--json",
                    f"{gw.url}#Host=prev-colors.example.com", f"{gw.url}#Host=latest-colors.example.com")
        out = json.loads(r.stdout)
        assert r.exit_code == 1 and out["verdict"] == "fail"
        assert (out["baseline"]["version"], out["candidate"]["version"]) == ("1", "2")
        r = run_cli("--db", db, "models", "--json")
        urls = sorted(u for m in json.loads(r.stdout) for u in m["urls"])
        assert urls == [f"{gw.url}#Host=latest-colors.example.com", f"{gw.url}#Host=prev-colors.example.com"]
        r = run_cli("--db", db, "collect", "--test-data", str(big_data), f"{gw.url}#Host=nobody.example.com")
        assert r.exit_code != 0 and "404" in r.output
