"""Browser sessions of their own, and tokens that may expire.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Until now the sign-in cookie was the API token itself, so signing out invalidated nothing.
A session is now a row of its own (only a hash of its secret stored), revoked on sign-out and
with its token; a token may have an expiry time (NULL: never, what every existing token keeps).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("expires_ns", sa.BigInteger))
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("token_id", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("idle_ns", sa.BigInteger, nullable=False),
        sa.Column("expires_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_browser_sessions_token_id", "browser_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_table("browser_sessions")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("expires_ns")
