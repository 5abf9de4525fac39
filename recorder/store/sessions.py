"""Experimental sessions on disk: one JSON file per session in `<data>/sessions/`.

A session (a mouse on the rig for an hour, a beamtime shift) groups runs and carries what NWB and
lab books need: experimenters, subject, description. Like runs, the data folder is the truth and
the catalog an index of it: the file is written first, and each run of the session keeps a copy
of its attributes in its annotations (annotate.set_session), so `reindex` rebuilds a session from
its file, or from its runs if the file is gone. Files are replaced whole (temporary name, fsync,
rename) under the data folder's annotations lock, so concurrent edits from the CLI and the web
app lose nothing. Session ids come from requests: they are checked against their one shape before
they name a file.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from recorder.contracts import SessionAttrs
from recorder.errors import NotFound, StoreError, UsageError
from recorder.store import annotate, layout

ID_PREFIX = "ses-"
_ID = re.compile(r"^ses-\d{8}-\d{6}-[0-9a-f]{6}$")
MAX_NAME = 256
MAX_TEXT = 64 << 10  # description, one note, one metadata value
MAX_ITEMS = 256  # experimenters, subject keys, meta keys, tags
#: Fields a user may set (`id`, `updated_ns` are the store's; `ended_ns` is set by `close`).
EDITABLE = ("name", "description", "experimenters", "subject", "template", "tags", "notes", "meta")


class SessionNotFound(NotFound):
    pass


def new_session_id(now_ns: int | None = None) -> str:
    """Sortable by start time like run ids: ses-20261202-031500-3fa2c1."""
    t = time.gmtime((now_ns or time.time_ns()) / 1e9)
    return ID_PREFIX + time.strftime("%Y%m%d-%H%M%S", t) + "-" + secrets.token_hex(3)


def check_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not _ID.match(session_id):
        raise SessionNotFound(
            f"no session {session_id!r} (ids look like ses-20261202-031500-3fa2c1)"
        )
    return session_id


def sessions_dir(data: Path) -> Path:
    return Path(data) / layout.SESSIONS_DIR


def check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The user-settable fields, checked (types, sizes); unknown keys are an error."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise UsageError(f"unknown session field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            out[key] = _text(key, value, MAX_NAME, required=True)
        elif key == "description":
            out[key] = _text(key, value, MAX_TEXT)
        elif key == "template":
            out[key] = None if value in (None, "") else _text(key, value, MAX_NAME)
        elif key == "experimenters":
            out[key] = [
                _text("experimenter", v, MAX_NAME, required=True) for v in _list(key, value)
            ]
        elif key == "tags":
            out[key] = sorted({layout.check_name("tag", v) for v in _list(key, value)})
        elif key == "notes":
            out[key] = [_note(n) for n in _list(key, value)]
        elif key == "subject":
            out[key] = {
                _text("subject key", k, MAX_NAME, required=True): _text(k, v, MAX_TEXT)
                for k, v in _mapping(key, value).items()
            }
        elif key == "meta":
            meta = dict(_mapping(key, value))
            for k in meta:
                _text("metadata key", k, MAX_NAME, required=True)
            if len(json.dumps(meta)) > MAX_TEXT * 4:
                raise UsageError("session metadata is too large (256 KiB of JSON at most)")
            out[key] = meta
    return out


def new_session(fields: Mapping[str, Any], *, now_ns: int | None = None) -> SessionAttrs:
    """A session's attributes from user fields (`name` required), not yet stored."""
    if "name" not in fields:
        raise UsageError("a session needs a name")
    checked = check_fields(fields)
    now = now_ns or time.time_ns()
    return {
        "id": new_session_id(now),
        "name": checked["name"],
        "description": checked.get("description", ""),
        "experimenters": checked.get("experimenters", []),
        "subject": checked.get("subject", {}),
        "template": checked.get("template"),
        "started_ns": now,
        "ended_ns": None,
        "tags": checked.get("tags", []),
        "notes": checked.get("notes", []),
        "meta": checked.get("meta", {}),
        "updated_ns": now,
    }


