"""The catalog: an index of runs for listing, search, tags and notes.

The zarr stores are the truth; the catalog can always be rebuilt from them (`reindex`). So every
write that users make (tags, notes) goes to the run's annotations group first and to the catalog
second. SQLite by default; any SQLAlchemy URL (PostgreSQL for several hosts) works.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import sqlalchemy as sa
import zarr
from sqlalchemy import event

from recorder.errors import RunNotFound, StoreError
from recorder.store import layout
from recorder.store.reader import RunReader

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
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
)
streams = sa.Table(
    "streams",
    metadata,
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
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
)
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

_RUN_FIELDS = [c.name for c in runs.columns]
_STREAM_FIELDS = [c.name for c in streams.columns if c.name != "run_id"]


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


class Catalog:
    """Every method raises StoreError (never a driver error) when the database fails."""

    def __init__(self, url: str):
        try:
            self.engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use catalog {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            create_tables(metadata, self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open catalog: {exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- runs ----------------------------------------------------------------------------------

    def index_run(self, summary: dict) -> None:
        """Insert or replace a run (as RunReader.summary() describes it) with its streams."""
        row = {k: summary.get(k) for k in _RUN_FIELDS if k != "protocols"}
        row["protocols"] = ",".join(sorted({s["protocol"] for s in summary["streams"]}))
        row["name"] = row["name"] or ""
        for k in ("messages", "bytes", "gaps", "drops", "rejects"):
            row[k] = row[k] or 0
        with self.engine.begin() as conn:
            conn.execute(streams.delete().where(streams.c.run_id == row["run_id"]))
            conn.execute(tags.delete().where(tags.c.run_id == row["run_id"]))
            conn.execute(notes.delete().where(notes.c.run_id == row["run_id"]))
            conn.execute(runs.delete().where(runs.c.run_id == row["run_id"]))
            conn.execute(runs.insert().values(**row))
            for s in summary["streams"]:
                conn.execute(
                    streams.insert().values(
                        run_id=row["run_id"], **{k: s.get(k) for k in _STREAM_FIELDS}
                    )
                )
            for t in sorted(set(summary.get("tags", []))):
                conn.execute(tags.insert().values(run_id=row["run_id"], tag=t))
            for n in summary.get("notes", []):
                conn.execute(
                    notes.insert().values(
                        run_id=row["run_id"], created_ns=n["created_ns"], text=n["text"]
                    )
                )

    def index_path(self, path: Path) -> dict:
        with RunReader(path) as reader:
            summary = reader.summary()
        self.index_run(summary)
        return summary

    def update_run(self, run_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    def list_runs(
        self, *, tag: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict]:
        q = sa.select(runs).order_by(runs.c.started_ns.desc(), runs.c.run_id.desc())
        if tag:
            q = q.where(runs.c.run_id.in_(sa.select(tags.c.run_id).where(tags.c.tag == tag)))
        if status:
            q = q.where(runs.c.status == status)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            if rows:
                ids = [r["run_id"] for r in rows]
                tag_rows = conn.execute(
                    sa.select(tags).where(tags.c.run_id.in_(ids)).order_by(tags.c.tag)
                )
                by_run: dict[str, list[str]] = {}
                for t in tag_rows:
                    by_run.setdefault(t.run_id, []).append(t.tag)
                for r in rows:
                    r["tags"] = by_run.get(r["run_id"], [])
        return rows

    def get_run(self, run_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(f"no run {run_id!r} in the catalog")
            out = dict(row._mapping)
            out["tags"] = [
                t.tag
                for t in conn.execute(
                    sa.select(tags).where(tags.c.run_id == run_id).order_by(tags.c.tag)
                )
            ]
        return out

    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.run_id for r in conn.execute(sa.select(runs.c.run_id))]

    def remove_run(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            for table in (streams, tags, notes, runs):
                conn.execute(table.delete().where(table.c.run_id == run_id))

    # -- tags and notes ------------------------------------------------------------------------

    def set_tags(self, run_id: str, new_tags: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(tags.delete().where(tags.c.run_id == run_id))
            for t in sorted(set(new_tags)):
                conn.execute(tags.insert().values(run_id=run_id, tag=t))


def write_annotations(run_path: Path, *, tags: list[str] | None = None, note: str | None = None):
    """Change a run's tags or add a note in its store (the source the catalog is rebuilt from)."""
    try:
        root = zarr.open_group(run_path, mode="r+", zarr_format=3)
        group = root.require_group(layout.ANNOTATIONS_GROUP)
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise StoreError(f"cannot update annotations of {run_path}: {exc}") from exc
    attrs = dict(group.attrs) or {"tags": [], "notes": []}
    if tags is not None:
        attrs["tags"] = sorted(set(tags))
    if note is not None:
        attrs.setdefault("notes", []).append({"created_ns": time.time_ns(), "text": note})
    group.attrs.put(attrs)
    return attrs


def guard_db_errors(method):
    """Driver errors (locked, disk full, server gone) surface as StoreError with the cause."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"catalog: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
            ) from exc

    return wrapper


for _name in (
    "index_run",
    "update_run",
    "list_runs",
    "get_run",
    "run_ids",
    "remove_run",
    "set_tags",
):
    setattr(Catalog, _name, guard_db_errors(getattr(Catalog, _name)))
