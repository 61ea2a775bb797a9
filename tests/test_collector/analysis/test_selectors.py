"""Naming stored models: version order, and claims that two fingerprints make are ambiguous."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.analysis.selectors import (
    FINGERPRINT_PREFIX,
    AmbiguousSelector,
    ConflictingModel,
    SelectorError,
    pick,
    previous_of,
    require_undisputed,
)
from collector.protocols.answers import InvalidAnswer, check_name
from collector.storage import store
from collector.storage.store import ModelInfo
from helpers import engine_for, run_cli, store_model


def _model(engine, fp: str, version: str, url: str = "http://model:8080", wrong: bool = False):
    import hashlib

    answers = [(hashlib.sha256(str(i).encode()).hexdigest(), "a" if i % 2 else "b", "photo",
                ("b" if wrong and i % 2 else ("a" if i % 2 else "b"))) for i in range(10)]
    store_model(engine, name="m", version=version, fingerprint=fp * 64, labels=["a", "b"], answers=answers, url=url)


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = engine_for(url)
    _model(engine, "1", "10")  # first seen, but the newest version
    _model(engine, "2", "2")
    _model(engine, "3", "9", wrong=True)
    return url, engine


def test_newest_and_previous_follow_version_order(db):
    _, engine = db
    with engine.connect() as c:
        ms = store.list_models(c)
    assert pick(ms, "m").version == "10" and pick(ms, "m@latest").version == "10"
    assert pick(ms, "m@previous").version == "9"
    assert previous_of(ms, pick(ms, "m@9")).version == "2" and previous_of(ms, pick(ms, "m@2")) is None
    with pytest.raises(SelectorError, match="no version before"):
        pick(ms, "m@previous", relative_to=pick(ms, "m@2"))


def test_a_version_two_fingerprints_claim_is_refused_everywhere(db, tmp_path):
    url, engine = db
    _model(engine, "4", "9", url="http://impostor:8080")  # a second claim of m@9
    _model(engine, "5", "10", url="http://other:8080")  # and of m@10
    with engine.connect() as c:
        ms = store.list_models(c)
    for sel, rel in (("m@9", None), ("m", None), ("m@latest", None), ("m@previous", None),
                     ("m@previous", pick(ms, "1111"))):
        with pytest.raises(AmbiguousSelector) as e:
            pick(ms, sel, relative_to=rel)
        assert "ambiguous" in str(e.value)
    msg = str(pytest.raises(AmbiguousSelector, pick, ms, "m@9").value)
    assert "333333333333" in msg and "444444444444" in msg and "impostor:8080" in msg and "declared" in msg
    assert pick(ms, "4444").fingerprint == "4" * 64 and pick(ms, "m@2").fingerprint == "2" * 64
    # The command line: exit 2 naming both; a prefix works and is marked; models marks the conflict.
    r = run_cli("--db", url, "compare", "m@2", "m@9")
    assert r.exit_code == 2 and "ambiguous" in r.output and "444444444444" in r.output
    r = run_cli("--db", url, "report", "--model", "m")
    assert r.exit_code == 2 and "ambiguous" in r.output
    r = run_cli("--db", url, "report", "--model", "3333")
    assert r.exit_code == 0 and "CONFLICT" in r.output and "444444444444" in r.output
    r = run_cli("--db", url, "models")
    assert r.exit_code == 0 and r.output.count("CONFLICT") == 4 and "conflict: m v9" in r.output
    listed = json.loads(run_cli("--db", url, "models", "--json").output)
    assert {m["fingerprint"][:1]: len(m["conflict"]) for m in listed} == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 1}
    r = run_cli("--db", url, "compare", "2222", "3333")
    assert r.exit_code == 1 and "REGRESSION" in r.output  # fingerprints name them: the verdict is given


def test_json_and_html_to_standard_output(db, tmp_path, monkeypatch):
    url, _ = db
    monkeypatch.chdir(tmp_path)
    r = run_cli("--db", url, "report", "--model", "m@2", "--json", "-")
    assert r.exit_code == 0 and json.loads(r.output)["models"][0]["model"]["version"] == "2"
    r = run_cli("--db", url, "compare", "m@2", "m@9", "--html", "-")
    assert r.exit_code == 1 and r.output.lstrip().startswith("<!doctype html>")
    assert not (tmp_path / "-").exists()


def test_the_hooks_default_baseline_is_refused_when_two_claim_it(tmp_path, color_model, test_data):
    """The deploy path compares with the version before the candidate: claimed by two, no verdict."""
    import hashlib

    from collector.collect import CollectOptions
    from collector.service.deploy import DeploySettings, evaluate_deployment
    from helpers import serve_model

    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    answers = [(hashlib.sha256(str(i).encode()).hexdigest(), "red", "photo", "red") for i in range(3)]
    for fp, host in (("7", "http://one:8080"), ("8", "http://two:8080")):  # colors v0, twice
        store_model(engine, name="colors", version="0", fingerprint=fp * 64, labels=["red", "green", "blue"],
                    answers=answers, url=host)
    settings = DeploySettings(test_dir=test_data, report_dir=tmp_path / "r", opts=CollectOptions())
    with serve_model(color_model) as srv:  # colors v1
        out = evaluate_deployment(srv.url, engine=engine, settings=settings)
    assert out["verdict"] == "error" and out["baseline"] is None
    assert "ambiguous" in out["error"] and "777777777777" in out["error"] and "888888888888" in out["error"]


# ---- one text, one reading (hypothesis) ------------------------------------------------------

HEX = "0123456789abcdef"
names = st.one_of(st.text(HEX, min_size=1, max_size=12), st.sampled_from(["colors", "m", "beef", "ml_original"]),
                  st.text("abcdefxyz_@:", min_size=1, max_size=8))
fingerprints = st.text(HEX, min_size=64, max_size=64)


@st.composite
def stored(draw):
    fps = draw(st.lists(fingerprints, min_size=1, max_size=5, unique=True))
    # Names a database may hold from before the rule (hex names included): the resolver must still
    # never pick one reading silently.
    return [ModelInfo(i + 1, draw(names), draw(st.sampled_from(["1", "2", "10"])), fp, ["a", "b"],
                      datetime(2026, 1, 1 + i, tzinfo=UTC)) for i, fp in enumerate(fps)]


def _selectors(ms):
    out = set()
    for m in ms:
        out |= {m.name, m.fingerprint[:4], m.fingerprint[:12], m.fingerprint, f"fp:{m.fingerprint[:6]}",
                f"sha256:{m.fingerprint[:8]}", f"{m.name}@{m.version}", f"{m.name}@latest", m.fingerprint[:12].upper()}
    return sorted(out)


@settings(max_examples=300, deadline=None)
@given(stored(), st.data())
def test_a_selector_has_one_reading_or_is_refused(ms, data):
    """Whatever names are stored, a selector that resolves means one model under every reading
    it admits: fp:/sha256: only a fingerprint; a bare text never both a name and a prefix."""
    sel = data.draw(st.sampled_from(_selectors(ms)))
    try:
        m = pick(ms, sel)
    except SelectorError:
        return
    kind, colon, rest = sel.partition(":")
    if colon and kind in ("fp", "sha256"):
        assert m.fingerprint.startswith(rest.lower())
        assert sum(x.fingerprint.startswith(rest.lower()) for x in ms) == 1
        return
    name = sel.partition("@")[0]
    as_name = [x for x in ms if x.name == name]
    as_prefix = [x for x in ms if "@" not in sel and FINGERPRINT_PREFIX.fullmatch(sel.lower())
                 and x.fingerprint.startswith(sel.lower())]
    assert not (as_name and as_prefix), f"{sel!r} read one way of two"
    assert m in as_name or m in as_prefix


@given(st.text(max_size=70))
def test_no_registered_name_reads_as_a_fingerprint_or_a_version(text):
    try:
        check_name(text)
    except InvalidAnswer:
        return
    assert not FINGERPRINT_PREFIX.fullmatch(text.lower()) and "@" not in text
    assert not text.lower().startswith(("fp:", "sha256:"))


def test_a_name_that_is_a_fingerprint_prefix_is_refused_naming_both_readings():
    real = ModelInfo(1, "ml_original", "3", "334588a2b488" + "0" * 52, ["a"], datetime(2026, 1, 1, tzinfo=UTC))
    impostor = ModelInfo(2, "334588a2b488", "1", "f" * 64, ["a"], datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(AmbiguousSelector) as e:
        pick([real, impostor], "334588a2b488")
    assert "reads two ways" in str(e.value) and "ffffffffffff" in str(e.value) and "334588a2b488" in str(e.value)
    assert pick([real, impostor], "fp:334588a2b488") is real
    assert pick([real, impostor], "334588a2b488@latest") is impostor  # explicitly the name
    impostor.conflicts = 0
    real.conflicts = 3
    with pytest.raises(ConflictingModel, match="is conflicting"):
        require_undisputed(impostor, real)


@pytest.mark.parametrize(("asked", "hint"), [
    ("ml_orignal", "did you mean 'ml_original'?"),
    ("ML_DITTO", "did you mean 'ml_ditto'?"),
    ("ml_ditto_and_mimiku@previous", "did you mean 'ml_ditto_and_mimikyu'?"),
    ("squirtle_net", None),
])
def test_a_misspelt_name_suggests_the_nearest_stored_names(asked, hint):
    names = ["ml_original", "ml_ditto", "ml_ditto_and_mimikyu"]
    ms = [ModelInfo(i, n, "1", f"{i}" * 64, ["a"], datetime(2026, 1, 1, tzinfo=UTC)) for i, n in enumerate(names, 1)]
    with pytest.raises(SelectorError) as e:
        pick(ms, asked)
    if hint is None:
        assert "did you mean" not in str(e.value)
    else:
        assert hint in str(e.value)


def test_the_cli_suggests_a_name_and_exits_2(db):
    url, _ = db
    r = run_cli("--db", url, "report", "--model", "n")
    assert r.exit_code == 2 and "did you mean 'm'?" not in r.output  # one letter: too far to guess
    r = run_cli("--db", url, "compare", "mm", "m")
    assert r.exit_code == 2 and "did you mean 'm'?" in r.output, r.output
