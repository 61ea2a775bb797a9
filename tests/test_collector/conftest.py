from __future__ import annotations

import pytest

from helpers import make_test_data


@pytest.fixture
def big_data(tmp_path):
    """30 images per colour: enough for the paired tests to see a broken class."""
    return make_test_data(tmp_path / "td", per_class=30)
