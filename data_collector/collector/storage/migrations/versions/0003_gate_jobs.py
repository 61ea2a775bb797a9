"""Gate jobs live in the database: a restart of the gate service resumes them and still answers
for every job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gate_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("baseline", sa.String(2000)),
        sa.Column("candidate", sa.String(2000), nullable=False),
        sa.Column("candidate_fingerprint", sa.String(64)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("verdict", sa.String(20)),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(300)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_gate_jobs"),
    )
    op.create_index("ix_gate_jobs_key", "gate_jobs", ["key"])


def downgrade() -> None:
    op.drop_index("ix_gate_jobs_key", table_name="gate_jobs")
    op.drop_table("gate_jobs")
