"""Alembic's entry point for the catalog's tables (recorder.db.schema runs it; no alembic.ini).

At start-up the caller's open connection comes in `config.attributes["connection"]`, so the
migration runs inside the caller's transaction and lock. `alembic_config(url)` instead names a
database by URL, for generating a new revision against it.
"""

from __future__ import annotations

from alembic import context

from recorder.db.engine import make_engine
from recorder.db.schema import METADATA, VERSION_TABLE, include_name


def _run(conn) -> None:
    context.configure(
        connection=conn,
        target_metadata=list(METADATA),
        include_name=include_name,
        version_table=VERSION_TABLE,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported: run against a database")
_conn = context.config.attributes.get("connection")
if _conn is not None:
    _run(_conn)
else:
    _engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with _engine.begin() as _c:
            _run(_c)
    finally:
        _engine.dispose()
