"""urls.py: the one strict parse of a model-server URL, and the host policy of the deploy hook.

The differential corpus against a live hook is tests/reliability/test_url_differentials.py."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from collector.protocols.urls import (
    AddressError,
    BadURL,
    HostPolicy,
    NotAllowed,
    display,
    host_of,
    parse_model_url,
    parse_target,
)


# ---- a model URL names its protocol and model ------------------------------------------------
@pytest.mark.parametrize("url,protocol,model,version,base", [
    ("http://h:1", "native", None, None, "http://h:1"),
    ("http://h:1/", "native", None, None, "http://h:1"),
    ("http://h:1/v2/models/m", "v2", "m", None, "http://h:1"),
    ("http://h:1/v2/models/m/versions/3/", "v2", "m", "3", "http://h:1"),
    ("http://h:1/prefix/v2/models/a%20b", "v2", "a b", None, "http://h:1/prefix"),
])
def test_addresses_name_their_protocol(url, protocol, model, version, base):
    a = parse_model_url(url)
    assert (a.protocol, a.model, a.version, a.base) == (protocol, model, version, base)
    assert parse_model_url(a.text) == a  # the canonical text parses back to the same value


def test_protocol_override_needs_a_matching_address():
    with pytest.raises(AddressError, match="names its model"):
        parse_model_url("http://h:1", "v2")
    with pytest.raises(AddressError, match="not a model path"):
        parse_model_url("http://h:1/v2/models/m", "native")


def test_a_model_url_is_parsed_once_into_target_headers_and_protocol():
    a = parse_model_url("http://user:pw@Host.example:81/pre/v1/models/m#Host=x.example&Seldon-Model=m")
    assert (a.target.host, a.target.port, a.target.userinfo, a.prefix) == ("host.example", 81, "user:pw", "/pre")
    assert a.headers == (("Host", "x.example"), ("Seldon-Model", "m"))
    assert a.display == "http://***@host.example:81/pre/v1/models/m#Host=x.example&Seldon-Model=m"
    assert a.base == "http://user:pw@host.example:81/pre"
    assert host_of(a.display) == "host.example:81"
    with pytest.raises(BadURL, match="credentials"):
        parse_model_url("http://user:pw@h:1", allow_userinfo=False)
    with pytest.raises(BadURL, match="unknown protocol"):
        parse_model_url("http://h:1", "grpc")


@pytest.mark.parametrize("text, url", [
    ("HTTP://Model-A:8080/", "http://model-a:8080"),
    ("http://10.0.0.7", "http://10.0.0.7"),
    ("https://[::1]:9/v2/models/x", "https://[::1]:9/v2/models/x"),
])

def test_canonical_forms(text, url):
    assert parse_target(text).url == url


@pytest.mark.parametrize("text", ["http://a\\b", "http://0x7f.1", "http://a.:80", "http://a/%2e%2e/x",
                                  "http://a/?q=1", "http://[fe80::1%25eth0]", "http://a b", "ftp://a"])
def test_ambiguous_or_foreign_urls_are_refused(text):
    with pytest.raises(BadURL):
        parse_target(text)


def test_userinfo_is_kept_hidden_or_refused():
    t = parse_target("http://u:p%40ss@host:1/")
    assert t.userinfo == "u:p%40ss" and "p%40ss" not in t.display and display("http://u:pw@h/") != "http://u:pw@h/"
    with pytest.raises(BadURL):
        parse_target("http://u:p@host/", allow_userinfo=False)


def _resolver(table: dict[str, list[str]]):
    def resolve(host, port, *args, **kw):
        if host not in table:
            raise socket.gaierror(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]]
    return resolve


def test_policy_allows_listed_names_and_networks_only():
    policy = HostPolicy(["ml_original", "10.1.0.0/16"], resolve=_resolver({
        "ml_original": ["172.18.0.5"], "other": ["10.1.2.3"], "outside": ["10.2.0.1", "10.1.0.1"]}))
    policy.check(parse_target("http://ml_original:8080"))
    policy.check(parse_target("http://10.1.9.9:8080"))
    policy.check(parse_target("http://other:8080"))  # every address it resolves to is listed
    for url in ("http://outside:8080", "http://10.2.0.1:8080", "http://[::ffff:10.2.0.1]:8080"):
        with pytest.raises(NotAllowed):
            policy.check(parse_target(url))
    policy.check_peer("other", ipaddress.ip_address("10.1.2.3"))
    with pytest.raises(NotAllowed):
        policy.check_peer("other", ipaddress.ip_address("10.9.9.9"))  # rebound after the check
    with pytest.raises(NotAllowed, match="metadata"):
        policy.check_peer("ml_original", ipaddress.ip_address("169.254.169.254"))
