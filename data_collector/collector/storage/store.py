"""Storage: engine, migrations and small data-access functions (same code on SQLite and Postgres)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, case, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError

from model_server.grammar import is_digits, parse_uint

from ..redact import redact_url
from ..settings import CollectorSettings
from ..vocab import BACKENDS, IDENTITIES, NOT_CLEAN, PROTOCOLS, SCORE_KINDS, RunStatus
from .schema import (
    claim_conflicts,
    failures,
    gate_jobs,
    images,
    model_urls,
    models,
    pending_predictions,
    predictions,
    runs,
)
from .secrets import SecretFile

DEFAULT_DB_URL = CollectorSettings.default("database_url")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


_log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A database problem with a message fit for the user."""


def now() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, credentials: SecretFile | None = None) -> Engine:
    """An engine for `url`; with `credentials` (the file `url` was read from), every new connection
    takes the user and password now in that file (a rotated password needs no restart)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreError("not a database URL (not shown: it may hold a password); expected e.g. "
                         "sqlite:///pokemon_tester.db or postgresql://user:password@host:5432/db") from None
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg2")  # the driver this project ships
    kwargs: dict = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    elif u.get_backend_name() == "postgresql":
        # synchronous_commit=off: a batch is acknowledged before its WAL reaches disk. If the
        # database crashes, the last few batches may vanish; "done" is read from the database,
        # so the next run simply sends those images again. Never a half-written batch.
        kwargs["connect_args"] = {"connect_timeout": 10, "options": "-c synchronous_commit=off"}
        kwargs["pool_pre_ping"] = True
    else:
        raise StoreError(f"unsupported database {u.get_backend_name()!r}: use sqlite or postgresql")
    try:
        engine = create_engine(u, **kwargs)
    except NoSuchModuleError as e:
        raise StoreError(f"no driver for {redact_url(url)}: {e}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode")
            if cur.fetchone()[0].lower() != "wal":  # switching needs an exclusive lock: only once
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError:
                    pass  # another connection holds the file: a later connection switches it
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    if credentials is not None:
        rotate_on_connect(engine, credentials)
    return engine


def rotate_on_connect(engine: Engine, source: SecretFile) -> None:
    """Each new connection of `engine` uses the user and password of the URL now in `source`."""
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "do_connect")
    def _current_credentials(_dialect, _record, _cargs, cparams):
        try:
            url = make_url(source.read())
        except (ArgumentError, ValueError) as e:  # a half-written file: keep what the engine has
            _log.warning("%s: not a database URL now (%s); connecting with the previous credentials",
                         source.variable, type(e).__name__)
            return
        if url.username:
            cparams["user"] = url.username
        if url.password is not None:
            cparams["password"] = url.password
        else:
            cparams.pop("password", None)


def connect_check(engine: Engine, *, attempts: int = 1, delay: float = 1.0) -> None:
    """Bounded retries; raise StoreError naming the database when it cannot be reached."""
    last = None
    for i in range(max(1, attempts)):
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except (OperationalError, DBAPIError) as e:
            last = e
            if i + 1 < attempts:
                time.sleep(delay)
    msg = str(getattr(last, "orig", last)).strip().splitlines()[0] if last else "unknown error"
    raise StoreError(f"cannot reach the database {redact_url(engine.url.render_as_string(False))}: {msg}")


def _alembic_config(conn: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


# The newest migration's revision: a database at it needs no Alembic to be used (the check is one
# SELECT). A test holds it equal to Alembic's head of migrations/versions.
HEAD_REVISION = "0007"


def head_revision() -> str:
    return HEAD_REVISION


def alembic_head() -> str:
    """The head revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in Alembic's own table (`alembic_version`), read without Alembic; None:
    no table or no row (a database never migrated)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise StoreError(f"the database is stamped with {len(found)} schema revisions (branched migrations?): "
                         f"{', '.join(sorted(map(str, found)))[:200]}")
    return found[0] if found else None


MIGRATION_LOCK = 0x70637431  # pg_advisory_xact_lock key: one migration at a time per database


def upgrade(engine: Engine) -> None:
    """Migrate to head. On PostgreSQL, collectors started at once (shards) take turns: the first
    migrates, the others wait on an advisory lock and then find the schema at head."""
    from alembic import command

    if engine.dialect.name == "sqlite":
        # SQLite changes a constraint by rebuilding the table; its rows' references must survive
        # that, so foreign keys are off during the migration (a no-op inside a transaction) and
        # checked before it commits.
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            with conn.begin():
                command.upgrade(_alembic_config(conn), "head")
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration left {len(broken)} broken references (first: {broken[0]})")
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=MIGRATION_LOCK))
        command.upgrade(_alembic_config(conn), "head")


MIGRATION_WAIT_S = 600.0  # how long a process waits for another's migration of the same SQLite file


def describe(url: str) -> str:
    """The database a URL names, for a message: a SQLite file by its absolute path, any other
    database with its password hidden."""
    try:
        u = make_url(url)
    except ArgumentError:
        return "the database given"
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return str(Path(u.database).resolve())
    return redact_url(url)


