"""`data-collector testset check` as a person meets it: exit codes, JSON, the hash cache,
text that names every file and fits 100 columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.bench_testset_check import drawing  # random shapes: a picture of its own per seed
from collector.testset.check import NEAR_DISTANCE
from helpers import run_cli
from test_collector.testset.test_check import clean_set, save

ROOT = Path(__file__).resolve().parents[3]


def test_cli_exit_codes_json_and_the_cache(tmp_path):
    test = clean_set(tmp_path / "test")
    train = clean_set(tmp_path / "train", seed=50_000)
    cache = tmp_path / "cache.sqlite3"
    args = ["testset", "check", "--test-data", str(test), "--against", str(train), "--hash-cache", str(cache),
            "--min-drop", "0.5"]
    r = run_cli(*args, "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["errors"] == 0 and body["hashes_computed"] == 96 and body["near_distance"] == NEAR_DISTANCE
    again = json.loads(run_cli(*args, "--json").output)
    assert again["hashes_computed"] == 0 and again["findings"] == body["findings"]  # read from the cache
    shutil.copy(test / "a" / "00.png", train / "b" / "leak.png")
    r = run_cli(*args)
    assert r.exit_code == 1 and "ERROR leaked: test a/00.png is the same file" in r.output and "FAILED" in r.output
    missing = run_cli("testset", "check", "--test-data", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_the_text_output_sums_up_the_probes_names_every_file_and_fits_100_columns(tmp_path):
    test = clean_set(tmp_path / "test", per_class=4)
    probe = drawing(99_999)
    for name in ("p1.png", "p2.png"):  # two copies of one probe: a near-duplicate warning about probes only
        save(probe, test / "lookalikes" / "mew" / name)
    (test / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run_cli("testset", "check", "--test-data", str(test), "--hash-cache", "off", "--min-drop", "0.9")
    assert r.exit_code == 1
    assert "ERROR undecodable" in r.output and "a/broken.png" in r.output  # the text names the file
    assert "NOTE 1 warnings about lookalike probes" in r.output and "lookalikes/mew/p1.png" not in r.output
    assert max(len(line) for line in r.output.splitlines()) <= 100, r.output
    detailed = run_cli("testset", "check", "--test-data", str(test), "--hash-cache", "off", "--min-drop", "0.9",
                       "--details")
    assert "lookalikes/mew/p1.png" in detailed.output and "NOTE" not in detailed.output
