"""Pieces every `data-collector` command shares: output, errors, the store, option decorators."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..settings import CollectorSettings, SettingsError, default_hash_cache
from ..text import literal
from .options import option, setting_option, stack  # noqa: F401 - every command module takes them from here

if TYPE_CHECKING:
    from ..analysis.compare import Thresholds
    from ..early import CollectOptions
    from ..protocols import ProtocolOptions
    from ..storage.secrets import SecretFile

# The rest of the collector is imported where a command uses it: a command loads what it needs
# (`collect` no numpy, `--help` none of it).


class LiteralConsole(Console):
    """A console that never reads text as markup, emoji codes or escapes: every string printed (a
    message, a table cell) is shown as written, its control and format characters escaped, line
    breaks included. Styled or multi-line output is built as `Text` (see `lines`, `styled`)."""

    def render_str(self, text: str, *, style="", justify=None, overflow=None, **_ignored) -> Text:
        return Text(literal(text), style=style, justify=justify, overflow=overflow)


# The terminal's width on a terminal; otherwise COLUMNS or 80, never a fixed wide layout.
out = LiteralConsole(highlight=False, markup=False, emoji=False, soft_wrap=True)  # the terminal wraps lines
err = LiteralConsole(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def lines(*parts: object) -> Text:
    """One table cell of several lines, each shown literally."""
    return Text("\n").join(Text(literal(p)) for p in parts)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of literal parts, some of them (text, style)."""
    return Text.assemble(*((literal(p[0]), p[1]) if isinstance(p, tuple) else literal(p) for p in parts))


def fail(msg: str, code: int = 1):
    try:
        err.print(styled(("error:", "bold red"), " ", msg))
    except Exception:  # noqa: BLE001 - the error path itself must not raise
        sys.stderr.write("error: " + literal(msg).encode("ascii", "backslashreplace").decode() + "\n")
    sys.exit(code)


