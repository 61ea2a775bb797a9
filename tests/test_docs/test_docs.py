"""The README and docs/ cannot go stale: every console block runs and prints what it shows;
every other shell block is marked as not run here and checked another way; the site builds
with `mkdocs build --strict`; the screenshots are of the shipped models."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser

from helpers import free_port
from test_docs.console import Shell, matches, parse_transcript

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAV = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]


def _nav_pages(nav) -> list[str]:
    out = []
    for item in nav:
        for value in item.values() if isinstance(item, dict) else [item]:
            out += _nav_pages(value) if isinstance(value, list) else [f"docs/{value}"]
    return out


PAGES = ["README.md", *_nav_pages(NAV)]
# Copied into the working copy the commands run in (the models, the data, the scripts).
SKIP = {".git", ".venv", ".venvs", "demo_logs", "secrets", "reports", ".pytest_cache", ".ruff_cache", ".hypothesis",
        "site", "__pycache__", "bench/out"}


@pytest.fixture(scope="session")
def docs_repo(tmp_path_factory) -> Path:
    """A copy of the repository with the real .venv linked in: `make demo` there makes the
    fresh demo database the pages read."""
    copy = tmp_path_factory.mktemp("docs") / "pokemon-classifier-tester"

    def ignore(folder, names):
        rel = Path(folder).relative_to(ROOT)
        return {n for n in names if n in SKIP or str(rel / n) in SKIP or n.startswith("pokemon_tester.db")}

    shutil.copytree(ROOT, copy, ignore=ignore, copy_function=shutil.copy2)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    # `make demo` must not install into the shared .venv from the copy (an editable install would
    # then point here): the copy's pyproject.toml is older than any install stamp.
    os.utime(copy / "pyproject.toml", (0, 0))
    return copy


@pytest.fixture(scope="session")
def docs_env(docs_repo, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    path = ":".join(p for p in os.environ["PATH"].split(":") if Path(p).resolve() != BIN.resolve())
    env = {"PATH": path, "HOME": str(home), "COLUMNS": "100", "LANG": "C.UTF-8", "TERM": "dumb",
           "DEMO_BASE_PORT": str(_free_range(4)), "MPLCONFIGDIR": str(home)}
    for k in ("PGHOST", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def _free_range(n: int) -> int:
    from model_server.ports import in_use

    while True:
        base = free_port()
        if base + n < 65535 and not any(in_use("127.0.0.1", p) for p in range(base, base + n)):
            return base


def _sybil(shell: Shell, page: str, failures: list[str]) -> Sybil:
    def console(example) -> None:
        for cmd in parse_transcript(example.parsed):
            actual = shell.run(cmd)
            if not cmd.background and not matches(cmd.expected, actual):
                failures.append(f"{page} line {example.line}: $ {cmd.text}\n--- shown:\n" + "\n".join(cmd.expected)
                                + f"\n--- printed:\n{actual}")

    def not_run(example) -> None:
        before = example.document.text[:example.start].rstrip().splitlines()
        marker = re.fullmatch(r"<!-- not-run: (\w+) -->", before[-1].strip()) if before else None
        if marker is None:
            failures.append(f"{page} line {example.line}: a bash block must follow <!-- not-run: REASON --> "
                            "(or be a console transcript that runs)")
            return
        problem = check_not_run(marker.group(1), example.parsed, shell)
        if problem:
            failures.append(f"{page} line {example.line} (not-run: {marker.group(1)}): {problem}")

    return Sybil(parsers=[CodeBlockParser(language="console", evaluator=console),
                          CodeBlockParser(language="bash", evaluator=not_run)])


@pytest.mark.parametrize("page", PAGES)
def test_every_shell_block_runs_or_is_checked_another_way(page, docs_repo, docs_env, tmp_path):
    if page != "README.md" and not (docs_repo / "pokemon_tester.db").exists():
        _ensure_demo(docs_repo, docs_env)  # a page run alone still reads a fresh demo database
    actual = Path(os.environ["DOCS_ACTUAL"]) / (page.replace("/", "_") + ".jsonl") if os.environ.get("DOCS_ACTUAL") \
        else None
    if actual is not None:
        actual.parent.mkdir(parents=True, exist_ok=True)
        actual.write_text("")
    shell = Shell(docs_repo, docs_env, actual)
    failures: list[str] = []
    try:
        document = _sybil(shell, page, failures).parse(docs_repo / page)
        examples = list(document)
        for example in examples:
            example.evaluate()
    finally:
        shell.close()
    assert not failures, "\n\n".join(failures)
    if page in ("README.md", "docs/index.md"):
        assert examples, f"{page} has no shell block"


def _ensure_demo(repo: Path, env: dict[str, str]) -> None:
    r = subprocess.run(["make", "demo"], cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


# ---- the blocks not run here, and how each is checked instead

KNOWN_TOOLS = {
    "docker": {"docker", "docker-compose", "cp", "./make_secrets.sh", "./setup_db.sh", "./connect_to_db.sh",
               "./destroy_db.sh"},
    "cluster": {"kubectl", "helm", "data-collector", ".venv/bin/data-collector"},
    "cloud": {"export", "gcloud", "openssl", "tr", "deploy/gcp/setup.sh", "deploy/gcp/deploy.sh"},
    "long": {"make", "python", ".venv/bin/python", "time"},
    "suite": {"make"},
    "mlflow": {"pip", ".venv/bin/pip", "data-collector", ".venv/bin/data-collector"},
}


def _commands(block: str) -> list[list[str]]:
    """The simple commands of a bash block, as words: split at pipes, `;`, `&&`, `||` and command
    substitutions (comments and continuations handled by shlex)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        words: list[str] = []
        redirect = False
        for token in lex:
            token = token.removesuffix("$")  # the `$` of `$(`
            if redirect:  # the file of a `>` or `<`
                redirect = False
                continue
            if token and set(token) <= set("<>&") and ("<" in token or ">" in token):
                redirect = True
            elif token and set(token) <= set("|&;()"):
                if words:
                    out.append(words)
                words = []
            elif token:
                words.append(token)
        if words:
            out.append(words)
    return out


