"""Static security checks: no credential literals, SQL only through bound parameters, bandit."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ["trained_models/model_server", "data_collector/collector", "db_scripts", "model_creation"]
CREDENTIAL = re.compile(
    r"""(?ix)(password|passwd|secret|token|api[_-]?key)\w*\s*[:=]\s*['"](?!\$\{|change-me)[A-Za-z0-9_\-+/]{8,}['"]"""
    r"""|postgres(ql)?(\+\w+)?://[^:/\s'"]+:(?!\$\{|%|\{|password@|pw@|\.\.\.)[^@\s'"]{4,}@""")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = out.stdout.split() if out.returncode == 0 else [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")]
    return [ROOT / f for f in files if (ROOT / f).is_file()]


def test_no_credential_literals_in_the_repo():
    allowed = {".env.example"}
    hits = []
    for path in tracked_files():
        if path.name in allowed or path.suffix in {".png", ".jpg", ".keras", ".gif"} or "tests" in path.parts:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{path.relative_to(ROOT)}: {m.group(0)[:60]}" for m in CREDENTIAL.finditer(text)]
    assert not hits, hits


def test_the_scanner_catches_a_planted_credential():
    assert CREDENTIAL.search('DB_PASSWORD = "hunter2hunter2"')
    assert not CREDENTIAL.search("cur.execute(sql, password=password)")  # a name, not a value
    assert CREDENTIAL.search("postgresql://owner:s3cretpw@db:5432/x")
    assert not CREDENTIAL.search("postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres/x")
    assert not CREDENTIAL.search("POSTGRES_PASSWORD=change-me-owner-password")


def test_sql_only_through_bound_parameters():
    """No SQL text assembled from runtime values in the packages (DDL names are constants)."""
    pattern = re.compile(r"""(text|execute|exec_driver_sql)\(\s*f?["'].*(\{|%s|\+\s*\w)""")
    allowed = {  # constant view names from the migration itself; identifiers quoted by psycopg2.sql
        "data_collector/collector/storage/migrations/versions/0001_initial.py",
        "data_collector/collector/storage/migrations/versions/0004_image_label_identity.py",
        "data_collector/collector/storage/migrations/versions/0007_perturbed_images.py",
        "db_scripts/setup_db.py",
    }
    hits = []
    for d in CODE_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and rel not in allowed:
                    hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, hits


def test_bandit_clean():
    bandit = shutil.which("bandit", path=str(Path(sys.executable).parent)) or shutil.which("bandit")
    assert bandit, "bandit is a test dependency"
    r = subprocess.run([bandit, "-q", "-r", *CODE_DIRS], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
