"""The control tables as they were before they were versioned.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

A catalog made by an older recorder has exactly these tables and is stamped with this revision
instead of running it (recorder/db/schema.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("host", sa.String(256)),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("desired", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("manager", sa.String(320)),
        sa.Column("pid", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("stats", sa.JSON),
        sa.Column("proc", sa.JSON),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("started_ns", sa.BigInteger),
        sa.Column("ended_ns", sa.BigInteger),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("stop_requested_ns", sa.BigInteger),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("arg", sa.Float, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_job_commands_job_id", "job_commands", ["job_id"])
    op.create_table(
        "managers",
        sa.Column("id", sa.String(320), primary_key=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("started_ns", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_used_ns", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("tokens", "managers", "job_commands", "jobs", "sources"):
        op.drop_table(table)
