"""The collector's layers as packages: the contract in pyproject.toml ([tool.importlinter]) holds,
it catches an upward import, every module sits in a layer, and the top level stays small."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "data_collector" / "collector"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_TOP_LEVEL_MODULES = 8


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return [[name.strip() for name in layer.split("|")] for layer in contract["layers"]]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)


def test_the_layer_contract_is_kept():
    result = _lint(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_from_a_lower_layer_to_a_higher_one_breaks_the_contract(tmp_path):
    copy = tmp_path / "collector"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    store = copy / "storage" / "store.py"
    store.write_text(store.read_text() + "\nfrom ..outputs import render  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "collector.storage.store -> collector.outputs.render" in result.stdout


def test_every_module_sits_in_one_layer_and_the_top_level_is_small():
    named = [name for layer in _layers() for name in layer]
    assert len(named) == len(set(named)), "a package or module named in two layers"
    top = sorted(p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                 if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists()))
    assert sorted(name.removeprefix("collector.") for name in named) == top
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
