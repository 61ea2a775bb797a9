"""schemathesis against openapi.yaml on a real server: no 5xx, no crash, responses match the spec.

Positive and negative cases (bodies that break the schema: objects where strings belong, wrong
types, missing fields), per operation and through the spec's links (stateful: GET /metadata, then
the model it names over OIP v2). FUZZ_EXAMPLES per operation and mode (default 400: over 5,000
requests, under a minute on 2 idle cores), in `make test`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

import model_server
from helpers import LiveServer, write_color_model

SPEC = yaml.safe_load((Path(model_server.__file__).parent / "openapi.yaml").read_text())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
MIN_REQUESTS = int(os.environ.get("FUZZ_MIN_REQUESTS", "5000"))
STATEFUL_EXAMPLES = max(10, EXAMPLES // 4)
# The image-batch form is a binary body: sent as application/octet-stream bytes are (random bytes
# that break its framing must be a 400, never a 500).
schemathesis.serializer.alias("application/x-image-batch", "application/octet-stream")
schema = schemathesis.openapi.from_dict(SPEC)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
COUNT = {"requests": 0, "server_errors": 0}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from model_server.app import create_app

    folder = write_color_model(tmp_path_factory.mktemp("fuzz") / "colors", ["red", "green", "blue"])
    app = create_app({"model_dir": str(folder), "load_async": False, "max_batch": 16})
    with LiveServer(app) as srv:
        yield srv.url
    print(f"schemathesis sent {COUNT['requests']} requests; {COUNT['server_errors']} server errors")
    assert COUNT["requests"] >= MIN_REQUESTS
    assert COUNT["server_errors"] == 0


# A schema-valid body need not be an image (b64 of random bytes): the server rightly answers 4xx,
# so "positive data acceptance" does not apply; a negative case may still be one the server
# accepts (a schema stricter than the server), so "negative data rejection" does not either.
# Every other check does: no 5xx, declared status codes, content types, headers (Allow on 405),
# response schemas.
EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, live):
    COUNT["requests"] += 1
    # Three cases in four address the served model, so that bodies reach its handlers (a random
    # name is a 404 before the body is read); the fourth keeps the generated name and version.
    if COUNT["requests"] % 4 and case.path_parameters:
        if "name" in case.path_parameters:
            case.path_parameters["name"] = "colors"
        if "version" in case.path_parameters:
            case.path_parameters["version"] = "1"
    response = case.call(base_url=live)
    COUNT["server_errors"] += response.status_code >= 500
    case.validate_response(response, excluded_checks=EXCLUDED)


def test_api_conforms_through_its_links(live):
    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": live}

        def validate_response(self, response, case, **kwargs):
            COUNT["requests"] += 1
            COUNT["server_errors"] += response.status_code >= 500
            case.validate_response(response, excluded_checks=EXCLUDED)

    Workflow.run(settings=settings(max_examples=STATEFUL_EXAMPLES, deadline=None,
                                   suppress_health_check=list(HealthCheck), stateful_step_count=6))
