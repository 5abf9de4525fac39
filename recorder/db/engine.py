"""The one place a database engine is made, and the one way driver errors leave this package.

Every user of the catalog database (web processes, the manager, workers, the CLI) gets its engine
from `make_engine`, so SQLite is set up the same way everywhere: WAL so readers never block the
writer, a busy timeout so short write bursts from several processes wait instead of failing, and
foreign keys on so deleting a run deletes its streams, tags and notes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from recorder.errors import StoreError


def make_engine(url: str) -> sa.Engine:
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use catalog {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        db = sqlite_file(engine)
        if db is not None:
            from recorder.db import backup

            backup.watch(engine, db)
    return engine


def sqlite_file(engine_or_url: sa.Engine | str) -> Path | None:
    """The database file of an SQLite catalog; None for an in-memory one or another database."""
    url = engine_or_url.url if isinstance(engine_or_url, sa.Engine) else sa.make_url(engine_or_url)
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def error_text(exc: BaseException) -> str:
    """A driver error on one line: the driver's own message, without SQLAlchemy's SQL echo and
    "Background on this error" link (a CLI error is one line)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else exc.__class__.__name__}"


#: SQLite's result codes for a file that is not (or no longer) a sound database.
_SQLITE_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_DAMAGE_TEXT = ("file is not a database", "database disk image is malformed")


def is_damage(exc: BaseException) -> bool:
    """Whether a driver error says the SQLite file itself is damaged, as opposed to a catalog
    that is locked, unreadable or on a failing disk (which moving it aside would not mend)."""
    orig = getattr(exc, "orig", None) or exc
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_DAMAGE_CODES
    return any(text in str(orig) for text in _SQLITE_DAMAGE_TEXT)


#: Said with every error that `recorder reindex` mends.
REINDEX_HINT = "run `recorder reindex` to rebuild it"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_tables(meta: sa.MetaData, engine: sa.Engine, tries: int = 5) -> None:
    """create_all, safe when several processes (gunicorn workers, the manager) open a fresh
    catalog at once: checking and creating are not one step, so a process can lose the race
    with "table ... already exists"; the next try finds the table and goes on."""
    for attempt in range(tries):
        try:
            meta.create_all(engine)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            if "already exists" not in str(exc) or attempt == tries - 1:
                raise


@contextlib.contextmanager
def guard_db_errors() -> Iterator[None]:
    """Driver errors (locked, disk full, server gone) surface as StoreError with the cause, so
    callers handle one exception whatever the database. A context manager that also works as a
    decorator: `@guard_db_errors()` on a method, `with guard_db_errors():` around a block."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"catalog: {error_text(exc)}") from exc


class Queries:
    """Base of the query classes (Catalog, Sources, Jobs, Managers, Tokens): SQL on one engine.

    Every public method of a subclass is decorated with `@guard_db_errors()`, so it raises
    StoreError (never a driver error) when the database fails.
    """

    def __init__(self, engine: sa.Engine, *, own: bool = False):
        self.engine = engine
        self._own_engine = own

    def close(self) -> None:
        """Close the engine's connections if this object made the engine."""
        if self._own_engine:
            self.engine.dispose()


def row_dict(r: sa.Row) -> dict:
    return dict(r._mapping)
