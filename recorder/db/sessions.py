"""The catalog's index of experimental sessions and which runs are in them.

A copy of the session files and of the runs' annotations (store/sessions.py), rebuilt by
`reindex` like the rest of the run index. A run belongs to at most one session.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from recorder.contracts import SessionAttrs
from recorder.db.engine import Queries, fit, guard_db_errors, row_dict, serialize
from recorder.db.tables import runs, session_runs, sessions
from recorder.store.sessions import SessionNotFound

#: Columns of a session row that are not SessionAttrs fields.
_INDEX_ONLY = ("search",)


def session_row(session: SessionAttrs) -> dict:
    row = {k: v for k, v in session.items() if k != "id"}
    row["session_id"] = session["id"]
    words = [
        session["name"],
        session["description"],
        *session["experimenters"],
        *session["subject"].values(),
        *session["tags"],
    ]
    row["search"] = "\n".join(words).lower()
    return row


def row_session(row: dict) -> SessionAttrs:
    out = {k: v for k, v in row.items() if k not in _INDEX_ONLY and k != "session_id"}
    out["id"] = row["session_id"]
    return out  # type: ignore[return-value]


class SessionIndex(Queries):
    @guard_db_errors()
    def index_session(self, session: SessionAttrs, *, if_newer: bool = False) -> None:
        """Insert or replace a session's row (`if_newer`: only if this copy is newer than the
        indexed one, as when a run's copy is met during reindex)."""
        with self.engine.begin() as conn:
            if not if_newer:
                conn.execute(sessions.delete().where(sessions.c.session_id == session["id"]))
            index_if_newer(conn, session)

    @guard_db_errors()
    def get_session(self, session_id: str) -> SessionAttrs:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sessions).where(sessions.c.session_id == session_id)
            ).first()
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return row_session(row_dict(row))

    @guard_db_errors()
    def list_sessions(
        self,
        *,
        q: str | None = None,
        open_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict], int]:
        """One page of sessions, newest first, each with `runs` (how many) and `bytes`; and how
        many match in all. `q` matches name, description, experimenters, subject and tags."""
        conds: list[sa.ColumnElement[bool]] = []
        if q:
            pat = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(sessions.c.search.like(pat + "%", escape="\\"))
        if open_only:
            conds.append(sessions.c.ended_ns.is_(None))
        where = sa.and_(sa.true(), *conds)
        counts = (
            sa.select(
                session_runs.c.session_id,
                sa.func.count().label("runs"),
                sa.func.coalesce(sa.func.sum(runs.c.bytes), 0).label("bytes"),
            )
            .join(runs, runs.c.run_id == session_runs.c.run_id)
            .group_by(session_runs.c.session_id)
            .subquery()
        )
        page = (
            sa.select(sessions, counts.c.runs, counts.c.bytes)
            .outerjoin(counts, counts.c.session_id == sessions.c.session_id)
            .where(where)
            .order_by(sessions.c.started_ns.desc(), sessions.c.session_id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(sessions).where(where)
            ).scalar()
            out = []
            for r in conn.execute(page):
                d = row_dict(r)
                item = dict(row_session({k: d[k] for k in d if k not in ("runs", "bytes")}))
                item["runs"], item["bytes"] = int(d["runs"] or 0), int(d["bytes"] or 0)
                out.append(item)
        return out, int(total or 0)

    @guard_db_errors()
    def session_run_ids(self, session_id: str) -> list[str]:
        """The session's runs, oldest first."""
        q = (
            sa.select(session_runs.c.run_id)
            .join(runs, runs.c.run_id == session_runs.c.run_id)
            .where(session_runs.c.session_id == session_id)
            .order_by(runs.c.started_ns, runs.c.run_id)
        )
        with self.engine.connect() as conn:
            return [r.run_id for r in conn.execute(q)]

    @guard_db_errors()
    def session_of(self, run_id: str) -> str | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(session_runs.c.session_id).where(session_runs.c.run_id == run_id)
            ).first()
        return None if r is None else r.session_id

    @guard_db_errors()
    def sessions_of(self, run_ids: Iterable[str]) -> dict[str, str]:
        """run id -> session id for those of the runs that are in one (one query for a page)."""
        ids = list(run_ids)
        if not ids:
            return {}
        q = sa.select(session_runs).where(session_runs.c.run_id.in_(ids))
        with self.engine.connect() as conn:
            return {r.run_id: r.session_id for r in conn.execute(q)}

    @guard_db_errors()
    def link_run(self, run_id: str, session_id: str | None) -> None:
        """Put an indexed run in a session, or take it out of any (None)."""
        with self.engine.begin() as conn:
            link(conn, run_id, session_id)

    @guard_db_errors()
    def session_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.session_id for r in conn.execute(sa.select(sessions.c.session_id))]

    @guard_db_errors()
    def remove_session(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(session_runs.delete().where(session_runs.c.session_id == session_id))
            conn.execute(sessions.delete().where(sessions.c.session_id == session_id))


def index_if_newer(conn: sa.Connection, session: SessionAttrs) -> None:
    serialize(conn, f"session:{session['id']}")
    old = conn.execute(
        sa.select(sessions.c.updated_ns).where(sessions.c.session_id == session["id"])
    ).first()
    if old is not None and old.updated_ns >= session["updated_ns"]:
        return
    if old is not None:
        conn.execute(sessions.delete().where(sessions.c.session_id == session["id"]))
    conn.execute(sessions.insert().values(fit(sessions, session_row(session))))


def link(conn: sa.Connection, run_id: str, session_id: str | None) -> None:
    serialize(conn, f"run:{run_id}")
    conn.execute(session_runs.delete().where(session_runs.c.run_id == run_id))
    if session_id is not None:
        conn.execute(session_runs.insert().values(run_id=run_id, session_id=session_id))
