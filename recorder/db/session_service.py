"""Session edits for every front end (API, CLI, pages), each in the one safe order.

A session lives in three places: its file (`<data>/sessions/<id>.json`, the truth), a copy in
the annotations of each of its runs (so `reindex` can rebuild it from the runs alone) and the
catalog's index. Every edit holds the data folder's annotations lock (SessionFiles.lock) and
writes them in that order: file, runs' copies, catalog. A crash in between leaves the truth
ahead of its copies, never behind, and `reindex` brings the copies back in line.

Labs may require subject fields per kind of session ("mouse": subject_id, species, sex, age):
templates in `<data>/session_templates.json` (or the file RECORDER_SESSION_TEMPLATES names),
checked whenever a session names a template.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recorder import config
from recorder.contracts import SessionAttrs
from recorder.db.catalog import Catalog
from recorder.errors import Conflict, RunNotFound, StoreError, UsageError
from recorder.store import annotate
from recorder.store.sessions import SessionFiles, SessionNotFound, check_fields, check_id

TEMPLATES_FILE = "session_templates.json"
TEMPLATES_ENV = "RECORDER_SESSION_TEMPLATES"
#: The run fields a session's detail lists for each of its runs.
RUN_FIELDS = ("run_id", "name", "status", "started_ns", "ended_ns", "bytes", "messages", "gaps",
              "drops")  # fmt: skip


def templates_path(data: Path) -> Path:
    return Path(os.environ.get(TEMPLATES_ENV) or Path(data) / TEMPLATES_FILE).expanduser()


def load_templates(data: Path) -> dict[str, list[str]]:
    """{template name: required subject fields}; no file means no templates. A file that is
    not `{"name": {"subject": ["field", ...]}, ...}` is an error naming the file."""
    path = templates_path(data)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read session templates {path}: {exc}") from exc
    out: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        raise StoreError(f"session templates {path}: not an object of templates")
    for name, spec in raw.items():
        fields = spec.get("subject") if isinstance(spec, dict) else None
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise StoreError(
                f'session templates {path}: template {name!r} is not {{"subject": [fields]}}'
            )
        out[name] = fields
    return out


def check_template(template: str | None, subject: Mapping[str, str], data: Path) -> None:
    """A session naming a template must have every subject field it requires (not empty)."""
    if template is None:
        return
    templates = load_templates(data)
    if template not in templates:
        known = ", ".join(sorted(templates)) or "none are defined"
        raise UsageError(f"unknown session template {template!r} (known: {known})")
    missing = [f for f in templates[template] if not str(subject.get(f, "")).strip()]
    if missing:
        raise UsageError(f"template {template!r} requires subject field(s): {', '.join(missing)}")


def run_entry(row: dict) -> dict[str, Any]:
    """A run as a session lists it: id, name, times, size, counts."""
    out = {k: row.get(k) for k in RUN_FIELDS}
    ended = row.get("ended_ns")
    out["duration_s"] = (ended - row["started_ns"]) / 1e9 if ended else 0.0
    return out


def totals(entries: list[dict]) -> dict[str, Any]:
    """Sums over a session's runs; `span_s` from the first start to the last end."""
    out: dict[str, Any] = {"runs": len(entries)}
    for key in ("duration_s", "bytes", "messages", "gaps", "drops"):
        out[key] = sum(e[key] or 0 for e in entries)
    ends = [e["ended_ns"] or e["started_ns"] for e in entries]
    out["span_s"] = (max(ends) - min(e["started_ns"] for e in entries)) / 1e9 if entries else 0.0
    return out


