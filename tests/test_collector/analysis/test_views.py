"""What the web view shows, as data: the overview groups and orders versions, counts only labelled
images, follows new predictions, and names claim conflicts; a model's page lists its mistakes
most confident first; history is per-class recall, oldest version first."""

from __future__ import annotations

import pytest

from collector.analysis import views
from collector.analysis.selectors import SelectorError
from helpers import engine_for, store_model

LABELS = ["red", "green", "blue"]


def _answers(wrong: int, n: int = 10, prefix: str = "") -> list[tuple]:
    """n red photos, the first `wrong` of them answered green (ever less sure), and one lookalike."""
    out = [(f"{prefix}r{i:02d}".ljust(64, "0"), "red", "photo", "green" if i < wrong else "red",
            {"green": 0.9 - i * 0.05, "red": 0.1 + i * 0.05} if i < wrong else {"red": 0.9, "green": 0.1})
           for i in range(n)]
    return out + [("probe".ljust(64, "0"), "mew", "lookalike", "red", {"red": 0.99, "green": 0.01})]


@pytest.fixture
def engine(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'v.db'}")
    store_model(engine, name="colors", version="1", fingerprint="a1" * 32, labels=LABELS, answers=_answers(2))
    store_model(engine, name="colors", version="10", fingerprint="a2" * 32, labels=LABELS, answers=_answers(4))
    store_model(engine, name="colors", version="2", fingerprint="a3" * 32, labels=LABELS, answers=_answers(0))
    store_model(engine, name="alpha", version="1", fingerprint="b1" * 32, labels=LABELS, answers=_answers(5))
    return engine


def test_the_overview_groups_by_name_newest_version_first_and_counts_labelled_images(engine):
    with engine.connect() as conn:
        o = views.models_overview(conn)
    assert o["n_models"] == 4
    assert [g["name"] for g in o["groups"]] == ["alpha", "colors"]
    colors = o["groups"][1]["versions"]
    assert [v["version"] for v in colors] == ["10", "2", "1"]  # version order, not text order
    assert [v["accuracy"] for v in colors] == [0.6, 1.0, 0.8]  # the lookalike probe is not counted
    assert [v["n"] for v in colors] == [10, 10, 10]
    assert colors[0]["recall"]["red"] == 0.6 and colors[0]["conflict"] == []


def test_the_overview_follows_new_predictions_and_names_a_claim_conflict(engine):
    with engine.connect() as conn:
        before = views.models_overview(conn)
    store_model(engine, name="alpha", version="1", fingerprint="b2" * 32, labels=LABELS,
                answers=_answers(0, prefix="x"), url="http://other:8080")
    with engine.connect() as conn:
        after = views.models_overview(conn)
    assert before["n_models"] == 4 and after["n_models"] == 5
    alpha = {v["fingerprint"]: v for v in after["groups"][0]["versions"]}
    assert alpha["b1" * 32]["conflict"] == ["b2" * 32] and alpha["b2" * 32]["conflict"] == ["b1" * 32]
    assert alpha["b2" * 32]["accuracy"] == 1.0


def test_a_models_page_lists_its_mistakes_most_confident_first(engine):
    with engine.connect() as conn:
        d = views.model_detail(conn, "colors@10")
        only_blue = views.model_detail(conn, "colors@10", label="blue")
        with pytest.raises(SelectorError):
            views.model_detail(conn, "colors@7")
    wrong = d["misclassified"]["images"]
    assert d["misclassified"]["total"] == 4 and [w["predicted"] for w in wrong] == ["green"] * 4
    assert [w["confidence"] for w in wrong] == sorted((w["confidence"] for w in wrong), reverse=True)
    assert only_blue["misclassified"]["total"] == 0
    assert [x["label"] for x in d["lookalikes"]] == ["mew"]
    assert d["previous"]["version"] == "2" and [v["version"] for v in d["versions"]] == ["1", "2", "10"]


def test_history_is_per_class_recall_oldest_version_first(engine):
    with engine.connect() as conn:
        h = views.history(conn, "colors")
    assert [v["version"] for v in h["versions"]] == ["1", "2", "10"]
    assert [v["recall"]["red"] for v in h["versions"]] == [0.8, 1.0, 0.6]
