"""Evaluated models and verdicts as MLflow runs (`data-collector export mlflow`, `--mlflow-uri`).

One run per evaluated model, keyed by its fingerprint:
- tags `model.name`, `model.version`, `model.fingerprint`, `model.identity` (declared or
  behavioural), `model.protocol`, `model.backend`, `test_set.hash` (of the newest complete pass
  over the test set);
- metrics in MLflow's own names: `accuracy_score`, `example_count`, and per class
  `recall_<class>`, `precision_<class>`, `f1_<class>` (a class name MLflow cannot take as a key
  has its other characters replaced by `_`; `per_class_metrics.csv` keeps the real names);
- artifacts `per_class_metrics.csv`, `confusion_matrix.png`, `report.html`.

One run per comparison, keyed by both fingerprints and the rule: tags `verdict`, both
fingerprints and both model runs' ids (and links to them in the run's description), metrics
`regressed_class_count`, `images_compared` and per class `accuracy_change_<class>`,
`score_change_<class>`; artifacts `verdict.json`, `junit.xml`, `summary.md`, `comparison.html`.

Idempotent: a run is found again by its `pokemon_tester.key` tag; exporting again updates its tags
and artifacts, and metrics are logged at the time of the model's newest evaluation, so an
unchanged model adds no metric value (MLflow keeps one row per key, value, time and step) and a
re-evaluated one adds its new value as the latest. Exporters racing on one key all keep the
first-created run and delete their own.

The client is MLflow's (`mlflow-skinny`, the `[mlflow]` extra); its own variables apply
(MLFLOW_TRACKING_USERNAME / _PASSWORD / _TOKEN for a server with authentication).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from .. import __version__
from ..analysis.reports import identity_line, model_report
from ..formatting import num
from ..redact import redact_url
from ..storage import store
from ..text import literal
from . import ci_report, facets

KEY_TAG = "pokemon_tester.key"
NOTE_TAG = "mlflow.note.content"  # the run's description in MLflow's UI: our Markdown, escaped by ci_report.md
KIND_TAG = "pokemon_tester.kind"
CREATED_TAG = "pokemon_tester.created"  # nanoseconds at creation: of racing exporters, the first run is kept
MAX_TAG_CHARS = 5000  # MLflow takes 8000 a tag value
MAX_KEY_CHARS = 250  # MLflow's limit on metric keys
CONFUSION_LABELS_MAX = 60  # a larger confusion matrix is in the HTML report and the CSV, not drawn


class ExportError(Exception):
    """The export could not be done; the message says why and what to do."""


def _unreachable(message: str) -> str | None:
    """The cause in a connection failure's text (urllib3's "Max retries exceeded ... [Errno 111]
    Connection refused"), or None when the server answered."""
    if "Max retries exceeded" not in message and "Failed to establish a new connection" not in message:
        return None
    cause = re.search(r"\[Errno -?\d+\] ([^\"')]+)", message)
    return cause.group(1).strip() if cause else "no connection"


def _client_modules():
    try:
        from mlflow.entities import Metric, RunTag, ViewType
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ExportError("the MLflow client is not installed: pip install 'pokemon-classifier-tester[mlflow]' "
                          "(or mlflow-skinny)") from None
    return MlflowClient, Metric, RunTag, ViewType, MlflowException


_KEY_BAD = re.compile(r"[^\w.\- ]")


def metric_key(prefix: str, label: str, used: set[str]) -> str:
    """`prefix_label` as MLflow takes a metric key (letters, digits, `_ - . space`; no `..`),
    unique among `used`."""
    base = (prefix + "_" + _KEY_BAD.sub("_", label)).replace("..", "__")[:MAX_KEY_CHARS - 8].rstrip(". ")
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}_{n}"
    used.add(key)
    return key


def _cut(value: object, limit: int = MAX_TAG_CHARS) -> str:
    s = literal(value)
    return s if len(s) <= limit else s[:limit - 1] + "…"


def _fit(note: str) -> str:
    """A description MLflow takes (8000 characters a tag): cut at a line, saying so."""
    if len(note) <= MAX_TAG_CHARS:
        return note
    return note[:note.rfind("\n", 0, MAX_TAG_CHARS - 100)] + "\n\n(cut: see report.html)\n"


