"""Models and verdicts exported to a real MLflow tracking server, read back with MlflowClient."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import threading
from pathlib import Path

import pytest
import xmlschema
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from PIL import Image

from collector.analysis.reports import model_report
from collector.outputs.mlflow_export import ExportError, MlflowExport, export_models, metric_key
from collector.storage import store
from helpers import engine_for, free_port, run_cli, store_model
from peers.mlflow_server import MlflowServer

XSD = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "ci-schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as srv:
        yield srv


@pytest.fixture
def experiment(request):
    """An experiment name of this test's own."""
    return "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]


def _runs(client: MlflowClient, experiment: str, view=ViewType.ACTIVE_ONLY):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], run_view_type=view) if exp else []


def _by_kind(runs, kind):
    return [r for r in runs if r.data.tags.get("pokemon_tester.kind") == kind]


def _artifact(client, run_id, name, tmp_path) -> Path:
    return Path(client.download_artifacts(run_id, name, str(tmp_path)))


def test_export_writes_a_run_per_model_and_reads_back(mlflow_server, pokemon_db, experiment, tmp_path):
    r = run_cli("--db", pokemon_db, "export", "mlflow", "--tracking-uri", mlflow_server.url,
                "--experiment", experiment)
    assert r.exit_code == 0, r.output
    client = MlflowClient(mlflow_server.url)
    runs = _by_kind(_runs(client, experiment), "model")
    assert len(runs) == 2 and all(x.info.status == "FINISHED" for x in runs)
    engine = engine_for(pokemon_db)
    with engine.connect() as conn:
        models = {m.fingerprint: m for m in store.list_models(conn)}
        reports = {fp: model_report(m, store.load_rows(conn, model_id=m.id)) for fp, m in models.items()}
        hashes = {fp: store.evaluation_facts(conn, model_id=m.id)[0] for fp, m in models.items()}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        fp = tags["model.fingerprint"]
        m, rep = models[fp], reports[fp]
        assert run.info.run_id in r.output and run.info.run_name == m.title
        assert (tags["model.name"], tags["model.version"]) == ("pokemon", m.version)
        assert tags["model.identity"] == "declared" and tags["model.protocol"] == m.protocol
        assert tags["test_set.hash"] == hashes[fp] and len(hashes[fp]) == 64
        assert metrics["accuracy_score"] == pytest.approx(rep["accuracy"])
        assert metrics["example_count"] == rep["n"]
        for lab, c in rep["classes"].items():
            assert metrics[f"recall_{lab}"] == pytest.approx(c["recall"])
            for kind, value in (("precision", c["precision"]), ("f1", c["f1"])):
                # Undefined (nothing predicted as the class): no value rather than a made-up 0.
                assert metrics.get(f"{kind}_{lab}") == (None if value is None else pytest.approx(value))
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert names == {"per_class_metrics.csv", "confusion_matrix.png", "report.html"}
        rows = list(csv.DictReader(io.StringIO(_artifact(client, run.info.run_id, "per_class_metrics.csv",
                                                         tmp_path / run.info.run_id).read_text())))
        assert [x["positive_class"] for x in rows] == list(rep["classes"])
        assert [int(x["support"]) for x in rows] == [c["support"] for c in rep["classes"].values()]
        with Image.open(_artifact(client, run.info.run_id, "confusion_matrix.png", tmp_path / "png")) as im:
            assert im.format == "PNG" and im.width > 300
        html = _artifact(client, run.info.run_id, "report.html", tmp_path / "html").read_text()
        assert m.fingerprint[:12] in html
    v2 = next(x for x in runs if x.data.tags["model.version"] == "2")
    assert v2.data.metrics["recall_pikachu"] == 0.0  # the injected regression


def test_exporting_again_updates_and_never_duplicates(mlflow_server, pokemon_db, experiment):
    args = ("--db", pokemon_db, "export", "mlflow", "--tracking-uri", mlflow_server.url, "--experiment", experiment)
    assert run_cli(*args).exit_code == 0
    client = MlflowClient(mlflow_server.url)
    first = {x.info.run_id: x for x in _runs(client, experiment)}
    some = next(iter(first))
    client.set_tag(some, "model.version", "tampered")
    assert run_cli(*args).exit_code == 0
    assert run_cli(*args, "pokemon@previous").exit_code == 0
    again = {x.info.run_id: x for x in _runs(client, experiment, ViewType.ALL)}
    assert set(again) == set(first)
    assert again[some].data.tags["model.version"] == first[some].data.tags["model.version"] != "tampered"
    for run_id in again:
        for key in ("accuracy_score", "recall_pikachu"):
            assert len(client.get_metric_history(run_id, key)) == 1, (run_id, key)
        assert [a.path for a in client.list_artifacts(run_id)].count("report.html") == 1
    # A deleted run comes back instead of a second one.
    client.delete_run(some)
    assert run_cli(*args).exit_code == 0
    assert len(_runs(client, experiment)) == 2 and client.get_run(some).info.lifecycle_stage == "active"


