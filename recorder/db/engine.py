"""The one place a database engine is made, and the one way driver errors leave this package.

Every user of the catalog database (web processes, the manager, workers, the CLI) gets its engine
from `make_engine`, so SQLite is set up the same way everywhere: WAL so readers never block the
writer, a busy timeout so short write bursts from several processes wait instead of failing, and
foreign keys on so deleting a run deletes its streams, tags and notes.

A server database (PostgreSQL) gets a connection pool sized for one process of the recorder (a
gunicorn worker's threads, the manager's loop, a worker's two readers), every connection checked
as it leaves the pool (`pool_pre_ping`: a connection cut by a server restart or a firewall is
replaced, never handed out) and recycled after half an hour, and a connect timeout, so a
database that does not answer is an error within seconds rather than a hang.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from recorder.errors import StoreError

#: Connections each process keeps open to a server database, and how many more it may open at
#: a peak (environment: RECORDER_DB_POOL_SIZE, RECORDER_DB_MAX_OVERFLOW). The defaults cover a
#: gunicorn worker's 8 threads with room to spare; the server must allow (pool size + overflow)
#: times the number of processes (web workers, managers, recording and replay workers).
POOL_SIZE_ENV, MAX_OVERFLOW_ENV = "RECORDER_DB_POOL_SIZE", "RECORDER_DB_MAX_OVERFLOW"
POOL_SIZE, MAX_OVERFLOW = 8, 8
#: Seconds to wait for a free pooled connection, for the server to answer a connect, and after
#: which a pooled connection is replaced (idle connections are cut by firewalls and proxies).
POOL_TIMEOUT_S, CONNECT_TIMEOUT_S, POOL_RECYCLE_S = 30, 10, 1800


def make_engine(url: str) -> sa.Engine:
    try:
        engine = sa.create_engine(url, **_server_options(sa.make_url(url)))
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use catalog {shown_url(url)!r}: {one_line(exc)}") from exc
    if engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        db = sqlite_file(engine)
        if db is not None:
            from recorder.db import backup

            backup.watch(engine, db)
    return engine


def _server_options(url: sa.URL) -> dict:
    """Pool and connect settings for a server database; SQLAlchemy's defaults for SQLite."""
    if url.get_backend_name() == "sqlite":
        return {}
    options: dict = {
        "pool_pre_ping": True,
        "pool_size": _env_int(POOL_SIZE_ENV, POOL_SIZE),
        "max_overflow": _env_int(MAX_OVERFLOW_ENV, MAX_OVERFLOW),
        "pool_timeout": POOL_TIMEOUT_S,
        "pool_recycle": POOL_RECYCLE_S,
    }
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return options


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise StoreError(f"{name}={text!r} is not a whole number") from None
    if value < 0:
        raise StoreError(f"{name}={text!r} must be 0 or more")
    return value


def shown_url(url: str) -> str:
    """A catalog URL fit for a message or a log: its password masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return url if "@" not in url else "<catalog URL>"


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


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


def is_transient(exc: BaseException) -> bool:
    """Whether a StoreError may go away by itself, so the write is worth trying again: the
    server unreachable or restarting, the connection cut, SQLite locked by another writer. Not:
    a missing table, a refused value, a damaged file."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if not isinstance(cause, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    if isinstance(cause.orig, sqlite3.Error):
        return any(word in str(cause.orig) for word in ("locked", "busy"))
    return True


#: Said with every error that `recorder reindex` mends.
REINDEX_HINT = "run `recorder reindex` to rebuild it"


#: What a NUL character in text becomes on a database that refuses it (PostgreSQL).
NUL_STANDIN = "\ufffd"


def _without_nul(_conn, _cursor, statement, parameters, _context, executemany):
    """PostgreSQL refuses text holding a NUL character, which SQLite stores; a note, a name or
    an error message may hold one (they come from users and from the wire). Such text is
    written and searched for with U+FFFD in its place, so a write never fails on it and a
    search for the same text still finds it."""
    if executemany:
        return statement, [_clean(p) for p in parameters]
    return statement, _clean(parameters)


def _clean(params):
    if isinstance(params, dict):
        if any(isinstance(v, str) and "\x00" in v for v in params.values()):
            return {k: _clean_text(v) for k, v in params.items()}
        return params
    if isinstance(params, (list, tuple)) and any(
        isinstance(v, str) and "\x00" in v for v in params
    ):
        return type(params)(_clean_text(v) for v in params)
    return params


def _clean_text(value):
    return value.replace("\x00", NUL_STANDIN) if isinstance(value, str) else value


def fit(table: sa.Table, values: dict) -> dict:
    """A row for the run index, cut to its VARCHAR columns' lengths: PostgreSQL refuses longer
    text (SQLite keeps it), and the index is a copy of the stores, which keep the whole text."""
    out = dict(values)
    for key, value in values.items():
        length = getattr(table.c[key].type, "length", None) if key in table.c else None
        if length and isinstance(value, str) and len(value) > length:
            out[key] = value[:length]
    return out


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@contextlib.contextmanager
def guard_db_errors() -> Iterator[None]:
    """Driver errors (locked, disk full, server gone) surface as StoreError with the cause, so
    callers handle one exception whatever the database. A context manager that also works as a
    decorator: `@guard_db_errors()` on a method, `with guard_db_errors():` around a block."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"catalog: {error_text(exc)}") from exc


#: The advisory lock space of `serialize` (the migration lock uses the one-key space).
_ROW_LOCKS = 0x7265


def serialize(conn: sa.Connection, key: str) -> None:
    """Make the transactions that replace the same rows (delete, then insert) take turns, until
    this one ends. PostgreSQL lets two run at once (READ COMMITTED): both delete, neither sees
    the other's new row, and the second insert fails on the primary key; SQLite runs one writer
    at a time anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
            {"space": _ROW_LOCKS, "key": key},
        )


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
