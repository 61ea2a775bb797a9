"""Naming a stored model: NAME, NAME@latest, NAME@previous, NAME@VERSION, fingerprint prefix, fp:PREFIX.

Name and version are what a server *claims*; the fingerprint is the identity. So:
- "newest" and "previous" have one meaning, here, for the CLI, the deploy hook and the web view:
  **version order** (natural: 2 < 10, numbers before words), then first seen;
- a `NAME@VERSION` that two fingerprints claim is **ambiguous**: that selector, `NAME`,
  `@latest` and `@previous` landing on it refuse it (AmbiguousSelector, exit 2 on the command
  line), naming both fingerprint prefixes, their identity kinds and hosts, until a fingerprint
  prefix is given. Whoever claims a name last does not decide what a verdict compares.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection

from model_server.grammar import version_order

from ..protocols.urls import host_of
from ..storage import store
from ..storage.store import ModelInfo

MIN_PREFIX = 4
TYPED_PREFIXES = ("fp", "sha256")  # fp:PREFIX / sha256:PREFIX select by fingerprint only
FINGERPRINT_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},64}}")
ORDER_HELP = "newest and previous follow version order (2 < 10), then first seen"


class SelectorError(ValueError):
    pass


class AmbiguousSelector(SelectorError):
    """One NAME@VERSION claimed by two or more fingerprints."""


class ConflictingModel(SelectorError):
    """A fingerprint whose claimants answered the same images differently: no verdict about it."""


def require_undisputed(*ms: ModelInfo) -> None:
    """Refuse a verdict about a conflicting model (collect.py, claims): which answers are the
    model's is not known until `data-collector conflicts resolve`."""
    for m in ms:
        if m.conflicts:
            raise ConflictingModel(
                f"{m.title} is conflicting: URLs announcing its fingerprint answered {m.conflicts} image(s) "
                f"differently; no verdict until it is resolved "
                f"(data-collector conflicts --model fp:{m.fingerprint[:12]})")


def version_key(m: ModelInfo) -> tuple:
    """Versions in natural order (2 < 10; numbers before words), then in the order they were seen."""
    return version_order(m.version), m.first_seen is None, m.first_seen or 0, m.id


def _version_only(m: ModelInfo) -> tuple:
    return version_key(m)[0]


def by_version(ms: list[ModelInfo], name: str) -> list[ModelInfo]:
    """The versions of `name`, oldest to newest in version order."""
    return sorted((m for m in ms if m.name == name), key=version_key)


def claimants(ms: list[ModelInfo], name: str, version: str) -> list[ModelInfo]:
    """Every stored model (fingerprint) that claims NAME@VERSION."""
    return [m for m in ms if m.name == name and m.version == version]


def conflicts(ms: list[ModelInfo]) -> dict[int, list[ModelInfo]]:
    """model id -> the other fingerprints claiming its NAME@VERSION (only models in a conflict)."""
    groups: dict[tuple[str, str], list[ModelInfo]] = {}
    for m in ms:
        groups.setdefault((m.name, m.version), []).append(m)
    return {m.id: [o for o in g if o.id != m.id] for g in groups.values() if len(g) > 1 for m in g}


def _hosts(m: ModelInfo) -> str:
    hosts = sorted({host_of(u) for u in m.urls if u}) or ["no URL"]
    return ", ".join(hosts)


def describe_claimants(ms: list[ModelInfo]) -> str:
    return "; ".join(f"{m.fingerprint[:12]} ({m.identity}, at {_hosts(m)})" for m in ms)


def _one(ms: list[ModelInfo], name: str, version: str, asked: str) -> ModelInfo:
    found = claimants(ms, name, version)
    if len(found) > 1:
        raise AmbiguousSelector(f"{asked} is ambiguous: {len(found)} models claim {name} version {version}: "
                                f"{describe_claimants(found)}. Name one by its fingerprint prefix")
    return found[0]


def previous_of(ms: list[ModelInfo], m: ModelInfo) -> ModelInfo | None:
    """The version before `m` in version order (ambiguous when two fingerprints claim it); None
    when `m` is its name's first version."""
    earlier = [x for x in by_version(ms, m.name) if _version_only(x) < _version_only(m)]
    if not earlier:
        return None
    return _one(ms, m.name, earlier[-1].version, f"the version before {m.title}")


