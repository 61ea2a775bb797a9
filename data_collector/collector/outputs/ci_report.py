"""A verdict in the formats CI systems read: JUnit XML, a Markdown summary, GitHub annotations.

- **JUnit** (`junit_xml`): one `testsuite` per comparison (baseline -> candidate, fingerprint
  prefixes in its name), one `testcase` per class (`classname` the candidate's model name, `name`
  the class) and one for the overall accuracy; a regressed class is a `failure` whose message
  carries the change, the score change, both p-values and the smallest detectable drop; a class
  without shared images is `skipped`; the rule and both fingerprints are `properties`. A gate that
  could not decide is one `error`. Valid against Jenkins' junit-10.xsd (what GitLab's
  `artifacts:reports:junit` and the GitHub test-report actions read).
- **Markdown** (`markdown_summary`): the verdict, the per-class table and the flipped-image counts,
  for `$GITHUB_STEP_SUMMARY`, a merge-request note, an MLflow run's description or `--markdown
  FILE`; kept under GitHub's 1 MiB.
- **Annotations** (`github_annotations`): `::error title=...::` lines, at most `MAX_ANNOTATIONS`.

Every name and label comes from a model server: it is data. XML is built by ElementTree (escaped)
from `literal` text (no control characters, which XML 1.0 cannot carry); Markdown escapes every
markup character as a character reference (no table break, link, HTML or mention); workflow-command values
are percent-encoded as the Actions runner decodes them; and `stop_commands` fences the terminal
output so that a label printed at the start of a line cannot be read as a workflow command.
"""

from __future__ import annotations

import secrets
import string
import xml.etree.ElementTree as ET  # nosec B405 - builds XML; nothing here parses any
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ..analysis.compare import class_verdict, test_set_note
from ..formatting import num
from ..text import literal
from . import facets

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations of a step
SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts in one step's summary file
OVERALL = "(overall)"


def _title(m: dict) -> str:
    return f"{m['name']} v{m['version']} ({m['fingerprint'][:12]})"


def suite_name(c: dict) -> str:
    return literal(f"{_title(c['baseline'])} -> {_title(c['candidate'])}")


def change_line(lab: str, x: dict) -> str:
    """The evidence of one class in one line: what a failure message and an annotation say."""
    return (f"{lab}: accuracy {num(x['baseline'])} -> {num(x['candidate'])} (change {num(x['delta'], signed=True)}, "
            f"{x['b_baseline_only']} images right in the baseline only, {x['c_candidate_only']} in the candidate "
            f"only); true-class score change {num(x['score_change'], signed=True)}; McNemar p "
            f"{pvalue(x['p_value'])}; score p (Wilcoxon, Holm) {pvalue(x['score_p_adjusted'])}; minimum "
            f"detectable drop {num(x['min_detectable_drop'], 2)}")


def pvalue(p: float | None) -> str:
    return "-" if p is None else "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _cells(c: dict) -> Iterator[tuple[str, dict]]:
    yield from c["classes"].items()
    yield OVERALL, c["overall"]


# JUnit ------------------------------------------------------------------------------------------

