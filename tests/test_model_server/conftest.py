"""The model server's tests share one app on a real tiny colour model (per module)."""

from __future__ import annotations

import pytest

from model_server.app import create_app


@pytest.fixture(scope="module")
def app(color_model):
    return create_app({"model_dir": str(color_model), "load_async": False, "max_batch": 8,
                       "max_content_length": 2_000_000, "max_pixels": 1_000_000})


@pytest.fixture
def client(app):
    return app.test_client()
