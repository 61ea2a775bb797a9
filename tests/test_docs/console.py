"""Running the shell blocks of README.md and docs/*.md, checked against the output they show.

A ```console block is a transcript: `$ COMMAND` lines (a trailing backslash continues a command
on the next line), each followed by the output it prints (standard output and error, merged).
In the expected output a line `...` stands for any number of lines, `...` inside a line for
any text, and a table's rule (a line of `─`) for a rule of any width. A command ending in `&`
starts in the background; when it names `--port N`, the next command runs once
http://127.0.0.1:N/health answers (a user typing the next command by hand takes those seconds
too). Background processes end with their page.

A ```bash block is not run here (a cluster, a cloud, Docker, an hour of training, the suite
itself): the line before it must say so, `<!-- not-run: REASON -->`, and the block is then checked
the way that REASON says (`tests/test_docs/test_docs.py`).

Commands run in a copy of the repository (the real `.venv` linked in), against the database
`make demo` makes there, with COLUMNS=100. `DOCS_ACTUAL=DIR` writes what each command printed
to DIR/<page>.jsonl, to bring a page up to date.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ELLIPSIS = "..."


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        return self.text.rstrip().endswith("&")


def parse_transcript(block: str) -> list[Command]:
    commands: list[Command] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            text = line[2:]
            while text.endswith("\\") and i + 1 < len(lines):  # bash reads the backslash-newline itself
                i += 1
                text = text + "\n" + lines[i]
            commands.append(Command(text))
        elif commands:
            commands[-1].expected.append(line)
        elif line.strip():
            raise ValueError(f"a console block starts with output, not a `$ ` command: {line!r}")
        i += 1
    return commands


def _line_pattern(line: str) -> str:
    if line and set(line) == {"─"}:  # a table's rule: as wide as the cells that day (URLs, ports)
        return "─+"
    return ".*".join(re.escape(part) for part in line.split(ELLIPSIS))


def matches(expected: list[str], actual: str) -> bool:
    """Whether `actual` is what `expected` shows, `...` standing in as the module says."""
    want = _trim([x.rstrip() for x in expected])
    got = _trim([x.rstrip() for x in actual.splitlines()])
    pattern = ""
    for line in want:
        pattern += r"(?:[^\n]*\n)*?" if line.strip() == ELLIPSIS else _line_pattern(line) + r"\n"
    return re.fullmatch(pattern, "".join(g + "\n" for g in got)) is not None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


class Shell:
    """Runs one page's commands in `cwd` with `env`; background processes stop with `close`."""

    def __init__(self, cwd: Path, env: dict[str, str], actual_log: Path | None = None):
        self.cwd, self.env, self.actual_log = cwd, env, actual_log
        self.background: list[subprocess.Popen] = []

    def run(self, cmd: Command) -> str:
        if cmd.background:
            return self._start(cmd.text.rstrip()[:-1])
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd.text], cwd=self.cwd, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
        if self.actual_log is not None:
            with self.actual_log.open("a") as f:
                f.write(json.dumps({"command": cmd.text, "output": r.stdout}) + "\n")
        return r.stdout

    def _start(self, text: str) -> str:
        from devtools.health import wait_healthy

        proc = subprocess.Popen(["bash", "-c", "exec " + text], cwd=self.cwd, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.background.append(proc)
        port = re.search(r"--port[ =](\d+)", text)
        if port:
            wait_healthy(f"http://127.0.0.1:{port.group(1)}", deadline_s=300, proc=proc)
        return ""

    def close(self) -> None:
        for p in self.background:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in self.background:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
        self.background.clear()
