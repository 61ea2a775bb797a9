"""The database schema as SQLAlchemy Core metadata (the migrations build exactly this)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

models = Table(
    "models", metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

model_urls = Table(
    "model_urls", metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "url", name="uq_model_urls_model_id_url"),
)

# An image is its bytes and its label: the same bytes relabelled are a second row (migration 0004).
images = Table(
    "images", metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("path", String(1000), nullable=False),
    Column("label", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # photo | sprite | lookalike | perturbed
    Column("source_sha256", String(64)),  # a perturbed copy's source image (perturb.py)
    Column("perturbation", String(100)),  # and what was done to it
    UniqueConstraint("sha256", "label", name="uq_images_sha256_label"),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    # a stored vocab.RunStatus: running | completed | incomplete | failed | interrupted
    Column("status", String(20), nullable=False),
    Column("n_planned", Integer, nullable=False, default=0),  # grows while the test set streams by
    Column("n_sent", Integer, nullable=False, default=0),
    Column("n_failed", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("collector_version", String(50), nullable=False),
    # the test set's identity (testset.TestSetHash: its images and labels, not names or order); "" until
    # the run has seen all of it
    Column("test_set_hash", String(64), nullable=False),
    Column("owner", String(300)),  # host:pid:token of the collector process running it
    Column("heartbeat_at", DateTime(timezone=True)),  # refreshed while that process is alive
)

predictions = Table(
    "predictions", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False, index=True),
    Column("predicted_label", String(200), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),  # request wall time / images in the request
    UniqueConstraint("model_id", "image_id", name="uq_predictions_model_id_image_id"),
)

failures = Table(
    "failures", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("path", String(1000), nullable=False),
    Column("sha256", String(64)),
    Column("error", Text, nullable=False),
)

gate_jobs = Table(
    "gate_jobs", metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex: the job's URL is /jobs/ID
    Column("key", String(64), nullable=False, index=True),  # sha256 of what identifies the request (store.job_key)
    Column("kind", String(20), nullable=False),  # hook | gate | flagger | argo
    Column("baseline", String(2000)),  # a URL or a stored selector; NULL: the candidate's previous version
    Column("candidate", String(2000), nullable=False),
    Column("candidate_fingerprint", String(64)),  # once evaluated: a new model behind the URL is a new job
    Column("state", String(20), nullable=False),  # queued | running | done | failed
    Column("verdict", String(20)),  # pass | fail | error (gate kinds); the deploy hook's own verdicts
    Column("result", JSON),
    Column("error", Text),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),  # runs started: > 1 after a restart resumed it
    Column("owner", String(300)),  # host:pid:token of the serve process running it
    Column("heartbeat_at", DateTime(timezone=True)),
)
# One open gate job per request, whatever the number of processes and threads (migration 0006): a
# second insert of the key fails, and its request joins the open job. The deploy hook's jobs are
# apart: a deploy after a running evaluation began is queued behind it (one running, one queued).
OPEN_GATE_JOB = text("state IN ('queued', 'running') AND kind <> 'hook'")
Index("uq_gate_jobs_open_key", gate_jobs.c.key, unique=True, sqlite_where=OPEN_GATE_JOB,
      postgresql_where=OPEN_GATE_JOB)

# Answers of an endpoint whose fingerprint claim is not verified yet (collect.py, "claims"): kept
# apart from `predictions`, counted for no model, until its answers agree with the fingerprint's
# other answers; then copied into `predictions` (state counted). A conflicting endpoint's answers
# stay pending; resolving the conflict drops them (state dropped). Nothing here is deleted: the
# collector's role has no DELETE.
pending_predictions = Table(
    "pending_predictions", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False, index=True),
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False),
    Column("predicted_label", String(200), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("state", String(10), nullable=False, server_default="pending"),  # pending | counted | dropped
    UniqueConstraint("run_id", "image_id", name="uq_pending_predictions_run_id_image_id"),
)

# The evidence that a fingerprint is claimed by more than one behaviour: one row per image on which
# an endpoint's answer disagreed with another answer of that fingerprint. A model with an
# unresolved row is *conflicting*: every view says so, compare and gate refuse it.
claim_conflicts = Table(
    "claim_conflicts", metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False, index=True),
    Column("url", String(2000), nullable=False),  # the endpoint whose answer disagreed
    Column("run_id", Integer, ForeignKey("runs.id")),  # NULL: a run that only checked (nothing to collect)
    Column("image_id", Integer, ForeignKey("images.id"), nullable=False),
    Column("other", String(2000), nullable=False),  # what it disagreed with: stored answers, a URL, itself
    Column("expected", JSON, nullable=False),  # {label, scores} of the other answer
    Column("answered", JSON, nullable=False),  # {label, scores} of this endpoint's
    Column("found_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", Text),
)
