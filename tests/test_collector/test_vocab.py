"""The collector's vocabulary: every image kind is judged one way, and the protocols named here
are the ones a model URL can name."""

from __future__ import annotations

import pytest

from collector.protocols.urls import AddressError, parse_model_url
from collector.vocab import NOT_CLEAN, PROTOCOLS, ImageKind, is_clean, is_probe


def test_every_image_kind_is_clean_a_probe_or_a_perturbed_copy_and_only_one():
    for kind in ImageKind:
        roles = [is_clean(kind.value), is_probe(kind.value), kind.value == ImageKind.PERTURBED]
        assert roles.count(True) == 1, kind
    assert set(NOT_CLEAN) == {ImageKind.LOOKALIKE, ImageKind.PERTURBED}


def test_each_protocol_named_is_one_a_model_url_can_be_read_as():
    for protocol in PROTOCOLS:
        path = "" if protocol == "native" else f"/{protocol}/models/m"
        assert parse_model_url(f"http://h:1{path}", protocol).protocol == protocol
    with pytest.raises(AddressError):
        parse_model_url("http://h:1", "v3")