def require_existing(engine: Engine) -> None:
    """Refuse to read a SQLite file that is not there (connecting would create an empty one)."""
    db = engine.url.database
    if engine.dialect.name == "sqlite" and db and db != ":memory:" and not db.startswith("file:") \
            and not Path(db).is_file():
        raise StoreError(f"no database at {Path(db).resolve()}: nothing has been collected there. Run this "
                         "where you collected (`make demo` stores pokemon_tester.db in the repository), or "
                         "pass --db / DATABASE_URL")


def ensure_schema(engine: Engine, *, migrate: bool = True) -> None:
    """Make sure the schema is at head; migrate if allowed (SQLite default, owner role).

    Processes starting at once on a fresh SQLite file take turns (a lock file beside it, as
    PostgreSQL's advisory lock in `upgrade`): each reads the revision again under the lock, so
    the second finds the schema the first made."""
    if not migrate or engine.dialect.name != "sqlite" or not engine.url.database or \
            engine.url.database == ":memory:" or not Path(engine.url.database).parent.is_dir() or _is_head(engine):
        return _ensure_schema(engine, migrate=migrate)  # (no folder: the connection fails, with its own words)
    from filelock import FileLock, Timeout

    try:
        with FileLock(f"{engine.url.database}.lock", timeout=MIGRATION_WAIT_S):
            return _ensure_schema(engine, migrate=migrate)
    except Timeout:
        raise StoreError(f"another process has been migrating {engine.url.database} for {MIGRATION_WAIT_S:g} s "
                         f"(lock file {engine.url.database}.lock)") from None


def _is_head(engine: Engine) -> bool:
    try:
        return current_revision(engine) == head_revision()
    except (OperationalError, DBAPIError):
        return False


def _ensure_schema(engine: Engine, *, migrate: bool) -> None:
    try:
        rev = current_revision(engine)
    except (OperationalError, DBAPIError) as e:
        raise StoreError(f"cannot read the schema version: {getattr(e, 'orig', e)}") from None
    if rev == head_revision():
        return
    if not migrate:
        raise StoreError(f"database schema is at {rev or 'nothing'}, needs {head_revision()}: "
                         "run `data-collector db upgrade` (or ./setup_db.sh)")
    try:
        upgrade(engine)
    except DBAPIError as e:
        raise StoreError(f"migration failed (does this role own the schema?): {getattr(e, 'orig', e)}") from None


def destroy(engine: Engine) -> None:
    """Drop every table and view of the project (migrations downgraded to nothing)."""
    from alembic import command

    with engine.begin() as conn:
        if current_revision(engine) is not None or inspect(conn).has_table("models"):
            command.downgrade(_alembic_config(conn), "base")
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def dialect_insert(conn: Connection, table):
    """INSERT with ON CONFLICT support, from SQLAlchemy's own dialect constructs."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


# ---- data access (every query of the collector lives below) ---------------------------------
@dataclass
class ModelInfo:
    """One evaluated model, as stored."""

    id: int
    name: str
    version: str
    fingerprint: str
    labels: list[str]
    first_seen: datetime | None
    predictions: int = 0
    urls: list[str] = field(default_factory=list)
    identity: str = "declared"  # declared: the server's fingerprint; behavioural: from its answers
    protocol: str = "native"  # how it was reached: this project's API, or v2 (Open Inference Protocol)
    scores: str = "probabilities"  # or "logits (softmax applied)"
    backend: str = ""  # the runtime the server announced (litert, keras), when it said
    conflicts: int = 0  # unresolved evidence that two behaviours claim this fingerprint (claim_conflicts)

    @property
    def title(self) -> str:
        return f"{self.name} v{self.version} ({self.fingerprint[:12]})"

    def to_dict(self) -> dict:
        """The model as every view and JSON answer shows it: identity and how it was reached."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint,
                "labels": list(self.labels), "identity": self.identity, "protocol": self.protocol,
                "backend": self.backend, "scores": self.scores, "claim_conflict": self.conflicts > 0}


IN_LIST_MAX = 4096  # values in one IN (...) list (SQLite allows 32,766 bound parameters)


def upsert_images(conn: Connection, *, rows: list[dict]) -> tuple[dict[tuple[str, str], int], list[dict]]:
    """Insert unseen images, an image being its bytes and its label; return ((sha256, label) -> id
    for all of `rows`, the rows whose bytes are stored under another label: relabelled)."""
    def stored(shas: list[str]) -> list[tuple[str, str, int]]:
        out: list[tuple[str, str, int]] = []
        for i in range(0, len(shas), IN_LIST_MAX):
            q = (select(images.c.sha256, images.c.label, images.c.id)
                 .where(images.c.sha256.in_(shas[i:i + IN_LIST_MAX])))
            out.extend(tuple(r) for r in conn.execute(q))
        return out

    known = stored([r["sha256"] for r in rows])  # a rerun finds them all stored: nothing to insert
    ids = {(sha, label): image_id for sha, label, image_id in known}
    labels_of: dict[str, set[str]] = {}
    for sha, label, _ in known:
        labels_of.setdefault(sha, set()).add(label)
    new = [r for r in rows if (r["sha256"], r["label"]) not in ids]
    relabelled = [r for r in new if labels_of.get(r["sha256"])]
    if new:
        stmt = dialect_insert(conn, images).on_conflict_do_nothing(index_elements=["sha256", "label"])
        conn.execute(stmt, [{"sha256": r["sha256"], "path": r["path"], "label": r["label"], "kind": r["kind"],
                             "source_sha256": r.get("source_sha256"), "perturbation": r.get("perturbation")}
                            for r in new])
        ids.update({(sha, label): image_id for sha, label, image_id in stored([r["sha256"] for r in new])})
    return ids, relabelled


