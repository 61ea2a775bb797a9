"""evaluate_deployment, what `watch` and the deploy hook run for each new model: collect what is
missing, judge it against its previous version, write its reports once; a failure says a
category, never what the target said, when the caller must not echo it."""

from __future__ import annotations

import json

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings, evaluate_deployment
from helpers import engine_for, free_port, serve_model, write_color_model

LABELS = ["red", "green", "blue"]


def test_a_new_model_is_judged_against_its_previous_version_and_reported_once(tmp_path, big_data):
    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path / "reports", opts=CollectOptions(batch_size=16))
    v1 = write_color_model(tmp_path / "v1", LABELS, version="1")
    v2 = write_color_model(tmp_path / "v2", LABELS, version="2", swap=("green", "blue"))
    with serve_model(v1) as one:
        first = evaluate_deployment(one.url, engine=engine, settings=settings)
    assert (first["verdict"], first["baseline"], first["evaluated"]) == ("no-baseline", None, True)
    assert first["images_sent"] > 0
    with serve_model(v2) as two:
        second = evaluate_deployment(two.url, engine=engine, settings=settings)
        again = evaluate_deployment(two.url, engine=engine, settings=settings)
    assert second["verdict"] == "regression" and "green" in second["regressed_classes"]
    assert second["baseline"] == first["fingerprint"]
    report = json.loads((tmp_path / "reports" / (second["report"].rsplit("/", 1)[-1][:-5] + ".json")).read_text())
    assert report["comparison"]["regressed_classes"] == second["regressed_classes"]
    assert (again["verdict"], again["images_sent"], again["evaluated"]) == ("regression", 0, False)
    assert "report" not in again  # nothing new was evaluated: no new report
    assert len(list((tmp_path / "reports").glob("*.html"))) == 2


def test_an_unreachable_model_is_an_error_said_as_a_category_when_echo_is_off(tmp_path, big_data):
    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    url = f"http://127.0.0.1:{free_port()}"
    for echo in (True, False):
        settings = DeploySettings(test_dir=big_data, report_dir=tmp_path, opts=CollectOptions(echo_errors=echo,
                                                                                               retries=0))
        out = evaluate_deployment(url, engine=engine, settings=settings)
        assert out["verdict"] == "error" and out["status"] == "error"
        if echo:
            assert out["error"] and "could not evaluate URL" not in out["error"]
        else:
            assert out["error"].startswith("could not evaluate URL: ")
