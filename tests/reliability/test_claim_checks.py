"""How often one run catches a server that claims a stored fingerprint and lies on a share of its
answers, with the default number of checks (docs/identity.md). The liar relays every image to
the real model and answers a random share of them with the scores under rotated labels; each trial
is one `collect` of it alone against a database that holds the real model's answers.

Expected with k checks and a lie rate p: at least 1 - (1 - p)^k (self-repeats add a little).
CLAIM_TRIALS sets the trials per rate (20 in `make test`; the docs' numbers: 200).
"""

from __future__ import annotations

import json
import os
import random
import threading

import pytest
import requests
from flask import Flask, Response, request

from collector.collect import CollectOptions, collect
from collector.settings import CollectorSettings
from collector.storage import store
from helpers import LiveServer, engine_for, make_test_data, serve_model

TRIALS = int(os.environ.get("CLAIM_TRIALS", "20"))
RATES = (0.02, 0.05, 0.10)


def _rotated(p: dict) -> dict:
    labs = list(p["scores"])
    scores = {labs[(i + 1) % len(labs)]: p["scores"][lab] for i, lab in enumerate(labs)}
    best = max(scores, key=scores.get)
    return {"label": best, "confidence": scores[best], "scores": scores}


def liar(real: str, rate: float, seed: int) -> Flask:
    app = Flask("liar")
    rng, lock = random.Random(seed), threading.Lock()

    @app.get("/metadata")
    def metadata():
        meta = requests.get(real + "/metadata", timeout=60).json()
        meta.pop("predict_forms", None)  # it relays multipart only
        return Response(json.dumps(meta), 200, mimetype="application/json")

    @app.post("/predict")
    def predict():
        files = [("images", (f.filename, f.read(), "application/octet-stream"))
                 for f in request.files.getlist("images")]
        body = requests.post(real + "/predict", files=files, timeout=60).json()
        with lock:
            body["predictions"] = [_rotated(p) if rng.random() < rate else p for p in body["predictions"]]
        return Response(json.dumps(body), 200, mimetype="application/json")

    return app


def test_the_chance_that_one_run_catches_a_liar(color_model, tmp_path):
    data = make_test_data(tmp_path / "td", per_class=30)  # 93 images: more than the checks of one run
    engine = engine_for(f"sqlite:///{tmp_path / 'claims.db'}")
    checks = CollectorSettings.default("claim_checks")
    opts = CollectOptions(retries=1, hash_cache=None)
    caught: dict[float, int] = {}
    with serve_model(color_model) as real:
        (first,) = collect([real.url], engine=engine, test_dir=data, opts=opts, say=lambda _m: None)
        assert first.status == "completed"
        for rate in RATES:
            caught[rate] = 0
            for trial in range(TRIALS):
                with LiveServer(liar(real.url, rate, seed=int(rate * 1000) * 100_000 + trial)) as srv:
                    (res,) = collect([srv.url], engine=engine, test_dir=data, opts=opts, say=lambda _m: None)
                caught[rate] += res.disagreed > 0
                with engine.begin() as conn:  # the next trial starts from an undisputed model
                    model = store.find_model(conn, fingerprint=first.fingerprint)
                    store.resolve_conflicts(conn, model_id=model.id, forget=False)
        with engine.connect() as conn:
            (m,) = store.list_models(conn)
    assert m.predictions == first.n_sent  # no trial, caught or not, counted an answer
    for rate in RATES:
        share = caught[rate] / TRIALS
        floor = 1 - (1 - rate) ** checks
        print(f"lie rate {rate:.0%}: caught in {caught[rate]} of {TRIALS} runs ({share:.3f}); "
              f"1 - (1 - p)^{checks} = {floor:.3f}")
        # Binomial slack: three standard deviations below the floor (never below 0).
        slack = 3 * (floor * (1 - floor) / TRIALS) ** 0.5
        assert share >= floor - slack - 1e-9, f"lie rate {rate}: caught {share:.3f}, floor {floor:.3f}"
    assert caught[0.10] >= TRIALS - max(1, TRIALS // 30)  # 0.6% misses expected


@pytest.mark.parametrize("rate", [0.0])
def test_an_honest_relay_is_never_flagged(color_model, tmp_path, rate):
    """The other side: a server that relays honestly is verified, never marked conflicting."""
    data = make_test_data(tmp_path / "td", per_class=30)
    engine = engine_for(f"sqlite:///{tmp_path / 'honest.db'}")
    opts = CollectOptions(retries=1, hash_cache=None)
    with serve_model(color_model) as real:
        collect([real.url], engine=engine, test_dir=data, opts=opts, say=lambda _m: None)
        for trial in range(5):
            with LiveServer(liar(real.url, rate, seed=trial)) as srv:
                (res,) = collect([srv.url], engine=engine, test_dir=data, opts=opts, say=lambda _m: None)
            assert res.disagreed == 0 and res.checked >= CollectorSettings.default("claim_checks")
    with engine.connect() as conn:
        assert store.conflict_counts(conn) == {}