def _suite(c: dict, timestamp: str) -> ET.Element:
    cells = list(_cells(c))
    failures = sum(1 for _, x in cells if x["status"] == "regressed")
    skipped = sum(1 for _, x in cells if not x["n"])
    suite = ET.Element("testsuite", {
        "name": suite_name(c), "tests": str(len(cells)), "failures": str(failures), "errors": "0",
        "skipped": str(skipped), "timestamp": timestamp})
    th = c["thresholds"]
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", c["verdict"]), ("rule", th["rule"]), ("rule.description", th["description"]),
                        ("alpha", th["alpha"]), ("max_drop", th["max_drop"]), ("min_score_drop", th["min_score_drop"]),
                        ("baseline.fingerprint", c["baseline"]["fingerprint"]),
                        ("candidate.fingerprint", c["candidate"]["fingerprint"]),
                        ("images_compared", c["n_common_images"]),
                        ("test_sets", test_set_note(c) or "the same images and labels on both sides")):
        ET.SubElement(props, "property", {"name": name, "value": literal(value)})
    classname = literal(c["candidate"]["name"])
    for lab, x in cells:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": literal(lab), "time": "0"})
        if not x["n"]:
            ET.SubElement(case, "skipped", {"message": "no image both models saw has this label"})
        elif x["status"] == "regressed":
            fail = ET.SubElement(case, "failure", {"type": "regression", "message": literal(change_line(lab, x))})
            fail.text = literal(f"{class_verdict(x)}; evidence: {' and '.join(x['flagged_by'])}; "
                                f"{th['description']}; 95% CI of the change: {_ci(x)}")
        elif x["status"] == "dropped-not-significant":
            ET.SubElement(case, "system-out").text = literal(f"{class_verdict(x)}. {change_line(lab, x)}")
    for name, flagged, text in _facet_cases(c):
        case = ET.SubElement(suite, "testcase", {"classname": "beyond-answers", "name": name, "time": "0"})
        if flagged:
            failure = ET.SubElement(case, "failure", {"type": name, "message": literal(text.splitlines()[0])})
            failure.text = literal(text)
        else:
            ET.SubElement(case, "system-out").text = literal(text)
    suite.set("tests", str(len(cells) + len(list(_facet_cases(c)))))
    suite.set("failures", str(failures + sum(1 for _, flagged, _ in _facet_cases(c) if flagged)))
    return suite


def _facet_cases(c: dict) -> Iterator[tuple[str, bool, str]]:
    """(name, flagged, text) of each facet the comparison holds: a test case each in JUnit."""
    cal = facets.calibration_line(c)
    if cal:
        yield "calibration", bool(c["calibration"]["flagged"]), cal
    if c.get("latency"):
        yield "latency", bool(c["latency"]["flagged"]), "\n".join(facets.latency_lines(c))
    if c.get("robustness"):
        yield "robustness", bool(c["robustness"]["flagged"]), "\n".join(facets.robustness_lines(c))


def _ci(x: dict) -> str:
    return f"[{num(x['ci95'][0], signed=True)}, {num(x['ci95'][1], signed=True)}]" if x.get("ci95") else "-"


def _error_suite(name: str, message: str, timestamp: str) -> ET.Element:
    suite = ET.Element("testsuite", {"name": literal(name), "tests": "1", "failures": "0", "errors": "1",
                                     "skipped": "0", "timestamp": timestamp})
    case = ET.SubElement(suite, "testcase", {"classname": "gate", "name": "verdict", "time": "0"})
    ET.SubElement(case, "error", {"type": "cannot-decide", "message": literal(message)})
    return suite


def _pass_suite(name: str, message: str, timestamp: str) -> ET.Element:
    suite = ET.Element("testsuite", {"name": literal(name), "tests": "1", "failures": "0", "errors": "0",
                                     "skipped": "0", "timestamp": timestamp})
    case = ET.SubElement(suite, "testcase", {"classname": "gate", "name": "verdict", "time": "0"})
    ET.SubElement(case, "system-out").text = literal(message)
    return suite


def junit_xml(comparisons: list[dict], *, error: str | None = None, passed: str | None = None,
              name: str = "data-collector", when: datetime | None = None) -> str:
    """A JUnit document: a suite per comparison, or one erroring test (`error`: no verdict) or one
    passing test (`passed`: a verdict without a comparison, e.g. the same fingerprint)."""
    stamp = (when or datetime.now(UTC)).replace(microsecond=0).isoformat()
    suites = [_suite(c, stamp) for c in comparisons]
    if error is not None:
        suites.append(_error_suite(f"{name}: cannot decide", error, stamp))
    if passed is not None:
        suites.append(_pass_suite(f"{name}: pass", passed, stamp))
    root = ET.Element("testsuites", {"name": name})
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key)) for s in suites)))
    root.extend(suites)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def gate_junit(result) -> str:
    """JUnit of a GateResult (gate.py)."""
    if result.comparison:
        return junit_xml([result.comparison], name="data-collector gate")
    if result.verdict == "error":
        return junit_xml([], error=result.error or "cannot decide", name="data-collector gate")
    return junit_xml([], passed=result.summary(), name="data-collector gate")


