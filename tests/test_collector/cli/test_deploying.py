"""The deploy commands' own checks: `kserve-urls` reads kubectl's JSON, `serve` and `hook`
refuse a weak or missing token before they listen, `gate` needs two models."""

from __future__ import annotations

import json

import pytest

from helpers import free_port, run_cli
from test_collector.service.test_kserve import ISVC


def test_the_command_reads_kubectl_json_from_stdin_or_a_file(tmp_path):
    from click.testing import CliRunner

    from collector.cli import main

    r = CliRunner().invoke(main, ["kserve-urls", "-", "--ingress", "http://gw:8080"], input=json.dumps(ISVC))
    assert r.exit_code == 0
    assert r.stdout.split() == ["http://gw:8080#Host=prev-colors-predictor.models.example.com",
                                "http://gw:8080#Host=latest-colors-predictor.models.example.com"]
    bad = tmp_path / "isvc.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(main, ["kserve-urls", str(bad)])
    assert r.exit_code == 2 and "not JSON" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("command,env,message", [
    (["hook"], {}, "set HOOK_TOKEN"),
    (["serve"], {"HOOK_TOKEN": "short"}, "too weak"),
    (["serve"], {"HOOK_TOKEN": "change-me-hook-token"}, "too weak"),
    (["serve", "--no-auth", "--host", "0.0.0.0"], {}, "only on a loopback address"),
    (["hook", "--no-auth"], {"HOOK_TOKEN": "a" * 8 + "Z9" * 12}, "choose one"),
])
def test_the_services_refuse_to_listen_without_a_real_token(command, env, message, tmp_path):
    r = run_cli("--db", f"sqlite:///{tmp_path / 'x.db'}", *command, "--port", str(free_port()), env=env)
    assert r.exit_code == 2 and message in r.output, r.output


def test_gate_needs_a_baseline_and_a_candidate(tmp_path):
    r = run_cli("--db", f"sqlite:///{tmp_path / 'x.db'}", "gate", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "Traceback" not in r.output and r.output.strip()