def test_compare_exports_the_verdict_linked_to_both_model_runs(mlflow_server, pokemon_db, experiment, tmp_path):
    args = ("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--mlflow-uri", mlflow_server.url)
    env = {"MLFLOW_EXPERIMENT_NAME": experiment}
    r = run_cli(*args, env=env)
    assert r.exit_code == 1 and "REGRESSION" in r.output
    assert "MLflow: comparison regression: run" in r.output
    client = MlflowClient(mlflow_server.url)
    runs = _runs(client, experiment)
    (comp,) = _by_kind(runs, "comparison")
    models = {x.data.tags["model.fingerprint"]: x.info.run_id for x in _by_kind(runs, "model")}
    tags = comp.data.tags
    assert tags["verdict"] == "regression" and tags["regressed_classes"] == "pikachu"
    assert tags["baseline.run_id"] == models[tags["baseline.fingerprint"]]
    assert tags["candidate.run_id"] == models[tags["candidate.fingerprint"]]
    assert tags["baseline.run_id"] in tags["mlflow.note.content"]
    assert comp.data.metrics["regressed_class_count"] == 1 and comp.data.metrics["accuracy_change_pikachu"] == -1.0
    assert tags["reasons"] == "regressed pikachu"
    assert comp.data.metrics["ece_change"] == pytest.approx(
        comp.data.metrics["ece_candidate"] - comp.data.metrics["ece_baseline"])
    names = {a.path for a in client.list_artifacts(comp.info.run_id)}
    assert names == {"verdict.json", "junit.xml", "summary.md", "comparison.html"}
    verdict = json.loads(_artifact(client, comp.info.run_id, "verdict.json", tmp_path).read_text())
    assert verdict["regressed_classes"] == ["pikachu"]
    junit = _artifact(client, comp.info.run_id, "junit.xml", tmp_path).read_text()
    xmlschema.XMLSchema10(XSD).validate(junit)
    # Again, and through gate: the same three runs.
    assert run_cli(*args, env=env).exit_code == 1
    g = run_cli("--db", pokemon_db, "gate", "pokemon@previous", "pokemon", "--mlflow-uri", mlflow_server.url,
                "--report-dir", str(tmp_path / "r"), env=env)
    assert g.exit_code == 1, g.output
    assert sorted(x.info.run_id for x in _runs(client, experiment, ViewType.ALL)) == \
        sorted(x.info.run_id for x in runs)


HOSTILE = ["a/b", "..", "x:y", "=HYPERLINK(\"http://e.test\")", "<script>", "pika chu", "a_b", "a b"]


def test_class_names_mlflow_cannot_take_are_made_keys_and_kept_in_the_csv(mlflow_server, tmp_path, experiment):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = engine_for(db)
    answers = [(hashlib.sha256(f"{lab}{i}".encode()).hexdigest(), lab, "photo", lab) for lab in HOSTILE
               for i in range(3)]
    store_model(engine, name="odd/../name", version="1", fingerprint="a" * 64, labels=HOSTILE, answers=answers)
    r = run_cli("--db", db, "export", "mlflow", "--tracking-uri", mlflow_server.url, "--experiment", experiment)
    assert r.exit_code == 0, r.output
    client = MlflowClient(mlflow_server.url)
    (run,) = _runs(client, experiment)
    recall_keys = sorted(k for k in run.data.metrics if k.startswith("recall_"))
    assert len(recall_keys) == len(HOSTILE)  # none lost to a collision
    assert all(v == 1.0 for k, v in run.data.metrics.items() if k.startswith("recall_"))
    text = _artifact(client, run.info.run_id, "per_class_metrics.csv", tmp_path).read_text()
    cells = [row["positive_class"] for row in csv.DictReader(io.StringIO(text))]
    assert cells == ["'" + x if x.startswith("=") else x for x in HOSTILE]  # no formula in a spreadsheet


def test_metric_keys_are_unique_and_valid():
    from mlflow.utils.validation import _validate_metric_name

    used: set[str] = set()
    keys = [metric_key("recall", lab, used) for lab in [*HOSTILE, "a_b", "../..", "é", "x" * 400]]
    assert len(set(keys)) == len(keys)
    for k in keys:
        _validate_metric_name(k)  # raises on a key MLflow refuses


def test_racing_exports_keep_one_run(mlflow_server, pokemon_db, experiment):
    engine = engine_for(pokemon_db)
    with engine.connect() as conn:
        ms = store.list_models(conn)[:1]
    MlflowExport(mlflow_server.url, experiment)  # the experiment exists before the race
    errors = []

    def go():
        try:
            export_models(engine, mlflow_server.url, experiment, ms)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert len(_runs(MlflowClient(mlflow_server.url), experiment)) == 1


def test_a_server_that_is_away_is_a_clear_error_and_the_verdict_stands(pokemon_db, experiment):
    away = f"http://127.0.0.1:{free_port()}"
    r = run_cli("--db", pokemon_db, "export", "mlflow", "--tracking-uri", away)
    assert r.exit_code == 2 and f"MLflow at {away} is not reachable" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Retrying" not in r.output, r.output  # no urllib3 noise
    c = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--mlflow-uri", away,
                env={"GITHUB_ACTIONS": "true"})
    assert c.exit_code == 1 and "REGRESSION" in c.output
    assert "warning: MLflow export failed, the verdict stands" in c.output
    assert "::warning title=MLflow export failed::" in c.output
    assert run_cli("--db", pokemon_db, "export", "mlflow").exit_code == 2  # no URI at all
    creds = run_cli("--db", pokemon_db, "export", "mlflow", "--tracking-uri",
                    away.replace("http://", "http://user:s3cret-value@"))
    assert creds.exit_code == 2 and "s3cret-value" not in creds.output


def test_without_the_client_the_message_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ExportError, match=r"pip install 'pokemon-classifier-tester\[mlflow\]'"):
        MlflowExport("http://127.0.0.1:1", "x")


def test_a_deleted_experiment_is_named(mlflow_server, experiment):
    client = MlflowClient(mlflow_server.url)
    client.delete_experiment(client.create_experiment(experiment))
    with pytest.raises(ExportError, match="is deleted in MLflow"):
        MlflowExport(mlflow_server.url, experiment)
