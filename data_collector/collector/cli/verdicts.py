"""Where `compare` and `gate` put a verdict besides the terminal: JUnit, Markdown, GitHub, MLflow.

    --junit FILE      JUnit XML ('-': standard output)
    --markdown FILE   the Markdown summary ('-': standard output)
    --mlflow-uri URI  both models and the verdict as MLflow runs (mlflow_export.py)
    GITHUB_STEP_SUMMARY / GITHUB_ACTIONS (set by GitHub Actions): the summary is appended there,
                      regressed classes become ::error annotations, the rest of the output is fenced
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import click

from ..outputs import ci_report
from ..settings import CollectorSettings, SettingsError
from .common import err, fail, setting_option, stack


def verdict_options(f):
    return stack(f, [
        click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="also write JUnit XML here: a test per class, a failure per regressed class "
                          "('-': standard output, instead of the tables)"),
        click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="also write the Markdown summary here ('-': standard output, instead of the tables)"),
        setting_option("mlflow_uri"),
    ])


@dataclass
class VerdictOutputs:
    junit_path: Path | None
    markdown_path: Path | None
    mlflow_uri: str | None
    github_actions: bool
    step_summary: Path | None
    stdout_taken: bool  # one output writes to standard output: no tables, annotations on stderr

    @classmethod
    def of(cls, kw: dict, *others: Path | None | bool) -> VerdictOutputs:
        """From the command's options; `others` are its other outputs ('-' or True: standard output)."""
        try:
            gh = CollectorSettings.env("github_actions", "github_step_summary")
        except SettingsError as e:
            fail(str(e), 2)
        to_stdout = [o for o in (kw["junit_path"], kw["markdown_path"], *others)
                     if o is True or (o is not None and o is not False and str(o) == "-")]
        if len(to_stdout) > 1:
            fail("only one output can go to standard output ('-' or --json)", 2)
        return cls(kw["junit_path"], kw["markdown_path"], kw["mlflow_uri"], gh.github_actions,
                   gh.github_step_summary, bool(to_stdout))

    def fence(self) -> AbstractContextManager:
        """Around the terminal output: GitHub reads no workflow command from it."""
        return ci_report.stop_commands(self.github_actions and not self.stdout_taken, click.echo)

    def write(self, *, junit: Callable[[], str], markdown: Callable[[], str],
              annotations: Callable[[], list[str]]) -> None:
        try:
            if self.junit_path:
                _write(self.junit_path, junit())
            if self.markdown_path:
                _write(self.markdown_path, markdown())
            if self.step_summary:
                ci_report.append_step_summary(self.step_summary, markdown())
        except OSError as e:
            fail(f"cannot write {e.filename}: {e.strerror}", 2)
        if self.github_actions:
            for line in annotations():
                click.echo(line, err=self.stdout_taken)

    def export(self, engine, comparison: dict | None, fingerprints: list[str]) -> None:
        """Both models and the comparison to MLflow; a failure is a warning (the verdict stands)."""
        if not self.mlflow_uri:
            return
        from ..outputs.mlflow_export import ExportError, export_comparison

        try:
            experiment = CollectorSettings.env("mlflow_experiment_name").mlflow_experiment_name
            runs = export_comparison(engine, self.mlflow_uri, experiment, fingerprints, comparison)
        except (ExportError, SettingsError) as e:
            err.print(f"warning: MLflow export failed, the verdict stands: {e}")
            if self.github_actions:
                click.echo(ci_report.workflow_command("warning", str(e), title="MLflow export failed"),
                           err=self.stdout_taken)
            return
        for line in runs:
            err.print(f"MLflow: {line}")


def _write(path: Path, text: str) -> None:
    if str(path) == "-":
        click.echo(text, nl=not text.endswith("\n"))
    else:
        path.write_text(text, encoding="utf-8")
