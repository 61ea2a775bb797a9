"""`data-collector export mlflow`: evaluated models as MLflow runs (mlflow_export.py)."""

from __future__ import annotations

import click

from ..analysis.selectors import SelectorError, pick
from ..storage import store
from .common import err, fail, nothing_collected, open_store, out, setting_option


@click.group("export")
def export_group():
    """Send what is stored to other tools."""


@export_group.command("mlflow")
@click.argument("selectors", nargs=-1)
@setting_option("mlflow_tracking_uri", "tracking_uri")
@setting_option("mlflow_experiment_name", "experiment")
@click.pass_context
def mlflow_cmd(ctx, selectors, tracking_uri, experiment):
    """Export models to MLflow: a run per model, found again on every export.

    SELECTOR: NAME, fingerprint prefix, NAME@VERSION, NAME@latest or NAME@previous (none: every
    model; newest and previous follow version order). Each run holds the model's tags (name,
    version, fingerprint, identity, protocol, test-set hash), accuracy_score and per-class
    recall_, precision_ and f1_ metrics, and per_class_metrics.csv, confusion_matrix.png and
    report.html. Exporting again updates the runs.
    """
    from ..outputs.mlflow_export import ExportError, export_models

    if not tracking_uri:
        fail("give --tracking-uri URI or set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5000)", 2)
    engine = open_store(ctx, migrate=False, reading=True)
    with engine.connect() as conn:
        ms = store.list_models(conn)
        try:
            chosen = [pick(ms, s) for s in selectors] if selectors else ms
        except SelectorError as e:
            fail(str(e), 2)
    if not chosen:
        err.print(nothing_collected(ctx))
        ctx.exit(2)
    try:
        lines = export_models(engine, tracking_uri, experiment, list({m.id: m for m in chosen}.values()))
    except ExportError as e:
        fail(str(e), 2)
    for line in lines:
        out.print(line)
