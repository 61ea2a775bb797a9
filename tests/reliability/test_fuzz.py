"""schemathesis against openapi.yaml on a real server: no 5xx, no crash, responses match the spec.

`make test` runs a few examples per operation; `make reliability` runs RELIABILITY_EXAMPLES per
operation (>= 1,000 requests over the 13 operations).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

import model_server
from helpers import LiveServer, write_color_model

SPEC = yaml.safe_load((Path(model_server.__file__).parent / "openapi.yaml").read_text())
EXAMPLES = int(os.environ.get("RELIABILITY_EXAMPLES", "8"))
MIN_REQUESTS = int(os.environ.get("RELIABILITY_MIN_REQUESTS", "13"))
schema = schemathesis.openapi.from_dict(SPEC)
COUNT = {"requests": 0}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from model_server.app import create_app

    folder = write_color_model(tmp_path_factory.mktemp("fuzz") / "colors", ["red", "green", "blue"])
    app = create_app({"model_dir": str(folder), "load_async": False, "max_batch": 16})
    with LiveServer(app) as srv:
        yield srv.url
    print(f"schemathesis sent {COUNT['requests']} requests")
    assert COUNT["requests"] >= MIN_REQUESTS


# A schema-valid body need not be an image (b64 of random bytes): the server rightly answers 4xx,
# so "positive data acceptance" does not apply. Every other check does: no 5xx, declared status
# codes, content types, headers (Allow on 405) and response schemas.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, live):
    COUNT["requests"] += 1
    case.call_and_validate(base_url=live, excluded_checks=EXCLUDED)
