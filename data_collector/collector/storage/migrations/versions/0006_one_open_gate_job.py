"""One open gate job per request: a partial unique index over the open (queued or running) jobs of
each key, the deploy hook's apart. Open duplicates left by earlier versions are closed first (the
oldest of each key stays).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = "state IN ('queued', 'running') AND kind <> 'hook'"


def upgrade() -> None:
    op.execute(
        "UPDATE gate_jobs SET state = 'failed', error = 'closed as a duplicate of an open job of the same request' "
        "WHERE state IN ('queued', 'running') AND kind <> 'hook' AND EXISTS (SELECT 1 FROM gate_jobs g2 "
        "WHERE g2.key = gate_jobs.key AND g2.state IN ('queued', 'running') AND g2.kind <> 'hook' "
        "AND (g2.submitted_at < gate_jobs.submitted_at "
        "OR (g2.submitted_at = gate_jobs.submitted_at AND g2.id < gate_jobs.id)))")
    op.create_index("uq_gate_jobs_open_key", "gate_jobs", ["key"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index("uq_gate_jobs_open_key", table_name="gate_jobs")