def resolve(conn: Connection, selector: str, *, relative_to: ModelInfo | None = None) -> ModelInfo:
    """A name (its newest version), a fingerprint prefix, NAME@previous, NAME@latest or NAME@VERSION."""
    return pick(store.list_models(conn), selector, relative_to=relative_to)


def _by_fingerprint(ms: list[ModelInfo], prefix: str, asked: str) -> ModelInfo:
    prefix = prefix.lower()
    if not FINGERPRINT_PREFIX.fullmatch(prefix):
        raise SelectorError(f"{asked!r}: a fingerprint prefix is {MIN_PREFIX} to 64 hex digits")
    hits = [m for m in ms if m.fingerprint.startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise AmbiguousSelector(f"fingerprint prefix {prefix!r} is ambiguous ({len(hits)} models: "
                                f"{describe_claimants(hits)}); give more digits")
    raise SelectorError(f"no evaluated model has a fingerprint starting with {prefix!r}")


def pick(ms: list[ModelInfo], selector: str, *, relative_to: ModelInfo | None = None) -> ModelInfo:
    """`resolve` over an already loaded list of models.

    One text, one reading: `fp:PREFIX` (or `sha256:PREFIX`) is only ever a fingerprint; a bare
    text that is both a stored name and a fingerprint prefix is refused, naming both readings
    (servers cannot register such names any more, answers.check_name, but older databases may
    hold them)."""
    if not ms:
        raise SelectorError(f"no models evaluated yet in this database, so nothing matches {selector!r}: "
                            "collect first, or pass --db for the database you collected into")
    kind, colon, rest = selector.partition(":")
    if colon and kind.lower() in TYPED_PREFIXES:
        return _by_fingerprint(ms, rest, selector)
    name, _, tag = selector.partition("@")
    same = by_version(ms, name)
    as_prefix = ([m for m in ms if m.fingerprint.startswith(selector.lower())]
                 if not tag and FINGERPRINT_PREFIX.fullmatch(selector.lower()) else [])
    if same and as_prefix:
        raise AmbiguousSelector(
            f"{selector!r} reads two ways: the model name {name!r} ({describe_claimants(same[-1:])}) and a "
            f"fingerprint prefix ({describe_claimants(as_prefix)}); say fp:{selector} for the fingerprint, "
            f"or {name}@latest / {name}@VERSION for the name")
    if same and tag in ("", "latest"):
        return _one(ms, name, same[-1].version, selector)
    if tag:
        if not same:
            raise SelectorError(f"no evaluated model named {name!r}{_did_you_mean(ms, name)}")
        if tag == "previous":
            anchor = relative_to if relative_to and relative_to.name == name else same[-1]
            prev = previous_of(ms, anchor)
            if prev is None:
                raise SelectorError(f"{name!r} has no version before {anchor.title}")
            return prev
        if claimants(ms, name, tag):
            return _one(ms, name, tag, selector)
        raise SelectorError(f"{name!r} has no version {tag!r} (evaluated: "
                            f"{', '.join(m.version for m in same)}); or use @latest, @previous")
    if as_prefix:
        return _by_fingerprint(ms, selector, selector)
    raise SelectorError(f"no evaluated model matches {selector!r}{_did_you_mean(ms, name)} (a name, NAME@latest, "
                        f"NAME@previous, NAME@VERSION, or a fingerprint prefix of {MIN_PREFIX}+ hex digits, fp:PREFIX)")


def _did_you_mean(ms: list[ModelInfo], name: str) -> str:
    """`; did you mean 'a' or 'b'?` from the stored names nearest to a misspelt one (difflib's
    ratio, the closest three at 0.6 or better), or "" when none is near."""
    import difflib

    names = sorted({m.name for m in ms})
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not near:
        lowered = [n for n in names if n.lower() == name.lower()]  # case alone differs
        near = lowered
    if not near:
        return ""
    return "; did you mean " + " or ".join(repr(n) for n in near) + "?"


def typed(fingerprint: str) -> str:
    """The selector that can only mean this fingerprint."""
    return f"fp:{fingerprint}"