# Markdown ---------------------------------------------------------------------------------------

_MD_PLAIN = frozenset("-(),/';?=+")  # punctuation that cannot start markup in the middle of a line


def md(text: object) -> str:
    """Text shown as itself in Markdown: every ASCII punctuation character that can make markup
    (`|`, `<b>`, `[x](y)`, `@team`, `*`, `_`, `:emoji:`, `www.`) written as a numeric character
    reference, which CommonMark, GitHub and MLflow's renderer (showdown) all show as the character
    and none reads as structure (a backslash escape is not understood by all three)."""
    return "".join(f"&#{ord(ch)};" if ch in string.punctuation and ch not in _MD_PLAIN else ch
                   for ch in literal(text))


STATUS_WORD = {"regressed": "**REGRESSED**", "dropped-not-significant": "dropped, n.s.", "ok": "ok"}


def _row(lab: str, x: dict) -> str:
    status = STATUS_WORD[x["status"]] + (" (previously easy)" if x.get("previously_easy") and x["regressed"] else "")
    if not x["n"]:
        status = "skipped: no shared images"
    cells = [md(lab), str(x["n"]), f"{num(x['baseline'], 2)} → {num(x['candidate'], 2)}",
             num(x["delta"], 2, signed=True), f"{x['b_baseline_only']} / {x['c_candidate_only']}",
             num(x["p_value"], 3), num(x["score_change"], 3, signed=True), num(x["score_p_adjusted"], 3),
             num(x["min_detectable_drop"], 2), status]
    return "| " + " | ".join(cells) + " |"


def _header(c: dict, verdict: str) -> list[str]:
    b, k = c["baseline"], c["candidate"]
    failed = verdict in ("regression", "fail")
    why = f"FAIL, regressed: {facets.failed_because(c, md)}" if failed else "PASS, no class regressed"
    return [f"### Regression gate: {why}", "",
            f"**baseline** {md(_title(b))} → **candidate** {md(_title(k))}  ",
            f"{c['n_common_images']} images seen by both, of labels both know; {c['thresholds']['description']}",
            *([f"**Test sets differ**: {md(note)}"] if (note := test_set_note(c)) else []),
            ""]


