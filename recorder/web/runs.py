"""Runs as the API shows and edits them: search, detail, rename, notes, tags, delete.

No Flask here. The stores are the truth and the catalog is their index: every user edit goes to
the run's `annotations` group first and to the catalog second (as `recorder tag` does), under a
lock so two web processes editing one run's annotations cannot lose each other's change.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import zarr

from recorder.db.catalog import Catalog, notes, runs, streams, tags, write_annotations
from recorder.db.control import Conflict, Control
from recorder.errors import RunNotFound, StoreError
from recorder.store import layout
from recorder.store.find import resolve_run
from recorder.store.reader import RunReader
from recorder.store.recover import recorder_alive


def run_path(runs_dir: Path, run_id: str) -> Path:
    """The run's folder, by exact id only: a checked name cannot leave the runs folder."""
    return resolve_run(runs_dir, run_id, prefix=False)


def _ns(t: datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    # Any date a user can type fits, clamped to what an int64 ns column holds.
    return max(-(2**63) + 1, min(2**63 - 1, int(t.timestamp() * 1e9)))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_runs(
    catalog: Catalog,
    *,
    q: str | None = None,
    tag: str | None = None,
    protocol: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sort: str = "-started",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """Runs matching every given filter, newest first, and how many match in all."""
    conds = []
    if tag:
        conds.append(runs.c.run_id.in_(sa.select(tags.c.run_id).where(tags.c.tag == tag)))
    if protocol:
        conds.append(
            runs.c.run_id.in_(sa.select(streams.c.run_id).where(streams.c.protocol == protocol))
        )
    if status:
        conds.append(runs.c.status == status)
    if since is not None:
        conds.append(runs.c.started_ns >= _ns(since))
    if until is not None:
        conds.append(runs.c.started_ns < _ns(until))
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
    try:
        with catalog.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(where)).scalar()
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(runs).where(where).order_by(*_order(sort)).limit(limit).offset(offset)
                )
            ]
            by_run: dict[str, list[str]] = {}
            if rows:
                for t in conn.execute(
                    sa.select(tags)
                    .where(tags.c.run_id.in_([r["run_id"] for r in rows]))
                    .order_by(tags.c.tag)
                ):
                    by_run.setdefault(t.run_id, []).append(t.tag)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"catalog: {exc.__class__.__name__}") from exc
    return [run_item(r, by_run.get(r["run_id"], [])) for r in rows], int(total or 0)


def _order(sort: str) -> list:
    """ORDER BY for a `sort` key such as "-bytes"; ties fall back to newest first."""
    key = sort.lstrip("-")
    col = {
        "started": runs.c.started_ns,
        "name": runs.c.name,
        "duration": sa.func.coalesce(runs.c.ended_ns - runs.c.started_ns, 0),
        "bytes": runs.c.bytes,
        "messages": runs.c.messages,
    }[key]
    first = col.desc() if sort.startswith("-") else col.asc()
    return [first, runs.c.started_ns.desc(), runs.c.run_id.desc()]


def run_item(r: dict, run_tags: list[str]) -> dict:
    """A row of the runs list: the fields of `recorder ls --json` (docs/cli.md) and duration."""
    ended = r["ended_ns"]
    return {
        "run_id": r["run_id"],
        "name": r["name"] or "",
        "status": r["status"],
        "error": r["error"],
        "started_ns": r["started_ns"],
        "ended_ns": ended,
        "duration_s": ((ended - r["started_ns"]) / 1e9) if ended else 0.0,
        "messages": r["messages"] or 0,
        "bytes": r["bytes"] or 0,
        "gaps": r["gaps"] or 0,
        "drops": r["drops"] or 0,
        "rejects": r["rejects"] or 0,
        "protocols": [p for p in (r["protocols"] or "").split(",") if p],
        "tags": run_tags,
    }


