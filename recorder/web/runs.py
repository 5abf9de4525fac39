"""Runs as the API shows and edits them: search, detail, rename, notes, tags, delete.

No Flask and no SQL here. The stores are the truth and the catalog is their index: every user
edit goes to the run's `annotations` group first (recorder/store/annotate.py, locked, as for
`recorder tag`) and to the catalog second.
"""

from __future__ import annotations

import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, cast

from recorder.contracts import Marker, Pause, RunSummary
from recorder.db.catalog import Catalog
from recorder.db.control import Control
from recorder.errors import Conflict, RunNotFound, StoreError
from recorder.store import annotate, layout
from recorder.store.find import resolve_run
from recorder.store.reader import RunReader
from recorder.store.recover import recorder_alive
from recorder.web import disk_usage


def run_path(runs_dir: Path, run_id: str) -> Path:
    """The run's folder, by exact id only: a checked name cannot leave the runs folder."""
    return resolve_run(runs_dir, run_id, prefix=False)


def _ns(t: datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1e9)


def search_runs(
    catalog: Catalog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    runs_dir: Path | None = None,
    **filters,
) -> tuple[list[dict], int]:
    """Runs matching every given filter (see Catalog.search_runs), newest first, and how many
    match in all; with `runs_dir`, each with the bytes its folder takes on disk."""
    rows, total = catalog.search_runs(since_ns=_ns(since), until_ns=_ns(until), **filters)
    in_session = catalog.sessions_of(r["run_id"] for r in rows)
    items = [{**run_item(r), "session": in_session.get(r["run_id"])} for r in rows]
    if runs_dir is not None:
        for item in items:
            item["disk_bytes"] = _disk_bytes(runs_dir, item)
    return items, total


def _disk_bytes(runs_dir: Path, item: dict) -> int | None:
    path = runs_dir / item["run_id"]
    if not path.is_dir():
        return None  # indexed, but its folder is elsewhere or gone
    live = item["status"] == layout.STATUS_RECORDING
    key = (item["status"], item["ended_ns"], item["bytes"])
    return disk_usage.run_disk_bytes(path, key=key, live=live)


def run_item(r: dict) -> dict:
    """A row of the runs list: the fields of `recorder ls --json` (docs/cli.md) and duration."""
    ended = r["ended_ns"]
    if ended is None and _still_recording(r):  # its duration so far
        ended = max(r["started_ns"], time.time_ns())
    return {
        "run_id": r["run_id"],
        "name": r["name"] or "",
        "status": r["status"],
        "error": r["error"],
        "started_ns": r["started_ns"],
        "ended_ns": r["ended_ns"],
        "duration_s": ((ended - r["started_ns"]) / 1e9) if ended else 0.0,
        "messages": r["messages"] or 0,
        "bytes": r["bytes"] or 0,
        "gaps": r["gaps"] or 0,
        "drops": r["drops"] or 0,
        "rejects": r["rejects"] or 0,
        "protocols": [p for p in (r["protocols"] or "").split(",") if p],
        "tags": r["tags"],
    }


def _still_recording(r: dict) -> bool:
    """A run marked recording whose recorder runs (on another host: taken as running; a dead
    recorder's run has no duration until `recorder recover` closes it)."""
    if r["status"] != layout.STATUS_RECORDING:
        return False
    if r.get("host") and r["host"] != socket.gethostname():
        return True
    return recorder_alive(cast(Any, r))


class RunDetail(RunSummary):
    """GET /runs/<id> (models.RunOut shows it)."""

    jobs: list[str]  # active recordings and replays of the run
    session_name: NotRequired[str | None]  # and `session` holds the session's id here
    markers: list[Marker]  # users' events during the recording
    pauses: list[Pause]  # deliberate pauses of the recording
    trigger: dict[str, Any] | None  # what made a triggered run (None: not triggered)


def run_detail(runs_dir: Path, control: Control, run_id: str) -> RunDetail:
    """The run as `recorder info --json` shows it, plus its active jobs."""
    path = run_path(runs_dir, run_id)
    with RunReader(path) as reader:
        summary = reader.summary()
        name = reader.annotations().get("name")
        marks = {"markers": reader.markers(), "pauses": reader.pauses(),
                 "trigger": reader.attrs.get("trigger")}  # fmt: skip
    if name is not None:  # a rename (PATCH) lives with the annotations
        summary["name"] = name
    jobs = [j["id"] for j in control.list_jobs(run_id=run_id, active=True)]
    detail: dict[str, Any] = {**summary, "jobs": jobs, **marks}
    session = summary.get("session")  # the run's copy; the API shows its id and name
    detail["session"] = session["id"] if session else None
    detail["session_name"] = session["name"] if session else None
    return cast(RunDetail, detail)


def patch_run(
    runs_dir: Path,
    catalog: Catalog,
    run_id: str,
    *,
    name: str | None = None,
    note: str | None = None,
    notes_: list[dict] | None = None,
    author: str | None = None,
) -> None:
    """`notes_` replaces every note (deprecated: it drops notes added elsewhere meanwhile; the
    notes operations in web/notes.py change one note each); a given note equal to a kept one
    (time and text) keeps its id and author."""
    path = run_path(runs_dir, run_id)
    now = time.time_ns()
    with annotate.lock(path):
        with annotate.editing(path) as ann:
            if name is not None:
                ann["name"] = name
            if notes_ is not None:
                kept = {(n["created_ns"], n["text"]): n for n in annotate.note_items(ann["notes"])}
                ann["notes"] = [
                    kept.get((n.get("created_ns") or 0, n["text"]))
                    or annotate.new_note(n["text"], n.get("created_ns") or now, author=author)
                    for n in notes_
                ]
            if note is not None:
                ann["notes"] = [
                    *annotate.note_items(ann["notes"]),
                    annotate.new_note(note, author=author),
                ]
        catalog.ensure_indexed(path)
        if name is not None:
            catalog.update_run(run_id, name=name)
        if note is not None or notes_ is not None:
            catalog.set_notes(run_id, ann["notes"])


def change_tags(
    runs_dir: Path,
    catalog: Catalog,
    run_id: str,
    *,
    add: str | list[str] | None = None,
    remove: str | list[str] | None = None,
) -> list[str]:
    path = run_path(runs_dir, run_id)
    return catalog.change_tags(path, add=_listed(add), remove=_listed(remove))


def _listed(tags: str | list[str] | None) -> list[str]:
    return [] if tags is None else [tags] if isinstance(tags, str) else tags


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
