"""Reports from stored predictions: terminal, JSON and self-contained HTML."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from helpers import collect_models, run_cli, write_color_model


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))


def test_html_and_json_report(tmp_path, big_data):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", swap=("green", "blue"))
    collect_models(db, big_data, v1, v2)
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    r = run_cli("--db", db, "report", "--html", str(html_path), "--json", str(json_path))
    assert r.exit_code == 0, r.output
    assert "precision" in r.output and "lookalike probes" in r.output
    p = _Parser()
    p.feed(html_path.read_text())
    assert p.tags.count("table") >= 4  # per model: classes and confusion matrix
    # Per model: recall bars and the probe histogram; and the recall history of the two versions.
    assert p.tags.count("svg") == 5 and p.imgs == []
    assert "Recall per class, colors v2" in html_path.read_text() and "colors: per-class recall by version" in (
        html_path.read_text())
    assert "http" not in html_path.read_text()  # self-contained: nothing to fetch
    body = json.loads(json_path.read_text())
    v2rep = next(m for m in body["models"] if m["model"]["version"] == "2")
    assert v2rep["classes"]["green"]["recall"] == 0.0 and v2rep["classes"]["blue"]["precision"] == 0.5
    assert v2rep["confusion"]["matrix"][1] == [0, 0, 30]
    assert v2rep["probes"]["n"] == 3
    # What the test set can see: 30 images a class show no drop under 6/30; ~124 are needed for 0.10.
    assert v2rep["classes"]["green"]["min_detectable_drop"] == pytest.approx(0.2)
    assert v2rep["power"]["images_needed_per_class"] > 30
    assert f"a class needs ~{v2rep['power']['images_needed_per_class']} images; short: red 30" in " ".join(
        r.output.split())
    assert "<th>MDD</th>" in html_path.read_text() and "<td>0.20</td>" in html_path.read_text()
    r = run_cli("--db", db, "report", "--model", "nope")
    assert r.exit_code == 2 and "no evaluated model" in r.output
