"""The labelled test set on disk: `<label>/<file>` and `lookalikes/<name>/<file>` (+ manifest.csv)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model_server.grammar import GrammarError, parse_uint

from ..vocab import ImageKind, is_probe

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
LOOKALIKES = "lookalikes"


class TestSetError(RuntimeError):
    pass


@dataclass(frozen=True)
class TestImage:
    path: str  # relative to the test-data folder, POSIX (a perturbed copy's is virtual: perturb.py)
    label: str
    kind: str  # photo | sprite | lookalike | perturbed
    sha256: str
    source_sha256: str | None = None  # a perturbed copy: its source image and perturbation
    perturbation: str | None = None
    data: bytes | None = field(default=None, compare=False, repr=False)  # bytes already made, if any

    @property
    def is_probe(self) -> bool:
        return is_probe(self.kind)

    def read(self, test_dir: Path) -> bytes:
        """The image's bytes: the file, or the perturbed copy (made again when not held)."""
        if self.data is not None:
            return self.data
        from .perturb import read

        return read(test_dir, self.path)

    def row(self) -> dict:
        """What the images table stores of it."""
        return {"sha256": self.sha256, "path": self.path, "label": self.label, "kind": self.kind,
                "source_sha256": self.source_sha256, "perturbation": self.perturbation}


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
    Used by one thread at a time, not always the one that opened it (the first chunk is hashed on
    early.py's thread).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.conn: sqlite3.Connection | None = None
        self.error: str | None = None
        self._pending: list[tuple] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.conn.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                              "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS perturbed (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
            self.conn.commit()
        except (OSError, sqlite3.Error) as e:
            self.conn, self.error = None, f"hash cache {self.path} unusable ({e}); hashing every file"

    def sha256s(self, files: list[tuple[str, os.stat_result]]) -> list[str | None]:
        """The sha256 of each (absolute path, stat) file, looked up together; None for a file
        that could not be read."""
        known: dict[str, tuple] = {}
        if self.conn is not None and files:
            try:  # the paths as one JSON array parameter: one fixed statement for any number of files
                known = {r[0]: r[1:] for r in self.conn.execute(
                    "SELECT path, size, mtime_ns, sha256 FROM hashes WHERE path IN (SELECT value FROM json_each(?))",
                    (json.dumps([path for path, _ in files]),))}
            except sqlite3.Error:
                known = {}
        out: list[str | None] = []
        for path, st in files:
            row = known.get(path)
            if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                out.append(row[2])
                continue
            try:
                sha = _file_sha256(path)
            except OSError:
                out.append(None)
                continue
            out.append(sha)
            if self.conn is not None:
                self._pending.append((path, st.st_size, st.st_mtime_ns, sha))
        if len(self._pending) >= 1000:
            self.flush()
        return out

    def perturbed(self, keys: list[str]) -> dict[str, str]:
        """The sha256 of perturbed copies made before, by key (perturb.cache_key)."""
        if self.conn is None or not keys:
            return {}
        try:
            return dict(self.conn.execute("SELECT key, sha256 FROM perturbed WHERE key IN "
                                          "(SELECT value FROM json_each(?))", (json.dumps(keys),)))
        except sqlite3.Error:
            return {}

    def remember_perturbed(self, pairs: list[tuple[str, str]]) -> None:
        if self.conn is None or not pairs:
            return
        try:
            self.conn.executemany("INSERT OR REPLACE INTO perturbed VALUES (?, ?)", pairs)
            self.conn.commit()
        except sqlite3.Error as e:
            self.error = f"hash cache {self.path} not written ({e})"

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
        i, n = (parse_uint(x, "shard") for x in text.split("/"))
    except (ValueError, GrammarError):
        raise ValueError(f"shard must be I/N with whole numbers, e.g. 0/4; got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n


def in_shard(sha256: str, shard: tuple[int, int] | None) -> bool:
    """A stable share of the images: the image's sha256 modulo N."""
    return shard is None or int(sha256[:16], 16) % shard[1] == shard[0]


def _file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, str]]:
    """(relative POSIX path, absolute path) of the files under `root` in a stable order (a folder's
    files by name, then its subfolders by name), one folder's names held at a time: a large test
    set is never in memory whole. Symbolic links to folders are not followed."""
    folder = os.path.join(root, rel) if rel else root
    files: list[str] = []
    dirs: list[str] = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        dirs.append(e.name)
                    elif e.is_file():
                        files.append(e.name)
                except OSError:
                    continue
    except OSError:
        return
    files.sort()
    for name in files:
        yield (f"{rel}/{name}" if rel else name), os.path.join(folder, name)
    del files
    for name in sorted(dirs):
        yield from _walk(root, f"{rel}/{name}" if rel else name)


def check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise TestSetError(f"test data folder {root} does not exist (see --test-data / TEST_DATA_DIR)")
    return root


HASH_GROUP = 256  # files whose hashes are looked up in the cache at once


