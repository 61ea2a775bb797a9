"""The collector's settings: every default, limit and environment variable of `data-collector`, once.

Each field is read from the environment variable of its own name in capitals (`batch_size` from
`BATCH_SIZE`). The command-line options are built from these fields (cli/options.py: flag,
default, help, range, environment variable), the library defaults (`CollectOptions`, `Limits`,
`Thresholds`) are these defaults, and the settings table of docs/settings.md is `markdown_table()`; a test
walks all three. Fields without an option (`HOOK_TOKEN`, `JOB_COMPLETION_INDEX`, the `*_FILE` credentials) are read
with `env()`.
"""

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from .vocab import INPUT_MODES, PROTOCOLS, RULES

# No pydantic here: `--help` and every default read these plain fields; the checks of values given
# (`CollectorSettings.given`, `.env`) build a pydantic model from them on first use (`_model`).


def default_test_data() -> Path:
    """`test_data`, or `../test_data` when run from a subfolder of the repository."""
    for cand in ("test_data", "../test_data"):
        if Path(cand).is_dir():
            return Path(cand)
    return Path("test_data")


def default_hash_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pokemon-classifier-tester" / "hashes.sqlite3"


class Secret(str):
    """The type of a secret setting (pydantic's SecretStr once checked: never printed)."""


@dataclass(frozen=True)
class Setting:
    """One setting: its type (the annotation it is declared with), default, help line, command-line
    flag (`option`; None: environment only), how --help and docs/settings.md show a default that is
    not a plain value (`shown`), whether a path must be a "file" or a "dir" (`path`), and its bounds
    (`ge`, `gt`, `le`)."""

    default: Any = None
    help: str = ""
    option: str | None = None
    shown: str | None = None
    factory: Any = None
    path: str | None = None
    bounds: tuple[tuple[str, float], ...] = ()
    kind: Any = None

    def get_default(self) -> Any:
        return self.factory() if self.factory is not None else self.default


def setting(default: Any = None, help: str = "", *, option: str | None = None, shown: str | None = None,  # noqa: A002
            factory=None, path: str | None = None, **bounds) -> Any:
    """A field with its help line; `option` is its command-line flag (None: environment only),
    `shown` how --help and docs/settings.md show a default that is not a plain value, `path` whether
    a path must be a "file" or a "dir"."""
    return Setting(default, help, option, shown, factory, path, tuple(sorted(bounds.items())))


# Requests in flight by default: 4 per model fill a model server's 4 threads (in the measured sweep,
# docs/numbers.md and bench/bench_limit.py, 3-6 kept it busier than 2 with 32-image batches), and
# at most 8 over all models.
IN_FLIGHT_PER_MODEL = 4
MAX_IN_FLIGHT = 8