def model_markdown(rep: dict) -> str:
    """The model run's description: identity, accuracy, the per-class table."""
    m, md = rep["model"], ci_report.md
    lines = [f"**{md(m['name'])}** v{md(m['version'])} ({md(m['fingerprint'][:12])}): accuracy "
             f"{num(rep['accuracy'])} on {rep['n']} labelled test images  ", md(identity_line(m, with_url=False)), "",
             "| class | support | precision | recall | F1 | MDD |", "|---|--:|--:|--:|--:|--:|"]
    lines += [f"| {md(lab)} | {c['support']} | {num(c['precision'])} | {num(c['recall'])} | {num(c['f1'])} | "
              f"{num(c['min_detectable_drop'], 2)} |" for lab, c in rep["classes"].items()]
    lines += ["", "MDD: the smallest accuracy drop the class's images can show on answers alone."]
    return "\n".join(lines) + "\n"


def _csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: no formula from a class name (=, +, -, @, tab, CR)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def per_class_csv(rep: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["positive_class", "support", "precision", "recall", "f1score", "min_detectable_drop"])
    for lab, c in rep["classes"].items():
        w.writerow([_csv_cell(literal(lab)), c["support"], c["precision"], c["recall"], c["f1"],
                    c["min_detectable_drop"]])
    return buf.getvalue()


def confusion_png(rep: dict, path: Path) -> bool:
    """The confusion matrix drawn (rows true, columns predicted); False when too large to read."""
    labels = rep["confusion"]["labels"]
    if not labels or len(labels) > CONFUSION_LABELS_MAX:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.array(rep["confusion"]["matrix"])
    side = min(4 + 0.5 * len(labels), 30)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    try:
        im = ax.imshow(cm, cmap="Blues")
        names = [literal(x) if len(x) <= 24 else literal(x[:23]) + "…" for x in labels]
        ax.set_xticks(range(len(labels)), names, rotation=45, ha="right", parse_math=False)
        ax.set_yticks(range(len(labels)), names, parse_math=False)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", parse_math=False,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xlabel("predicted", parse_math=False)
        ax.set_ylabel("true", parse_math=False)
        m = rep["model"]
        ax.set_title(literal(f"{m['name']} v{m['version']} ({m['fingerprint'][:12]})"), parse_math=False)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True


def _millis(t: datetime | None) -> int:
    if t is None:
        return 0
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


