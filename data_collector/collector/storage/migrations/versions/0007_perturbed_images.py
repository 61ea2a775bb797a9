"""Perturbed copies of test images (the robustness suite): each links to its source image and names
its perturbation; v_class_accuracy leaves them out, as it leaves out lookalike probes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _views_0001() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("_rev_0001", Path(__file__).with_name("0001_initial.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VIEWS


def _views() -> dict[str, str]:
    """The views as of this revision."""
    views = dict(_views_0001())
    views["v_class_accuracy"] = views["v_class_accuracy"].replace(
        "WHERE i.kind <> 'lookalike'", "WHERE i.kind NOT IN ('lookalike', 'perturbed')")
    return views


def _recreate(views: dict[str, str]) -> None:
    for name, sql in views.items():
        op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute(f"CREATE VIEW {name} AS {sql}")


def upgrade() -> None:
    op.add_column("images", sa.Column("source_sha256", sa.String(64), nullable=True))
    op.add_column("images", sa.Column("perturbation", sa.String(100), nullable=True))
    _recreate(_views())


def downgrade() -> None:
    views = _views_0001()
    for name in views:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS _alembic_tmp_images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("perturbation")
        batch.drop_column("source_sha256")
    _recreate(views)
