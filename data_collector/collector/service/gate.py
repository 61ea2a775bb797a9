"""The gate: is CANDIDATE worse than BASELINE on some class? pass, fail, or cannot decide.

One decision for every way in: `data-collector gate` (Jobs, CI), and the gate service's
endpoints for Flagger, Argo Rollouts and the deploy hook (gates.py). Each side is a model URL
(collected first: only what the database lacks is sent) or a stored selector (selectors.py);
without a baseline, the candidate's previous version is the baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from ..analysis.compare import compare
from ..analysis.latency import LatencyError, Side, measure
from ..analysis.latency import reason as latency_reason
from ..analysis.reports import model_report
from ..analysis.selectors import SelectorError, require_undisputed, resolve, typed
from ..collect import collect
from ..protocols.client import NOT_A_MODEL_SERVER, ModelServerError
from ..storage import store
from ..storage.store import ModelInfo
from ..vocab import FAILED_STATUSES, is_clean
from .deploy import DeploySettings, write_reports

log = logging.getLogger("collector.service.gate")

PASS, FAIL, ERROR = "pass", "fail", "error"  # the verdicts; "running" is the service's, while it works
EXIT_CODES = {PASS: 0, FAIL: 1, ERROR: 2}


def is_url(side: str) -> bool:
    return side.lower().startswith(("http://", "https://"))


@dataclass
class GateResult:
    verdict: str  # PASS, FAIL or ERROR
    regressed_classes: list[str] = field(default_factory=list)
    baseline: dict | None = None  # ModelInfo.to_dict() of each side, once known
    candidate: dict | None = None
    comparison: dict | None = None
    error: str | None = None  # why no verdict could be reached (ERROR)
    images_sent: int = 0
    report: str | None = None
    same_model: bool = False  # baseline and candidate are one fingerprint: nothing can have regressed
    reasons: list[str] = field(default_factory=list)  # what failed it: classes, calibration, latency, robustness

    def summary(self) -> str:
        """One line, e.g. for Flagger's events: the verdict and what decided it."""
        if self.verdict == ERROR:
            return f"cannot decide: {self.error}"
        names = f"{_title(self.baseline)} -> {_title(self.candidate)}"
        if self.verdict == FAIL:
            return f"FAIL {names}: {'; '.join(self.reasons) or 'regressed overall'}"
        if self.same_model:
            return f"PASS {_title(self.candidate)}: the candidate is the baseline model (same fingerprint)"
        return f"PASS {names}: no class regressed"

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "regressed_classes": self.regressed_classes, "summary": self.summary(),
                "baseline": self.baseline, "candidate": self.candidate, "error": self.error,
                "images_sent": self.images_sent, "report": self.report, "same_model": self.same_model,
                "reasons": self.reasons, "comparison": self.comparison}


def _title(m: dict | None) -> str:
    return f"{m['name']} v{m['version']} ({m['fingerprint'][:12]})" if m else "?"