class MlflowExport:
    """An MLflow tracking server and experiment to export to."""

    def __init__(self, tracking_uri: str, experiment: str):
        if not tracking_uri or not tracking_uri.strip():
            raise ExportError("no MLflow tracking URI given")
        if not experiment or len(experiment) > 500 or not experiment.strip():
            raise ExportError("the experiment name must have 1 to 500 characters")
        client_cls, self._metric, self._tag, self._views, self._error = _client_modules()
        # A server that is away fails in seconds, not after MLflow's default 7 retries with backoff.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        # Our standard output may be a JUnit or Markdown document: MLflow prints no run links on it.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        # urllib3 logs each retry as a warning of its own: the one error line below says it all.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self.uri = tracking_uri
        self.client = client_cls(tracking_uri=tracking_uri)
        self.experiment_id = self._call(self._experiment, experiment)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except ExportError:
            raise
        except self._error as e:
            unreachable = _unreachable(e.message)
            if unreachable:
                raise ExportError(f"MLflow at {redact_url(self.uri)} is not reachable ({unreachable}); is the tracking "
                                  "server running there?") from None
            raise ExportError(f"MLflow at {redact_url(self.uri)}: {redact_url(literal(e.message))[:500]}") from None
        except Exception as e:  # noqa: BLE001 - connection failures arrive as requests' or urllib3's errors
            raise ExportError(f"MLflow at {redact_url(self.uri)}: {type(e).__name__}: "
                              f"{redact_url(literal(str(e)))[:500]}") from None

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name, tags={"pokemon_tester.version": __version__})
            except self._error:
                exp = self.client.get_experiment_by_name(name)  # another exporter created it first
                if exp is None:
                    raise
        if exp.lifecycle_stage != "active":
            raise ExportError(f"experiment {name!r} is deleted in MLflow: restore it or choose another with "
                              "--experiment / MLFLOW_EXPERIMENT_NAME")
        return exp.experiment_id

    def _find(self, key: str) -> list:
        """The runs of `key` (deleted ones too), oldest creation first."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'",
                                       run_view_type=self._views.ALL, max_results=100)
        return sorted(runs, key=lambda r: (r.data.tags.get(CREATED_TAG, ""), r.info.run_id))

    def _run(self, key: str, name: str, kind: str, start: int) -> str:
        """The run of `key`: found (restored if deleted), or created. Of exporters racing to
        create it, each searches after its own creation, so each sees the first-created run and
        deletes its own unless it is that one."""
        found = self._find(key)
        if not found:
            mine = self.client.create_run(self.experiment_id, start_time=start or None, run_name=_cut(name, 240),
                                          tags={KEY_TAG: key, KIND_TAG: kind, CREATED_TAG: f"{time.time_ns():020d}"})
            found = self._find(key) or [mine]
            if found[0].info.run_id != mine.info.run_id:
                self.client.delete_run(mine.info.run_id)
        run = found[0]
        if run.info.lifecycle_stage != "active":
            self.client.restore_run(run.info.run_id)
        return run.info.run_id

    def _log(self, run_id: str, *, metrics: dict[str, float], tags: dict[str, object], when: int,
             files: dict[str, str | Path]) -> None:
        """Metrics at `when` (step 0), tags, artifacts; the run ends at `when`."""
        ms = [self._metric(k, float(v), when, 0) for k, v in metrics.items() if v is not None]
        ts = [self._tag(k, v if k == NOTE_TAG else _cut(v)) for k, v in tags.items() if v is not None]
        for i in range(0, len(ms), 1000):  # MLflow's limits of one batch: 1000 metrics, 100 tags
            self.client.log_batch(run_id, metrics=ms[i:i + 1000])
        for i in range(0, len(ts), 100):
            self.client.log_batch(run_id, tags=ts[i:i + 100])
        with tempfile.TemporaryDirectory(prefix="mlflow-export-") as tmp:
            for name, content in files.items():
                target = Path(tmp) / name
                if isinstance(content, Path):
                    target.write_bytes(content.read_bytes())
                else:
                    target.write_text(content, encoding="utf-8")
            self.client.log_artifacts(run_id, tmp)
        self.client.set_terminated(run_id, "FINISHED", end_time=when or None)

    # The two kinds of run ---------------------------------------------------------------------

    def model_run(self, engine: Engine, m: store.ModelInfo) -> str:
        return self._call(self._model_run, engine, m)

    def _model_run(self, engine: Engine, m: store.ModelInfo) -> str:
        with engine.connect() as conn:
            rep = model_report(m, store.load_rows(conn, model_id=m.id))
            test_set, finished = store.evaluation_facts(conn, model_id=m.id)
            from .html_report import recall_history, render_html

            html = render_html([rep], {m.name: recall_history(conn).get(m.name, [])})
        when = _millis(finished or m.first_seen)
        used: set[str] = {"accuracy_score", "example_count"}
        metrics = {"accuracy_score": rep["accuracy"], "example_count": rep["n"]}
        for lab, c in rep["classes"].items():
            for prefix, field in (("recall", "recall"), ("precision", "precision"), ("f1", "f1")):
                metrics[metric_key(prefix, lab, used)] = c[field]
        tags = {"model.name": m.name, "model.version": m.version, "model.fingerprint": m.fingerprint,
                "model.identity": m.identity, "model.protocol": m.protocol, "model.backend": m.backend or "unknown",
                "model.scores": m.scores, "model.labels": ", ".join(m.labels), "test_set.hash": test_set or "unknown",
                "pokemon_tester.version": __version__, NOTE_TAG: _fit(model_markdown(rep))}
        run_id = self._run(hashlib.sha256(f"model:{m.fingerprint}".encode()).hexdigest(), m.title, "model",
                           _millis(m.first_seen) or when)
        files: dict[str, str | Path] = {"per_class_metrics.csv": per_class_csv(rep), "report.html": html}
        with tempfile.TemporaryDirectory(prefix="mlflow-png-") as tmp:
            png = Path(tmp) / "confusion_matrix.png"
            if confusion_png(rep, png):
                files["confusion_matrix.png"] = png
            self._log(run_id, metrics=metrics, tags=tags, when=when, files=files)
        return run_id

    def comparison_run(self, engine: Engine, comparison: dict, base_run: str, cand_run: str) -> str:
        return self._call(self._comparison_run, engine, comparison, base_run, cand_run)

    def _comparison_run(self, engine: Engine, c: dict, base_run: str, cand_run: str) -> str:
        b, k, th = c["baseline"], c["candidate"], c["thresholds"]
        key = hashlib.sha256(json.dumps(["comparison", b["fingerprint"], k["fingerprint"], th["rule"], th["max_drop"],
                                         th["alpha"], th["min_score_drop"]]).encode()).hexdigest()
        with engine.connect() as conn:
            infos = {m.fingerprint: m for m in store.list_models(conn)}
            base, cand = infos[b["fingerprint"]], infos[k["fingerprint"]]
            when = max(_millis(store.evaluation_facts(conn, model_id=x.id)[1] or x.first_seen) for x in (base, cand))
            from .html_report import recall_history, render_html

            reports = [model_report(base, store.load_rows(conn, model_id=base.id)),
                       model_report(cand, store.load_rows(conn, model_id=cand.id))]
            html = render_html(reports, recall_history(conn), c)
        used: set[str] = {"regressed_class_count", "images_compared"}
        metrics = {"regressed_class_count": len(c["regressed_classes"]), "images_compared": c["n_common_images"],
                   "accuracy_change": c["overall"]["delta"], "score_change": c["overall"]["score_change"]}
        metrics.update(facets.metrics(c))
        used |= set(metrics)
        for lab, x in c["classes"].items():
            metrics[metric_key("accuracy_change", lab, used)] = x["delta"]
            metrics[metric_key("score_change", lab, used)] = x["score_change"]
        link = f"#/experiments/{self.experiment_id}/runs/"
        note = (f"[baseline run]({link}{base_run}) · [candidate run]({link}{cand_run})\n\n"
                + ci_report.markdown_summary(c, limit=MAX_TAG_CHARS - 200))
        tags = {"verdict": c["verdict"], "rule": th["rule"], "rule.description": th["description"],
                "baseline.fingerprint": b["fingerprint"], "candidate.fingerprint": k["fingerprint"],
                "baseline.run_id": base_run, "candidate.run_id": cand_run,
                "regressed_classes": ", ".join(c["regressed_classes"]) or "none",
                "reasons": "; ".join(c.get("reasons", [])) or "none",
                NOTE_TAG: _fit(note),
                "pokemon_tester.version": __version__}
        name = f"{k['name']} v{k['version']} vs {b['name']} v{b['version']}"
        run_id = self._run(key, name, "comparison", when)
        files = {"verdict.json": json.dumps(c, indent=2), "summary.md": ci_report.markdown_summary(c),
                 "junit.xml": ci_report.junit_xml([c], name="data-collector compare"), "comparison.html": html}
        self._log(run_id, metrics=metrics, tags=tags, when=when, files=files)
        return run_id


def export_models(engine: Engine, uri: str, experiment: str, ms: list[store.ModelInfo]) -> list[str]:
    """Each model's run; one line a model: its title and run id."""
    ex = MlflowExport(uri, experiment)
    return [f"{m.title}: run {ex.model_run(engine, m)}" for m in ms]


def export_comparison(engine: Engine, uri: str, experiment: str, fingerprints: list[str],
                      comparison: dict | None) -> list[str]:
    """The models of a verdict (and the comparison, when there is one) as runs."""
    with engine.connect() as conn:
        infos = {m.fingerprint: m for m in store.list_models(conn)}
    ms = [infos[fp] for fp in dict.fromkeys(fingerprints) if fp in infos]
    ex = MlflowExport(uri, experiment)
    run_ids = {m.fingerprint: ex.model_run(engine, m) for m in ms}
    lines = [f"{m.title}: run {run_ids[m.fingerprint]}" for m in ms]
    if comparison:
        fb, fk = comparison["baseline"]["fingerprint"], comparison["candidate"]["fingerprint"]
        cid = ex.comparison_run(engine, comparison, run_ids[fb], run_ids[fk])
        lines.append(f"comparison {comparison['verdict']}: run {cid}")
    return lines
