"""The test set: scanning, the hash cache (no rereading an unchanged test set), shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.testset.images import HashCache, in_shard, parse_shard, scan
from helpers import color_png, make_test_data


def _count_reads(monkeypatch) -> list[str]:
    """The names of the files the test set's scan hashes (reads) from now on."""
    from collector.testset import images as testset

    reads: list[str] = []
    original = testset._file_sha256

    def counting(path: str) -> str:
        reads.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(testset, "_file_sha256", counting)
    return reads


def test_an_unchanged_test_set_is_not_read_again(big_data, tmp_path, monkeypatch):
    cache_file = tmp_path / "cache" / "hashes.sqlite3"
    first = scan(big_data, HashCache(cache_file))
    reads = _count_reads(monkeypatch)
    cache = HashCache(cache_file)
    assert scan(big_data, cache) == first and reads == []
    changed = big_data / "red" / "red-03.png"
    changed.write_bytes(color_png((250, 0, 0), seed=4242, size=20))  # new bytes, new size
    again = scan(big_data, cache)
    cache.close()
    assert reads == ["red-03.png"]  # only the changed file was read
    sha = {i.path: i.sha256 for i in again}
    assert sha["red/red-03.png"] != {i.path: i.sha256 for i in first}["red/red-03.png"]
    assert {k: v for k, v in sha.items() if k != "red/red-03.png"} == {
        i.path: i.sha256 for i in first if i.path != "red/red-03.png"}


def test_an_unusable_cache_only_costs_time(big_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = HashCache(blocker / "hashes.sqlite3")
    assert cache.error and "unusable" in cache.error
    assert scan(big_data, cache) == scan(big_data)


def test_shards_are_a_stable_partition():
    shas = [f"{i:064x}" for i in range(0, 10**6, 997)]
    for n in (1, 3, 4):
        owners = [[i for i in range(n) if in_shard(s, (i, n))] for s in shas]
        assert all(len(o) == 1 for o in owners)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/3", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_the_test_set_identity_is_its_images_and_labels(tmp_path):
    """Renaming or reordering files keeps it; changing a label or an image changes it."""
    import shutil

    from collector.testset.images import TestSetHash, iter_images

    def identity(root):
        h = TestSetHash()
        for item in iter_images(root):
            h.update(item)
        return h.hexdigest()

    data = make_test_data(tmp_path / "td")
    first = identity(data)
    assert len(first) == 64
    (data / "red" / "red-00.png").rename(data / "red" / "zz-renamed.png")
    assert identity(data) == first
    shutil.move(data / "red" / "zz-renamed.png", data / "green" / "red-00.png")  # relabelled
    relabelled = identity(data)
    assert relabelled != first
    (data / "green" / "red-00.png").write_bytes((data / "blue" / "blue-00.png").read_bytes())  # other bytes
    assert identity(data) not in (first, relabelled)
