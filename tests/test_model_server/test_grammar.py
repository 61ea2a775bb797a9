"""The one grammar for numbers and versions in text from outside (model_server/grammar.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.protocols.answers import InvalidAnswer, version_text
from model_server.grammar import (
    MAX_DIGITS,
    GrammarError,
    is_digits,
    is_version,
    parse_uint,
    version_order,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "data_collector" / "collector", ROOT / "trained_models" / "model_server"]


@given(st.text(max_size=30))
def test_a_number_is_ascii_digits_and_nothing_else(text):
    expected = 0 < len(text) <= MAX_DIGITS and all(c in "0123456789" for c in text)
    assert is_digits(text) is expected
    if expected:
        assert parse_uint(text, "n") == int(text)
    else:
        with pytest.raises(GrammarError):
            parse_uint(text, "n")


@pytest.mark.parametrize("text", ["²", "3²", "٣", "¹²", " 7", "7 ", "1_000", "+1", "-1", "0x10", "", "1" * 19])
def test_what_python_would_read_as_a_number_is_refused(text):
    with pytest.raises(GrammarError):
        parse_uint(text, "n")


def test_a_bound_is_checked_after_the_digits():
    assert parse_uint("65535", "port", maximum=65535) == 65535
    with pytest.raises(GrammarError, match="at most 65535"):
        parse_uint("65536", "port", maximum=65535)


@given(st.text(max_size=120))
def test_a_version_is_a_short_ascii_word_and_any_text_sorts(text):
    ok = is_version(text)
    if ok:
        assert text.isascii() and " " not in text and 1 <= len(text) <= 100 and text[0].isalnum()
    version_order(text)  # never raises, whatever a database row holds
    try:
        assert version_text(text, "version") == text and ok
    except InvalidAnswer:
        assert not ok or text != text.strip()


@pytest.mark.parametrize("version,ok", [("3", True), ("v2", True), ("1.0.0-rc1+build.5", True), ("2024-06-01", True),
                                        ("3²", False), ("٣", False), ("1 0", False), (".1", False), ("1.", False),
                                        ("a" * 101, False)])
def test_versions(version, ok):
    assert is_version(version) is ok


def test_natural_order_reads_only_ascii_digits():
    assert sorted(["10", "2", "3²", "v1"], key=version_order) == ["2", "10", "3²", "v1"]


# int()/float() calls in the two packages that are known not to take text from outside: each is on
# a number already (numpy values, counts, validated floats) or on our own files. A new one must be
# added here with its reason, or use model_server.grammar.
ALLOWED_CONVERSIONS = {
    ("ci_report.py", "int(s.get(key))"),  # attributes of the JUnit XML this module wrote itself
    ("collect.py", 'float("nan")'),
    ("paired.py", "float(binomtest(b, b + c, 0.5).pvalue)"), ("paired.py", "float(diff.mean())"),
    ("paired.py", 'float(wilcoxon(diff, alternative="less", zero_method="wilcox").pvalue)'),
    ("paired.py", "float(lo)"), ("paired.py", "float(hi)"), ("paired.py", "int(np.sum(base_right & ~cand_right))"),
    ("paired.py", "int(np.sum(~base_right & cand_right))"), ("paired.py", "float(base_right.mean())"),
    ("paired.py", "float(cand_right.mean())"), ("paired.py", 'float(scores.get(row["label"], 0.0))'),
    # numpy results and stored numbers (the database's float columns, the stored score JSON)
    ("calibration.py", "float(((probs[:, j] - onehot[:, j]) ** 2).mean())"),
    ("calibration.py", "float(_brier_per_image(rows, labels).mean())"), ("calibration.py", "float(c)"),
    ("calibration.py", "float(hi)"), ("calibration.py", "float(lo)"), ("calibration.py", "float(hit[m].mean())"),
    ("calibration.py", "float(np.abs(gap.sum(axis=0)).sum() / max(len(p), 1))"),
    ("calibration.py", "float(p[m].mean())"), ("calibration.py", "float(per_image.mean())"),
    ("calibration.py", "float(scores[lab])"), ("calibration.py", "int(m.sum())"),
    ("latency.py", "float(hi)"), ("latency.py", "float(lo)"), ("latency.py", "float(p50)"),
    ("latency.py", "float(p95)"), ("latency.py", "float(p99)"), ("latency.py", "int(len(ms))"),
    ("latency.py", "float(np.median(cand_ms / np.maximum(base_ms, 1e-09)))"),
    ("latency.py", 'float(wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue)'),
    ("perturb.py", "float(rng.uniform(5.0, 12.0) * rng.choice([-1.0, 1.0]))"),
    ("perturb.py", "int(source_sha256[:16], 16)"),  # the seed: our own sha256 hex, as testset.in_shard
    ("robustness.py", "float(cand - base)"), ("robustness.py", "float(np.mean(values))"),
    ("robustness.py", 'float(r["predicted_label"] == r["label"])'),
    ("gates.py", "int(timeout / 0.1)"),
    ("metrics.py", "int(cm[i, i])"), ("metrics.py", "int(cm[i].sum())"), ("metrics.py", "int(cm[:, i].sum())"),
    ("mlflow_export.py", "int(t.timestamp() * 1000)"), ("mlflow_export.py", "float(v)"),
    ("foreign.py", "float(v)"), ("foreign.py", "int(np.argmax(row))"),
    ("render.py", "int(120 * r ** 2)"),
    ("reports.py", "float(np.mean(right))"), ("reports.py", "float(np.mean(wrong))"),
    ("reports.py", "float(probe_conf.mean())"), ("reports.py", "float((probe_conf >= 0.9).mean())"),
    ("reports.py", "int(c)"),
    ("store.py", "float(v)"), ("store.py", "int(r['run_id'])"), ("store.py", "int(r['model_id'])"),
    ("store.py", "int(r['image_id'])"), ("store.py", "float(r['confidence'])"), ("store.py", "float(r['latency_ms'])"),
    ("store.py", "int(n)"), ("store.py", "int(ok or 0)"),
    ("suspects.py", "int(cand[np.argmax(probs[i, cand])])"), ("suspects.py", "int(np.argmax(top))"),
    ("suspects.py", 'float(r["scores"].get(lab, 0.0))'), ("suspects.py", 'float(r["scores"].get(r["label"], 0.0))'),
    ("suspects.py", 'float(np.mean(s["given_probability"]))'),
    ("images.py", 'int(hashlib.sha256(f"{item.sha256} {item.label}\\n".encode()).hexdigest(), 16)'),
    ("images.py", "int(sha256[:16], 16)"),
    ("check.py", "int(str(imagehash.phash(img, hash_size=8)), 16)"), ("check.py", "int(x, 16)"),
    ("check.py", "int(d[r, c])"),
    ("grammar.py", "int(text)"), ("grammar.py", "int(p)"),  # the grammar itself, after the check
    ("model.py", "int(self.keras_model.output_shape[-1])"), ("model.py", 'int(outputs[0]["shape_signature"][-1])'),
    ("oip.py", "int(np.prod(shape, dtype=np.int64))"), ("oip.py", "float(v)"),
}


def _conversions():
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in ("isdigit", "isnumeric", "isdecimal"):
                    yield path, node, f"{f.attr}()"
                elif isinstance(f, ast.Name) and f.id in ("int", "float"):
                    yield path, node, ast.unparse(node)


def test_no_number_is_read_from_text_outside_the_grammar():
    """An AST walk: no isdigit/isnumeric/isdecimal anywhere, and every int()/float() reviewed."""
    found = {(path.name, text.replace("'", '"')) for path, _, text in _conversions()}
    allowed = {(name, text.replace("'", '"')) for name, text in ALLOWED_CONVERSIONS}
    unexpected = sorted(x for x in found if x not in allowed or x[1].endswith("()"))
    assert not unexpected, f"numbers read outside model_server.grammar: {unexpected}"
    stale = sorted(allowed - found)
    assert not stale, f"allowlist entries no longer in the code: {stale}"
