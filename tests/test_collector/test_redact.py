"""Secrets out of what is shown: passwords in URLs, credentials a server echoes back."""

from __future__ import annotations

import pytest

from collector.redact import redact_secrets, redact_url, register_userinfo


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@host:5432/db", "postgresql://u:***@host:5432/db"),
    ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:pa/ss@host/db", "postgresql://u:***@host/db"),
    ("see http://a:b@h:1/x and sqlite:///f.db", "see http://a:***@h:1/x and sqlite:///f.db"),
    ("http://host:8080/v2", "http://host:8080/v2"),
])
def test_passwords_are_redacted(url, shown):
    assert redact_url(url) == shown


def test_registered_credentials_are_redacted_wherever_they_appear():
    register_userinfo("u7qz:s3cr3t%2Fpw9x")  # process-wide: names no other test would print
    shown = redact_secrets("the server said: bad login u7qz:s3cr3t/pw9x (s3cr3t%2Fpw9x, dTdxejpzM2NyM3QvcHc5eA==)")
    assert shown == "the server said: bad login ***:*** (***, ***)"
