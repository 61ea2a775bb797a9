"""Server settings from the environment, and the preprocessing values a model folder may declare."""

from __future__ import annotations

import json

import pytest

from model_server.model import ModelFolderError, load_model_folder
from model_server.preprocessing import Preprocessing
from model_server.settings import ServerSettings


def test_from_env_reads_every_variable(monkeypatch):
    monkeypatch.setenv("MODEL_DIR", "/models/x")
    monkeypatch.setenv("MAX_BATCH", "16")
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "1024")
    monkeypatch.setenv("MAX_PIXELS", "4096")
    monkeypatch.setenv("LOAD_ASYNC", "no")
    s = ServerSettings.from_env()
    assert s == ServerSettings(model_dir="/models/x", max_batch=16, max_content_length=1024, max_pixels=4096,
                               load_async=False)


def test_from_env_defaults_overrides_and_bad_values(monkeypatch):
    for name in ServerSettings.model_fields:
        monkeypatch.delenv(ServerSettings.env_name(name), raising=False)
    assert ServerSettings.from_env() == ServerSettings()
    monkeypatch.setenv("MAX_BATCH", "16")
    assert ServerSettings.from_env({"max_batch": 4, "model_dir": None}).max_batch == 4  # explicit beats env
    monkeypatch.setenv("LOAD_ASYNC", "Yes")
    assert ServerSettings.from_env().load_async is True
    monkeypatch.setenv("MAX_BATCH", "0")
    with pytest.raises(ValueError, match="max_batch must be positive"):
        ServerSettings.from_env()
    monkeypatch.setenv("MAX_BATCH", "many")
    with pytest.raises(ValueError):
        ServerSettings.from_env()


def test_preprocessing_refuses_what_it_cannot_honour():
    assert Preprocessing().color == "RGB"
    with pytest.raises(ValueError, match="unsupported color 'BGR'"):
        Preprocessing(color="BGR")
    with pytest.raises(ValueError, match="unknown resample"):
        Preprocessing(resample="lanczos")


def test_a_model_folder_declaring_bgr_is_refused(color_model, tmp_path):
    import shutil

    folder = tmp_path / "bgr"
    shutil.copytree(color_model, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["preprocessing"]["color"] = "BGR"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="unsupported color"):
        load_model_folder(folder)


def test_ml_server_options_and_readme_come_from_the_settings(monkeypatch):
    from pathlib import Path

    from model_server.cli import build_parser
    from model_server.settings import OPTION_OF, markdown_table

    for name in ServerSettings.model_fields:
        monkeypatch.delenv(ServerSettings.env_name(name), raising=False)
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for name, flag in OPTION_OF.items():
        field = ServerSettings.model_fields[name]
        assert flag in actions[name].option_strings
        assert actions[name].default == field.default
        assert field.description in actions[name].help and ServerSettings.env_name(name) in actions[name].help
    monkeypatch.setenv("GUNICORN_THREADS", "7")
    assert build_parser().parse_args([]).gunicorn_threads == 7  # the environment through the settings
    assert build_parser().parse_args(["--threads", "3"]).gunicorn_threads == 3  # the command line wins
    readme = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert markdown_table() in readme