class _Fields:

    # The store.
    database_url: str = setting("sqlite:///pokemon_tester.db", "SQLAlchemy database URL, e.g. "
                                "postgresql://user:password@host:5432/db", option="--db")
    database_url_file: Path | None = setting(None, "file holding the database URL instead of DATABASE_URL (a mounted "
                                             "secret): read again for the user and password of every new "
                                             "connection, so a rotated password needs no restart", shown="unset")
    db_attempts: int = setting(1, "connection attempts, 1 s apart, before giving up", option="--db-attempts",
                               ge=1, le=600)
    no_migrate: bool = setting(False, "never create or migrate tables; fail if the schema is not current",
                               option="--no-migrate")
    view_database_url: str | None = setting(None, "database URL of the web view (a read-only role: ./setup_db.sh "
                                            "creates one)", option="--view-db", shown="--db")
    view_database_url_file: Path | None = setting(None, "file holding the web view's database URL instead of "
                                                  "VIEW_DATABASE_URL (read as DATABASE_URL_FILE is)", shown="unset")
    # What is sent, and how.
    model_urls: str = setting("", "model server addresses, space-separated, when none is given as an argument",
                              shown="none")
    test_data_dir: Path = setting(help="folder of labelled test images", option="--test-data",
                                  factory=default_test_data, shown="test_data")
    batch_size: int = setting(32, "images per request", option="--batch-size", ge=1, le=256)
    max_in_flight: int | None = setting(None, "requests in flight over all models", option="--max-in-flight",
                                        shown=f"{IN_FLIGHT_PER_MODEL} per model, at most {MAX_IN_FLIGHT}", ge=1, le=64)
    request_timeout: float = setting(60.0, "seconds one request may take in all: connect, send, the whole response",
                                     option="--timeout", ge=0.1)
    request_retries: int = setting(
        3, "retries on refused connections and 5xx, with exponential backoff; one request to a server ends within "
        "TIMEOUT x (RETRIES + 1) + 0.75 x (2^RETRIES - 1) s (245 s by default), and a server that fails is not "
        "asked again", option="--retries", ge=0, le=20)
    max_response_bytes: int = setting(16 * 2**20, "largest predict answer accepted, compressed or decompressed",
                                      option="--max-response-bytes", ge=1024)
    max_metadata_bytes: int = setting(2**20, "largest metadata answer accepted", option="--max-metadata-bytes",
                                      ge=1024)
    claim_checks: int = setting(48, "stored answers of a model's fingerprint asked again, at random points among "
                                "the images of each run (of each 2048), to check that a URL is the model it claims "
                                "to be", option="--claim-checks", ge=0, le=4096)
    shard: str | None = setting(None, "I/N: evaluate only the images whose sha256 modulo N is I (N collectors at "
                                "once)", option="--shard", shown="every image")
    shards: int | None = setting(None, "N, with the shard index from JOB_COMPLETION_INDEX (a Kubernetes Indexed "
                                 "Job)", option="--shards", shown="none", ge=1)
    job_completion_index: int | None = setting(None, "this collector's shard index with --shards (set by a "
                                               "Kubernetes Indexed Job)", shown="none", ge=0)
    hash_cache: str | None = setting(None, "file remembering image hashes by path, size and mtime ('off': hash "
                                     "every file)", option="--hash-cache", shown="~/.cache/pokemon-classifier-tester")
    # Other serving stacks (protocols/foreign.py).
    protocol: Literal[PROTOCOLS] | None = setting(None, "the protocol every URL speaks", option="--protocol",
                                                  shown="from each URL: /v2/models/NAME is v2")
    labels: str | None = setting(None, "labels in output order, comma-separated, for servers that publish none",
                                 option="--labels", shown="from the server's metadata")
    labels_file: Path | None = setting(None, "labels in output order, one per line (Triton's label file)",
                                       option="--labels-file", shown="none", path="file")
    output_name: str | None = setting(None, "the output holding the scores, when a model has several",
                                      option="--output", shown="the one float output")
    input_mode: Literal[INPUT_MODES] | None = setting(
        None, "bytes: send encoded images; tensor: preprocess here and send FP32 [N,H,W,3]", option="--input-mode",
        shown="from the model's inputs")
    binary_tensors: bool = setting(True, "OIP v2: send and receive tensors in the binary extension when the server "
                                   "lists it (else base64 and numbers in JSON)", option="--binary-tensors")
    preprocessing_file: Path | None = setting(
        None, "JSON with the preprocessing for tensor mode (a model folder's config.json will do)",
        option="--preprocessing", shown="the server's, else 96x96 padded on white, [0, 1]", path="file")
    # The regression rule (compare.py).
    gate_rule: Literal[RULES] = setting("scores", "scores: true-class probabilities (Wilcoxon, Holm) or answers; "
                                        "mcnemar: answers only", option="--rule")
    max_drop: float = setting(0.05, "accuracy drop a class may have before its answers alone can flag it",
                              option="--max-drop", ge=0, le=1)
    min_score_drop: float = setting(0.05, "mean fall of the true-class probability a class may have before its "
                                    "scores can flag it", option="--min-score-drop", ge=0, le=1)
    alpha: float = setting(0.05, "significance level (McNemar on answers; Holm-corrected Wilcoxon on scores)",
                           option="--alpha", gt=0, le=1)
    calibration_rule: bool = setting(False, "also flag a candidate whose top-1 expected calibration error rose by "
                                     "more than --max-ece-rise, its paired bootstrap interval above 0",
                                     option="--calibration-rule")
    max_ece_rise: float = setting(0.03, "rise of the expected calibration error (15 bins) the calibration rule "
                                  "allows", option="--max-ece-rise", ge=0, le=1)
    robustness: bool = setting(False, "also send each labelled test image's perturbed copies (the robustness suite: "
                               "brightness, contrast, blur, JPEG, rotation, resize) and judge each class on them, "
                               "paired", option="--robustness")
    # Paired latency (latency.py): gate, compare and the gate service time both models now.
    latency: bool = setting(False, "time both models on the same requests, interleaved, and flag a candidate whose "
                            "p95 per request rose (model URLs; compare uses the URLs stored)", option="--latency")
    latency_pairs: int = setting(50, "interleaved request pairs timed (one request = one batch)",
                                 option="--latency-pairs", ge=10, le=10000)
    max_slowdown: float = setting(0.2, "share by which the candidate's requests may be slower (the median of its "
                                  "time over the baseline's, pair by pair) before the latency rule flags it",
                                  option="--max-slowdown", ge=0, le=100)
    min_p95_ms: float = setting(5.0, "milliseconds the candidate's p95 must also rise by for the latency rule to "
                                "flag it", option="--min-p95-ms", ge=0)
    report_dir: Path = setting(Path("reports"), "where the HTML and JSON reports of new versions are written",
                               option="--report-dir", path="dir")
    # CI and experiment tracking (compare, gate, export mlflow; ci_report.py, mlflow_export.py)
    github_actions: bool = setting(False, "set by GitHub Actions: compare and gate turn regressed classes into "
                                   "::error annotations and fence the rest of their output with ::stop-commands::")
    github_step_summary: Path | None = setting(None, "set by GitHub Actions: compare and gate append their Markdown "
                                               "summary to this file", shown="unset")
    mlflow_uri: str | None = setting(None, "MLflow tracking server that compare and gate export both models and the "
                                     "verdict to", option="--mlflow-uri", shown="none")
    mlflow_tracking_uri: str | None = setting(None, "MLflow tracking server of export mlflow (MLflow's own "
                                              "variable)", option="--tracking-uri", shown="none")
    mlflow_experiment_name: str = setting("pokemon-classifier-tester", "MLflow experiment the runs go to (created "
                                          "when missing)", option="--experiment")
    # watch
    watch_interval: float = setting(60.0, "seconds between polls of each URL's /metadata", option="--interval",
                                    ge=0.1)
    watch_cycles: int = setting(0, "stop after this many polls (0: run until interrupted)", option="--cycles", ge=0)
    # serve and hook
    hook_host: str = setting("127.0.0.1", "address to listen on", option="--host")
    hook_port: int = setting(8090, "port to listen on", option="--port", ge=1, le=65535)
    hook_allowed_hosts: str = setting("ml_original,ml_ditto,ml_ditto_and_mimikyu",  # the compose file's services
                                      "comma-separated names, addresses or CIDR networks the hook may contact",
                                      option="--allowed-hosts")
    hook_max_jobs: int = setting(8, "evaluations queued or running at once; more are answered 429",
                                 option="--max-jobs", ge=1, le=256)
    hook_token: Secret | None = setting(None, "the deploy hook's bearer token (16+ random characters); unset: "
                                           "the hook is off", shown="unset")
    hook_token_file: Path | None = setting(None, "file holding the hook's token instead of HOOK_TOKEN: read again "
                                           "when it changes (a rotated token needs no restart)", shown="unset")
    hook_token_grace: float = setting(300.0, "seconds the previous token in HOOK_TOKEN_FILE is still accepted after "
                                      "the file changes (a controller holding it finishes its rollout)", ge=0.0,
                                      le=86400.0)


