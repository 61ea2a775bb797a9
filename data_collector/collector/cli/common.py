"""Pieces every `data-collector` command shares: output, errors, the store, option decorators."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import store
from ..collect import CollectOptions
from ..compare import RULES, Thresholds
from ..protocols import INPUT_MODES, PROTOCOLS, ProtocolOptions, read_labels_file
from ..testset import default_hash_cache, parse_shard
from ..text import literal


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


def option(*decls: str, env: str | None = None, **kw):
    """click.option whose help line names its default and its environment variable."""
    kw.setdefault("show_default", True)
    if env:
        kw.update(envvar=env, show_envvar=True)
    return click.option(*decls, **kw)


def split_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """URL arguments, or one space-separated list from MODEL_URLS="http://a:8080 http://b:8080"."""
    return tuple(u for arg in urls for u in arg.split())


def open_store(ctx: click.Context, *, migrate: bool = True, check_schema: bool = True):
    url = ctx.obj["db"]
    try:
        engine = store.make_engine(url)
        store.connect_check(engine, attempts=ctx.obj["db_attempts"])
        if check_schema:
            store.ensure_schema(engine, migrate=migrate)
    except store.StoreError as e:
        fail(str(e))
    return engine


def default_test_data() -> str:
    for cand in ("test_data", "../test_data"):
        if Path(cand).is_dir():
            return cand
    return "test_data"


def _stack(f, opts):
    for o in reversed(opts):
        f = o(f)
    return f


def collect_options(f):
    """Options of every command that collects (collect, watch, hook)."""
    return _stack(f, [
        option("--test-data", env="TEST_DATA_DIR", default=default_test_data, show_default="test_data",
               type=click.Path(path_type=Path), help="folder of labelled test images"),
        option("--batch-size", env="BATCH_SIZE", type=click.IntRange(1, 256), default=32,
               help="images per request"),
        option("--max-in-flight", env="MAX_IN_FLIGHT", type=click.IntRange(1, 64), default=None,
               show_default="2 per model, at most 8", help="requests in flight over all models"),
        option("--timeout", env="REQUEST_TIMEOUT", type=click.FloatRange(0.1), default=60.0,
               help="seconds one request may take in all: connect, send, the whole response"),
        option("--retries", env="REQUEST_RETRIES", type=click.IntRange(0, 20), default=3,
               help="retries on refused connections and 5xx, with exponential backoff; one request to a server "
                    "ends within TIMEOUT x (RETRIES + 1) + 0.75 x (2^RETRIES - 1) s (245 s by default), and a "
                    "server that fails is not asked again"),
        option("--max-response-bytes", env="MAX_RESPONSE_BYTES", type=click.IntRange(1024), default=16 * 2**20,
               help="largest predict answer accepted, compressed or decompressed"),
        option("--max-metadata-bytes", env="MAX_METADATA_BYTES", type=click.IntRange(1024), default=2**20,
               help="largest metadata answer accepted"),
        option("--no-migrate", env="NO_MIGRATE", is_flag=True, show_default=False,
               help="never create or migrate tables; fail if the schema is not current"),
        option("--shard", env="SHARD", default=None, show_default="every image",
               help="I/N: evaluate only the images whose sha256 modulo N is I (N collectors at once)"),
        option("--shards", env="SHARDS", type=click.IntRange(1), default=None, show_default="none",
               help="N, with the shard index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)"),
        option("--hash-cache", env="HASH_CACHE", default=None, show_default="~/.cache/pokemon-classifier-tester",
               help="file remembering image hashes by path, size and mtime ('off': hash every file)"),
        option("--protocol", env="PROTOCOL", type=click.Choice(PROTOCOLS), default=None,
               show_default="from each URL: /v2/models/NAME is v2", help="the protocol every URL speaks"),
        option("--labels", env="LABELS", default=None, show_default="from the server's metadata",
               help="labels in output order, comma-separated, for servers that publish none"),
        option("--labels-file", env="LABELS_FILE", type=click.Path(dir_okay=False, path_type=Path), default=None,
               show_default="none", help="labels in output order, one per line (Triton's label file)"),
        option("--output", "output_name", env="OUTPUT_NAME", default=None, show_default="the one float output",
               help="the output holding the scores, when a model has several"),
        option("--input-mode", env="INPUT_MODE", type=click.Choice(INPUT_MODES), default=None,
               show_default="from the model's inputs",
               help="bytes: send encoded images; tensor: preprocess here and send FP32 [N,H,W,3]"),
        option("--binary-tensors/--no-binary-tensors", "binary_tensors", env="BINARY_TENSORS", default=True,
               help="OIP v2: send and receive tensors in the binary extension when the server lists it "
                    "(else base64 and numbers in JSON)"),
        option("--preprocessing", env="PREPROCESSING_FILE", type=click.Path(dir_okay=False, path_type=Path),
               default=None, show_default="the server's, else 96x96 padded on white, [0, 1]",
               help="JSON with the preprocessing for tensor mode (a model folder's config.json will do)"),
    ])


def protocol_options_from(kw: dict) -> ProtocolOptions:
    """The protocol options, with the labels and preprocessing files read and checked."""
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
    if kw.get("shard") and kw.get("shards"):
        fail("give --shard I/N or --shards N (with JOB_COMPLETION_INDEX), not both", 2)
    if kw.get("shards"):
        index = os.environ.get("JOB_COMPLETION_INDEX")
        if index is None or not index.isdigit():
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
    cache = kw.get("hash_cache")
    cache_path = None if cache == "off" else Path(cache) if cache else default_hash_cache()
    return CollectOptions(batch_size=kw["batch_size"], max_in_flight=kw["max_in_flight"], timeout=kw["timeout"],
                          retries=kw["retries"], max_response_bytes=kw["max_response_bytes"],
                          max_metadata_bytes=kw["max_metadata_bytes"], protocol=protocol_options_from(kw),
                          shard=shard_from(kw), hash_cache=cache_path)


def threshold_options(f):
    """The regression rule of compare, watch and hook (see collector/compare.py)."""
    return _stack(f, [
        option("--rule", env="GATE_RULE", type=click.Choice(RULES), default="scores",
               help="scores: true-class probabilities (Wilcoxon, Holm) or answers; mcnemar: answers only"),
        option("--max-drop", env="MAX_DROP", type=click.FloatRange(0, 1), default=0.05,
               help="accuracy drop a class may have before its answers alone can flag it"),
        option("--min-score-drop", env="MIN_SCORE_DROP", type=click.FloatRange(0, 1), default=0.05,
               help="mean fall of the true-class probability a class may have before its scores can flag it"),
        option("--alpha", env="ALPHA", type=click.FloatRange(0, 1, min_open=True), default=0.05,
               help="significance level (McNemar on answers; Holm-corrected Wilcoxon on scores)"),
    ])


def thresholds_from(kw: dict) -> Thresholds:
    return Thresholds(max_drop=kw["max_drop"], alpha=kw["alpha"], rule=kw["rule"], min_score_drop=kw["min_score_drop"])


def report_dir_option(f):
    return option("--report-dir", env="REPORT_DIR", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("reports"), help="where the HTML and JSON reports of new versions are written")(f)
