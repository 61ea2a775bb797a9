"""Fixtures of the hostile-server suites."""

from __future__ import annotations

import pytest

from helpers import make_test_data, serve_model


@pytest.fixture(scope="module")
def bystander(color_model):
    """The honest model server every hostile one runs beside."""
    with serve_model(color_model) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_test_data(tmp_path_factory.mktemp("hostile") / "td")
