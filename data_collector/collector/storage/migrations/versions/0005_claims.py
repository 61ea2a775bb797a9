"""A declared fingerprint is a claim: answers of an endpoint not verified yet are kept apart
(pending_predictions), and disagreements are stored as evidence (claim_conflicts).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("predicted_label", sa.String(200), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_pending_predictions_run_id_runs"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_pending_predictions_model_id_models"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_pending_predictions_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_pending_predictions"),
        sa.UniqueConstraint("run_id", "image_id", name="uq_pending_predictions_run_id_image_id"),
    )
    op.create_index("ix_pending_predictions_model_id", "pending_predictions", ["model_id"])
    op.create_table(
        "claim_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("other", sa.String(2000), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=False),
        sa.Column("answered", sa.JSON(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.Text()),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_claim_conflicts_model_id_models"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_claim_conflicts_run_id_runs"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_claim_conflicts_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_claim_conflicts"),
    )
    op.create_index("ix_claim_conflicts_model_id", "claim_conflicts", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_claim_conflicts_model_id", table_name="claim_conflicts")
    op.drop_table("claim_conflicts")
    op.drop_index("ix_pending_predictions_model_id", table_name="pending_predictions")
    op.drop_table("pending_predictions")