def iter_images(root: Path, cache: HashCache | None = None) -> Iterator[TestImage]:
    """Every image file under `root`, labelled by its folder, identified by the sha256 of its bytes,
    streamed in a stable order. The same bytes under two paths come out twice (see scan)."""
    root = check_root(root)
    kinds = _manifest_kinds(root)
    group: list[tuple[str, str, str, str]] = []

    def hashed() -> Iterator[TestImage]:
        present = []  # (rel, label, kind), (path, stat) of the files still there
        for rel, label, kind, path in group:
            try:
                present.append(((rel, label, kind), (path, os.stat(path))))
            except OSError:
                continue  # gone since the folder was listed: not part of this test set
        files = [f for _, f in present]
        shas = cache.sha256s(files) if cache is not None else [_sha_or_none(path) for path, _ in files]
        for ((rel, label, kind), _), sha in zip(present, shas, strict=True):
            if sha is not None:  # None: unreadable
                yield TestImage(rel, label, kind, sha)
        group.clear()

    try:
        for rel, path in _walk(os.path.abspath(root)):
            if os.path.splitext(rel)[1].lower() not in IMAGE_SUFFIXES:
                continue
            placed = label_and_kind(rel, kinds)
            if placed is None:
                continue  # not in a labelled folder
            group.append((rel, *placed, path))
            if len(group) >= HASH_GROUP:
                yield from hashed()
        yield from hashed()
    finally:
        if cache is not None:
            cache.flush()


def label_and_kind(rel: str, kinds: dict[str, str]) -> tuple[str, str] | None:
    """(label, kind) of an image at `rel` (`<label>/<file>` or `lookalikes/<name>/<file>`); None
    outside a labelled folder. `kinds`: the manifest's kind by path (default photo)."""
    parts = rel.split("/")
    if parts[0] == LOOKALIKES and len(parts) == 3:
        return parts[1], ImageKind.LOOKALIKE.value
    if len(parts) == 2 and parts[0] != LOOKALIKES:
        return parts[0], kinds.get(rel, ImageKind.PHOTO.value)
    return None


def _sha_or_none(path: str) -> str | None:
    try:
        return _file_sha256(path)
    except OSError:
        return None


def scan(root: Path, cache: HashCache | None = None) -> list[TestImage]:
    """The whole test set as a list; the same bytes twice are one image (the first path wins)."""
    return next(chunks(root, sys.maxsize, cache))


class TestSetHash:
    """The test set's identity: which images (sha256 of the bytes) under which labels, whatever
    their file names or order. The sum modulo 2^256 of sha256(`sha256 label`) of every labelled
    file: the same as hashing the sorted lines for telling sets apart, computed as they stream by
    (no list of the whole set in memory)."""

    def __init__(self):
        self._sum = 0

    def update(self, item: TestImage) -> None:
        self._sum = (self._sum + int(hashlib.sha256(f"{item.sha256} {item.label}\n".encode()).hexdigest(), 16)) \
            % (1 << 256)

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


def chunks(root: Path, size: int, cache: HashCache | None = None,
           digest: TestSetHash | None = None) -> Iterator[list[TestImage]]:
    """The test set in lists of up to `size` images, duplicates within a list removed (across lists
    they are left to the database, where an image and a prediction are stored once). `digest` sees
    every labelled file, whatever the size."""
    chunk: list[TestImage] = []
    seen: set[str] = set()
    any_image = False
    for item in iter_images(root, cache):
        if digest is not None:
            digest.update(item)
        if item.sha256 in seen:
            continue
        seen.add(item.sha256)
        chunk.append(item)
        if len(chunk) >= size:
            any_image = True
            yield chunk
            chunk, seen = [], set()
    if chunk:
        yield chunk
    elif not any_image:
        raise TestSetError(f"no labelled images under {root} (expected <label>/<image> folders)")


PERTURBED_GROUP = 256  # perturbed copies per list: the bytes made for a first run are held only that long


def with_perturbed(stream: Iterator[list[TestImage]], test_dir: Path,
                   cache: HashCache | None = None) -> Iterator[list[TestImage]]:
    """Each chunk followed by the perturbed copies of its labelled images (perturb.py), in lists of
    up to PERTURBED_GROUP: a copy's sha256 comes from the cache when it was made before (its bytes
    are made again only to send it), else it is made now and held. An unreadable source has none."""
    from . import perturb

    for chunk in stream:
        yield chunk
        sources = [i for i in chunk if not i.is_probe and i.kind != perturb.KIND]
        step = max(1, PERTURBED_GROUP // len(perturb.PERTURBATIONS))
        seen: set[str] = set()  # two sources' copies can be the same bytes (a JPEG of near-equal images)
        for start in range(0, len(sources), step):
            copies = [c for c in _copies(sources[start:start + step], test_dir, cache) if c.sha256 not in seen]
            seen.update(c.sha256 for c in copies)
            if copies:
                yield copies


def _copies(sources: list[TestImage], test_dir: Path, cache: HashCache | None) -> list[TestImage]:
    from . import perturb

    keys = {(i.sha256, name): perturb.cache_key(i.sha256, name) for i in sources for name in perturb.PERTURBATIONS}
    known = cache.perturbed(list(keys.values())) if cache is not None else {}
    copies: dict[str, TestImage] = {}
    made = []
    for item in sources:
        data = None
        for name in perturb.PERTURBATIONS:
            key = keys[(item.sha256, name)]
            sha, body = known.get(key), None
            if sha is None:
                try:
                    data = data if data is not None else (Path(test_dir) / item.path).read_bytes()
                    body = perturb.make(data, item.sha256, name)
                except (OSError, ValueError):
                    break
                sha = hashlib.sha256(body).hexdigest()
                made.append((key, sha))
            copies.setdefault(sha, TestImage(perturb.perturbed_path(item.path, name), item.label, perturb.KIND, sha,
                                             source_sha256=item.sha256, perturbation=name, data=body))
    if cache is not None:
        cache.remember_perturbed(made)
    return list(copies.values())


def eligible(items: list[TestImage], labels: list[str]) -> list[TestImage]:
    """What a model is asked about: images of its labels, plus every lookalike probe."""
    known = set(labels)
    return [i for i in items if i.is_probe or i.label in known]