class SessionFiles:
    """The session files of one data folder."""

    def __init__(self, data: Path):
        self.data = Path(data)
        self.dir = sessions_dir(self.data)
        self.problems: list[str] = []  # unreadable session files the last all() skipped

    def path(self, session_id: str) -> Path:
        return self.dir / f"{check_id(session_id)}.json"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The data folder's annotations lock: hold it to change a session and its runs."""
        return annotate.folder_lock(self.data)

    def exists(self, session_id: str) -> bool:
        return self.path(session_id).is_file()

    def get(self, session_id: str) -> SessionAttrs:
        path = self.path(session_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id!r}") from None
        except OSError as exc:
            raise StoreError(f"cannot read session {session_id}: {exc.strerror or exc}") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreError(f"session file {path} is not JSON: {exc}") from exc

    def save(self, session: SessionAttrs) -> None:
        """Write the file whole: a reader sees the old or the new session, never half of one."""
        path = self.path(session["id"])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(session, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(
                f"cannot write session {session['id']}: {exc.strerror or exc}"
            ) from exc

    def create(self, fields: Mapping[str, Any]) -> SessionAttrs:
        session = new_session(fields)
        with self.lock():
            self.save(session)
        return session

    @contextlib.contextmanager
    def editing(self, session_id: str) -> Iterator[SessionAttrs]:
        """Lock, read, let the caller change the attributes, stamp and write them back."""
        with self.lock():
            session = self.get(session_id)
            before = copy.deepcopy(session)
            yield session
            if session != before:
                session["updated_ns"] = max(time.time_ns(), before["updated_ns"] + 1)
                self.save(session)

    def update(self, session_id: str, fields: Mapping[str, Any]) -> SessionAttrs:
        """Change the given fields only (a PATCH), leaving the others as they are."""
        checked = check_fields(fields)
        with self.editing(session_id) as session:
            session.update(checked)  # type: ignore[typeddict-item]
        return session

    def close(self, session_id: str, ended_ns: int | None = None) -> SessionAttrs:
        with self.editing(session_id) as session:
            if session["ended_ns"] is None:
                session["ended_ns"] = ended_ns or time.time_ns()
        return session

    def restore(self, session: SessionAttrs) -> None:
        """Write a session rebuilt from a run's copy (reindex), unless a newer file exists."""
        with self.lock():
            try:
                current = self.get(session["id"])
            except (SessionNotFound, StoreError):
                current = None
            if current is None or current["updated_ns"] < session["updated_ns"]:
                self.save(session)

    def all(self) -> list[SessionAttrs]:
        """Every readable session file, oldest first (an unreadable one is skipped: reindex says
        so through `problems`)."""
        found: list[SessionAttrs] = []
        self.problems = []
        if not self.dir.is_dir():
            return []
        for path in sorted(self.dir.glob("ses-*.json")):
            try:
                found.append(self.get(path.stem))
            except (StoreError, SessionNotFound) as exc:
                self.problems.append(str(exc))
        return found


def _text(what: str, value: Any, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise UsageError(f"session {what} must be text, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise UsageError(f"session {what} must not be empty")
    if len(value) > limit:
        raise UsageError(f"session {what} is too long ({len(value)} > {limit} characters)")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise UsageError(f"session {what} holds control characters")
    return value


def _list(what: str, value: Any) -> list:
    if not isinstance(value, list):
        raise UsageError(f"session {what} must be a list")
    if len(value) > MAX_ITEMS:
        raise UsageError(f"session {what}: at most {MAX_ITEMS} items")
    return value


def _mapping(what: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise UsageError(f"session {what} must be an object of key/values")
    if len(value) > MAX_ITEMS:
        raise UsageError(f"session {what}: at most {MAX_ITEMS} keys")
    return value


def _note(note: Any) -> dict:
    if isinstance(note, str):
        note = {"text": note}
    if not isinstance(note, Mapping) or "text" not in note:
        raise UsageError('a session note is {"text": ...} (with an optional created_ns)')
    created = note.get("created_ns") or time.time_ns()
    if not isinstance(created, int):
        raise UsageError("a session note's created_ns must be an integer")
    return {"created_ns": created, "text": _text("note", note["text"], MAX_TEXT, required=True)}