def run_gate(baseline: str | None, candidate: str, *, engine: Engine, settings: DeploySettings) -> GateResult:
    """Collect the URL sides, resolve both, compare (and time both when the latency rule is on).
    Never raises for what a server or a selector did (that is an ERROR verdict); database failures
    propagate."""
    urls = [s for s in (baseline, candidate) if s and is_url(s)]
    fingerprints: dict[str, str] = {}
    sent = 0
    if urls:
        results = collect(urls, engine=engine, test_dir=settings.test_dir, opts=settings.opts,
                          say=lambda m: log.info("%s", m))
        for url, res in zip(urls, results, strict=True):
            if res.status in FAILED_STATUSES:
                return GateResult(ERROR, error=f"{res.url}: {_failure(res, settings)}", images_sent=sent)
            fingerprints[url] = typed(res.fingerprint)  # fp:...: no name can stand in for it
            sent += res.n_sent
    with engine.connect() as conn:
        try:
            cand = resolve(conn, fingerprints.get(candidate, candidate))
            base = resolve(conn, fingerprints.get(baseline, baseline) if baseline else f"{cand.name}@previous",
                           relative_to=cand)
            require_undisputed(base, cand)
        except SelectorError as e:
            return GateResult(ERROR, error=str(e), images_sent=sent)
        base_rows, cand_rows = store.load_rows(conn, model_id=base.id), store.load_rows(conn, model_id=cand.id)
        seen_at = (store.latest_url(conn, model_id=base.id), store.latest_url(conn, model_id=cand.id))
    out = GateResult(PASS, baseline=base.to_dict(), candidate=cand.to_dict(), images_sent=sent)
    timing = None
    if settings.latency is not None:
        try:
            timing = time_sides((baseline, candidate), (base, cand), (base_rows, cand_rows), seen_at, settings)
        except LatencyError as e:
            out.verdict, out.error = ERROR, f"latency: {e}"
            return out
    if base.fingerprint == cand.fingerprint and timing is None:  # no weight, label or preprocessing changed
        out.same_model = True
        return out
    out.same_model = base.fingerprint == cand.fingerprint  # timed: the serving may have changed all the same
    comparison = compare(base, base_rows, cand, cand_rows, settings.thresholds)
    add_latency(comparison, timing)
    out.comparison = comparison
    if comparison["n_common_images"] == 0:
        out.verdict, out.error = ERROR, "the two models share no evaluated images with labels both know"
        return out
    if comparison["verdict"] == "regression":
        out.verdict, out.regressed_classes = FAIL, list(comparison["regressed_classes"])
        out.reasons = list(comparison["reasons"])
    if sent:
        reports = [model_report(cand, cand_rows), model_report(base, base_rows)]
        out.report = str(write_reports(engine, settings.report_dir, cand, reports, comparison))
    return out


def add_latency(comparison: dict, timing: dict | None) -> None:
    """Put a paired timing into a comparison: its section, its reason and the verdict."""
    comparison["latency"] = timing
    if timing and timing["flagged"]:
        comparison["reasons"].append(latency_reason(timing))
        comparison["verdict"] = "regression"


def time_sides(args: tuple[str | None, str], infos: tuple[ModelInfo, ModelInfo],
               rows: tuple[list[dict], list[dict]], seen_at: tuple[str | None, str | None],
               settings: DeploySettings) -> dict:
    """Time both models behind their URLs (the gate's URL arguments, else the URL each was seen at
    last), on the labelled test images both answered. Raises LatencyError."""
    from ..protocols import connect

    opts = settings.opts
    b = {r["sha256"]: r for r in rows[0] if is_clean(r["kind"])}
    c = {r["sha256"]: r for r in rows[1] if is_clean(r["kind"])}
    images = []
    for sha in sorted(b.keys() & c.keys()):
        try:
            images.append((sha, b[sha]["path"], (settings.test_dir / b[sha]["path"]).read_bytes()))
        except OSError:
            continue  # an image no longer on disk is not timed
    sides, clients = [], []
    try:
        for arg, info, answered, last in zip(args, infos, (b, c), seen_at, strict=True):
            url = arg if arg and is_url(arg) else last
            if url is None:
                raise LatencyError(f"{info.title} has no URL to time it at")
            try:
                client = connect(url, opts.protocol, limits=opts.limits(), retries=opts.retries,
                                 backoff=opts.backoff, echo_errors=opts.echo_errors, policy=opts.policy)
            except ModelServerError as e:
                raise LatencyError(e.reason) from None
            clients.append(client)
            sides.append(Side(client, info.fingerprint, list(info.labels), info.version,
                              {sha: r["predicted_label"] for sha, r in answered.items()}))
        return measure(sides[0], sides[1], images, batch_size=opts.batch_size, rule=settings.latency)
    finally:
        for client in clients:
            client.close()


def _failure(res, settings: DeploySettings) -> str:
    if settings.opts.echo_errors:
        return res.error or res.status.value
    log.warning("evaluation of %s failed: %s", res.url, res.error)
    return f"could not evaluate URL: {res.category or NOT_A_MODEL_SERVER}"
