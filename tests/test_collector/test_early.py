"""early.py: the first requests of a collection go out before the database is open, and what
they bring is used once (an image is not asked twice), checked like any answer, or dropped."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from collector.collect import collect
from collector.early import EARLY_BATCHES, CollectOptions, Early
from collector.protocols import validate
from collector.protocols.client import ModelClient, ModelServerError
from collector.storage.schema import predictions
from collector.testset import images as testset
from helpers import engine_for, serve_model

DEADLINE_S = 120  # every wait below retries to this; none needs it on an idle machine


def _quiet(_msg):
    pass


def _spy(monkeypatch) -> list[tuple[str, list[str]]]:
    """Every predict call: the calling thread's name and the images' paths."""
    calls = []
    real = ModelClient.predict

    def spy(self, images):
        calls.append((threading.current_thread().name, [name for name, _ in images]))
        return real(self, images)

    monkeypatch.setattr(ModelClient, "predict", spy)
    return calls


def _settled(early: Early) -> None:
    """Wait until every early batch was sent and answered (no database involved)."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        ep = early.endpoints[0]
        if ep.described.is_set() and (ep.error or (not ep.queue and not any(not e.is_set()
                                                                           for e in ep.sending.values()))):
            return
        time.sleep(0.05)
    raise AssertionError("the early batches did not end")


def test_the_first_batches_are_answered_before_any_database_exists(color_model, test_data, monkeypatch):
    calls = _spy(monkeypatch)
    with serve_model(color_model) as srv:
        early = Early([srv.url], test_data, CollectOptions(batch_size=4))
        client = None
        try:
            _settled(early)
            client, meta = early.describe(0)
            wanted = testset.eligible(early.first_chunk(), meta["labels"])
            assert len(wanted) == 21 and len(calls) == min(EARLY_BATCHES, 6)  # 21 images in batches of 4
            assert all(name.startswith("early") for name, _ in calls)
            held = {i.sha256: early.held(0, i.sha256) for i in wanted}
            assert all(h is not None for h in held.values())
            assert early.held(0, wanted[0].sha256) is None  # handed out once
            body = client.predict([(i.path, i.read(test_data)) for i in wanted[:4]])
            direct = validate.predictions(body, n_sent=4, labels=meta["labels"], fingerprint=meta["fingerprint"],
                                          version=meta["version"])
            for item, p in zip(wanted[:4], direct, strict=True):  # what the server answers, checked
                assert held[item.sha256].answer["label"] == p["label"]
                assert held[item.sha256].answer["scores"] == pytest.approx(p["scores"], rel=1e-5)
                assert held[item.sha256].latency_ms > 0
        finally:
            early.close()
            if client is not None:
                client.close()


def test_collect_stores_what_was_answered_early_without_asking_again(tmp_path, color_model, test_data, monkeypatch):
    calls = _spy(monkeypatch)
    engine = engine_for(f"sqlite:///{tmp_path / 'c.db'}")
    opts = CollectOptions(batch_size=4)
    with serve_model(color_model) as srv:
        early = Early([srv.url], test_data, opts)
        _settled(early)  # every image is answered before collect starts
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, opts=opts, say=_quiet, early=early)
    assert res.status == "completed" and res.n_sent == 21
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(predictions)) == 21
    early_images = [p for name, paths in calls if name.startswith("early") for p in paths]
    later = [p for name, paths in calls if not name.startswith("early") for p in paths]
    assert len(early_images) == 21
    assert len(later) <= 4  # the self-repeats at the end only: nothing answered early is asked again


def test_an_early_batch_that_fails_is_dropped_and_its_images_asked_again(tmp_path, color_model, test_data,
                                                                         monkeypatch):
    real = ModelClient.predict
    failed = []

    def flaky(self, images):
        if threading.current_thread().name.startswith("early") and not failed:
            failed.append([name for name, _ in images])
            raise ModelServerError(self.url, "HTTP 503", status=503)
        return real(self, images)

    monkeypatch.setattr(ModelClient, "predict", flaky)
    engine = engine_for(f"sqlite:///{tmp_path / 'd.db'}")
    opts = CollectOptions(batch_size=4)
    with serve_model(color_model) as srv:
        early = Early([srv.url], test_data, opts)
        _settled(early)  # the early batches were sent (one of them failed) before collect starts
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, opts=opts, say=_quiet, early=early)
    assert failed and res.status == "completed" and res.n_sent == 21 and res.error is None
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(predictions)) == 21


def test_a_rerun_stores_nothing_answered_early_twice(tmp_path, color_model, test_data):
    engine = engine_for(f"sqlite:///{tmp_path / 'e.db'}")
    with serve_model(color_model) as srv:
        collect([srv.url], engine=engine, test_dir=test_data, opts=CollectOptions(batch_size=4), say=_quiet)
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, opts=CollectOptions(batch_size=4), say=_quiet)
    assert res.status == "skipped" and res.n_sent == 0 and res.checked > 0
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(predictions)) == 21


def test_an_empty_test_set_asks_no_server(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(ModelClient, "metadata", lambda self: asked.append(self.url))
    (tmp_path / "empty").mkdir()
    early = Early(["http://127.0.0.1:9"], tmp_path / "empty")
    try:
        with pytest.raises(testset.TestSetError, match="no labelled images"):
            early.first_chunk()
    finally:
        early.close()
    assert asked == []


def test_a_missing_folder_is_said_at_once(tmp_path):
    with pytest.raises(testset.TestSetError, match="does not exist"):
        Early(["http://127.0.0.1:9"], tmp_path / "nowhere")


def test_every_request_in_flight_keeps_its_connection(tmp_path, color_model, test_data, caplog):
    """8 requests in flight to one URL (early ones, then the run's): the client keeps a connection
    for each, so none is dropped with urllib3's "pool is full" warning on the terminal."""
    engine = engine_for(f"sqlite:///{tmp_path / 'f.db'}")
    caplog.set_level("WARNING", logger="urllib3")
    with serve_model(color_model, predict_delay=0.2) as srv:
        (res,) = collect([srv.url], engine=engine, test_dir=test_data, say=_quiet,
                         opts=CollectOptions(batch_size=1, max_in_flight=8))
    assert res.status == "completed" and res.n_sent == 21
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