def upsert_model(conn: Connection, *, meta: dict, url: str | None) -> int:
    """The model of `meta`'s fingerprint (inserted when new); `url` is recorded as one it was seen at
    (None: not yet, for a URL whose claim of that fingerprint is still to be verified)."""
    t = now()
    stmt = dialect_insert(conn, models).on_conflict_do_nothing(index_elements=["fingerprint"])
    conn.execute(stmt, {"fingerprint": meta["fingerprint"], "name": meta["name"],
                        "version": str(meta.get("version", "")), "labels": list(meta["labels"]),
                        "metadata": meta, "first_seen": t, "last_seen": t})
    model_id = conn.execute(select(models.c.id).where(models.c.fingerprint == meta["fingerprint"])).scalar_one()
    conn.execute(update(models).where(models.c.id == model_id).values(last_seen=t))
    if url is not None:
        add_model_url(conn, model_id=model_id, url=url)
    return model_id


def set_model_identity(conn: Connection, *, model_id: int, meta: dict) -> None:
    """A model's description (name, version, labels, metadata) from the URL whose answers count
    first: until then, a claim of a new fingerprint fixes nothing (collect.py, claims)."""
    conn.execute(update(models).where(models.c.id == model_id).values(
        name=meta["name"], version=str(meta.get("version", "")), labels=list(meta["labels"]), metadata=meta))


def add_model_url(conn: Connection, *, model_id: int, url: str) -> None:
    t = now()
    stmt = dialect_insert(conn, model_urls).on_conflict_do_nothing(index_elements=["model_id", "url"])
    conn.execute(stmt, {"model_id": model_id, "url": url, "first_seen": t, "last_seen": t})
    conn.execute(update(model_urls).where(model_urls.c.model_id == model_id, model_urls.c.url == url)
                 .values(last_seen=t))


def latest_url(conn: Connection, *, model_id: int) -> str | None:
    """The URL the model was seen at most recently (as stored: credentials never are)."""
    return conn.execute(select(model_urls.c.url).where(model_urls.c.model_id == model_id)
                        .order_by(model_urls.c.last_seen.desc(), model_urls.c.id.desc()).limit(1)).scalar()


def find_model(conn: Connection, *, fingerprint: str) -> ModelInfo | None:
    r = conn.execute(select(models.c.id, models.c.name, models.c.version, models.c.fingerprint, models.c.labels,
                            models.c.first_seen).where(models.c.fingerprint == fingerprint)).first()
    return ModelInfo(*r) if r else None


def done_among(conn: Connection, *, model_id: int, shas: list[str]) -> set[str]:
    """Which of the images (sha256) the model has a stored prediction for, under any label: an
    answer depends on the bytes only, and a model is asked about an image once."""
    out: set[str] = set()
    for i in range(0, len(shas), IN_LIST_MAX):
        q = (select(images.c.sha256).select_from(predictions.join(images, images.c.id == predictions.c.image_id))
             .where(predictions.c.model_id == model_id, images.c.sha256.in_(shas[i:i + IN_LIST_MAX])))
        out.update(conn.execute(q).scalars())
    return out


def done_any(conn: Connection, *, model_id: int) -> bool:
    """Whether the model has any counted answer."""
    return conn.execute(select(predictions.c.id).where(predictions.c.model_id == model_id).limit(1)).first() is not None


HEARTBEAT_S = 15.0  # a running collector refreshes its runs' heartbeat this often
STALE_AFTER_S = 180.0  # a run whose heartbeat is this old belongs to a dead process


def process_owner() -> str:
    """host:pid:token of this process (the token tells a reused pid apart)."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{_TOKEN}"


_TOKEN = os.urandom(6).hex()


def _owner_is_dead(owner: str | None) -> bool:
    """True when `owner` ran on this host and its pid is gone (or is another process now)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid, _, token = rest.partition(":")
    if host != socket.gethostname()[:200] or not is_digits(pid):
        return False
    number = parse_uint(pid, "pid")
    if number == os.getpid():
        return token != _TOKEN
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def start_run(conn: Connection, *, model_id: int, url: str, n_planned: int, collector_version: str,
              test_set_hash: str) -> int:
    t = now()
    return conn.execute(runs.insert().values(
        model_id=model_id, url=url, started_at=t, status=RunStatus.RUNNING.value, n_planned=n_planned,
        n_sent=0, n_failed=0, collector_version=collector_version, test_set_hash=test_set_hash,
        owner=process_owner(), heartbeat_at=t)).inserted_primary_key[0]


