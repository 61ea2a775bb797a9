"""The verdict beyond answers, in words and numbers every output shares: calibration, paired
latency and robustness of a comparison (compare.py, latency.py, robustness.py).

`lines(c)` is what the terminal, the Markdown summary and the JUnit file say; `metrics(c)` what
MLflow records. Labels are the models' own text: `esc` escapes each for the caller's medium (the
rest is this module's own words and numbers).
"""

from __future__ import annotations

from ..formatting import num


def calibration_line(c: dict) -> str | None:
    cal = c.get("calibration")
    if not cal or cal["baseline"]["ece"] is None or cal["candidate"]["ece"] is None:
        return None
    ch = cal["change"]
    ci = ch["ece_ci95"]
    brier = ""
    if cal["baseline"]["brier"] is not None and cal["candidate"]["brier"] is not None:
        brier = f"; Brier {num(cal['baseline']['brier'], 3)} -> {num(cal['candidate']['brier'], 3)}"
    rule = ("rule on: FLAGGED" if cal["flagged"] else "rule on: ok") if cal["rule_on"] else (
        "rule off" + (" (it would flag this)" if cal["rose_significantly"] else ""))
    interval = f"{num(ci[0], 3, signed=True)}..{num(ci[1], 3, signed=True)}"
    return (f"calibration: ECE {num(cal['baseline']['ece'], 3)} -> {num(cal['candidate']['ece'], 3)} "
            f"(change {num(ch['ece'], 3, signed=True)}, 95% CI {interval}){brier}; {rule}")


def latency_lines(c: dict) -> list[str]:
    lat = c.get("latency")
    if not lat:
        return []
    b, k, ci = lat["baseline"], lat["candidate"], lat["p95_change_ci95"]

    def side(name: str, x: dict) -> str:
        return (f"  {name} p50 {x['p50_ms']:.1f} ms, p95 {x['p95_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms, "
                f"{x['images_per_s']:.0f} images/s")
    return [f"latency: {lat['pairs']} interleaved pairs of requests of {lat['images_per_request']} images; "
            f"candidate x{lat['paired_ratio_median']:.2f} pair by pair, p95 change {lat['p95_change_ms']:+.1f} ms "
            f"(95% CI {ci[0]:+.1f}..{ci[1]:+.1f}): {'SLOWER' if lat['flagged'] else 'ok'}",
            side("baseline ", b), side("candidate", k)]


def _same(text: str) -> str:
    return text


def robustness_lines(c: dict, esc=_same) -> list[str]:
    rob = c.get("robustness")
    if not rob:
        return []
    if not rob["n_common_images"]:
        return ["robustness: no perturbed image both models answered (collect with --robustness)"]
    head = (f"robustness ({rob['suite']}, {rob['n_common_images']} perturbed images both answered): "
            + ("REGRESSED: " + "; ".join(f"{esc(r['class'])} under {r['perturbation']}" for r in rob["regressed"])
               if rob["regressed"] else "no class regressed on perturbed images"))
    out = [head]
    for lab, cells in rob["cells"].items():
        base = rob.get("baseline", {}).get(lab, {})
        cand = rob.get("candidate", {}).get(lab, {})
        hurt = sorted(((p, x["harm"]) for p, x in cells.items() if x.get("harm") is not None and x["harm"] < 0),
                      key=lambda t: t[1])[:3]
        worse = ", ".join(f"{p} {h:+.2f}" for p, h in hurt) or "none"
        out.append(f"  {esc(lab)}: perturbed accuracy {num(base.get('perturbed', {}).get('accuracy'), 2)} -> "
                   f"{num(cand.get('perturbed', {}).get('accuracy'), 2)}; hurts the candidate more: {worse}")
    return out


def failed_because(c: dict, esc=_same) -> str:
    """What failed a comparison: the regressed classes (or overall accuracy), then any other facet."""
    parts = [", ".join(esc(x) for x in c["regressed_classes"])] if c["regressed_classes"] else (
        ["overall accuracy"] if c["overall"].get("regressed") else [])
    parts += [_reason(r, c, esc) for r in c.get("reasons", []) if not r.startswith("regressed ")]
    return "; ".join(parts) or "overall accuracy"


def _reason(reason: str, c: dict, esc) -> str:
    if reason.startswith("robustness: ") and c.get("robustness"):  # the one reason that names classes
        by_class: dict[str, list[str]] = {}
        for r in c["robustness"]["regressed"]:
            by_class.setdefault(r["class"], []).append(r["perturbation"])
        return "robustness: " + "; ".join(f"{esc(lab)} under {', '.join(ps)}" for lab, ps in by_class.items())
    return reason


def lines(c: dict, esc=_same) -> list[str]:
    """Every facet a comparison holds, a line or a few each."""
    cal = calibration_line(c)
    return ([cal] if cal else []) + latency_lines(c) + robustness_lines(c, esc)


def metrics(c: dict) -> dict[str, float]:
    """Numbers for an experiment tracker (names are fixed; per-class ones are added by the caller)."""
    out: dict[str, float] = {}
    cal = c.get("calibration")
    if cal and cal["change"]["ece"] is not None:
        out.update(ece_baseline=cal["baseline"]["ece"], ece_candidate=cal["candidate"]["ece"],
                   ece_change=cal["change"]["ece"])
        if cal["change"]["brier"] is not None:
            out["brier_change"] = cal["change"]["brier"]
    lat = c.get("latency")
    if lat:
        out.update(p95_ms_baseline=lat["baseline"]["p95_ms"], p95_ms_candidate=lat["candidate"]["p95_ms"],
                   p95_change_ms=lat["p95_change_ms"], p50_change_ms=lat["p50_change_ms"])
    rob = c.get("robustness")
    if rob:
        out["robustness_regressed_cells"] = len(rob["regressed"])
    return out
