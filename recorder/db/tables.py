"""The catalog database's tables, in two groups that age differently.

The run index (`index_metadata`: runs, streams, tags, notes, sessions and which runs are in
them) is a copy of what the run stores hold, so `recorder reindex` can always rebuild it. The
control tables (`control_metadata`: sources, jobs, job_commands, managers, tokens, browser
sessions) hold what exists nowhere else (saved sources, job history, API tokens). Both are
versioned with Alembic (recorder/db/migrations): a change to either here needs a migration, and
tests/db checks that the two agree, on SQLite and on PostgreSQL.

Columns are portable SQL: ids and times are BIGINT, JSON is SQLAlchemy's JSON (json on
PostgreSQL), text that may be long is TEXT, and a VARCHAR's length is a limit PostgreSQL
enforces (SQLite does not), so what fills one is bounded before it gets here (recorder/limits.py).
"""

from __future__ import annotations

import sqlalchemy as sa

index_metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    index_metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, default=""),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("format_version", sa.Integer),
    sa.Column("host", sa.String(256)),
    sa.Column("pid", sa.Integer),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("ended_ns", sa.BigInteger),
    sa.Column("messages", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("gaps", sa.BigInteger, nullable=False, default=0),
    sa.Column("drops", sa.BigInteger, nullable=False, default=0),
    sa.Column("rejects", sa.BigInteger, nullable=False, default=0),
    sa.Column("protocols", sa.String(256), nullable=False, default=""),
    # the runs list's orders (catalog.SORT_KEYS), each with the newest-first tie-break: a page
    # of 10,000 runs is read off an index, not sorted whole (revision 0006)
    sa.Index("ix_runs_started", "started_ns", "run_id"),
    sa.Index("ix_runs_name", "name", "started_ns", "run_id"),
    sa.Index("ix_runs_bytes", "bytes", "started_ns", "run_id"),
    sa.Index("ix_runs_messages", "messages", "started_ns", "run_id"),
)
streams = sa.Table(
    "streams",
    index_metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("protocol", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("socket_type", sa.String(8), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("messages", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("gaps", sa.BigInteger, nullable=False, default=0),
    sa.Column("drops", sa.BigInteger, nullable=False, default=0),
    sa.Column("rejects", sa.BigInteger, nullable=False, default=0),
)
tags = sa.Table(
    "tags",
    index_metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
)
notes = sa.Table(
    "notes",
    index_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

sessions = sa.Table(
    "sessions",
    index_metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("experimenters", sa.JSON, nullable=False),
    sa.Column("subject", sa.JSON, nullable=False),
    sa.Column("template", sa.String(256)),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("ended_ns", sa.BigInteger),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("notes", sa.JSON, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
    sa.Column("search", sa.Text, nullable=False, default=""),  # lower-cased text for `q`
)
session_runs = sa.Table(
    "session_runs",
    index_metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("session_id", sa.String(64), nullable=False, index=True),
)

control_metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    control_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
)
jobs = sa.Table(
    "jobs",
    control_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # KIND_RECORD or KIND_REPLAY
    sa.Column("host", sa.String(256)),  # the host that must run it; NULL: any manager
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("manager", sa.String(320)),  # id of the manager that claimed it
    sa.Column("pid", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("exit_code", sa.Integer),
    sa.Column("stats", sa.JSON),  # written by the worker
    sa.Column("proc", sa.JSON),  # written by the manager: cpu, memory of the worker process
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("started_ns", sa.BigInteger),
    sa.Column("ended_ns", sa.BigInteger),
    sa.Column("updated_ns", sa.BigInteger, nullable=False),
    sa.Column("stop_requested_ns", sa.BigInteger),
    # its host stopped beating and it was failed; NULL again once that host repaired its runs
    sa.Column("lost_ns", sa.BigInteger),  # revision 0005
    sa.Index("ix_jobs_state", "state"),
)
commands = sa.Table(
    "job_commands",
    control_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("arg", sa.Float, nullable=False),
    sa.Column("text", sa.Text),  # a marker's text (revision 0003)
    sa.Column("created_ns", sa.BigInteger, nullable=False),
)
managers = sa.Table(
    "managers",
    control_metadata,
    sa.Column("id", sa.String(320), primary_key=True),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("started_ns", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_ns", sa.BigInteger, nullable=False),
    sa.Column("info", sa.JSON),  # the host's disks and free bytes (revision 0003)
)
tokens = sa.Table(
    "tokens",
    control_metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),  # tokens.NAME_MAX
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("last_used_ns", sa.BigInteger),
    sa.Column("expires_ns", sa.BigInteger),  # NULL: never (revision 0002)
)
browser_sessions = sa.Table(
    "browser_sessions",
    control_metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("token_id", sa.String(16), nullable=False, index=True),  # signed in with it
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
    sa.Column("idle_ns", sa.BigInteger, nullable=False),  # ends this long after last_seen_ns
    sa.Column("expires_ns", sa.BigInteger, nullable=False),  # ends then, however active
)
