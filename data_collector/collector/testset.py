"""The labelled test set on disk: `<label>/<file>` and `lookalikes/<name>/<file>` (+ manifest.csv)."""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
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


class HashCache:
    """sha256 of files already hashed, keyed on absolute path, size and modification time (ns).

    A rerun over an unchanged test set reads no image; a file whose size or mtime changed is
    hashed again. One SQLite file (default `~/.cache/pokemon-classifier-tester/hashes.sqlite3`,
    `--hash-cache` / `HASH_CACHE`); if it cannot be opened or written, hashing goes on without it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.conn: sqlite3.Connection | None = None
        self.error: str | None = None
        self._pending: list[tuple] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                              "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)")
            self.conn.commit()
        except (OSError, sqlite3.Error) as e:
            self.conn, self.error = None, f"hash cache {self.path} unusable ({e}); hashing every file"

    def sha256(self, p: Path) -> str:
        st = p.stat()
        key = str(p.resolve())
        if self.conn is not None:
            try:
                row = self.conn.execute("SELECT size, mtime_ns, sha256 FROM hashes WHERE path = ?", (key,)).fetchone()
            except sqlite3.Error:
                row = None
            if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                return row[2]
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        if self.conn is not None:
            self._pending.append((key, st.st_size, st.st_mtime_ns, sha))
            if len(self._pending) >= 1000:
                self.flush()
        return sha

    def flush(self) -> None:
        if self.conn is None or not self._pending:
            return
        try:
            self.conn.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)", self._pending)
            self.conn.commit()
        except sqlite3.Error as e:  # read-only or full: the hashes are still right, only not remembered
            self.error = f"hash cache {self.path} not written ({e})"
        self._pending = []

    def close(self) -> None:
        self.flush()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def default_hash_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pokemon-classifier-tester" / "hashes.sqlite3"


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) -> (I, N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must be I/N with whole numbers, e.g. 0/4; got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n


def in_shard(sha256: str, shard: tuple[int, int] | None) -> bool:
    """A stable share of the images: the image's sha256 modulo N."""
    return shard is None or int(sha256[:16], 16) % shard[1] == shard[0]


def scan(root: Path, cache: HashCache | None = None) -> list[TestImage]:
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
        sha = cache.sha256(p) if cache is not None else hashlib.sha256(p.read_bytes()).hexdigest()
        if sha in seen:
            continue  # the same bytes twice: one image (the first path wins)
        seen[sha] = rel
        out.append(TestImage(rel, label, kind, sha))
    if cache is not None:
        cache.flush()
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
