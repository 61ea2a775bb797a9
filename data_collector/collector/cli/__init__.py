"""`data-collector`: collect predictions, manage the database, report and compare models.

The group lives here; each command group is a module of its own, named in COMMANDS and imported
only when its command runs (`--help` loads none of them, `collect` only its own).
"""

from __future__ import annotations

import os

# The collector's numpy work is small (paired tests, bootstraps): no BLAS thread pool spinning
# beside the requests. Set before anything imports numpy; a value the caller set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import faulthandler  # noqa: E402 - after the BLAS setting
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import click  # noqa: E402

from .. import __version__  # noqa: E402
from ..text import literal  # noqa: E402
from .options import setting_option  # noqa: E402

# name: (module, attribute, the short help --help lists). A test checks each line against the
# command's own help, so the list cannot drift from the commands.
COMMANDS = {
    "collect": ("collecting", "collect_cmd", "Evaluate model URLs on the test images they have not seen."),
    "compare": ("reporting", "compare_cmd", "Compare two models per class; exit 1 on a regression."),
    "conflicts": ("conflicts", "conflicts_group", "Fingerprints whose URLs answered one image differently."),
    "db": ("database", "db_group", "Create, migrate or drop the database tables."),
    "export": ("exporting", "export_group", "Send what is stored to other tools."),
    "gate": ("deploying", "gate_cmd", "Gate a rollout: exit 1 when a class regressed from BASELINE."),
    "hook": ("deploying", "hook_cmd", "Serve the deploy hook and gates (serve, token required)."),
    "kserve-urls": ("deploying", "kserve_urls_cmd", "The prev and latest URLs of a KServe canary, ready for gate."),
    "models": ("collecting", "models_cmd", "List the evaluated models and the URLs they were seen at."),
    "plan": ("reporting", "plan_cmd", "Images per class needed to see an accuracy drop."),
    "report": ("reporting", "report_cmd", "Per model: per-class metrics, confusion, lookalike probes."),
    "serve": ("deploying", "serve_cmd", "Serve the web view and the deploy hook."),
    "testset": ("testsets", "testset_group", "Check the labelled test set."),
    "watch": ("deploying", "watch_cmd", "Poll model URLs; evaluate, compare and report each new model."),
}


class LiteralFormatter(logging.Formatter):
    """Log lines (-v) with every control and format character of a message escaped: a server's
    text cannot forge a log line or reach the terminal as an escape sequence."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return literal(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: N802
        return literal(super().formatException(ei), keep_newlines=True)


class _Group(click.Group):
    """Commands loaded when used (COMMANDS); no traceback without -v: an unexpected error is one
    line and exit 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help from COMMANDS, without importing a command module."""
        width = formatter.width - 6 - max(len(n) for n in COMMANDS)
        rows = [(name, click.utils.make_default_short_help(COMMANDS[name][2], width)) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001
            if (ctx.obj or {}).get("verbose"):
                raise
            from ..redact import redact_url
            from .common import fail

            fail(f"unexpected {type(e).__name__}: {redact_url(str(e)).splitlines()[0] if str(e) else ''} "
                 "(run with -v for the traceback)")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@setting_option("database_url", "db")
@setting_option("db_attempts")
@click.option("-v", "--verbose", is_flag=True, help="log debug details to stderr")
@click.version_option(__version__, prog_name="data-collector")
@click.pass_context
def main(ctx: click.Context, db: str, db_attempts: int, verbose: bool) -> None:
    """Evaluate model servers on the labelled test set and store every prediction."""
    try:  # a crash in a C extension leaves its Python stack on stderr, not silence
        faulthandler.enable()
    except (OSError, ValueError, AttributeError):  # stderr without a file descriptor (tests, embedding)
        pass
    handler = logging.StreamHandler()
    handler.setFormatter(LiteralFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    from .common import database_or_file

    db, db_file = database_or_file(ctx, "db", db, "database_url")
    ctx.obj = {"db": db, "db_file": db_file, "db_attempts": db_attempts, "verbose": verbose}


def entry(args: list[str] | None = None, prog_name: str = "data-collector") -> None:
    """The `data-collector` console script (and `python -m collector.cli`): the command, then the
    exit without the interpreter's teardown (a tenth of a second or more spent freeing modules),
    once every output is flushed and no other thread is left to finish. Where one is, or the exit
    carries a message, Python exits as usual."""
    try:
        main(args, prog_name=prog_name)  # standalone: ends in SystemExit, whatever the outcome
    except SystemExit as e:
        others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
        if others or not (e.code is None or isinstance(e.code, int)):
            raise
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: Python would say so and exit 120
            raise e from None
        os._exit(e.code or 0)
