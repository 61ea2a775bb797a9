"""What every command shares: help that says each option's default and variable, tables that
fit 80 columns, no secret shown, no database created by a command that only reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest

from collector.cli import main
from helpers import engine_for, run_cli, serve_model, store_model

POKEMON = ["bulbasaur", "charmander", "mewtwo", "pikachu", "squirtle", "ditto", "mimikyu"]


def _answers(labels, wrong: dict[str, int], n=12):
    """n photos per label; the first wrong[label] of them answered as the next label."""
    out = []
    for li, lab in enumerate(labels):
        for i in range(n):
            pred = labels[(li + 1) % len(labels)] if i < wrong.get(lab, 0) else lab
            out.append((f"{lab}{i:03d}".ljust(64, "0"), lab, "photo", pred))
    return out


def _cli_at_80_columns(db: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "collector.cli", "--db", db, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _all_commands(group, ctx):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        sub = click.Context(cmd, info_name=name, parent=ctx)
        yield cmd, sub
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, sub)



def test_tables_fit_80_columns_without_cutting_what_tells_rows_apart(tmp_path):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    engine = engine_for(db)
    store_model(engine, name="ml_ditto", version="1", fingerprint="1" * 64, labels=POKEMON[:6],
                answers=_answers(POKEMON[:6], {}), url="http://ml_ditto:8080")
    store_model(engine, name="ml_ditto_and_mimikyu", version="1", fingerprint="2" * 64, labels=POKEMON,
                answers=_answers(POKEMON, {"pikachu": 12, "charmander": 2}),
                url="http://a-rather-long-host-name.example.internal:8080/v2/models/ml_ditto_and_mimikyu")
    outputs = {}
    for args in (("models",), ("report",), ("compare", "ml_ditto", "ml_ditto_and_mimikyu")):
        r = _cli_at_80_columns(db, *args)
        assert r.returncode in (0, 1), r.stderr
        outputs[args[0]] = r.stdout
        tables = [line for line in r.stdout.splitlines() if "  " in line]  # table rows, not message lines
        assert tables and max(map(len, tables)) <= 80, (args, max(map(len, tables)))
        assert "…" not in r.stdout and "..." not in r.stdout, r.stdout
    models = outputs["models"].splitlines()
    assert any(line.startswith("ml_ditto ") for line in models)
    assert any(line.startswith("ml_ditto_and_mimikyu ") for line in models)
    assert all(f" {lab} " in outputs["report"] for lab in POKEMON)  # full class names in the confusion
    # One unbroken row per shared class plus overall: base→cand, then the MDD of 12 images (6/12).
    rows = re.findall(r"^\S.* \d\.\d\d→\d\.\d\d .* 0\.50 ", outputs["compare"], re.M)
    assert len(rows) == 6, outputs["compare"]
    assert re.search(r"^pikachu .*REGRESSED\s*$", outputs["compare"], re.M)
    assert re.search(r"^charmander .*n\.s\.<MDD\s*$", outputs["compare"], re.M)
    assert "charmander: dropped, not significant: under the 0.50 its 12 images can show" in outputs["compare"]
    assert "b/c: images right in the baseline only" in outputs["compare"]
    html = tmp_path / "c.html"  # the HTML comparison says the same, from the same verdict function
    assert _cli_at_80_columns(db, "compare", "ml_ditto", "ml_ditto_and_mimikyu", "--html", str(html)).returncode == 1
    page = html.read_text()
    assert "dropped, not significant: under the 0.50" in page and "REGRESSED" in page and "<th>MDD</th>" in page


def test_top_level_help_is_not_cut_at_80_columns(tmp_path):
    r = _cli_at_80_columns(f"sqlite:///{tmp_path / 'h.db'}", "--help")
    assert r.returncode == 0 and "Commands:" in r.stdout
    commands = r.stdout.split("Commands:")[1].splitlines()[1:]
    assert len(commands) == len(main.list_commands(None))
    assert all(line.rstrip().endswith(".") and not line.rstrip().endswith("...")
               for line in commands), commands  # whole first sentences, not cut
    assert max(map(len, r.stdout.splitlines())) <= 80


def test_every_option_says_what_it_does_its_default_and_its_variable():
    ctx = click.Context(main, info_name="data-collector")
    checked = 0
    for cmd, sub in [(main, ctx), *_all_commands(main, ctx)]:
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.name in ("help", "version"):
                continue
            _, text = p.get_help_record(sub)
            assert p.help, f"{cmd.name} {p.opts} has no help"
            if p.envvar:
                assert f"env var: {p.envvar}" in text, f"{cmd.name} {p.opts}: {text}"
            default = p.get_default(sub, call=False)
            if default is not None and type(default).__name__ != "Sentinel" and not p.is_flag and not p.multiple:
                assert "default:" in text, f"{cmd.name} {p.opts}: {text}"
            checked += 1
    assert checked > 30


def test_no_secret_is_ever_shown(tmp_path, color_model, test_data):
    for db in ("postgresql://someone:s3cr3t-pw@127.0.0.1:1/x", "postgresql://someone:s3cr3t@pw@127.0.0.1:1/x",
               "postgresql+nodriver://someone:s3cr3t-pw@h/x", "posgres:/someone:s3cr3t-pw@@h"):
        r = run_cli("--db", db, "models")
        assert r.exit_code != 0 and "s3cr3t" not in r.output, r.output
    db = f"sqlite:///{tmp_path / 's.db'}"
    with serve_model(color_model) as srv:
        with_userinfo = srv.url.replace("http://", "http://user:s3cr3t-pw@")
        r = run_cli("--db", db, "collect", "--test-data", str(test_data), with_userinfo)
        assert r.exit_code == 0 and "s3cr3t" not in r.output
    r = run_cli("--db", db, "models", "--json")
    assert "s3cr3t" not in r.output and "http://***@127.0.0.1:" in r.output


@pytest.mark.parametrize("command", [["report"], ["models"], ["compare", "a", "b"], ["conflicts"],
                                     ["export", "mlflow", "--tracking-uri", "http://127.0.0.1:9"]])
def test_a_reading_command_never_creates_a_database_and_names_the_file(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(*command)  # the default database: pokemon_tester.db here
    assert r.exit_code in (1, 2), r.output
    assert not (tmp_path / "pokemon_tester.db").exists()
    assert f"no database at {tmp_path / 'pokemon_tester.db'}" in " ".join(r.output.split()), r.output
    assert "db upgrade" not in r.output and "Traceback" not in r.output


def test_the_collector_runs_no_blas_thread_pool():
    code = ("import collector.cli, numpy, threadpoolctl; "
            "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1]", r.stdout