# Each field with its type: the annotations are evaluated (no `from __future__ import annotations` here).
FIELDS: dict[str, Setting] = {name: replace(vars(_Fields)[name], kind=kind)
                              for name, kind in _Fields.__annotations__.items()}


class CollectorSettings:
    """The settings as plain data (`fields`), and the checked values of some of them (`given`, `env`)."""

    fields = FIELDS

    @staticmethod
    def env_name(field: str) -> str:
        return field.upper()

    @classmethod
    def default(cls, field: str) -> Any:
        return FIELDS[field].get_default()

    @classmethod
    def option_fields(cls) -> dict[str, str]:
        """Field name -> command-line flag, for the fields that have one."""
        return {name: f.option for name, f in FIELDS.items() if f.option}

    @classmethod
    def env(cls, *fields: str):
        """The settings with only `fields` read from the environment (the rest at their defaults): for
        the values no option carries. A bad value raises SettingsError naming its variable."""
        raw = {f: os.environ[cls.env_name(f)] for f in fields if os.environ.get(cls.env_name(f))}
        return cls.given(raw)

    @classmethod
    def given(cls, values: dict):
        """From `values` alone, checked (pydantic): no environment variable is read."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:  # the defaults, valid as written: no pydantic to load
            return SimpleNamespace(**{name: f.get_default() for name, f in FIELDS.items()})
        from pydantic import ValidationError

        try:
            return _model()(**values)
        except ValidationError as e:
            raise SettingsError(_message(e)) from None


@functools.cache
def _model():
    """The pydantic model of FIELDS, built once (pydantic is imported only when a value is checked)."""
    from pydantic import ConfigDict, Field, SecretStr, create_model

    def annotation(kind):
        return SecretStr | None if kind == Secret | None else kind

    fields = {}
    for name, f in FIELDS.items():
        default = {"default_factory": f.factory} if f.factory is not None else {"default": f.default}
        fields[name] = (annotation(f.kind), Field(**default, description=f.help, **dict(f.bounds)))
    return create_model("CheckedSettings", __config__=ConfigDict(frozen=True, extra="ignore"), **fields)


class SettingsError(ValueError):
    pass


def _message(e) -> str:  # a pydantic ValidationError
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{CollectorSettings.env_name(field)}: {msg[:1].lower() + msg[1:]}")
    return "; ".join(parts)


def shown_default(field: str) -> str:
    """The default as --help and docs/settings.md show it."""
    f = FIELDS[field]
    if f.shown:
        return f.shown
    value = f.get_default()
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def markdown_table() -> str:
    """The table of the collector's settings in docs/settings.md."""
    rows = ["| variable | option | default | meaning |", "|---|---|---|---|"]
    for name, f in FIELDS.items():
        flag = f.option
        rows.append(f"| `{CollectorSettings.env_name(name)}` | {f'`{flag}`' if flag else ''} | "
                    f"`{shown_default(name)}` | {f.help} |")
    return "\n".join(rows)
