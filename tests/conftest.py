from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]  # helpers; devtools (not installed)

from devtools.pg import scratch_database  # noqa: E402
from helpers import PG_ADMIN_URL, make_test_data, pokemon_models, write_color_model  # noqa: E402


@pytest.fixture(scope="session")
def color_model(tmp_path_factory) -> Path:
    return write_color_model(tmp_path_factory.mktemp("models") / "colors", ["red", "green", "blue"])


@pytest.fixture
def test_data(tmp_path) -> Path:
    return make_test_data(tmp_path / "test_data")


@pytest.fixture
def big_data(tmp_path) -> Path:
    """30 images per colour: enough for the paired tests to see a broken class."""
    return make_test_data(tmp_path / "td", per_class=30)


@pytest.fixture(scope="session")
def pokemon_db(tmp_path_factory) -> str:
    """A SQLite database with two real versions of one model, collected over HTTP: v2 answers
    bulbasaur for pikachu (helpers.pokemon_models). Read it; do not write to it."""
    tmp = tmp_path_factory.mktemp("pokemon")
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    pokemon_models(tmp, url)
    return url


def _pg_available() -> bool:
    try:
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=30)
        conn.close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    ok = _pg_available()
    if not ok and os.environ.get("CI"):
        pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
    return ok


@pytest.fixture
def pg_url(pg_available):
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")

    with scratch_database(PG_ADMIN_URL, prefix="pct_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _stop_gate_services():
    """Every gate service an app of the test started stops with the test (no polling thread left)."""
    yield
    from collector.service.gates import RUNNING_SERVICES

    for service in list(RUNNING_SERVICES):
        service.stop(5)
