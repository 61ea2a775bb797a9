"""The gate service's fixtures: the hook app on a live server (SQLite, or PostgreSQL when asked)
and three colour models (a baseline, one with two classes swapped, one only surer)."""

from __future__ import annotations

import pytest

from collector.collect import CollectOptions
from collector.service.deploy import DeploySettings
from collector.service.hook import HostPolicy, create_hook_app
from helpers import LiveServer, write_color_model

LABELS = ["red", "green", "blue"]
TOKEN = "t" * 24


@pytest.fixture
def gate_app(tmp_path, big_data, request):
    on = getattr(request, "param", "sqlite")
    db = request.getfixturevalue("pg_url") if on == "postgres" else f"sqlite:///{tmp_path / 'gate.db'}"
    from collector.storage import store

    engine = store.make_engine(db)
    settings = DeploySettings(test_dir=big_data, report_dir=tmp_path / "reports", opts=CollectOptions(batch_size=8))
    app = create_hook_app(engine=engine, settings=settings, token=TOKEN, allowed=HostPolicy(["127.0.0.1"]))
    with LiveServer(app) as srv:
        yield srv
    app.extensions["gate_service"].stop(5)


@pytest.fixture
def models(tmp_path):
    return {"v1": write_color_model(tmp_path / "v1", LABELS, version="1"),
            "broken": write_color_model(tmp_path / "v2", LABELS, version="2", swap=("green", "blue")),
            "surer": write_color_model(tmp_path / "v3", LABELS, version="3", scale=14.0)}