def heartbeat(conn: Connection, *, run_ids: list[int]) -> None:
    if run_ids:
        conn.execute(update(runs).where(runs.c.id.in_(run_ids), runs.c.status == RunStatus.RUNNING.value)
                     .values(heartbeat_at=now()))


def reap_dead_runs(conn: Connection, *, stale_after_s: float = STALE_AFTER_S) -> list[int]:
    """Runs left 'running' by a dead process become 'interrupted'; live processes' runs stay.

    Dead: its owner ran on this host and its pid is gone, or its heartbeat is older than
    `stale_after_s` (a process on another host, or one killed with the machine).
    """
    cutoff = now() - timedelta(seconds=stale_after_s)
    dead = []
    for run_id, owner, beat in conn.execute(select(runs.c.id, runs.c.owner, runs.c.heartbeat_at)
                                            .where(runs.c.status == RunStatus.RUNNING.value)):
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)  # SQLite hands back naive datetimes
        if _owner_is_dead(owner) or beat is None or beat < cutoff:
            dead.append(run_id)
    if dead:
        conn.execute(update(runs).where(runs.c.id.in_(dead), runs.c.status == RunStatus.RUNNING.value)
                     .values(status=RunStatus.INTERRUPTED.value, finished_at=now(),
                             error="the collector process running it died"))
    return dead


def plan_more(conn: Connection, *, run_id: int, n: int) -> None:
    """A streaming run plans its images as the test set goes by: n_planned grows until the end."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(n_planned=runs.c.n_planned + n))


def finish_run(conn: Connection, *, run_id: int, status: RunStatus, n_sent: int, n_failed: int,
               error: str | None = None, test_set_hash: str | None = None) -> None:
    values = dict(status=RunStatus(status).value, finished_at=now(), n_sent=n_sent, n_failed=n_failed, error=error)
    if test_set_hash:  # known once the whole test set has streamed by
        values["test_set_hash"] = test_set_hash
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


# The COPY statements, spelled out (no SQL is assembled at run time); columns in the CSV rows' order.
_COPY_PREDICTIONS = ("COPY predictions (run_id, model_id, image_id, predicted_label, confidence, scores, latency_ms) "
                     "FROM STDIN")
_COPY_STAGING = ("COPY predictions_in (run_id, model_id, image_id, predicted_label, confidence, scores, latency_ms) "
                 "FROM STDIN")
_MERGE_STAGING = ("INSERT INTO predictions "
                  "(run_id, model_id, image_id, predicted_label, confidence, scores, latency_ms) "
                  "SELECT run_id, model_id, image_id, predicted_label, confidence, scores, latency_ms "
                  "FROM predictions_in ON CONFLICT (model_id, image_id) DO NOTHING")
COPY_MIN_ROWS = 64  # below this, one multi-row INSERT costs less than staging a COPY


def insert_predictions(conn: Connection, *, rows: list[dict]) -> int:
    """Bulk insert, idempotent on (model_id, image_id); returns the rows actually inserted.

    PostgreSQL, 64 rows or more: COPY (see `_copy_predictions`: idempotent too). Otherwise
    a multi-row INSERT: RETURNING makes SQLAlchemy batch the rows ("insertmanyvalues") even with
    ON CONFLICT; without it, it falls back to one round trip per row.
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        return _copy_predictions(conn, rows)
    stmt = (dialect_insert(conn, predictions).on_conflict_do_nothing(index_elements=["model_id", "image_id"])
            .returning(predictions.c.id))
    return len(conn.execute(stmt, rows).all())


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_lines(rows: list[dict]) -> Iterator[str]:
    """Rows in COPY's text format (tab-separated, backslash escapes). The scores' JSON is written
    here, with each label encoded once (json.dumps per row cost a third of the insert time);
    scores are finite floats (validated), whose repr is valid JSON."""
    keys: dict[str, str] = {}
    for r in rows:
        parts = []
        for k, v in r["scores"].items():
            key = keys.get(k)
            if key is None:
                key = keys[k] = json.dumps(k)
            parts.append(f"{key}: {float(v)!r}")
        scores = "{" + ", ".join(parts) + "}"
        yield (f"{int(r['run_id'])}\t{int(r['model_id'])}\t{int(r['image_id'])}\t"
               f"{str(r['predicted_label']).translate(_COPY_ESCAPES)}\t{float(r['confidence'])!r}\t"
               f"{scores.translate(_COPY_ESCAPES)}\t{float(r['latency_ms'])!r}\n")