def table(title: str | None = None) -> Table:
    """A light table: a header rule, no outer frame (fits 80 columns, reads well in logs)."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))


URLS_ENV = CollectorSettings.env_name("model_urls")  # the URL arguments of collect and watch


def split_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """URL arguments, or one space-separated list from MODEL_URLS="http://a:8080 http://b:8080"."""
    return tuple(u for arg in urls for u in arg.split())


def env_or_file(field: str) -> tuple[str | None, SecretFile | None]:
    """Setting `field` from its variable, or from the file its `_FILE` variable names (then also
    that file, to read again when it changes); both set, or an unreadable file: exit 2."""
    from ..storage.secrets import SecretFileError, secret_or_file

    given = CollectorSettings.env(field, f"{field}_file")
    # A default (DATABASE_URL's) is no value given: only the variable itself is.
    value = getattr(given, field) if os.environ.get(CollectorSettings.env_name(field)) else None
    file = getattr(given, f"{field}_file")
    if hasattr(value, "get_secret_value"):  # pydantic's SecretStr
        value = value.get_secret_value()
    try:
        grace = CollectorSettings.env("hook_token_grace").hook_token_grace if field == "hook_token" else 0.0
        return secret_or_file(value, file and str(file), CollectorSettings.env_name(field), grace_s=grace)
    except SecretFileError as e:
        fail(str(e), 2)


def database_or_file(ctx: click.Context, param: str, value: str | None, field: str
                     ) -> tuple[str | None, SecretFile | None]:
    """The URL of option `param` (field `field`), or the one in FIELD_FILE (re-read on every new
    connection). A URL given on the command line wins over the file; one from the environment
    beside the file is an error (exit 2)."""
    if ctx.get_parameter_source(param) is ParameterSource.COMMANDLINE:
        return value, None
    from_env, file = env_or_file(field)
    return (from_env if file is not None else value), file


def open_store(ctx: click.Context, *, migrate: bool = True, check_schema: bool = True, code: int = 1,
               reading: bool = False):
    """The engine, the database reached and its schema current; else one line and exit `code`
    (2 for the verdict commands, whose 1 means "regressed"). A `reading` command never creates a
    database: a SQLite file that is not there is an error naming the file it looked for."""
    from ..storage import store

    url = ctx.obj["db"]
    try:
        engine = store.make_engine(url, ctx.obj.get("db_file"))
        if reading:
            store.require_existing(engine)
        store.connect_check(engine, attempts=ctx.obj["db_attempts"])
        if check_schema:
            store.ensure_schema(engine, migrate=migrate)
    except store.StoreError as e:
        fail(str(e), code)
    ctx.call_on_close(engine.dispose)  # connections closed with the command, not left to the exit
    return engine


def nothing_collected(ctx: click.Context) -> str:
    """What a reading command says when the database it read holds no model yet."""
    from ..storage import store

    return (f"no models evaluated yet in {store.describe(ctx.obj['db'])}: run `data-collector collect URL...` "
            "first (or pass --db / DATABASE_URL for the database you collected into)")


def collect_options(f):
    """Options of every command that collects (collect, watch, hook)."""
    return stack(f, [
        setting_option("test_data_dir", "test_data"),
        setting_option("batch_size"),
        setting_option("max_in_flight"),
        setting_option("request_timeout", "timeout"),
        setting_option("request_retries", "retries"),
        setting_option("max_response_bytes"),
        setting_option("max_metadata_bytes"),
        setting_option("claim_checks"),
        setting_option("robustness"),
        setting_option("no_migrate"),
        setting_option("shard"),
        setting_option("shards"),
        setting_option("hash_cache"),
        setting_option("protocol"),
        setting_option("labels"),
        setting_option("labels_file"),
        setting_option("output_name"),
        setting_option("input_mode"),
        setting_option("binary_tensors"),
        setting_option("preprocessing_file", "preprocessing"),
    ])


def protocol_options_from(kw: dict) -> ProtocolOptions:
    """The protocol options, with the labels and preprocessing files read and checked."""
    from ..protocols import ProtocolOptions, read_labels_file

    labels = None
    if kw.get("labels") and kw.get("labels_file"):
        fail("give --labels or --labels-file, not both", 2)
    if kw.get("labels"):
        labels = tuple(x.strip() for x in kw["labels"].split(",") if x.strip())
        if not labels:
            fail("--labels: no label given (e.g. --labels bulbasaur,charmander)", 2)
    elif kw.get("labels_file"):
        try:
            labels = read_labels_file(kw["labels_file"].read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            fail(f"--labels-file {kw['labels_file']}: {e}", 2)
    spec = None
    if kw.get("preprocessing"):
        from model_server.preprocessing import Preprocessing

        try:
            doc = json.loads(kw["preprocessing"].read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            fail(f"--preprocessing {kw['preprocessing']}: {e}", 2)
        spec = doc.get("preprocessing", doc) if isinstance(doc, dict) else None
        if not isinstance(spec, dict):
            fail(f"--preprocessing {kw['preprocessing']}: not a JSON object", 2)
        try:
            Preprocessing.from_dict(spec)
        except (TypeError, ValueError) as e:
            fail(f"--preprocessing {kw['preprocessing']}: {e}", 2)
    return ProtocolOptions(protocol=kw.get("protocol"), labels=labels, output=kw.get("output_name"),
                           input_mode=kw.get("input_mode"), preprocessing=spec,
                           binary=kw.get("binary_tensors", True))


def shard_from(kw: dict) -> tuple[int, int] | None:
    """--shard I/N, or --shards N with the index in JOB_COMPLETION_INDEX; None: every image."""
    from ..testset.images import parse_shard

    if kw.get("shard") and kw.get("shards"):
        fail("give --shard I/N or --shards N (with JOB_COMPLETION_INDEX), not both", 2)
    if kw.get("shards"):
        try:
            index = CollectorSettings.env("job_completion_index").job_completion_index
        except SettingsError:
            index = None
        if index is None:
            fail("--shards N takes the shard index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), "
                 "which is not set to a number here; use --shard I/N", 2)
        text = f"{index}/{kw['shards']}"
    elif kw.get("shard"):
        text = kw["shard"]
    else:
        return None
    try:
        return parse_shard(text)
    except ValueError as e:
        fail(str(e), 2)


def collect_options_from(kw: dict) -> CollectOptions:
    from ..early import CollectOptions

    cache = kw.get("hash_cache")
    cache_path = None if cache == "off" else Path(cache) if cache else default_hash_cache()
    return CollectOptions(batch_size=kw["batch_size"], max_in_flight=kw["max_in_flight"], timeout=kw["timeout"],
                          retries=kw["retries"], max_response_bytes=kw["max_response_bytes"],
                          max_metadata_bytes=kw["max_metadata_bytes"], protocol=protocol_options_from(kw),
                          shard=shard_from(kw), hash_cache=cache_path, claim_checks=kw["claim_checks"],
                          robustness=kw["robustness"])


def threshold_options(f):
    """The regression rule of compare, watch and hook (see collector/analysis/compare.py)."""
    return stack(f, [setting_option("gate_rule", "rule"), setting_option("max_drop"),
                      setting_option("min_score_drop"), setting_option("alpha"), setting_option("calibration_rule"),
                      setting_option("max_ece_rise")])


def thresholds_from(kw: dict) -> Thresholds:
    from ..analysis.compare import Thresholds

    return Thresholds(max_drop=kw["max_drop"], alpha=kw["alpha"], rule=kw["rule"], min_score_drop=kw["min_score_drop"],
                      calibration_rule=kw["calibration_rule"], max_ece_rise=kw["max_ece_rise"],
                      robustness=kw.get("robustness", False))


def latency_options(f):
    """Paired latency of gate, compare and the gate service (see collector/analysis/latency.py)."""
    return stack(f, [setting_option("latency"), setting_option("latency_pairs"), setting_option("max_slowdown"),
                      setting_option("min_p95_ms")])


def latency_rule_from(kw: dict):
    """The latency rule when --latency is on, else None."""
    from ..analysis.latency import LatencyRule

    if not kw.get("latency"):
        return None
    return LatencyRule(pairs=kw["latency_pairs"], max_slowdown=kw["max_slowdown"], min_p95_ms=kw["min_p95_ms"])


def report_dir_option(f):
    return setting_option("report_dir")(f)
