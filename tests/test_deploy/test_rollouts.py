"""deploy/k8s/rollouts/: each kustomization builds, built-in kinds validate against Kubernetes'
schemas, and the controllers' kinds against their CRDs' openAPIV3Schema (tests/fixtures/crds),
with no field the schema does not know (a typo is an error, as kubectl's strict validation)."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from manifests import SCHEMAS, build, validate


def test_the_fixtures_hold_the_crds_of_the_three_controllers():
    assert {k for _, k in SCHEMAS} >= {"Canary", "Rollout", "AnalysisTemplate", "InferenceService"}


def test_flagger_canary_calls_the_three_gates():
    docs = build("flagger")
    for d in docs:
        validate(d)
    (canary,) = [d for d in docs if d["kind"] == "Canary"]
    hooks = {h["type"]: h for h in canary["spec"]["analysis"]["webhooks"]}
    assert set(hooks) == {"pre-rollout", "confirm-promotion", "rollback"}
    for phase, h in hooks.items():
        assert h["url"].endswith(f"/gates/flagger/{phase}")
        assert set(h["metadata"]) == {"candidate", "baseline", "token"}
        assert h["metadata"]["token"].startswith("change-me")  # no credential committed; refused if kept


def test_argo_rollout_and_both_analysis_templates():
    docs = build("argo")
    for d in docs:
        validate(d)
    web = next(d for d in docs if d["metadata"]["name"] == "classifier-gate-web")
    (metric,) = web["spec"]["metrics"]
    assert metric["provider"]["web"]["jsonPath"] == "{$.verdict}"
    assert metric["successCondition"] == 'result == "pass"'
    assert metric["inconclusiveLimit"] == metric["count"] - 1 and metric["consecutiveSuccessLimit"] == 1
    job = next(d for d in docs if d["metadata"]["name"] == "classifier-gate-job")
    (c,) = job["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["containers"]
    assert c["args"][:2] == ["data-collector", "gate"]
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert any("analysis" in s for s in steps)


def test_kserve_canary_and_its_least_privilege_gate_job():
    docs = build("kserve")
    for d in docs:
        validate(d)
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    assert 0 < isvc["spec"]["predictor"]["canaryTrafficPercent"] < 100
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
                              "resourceNames": [isvc["metadata"]["name"]], "verbs": ["get", "patch"]}]
    job = next(d for d in docs if d["kind"] == "Job")
    script = " ".join(" ".join(c.get("command", [])) for c in job["spec"]["template"]["spec"]["initContainers"])
    assert "data-collector kserve-urls" in script and "data-collector gate" in script


@pytest.mark.parametrize("break_it, error", [
    (lambda d: d["spec"]["analysis"]["webhooks"][0].update(type="pre-rolout"), jsonschema.ValidationError),
    (lambda d: d["spec"]["analysis"].update(stepWeigth=10), ValueError),
    (lambda d: d["spec"].pop("targetRef"), jsonschema.ValidationError),
])
def test_a_broken_canary_is_refused(break_it, error):
    (canary,) = [d for d in build("flagger") if d["kind"] == "Canary"]
    bad = copy.deepcopy(canary)
    break_it(bad)
    with pytest.raises(error):
        validate(bad)