def _copy_predictions(conn: Connection, rows: list[dict]) -> int:
    """COPY straight into `predictions` (raw COPY speed); if any row is already stored (a rerun
    or an overlapping shard raced this one), roll that back and go through a staging table with
    `ON CONFLICT DO NOTHING`, which costs about twice as much."""
    from psycopg2 import errors

    buf = io.StringIO("".join(_copy_lines(rows)))
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("SAVEPOINT copy_predictions")
        try:
            buf.seek(0)
            cur.copy_expert(_COPY_PREDICTIONS, buf)
            cur.execute("RELEASE SAVEPOINT copy_predictions")
            return len(rows)
        except errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT copy_predictions")
        info = conn.connection.info  # per pooled connection: the staging table lives with the session
        if not info.get("predictions_in"):
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS predictions_in (run_id integer, model_id integer, "
                        "image_id integer, predicted_label varchar(200), confidence double precision, "
                        "scores json, latency_ms double precision) ON COMMIT DELETE ROWS")
            info["predictions_in"] = True
        buf.seek(0)
        cur.copy_expert(_COPY_STAGING, buf)
        cur.execute(_MERGE_STAGING)
        inserted = cur.rowcount
        cur.execute("DELETE FROM predictions_in")  # a later batch in this transaction starts empty
    return inserted


def insert_pending(conn: Connection, *, rows: list[dict]) -> None:
    """Answers of an endpoint whose claim is not verified yet (idempotent on run and image)."""
    if rows:
        stmt = dialect_insert(conn, pending_predictions).on_conflict_do_nothing(index_elements=["run_id", "image_id"])
        conn.execute(stmt, rows)


def stored_answers(conn: Connection, *, model_id: int, shas: list[str]) -> dict[str, dict]:
    """sha256 -> {label, scores} of the model's counted answers among `shas` (the checks' truth)."""
    out: dict[str, dict] = {}
    for i in range(0, len(shas), IN_LIST_MAX):
        q = (select(images.c.sha256, predictions.c.predicted_label, predictions.c.scores)
             .select_from(predictions.join(images, images.c.id == predictions.c.image_id))
             .where(predictions.c.model_id == model_id, images.c.sha256.in_(shas[i:i + IN_LIST_MAX])))
        for sha, label, scores in conn.execute(q):
            out[sha] = {"label": label, "scores": scores or {}}
    return out


def pending_answers(conn: Connection, *, run_id: int) -> dict[int, dict]:
    """image id -> {label, scores} of one run's answers kept apart."""
    q = (select(pending_predictions.c.image_id, pending_predictions.c.predicted_label, pending_predictions.c.scores)
         .where(pending_predictions.c.run_id == run_id, pending_predictions.c.state == "pending"))
    return {image_id: {"label": label, "scores": scores or {}} for image_id, label, scores in conn.execute(q)}


def merge_pending(conn: Connection, *, run_id: int) -> int:
    """A verified endpoint's answers become the model's: copied from pending_predictions into
    predictions (an image answered meanwhile keeps its answer) and marked counted; returns the rows
    inserted."""
    cols = ("run_id", "model_id", "image_id", "predicted_label", "confidence", "scores", "latency_ms")
    mine = (pending_predictions.c.run_id == run_id, pending_predictions.c.state == "pending")
    src = select(*(pending_predictions.c[c] for c in cols)).where(*mine)
    stmt = (dialect_insert(conn, predictions).from_select(list(cols), src)
            .on_conflict_do_nothing(index_elements=["model_id", "image_id"]))
    n = conn.execute(stmt).rowcount
    conn.execute(update(pending_predictions).where(*mine).values(state="counted"))
    return max(n, 0)


def drop_pending(conn: Connection, *, run_id: int) -> None:
    """A run's answers kept apart that will never count (an unverified or interrupted claimant)."""
    conn.execute(update(pending_predictions).where(pending_predictions.c.run_id == run_id,
                                                   pending_predictions.c.state == "pending").values(state="dropped"))


def record_conflicts(conn: Connection, *, rows: list[dict]) -> None:
    """Evidence: {model_id, url, run_id, image_id, other, expected, answered} per disagreeing image."""
    if rows:
        t = now()
        conn.execute(claim_conflicts.insert(), [{**r, "found_at": t} for r in rows])


def conflict_counts(conn: Connection) -> dict[int, int]:
    """model id -> unresolved evidence rows (only conflicting models)."""
    q = (select(claim_conflicts.c.model_id, func.count()).where(claim_conflicts.c.resolved_at.is_(None))
         .group_by(claim_conflicts.c.model_id))
    return {model_id: n for model_id, n in conn.execute(q)}


