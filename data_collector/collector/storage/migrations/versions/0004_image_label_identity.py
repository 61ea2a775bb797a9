"""An image is its bytes and its label: relabelling an image (same bytes, a new label) stores a new
image row instead of being ignored, and the predictions made under the old label keep it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _views() -> dict[str, str]:
    """The views of revision 0001, unchanged: dropped while SQLite rebuilds the table they read."""
    spec = importlib.util.spec_from_file_location("_rev_0001", Path(__file__).with_name("0001_initial.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VIEWS


def _rebuild_images(alter) -> None:
    views = _views()
    if op.get_bind().dialect.name == "sqlite":  # SQLite runs DDL outside the transaction: an attempt
        op.execute("DROP TABLE IF EXISTS _alembic_tmp_images")  # that failed may have left its copy
    for name in views:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("images") as batch:
        alter(batch)
    for name, sql in views.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def upgrade() -> None:
    def alter(batch):
        batch.drop_constraint("uq_images_sha256", type_="unique")
        batch.create_unique_constraint("uq_images_sha256_label", ["sha256", "label"])
        batch.create_index("ix_images_sha256", ["sha256"])

    _rebuild_images(alter)


def downgrade() -> None:
    def alter(batch):
        batch.drop_index("ix_images_sha256")
        batch.drop_constraint("uq_images_sha256_label", type_="unique")
        batch.create_unique_constraint("uq_images_sha256", ["sha256"])

    _rebuild_images(alter)
