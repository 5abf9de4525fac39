"""The catalog: an index of runs for listing, search, tags and notes.

The zarr stores are the truth; the catalog can always be rebuilt from them (`reindex`). So every
write that users make (tags, notes) goes to the run's annotations group first (see
recorder/store/annotate.py) and to the catalog second, both under the annotations lock.
SQLite by default; any SQLAlchemy URL (PostgreSQL for several hosts) works.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recorder.contracts import Note, RunSummary
from recorder.db.engine import (
    fit,
    guard_db_errors,
    is_damage,
    row_dict,
    serialize,
    sqlite_file,
)
from recorder.db.schema import ready_engine
from recorder.db.sessions import SessionIndex, index_if_newer, link
from recorder.db.tables import notes, runs, session_runs, streams, tags
from recorder.errors import RunNotFound, StoreError
from recorder.store import annotate
from recorder.store.reader import RunReader

_RUN_FIELDS = [c.name for c in runs.columns]
_STREAM_FIELDS = [c.name for c in streams.columns if c.name != "run_id"]
_INT64 = (-(2**63) + 1, 2**63 - 1)

#: `sort` keys of search_runs (a leading "-" sorts descending).
SORT_KEYS = {
    "started": runs.c.started_ns,
    "name": runs.c.name,
    "duration": sa.func.coalesce(runs.c.ended_ns - runs.c.started_ns, 0),
    "bytes": runs.c.bytes,
    "messages": runs.c.messages,
}


class Catalog(SessionIndex):
    """Opening a catalog (by URL, or on an engine another object made) brings its schema up to
    date; the other query objects (Control) can share its engine. Sessions: db/sessions.py."""

    def __init__(self, engine_or_url: sa.Engine | str):
        super().__init__(ready_engine(engine_or_url), own=isinstance(engine_or_url, str))

    # -- runs ----------------------------------------------------------------------------------

    @guard_db_errors()
    def index_run(self, summary: RunSummary) -> None:
        """Insert or replace a run (as RunReader.summary() describes it) with its streams, and
        its session link (the run's copy of the session indexes it, unless a newer one is)."""
        row = run_row(summary)
        session = summary.get("session")
        with self.engine.begin() as conn:
            serialize(conn, f"run:{row['run_id']}")
            conn.execute(session_runs.delete().where(session_runs.c.run_id == row["run_id"]))
            conn.execute(streams.delete().where(streams.c.run_id == row["run_id"]))
            conn.execute(tags.delete().where(tags.c.run_id == row["run_id"]))
            conn.execute(notes.delete().where(notes.c.run_id == row["run_id"]))
            conn.execute(runs.delete().where(runs.c.run_id == row["run_id"]))
            conn.execute(runs.insert().values(**row))
            for s in summary["streams"]:
                conn.execute(
                    streams.insert().values(
                        fit(
                            streams,
                            {"run_id": row["run_id"]} | {k: s.get(k) for k in _STREAM_FIELDS},
                        )
                    )
                )
            _insert_tags(conn, summary["run_id"], summary.get("tags", []))
            _insert_notes(conn, summary["run_id"], summary.get("notes", []))
            if session:
                index_if_newer(conn, session)
                link(conn, row["run_id"], session["id"])

    def index_path(self, path: Path) -> RunSummary:
        with RunReader(path) as reader:
            summary = reader.summary()
        self.index_run(summary)
        return summary

    def ensure_indexed(self, path: Path) -> None:
        """Index a run found in the data folder that the catalog does not know yet."""
        if not self.has_run(path.name):
            self.index_path(path)

    @guard_db_errors()
    def update_run(self, run_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(fit(runs, values)))

    @guard_db_errors()
    def list_runs(
        self, *, tag: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict]:
        """Runs newest first, each with its `tags` (what `recorder ls` shows)."""
        q = sa.select(runs).order_by(runs.c.started_ns.desc(), runs.c.run_id.desc())
        if tag:
            q = q.where(runs.c.run_id.in_(sa.select(tags.c.run_id).where(tags.c.tag == tag)))
        if status:
            q = q.where(runs.c.status == status)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = [row_dict(r) for r in conn.execute(q)]
            _attach_tags(conn, rows)
        return rows

    @guard_db_errors()
    def search_runs(
        self,
        *,
        q: str | None = None,
        tag: str | None = None,
        protocol: str | None = None,
        status: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        sort: str = "-started",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict], int]:
        """One page of the runs matching every given filter, each with its `tags`, and how many
        match in all. `q` matches name, id, tags and notes (case-insensitive substring)."""
        conds: list[sa.ColumnElement[bool]] = []
        if tag:
            conds.append(runs.c.run_id.in_(sa.select(tags.c.run_id).where(tags.c.tag == tag)))
        if protocol:
            conds.append(
                runs.c.run_id.in_(sa.select(streams.c.run_id).where(streams.c.protocol == protocol))
            )
        if status:
            conds.append(runs.c.status == status)
        if since_ns is not None:
            conds.append(runs.c.started_ns >= _clamp(since_ns))
        if until_ns is not None:
            conds.append(runs.c.started_ns < _clamp(until_ns))
        if q:
            pat = _like(q)
            conds.append(
                sa.or_(
                    runs.c.name.ilike(pat, escape="\\"),
                    runs.c.run_id.ilike(pat, escape="\\"),
                    runs.c.run_id.in_(
                        sa.select(tags.c.run_id).where(tags.c.tag.ilike(pat, escape="\\"))
                    ),
                    runs.c.run_id.in_(
                        sa.select(notes.c.run_id).where(notes.c.text.ilike(pat, escape="\\"))
                    ),
                )
            )
        where = sa.and_(sa.true(), *conds)
        page = sa.select(runs).where(where).order_by(*_order(sort)).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(where)).scalar()
            rows = [row_dict(r) for r in conn.execute(page)]
            _attach_tags(conn, rows)
        return rows, int(total or 0)

    @guard_db_errors()
    def get_run(self, run_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in the catalog")
            out = row_dict(row)
            _attach_tags(conn, [out])
        return out

    @guard_db_errors()
    def has_run(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            q = sa.select(runs.c.run_id).where(runs.c.run_id == run_id)
            return conn.execute(q).first() is not None

    @guard_db_errors()
    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.run_id for r in conn.execute(sa.select(runs.c.run_id))]

    @guard_db_errors()
    def run_paths(self) -> dict[str, str]:
        """run id -> the run's folder as indexed (on the host that recorded it)."""
        with self.engine.connect() as conn:
            return {r.run_id: r.path for r in conn.execute(sa.select(runs.c.run_id, runs.c.path))}

    @guard_db_errors()
    def run_ids_starting(self, prefix: str, limit: int = 6) -> list[str]:
        """Ids of indexed runs that start with `prefix` (a run id prefix given over HTTP), at
        most `limit`, in id order."""
        pat = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = (
            sa.select(runs.c.run_id)
            .where(runs.c.run_id.like(pat, escape="\\"))
            .order_by(runs.c.run_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [r.run_id for r in conn.execute(q) if r.run_id.startswith(prefix)]

    @guard_db_errors()
    def remove_run(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            for table in (session_runs, streams, tags, notes, runs):
                conn.execute(table.delete().where(table.c.run_id == run_id))

    # -- tags and notes (copies of the run's annotations) --------------------------------------

    def change_tags(
        self, path: Path, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> list[str]:
        """Tag or untag a run in its store, then here, under the annotations lock (so the CLI
        and web processes editing one run at once lose nothing); returns its tags."""
        with annotate.lock(path):
            new = annotate.change_tags(path, add=add, remove=remove)
            self.ensure_indexed(path)
            self.set_tags(path.name, new)
        return new

    @guard_db_errors()
    def set_tags(self, run_id: str, new_tags: list[str]) -> None:
        with self.engine.begin() as conn:
            serialize(conn, f"run:{run_id}")
            conn.execute(tags.delete().where(tags.c.run_id == run_id))
            _insert_tags(conn, run_id, new_tags)

    @guard_db_errors()
    def set_notes(self, run_id: str, run_notes: list[Note]) -> None:
        with self.engine.begin() as conn:
            serialize(conn, f"run:{run_id}")
            conn.execute(notes.delete().where(notes.c.run_id == run_id))
            _insert_notes(conn, run_id, run_notes)


def damage(url: str, *, timeout: float = 10) -> str | None:
    """What is wrong with an SQLite catalog file (SQLite's own words), None if it is sound,
    missing, or not an SQLite file catalog. Only a file SQLite calls corrupt or not a database
    is damaged: a catalog it cannot check now (locked, unreadable, a failing disk) is a
    StoreError, so `reindex` does not move a healthy catalog aside."""
    db = sqlite_file(url)
    if db is None or not db.is_file():
        return None
    try:
        conn = sqlite3.connect(db, timeout=timeout)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise StoreError(f"cannot check catalog {db}: {exc}") from exc
    problems = [r[0] for r in rows if r[0] != "ok"]
    return "; ".join(problems[:3]) if problems else None


def set_aside(url: str) -> Path:
    """Move a damaged SQLite catalog (with its -wal and -shm files) to
    `<name>.corrupt-<timestamp>`, kept for a post-mortem; a new one is made when next opened."""
    db = sqlite_file(url)
    assert db is not None
    aside = db.with_name(f"{db.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{db}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
    except OSError as exc:
        raise StoreError(f"cannot move the damaged catalog {db} aside: {exc}") from exc
    return aside


def run_row(summary: RunSummary) -> dict[str, Any]:
    """A run's row in the index, from its summary (RunReader.summary())."""
    fields: Mapping[str, Any] = summary
    row = {k: fields.get(k) for k in _RUN_FIELDS if k != "protocols"}
    row["protocols"] = ",".join(sorted({s["protocol"] for s in summary["streams"]}))
    row["name"] = row["name"] or ""
    for k in ("messages", "bytes", "gaps", "drops", "rejects"):
        row[k] = row[k] or 0
    return fit(runs, row)


def _insert_tags(conn: sa.Connection, run_id: str, run_tags: list[str]) -> None:
    for t in sorted(set(run_tags)):
        conn.execute(tags.insert().values(run_id=run_id, tag=t))


def _insert_notes(conn: sa.Connection, run_id: str, run_notes: list[Note]) -> None:
    for n in run_notes:
        conn.execute(
            notes.insert().values(run_id=run_id, created_ns=n["created_ns"], text=n["text"])
        )


def _attach_tags(conn: sa.Connection, rows: list[dict]) -> None:
    """Give each run row its sorted `tags`, in one query for the page."""
    by_run: dict[str, list[str]] = {}
    if rows:
        q = sa.select(tags).where(tags.c.run_id.in_([r["run_id"] for r in rows]))
        for t in conn.execute(q.order_by(tags.c.tag)):
            by_run.setdefault(t.run_id, []).append(t.tag)
    for r in rows:
        r["tags"] = by_run.get(r["run_id"], [])


def _order(sort: str) -> list:
    """ORDER BY for a `sort` key such as "-bytes"; ties fall back to newest first."""
    col = SORT_KEYS[sort.lstrip("-")]
    first = col.desc() if sort.startswith("-") else col.asc()
    return [first, runs.c.started_ns.desc(), runs.c.run_id.desc()]


def _clamp(ns: int) -> int:
    """Any date a user can type fits, clamped to what an int64 ns column holds."""
    return max(_INT64[0], min(_INT64[1], ns))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