def list_conflicts(conn: Connection, *, model_id: int | None = None, limit: int = 200) -> list[dict]:
    """The unresolved evidence, newest first, with each image's path and label."""
    q = (select(claim_conflicts.c.id, claim_conflicts.c.model_id, models.c.fingerprint, claim_conflicts.c.url,
                claim_conflicts.c.run_id, images.c.path, images.c.label, claim_conflicts.c.other,
                claim_conflicts.c.expected, claim_conflicts.c.answered, claim_conflicts.c.found_at)
         .select_from(claim_conflicts.join(images, images.c.id == claim_conflicts.c.image_id)
                      .join(models, models.c.id == claim_conflicts.c.model_id))
         .where(claim_conflicts.c.resolved_at.is_(None)).order_by(claim_conflicts.c.id.desc()).limit(limit))
    if model_id is not None:
        q = q.where(claim_conflicts.c.model_id == model_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def resolve_conflicts(conn: Connection, *, model_id: int, forget: bool) -> tuple[int, int]:
    """Close a model's conflict: its endpoints' answers kept apart are dropped; with `forget`, its
    counted answers are deleted too (the next collect evaluates it anew: the owner's role, not the
    collector's, may delete). Returns (evidence rows, answers dropped)."""
    n_pending = conn.execute(update(pending_predictions).where(pending_predictions.c.model_id == model_id,
                                                               pending_predictions.c.state == "pending")
                             .values(state="dropped")).rowcount
    n_stored = 0
    if forget:
        n_stored = conn.execute(predictions.delete().where(predictions.c.model_id == model_id)).rowcount
    how = "forgot every answer" if forget else "kept the stored answers"
    n = conn.execute(update(claim_conflicts).where(claim_conflicts.c.model_id == model_id,
                                                   claim_conflicts.c.resolved_at.is_(None))
                     .values(resolved_at=now(), resolution=how)).rowcount
    return n, n_pending + n_stored


def record_failures(conn: Connection, *, run_id: int, items: Iterable[tuple[str, str | None, str]]) -> None:
    rows = [{"run_id": run_id, "path": p, "sha256": s, "error": e} for p, s, e in items]
    if rows:
        conn.execute(failures.insert(), rows)


_FACTS = {"identity": IDENTITIES, "protocol": PROTOCOLS, "scores": SCORE_KINDS, "backend": BACKENDS}


def model_facts(meta) -> dict:
    """What the collector determined about a model (identity kind, protocol, score kind, backend):
    `metadata["collector"]`; rows stored before that key existed hold them at the top level, next
    to a server's own keys, so only the known values are believed there."""
    meta = meta if isinstance(meta, dict) else {}
    facts = meta.get("collector") if isinstance(meta.get("collector"), dict) else meta
    out = {}
    for key, allowed in _FACTS.items():
        value = facts.get(key) or ""
        out[key] = value if value in allowed else allowed[0]
    return out


def list_models(conn: Connection) -> list[ModelInfo]:
    """Every stored model, oldest first, with its prediction count and URLs (two queries in all)."""
    n_pred = (select(predictions.c.model_id, func.count().label("n"))
              .group_by(predictions.c.model_id).subquery())
    disputed = (select(claim_conflicts.c.model_id, func.count().label("n"))
                .where(claim_conflicts.c.resolved_at.is_(None)).group_by(claim_conflicts.c.model_id).subquery())
    q = (select(models.c.id, models.c.name, models.c.version, models.c.fingerprint, models.c.labels,
                models.c.first_seen, func.coalesce(n_pred.c.n, 0), models.c.metadata, func.coalesce(disputed.c.n, 0))
         .outerjoin(n_pred, n_pred.c.model_id == models.c.id).outerjoin(disputed, disputed.c.model_id == models.c.id)
         .order_by(models.c.first_seen, models.c.id))
    out = []
    for *row, meta, n_disputed in conn.execute(q):
        out.append(ModelInfo(*row, **model_facts(meta), conflicts=n_disputed))
    urls: dict[int, list[str]] = {}
    for model_id, url in conn.execute(select(model_urls.c.model_id, model_urls.c.url)
                                      .order_by(model_urls.c.first_seen, model_urls.c.id)):
        urls.setdefault(model_id, []).append(url)
    for m in out:
        m.urls = urls.get(m.id, [])
    return out


def load_rows(conn: Connection, *, model_id: int) -> list[dict]:
    """One dict per stored prediction of a model, with the image's label (the one it was asked
    under), path and kind (a perturbed copy: its source and perturbation), and its scores."""
    q = (select(images.c.sha256, images.c.label, images.c.path, images.c.kind, images.c.source_sha256,
                images.c.perturbation, predictions.c.predicted_label,
                predictions.c.confidence, predictions.c.scores)
         .select_from(predictions.join(images, images.c.id == predictions.c.image_id))
         .where(predictions.c.model_id == model_id).order_by(images.c.sha256))
    return [dict(r) for r in conn.execute(q).mappings()]


def model_accuracy(conn: Connection, *, model_id: int) -> tuple[float | None, int]:
    """(accuracy, n) over the model's labelled (non-probe) predictions."""
    correct = func.sum(case((predictions.c.predicted_label == images.c.label, 1), else_=0))
    q = (select(func.count(), correct).select_from(predictions.join(images, images.c.id == predictions.c.image_id))
         .where(predictions.c.model_id == model_id, images.c.kind.notin_(NOT_CLEAN)))
    n, c = conn.execute(q).one()
    return ((c or 0) / n if n else None), n


def class_counts(conn: Connection, *, name: str | None = None) -> dict[int, dict[str, tuple[int, int]]]:
    """model id -> true label -> (images, right answers), over labelled images; one aggregate query
    (the models page and the history plot, without loading a prediction row into Python)."""
    right = func.sum(case((predictions.c.predicted_label == images.c.label, 1), else_=0))
    q = (select(predictions.c.model_id, images.c.label, func.count(), right)
         .select_from(predictions.join(images, images.c.id == predictions.c.image_id))
         .where(images.c.kind.notin_(NOT_CLEAN))
         .group_by(predictions.c.model_id, images.c.label))
    if name is not None:
        q = q.where(predictions.c.model_id.in_(select(models.c.id).where(models.c.name == name)))
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for model_id, label, n, ok in conn.execute(q):
        out.setdefault(model_id, {})[label] = (int(n), int(ok or 0))
    return out


def predictions_mark(conn: Connection) -> tuple:
    """Changes whenever a transaction that stored predictions or a model commits: a cache key for
    aggregates over the predictions. The row count, not only the highest id: on PostgreSQL ids are
    handed out before commit, so two writers can commit out of id order and the highest id alone
    would not move when the lower batch lands. Rows go away only when a conflict is resolved, which
    the count of open evidence (and of rows) tells."""
    return (conn.execute(select(func.count()).select_from(predictions)).scalar(),
            conn.execute(select(func.max(predictions.c.id))).scalar(),
            conn.execute(select(func.max(models.c.id))).scalar(),
            conn.execute(select(func.count()).select_from(claim_conflicts)
                         .where(claim_conflicts.c.resolved_at.is_(None))).scalar(),
            conn.execute(select(func.max(claim_conflicts.c.id))).scalar())


def latest_runs(conn: Connection) -> dict[int, dict]:
    """model id -> its most recent run (status, started, finished, sent, failed)."""
    newest = select(func.max(runs.c.id)).group_by(runs.c.model_id).scalar_subquery()
    q = select(runs.c.model_id, runs.c.status, runs.c.started_at, runs.c.finished_at, runs.c.n_sent,
               runs.c.n_failed).where(runs.c.id.in_(newest))
    return {r.model_id: dict(r._mapping) for r in conn.execute(q)}


def evaluation_facts(conn: Connection, *, model_id: int) -> tuple[str | None, datetime | None]:
    """(the test-set hash of the model's newest run that streamed the whole set, when its newest
    run finished)."""
    q = (select(runs.c.test_set_hash, runs.c.finished_at).where(runs.c.model_id == model_id)
         .order_by(runs.c.id.desc()))
    rows = conn.execute(q).all()
    digest = next((r.test_set_hash for r in rows if r.test_set_hash), None)
    finished = max((r.finished_at for r in rows if r.finished_at), default=None)
    return digest, finished


def model_runs(conn: Connection, *, model_id: int, limit: int = 20) -> list[dict]:
    """The model's runs, newest first, each with up to 20 of its failures."""
    q = (select(runs.c.id, runs.c.url, runs.c.status, runs.c.started_at, runs.c.finished_at, runs.c.n_planned,
                runs.c.n_sent, runs.c.n_failed, runs.c.error)
         .where(runs.c.model_id == model_id).order_by(runs.c.id.desc()).limit(limit))
    out = [dict(r._mapping) for r in conn.execute(q)]
    for r in out:
        r["failures"] = [dict(f._mapping) for f in conn.execute(
            select(failures.c.path, failures.c.error).where(failures.c.run_id == r["id"])
            .order_by(failures.c.id).limit(20))]
    return out


def image_path(conn: Connection, *, sha256: str) -> str | None:
    """The stored relative path of an image, by its sha256."""
    return conn.execute(select(images.c.path).where(images.c.sha256 == sha256)).scalar_one_or_none()


# ---- gate jobs (gates.py): the gate service's queue, kept across restarts --------------------
JOB_STATES = ("queued", "running", "done", "failed")
JOB_KINDS = ("hook", "gate", "flagger", "argo")


def job_key(kind: str, baseline: str | None, candidate: str, revision: str | None) -> str:
    """What identifies a request: the same key joins the same job (see find_job)."""
    return hashlib.sha256(json.dumps([kind, baseline or "", candidate, revision or ""]).encode()).hexdigest()


def _job(row) -> dict | None:
    if row is None:
        return None
    out = dict(row._mapping)
    for k in ("submitted_at", "started_at", "finished_at", "heartbeat_at"):
        if out.get(k) is not None and out[k].tzinfo is None:
            out[k] = out[k].replace(tzinfo=UTC)  # SQLite hands back naive datetimes
    return out


def latest_job(conn: Connection, *, key: str) -> dict | None:
    return _job(conn.execute(select(gate_jobs).where(gate_jobs.c.key == key)
                             .order_by(gate_jobs.c.submitted_at.desc(), gate_jobs.c.id).limit(1)).first())


def add_job(conn: Connection, *, key: str, kind: str, baseline: str | None, candidate: str) -> str | None:
    """A new queued job's id; None when the key has an open job already (uq_gate_jobs_open_key: another
    process or thread was first). Ends `conn`'s transaction on a conflict: call it last in it."""
    job_id = uuid.uuid4().hex
    try:
        with conn.begin_nested():
            conn.execute(gate_jobs.insert().values(id=job_id, key=key, kind=kind, baseline=baseline,
                                                   candidate=candidate, state="queued", submitted_at=now(),
                                                   attempts=0))
    except IntegrityError:
        return None
    return job_id


def undecided_jobs(conn: Connection, *, key: str, since_s: float) -> int:
    """Jobs of a key that ended without a verdict (failed, or verdict error) in the last `since_s` seconds."""
    q = (select(gate_jobs.c.submitted_at).where(
        gate_jobs.c.key == key, (gate_jobs.c.state == "failed")
        | ((gate_jobs.c.state == "done") & (gate_jobs.c.verdict == "error")))
         .order_by(gate_jobs.c.submitted_at.desc()).limit(100))
    cutoff = now() - timedelta(seconds=since_s)  # compared here: SQLite keeps naive datetimes
    return sum(1 for (t,) in conn.execute(q) if (t if t.tzinfo else t.replace(tzinfo=UTC)) >= cutoff)


def open_job(conn: Connection, *, key: str) -> dict | None:
    """The queued or running job of a key, if any (the oldest)."""
    q = (select(gate_jobs).where(gate_jobs.c.key == key, gate_jobs.c.state.in_(("queued", "running")))
         .order_by(gate_jobs.c.submitted_at, gate_jobs.c.id).limit(1))
    return _job(conn.execute(q).first())


def get_job(conn: Connection, job_id: str) -> dict | None:
    return _job(conn.execute(select(gate_jobs).where(gate_jobs.c.id == job_id)).first())


def recent_jobs(conn: Connection, *, limit: int = 20) -> list[dict]:
    q = select(gate_jobs).order_by(gate_jobs.c.submitted_at.desc(), gate_jobs.c.id).limit(limit)
    return [_job(r) for r in conn.execute(q)]


def count_active_jobs(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(gate_jobs)
                        .where(gate_jobs.c.state.in_(("queued", "running")))).scalar_one()


def claim_job(conn: Connection, *, job_id: str) -> bool:
    """Take a queued job for this process; False when another took it first (one UPDATE decides)."""
    t = now()
    r = conn.execute(update(gate_jobs).where(gate_jobs.c.id == job_id, gate_jobs.c.state == "queued")
                     .values(state="running", owner=process_owner(), started_at=t, heartbeat_at=t,
                             attempts=gate_jobs.c.attempts + 1))
    return r.rowcount == 1


def beat_jobs(conn: Connection, *, job_ids: list[str]) -> None:
    if job_ids:
        conn.execute(update(gate_jobs).where(gate_jobs.c.id.in_(job_ids), gate_jobs.c.state == "running")
                     .values(heartbeat_at=now()))


def finish_job(conn: Connection, *, job_id: str, state: str, verdict: str | None, result: dict | None,
               error: str | None, candidate_fingerprint: str | None) -> None:
    conn.execute(update(gate_jobs).where(gate_jobs.c.id == job_id, gate_jobs.c.owner == process_owner())
                 .values(state=state, verdict=verdict, result=result, error=error, finished_at=now(),
                         candidate_fingerprint=candidate_fingerprint))


def requeue_dead_jobs(conn: Connection, *, stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Jobs left 'running' by a dead process are queued again (their collection resumes where the
    database stands); a live process's jobs stay."""
    cutoff = now() - timedelta(seconds=stale_after_s)
    dead = [j["id"] for j in map(_job, conn.execute(select(gate_jobs).where(gate_jobs.c.state == "running")))
            if _owner_is_dead(j["owner"]) or j["heartbeat_at"] is None or j["heartbeat_at"] < cutoff]
    if dead:
        conn.execute(update(gate_jobs).where(gate_jobs.c.id.in_(dead), gate_jobs.c.state == "running")
                     .values(state="queued", owner=None))
    return dead


def release_jobs(conn: Connection, *, job_ids: list[str]) -> None:
    """This process stops (SIGTERM) before these jobs end: queued again for the next one."""
    if job_ids:
        conn.execute(update(gate_jobs).where(gate_jobs.c.id.in_(job_ids), gate_jobs.c.state == "running",
                                             gate_jobs.c.owner == process_owner())
                     .values(state="queued", owner=None))


def startable_jobs(conn: Connection, *, limit: int) -> list[str]:
    """Queued jobs, oldest first, but never a second job of a key that has one running (the deploy
    hook evaluates one URL at a time) nor two of one key at once."""
    running = {r[0] for r in conn.execute(select(gate_jobs.c.key).where(gate_jobs.c.state == "running"))}
    out: list[str] = []
    q = select(gate_jobs.c.id, gate_jobs.c.key).where(gate_jobs.c.state == "queued").order_by(
        gate_jobs.c.submitted_at, gate_jobs.c.id)
    for job_id, key in conn.execute(q):
        if key not in running:
            running.add(key)
            out.append(job_id)
            if len(out) == limit:
                break
    return out
