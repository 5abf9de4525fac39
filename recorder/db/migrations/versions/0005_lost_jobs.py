"""Jobs of a host that stopped beating: when they were given up, until their host repairs them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

With several hosts on one catalog, a live manager marks the running jobs of a host whose
manager stopped beating as failed and sets `jobs.lost_ns`; that host's manager, when it comes
back, repairs and indexes their runs and clears it (recorder/manager/manager.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lost_ns", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lost_ns")
