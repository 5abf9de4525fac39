"""Bringing a catalog database's schema up to date when a process opens it.

Every table is versioned with Alembic: the migration scripts ship in the package
(recorder/db/migrations) and run here, with a Config built in code (no alembic.ini). The control
tables (sources, jobs, tokens...) hold what exists nowhere else; the run index (runs, streams,
tags, notes, sessions) can be rebuilt by `recorder reindex`, but a server database shared by
several hosts must still never be rebuilt to change its shape, so it is migrated the same way
(revision 0004 took it over, keeping the tables that `create_all` had made). A catalog made
before any table was versioned (the control tables present, no `alembic_version`) is recognised
and stamped with the first revision, whose tables are exactly those, then upgraded.

Opening a catalog that is up to date costs two small queries and never imports Alembic, so a
worker process starts as fast as before. Several processes may open a fresh catalog at once
(gunicorn workers, the manager, its workers, the managers of other hosts): one migrates while
the others wait, on a lock file beside an SQLite database or a transaction-scoped advisory lock
in PostgreSQL (whose DDL is transactional: a migration that fails leaves nothing half done), then
find it done. The one that creates the control tables from nothing also restores the JSON copy
kept beside an SQLite catalog (backup.py), in the same transaction, so a deleted catalog comes
back with its sources, tokens and jobs whichever command opens it first.

To write a new migration: change recorder/db/tables.py, then generate the script against a
catalog at the current head and review it, e.g.

    from alembic import command
    from recorder.db.schema import alembic_config
    command.revision(alembic_config("sqlite:////tmp/x.sqlite"), "what changed", autogenerate=True)

and set HEAD below to the new revision. tests/db checks both, and that the tables and the
migrations agree (`command.check`, what `alembic check` runs), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from recorder.db import backup
from recorder.db.engine import REINDEX_HINT, error_text, is_damage, make_engine, sqlite_file
from recorder.db.tables import control_metadata, index_metadata
from recorder.errors import StoreError

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
#: The newest revision in migrations/versions.
HEAD = "0006"
#: The revision whose tables are exactly what `create_all` made before migrations existed.
UNVERSIONED = "0001"
#: Its tables (later revisions add more, which such a catalog cannot have).
UNVERSIONED_TABLES = frozenset({"sources", "jobs", "job_commands", "managers", "tokens"})
VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = 0x7265636F7264  # "record": one advisory lock for every recorder migrating
_ready: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
#: What was restored from the JSON copy into a catalog an engine found new (backup.py).
restored: weakref.WeakKeyDictionary[sa.Engine, dict[str, int] | None] = weakref.WeakKeyDictionary()


def ready_engine(engine_or_url: sa.Engine | str) -> sa.Engine:
    """An engine on the catalog database (made from a URL, or shared), its schema up to date.
    The schema is checked once per engine, however many query objects share it."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    if engine not in _ready:
        prepare_schema(engine)
        _ready.add(engine)
    return engine


def prepare_schema(engine: sa.Engine) -> None:
    """Bring every table to HEAD."""
    try:
        upgrade_tables(engine)
    except sa.exc.SQLAlchemyError as exc:
        hint = f" ({REINDEX_HINT})" if is_damage(exc) else ""
        raise StoreError(f"cannot open catalog: {error_text(exc)}{hint}") from exc


def upgrade_tables(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        if revision(conn) == HEAD:
            return
    from alembic import command
    from alembic.util.exc import CommandError

    not_restored: StoreError | None = None
    with _one_migrator(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = alembic_config()
        config.attributes["connection"] = conn
        current = revision(conn)
        fresh = False
        try:
            if current is None:
                fresh = not _unversioned_tables(conn)
                if not fresh:
                    command.stamp(config, UNVERSIONED)
            command.upgrade(config, "head")
        except CommandError as exc:
            raise StoreError(
                f"cannot migrate the catalog from revision {current!r} "
                f"(is it from a newer recorder?): {exc}"
            ) from exc
        db = sqlite_file(engine)
        if fresh and db is not None:
            try:
                restored[engine] = backup.restore_fresh(conn, db)
            except StoreError as exc:  # said once the new tables are committed
                not_restored = exc
    if not_restored is not None:
        raise not_restored


def revision(conn: sa.Connection) -> str | None:
    """The catalog's schema revision; None when it is not versioned (yet)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _unversioned_tables(conn: sa.Connection) -> bool:
    """Whether the control tables exist without a version: all of them (stamp), none (fresh),
    anything else is refused rather than guessed."""
    found = set(control_metadata.tables) & set(sa.inspect(conn).get_table_names())
    if found and found != UNVERSIONED_TABLES:
        missing = ", ".join(sorted(UNVERSIONED_TABLES - found))
        raise StoreError(f"the catalog has some control tables but not {missing}, and no version")
    return bool(found)


def alembic_config(url: str | None = None):
    """Alembic's configuration, in code. With a URL, the migrations' env.py opens it itself
    (for `command.revision`); at start-up the open connection is passed in `attributes`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


#: What the migrations make, as tables.py describes it.
METADATA = (control_metadata, index_metadata)


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """What Alembic compares: the recorder's tables, nothing else a shared database may hold."""
    return type_ != "table" or any(name in m.tables for m in METADATA)


@contextlib.contextmanager
def _one_migrator(engine: sa.Engine) -> Iterator[None]:
    """SQLite cannot make its DDL one transaction with the version check, so processes take
    turns on a lock file beside the database file."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:" or db.startswith("file:"):
        yield
        return
    with open(f"{db}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
