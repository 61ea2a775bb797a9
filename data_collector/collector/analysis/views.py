"""What the web view shows, as JSON-ready dicts: one function per page, behind both the page and
its `/api/...` endpoint. The numbers come from the same functions as the CLI's: `model_report`
(report), `compare` (compare), `store.class_counts` (aggregated in the database)."""

from __future__ import annotations

import threading
from dataclasses import replace

from sqlalchemy import Connection

from ..formatting import iso
from ..storage import store
from ..vocab import ImageKind, is_clean, is_probe
from .compare import Thresholds, compare
from .reports import model_report, recalls
from .selectors import SelectorError, by_version, conflicts, pick, previous_of, require_undisputed, version_key

GALLERY_MAX = 200  # misclassified images listed on a model page at most (the most confident first)
PROBES_SHOWN = 24
FLIPS_MAX = 200


_counts_lock = threading.Lock()
_counts_cache: dict[tuple, tuple] = {}  # (database, name) -> (predictions mark, class counts)


def class_counts(conn: Connection, name: str | None = None) -> dict[int, dict[str, tuple[int, int]]]:
    """store.class_counts, recomputed only when predictions were added since the last call: stored
    predictions never change, so the models page does not aggregate every row at every request."""
    mark = store.predictions_mark(conn)
    key = (conn.engine.url.render_as_string(hide_password=True), name)
    with _counts_lock:
        hit = _counts_cache.get(key)
    if hit is not None and hit[0] == mark:
        return hit[1]
    counts = store.class_counts(conn, name=name)
    with _counts_lock:
        _counts_cache[key] = (mark, counts)
        while len(_counts_cache) > 256:
            _counts_cache.pop(next(iter(_counts_cache)))
    return counts


def models_overview(conn: Connection) -> dict:
    """Every evaluated model, grouped by name (names sorted, newest version first), with its accuracy,
    per-class recall and latest run — without loading prediction rows (one aggregate query)."""
    ms = store.list_models(conn)
    counts = class_counts(conn)
    last = store.latest_runs(conn)
    clash = conflicts(ms)
    groups: dict[str, list[dict]] = {}
    for m in sorted(ms, key=lambda x: (x.name, version_key(x))):
        c = counts.get(m.id, {})
        n = sum(v[0] for v in c.values())
        right = sum(v[1] for v in c.values())
        run = last.get(m.id, {})
        groups.setdefault(m.name, []).append({
            **m.to_dict(),
            "predictions": m.predictions,
            "evaluated_at": iso(run.get("finished_at") or run.get("started_at") or m.first_seen),
            "run_status": run.get("status"),
            "n": n, "accuracy": right / n if n else None,
            "recall": recalls(c, m.labels),
            "conflict": [o.fingerprint for o in clash.get(m.id, [])],  # others claiming this NAME@VERSION
        })
    return {"groups": [{"name": name, "versions": list(reversed(vs))} for name, vs in sorted(groups.items())],
            "n_models": len(ms)}


def model_detail(conn: Connection, selector: str, *, label: str | None = None) -> dict:
    """One model: the report (per class, per image kind, confusion, probes), its runs and failures,
    the misclassified images (optionally of one true class) and the most confident lookalikes."""
    ms = store.list_models(conn)
    m = pick(ms, selector)
    rows = store.load_rows(conn, model_id=m.id)
    rep = model_report(m, rows)
    wrong = [r for r in rows if is_clean(r["kind"]) and r["predicted_label"] != r["label"]
             and (label is None or r["label"] == label)]
    wrong.sort(key=lambda r: -r["confidence"])
    probes = sorted((r for r in rows if is_probe(r["kind"])), key=lambda r: -r["confidence"])[:PROBES_SHOWN]
    try:
        previous = previous_of(ms, m)
    except SelectorError:  # its previous version is claimed twice: no default to link to
        previous = None
    return {
        "model": {**m.to_dict(), "urls": list(m.urls),
                  "conflict": [o.fingerprint for o in conflicts(ms).get(m.id, [])]},
        "report": rep,
        "runs": [{**r, "started_at": iso(r["started_at"]), "finished_at": iso(r["finished_at"])}
                 for r in store.model_runs(conn, model_id=m.id)],
        "claim_conflicts": [{"path": e["path"], "label": e["label"], "url": e["url"], "other": e["other"],
                             "answered": e["answered"], "expected": e["expected"], "found_at": iso(e["found_at"])}
                            for e in store.list_conflicts(conn, model_id=m.id, limit=50)],
        "misclassified": {"label": label, "total": len(wrong), "images": [_image(r) for r in wrong[:GALLERY_MAX]]},
        "lookalikes": [_image(r) for r in probes],
        "previous": previous.to_dict() if previous else None,
        "versions": [x.to_dict() for x in by_version(ms, m.name)],
    }


def _image(r: dict) -> dict:
    return {"sha256": r["sha256"], "label": r["label"], "kind": r["kind"], "predicted": r["predicted_label"],
            "confidence": r["confidence"]}


def comparison(conn: Connection, candidate: str, baseline: str | None = None,
               th: Thresholds | None = None) -> dict:
    """`compare` of two models (the candidate's previous version by default) and the images whose
    answer flipped between them, the surest first."""
    ms = store.list_models(conn)
    cand = pick(ms, candidate)
    base = pick(ms, baseline) if baseline else previous_of(ms, cand)
    if base is None:
        raise SelectorError(f"{cand.title} has no earlier version to compare with: choose a baseline")
    require_undisputed(base, cand)
    base_rows = store.load_rows(conn, model_id=base.id)
    cand_rows = store.load_rows(conn, model_id=cand.id)
    th = th or Thresholds()
    if not th.robustness and any(r["kind"] == ImageKind.PERTURBED for r in cand_rows):
        th = replace(th, robustness=True)  # the view shows what is stored: perturbed answers are judged too
    result = compare(base, base_rows, cand, cand_rows, th)
    shared = set(result["shared_labels"])
    b = {r["sha256"]: r for r in base_rows if is_clean(r["kind"]) and r["label"] in shared}
    lost, gained = [], []
    for r in cand_rows:
        o = b.get(r["sha256"])
        if o is None:
            continue
        was, now = o["predicted_label"] == o["label"], r["predicted_label"] == r["label"]
        if was != now:
            (lost if was else gained).append({**_image(r), "baseline_predicted": o["predicted_label"],
                                              "baseline_confidence": o["confidence"]})
    for xs in (lost, gained):
        xs.sort(key=lambda x: (x["label"], -x["confidence"]))
    return {"comparison": result, "baseline": base.to_dict(), "candidate": cand.to_dict(),
            "flipped": {"right_to_wrong": lost[:FLIPS_MAX], "wrong_to_right": gained[:FLIPS_MAX],
                        "n_right_to_wrong": len(lost), "n_wrong_to_right": len(gained)},
            "models": [x.to_dict() for x in ms]}


def history(conn: Connection, name: str) -> dict:
    """Per-class recall of every version of `name`, oldest first (one aggregate query)."""
    ms = by_version(store.list_models(conn), name)
    if not ms:
        raise SelectorError(f"no evaluated model named {name!r}")
    counts = class_counts(conn, name)
    labels: list[str] = []
    for m in ms:
        labels += [lab for lab in m.labels if lab not in labels]
    versions = [{**m.to_dict(), "recall": recalls(counts.get(m.id, {}), m.labels)} for m in ms]
    return {"name": name, "labels": labels, "versions": versions}
