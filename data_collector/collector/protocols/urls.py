"""Model-server URLs: one strict parse, and the allowlist enforced on the socket.

`parse_model_url` is the one parse of a model URL, from the text a user, a request or the
database gives to the typed `ModelURL` everything below is handed: where to connect (`Target`:
scheme, host, port, path, credentials), the headers sent with every request (`URL#Name=value`),
the protocol and the model it names. Nothing below this module reads a URL's text again.

A URL string is parsed once, here, and only what every parser reads the same way is accepted:
`scheme://[userinfo@]host[:port][/path]` in printable ASCII, where the WHATWG URL standard (what
browsers and many proxies use), RFC 3986 (`urllib.parse`) and urllib3 (what requests connects
with) cannot disagree. Refused: backslashes, whitespace and control characters, a second `@`,
percent-encoded bytes or non-ASCII characters in the host, IPv6 zone ids, IPv4 in any form but
dotted decimal (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`), a trailing dot, dot segments in
the path (`..`, `%2e`), a query or fragment. The client connects with the canonical string built
from the parsed parts, and that string is parsed back by urllib3 and compared before it is used.

`HostPolicy` is the deploy hook's allowlist. It is checked before a job is queued, and again in
the connection itself (`check_peer`): the name is resolved by the policy, every address is
checked, the socket connects to a checked address, and its peer address is checked once more.
A name that resolves to an allowed address when the job is queued and to another one when the
collector connects (DNS rebinding) is refused at connect time, on every connection and retry.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import urllib3.util

from model_server.grammar import is_digits, parse_uint

from ..vocab import PROTOCOLS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Printable ASCII that needs no escaping anywhere in a URL (RFC 3986 reserved + unreserved + '%').
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)", re.S)
_USERINFO = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%]*")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")
# WHATWG reads a host whose last label is a number (decimal, 0x hex, octal) as an IPv4 address.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_DOT_SEGMENT = re.compile(r"(?:\.|%2e){1,2}", re.I)


class BadURL(ValueError):
    """A URL refused by the strict parse; the message says why."""


@dataclass(frozen=True)
class Target:
    """A parsed model-server URL. `url` is the canonical string the HTTP client is given."""

    scheme: str
    host: str  # lowercase; an IPv6 address without brackets
    port: int | None
    path: str  # '' or '/...' without a trailing slash
    userinfo: str | None = None

    @property
    def netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)

    @property
    def authority(self) -> str:
        """host[:port], without credentials (what a Host header names)."""
        return self.netloc_host + (f":{self.port}" if self.port is not None else "")

    @property
    def url(self) -> str:
        auth = f"{self.userinfo}@" if self.userinfo is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{auth}{self.netloc_host}{port}{self.path}"

    @property
    def display(self) -> str:
        """The URL as shown and stored: userinfo replaced by ***."""
        auth = "***@" if self.userinfo is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{auth}{self.netloc_host}{port}{self.path}"


def parse_target(text: object, *, allow_userinfo: bool = True) -> Target:
    """The one parse of a model-server URL (see the module doc); BadURL says what is refused."""
    if not isinstance(text, str):
        raise BadURL("not a valid URL: not a string")
    if len(text) > 2048:
        raise BadURL("not a valid URL: longer than 2048 characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise BadURL("not a valid URL: it contains spaces or control characters")
    if "\\" in text:
        raise BadURL("not a valid URL: it contains a backslash")
    if not text.isascii():
        raise BadURL("not a valid URL: non-ASCII characters (write a host in its IDNA form, xn--...)")
    if not _URL_CHARS.fullmatch(text):
        raise BadURL("not a valid URL: characters that must be percent-encoded")
    m = _SCHEME.fullmatch(text)
    if not m or m["scheme"].lower() not in ("http", "https"):
        raise BadURL("not an http(s) URL (e.g. http://ml_original:8080)")
    scheme, rest = m["scheme"].lower(), m["rest"]
    if "?" in rest or "#" in rest:
        raise BadURL("not a valid URL: a model server's address has no query or fragment")
    authority, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    userinfo = None
    if "@" in authority:
        if not allow_userinfo:
            raise BadURL("not a valid URL: credentials (user@) are not accepted here")
        userinfo, _, authority = authority.rpartition("@")
        if "@" in userinfo or not _USERINFO.fullmatch(userinfo):
            raise BadURL("not a valid URL: a second '@' or unencoded characters in the credentials")
    host, port = _split_host_port(authority)
    _check_path(path)
    target = Target(scheme, host, port, path, userinfo)
    _cross_check(target)
    return target



class AddressError(BadURL):
    """A URL whose path does not name a model the way its protocol does."""


_V2 = re.compile(r"^(?P<prefix>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")
_V1 = re.compile(r"^(?P<prefix>.*?)/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?/?$")


@dataclass(frozen=True)
class ModelURL:
    """A model URL parsed once (`parse_model_url`): what every client and check below is given."""

    target: Target
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, in the order written
    protocol: str = "native"  # native, v2 (Open Inference Protocol) or v1 (TF Serving / KServe v1)
    model: str | None = None  # the model a v1/v2 path names
    version: str | None = None
    prefix: str = ""  # the path requests are made under (native: the whole path)

    @property
    def header_map(self) -> dict[str, str]:
        return dict(self.headers)

    @property
    def url(self) -> str:
        """The canonical URL with its credentials: what the HTTP client connects with."""
        return self.target.url

    @property
    def base(self) -> str:
        """scheme://[userinfo@]host[:port][prefix]: what requests are made against."""
        return Target(self.target.scheme, self.target.host, self.target.port, self.prefix, self.target.userinfo).url

    @property
    def display(self) -> str:
        """As shown and stored: credentials as ***, the headers after `#`."""
        return self.target.display + header_suffix(self.header_map)

    @property
    def text(self) -> str:
        """The canonical text (credentials kept) that parses back to this value."""
        return self.target.url + header_suffix(self.header_map)


