"""The run index under version control too: runs, streams, tags, notes, sessions, session_runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Until now these tables were made by `create_all` when a process opened the catalog, outside the
migration lock: two processes opening a new PostgreSQL catalog at once could collide, and a
change to them had no way to reach a catalog that exists. Each is created here if it is absent;
a catalog that has them (every catalog made so far has runs, streams, tags and notes, newer ones
the sessions tables too) keeps them and their rows as they are: their shape never changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _run_id() -> sa.Column:
    return sa.Column(
        "run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "runs" not in present:
        op.create_table(
            "runs",
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(256), nullable=False),
            sa.Column("path", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("format_version", sa.Integer),
            sa.Column("host", sa.String(256)),
            sa.Column("pid", sa.Integer),
            sa.Column("started_ns", sa.BigInteger, nullable=False),
            sa.Column("ended_ns", sa.BigInteger),
            sa.Column("messages", sa.BigInteger, nullable=False),
            sa.Column("bytes", sa.BigInteger, nullable=False),
            sa.Column("gaps", sa.BigInteger, nullable=False),
            sa.Column("drops", sa.BigInteger, nullable=False),
            sa.Column("rejects", sa.BigInteger, nullable=False),
            sa.Column("protocols", sa.String(256), nullable=False),
        )
    if "streams" not in present:
        op.create_table(
            "streams",
            _run_id(),
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("protocol", sa.String(32), nullable=False),
            sa.Column("endpoint", sa.Text, nullable=False),
            sa.Column("socket_type", sa.String(8), nullable=False),
            sa.Column("role", sa.String(8), nullable=False),
            sa.Column("messages", sa.BigInteger, nullable=False),
            sa.Column("bytes", sa.BigInteger, nullable=False),
            sa.Column("gaps", sa.BigInteger, nullable=False),
            sa.Column("drops", sa.BigInteger, nullable=False),
            sa.Column("rejects", sa.BigInteger, nullable=False),
        )
    if "tags" not in present:
        op.create_table(
            "tags",
            _run_id(),
            sa.Column("tag", sa.String(64), primary_key=True),
        )
    if "notes" not in present:
        op.create_table(
            "notes",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column(
                "run_id",
                sa.String(64),
                sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("created_ns", sa.BigInteger, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
        )
    if "sessions" not in present:
        op.create_table(
            "sessions",
            sa.Column("session_id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(256), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("experimenters", sa.JSON, nullable=False),
            sa.Column("subject", sa.JSON, nullable=False),
            sa.Column("template", sa.String(256)),
            sa.Column("started_ns", sa.BigInteger, nullable=False),
            sa.Column("ended_ns", sa.BigInteger),
            sa.Column("tags", sa.JSON, nullable=False),
            sa.Column("notes", sa.JSON, nullable=False),
            sa.Column("meta", sa.JSON, nullable=False),
            sa.Column("updated_ns", sa.BigInteger, nullable=False),
            sa.Column("search", sa.Text, nullable=False),
        )
    if "session_runs" not in present:
        op.create_table(
            "session_runs",
            _run_id(),
            sa.Column("session_id", sa.String(64), nullable=False),
        )
        op.create_index("ix_session_runs_session_id", "session_runs", ["session_id"])


def downgrade() -> None:
    """Nothing: before this revision the same tables were made by `create_all`, so a catalog
    taken back to 0003 keeps them (and the run index they hold)."""
