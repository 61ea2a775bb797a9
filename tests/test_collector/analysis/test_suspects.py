"""Label suspects: the rule against cleanlab's, planted wrong labels found through report and the view."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from collector.analysis.suspects import flag_issues
from collector.outputs.web import create_web_app
from helpers import collect_models, make_test_data, run_cli, write_color_model


@pytest.mark.parametrize("seed", range(8))
def test_the_rule_is_cleanlabs_confident_learning_filter(seed):
    rng = np.random.default_rng(seed)
    n, k = 300, int(rng.integers(2, 9))
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += rng.uniform(0, 3)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    ours = np.array([f is not None for f in flag_issues(list(y), p)])
    theirs = find_label_issues(y, p, filter_by="confident_learning")
    assert ours.sum() > 0 and (ours == theirs).all(), (ours.sum(), theirs.sum(), (ours != theirs).sum())


def test_a_class_without_images_of_its_own_warns_nothing_and_flags_nothing_as_it():
    """ml_ditto knows ditto, but a test set may hold no ditto image: its threshold stays infinite."""
    import warnings

    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in subtract" was one
        flagged = flag_issues([0, 1, 1, 0], probs)  # class 2 has no image of its own
    assert 2 not in flagged and flagged[2] is None


PLANTED = {"red/red-03.png": "green", "green/green-07.png": "blue", "blue/blue-11.png": "red"}


def test_planted_wrong_labels_are_the_suspects(db_url, tmp_path):
    data = make_test_data(tmp_path / "td", per_class=20)
    for path, wrong in PLANTED.items():  # a red image filed under green, and so on
        shutil.move(data / path, data / wrong / path.split("/")[1])
    v1 = write_color_model(tmp_path / "v1", ["red", "green", "blue"], version="1")
    v2 = write_color_model(tmp_path / "v2", ["red", "green", "blue"], version="2", scale=11.0)
    engine = collect_models(db_url, data, v1, v2)
    r = run_cli("--db", db_url, "report", "--json", "-")
    suspects = json.loads(r.output)["label_suspects"]
    got = {s["path"]: (s["label"], s["suggested"], s["flagged_by"], s["seen_by"]) for s in suspects}
    want = {f"{wrong}/{path.split('/')[1]}": (wrong, path.split("/")[0], 2, 2) for path, wrong in PLANTED.items()}
    assert got == want  # all three found, no other image suspected
    text = run_cli("--db", db_url, "report").output
    assert "label suspects: check these labels (3;" in text and "green/red-03.png" in text
    client = create_web_app(engine=engine, test_dir=data).test_client()
    page = client.get("/suspects").get_data(as_text=True)
    assert page.count("<figure") == 3 and "green/red-03.png" in page and "labelled <span class='wrong'>green" in page
    for s in suspects:  # each thumbnail is served
        assert client.get(f"/images/{s['sha256']}?size=96").status_code == 200
    assert client.get("/api/suspects").get_json()["label_suspects"] == suspects


def test_no_suspect_in_a_correct_set(db_url, tmp_path):
    data = make_test_data(tmp_path / "td", per_class=10)
    collect_models(db_url, data, write_color_model(tmp_path / "v1", ["red", "green", "blue"]))
    assert json.loads(run_cli("--db", db_url, "report", "--json", "-").output)["label_suspects"] == []
    assert "label suspects: none" in run_cli("--db", db_url, "report").output