def run_detail(runs_dir: Path, control: Control, run_id: str) -> dict:
    """The run as `recorder info --json` shows it, plus its active jobs."""
    path = run_path(runs_dir, run_id)
    with RunReader(path) as reader:
        out = reader.summary()
        name = reader.annotations().get("name")
    if name is not None:  # a rename (PATCH) lives with the annotations
        out["name"] = name
    out["jobs"] = [j["id"] for j in control.list_jobs(run_id=run_id, active=True)]
    return out


@contextlib.contextmanager
def annotations_lock(runs_dir: Path):
    """One writer of annotations at a time across processes (zarr has no locking)."""
    lock = runs_dir.parent / "annotations.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _put_annotations(path: Path, **values) -> dict:
    try:
        root = zarr.open_group(path, mode="r+", zarr_format=3)
        group = root.require_group(layout.ANNOTATIONS_GROUP)
        attrs = dict(group.attrs) or {"tags": [], "notes": []}
        attrs.update(values)
        group.attrs.put(attrs)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot update annotations of {path.name}: {exc}") from exc
    return attrs


def _ensure_indexed(catalog: Catalog, path: Path) -> None:
    if path.name not in catalog.run_ids():
        catalog.index_path(path)


def patch_run(
    runs_dir: Path,
    catalog: Catalog,
    run_id: str,
    *,
    name: str | None = None,
    note: str | None = None,
    notes_: list[dict] | None = None,
) -> None:
    path = run_path(runs_dir, run_id)
    with annotations_lock(runs_dir):
        values: dict = {}
        if name is not None:
            values["name"] = name
        if notes_ is not None:
            now = time.time_ns()
            values["notes"] = [
                {"created_ns": n.get("created_ns") or now, "text": n["text"]} for n in notes_
            ]
        attrs = _put_annotations(path, **values) if values else None
        if note is not None:
            attrs = write_annotations(path, note=note)
    _ensure_indexed(catalog, path)
    if name is not None:
        catalog.update_run(run_id, name=name)
    if attrs is not None and (note is not None or notes_ is not None):
        _set_catalog_notes(catalog, run_id, attrs.get("notes", []))


def _set_catalog_notes(catalog: Catalog, run_id: str, run_notes: list[dict]) -> None:
    try:
        with catalog.engine.begin() as conn:
            conn.execute(notes.delete().where(notes.c.run_id == run_id))
            for n in run_notes:
                conn.execute(
                    notes.insert().values(run_id=run_id, created_ns=n["created_ns"], text=n["text"])
                )
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"catalog: {exc.__class__.__name__}") from exc


def change_tags(
    runs_dir: Path,
    catalog: Catalog,
    run_id: str,
    *,
    add: str | None = None,
    remove: str | None = None,
) -> list[str]:
    path = run_path(runs_dir, run_id)
    for t in (add, remove):
        if t is not None:
            layout.check_name("tag", t)
    with annotations_lock(runs_dir), RunReader(path) as reader:
        current = set(reader.annotations().get("tags", []))
        new = (current | {add}) if add else current
        new = new - {remove} if remove else new
        if new != current:
            write_annotations(path, tags=sorted(new))
    _ensure_indexed(catalog, path)
    catalog.set_tags(run_id, sorted(new))
    return sorted(new)


def delete_run(runs_dir: Path, catalog: Catalog, control: Control, run_id: str) -> None:
    """Delete a run's store and index entry; refused while it is recorded or replayed."""
    path = run_path(runs_dir, run_id)
    active = control.list_jobs(run_id=run_id, active=True)
    if active:
        raise Conflict(
            f"run {run_id} is in use by {', '.join(j['id'] for j in active)}: stop it first"
        )
    with RunReader(path) as reader:
        attrs = reader.attrs
    if attrs.get("status") == layout.STATUS_RECORDING and recorder_alive(attrs):
        raise Conflict(f"run {run_id} is still being recorded (pid {attrs.get('pid')})")
    if path.resolve().parent != runs_dir.resolve():
        raise RunNotFound(f"no run {run_id!r}")
    try:
        shutil.rmtree(path)
        layout.reserve_path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot delete run {run_id}: {exc.strerror or exc}") from exc
    catalog.remove_run(run_id)