def parse_model_url(text: object, protocol: str | None = None, *, allow_userinfo: bool = True) -> ModelURL:
    """The one parse of a model URL: `scheme://host[:port][/path][#Name=value&...]`, the protocol
    detected from the path (`/v2/models/NAME`, `/v1/models/NAME`) unless `protocol` says it.
    BadURL (AddressError for a path that does not fit the protocol) says what is refused."""
    url, headers = split_headers(text) if isinstance(text, str) else (text, {})
    target = parse_target(url, allow_userinfo=allow_userinfo)
    m2, m1 = _V2.match(target.path), _V1.match(target.path)
    detected = "v2" if m2 else "v1" if m1 else "native"
    protocol = protocol or detected
    if protocol not in PROTOCOLS:
        raise AddressError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    named = tuple(headers.items())
    if protocol == "native":
        if m2 or m1:
            raise AddressError("--protocol native takes the server's address (http://host:port), not a model path")
        return ModelURL(target, named, "native", prefix=target.path)
    m = m2 if protocol == "v2" else m1
    if not m:
        raise AddressError(f"a {protocol} address names its model: http://host:port/{protocol}/models/NAME "
                           f"(or .../{protocol}/models/NAME/versions/V)")
    version = unquote(m["version"]) if m["version"] else None
    return ModelURL(target, named, protocol, unquote(m["name"]), version, m["prefix"])


def host_of(text: str) -> str:
    """host[:port] of a stored or given URL, without credentials; its shown form when it does not parse."""
    try:
        return parse_model_url(text).target.authority
    except BadURL:
        return display(text)


