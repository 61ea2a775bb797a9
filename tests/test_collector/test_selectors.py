"""Naming stored models: NAME, NAME@latest, NAME@previous, fingerprint prefixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.selectors import SelectorError, pick, resolve
from collector.store import ModelInfo
from helpers import engine_for, store_model

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def model(i: int, name: str, fp: str) -> ModelInfo:
    return ModelInfo(id=i, name=name, version=str(i), fingerprint=fp, labels=["x"], first_seen=T0 + timedelta(i))


MODELS = [model(1, "a", "abcd0001" + "0" * 56), model(2, "b", "abcd0002" + "0" * 56),
          model(3, "a", "ffff0003" + "0" * 56), model(4, "a", "eeee0004" + "0" * 56)]


def test_name_and_latest_give_the_newest_version():
    assert pick(MODELS, "a").id == 4
    assert pick(MODELS, "a@latest").id == 4
    assert pick(MODELS, "b@latest").id == 2


def test_previous_is_relative_to_the_candidate():
    assert pick(MODELS, "a@previous").id == 3
    assert pick(MODELS, "a@previous", relative_to=MODELS[2]).id == 1
    with pytest.raises(SelectorError, match="no version before"):
        pick(MODELS, "a@previous", relative_to=MODELS[0])
    with pytest.raises(SelectorError, match="no version before"):
        pick(MODELS, "b@previous")


def test_fingerprint_prefixes():
    assert pick(MODELS, "ffff").id == 3
    assert pick(MODELS, "FFFF00").id == 3  # prefixes are case-insensitive
    with pytest.raises(SelectorError, match="ambiguous"):
        pick(MODELS, "abcd")
    with pytest.raises(SelectorError, match="no evaluated model matches"):
        pick(MODELS, "fff")  # shorter than 4 characters: never a prefix


def test_version_tags_and_unknown_names():
    a_versions = [m for m in MODELS if m.name == "a"]
    assert pick(MODELS, f"a@{a_versions[0].version}").id == a_versions[0].id
    with pytest.raises(SelectorError, match="'a' has no version 'oldest'"):
        pick(MODELS, "a@oldest")
    with pytest.raises(SelectorError, match="no evaluated model named 'zzz'"):
        pick(MODELS, "zzz@latest")
    with pytest.raises(SelectorError, match="no evaluated model matches"):
        pick(MODELS, "zzz")


def test_resolve_reads_the_database_in_first_seen_order(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 's.db'}")
    for v, fp in (("1", "1" * 64), ("2", "2" * 64)):
        store_model(engine, name="m", version=v, fingerprint=fp, labels=["x"],
                    answers=[(fp[:1] * 64, "x", "photo", "x")])
    with engine.connect() as conn:
        assert resolve(conn, "m").version == "2"
        assert resolve(conn, "m@previous").version == "1"
        assert resolve(conn, "2222").fingerprint == "2" * 64
