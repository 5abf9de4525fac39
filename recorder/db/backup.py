"""A JSON copy of the catalog rows that exist nowhere else, beside an SQLite catalog.

The run index can be rebuilt from the stores, but saved sources, API tokens and job history
cannot: a damaged `catalog.sqlite` would lose them. So every engine on an SQLite file keeps
`<catalog>-control.json` (catalog-control.json beside catalog.sqlite) up to date. A catalog
whose control tables are created from nothing (its file deleted or moved aside) gets the copy's
rows back right there, in the creating transaction (schema.py), before any command writes to it;
`recorder reindex` also restores it into an empty catalog. A copy with rows is never replaced
by the copy of a catalog that lacks them: one that cannot be restored is renamed `.bad-<time>`,
one that is not restored `.prev-<time>`.

Keeping it cheap: the copy is rewritten when a transaction that changed what it holds commits,
and only then: any change to sources, a token created or revoked (not the `last_used_ns` every
request touches), a job created, ended or deleted (not the counters a running job publishes every
second), and of the job history only the most recent JOBS_ENDED_KEPT ended jobs (write_copy).
It is written inside the committing transaction, so SQLite's write lock orders the
copies of several processes as it orders their commits, and atomically (a temporary file, then
rename), so a reader never sees half of one. Token hashes are in it: it is readable by the owner
only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from recorder.db.engine import error_text
from recorder.errors import StoreError

log = logging.getLogger("recorder.db")

#: The control tables copied, and restored in this order.
COPIED = ("sources", "tokens", "jobs")
FORMAT = 1
#: Ended jobs kept in the copy, the most recent first (every active job is kept).
JOBS_ENDED_KEPT = 1000
_DIRTY = "recorder.control_copy_dirty"
_WRITE = re.compile(r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?(.*)$', re.I | re.S)


def copy_path(db: Path) -> Path:
    """Where the copy of the catalog file `db` lives."""
    return db.with_name(f"{db.stem}-control.json")


def watch(engine: sa.Engine, db: Path) -> None:
    """Keep the copy of `db`'s control rows up to date through this engine's commits."""
    path = copy_path(db)

    def note(conn, _cursor, statement, _params, _context, _many) -> None:
        if changes_copy(statement):
            conn.info[_DIRTY] = True

    def write(conn) -> None:
        if conn.info.pop(_DIRTY, False):
            try:
                write_copy(conn.connection.dbapi_connection, path)
            except Exception as exc:  # a copy that cannot be written must not fail the commit
                log.warning("cannot update %s: %s", path, exc)

    event.listen(engine, "after_cursor_execute", note)
    event.listen(engine, "commit", write)
    event.listen(engine, "rollback", lambda conn: conn.info.pop(_DIRTY, None))


def changes_copy(statement: str) -> bool:
    """Whether an SQL statement changes what the copy holds (see the module docstring)."""
    m = _WRITE.match(statement)
    if m is None:
        return False
    verb, table, rest = m.group(1).split()[0].upper(), m.group(2).lower(), m.group(3)
    if table not in COPIED:
        return False
    if verb != "UPDATE" or table == "sources":
        return True
    set_part = re.split(r"\bWHERE\b", rest, maxsplit=1, flags=re.I)[0].replace("SET", "", 1)
    columns = {c.split("=")[0].strip().strip('"') for c in set_part.split(",")}
    if table == "tokens":
        return columns != {"last_used_ns"}
    return "ended_ns" in columns  # jobs: one ended


def write_copy(dbapi_conn, path: Path) -> None:
    """Dump the copied tables as stored (JSON columns stay text) through a DBAPI connection
    (inside the committing transaction: no SQLAlchemy events, no second connection).

    All sources and tokens are kept, but of the jobs only the active ones and the
    `JOBS_ENDED_KEPT` that ended last: the copy is written while SQLite's write lock is held, so
    its cost must not grow with the job history (older jobs are lost with a damaged catalog)."""
    cur = dbapi_conn.cursor()
    tables = {}
    try:
        for t in COPIED:
            cur.execute(*_dump_query(t))
            cols = [d[0] for d in cur.description]
            tables[t] = {"columns": cols, "rows": [list(r) for r in cur.fetchall()]}
    finally:
        cur.close()
    body = json.dumps({"format": FORMAT, "written_ns": time.time_ns(), "tables": tables})
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _dump_query(table: str) -> tuple[str, tuple]:
    if table != "jobs":
        return f"SELECT * FROM {table}", ()
    from recorder.db.jobs import ACTIVE_STATES

    marks = ", ".join("?" for _ in ACTIVE_STATES)
    return (
        f"SELECT * FROM jobs WHERE state IN ({marks}) UNION ALL "
        f"SELECT * FROM (SELECT * FROM jobs WHERE state NOT IN ({marks}) "
        f"ORDER BY ended_ns DESC, created_ns DESC LIMIT {JOBS_ENDED_KEPT})",
        (*ACTIVE_STATES, *ACTIVE_STATES),
    )


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: it lives in the folder's entries, not in the file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(target: sa.Engine | sa.Connection, path: Path) -> dict[str, int] | None:
    """Put the copy's rows back into a catalog whose copied tables are all empty (a new one);
    rows per table, or None when there is nothing to restore or the catalog has rows already.
    Jobs that were still active when copied are marked failed: their workers went with the old
    catalog, and a pending one must not start now.

    A copy that cannot be restored (damaged, from another program or format, rows the tables
    refuse) is moved aside to `<copy>.bad-<time>`, so no later write replaces it, and a
    StoreError says so. On a connection the rows go into its transaction, in a savepoint."""
    if not path.is_file():
        return None
    try:
        saved = read_copy(path)
        if isinstance(target, sa.Connection):
            with target.begin_nested():
                return _insert(target, saved)
        with target.begin() as conn:
            return _insert(conn, saved)
    except (ValueError, OSError, sa.exc.SQLAlchemyError) as exc:
        why = error_text(exc) if isinstance(exc, sa.exc.SQLAlchemyError) else str(exc)
        try:
            kept = f"it is kept as {move_aside(path, 'bad')}"
        except OSError as move_exc:
            kept = f"and it cannot be moved aside: {move_exc}"
        raise StoreError(f"cannot restore {path}: {why}; {kept}") from exc


def restore_fresh(conn: sa.Connection, db: Path) -> dict[str, int] | None:
    """For a catalog whose control tables were just created from nothing (its file was deleted
    or moved aside): the rows of the copy beside it, put back in the creating transaction
    before any other process can write, so no command (`serve` makes a sign-in token at every
    start) replaces the copy with one that lacks them. A copy with rows that is not restored
    is moved aside to `<copy>.prev-<time>` for the same reason."""
    path = copy_path(db)
    counts = restore(conn, path)
    if counts is None and path.is_file() and any(read_copy(path).values()):
        log.warning("%s not restored: moved to %s", path, move_aside(path, "prev"))
    elif counts and any(counts.values()):
        what = ", ".join(f"{n} {t}" for t, n in counts.items())
        log.warning("new catalog %s: restored %s from %s", db, what, path.name)
    return counts


def read_copy(path: Path) -> dict[str, list[dict]]:
    """The copy's rows per table, as column -> value; ValueError when it is not a copy in
    this FORMAT (truncated, another program's, rows that do not match their columns)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise ValueError(f"not a catalog copy in format {FORMAT} (format {found!r})")
    tables = saved.get("tables")
    if not isinstance(tables, dict):
        raise ValueError("no tables")
    out: dict[str, list[dict]] = {}
    for t in COPIED:
        table = tables.get(t) or {"columns": [], "rows": []}
        cols, rows = table.get("columns"), table.get("rows")
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise ValueError(f"{t}: no list of column names")
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ValueError(f"{t}: no list of rows")
        for r in rows:
            if len(r) != len(cols):
                raise ValueError(f"{t}: a row of {len(r)} values for {len(cols)} columns")
        out[t] = [dict(zip(cols, r, strict=True)) for r in rows]
    return out


def move_aside(path: Path, why: str) -> Path:
    """Rename the copy to `<copy>.<why>-<time>` (kept, never written again)."""
    aside = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    os.replace(path, aside)
    return aside


def _insert(conn: sa.Connection, saved: dict[str, list[dict]]) -> dict[str, int] | None:
    for t in COPIED:
        if conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar():
            return None
    insp = sa.inspect(conn)
    counts = {}
    for t in COPIED:
        have = {c["name"] for c in insp.get_columns(t)}
        rows = saved[t]
        if t == "jobs":
            rows = [_lost_if_active(r) for r in rows]
        cols = sorted({c for r in rows for c in r} & have)
        if rows and cols:
            names = ", ".join(cols)
            binds = ", ".join(f":{c}" for c in cols)
            stmt = sa.text(f"INSERT INTO {t} ({names}) VALUES ({binds})")
            conn.execute(stmt, [{c: r.get(c) for c in cols} for r in rows])
        counts[t] = len(rows)
    return counts


def _lost_if_active(job: dict) -> dict:
    from recorder.db.jobs import ACTIVE_STATES, DESIRED_STOPPED, FAILED

    if job.get("state") not in ACTIVE_STATES:
        return job
    now = time.time_ns()
    return job | {
        "state": FAILED,
        "desired": DESIRED_STOPPED,
        "error": "lost with a damaged catalog (restored from its copy by reindex)",
        "ended_ns": job.get("ended_ns") or now,
        "updated_ns": now,
    }