def _split_host_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        inner, close, after = authority[1:].partition("]")
        if not close:
            raise BadURL("not a valid URL: an IPv6 address without its closing ']'")
        host = _ipv6_host(inner)
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise BadURL("not a valid URL (bad host or port)")
    else:
        host, colon, port_text = authority.partition(":")
        if not colon:
            port_text = None
        host = _name_or_ipv4(host)
    port = None
    if port_text is not None:
        port = parse_uint(port_text, "port") if is_digits(port_text) else 0
        if not 0 < port < 65536:
            raise BadURL("not a valid URL (bad host or port)")
    return host, port


def _ipv6_host(inner: str) -> str:
    if "%" in inner:
        raise BadURL("not a valid URL: IPv6 zone ids (%...) are not accepted")
    try:
        return ipaddress.IPv6Address(inner).compressed
    except ValueError:
        raise BadURL("not a valid URL: not an IPv6 address between [ ]") from None


def _name_or_ipv4(host: str) -> str:
    host = host.lower()
    if not host:
        raise BadURL("not an http(s) URL (e.g. http://ml_original:8080): no host")
    if "%" in host or "[" in host or "]" in host:
        raise BadURL("not a valid URL: percent-encoded or bracketed characters in the host")
    if host.endswith("."):
        raise BadURL("not a valid URL: a host ending in '.' (write it without the trailing dot)")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            addr = ipaddress.IPv4Address(host)  # dotted decimal only: no octal, hex or short forms
        except ValueError:
            raise BadURL("not a valid URL: an IPv4 address is written as four decimal numbers (a.b.c.d)") from None
        if str(addr) != host:
            raise BadURL("not a valid URL: an IPv4 address is written as four decimal numbers (a.b.c.d)")
        return host
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadURL("not a valid URL: the host is not a DNS name or an IP address")
    return host


def _check_path(path: str) -> None:
    if "@" in path:
        raise BadURL("not a valid URL: '@' in the path")
    for segment in path.split("/")[1:]:
        if _DOT_SEGMENT.fullmatch(segment):
            raise BadURL("not a valid URL: '.' or '..' segments in the path")
    if re.search(r"%(?![0-9A-Fa-f]{2})", path):
        raise BadURL("not a valid URL: a '%' that starts no percent-encoded byte")


def _cross_check(target: Target) -> None:
    """The canonical string as urllib3 (the connecting parser) and urllib.parse read it."""
    canonical = target.url
    try:
        u3 = urllib3.util.parse_url(canonical)
        rfc = urlsplit(canonical)
        rfc_port = rfc.port
    except (ValueError, urllib3.exceptions.LocationParseError):
        raise BadURL("not a valid URL (bad host or port)") from None
    u3_host = (u3.host or "").lower().strip("[]")
    if (u3_host != target.host or u3.port != target.port or (rfc.hostname or "") != target.host
            or rfc_port != target.port or (u3.path or "") != target.path):
        raise BadURL("not a valid URL: parsers disagree on its host, port or path")


def display(url: str) -> str:
    """A URL as shown: its credentials hidden. Falls back to a redacted, escaped text."""
    from ..redact import redact_url

    try:
        return parse_target(url).display
    except BadURL:
        text = redact_url(str(url))[:200]
        return text.encode("unicode_escape").decode("ascii")


# ---- the allowlist ---------------------------------------------------------------------------
# Never reachable through a name, only when listed as an address: cloud metadata and link-local.
ALWAYS_BLOCKED = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128")]


# ---- request headers of one URL ---------------------------------------------------------------
# `URL#Name=value&Name=value`: headers sent with every request to that URL (a fragment is never
# sent over HTTP, so the URL itself stays what is parsed and checked above). For a KServe tag
# route behind an ingress (`#Host=latest-NAME-predictor.NS.example.com`) or Seldon Core 2's
# `#Seldon-Model=NAME`; values are percent-decoded.
MAX_URL_HEADERS = 8
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
REFUSED_HEADERS = frozenset({  # framing, hop-by-hop and credentials: the client sets these itself, or never
    "content-length", "transfer-encoding", "content-encoding", "content-type", "connection", "keep-alive",
    "te", "trailer", "upgrade", "expect", "authorization", "proxy-authorization", "cookie"})


