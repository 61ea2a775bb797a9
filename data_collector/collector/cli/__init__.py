"""`data-collector`: collect predictions, manage the database, report and compare models.

The group lives here; each command group is a module of its own, registered below.
"""

from __future__ import annotations

import os

# The collector's numpy work is small (paired tests, bootstraps): no BLAS thread pool spinning
# beside the requests. Set before anything imports numpy; a value the caller set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import faulthandler  # noqa: E402 - after the BLAS setting
import logging  # noqa: E402

import click

from .. import __version__
from ..redact import redact_url
from ..text import literal
from . import collecting, conflicts, database, deploying, exporting, reporting, testsets
from .common import database_or_file, fail, setting_option


class LiteralFormatter(logging.Formatter):
    """Log lines (-v) with every control and format character of a message escaped: a server's
    text cannot forge a log line or reach the terminal as an escape sequence."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return literal(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: N802
        return literal(super().formatException(ei), keep_newlines=True)


class _Group(click.Group):
    """No traceback without -v: an unexpected error is one line and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001
            if (ctx.obj or {}).get("verbose"):
                raise
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
    db, db_file = database_or_file(ctx, "db", db, "database_url")
    ctx.obj = {"db": db, "db_file": db_file, "db_attempts": db_attempts, "verbose": verbose}


for _cmd in (collecting.collect_cmd, collecting.models_cmd, database.db_group, reporting.report_cmd,
             reporting.compare_cmd, reporting.plan_cmd, deploying.gate_cmd,
             deploying.kserve_urls_cmd, deploying.watch_cmd, deploying.hook_cmd,
             deploying.serve_cmd, exporting.export_group, testsets.testset_group, conflicts.conflicts_group):
    main.add_command(_cmd)