class SessionService:
    """The sessions of one data folder, as the front ends create, edit, list and show them."""

    def __init__(self, data: Path, catalog: Catalog):
        self.data = Path(data)
        self.runs_dir = config.runs_dir(self.data)
        self.catalog = catalog
        self.files = SessionFiles(self.data)

    # -- reading -------------------------------------------------------------------------------

    def get(self, session_id: str) -> SessionAttrs:
        """The session's file; the catalog's copy when only that is left (reindex restores the
        file from it)."""
        check_id(session_id)
        try:
            return self.files.get(session_id)
        except SessionNotFound:
            return self.catalog.get_session(session_id)

    def detail(self, session_id: str) -> dict[str, Any]:
        """The session with its runs (oldest first) and their totals."""
        session = self.get(session_id)
        entries = []
        for run_id in self.catalog.session_run_ids(session_id):
            try:
                entries.append(run_entry(self.catalog.get_run(run_id)))
            except RunNotFound:  # removed since the ids were read
                continue
        return {**session, "runs": entries, "totals": totals(entries)}

    def list(
        self, *, q: str | None = None, open_only: bool = False, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict], int]:
        return self.catalog.list_sessions(q=q, open_only=open_only, limit=limit, offset=offset)

    def current(self) -> dict | None:
        """The newest open session (what the dashboard offers first), or None."""
        rows, _ = self.catalog.list_sessions(open_only=True, limit=1)
        return rows[0] if rows else None

    # -- editing -------------------------------------------------------------------------------

    def create(self, fields: Mapping[str, Any]) -> SessionAttrs:
        checked = check_fields(fields)
        check_template(checked.get("template"), checked.get("subject", {}), self.data)
        with self.files.lock():
            session = self.files.create(fields)
            self.catalog.index_session(session)
        return session

    def update(self, session_id: str, fields: Mapping[str, Any]) -> SessionAttrs:
        """Change only the given fields (a PATCH); the runs' copies and the catalog follow."""
        check_id(session_id)
        checked = check_fields(fields)
        with self.files.lock():
            with self.files.editing(session_id) as session:
                session.update(checked)  # type: ignore[typeddict-item]
                if "template" in checked or "subject" in checked:
                    check_template(session["template"], session["subject"], self.data)
            self._follow(session)
        return session

    def close(self, session_id: str) -> SessionAttrs:
        """End the session now (closing a closed session changes nothing)."""
        check_id(session_id)
        with self.files.lock():
            session = self.files.close(session_id)
            self._follow(session)
        return session

    def delete(self, session_id: str) -> None:
        """Forget a session that has no runs (a run is never left pointing nowhere)."""
        check_id(session_id)
        with self.files.lock():
            exists = self.files.exists(session_id)
            if not exists and session_id not in self.catalog.session_ids():
                raise SessionNotFound(f"no session {session_id!r}")
            runs = self.catalog.session_run_ids(session_id)
            if runs:
                raise Conflict(f"session {session_id} has {len(runs)} run(s): move them out first")
            try:
                self.files.path(session_id).unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot delete session {session_id}: {exc}") from exc
            self.catalog.remove_session(session_id)

    def move_run(self, run_path: Path, session_id: str | None) -> SessionAttrs | None:
        """Put a run in a session (its copy of the session, then the catalog's link), or take
        it out of any (None). Returns the session the run is now in."""
        with self.files.lock():
            session = None if session_id is None else self.files.get(check_id(session_id))
            annotate.set_session(run_path, session)
            self.catalog.ensure_indexed(run_path)
            if session is not None:
                self.catalog.index_session(session, if_newer=True)
            self.catalog.link_run(run_path.name, session_id)
        return session

    def _follow(self, session: SessionAttrs) -> None:
        """After the file: each run's copy, then the catalog (the lock is held)."""
        for run_id in self.catalog.session_run_ids(session["id"]):
            path = self.runs_dir / run_id
            if (path / "zarr.json").is_file():
                annotate.set_session(path, session)
        self.catalog.index_session(session)


def reindex_session_files(catalog: Catalog, files: SessionFiles) -> set[str]:
    """reindex, first step: index every session file (the truth); their ids."""
    found = set()
    for session in files.all():
        catalog.index_session(session)
        found.add(session["id"])
    return found


def restore_sessions(catalog: Catalog, files: SessionFiles, from_files: set[str],
                     from_runs: set[str]) -> tuple[int, int]:  # fmt: skip
    """reindex, last step (after the runs, whose copies indexed the sessions they name): a
    session whose file is gone is written back from its newest copy; a session row that
    neither a file nor a run knows any more is removed. Returns (restored, removed)."""
    restored = removed = 0
    for session_id in catalog.session_ids():
        if session_id in from_files:
            continue
        if session_id in from_runs:
            files.restore(catalog.get_session(session_id))
            restored += 1
        else:
            catalog.remove_session(session_id)
            removed += 1
    return restored, removed