def split_headers(text: str) -> tuple[str, dict[str, str]]:
    """(the URL without its `#...`, the headers it names); BadURL for a header that cannot be sent."""
    if not isinstance(text, str) or "#" not in text:
        return text, {}
    url, _, fragment = text.partition("#")
    headers: dict[str, str] = {}
    for part in fragment.split("&"):
        name, eq, value = (unquote(x) for x in part.partition("="))
        if not eq or not _HEADER_NAME.fullmatch(name):
            raise BadURL(f"after '#' come request headers as Name=value&Name=value, not {part[:60]!r}")
        if name.lower() in REFUSED_HEADERS:
            raise BadURL(f"header {name} cannot be set per URL")
        if not value or len(value) > 1000 or not all(" " <= c <= "~" for c in value):
            raise BadURL(f"header {name}: 1 to 1000 printable ASCII characters")
        headers[name] = value.strip()
    if len(headers) > MAX_URL_HEADERS:
        raise BadURL(f"at most {MAX_URL_HEADERS} headers per URL")
    return url, headers


def header_suffix(headers: dict[str, str]) -> str:
    """How a URL's headers are shown and stored after it: `#Host=...` (empty without headers)."""
    if not headers:
        return ""
    return "#" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in headers.items())


class NotAllowed(ValueError):
    """A host or address the allowlist refuses."""


def _plain(addr: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (::ffff:a.b.c.d) as the IPv4 address it reaches."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class HostPolicy:
    """Which hosts a caller's URL may reach: names, IP addresses and CIDR networks.

    An address is allowed when a listed network holds it. A listed name may resolve to any
    address but a link-local or metadata one (unless listed); an unlisted name only to listed
    addresses. Literal addresses must be listed.
    """

    def __init__(self, entries: list[str] | tuple[str, ...], *, resolve=socket.getaddrinfo):
        self.names: set[str] = set()
        self.networks: list[IPNetwork] = []
        for e in (x.strip().lower() for x in entries):
            if not e:
                continue
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                self.names.add(e.rstrip("."))
        self._resolve = resolve

    def describe(self) -> str:
        return ", ".join(sorted(self.names) + [str(n) for n in self.networks]) or "(nothing)"

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to now (an IP literal is itself)."""
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            infos = self._resolve(host, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise NotAllowed(f"host {host!r} is not allowed (it does not resolve)") from None
        out: list[IPAddress] = []
        for info in infos:
            addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if addr not in out:
                out.append(addr)
        return out

    def _listed(self, addr: IPAddress) -> bool:
        addr = _plain(addr)
        return any(addr in n for n in self.networks)

    def check_peer(self, host: str, addr: IPAddress) -> None:
        """May a connection for `host` go to `addr`? Raises NotAllowed."""
        plain = _plain(addr)
        if self._listed(plain):
            return
        if host in self.names and not any(plain in n for n in ALWAYS_BLOCKED):
            return
        if host in self.names:
            raise NotAllowed(f"host {host!r} resolves to {plain}, a link-local or metadata address")
        raise NotAllowed(f"address {plain} (for {host!r}) is not in the allowlist")

    def check(self, target: Target | str) -> None:
        """Before any connection: the host and every address it resolves to now."""
        if isinstance(target, str):
            target = parse_target(target)
        host = target.host
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not self._listed(literal):
                raise NotAllowed(f"address {host} is not in the allowlist")
            return
        addresses = self.resolve(host, target.effective_port)
        if not addresses:
            raise NotAllowed(f"host {host!r} is not allowed (it does not resolve)")
        if host not in self.names and not all(self._listed(a) for a in addresses):
            raise NotAllowed(f"host {host!r} is not in the allowlist, nor are all of its addresses")
        for addr in addresses:
            self.check_peer(host, addr)
