"""A JSON copy of the catalog rows that exist nowhere else, beside an SQLite catalog.

The run index can be rebuilt from the stores, but saved sources, API tokens and job history
cannot: a damaged `catalog.sqlite` would lose them. So every engine on an SQLite file keeps
`<catalog>-control.json` (catalog-control.json beside catalog.sqlite) up to date, and
`recorder reindex` restores it into a new or empty catalog.

Keeping it cheap: the copy is rewritten when a transaction that changed what it holds commits,
and only then: any change to sources, a token created or revoked (not the `last_used_ns` every
request touches), a job created, ended or deleted (not the counters a running job publishes every
second). It is written inside the committing transaction, so SQLite's write lock orders the
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

log = logging.getLogger("recorder.db")

#: The control tables copied, and restored in this order.
COPIED = ("sources", "tokens", "jobs")
FORMAT = 1
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
    (inside the committing transaction: no SQLAlchemy events, no second connection)."""
    cur = dbapi_conn.cursor()
    tables = {}
    try:
        for t in COPIED:
            cur.execute(f"SELECT * FROM {t}")
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


def restore(engine: sa.Engine, path: Path) -> dict[str, int] | None:
    """Put the copy's rows back into a catalog whose copied tables are all empty (a new one);
    rows per table, or None when there is nothing to restore or the catalog has rows already.
    Jobs that were still active when copied are marked failed: their workers went with the old
    catalog, and a pending one must not start now."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))["tables"]
    insp = sa.inspect(engine)
    with engine.begin() as conn:
        for t in COPIED:
            if conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar():
                return None
        counts = {}
        for t in COPIED:
            have = {c["name"] for c in insp.get_columns(t)}
            table = saved.get(t) or {"columns": [], "rows": []}
            cols = [c for c in table["columns"] if c in have]
            rows = [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]]
            if t == "jobs":
                rows = [_lost_if_active(r) for r in rows]
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
