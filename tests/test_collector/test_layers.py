"""The collector's layers as packages: the contract in pyproject.toml ([tool.importlinter]) holds,
it catches an upward import, every module sits in a layer, and the top level stays small; every
module with logic has its test module at the mirrored path; no function is over 60 lines."""

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


# ---- the tests mirror the layout, and functions stay short ------------------------------------
MIRRORS = [(PACKAGE, ROOT / "tests" / "test_collector"),
           (ROOT / "trained_models" / "model_server", ROOT / "tests" / "test_model_server")]
MIN_LINES_WITH_LOGIC = 50  # a module this long has logic of its own to test
PRODUCT_CODE = [PACKAGE, ROOT / "trained_models" / "model_server", ROOT / "model_creation", ROOT / "db_scripts"]
MAX_FUNCTION_LINES = 60


def _modules(package: Path):
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if "migrations" not in rel.parts and path.name not in ("__init__.py", "__main__.py"):
            yield path, rel


def test_every_module_with_logic_has_the_test_module_named_after_it():
    missing = []
    for package, tests in MIRRORS:
        for path, rel in _modules(package):
            if len(path.read_text().splitlines()) >= MIN_LINES_WITH_LOGIC:
                expected = tests.joinpath(*rel.parts[:-1], f"test_{path.stem}.py")
                if not expected.is_file():
                    missing.append(str(expected.relative_to(ROOT)))
    assert not missing, f"modules without their test module: {missing}"


def test_no_function_is_longer_than_60_lines():
    import ast

    long = []
    for root in PRODUCT_CODE:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
