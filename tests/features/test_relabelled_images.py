"""Relabelling an image (same bytes, a new label) never turns a stored answer right or wrong.

A relabelled image is a new image to the store: a model evaluated before keeps its answer under
the label it was asked with (and is not asked again: an answer depends on the bytes only); a
model evaluated after is asked under the new label; `compare` leaves the image out and says what
differs between the two test sets.
"""

from __future__ import annotations

import json
import shutil

from helpers import collect_models, make_test_data, run_cli, serve_model, write_color_model


def test_a_relabelled_image_is_left_out_and_named(db_url, tmp_path):
    data = make_test_data(tmp_path / "td", per_class=20)
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", scale=11.0)  # other weights
    engine = collect_models(db_url, data, v1)
    report = json.loads(run_cli("--db", db_url, "report", "--json", "-").output)["models"][0]
    assert report["classes"]["red"]["support"] == 20 and report["classes"]["red"]["recall"] == 1.0

    # The red image moves to green: its bytes are unchanged, its label is not.
    moved = data / "green" / "red-00.png"
    shutil.move(data / "red" / "red-00.png", moved)
    from collector.collect import collect

    said: list[str] = []
    with serve_model(v1) as srv:
        (r,) = collect([srv.url], engine=engine, test_dir=data, say=said.append)
    assert r.status == "skipped" and r.n_sent == 0  # v1 answered these bytes already: not asked again
    assert any("1 images are stored under another label (relabelled): green/red-00.png" in m for m in said), said
    again = json.loads(run_cli("--db", db_url, "report", "--json", "-", "--model", "colors@1").output)["models"][0]
    assert again["classes"] == report["classes"]  # its answer is still judged under red, the label it was asked

    collect_models(db_url, data, v2)
    v2rep = json.loads(run_cli("--db", db_url, "report", "--json", "-", "--model", "colors@2").output)["models"][0]
    assert v2rep["classes"]["red"]["support"] == 19 and v2rep["classes"]["green"]["support"] == 21
    assert v2rep["classes"]["green"]["recall"] < 1.0  # v2 says red for it, and is judged under green

    r = run_cli("--db", db_url, "compare", "colors@1", "colors@2", "--json")
    c = json.loads(r.output)
    assert r.exit_code == 0, r.output  # the relabelled image does not become a regression of green
    assert c["test_sets"]["relabelled"] == 1 and not c["test_sets"]["same"]
    assert c["test_sets"]["examples"]["relabelled"] == [
        {"path": "green/red-00.png", "baseline_label": "red", "candidate_label": "green"}]
    assert c["n_common_images"] == 59
    assert c["classes"]["green"]["n"] == 20 and c["classes"]["red"]["n"] == 19
    text = run_cli("--db", db_url, "compare", "colors@1", "colors@2").output
    assert "evaluated on different test sets: 0 images only the baseline saw, 0 only the candidate, " \
           "1 relabelled (left out); compared on the 59 images both saw under one label" in text
    assert "relabelled: green/red-00.png: red -> green" in text
    html = tmp_path / "c.html"
    run_cli("--db", db_url, "compare", "colors@1", "colors@2", "--html", str(html))
    assert "Test sets differ" in html.read_text() and "green/red-00.png: red → green" in html.read_text()


def test_the_same_test_set_is_said_to_be_the_same(db_url, tmp_path):
    data = make_test_data(tmp_path / "td", per_class=10)
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", scale=11.0)  # other weights
    collect_models(db_url, data, v1, v2)
    c = json.loads(run_cli("--db", db_url, "compare", "colors@1", "colors@2", "--json").output)
    assert c["test_sets"]["same"] and c["test_sets"]["relabelled"] == 0 and c["n_common_images"] == 30
    assert "different test sets" not in run_cli("--db", db_url, "compare", "colors@1", "colors@2").output
