"""openapi.yaml stays true: the same routes as the app, and real responses match its schemas."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import model_server
from helpers import COLORS, color_png
from model_server.app import create_app

SPEC = yaml.safe_load((Path(model_server.__file__).parent / "openapi.yaml").read_text())


@pytest.fixture(scope="module")
def client(color_model):
    return create_app({"model_dir": str(color_model), "load_async": False}).test_client()


def flask_routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        out |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def spec_routes() -> set[tuple[str, str]]:
    return {(p, m) for p, item in SPEC["paths"].items() for m in item if m in ("get", "post", "put", "delete")}


def test_spec_lists_exactly_the_app_routes(color_model):
    app = create_app({"model_dir": str(color_model), "load_async": False})
    assert flask_routes(app) == spec_routes()


def check(path: str, method: str, resp) -> None:
    op = SPEC["paths"][path][method]
    status = str(resp.status_code)
    assert status in op["responses"], f"{method.upper()} {path} answered {status}, not in the spec"
    content = op["responses"][status].get("content") or SPEC["components"]["responses"]["Error"]["content"]
    if "$ref" in op["responses"][status]:
        content = SPEC["components"]["responses"]["Error"]["content"]
    if resp.mimetype != "application/json":
        assert resp.mimetype in content or any(k.startswith("text/") for k in content)
        return
    schema = content["application/json"]["schema"]
    registry = Registry().with_resource("urn:api", Resource.from_contents(SPEC, default_specification=DRAFT202012))
    if "$ref" in schema:
        schema = {"$ref": "urn:api" + schema["$ref"]}
    else:
        schema = {"$ref": "urn:api#/paths/" + path.replace("~", "~0").replace("/", "~1") +
                  f"/{method}/responses/{status}/content/application~1json/schema"}
    Draft202012Validator(schema, registry=registry).validate(resp.get_json())


def test_responses_match_the_spec(client):
    png = color_png(COLORS["red"])
    b64 = base64.b64encode(png).decode()
    infer = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": [b64]}], "id": "x"}
    cases = [
        ("/health", "get", client.get("/health")),
        ("/metadata", "get", client.get("/metadata")),
        ("/predict", "post", client.post("/predict", data={"images": [(io.BytesIO(png), "a.png")]})),
        ("/predict", "post", client.post("/predict", json={"instances": [{"b64": b64}]})),
        ("/predict", "post", client.post("/predict", json={"instances": []})),
        ("/predict", "post", client.post("/predict", data=b"x", content_type="text/plain")),
        ("/metrics", "get", client.get("/metrics")),
        ("/v2", "get", client.get("/v2")),
        ("/v2/health/live", "get", client.get("/v2/health/live")),
        ("/v2/health/ready", "get", client.get("/v2/health/ready")),
        ("/v2/models/{name}", "get", client.get("/v2/models/colors")),
        ("/v2/models/{name}", "get", client.get("/v2/models/other")),
        ("/v2/models/{name}/versions/{version}", "get", client.get("/v2/models/colors/versions/1")),
        ("/v2/models/{name}/ready", "get", client.get("/v2/models/colors/ready")),
        ("/v2/models/{name}/versions/{version}/ready", "get", client.get("/v2/models/colors/versions/1/ready")),
        ("/v2/models/{name}/infer", "post", client.post("/v2/models/colors/infer", json=infer)),
        ("/v2/models/{name}/infer", "post", client.post("/v2/models/colors/infer", json={"inputs": []})),
        ("/v2/models/{name}/versions/{version}/infer", "post",
         client.post("/v2/models/colors/versions/1/infer", json=infer)),
        ("/v2/models/{name}/config", "get", client.get("/v2/models/colors/config")),
        ("/v2/models/{name}/versions/{version}/config", "get", client.get("/v2/models/colors/versions/1/config")),
        ("/v2/repository/index", "post", client.post("/v2/repository/index")),
        ("/v2/repository/models/{name}/load", "post", client.post("/v2/repository/models/colors/load")),
        ("/v2/repository/models/{name}/unload", "post", client.post("/v2/repository/models/colors/unload")),
        ("/v2/models/stats", "get", client.get("/v2/models/stats")),
        ("/v2/models/{name}/stats", "get", client.get("/v2/models/colors/stats")),
    ]
    for path, method, resp in cases:
        check(path, method, resp)


def test_a_response_off_the_spec_is_caught(client):
    """The checker itself can fail: a metadata body without its fingerprint is rejected."""
    import jsonschema

    resp = client.get("/metadata")
    body = resp.get_json()
    del body["fingerprint"]
    registry = Registry().with_resource("urn:api", Resource.from_contents(SPEC, default_specification=DRAFT202012))
    with pytest.raises(jsonschema.ValidationError):
        Draft202012Validator({"$ref": "urn:api#/components/schemas/Metadata"}, registry=registry).validate(body)
