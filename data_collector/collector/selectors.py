"""Naming a stored model on the command line: NAME, NAME@latest, NAME@previous, NAME@VERSION,
fingerprint prefix."""

from __future__ import annotations

from sqlalchemy import Connection

from . import store
from .store import ModelInfo

MIN_PREFIX = 4


class SelectorError(ValueError):
    pass


def resolve(conn: Connection, selector: str, *, relative_to: ModelInfo | None = None) -> ModelInfo:
    """A name (its newest version), a fingerprint prefix, NAME@previous, NAME@latest or NAME@VERSION."""
    return pick(store.list_models(conn), selector, relative_to=relative_to)


def pick(ms: list[ModelInfo], selector: str, *, relative_to: ModelInfo | None = None) -> ModelInfo:
    """`resolve` over an already loaded list of models (oldest first)."""
    name, _, tag = selector.partition("@")
    same_name = [m for m in ms if m.name == name]
    if tag:
        if not same_name:
            raise SelectorError(f"no evaluated model named {name!r}")
        if tag == "latest":
            return same_name[-1]
        if tag == "previous":
            anchor = relative_to if relative_to and relative_to.name == name else same_name[-1]
            earlier = [m for m in same_name if (m.first_seen, m.id) < (anchor.first_seen, anchor.id)]
            if not earlier:
                raise SelectorError(f"{name!r} has no version before {anchor.title}")
            return earlier[-1]
        versions = [m for m in same_name if m.version == tag]
        if versions:
            return versions[-1]  # the same version evaluated twice (other weights): the newest
        raise SelectorError(f"{name!r} has no version {tag!r} (evaluated: "
                            f"{', '.join(sorted({m.version for m in same_name}))}); or use @latest, @previous")
    if same_name:
        return same_name[-1]
    hits = [m for m in ms if m.fingerprint.startswith(selector.lower())] if len(selector) >= MIN_PREFIX else []
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise SelectorError(f"fingerprint prefix {selector!r} is ambiguous ({len(hits)} models)")
    raise SelectorError(f"no evaluated model matches {selector!r} (a name, a fingerprint prefix of "
                        f"{MIN_PREFIX}+ characters, NAME@latest, NAME@previous or NAME@VERSION)")