def check_not_run(reason: str, block: str, shell: Shell) -> str | None:
    """What is wrong with a block not run here, or None: its syntax, its tools, and per reason
    the check that stands in for running it."""
    if reason not in KNOWN_TOOLS:
        return f"unknown reason (one of {', '.join(sorted(KNOWN_TOOLS))})"
    syntax = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=60)
    if syntax.returncode:
        return f"not valid bash: {syntax.stderr.strip()}"
    smoke = (ROOT / "scripts" / "docker_smoke.sh").read_text()
    for words in _commands(block):
        tool = words[0] if "=" not in words[0] else next((w for w in words if "=" not in w), words[0])
        if tool not in KNOWN_TOOLS[reason]:
            return f"{tool} is not what a {reason} block runs"
        if reason == "docker" and tool.startswith("./") and tool not in smoke:
            return f"{tool} is not run by make docker-smoke"
        if reason == "docker" and tool in ("docker", "docker-compose") and "exec" in words and \
                "data_collector.py" in words and "data_collector.py" not in smoke:
            return "the exec line is not run by make docker-smoke"
        if tool == "kubectl" and "-k" in words:
            target = words[words.index("-k") + 1]
            r = subprocess.run([str(BIN / "kubectl"), "kustomize", target], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            if r.returncode:
                return f"kubectl kustomize {target}: {r.stderr.strip()[:500]}"
        if tool.startswith("deploy/gcp/"):
            env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": shell.env["HOME"], "PROJECT_ID": "my-project-123",
                   "WEB_HOST": "pokemon.example.org", "IAP_MEMBERS": "group:ml@example.org"}
            r = subprocess.run(["bash", tool, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=300)
            if r.returncode:
                return f"{tool} --dry-run: {r.stderr.strip()[:500]}"
        if tool == "make" and len(words) > 1:
            r = subprocess.run(["make", "-n", words[1]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            if r.returncode:
                return f"make has no target {words[1]}"
        if tool.endswith("python") and "-m" in words:
            import importlib.util

            if importlib.util.find_spec(words[words.index("-m") + 1]) is None:
                return f"no module {words[words.index('-m') + 1]}"
        if tool.endswith("data-collector"):
            problem = _options_exist(words)
            if problem:
                return problem
    return None


def _options_exist(words: list[str]) -> str | None:
    """Every --option of a data-collector command line is one its --help lists."""
    sub = [w for w in words[1:] if not w.startswith("-")][:2]
    for n in (2, 1):
        r = subprocess.run([str(BIN / "data-collector"), *sub[:n], "--help"], capture_output=True, text=True,
                           timeout=120)
        if r.returncode == 0:
            break
    else:
        return f"data-collector {' '.join(sub)}: no such command"
    for w in words:
        if w.startswith("--") and w.split("=")[0] not in r.stdout:
            return f"data-collector {' '.join(sub[:n])} has no option {w.split('=')[0]}"
    return None


# ---- the site, the shell languages, the screenshots

def test_the_site_builds_strictly(tmp_path):
    r = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_shell_blocks_are_console_or_bash_only():
    """Another fence language for shell (sh, shell, zsh) would escape both checks."""
    for page in PAGES:
        langs = re.findall(r"^```(\w+)", (ROOT / page).read_text(), re.M)
        assert not set(langs) & {"sh", "shell", "zsh", "shell-session"}, (page, langs)


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for must in ("make demo", "make test", "## Contents", ".venv/bin/data-collector"):
        assert must in text, must
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


def test_the_screenshots_are_of_the_shipped_models():
    """`make screenshots` records the fingerprints of the models it showed: a retrain without
    new screenshots fails here."""
    shown = json.loads((ROOT / "docs" / "screenshots" / "models.json").read_text())
    shipped = {}
    for cfg in sorted((ROOT / "trained_models").glob("**/config.json")):
        c = json.loads(cfg.read_text())
        shipped[c["tflite"]["keras_fingerprint"]] = f"{c['name']} v{c['version']}"
    assert {m["fingerprint"]: f"{m['name']} v{m['version']}" for m in shown["models"]} == shipped


def test_the_transcript_rules():
    """`...` stands for lines or for text inside a line; anything else must be printed as shown."""
    from test_docs.console import matches

    printed = "error: port 8081 is taken\nline two\nline three\nPASS: no class regressed\n"
    assert matches(["error: port ... is taken", "...", "PASS: no class regressed"], printed)
    assert matches(["...", "line three", "PASS: no class regressed"], printed)
    assert not matches(["error: port 8081 is taken", "PASS: no class regressed"], printed)  # lines left out
    assert not matches(["error: port ... is taken", "...", "FAIL: ..."], printed)
    assert not matches(["...", "line two"], printed)  # the end must match too
    cmds = parse_transcript("$ a \\\n  --b\nout\n$ c &\n")
    assert [(c.text, c.expected, c.background) for c in cmds] == [("a \\\n  --b", ["out"], False), ("c &", [], True)]
