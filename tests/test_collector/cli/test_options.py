"""The commands load lazily: `--help` imports none of the collector's heavy dependencies, `collect`
only what collecting needs; the options are the settings' plain fields."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from collector.cli import COMMANDS, main
from collector.cli.options import setting_option
from collector.settings import FIELDS

HEAVY = ("sqlalchemy", "alembic", "pydantic", "pydantic_settings", "numpy", "requests", "scipy", "PIL")


def _loaded_after(*argv: str) -> tuple[int, set[str]]:
    """(exit code, the HEAVY packages loaded) of `data-collector ARGV` run in a fresh interpreter."""
    code = ("import json, sys\nfrom collector.cli import main\n"
            f"sys.argv = ['data-collector', *{list(argv)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code or 0\n"
            f"print(json.dumps([rc, sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, set(loaded)


def test_help_loads_no_heavy_dependency_and_lists_every_command():
    rc, loaded = _loaded_after("--help")
    assert rc == 0 and loaded == set()
    rc, loaded = _loaded_after("collect", "--help")  # a command's help: its module, still none of them
    assert rc == 0 and loaded == set(), loaded


def test_collect_loads_neither_numpy_nor_alembic_nor_pydantic(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert subprocess.run([sys.executable, "-m", "collector.cli", "--db", db, "db", "upgrade"],
                          capture_output=True, timeout=300).returncode == 0
    (tmp_path / "td" / "red").mkdir(parents=True)
    (tmp_path / "td" / "red" / "a.png").write_bytes(b"\x89PNG not really")
    # A port nothing listens on: the model fails (exit 1) after the store and the test set were opened.
    rc, loaded = _loaded_after("--db", db, "collect", "--retries", "0", "--test-data", str(tmp_path / "td"),
                               "http://127.0.0.1:9")
    assert rc == 1
    assert not loaded & {"numpy", "alembic", "pydantic", "scipy"}, loaded
    assert "sqlalchemy" in loaded  # the store was used: the check is not vacuous


def test_the_listed_short_help_is_each_commands_own():
    for name, (_module, _attr, short) in COMMANDS.items():
        cmd = main.get_command(None, name)
        assert cmd is not None and cmd.name == name
        assert cmd.get_short_help_str(limit=1000) == short, name
    assert main.get_command(None, "nonsense") is None


def test_a_setting_option_carries_the_fields_flag_default_and_bounds():
    @click.command()
    @setting_option("batch_size")
    @setting_option("max_drop")
    @setting_option("robustness")
    def cmd(batch_size, max_drop, robustness):
        pass

    by_name = {p.name: p for p in cmd.params}
    size = by_name["batch_size"]
    assert size.opts == [FIELDS["batch_size"].option] and size.default == FIELDS["batch_size"].default
    assert (size.type.min, size.type.max) == (1, 256) and size.envvar == "BATCH_SIZE"
    assert (by_name["max_drop"].type.min, by_name["max_drop"].type.max) == (0, 1)
    assert by_name["robustness"].is_flag and by_name["robustness"].default is False
    assert cmd.main(["--batch-size", "7"], standalone_mode=False) is None
    try:
        cmd.main(["--batch-size", "0"], standalone_mode=False)
    except click.BadParameter as e:
        assert "0" in str(e)
    else:
        raise AssertionError("--batch-size 0 was accepted")
