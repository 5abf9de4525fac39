"""Commands that carry text, and what a manager tells about its host.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A recording takes commands while it runs (trigger, pause, resume, split, marker): a marker
carries its text in `job_commands.text`. A manager reports its host (disks, free bytes) in
`managers.info`, so one UI shows every host of a shared catalog.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_commands") as batch:
        batch.add_column(sa.Column("text", sa.Text))
    with op.batch_alter_table("managers") as batch:
        batch.add_column(sa.Column("info", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("managers") as batch:
        batch.drop_column("info")
    with op.batch_alter_table("job_commands") as batch:
        batch.drop_column("text")
