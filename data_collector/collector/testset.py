"""The labelled test set on disk: `<label>/<file>` and `lookalikes/<name>/<file>` (+ manifest.csv)."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from .vocab import ImageKind, is_probe

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
LOOKALIKES = "lookalikes"


class TestSetError(RuntimeError):
    pass


@dataclass(frozen=True)
class TestImage:
    path: str  # relative to the test-data folder, POSIX
    label: str
    kind: str  # photo | sprite | lookalike
    sha256: str

    @property
    def is_probe(self) -> bool:
        return is_probe(self.kind)


def _manifest_kinds(root: Path) -> dict[str, str]:
    m = root / "manifest.csv"
    if not m.is_file():
        return {}
    with m.open(newline="") as f:
        return {r["path"]: r["kind"] for r in csv.DictReader(f) if r.get("path") and r.get("kind")}


def scan(root: Path) -> list[TestImage]:
    """Every image file under `root`, labelled by its folder, identified by the sha256 of its bytes."""
    root = Path(root)
    if not root.is_dir():
        raise TestSetError(f"test data folder {root} does not exist (see --test-data / TEST_DATA_DIR)")
    kinds = _manifest_kinds(root)
    out: list[TestImage] = []
    seen: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = p.relative_to(root).as_posix()
        parts = rel.split("/")
        if parts[0] == LOOKALIKES and len(parts) == 3:
            label, kind = parts[1], ImageKind.LOOKALIKE.value
        elif len(parts) == 2 and parts[0] != LOOKALIKES:
            label, kind = parts[0], kinds.get(rel, ImageKind.PHOTO.value)
        else:
            continue  # not in a labelled folder
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        if sha in seen:
            continue  # the same bytes twice: one image (the first path wins)
        seen[sha] = rel
        out.append(TestImage(rel, label, kind, sha))
    if not out:
        raise TestSetError(f"no labelled images under {root} (expected <label>/<image> folders)")
    return out


def test_set_hash(items: list[TestImage]) -> str:
    h = hashlib.sha256()
    for sha, label in sorted((i.sha256, i.label) for i in items):
        h.update(f"{sha} {label}\n".encode())
    return h.hexdigest()


def eligible(items: list[TestImage], labels: list[str]) -> list[TestImage]:
    """What a model is asked about: images of its labels, plus every lookalike probe."""
    known = set(labels)
    return [i for i in items if i.is_probe or i.label in known]