_TABLE_HEAD = ["| class | n | accuracy | change | flipped b / c | McNemar p | score change | score p | MDD | verdict |",
               "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]


def markdown_summary(c: dict, *, limit: int = SUMMARY_LIMIT) -> str:
    """The summary of a comparison, under `limit` bytes (classes past it are counted, not listed;
    the JUnit file and the HTML report hold them all)."""
    head = _header(c, c["verdict"]) + _TABLE_HEAD
    o = c["overall"]
    tail = ["", f"**Flipped images** (overall): {o['b_baseline_only']} right in the baseline only, "
                f"{o['c_candidate_only']} right in the candidate only.  ",
            "b / c: images right in the baseline only / in the candidate only (McNemar's test weighs these); "
            "score: mean change of the true-class probability, its one-sided Wilcoxon p Holm-corrected over "
            "the classes; MDD: the smallest accuracy drop the class's images can show on answers alone."]
    new = [f"new label {md(lab)}: recall {num(x['recall'])} (n={x['n']}), not compared"
           for lab, x in c["new_labels"].items()]
    if new:
        tail += ["", "  \n".join(new)]
    beyond = facets.lines(c, md)
    if beyond:
        tail += ["", "**Beyond answers**  ", "  \n".join(beyond)]
    rows = [_row(lab, x) for lab, x in c["classes"].items()] + [_row(OVERALL, o)]
    # Regressed classes first when the table must be cut: they are what the reader came for.
    order = sorted(range(len(rows) - 1), key=lambda i: c["classes"][list(c["classes"])[i]]["status"] != "regressed")
    budget = limit - _size(head + tail) - 200
    kept, used = [], _size([rows[-1]])
    for i in order:
        if used + _size([rows[i]]) > budget:
            break
        kept.append(i)
        used += _size([rows[i]])
    body = [rows[i] for i in sorted(kept)] + [rows[-1]]
    cut = len(rows) - 1 - len(kept)
    if cut:
        body.append(f"| … {cut} more classes: see the JUnit file or the HTML report |  |  |  |  |  |  |  |  |  |")
    return "\n".join(head + body + tail) + "\n"


def _size(lines: list[str]) -> int:
    return sum(len(s.encode()) + 1 for s in lines)


def message_summary(title: str, message: str) -> str:
    """A summary of a verdict with no comparison (cannot decide, or the same model)."""
    return f"### {title}\n\n{md(message)}\n"


def gate_markdown(result, *, limit: int = SUMMARY_LIMIT) -> str:
    if result.comparison:
        return markdown_summary(result.comparison, limit=limit)
    if result.verdict == "error":
        return message_summary("Regression gate: cannot decide", result.error or "")
    return message_summary("Regression gate: PASS", result.summary())


def append_step_summary(path: Path, text: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY, cut so the file stays under GitHub's limit."""
    room = SUMMARY_LIMIT - (path.stat().st_size if path.exists() else 0) - 1
    data = text.encode()
    if len(data) > room:
        note = b"\n*(summary cut: the step summary is full)*\n"
        data = data[:max(0, room - len(note))].decode(errors="ignore").encode() + note if room > len(note) else b""
    with path.open("ab") as f:
        f.write(data)


# GitHub workflow commands -------------------------------------------------------------------------

def _data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(s: str) -> str:
    return _data(s).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, *, title: str | None = None) -> str:
    """`::error title=...::message`, values escaped as the Actions runner unescapes them."""
    props = f" title={_prop(literal(title))}" if title else ""
    return f"::{kind}{props}::{_data(literal(message))}"


def github_annotations(c: dict) -> list[str]:
    """One error annotation per regressed class (at most MAX_ANNOTATIONS in all; past that, the
    rest in one), or one for a regression of the overall accuracy alone."""
    model = f"{c['candidate']['name']} v{c['candidate']['version']}"
    regressed = c["regressed_classes"]
    if not regressed and c["verdict"] == "regression":
        return [workflow_command("error", change_line(OVERALL, c["overall"]),
                                 title=f"Regression: {model}, overall accuracy")]
    shown = regressed if len(regressed) <= MAX_ANNOTATIONS else regressed[:MAX_ANNOTATIONS - 1]
    lines = [workflow_command("error", change_line(lab, c["classes"][lab]), title=f"Regression: {model}, {lab}")
             for lab in shown]
    rest = regressed[len(shown):]
    if rest:
        lines.append(workflow_command("error", f"also regressed: {', '.join(rest)}",
                                      title=f"Regression: {model}, {len(rest)} more classes"))
    return lines


def gate_annotations(result) -> list[str]:
    if result.comparison:
        return github_annotations(result.comparison)
    if result.verdict == "error":
        return [workflow_command("error", result.error or "cannot decide", title="Regression gate: cannot decide")]
    return []


@contextmanager
def stop_commands(enabled: bool, echo) -> Iterator[None]:
    """While open, the Actions runner reads no workflow command from the output (a label at the start
    of a line is text): `::stop-commands::TOKEN` ... `::TOKEN::`, with a fresh random token."""
    if not enabled:
        yield
        return
    token = secrets.token_hex(16)
    echo(f"::stop-commands::{token}")
    try:
        yield
    finally:
        echo(f"::{token}::")
