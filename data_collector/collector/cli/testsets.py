"""`data-collector testset check`: is the test set sound (testset_check.py)?"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..settings import default_hash_cache
from ..testset import HashCache
from .common import fail, option, out, setting_option, styled, table


@click.group("testset")
def testset_group():
    """Check the labelled test set."""


@testset_group.command("check")
@click.option("--against", "against", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a folder of <label>/<image> the models learnt from (training, validation); repeatable")
@setting_option("test_data_dir", "test_data")
@setting_option("hash_cache")
@option("--min-drop", type=click.FloatRange(0, 1, min_open=True), default=0.1,
        help="accuracy drop per class the test set should be able to show (as plan)")
@option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
        help="significance level of the gate (as plan)")
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON instead of tables")
def check_cmd(against, test_data, hash_cache, min_drop, alpha, as_json):
    """Duplicates, leakage, undecodable files and thin classes in the test set.

    Exit 0: no error (warnings may remain), 1: an error: one image under two labels, a test image
    (nearly) in an --against folder, a file that does not decode; 2: usage. Near duplicates are
    found with a perceptual hash: resized, recompressed and slightly cropped copies match,
    different drawings do not (README, "Is the test set sound?").
    """
    from ..testset_check import check

    if not Path(test_data).is_dir():
        fail(f"test data folder {test_data} does not exist (see --test-data / TEST_DATA_DIR)", 2)
    cache = None if hash_cache == "off" else HashCache(Path(hash_cache) if hash_cache else default_hash_cache())
    try:
        result = check(Path(test_data), list(against), cache=cache, min_drop=min_drop, alpha=alpha)
    finally:
        if cache is not None:
            cache.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print(result)
    raise SystemExit(1 if result["errors"] else 0)


def _print(r: dict) -> None:
    t = table()
    t.add_column("class", no_wrap=True)
    t.add_column("images", justify="right")
    t.add_column("needed", justify="right")
    for lab, c in r["classes"].items():
        t.add_row(lab, str(c["images"]), str(c["needed"]))
    out.print(f"{r['test_data']}: {r['images']} images, {r['lookalike_probes']} lookalike probes; against: "
              f"{', '.join(r['against']) or 'nothing'}")
    out.print(t)
    for f in r["findings"]:
        out.print(styled((f["level"].upper(), "bold red" if f["level"] == "error" else "yellow"),
                         f" {f['kind']}: {f['message']}"))
    verdict = ("FAILED", "bold red") if r["errors"] else ("OK", "bold green")
    out.print(styled(verdict, f": {r['errors']} errors, {r['warnings']} warnings (near duplicates: perceptual "
                     f"hash distance <= {r['near_distance']} of 64 bits)"))
