"""`data-collector testset check`: is the test set sound (testset/check.py)?"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..settings import default_hash_cache
from ..testset.images import HashCache
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
@click.option("--robustness", is_flag=True,
              help="also check the robustness suite's perturbed copies of the test images for leaks (as collect "
                   "--robustness sends them)")
@click.option("--details", is_flag=True,
              help="list the warnings about lookalike probes one by one (by default: one line sums them up)")
def check_cmd(against, test_data, hash_cache, min_drop, alpha, as_json, robustness, details):
    """Duplicates, leakage, undecodable files and thin classes in the test set.

    Exit 0: no error (warnings may remain), 1: an error: one image under two labels, a test image
    (nearly) in an --against folder, a file that does not decode; 2: usage. Near duplicates are
    found with a perceptual hash: resized, recompressed and slightly cropped copies match,
    different drawings do not (docs/testset.md).
    """
    from ..testset.check import check

    if not Path(test_data).is_dir():
        fail(f"test data folder {test_data} does not exist (see --test-data / TEST_DATA_DIR)", 2)
    cache = None if hash_cache == "off" else HashCache(Path(hash_cache) if hash_cache else default_hash_cache())
    try:
        result = check(Path(test_data), list(against), cache=cache, min_drop=min_drop, alpha=alpha,
                       perturbed=robustness)
    finally:
        if cache is not None:
            cache.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print(result, details=details)
    raise SystemExit(1 if result["errors"] else 0)


WIDTH = 100  # the findings' lines, whatever the terminal's width
SHOWN_PATHS = 12  # files named per finding in the text output (--json names them all)


def _print(r: dict, *, details: bool = False) -> None:
    import textwrap

    t = table()
    t.add_column("class", no_wrap=True)
    t.add_column("images", justify="right")
    t.add_column("needed", justify="right")
    for lab, c in r["classes"].items():
        t.add_row(lab, str(c["images"]), str(c["needed"]))
    copies = f", {r['perturbed_copies']} perturbed copies" if r.get("perturbed_copies") else ""
    for line in textwrap.wrap(f"{r['test_data']}: {r['images']} images, {r['lookalike_probes']} lookalike probes"
                              f"{copies}; against: {', '.join(r['against']) or 'nothing'}", WIDTH,
                              subsequent_indent="    "):
        out.print(line)
    out.print(t)
    probes = [f for f in r["findings"] if f["level"] == "warning" and _about_probes(f)]
    for f in r["findings"]:
        if f in probes and not details:
            continue
        head = f"{f['level'].upper()} {f['kind']}: "
        text = textwrap.fill(head + f["message"], WIDTH, subsequent_indent="    ", break_long_words=False,
                             break_on_hyphens=False)
        unnamed = [p for p in f["paths"] if p not in f["message"]]
        if unnamed:
            shown = ", ".join(unnamed[:SHOWN_PATHS]) + (f" and {len(unnamed) - SHOWN_PATHS} more (--json)"
                                                        if len(unnamed) > SHOWN_PATHS else "")
            text += "\n" + textwrap.fill("files: " + shown, WIDTH, initial_indent="    ", subsequent_indent="    ",
                                         break_long_words=False, break_on_hyphens=False)
        _lines(text, "bold red" if f["level"] == "error" else "yellow")
    if probes and not details:
        _lines(textwrap.fill(f"NOTE {len(probes)} warnings about lookalike probes (near duplicates among them; no "
                             "verdict counts a probe): --details or --json lists them", WIDTH,
                             subsequent_indent="    "), "yellow")
    word, style = ("FAILED", "bold red") if r["errors"] else ("OK", "bold green")
    _lines(textwrap.fill(f"{word}: {r['errors']} errors, {r['warnings']} warnings (near duplicates: perceptual hash "
                         f"distance <= {r['near_distance']} of 64 bits)", WIDTH, subsequent_indent="    "), style)


def _lines(text: str, style: str) -> None:
    """A wrapped finding: its first word styled, every line printed as a line of its own."""
    first, *more = text.split("\n")
    word, _, rest = first.partition(" ")
    out.print(styled((word, style), " " + rest))
    for line in more:
        out.print(line)


def _about_probes(f: dict) -> bool:
    """A finding whose every file is a lookalike probe of the test set."""
    from ..testset.images import LOOKALIKES

    return bool(f["paths"]) and all(p.startswith(LOOKALIKES + "/") for p in f["paths"])
