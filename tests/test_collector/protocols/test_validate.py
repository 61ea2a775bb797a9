"""What types cannot state about a native answer: one prediction per image sent, labels the
model has, scores that are probabilities summing to 1, the label with the top score, and the
model the run started with. Each refusal names the field."""

from __future__ import annotations

import pytest

from collector.protocols.answers import InvalidAnswer, ModelChanged, NativeMetadata
from collector.protocols.validate import identity, native_facts, predictions, stored_metadata
from model_server.native import Answer, AnsweringModel, Prediction

LABELS = ["bulbasaur", "pikachu", "squirtle"]
FP = "ab" * 32


def _answer(*rows: dict, fingerprint: str = FP, version="2") -> Answer:
    preds = [Prediction(max(r, key=r.get), max(r.values()), r) for r in rows]
    return Answer(AnsweringModel(fingerprint=fingerprint, version=version), preds)


def _check(answer: Answer, n_sent: int = 1) -> list[dict]:
    return predictions(answer, n_sent=n_sent, labels=LABELS, fingerprint=FP, version="2")


GOOD = {"pikachu": 0.7, "bulbasaur": 0.2, "squirtle": 0.1}


def test_a_consistent_answer_is_kept_with_scores_in_the_models_label_order():
    (row,) = _check(_answer(GOOD))
    assert row == {"label": "pikachu", "confidence": 0.7, "scores": {"bulbasaur": 0.2, "pikachu": 0.7, "squirtle": 0.1}}
    assert list(row["scores"]) == LABELS


@pytest.mark.parametrize("answer,n_sent,field", [
    (_answer(GOOD), 2, "predictions"),
    (_answer({"pikachu": 0.7, "bulbasaur": 0.3}), 1, "predictions[0].scores"),
    (_answer({**GOOD, "mew": 0.0}), 1, "predictions[0].scores"),
    (_answer({"pikachu": 0.7, "bulbasaur": 0.7, "squirtle": 0.1}), 1, "predictions[0].scores"),
    (Answer(AnsweringModel(fingerprint=FP), [Prediction("bulbasaur", 0.2, GOOD)]), 1, "predictions[0].label"),
    (Answer(AnsweringModel(fingerprint=FP), [Prediction("pikachu", 0.5, GOOD)]), 1, "predictions[0].confidence"),
    (Answer(AnsweringModel(fingerprint=FP), [Prediction("mew", 0.7, GOOD)]), 1, "predictions[0].label"),
])
def test_an_inconsistent_answer_is_refused_naming_the_field(answer, n_sent, field):
    with pytest.raises(InvalidAnswer) as e:
        _check(answer, n_sent)
    assert e.value.field == field


def test_an_answer_from_another_model_stops_the_run():
    with pytest.raises(ModelChanged):
        _check(_answer(GOOD, fingerprint="cd" * 32))
    with pytest.raises(ModelChanged):
        _check(_answer(GOOD, version="3"))
    assert _check(_answer(GOOD, version=None))  # a server that does not say its version


def test_stored_metadata_keeps_the_servers_extras_only_when_small():
    m = NativeMetadata(name="ml_original", version=2, fingerprint=FP, labels=LABELS, backend="litert")
    facts = native_facts(m)
    assert facts["backend"] == "litert" and facts["identity"] == "declared"
    assert native_facts(NativeMetadata(name="m", version="1", fingerprint=FP, labels=LABELS,
                                       backend="<b>tpu</b>"))["backend"] is None
    kept = stored_metadata(m, facts=facts, server={"input": [96, 96, 3]})
    assert (kept["version"], kept["server"]) == ("2", {"input": [96, 96, 3]})
    big = stored_metadata(m, facts=facts, server={"blob": "x" * 70_000})
    assert "server" not in big and big["server_truncated"] is True


def test_a_foreign_models_identity_goes_through_the_same_checks():
    ok = identity(name="resnet", version="4", fingerprint=FP, labels=LABELS, facts={"identity": "behavioural"})
    assert ok["name"] == "resnet" and ok["collector"] == {"identity": "behavioural"}
    with pytest.raises(InvalidAnswer, match="fingerprint"):
        identity(name="deadbeef", version="4", fingerprint=FP, labels=LABELS, facts={})
