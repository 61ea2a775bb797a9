"""Verdicts in CI formats: JUnit (validated against Jenkins' XSD), the Markdown step summary,
GitHub annotations and the fence around the terminal output; the checked CI examples."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from markdown_it import MarkdownIt

from collector.analysis.compare import compare
from collector.outputs import ci_report
from collector.storage.store import ModelInfo
from collector.text import literal
from helpers import engine_for, run_cli, store_model

ROOT = Path(__file__).resolve().parents[3]
XSD = ROOT / "tests" / "fixtures" / "ci-schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema10(XSD)


def _valid(schema, text: str) -> ET.Element:
    errors = list(schema.iter_errors(text))
    assert not errors, errors[0]
    return ET.fromstring(text)


def _cases(suite: ET.Element) -> dict[str, ET.Element]:
    """The classes' test cases (calibration, latency and robustness are "beyond-answers" cases)."""
    return {c.get("name"): c for c in suite.iter("testcase") if c.get("classname") != "beyond-answers"}


def test_compare_junit_is_valid_and_fails_the_regressed_class(pokemon_db, tmp_path, schema):
    out = tmp_path / "compare.xml"
    r = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--junit", str(out))
    assert r.exit_code == 1, r.output
    assert "REGRESSION" in r.output  # the tables are still printed
    root = _valid(schema, out.read_text())
    (suite,) = root.findall("testsuite")
    c = json.loads(run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--json").output)
    assert suite.get("name") == (f"pokemon v1 ({c['baseline']['fingerprint'][:12]}) -> "
                                 f"pokemon v2 ({c['candidate']['fingerprint'][:12]})")
    cases = _cases(suite)
    assert set(cases) == {"charmander", "bulbasaur", "pikachu", "(overall)"}
    assert {c.get("classname") for c in cases.values()} == {"pokemon"}
    assert suite.get("tests") == "5" and suite.get("failures") == "2" and suite.get("errors") == "0"
    (calibration,) = [x for x in suite.iter("testcase") if x.get("classname") == "beyond-answers"]
    assert calibration.get("name") == "calibration" and calibration.find("failure") is None
    assert calibration.find("system-out").text.startswith("calibration: ECE ")
    failure = cases["pikachu"].find("failure")
    msg = failure.get("message")
    pk = c["classes"]["pikachu"]
    for part in ("accuracy 1.000 -> 0.000", f"change {pk['delta']:+.3f}", "true-class score change -1.000",
                 "McNemar p < 0.0001", "score p (Wilcoxon, Holm) < 0.0001",
                 f"minimum detectable drop {pk['min_detectable_drop']:.2f}"):
        assert part in msg, (part, msg)
    assert cases["charmander"].find("failure") is None and cases["bulbasaur"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["rule"] == "scores" and props["verdict"] == "regression"
    assert props["candidate.fingerprint"] == c["candidate"]["fingerprint"]
    assert props["rule.description"] == c["thresholds"]["description"]


def test_junit_to_standard_output_replaces_the_tables(pokemon_db, schema):
    r = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--junit", "-")
    assert r.exit_code == 1
    assert r.output.startswith("<?xml") and "REGRESSION" not in r.output
    _valid(schema, r.output)
    both = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--junit", "-", "--json")
    assert both.exit_code == 2 and "only one output" in both.output


def test_reversed_comparison_passes_every_test(pokemon_db, schema):
    r = run_cli("--db", pokemon_db, "compare", "pokemon", "pokemon@previous", "--junit", "-")
    assert r.exit_code == 0
    root = _valid(schema, r.output)
    assert root.get("failures") == "0" and root.find(".//failure") is None


def _labels_model(engine, version: str, fp: str, labels: list[str], answers: list[tuple], name="m"):
    return store_model(engine, name=name, version=version, fingerprint=fp, labels=labels, answers=answers)


def _answers(labels, n, wrong=(), prefix=""):
    """n images a label; the labels in `wrong` answered as the first label with low scores."""
    out = []
    for lab in labels:
        for i in range(n):
            sha = hashlib.sha256(f"{prefix}{lab}{i}".encode()).hexdigest()
            pred = labels[0] if lab in wrong else lab
            out.append((sha, lab, "photo", pred, {pred: 0.9, lab: 0.9 if pred == lab else 0.05}))
    return out


def test_a_class_without_shared_images_is_skipped(tmp_path, schema):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = engine_for(db)
    labels = ["a", "b", "c"]
    answers = _answers(["a", "b"], 10)  # no image of c
    _labels_model(engine, "1", "1" * 64, labels, answers)
    _labels_model(engine, "2", "2" * 64, labels, answers)
    r = run_cli("--db", db, "compare", "m@previous", "m", "--junit", "-")
    assert r.exit_code == 0, r.output
    cases = _cases(_valid(schema, r.output).find("testsuite"))
    assert cases["c"].find("skipped") is not None and cases["a"].find("skipped") is None
    assert cases["c"].find("skipped").get("message")


HOSTILE = ["<script>alert(1)</script>", "a&b \"q\" 'x' ]]>", "::warning::forged", "x|y|z", "[link](http://e.test)",
           "@org/team *bold* _it_ `code` :smile: www.e.test", "ctl\x1b[2Jesc\u202e\x07"]


def _hostile_db(tmp_path, *, regress: list[str]):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = engine_for(db)
    labels = ["base", *HOSTILE]
    _labels_model(engine, "1", "1" * 64, labels, _answers(labels, 12), name="n<b>&\"m\"")
    _labels_model(engine, "2", "2" * 64, labels, _answers(labels, 12, wrong=regress), name="n<b>&\"m\"")
    return db


def test_names_from_servers_are_data_in_junit(tmp_path, schema):
    db = _hostile_db(tmp_path, regress=HOSTILE)
    r = run_cli("--db", db, "compare", "1111", "2222", "--junit", "-")
    assert r.exit_code == 1
    root = _valid(schema, r.output)
    assert "<script>" not in r.output and "\x1b" not in r.output and "\u202e" not in r.output
    cases = _cases(root.find("testsuite"))
    assert set(cases) == {literal(x) for x in ["base", *HOSTILE, "(overall)"]}
    assert {c.get("classname") for c in cases.values()} == {'n<b>&"m"'}
    for lab in HOSTILE:
        assert cases[literal(lab)].find("failure").get("message").startswith(literal(lab) + ": accuracy")


def _render(md: str):
    return MarkdownIt("commonmark").enable("table").parse(md)


def test_names_from_servers_are_text_in_the_markdown(tmp_path):
    db = _hostile_db(tmp_path, regress=HOSTILE[:3])
    r = run_cli("--db", db, "compare", "1111", "2222", "--markdown", "-")
    assert r.exit_code == 1
    tokens = _render(r.output)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & {"html_block", "html_inline", "link_open", "code_inline", "em_open"}, kinds
    html = MarkdownIt("commonmark").enable("table").render(r.output)
    assert "<script>" not in html and "<a " not in html
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 1 + 1 + len(HOSTILE) + 1  # header, base, the hostile labels, overall
    cells = [tokens[i + 1] for i, t in enumerate(tokens) if t.type == "td_open"]
    assert len(cells) == 10 * (len(rows) - 1)  # no cell split or lost
    shown = ["".join(ch.content for ch in cell.children if ch.type == "text") for cell in cells[::10]]
    assert shown == [literal(x) for x in ["base", *HOSTILE, "(overall)"]]


def test_the_summary_is_cut_to_its_limit_regressions_first():
    labels = [f"class-{i:03d}-" + "x" * 150 for i in range(300)]
    info = {v: ModelInfo(id=int(v), name="m", version=v, fingerprint=v * 64, labels=labels, first_seen=None)
            for v in "12"}
    rows = {v: [{"sha256": s, "label": lab, "kind": "photo", "predicted_label": p, "scores": sc}
                for s, lab, _, p, sc in _answers(labels, 6, wrong=labels[-3:] if v == "2" else ())] for v in "12"}
    c = compare(info["1"], rows["1"], info["2"], rows["2"])
    assert c["regressed_classes"] == labels[-3:]
    full = ci_report.markdown_summary(c)
    assert all(ci_report.md(lab) in full for lab in labels) and len(full.encode()) > 40_000
    cut = ci_report.markdown_summary(c, limit=20_000)
    assert len(cut.encode()) <= 20_000
    assert all(ci_report.md(lab) in cut for lab in labels[-3:])  # the regressed classes are kept
    more = re.search(r"… (\d+) more classes", cut)
    shown = sum(ci_report.md(lab) in cut for lab in labels)
    assert more and int(more.group(1)) == 300 - shown and shown < 300


def test_step_summary_is_appended_and_stays_under_the_limit(pokemon_db, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    r = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", env=env)
    assert r.exit_code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "Regression gate: FAIL, regressed: pikachu" in text
    assert "| pikachu | 30 | 1.00 → 0.00 | -1.00 | 30 / 0 |" in text
    assert "**Flipped images** (overall): 30 right in the baseline only, 0 right in the candidate only." in text
    nearly_full = tmp_path / "full.md"
    nearly_full.write_bytes(b"x" * (ci_report.SUMMARY_LIMIT - 300))
    run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon",
            env={**env, "GITHUB_STEP_SUMMARY": str(nearly_full)})
    size = nearly_full.stat().st_size
    assert ci_report.SUMMARY_LIMIT - 300 < size < ci_report.SUMMARY_LIMIT
    assert nearly_full.read_bytes().rstrip().endswith(b"the step summary is full)*")


def _unescape_data(s: str) -> str:
    return s.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_prop(s: str) -> str:
    return _unescape_data(s.replace("%3A", ":").replace("%2C", ","))


COMMAND = re.compile(r"^::(?P<cmd>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def _commands(output: str) -> list[dict]:
    """Workflow commands as the Actions runner reads them (a line at a time, honouring
    ::stop-commands::TOKEN until ::TOKEN::)."""
    found, stopped = [], None
    for line in output.splitlines():
        if stopped:
            if line == f"::{stopped}::":
                stopped = None
            continue
        m = COMMAND.match(line)
        if not m:
            continue
        if m["cmd"] == "stop-commands":
            stopped = m["data"]
            continue
        props = dict(p.split("=", 1) for p in m["props"].split(",")) if m["props"] else {}
        found.append({"cmd": m["cmd"], **{k: _unescape_prop(v) for k, v in props.items()},
                      "data": _unescape_data(m["data"])})
    return found


def test_github_annotations_and_the_fence(tmp_path):
    db = _hostile_db(tmp_path, regress=HOSTILE)
    r = run_cli("--db", db, "compare", "1111", "2222", env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert any(line.startswith("::warning::forged") for line in lines)  # the label, at the start of a table row
    stop = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[stop].split("::")[2]
    assert len(token) == 32 and lines.index(f"::{token}::") > stop
    forged = next(i for i, line in enumerate(lines) if line.startswith("::warning::forged"))
    assert stop < forged < lines.index(f"::{token}::")
    commands = _commands(r.output)
    assert [c["cmd"] for c in commands] == ["error"] * len(HOSTILE)  # the forged one was fenced
    titles = sorted(c["title"] for c in commands)
    assert titles == sorted(literal(f'Regression: n<b>&"m" v2, {lab}') for lab in HOSTILE)
    for c in commands:
        lab = c["title"].removeprefix('Regression: n<b>&"m" v2, ')
        assert c["data"].startswith(f"{lab}: accuracy 1.000 -> 0.000")
    # Outside GitHub Actions: neither fence nor annotations.
    plain = run_cli("--db", db, "compare", "1111", "2222")
    assert "::stop-commands::" not in plain.output and "::error" not in plain.output


def test_at_most_ten_annotations(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = engine_for(db)
    labels = ["base"] + [f"c{i:02d}" for i in range(14)]
    _labels_model(engine, "1", "1" * 64, labels, _answers(labels, 12))
    _labels_model(engine, "2", "2" * 64, labels, _answers(labels, 12, wrong=labels[1:]))
    r = run_cli("--db", db, "compare", "m@previous", "m", "--json", env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 1
    assert len(json.loads(r.stdout)["regressed_classes"]) == 14  # stdout stays JSON
    commands = _commands(r.stderr)
    assert len(commands) == ci_report.MAX_ANNOTATIONS
    assert [c["title"] for c in commands[:9]] == [f"Regression: m v2, c{i:02d}" for i in range(9)]
    assert commands[9]["title"] == "Regression: m v2, 5 more classes"
    assert commands[9]["data"] == "also regressed: c09, c10, c11, c12, c13"


def test_workflow_command_values_round_trip():
    title, message = "a:b,c%d\ne", "50% of x\r\ny::z"
    line = ci_report.workflow_command("error", message, title=title)
    assert "\n" not in line and "\r" not in line
    (c,) = _commands(line)
    assert c["title"] == literal(title) and c["data"] == literal(message)


def test_gate_writes_junit_and_summary_for_every_verdict(pokemon_db, tmp_path, schema):
    xml = tmp_path / "gate.xml"
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    fail = run_cli("--db", pokemon_db, "gate", "pokemon@previous", "pokemon", "--junit", str(xml),
                   "--report-dir", str(tmp_path / "r"), env=env)
    assert fail.exit_code == 1, fail.output
    cases = _cases(_valid(schema, xml.read_text()).find("testsuite"))
    assert cases["pikachu"].find("failure") is not None
    assert [c["title"] for c in _commands(fail.output)] == ["Regression: pokemon v2, pikachu"]
    # Cannot decide: an unknown selector is one erroring test, an error annotation, a summary.
    err = run_cli("--db", pokemon_db, "gate", "nosuchmodel", "pokemon", "--junit", str(xml), env=env)
    assert err.exit_code == 2
    root = _valid(schema, xml.read_text())
    assert root.get("errors") == "1" and "nosuchmodel" in root.find(".//error").get("message")
    assert [c["title"] for c in _commands(err.output)] == ["Regression gate: cannot decide"]
    # The same model on both sides: a pass with one passing test.
    same = run_cli("--db", pokemon_db, "gate", "pokemon", "pokemon", "--junit", str(xml), env=env)
    assert same.exit_code == 0
    root = _valid(schema, xml.read_text())
    assert root.get("tests") == "1" and root.get("failures") == "0" and root.get("errors") == "0"
    text = summary.read_text()
    assert text.count("### ") == 3
    assert "Regression gate: FAIL" in text and "cannot decide" in text and "same fingerprint" in text


def test_unwritable_output_is_a_clear_error(pokemon_db, tmp_path):
    r = run_cli("--db", pokemon_db, "compare", "pokemon@previous", "pokemon", "--junit",
                str(tmp_path / "missing" / "x.xml"))
    assert r.exit_code == 2 and "cannot write" in r.output and "Traceback" not in r.output


def test_junit_with_a_control_character_would_be_invalid_without_literal(schema):
    """The guard is needed: XML 1.0 cannot carry ESC, so an unescaped name breaks the file."""
    bad = '<testsuites><testsuite name="a\x1b" tests="0" failures="0" errors="0"/></testsuites>'
    with pytest.raises(ET.ParseError):
        ET.fromstring(bad)


# The CI examples in docs/ci, validated with check-jsonschema's built-in schemas ------------------

EXAMPLES = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def _check(path: Path, schema_name: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run([str(exe), "--builtin-schema", schema_name, str(path)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_ci_examples_are_valid(name, tmp_path):
    path = ROOT / "docs" / "ci" / name
    r = _check(path, EXAMPLES[name])
    assert r.returncode == 0, r.stdout + r.stderr
    text = path.read_text()
    assert "--junit" in text and "data-collector gate" in text
    # The check can fail: the same file with a misspelt key is refused.
    broken = tmp_path / name
    broken.write_text(text.replace("runs-on:", "runs_on:").replace("script:", "scripts:"))
    assert _check(broken, EXAMPLES[name]).returncode != 0


def test_gitlab_example_reports_the_junit_file_it_writes():
    import yaml

    job = yaml.safe_load((ROOT / "docs" / "ci" / "gitlab-ci.yml").read_text())["regression-gate"]
    junit = job["artifacts"]["reports"]["junit"]
    assert job["artifacts"]["when"] == "always"
    assert any(f"--junit {junit}" in line for line in job["script"])
