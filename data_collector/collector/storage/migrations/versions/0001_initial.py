"""Initial schema: models, model_urls, images, runs, predictions, failures and two views.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

# The views as of this revision, frozen here: a later revision that changes them restates them.
VIEWS = {
    "v_class_accuracy": """
        SELECT m.name AS model, m.version AS version, m.fingerprint AS fingerprint, i.label AS label,
               COUNT(*) AS n,
               SUM(CASE WHEN p.predicted_label = i.label THEN 1 ELSE 0 END) AS correct,
               ROUND(CAST(AVG(CASE WHEN p.predicted_label = i.label THEN 1.0 ELSE 0.0 END) AS NUMERIC), 4)
                   AS accuracy
        FROM predictions p
        JOIN models m ON m.id = p.model_id
        JOIN images i ON i.id = p.image_id
        WHERE i.kind <> 'lookalike'
        GROUP BY m.name, m.version, m.fingerprint, i.label
    """,
    "v_confusion": """
        SELECT m.name AS model, m.fingerprint AS fingerprint, i.label AS label, i.kind AS kind,
               p.predicted_label AS predicted_label, COUNT(*) AS n
        FROM predictions p
        JOIN models m ON m.id = p.model_id
        JOIN images i ON i.id = p.image_id
        GROUP BY m.name, m.fingerprint, i.label, i.kind, p.predicted_label
    """,
}


def upgrade() -> None:
    _identity_tables()
    _run_tables()
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def _identity_tables() -> None:
    """What is evaluated: models (by fingerprint), the URLs they were seen at, images (by sha256)."""
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("fingerprint", name="uq_models_fingerprint"),
    )
    op.create_table(
        "model_urls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_urls"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_model_urls_model_id_models"),
        sa.UniqueConstraint("model_id", "url", name="uq_model_urls_model_id_url"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("sha256", name="uq_images_sha256"),
    )


def _run_tables() -> None:
    """What happened: runs, the predictions they stored and the images that failed."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("n_planned", sa.Integer, nullable=False),
        sa.Column("n_sent", sa.Integer, nullable=False),
        sa.Column("n_failed", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("collector_version", sa.String(50), nullable=False),
        sa.Column("test_set_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_runs_model_id_models"),
    )
    op.create_index("ix_runs_model_id", "runs", ["model_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("image_id", sa.Integer, nullable=False),
        sa.Column("predicted_label", sa.String(200), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_predictions_run_id_runs"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_predictions_model_id_models"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_predictions_image_id_images"),
        sa.UniqueConstraint("model_id", "image_id", name="uq_predictions_model_id_image_id"),
    )
    op.create_index("ix_predictions_run_id", "predictions", ["run_id"])
    op.create_index("ix_predictions_image_id", "predictions", ["image_id"])
    op.create_table(
        "failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_failures"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_failures_run_id_runs"),
    )
    op.create_index("ix_failures_run_id", "failures", ["run_id"])


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for table in ("failures", "predictions", "runs", "images", "model_urls", "models"):
        op.drop_table(table)
