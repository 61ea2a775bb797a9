"""Automatic evaluation of a new deployment: collect, compare with the previous version, report.

Used by `data-collector watch` (polling) and by the deploy hook (`POST /hooks/deployed`).
A fingerprint is evaluated once: collection only sends what the database lacks.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from ..analysis.compare import Thresholds, compare
from ..analysis.latency import LatencyRule
from ..analysis.reports import model_report
from ..analysis.selectors import AmbiguousSelector, ConflictingModel, SelectorError, require_undisputed, resolve, typed
from ..collect import CollectOptions, collect
from ..outputs.html_report import recall_history, render_html
from ..protocols.client import NOT_A_MODEL_SERVER
from ..storage import store
from ..vocab import FAILED_STATUSES

log = logging.getLogger("collector.service.deploy")


@dataclass
class DeploySettings:
    test_dir: Path
    report_dir: Path
    opts: CollectOptions
    thresholds: Thresholds = Thresholds()
    latency: LatencyRule | None = None  # time both sides of a gate when set (latency.py)


def evaluate_deployment(url: str, *, engine: Engine, settings: DeploySettings) -> dict:
    """Collect what the model behind `url` lacks, compare it with its previous version, report.

    Callers serialise per URL (the hook's queue, watch's loop); different URLs may run at once.
    """
    (res,) = collect([url], engine=engine, test_dir=settings.test_dir, opts=settings.opts,
                     say=lambda m: log.info("%s", m))
    out = {"url": res.url, "status": res.status.value, "name": res.name, "version": res.version,
           "fingerprint": res.fingerprint, "images_sent": res.n_sent, "evaluated": res.n_sent > 0}
    if res.status in FAILED_STATUSES:
        if settings.opts.echo_errors:
            out["error"] = res.error
        else:  # the caller learns a category, not what the socket or the target said
            log.warning("evaluation of %s failed: %s", res.url, res.error)
            out["error"] = f"could not evaluate URL: {res.category or NOT_A_MODEL_SERVER}"
        out["verdict"] = "error"
        return out
    with engine.connect() as conn:
        cand = resolve(conn, typed(res.fingerprint))
        if cand.conflicts:
            out.update(baseline=None, verdict="error", regressed_classes=[],
                       error=f"{cand.title} is conflicting: no verdict until `data-collector conflicts resolve`")
            return out
        cand_rows = store.load_rows(conn, model_id=cand.id)
        reports = [model_report(cand, cand_rows)]
        try:
            base = resolve(conn, f"{cand.name}@previous", relative_to=cand)
            require_undisputed(base)
        except (AmbiguousSelector, ConflictingModel) as e:  # no claim decides the verdict
            out.update(baseline=None, verdict="error", regressed_classes=[], error=str(e))
            return out
        except SelectorError:
            base = None
        comparison = None
        if base is not None:
            base_rows = store.load_rows(conn, model_id=base.id)
            comparison = compare(base, base_rows, cand, cand_rows, settings.thresholds)
            reports.append(model_report(base, base_rows))
    out["baseline"] = base.fingerprint if base else None
    out["verdict"] = comparison["verdict"] if comparison else "no-baseline"
    out["regressed_classes"] = comparison["regressed_classes"] if comparison else []
    if out["evaluated"]:
        out["report"] = str(write_reports(engine, settings.report_dir, cand, reports, comparison))
    return out


def write_reports(engine: Engine, report_dir: Path, cand, reports: list[dict], comparison: dict | None) -> Path:
    """The HTML and JSON reports of a newly evaluated candidate (with every model's recall history)."""
    with engine.connect() as conn:
        history = recall_history(conn)
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{cand.name}-v{cand.version}-{cand.fingerprint[:12]}")
    html_path = report_dir / f"{stem}.html"
    html_path.write_text(render_html(reports, history, comparison))
    (report_dir / f"{stem}.json").write_text(json.dumps({"models": reports, "comparison": comparison}, indent=2))
    return html_path
