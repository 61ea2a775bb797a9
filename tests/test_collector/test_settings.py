"""The collector's one settings object: every option, `--help` line and docs/settings.md row comes from it."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collector.analysis.compare import Thresholds
from collector.cli import main
from collector.collect import CollectOptions
from collector.protocols.client import Limits
from collector.settings import CollectorSettings, SettingsError, markdown_table

ROOT = Path(__file__).resolve().parents[2]
ENV_ONLY = {"model_urls", "job_completion_index", "hook_token", "github_actions", "github_step_summary",  # no option
            "database_url_file", "view_database_url_file", "hook_token_file", "hook_token_grace"}


def _commands(group: click.Group = main, prefix: str = ""):
    yield prefix or "data-collector", group
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix} {name}".strip())
        else:
            yield f"{prefix} {name}".strip(), cmd


def _options_by_env() -> dict[str, list[tuple[str, click.Option]]]:
    found: dict[str, list[tuple[str, click.Option]]] = {}
    for name, cmd in _commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and p.envvar:
                found.setdefault(p.envvar, []).append((name, p))
    return found


def test_every_option_with_a_variable_is_a_setting_with_its_default_and_help():
    by_env = _options_by_env()
    fields = CollectorSettings.fields
    env_of = {CollectorSettings.env_name(f): f for f in fields}
    assert set(by_env) <= set(env_of), f"options reading variables no setting names: {set(by_env) - set(env_of)}"
    for field, flag in CollectorSettings.option_fields().items():
        env = CollectorSettings.env_name(field)
        assert env in by_env, f"{field}: no command has {flag}"
        for cmd, opt in by_env[env]:
            assert flag in opt.opts, (cmd, field, opt.opts)
            assert opt.help == fields[field].help, (cmd, field)
            default = opt.default() if callable(opt.default) else opt.default
            assert default == CollectorSettings.default(field), (cmd, field, default)
    assert set(fields) - set(CollectorSettings.option_fields()) == ENV_ONLY


@pytest.mark.parametrize("command", ["collect", "hook", "compare"])
def test_help_names_each_variable_and_default(command):
    text = " ".join(CliRunner().invoke(main, [command, "--help"], terminal_width=400).output.split())
    cmd = main.get_command(None, command)
    for p in cmd.params:
        if isinstance(p, click.Option) and p.envvar:
            field = p.envvar.lower()
            assert f"env var: {p.envvar}" in text, p.envvar
            shown = CollectorSettings.fields[field].shown
            if shown:
                assert f"default: ({shown})" in " ".join(text.split()), field
            elif not p.is_flag:
                assert f"default: {CollectorSettings.default(field)}" in text, field


def test_the_readme_table_is_the_settings():
    readme = (ROOT / "docs" / "settings.md").read_text()
    assert markdown_table() in readme
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", markdown_table(), flags=re.M)
    assert rows == [CollectorSettings.env_name(f) for f in CollectorSettings.fields]


def test_library_defaults_are_the_settings_defaults():
    d = CollectorSettings.default
    opts, limits, th = CollectOptions(), Limits(), Thresholds()
    assert (opts.batch_size, opts.timeout, opts.retries, opts.max_in_flight) == (
        d("batch_size"), d("request_timeout"), d("request_retries"), d("max_in_flight"))
    assert (limits.deadline, limits.max_response_bytes, limits.max_metadata_bytes) == (
        d("request_timeout"), d("max_response_bytes"), d("max_metadata_bytes"))
    assert (th.max_drop, th.alpha, th.rule, th.min_score_drop) == (
        d("max_drop"), d("alpha"), d("gate_rule"), d("min_score_drop"))


def test_env_reads_only_the_fields_asked_for_and_names_a_bad_variable(monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "s3cret-token-of-16+")
    monkeypatch.setenv("HOOK_PORT", "tcp://10.0.0.1:8090")  # what Kubernetes sets for a service named hook
    s = CollectorSettings.env("hook_token")
    assert s.hook_token.get_secret_value() == "s3cret-token-of-16+"
    assert "s3cret" not in repr(s)
    assert s.hook_port == CollectorSettings.default("hook_port")
    with pytest.raises(SettingsError, match="HOOK_PORT: input should be a valid integer"):
        CollectorSettings.env("hook_port")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "-1")
    with pytest.raises(SettingsError, match="JOB_COMPLETION_INDEX: input should be greater than or equal to 0"):
        CollectorSettings.env("job_completion_index")


def test_a_bad_environment_value_is_a_clear_cli_error(monkeypatch, tmp_path):
    r = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "collect", "http://127.0.0.1:9"],
                           env={"BATCH_SIZE": "0"})
    assert r.exit_code == 2
    assert "BATCH_SIZE" in r.output and "1<=x<=256" in r.output and "Traceback" not in r.output
