"""A run's annotations (tags, notes, a new name): the one place they are changed.

They live in the run's `annotations` group, apart from the recorder's own attributes, so tagging
a run while it records cannot race the recorder. Users edit them from the CLI (`recorder tag`)
and the web app at the same time, and zarr has no locking: every change is a read-modify-write
under one lock file per data folder, so no edit is lost. The catalog copies them afterwards,
under the same lock (Catalog.change_tags); the store is the truth the catalog is rebuilt from.
(Named `annotate`: a module `annotations` would clash with `from __future__ import annotations`.)
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import zarr

from recorder.contracts import Note, SessionAttrs
from recorder.errors import NotFound, StoreError
from recorder.store import layout, nodes, spool

LOCK_FILE = "annotate.lock"
_held = threading.local()  # lock files this thread holds


def empty() -> dict:
    return {"tags": [], "notes": []}


def new_note(text: str, created_ns: int | None = None, author: str | None = None) -> dict:
    note = {"id": _new_note_id(), "created_ns": created_ns or time.time_ns(), "text": text}
    if author:
        note["author"] = author
    return note


# -- notes as items (docs/format.md, "Annotations") ---------------------------------------------

NOTE_ID = re.compile(r"^n[0-9a-f]{12}$")


def _new_note_id() -> str:
    return "n" + secrets.token_hex(6)


def legacy_note_id(note: dict) -> str:
    """The id of a note written before notes had ids (a plain `{created_ns, text}`): derived from
    its time and text, so it is the same on every read until the note is first edited through
    the notes operations, which write it down."""
    key = f"{note.get('created_ns')}\n{note.get('text')}".encode()
    return "n" + hashlib.sha256(key).hexdigest()[:12]


def note_items(notes: Iterable) -> list[Note]:
    """The run's notes, each with an `id` (older runs' notes get their derived one; a plain
    string, the oldest form, becomes a note of time 0)."""
    out = []
    for n in notes:
        note = {"created_ns": 0, "text": n} if isinstance(n, str) else dict(n)
        note.setdefault("id", legacy_note_id(note))
        out.append(cast(Note, note))
    return out


def _find(notes: list[Note], note_id: str, run_path: Path) -> Note:
    for n in notes:
        if n.get("id") == note_id:
            return n
    raise NotFound(f"no note {note_id!r} in run {Path(run_path).name}")


def add_note(run_path: Path, text: str, author: str | None = None) -> tuple[dict, list[dict]]:
    """Append one note; returns it and the run's notes (every other note untouched)."""
    with editing(run_path) as ann:
        note = new_note(text, author=author)
        ann["notes"] = [*note_items(ann["notes"]), note]
    return note, ann["notes"]


def edit_note(
    run_path: Path, note_id: str, text: str, editor: str | None = None
) -> tuple[Note, list[Note]]:
    """Change one note's text (NotFound if it is not there); returns it and the run's notes."""
    with editing(run_path) as ann:
        ann["notes"] = note_items(ann["notes"])
        note = _find(ann["notes"], note_id, run_path)
        if note["text"] != text:
            note["text"], note["updated_ns"] = text, time.time_ns()
            if editor:
                note["edited_by"] = editor
    return note, ann["notes"]


def delete_note(run_path: Path, note_id: str) -> list[dict]:
    """Remove one note (NotFound if it is not there); returns the run's notes."""
    with editing(run_path) as ann:
        notes = note_items(ann["notes"])
        _find(notes, note_id, run_path)
        ann["notes"] = [n for n in notes if n.get("id") != note_id]
    return ann["notes"]


@contextlib.contextmanager
def lock(run_path: Path) -> Iterator[None]:
    """One writer of annotations at a time across processes, for every run of a data folder
    (runs are always <data>/runs/<run id>; the lock file sits in <data>). Callers that copy the
    change to the catalog hold it around both steps, so the copies land in the same order.
    Re-entrant within a thread."""
    with folder_lock(Path(run_path).resolve().parent.parent):
        yield


@contextlib.contextmanager
def folder_lock(data: Path) -> Iterator[None]:
    """The data folder's annotations lock (see `lock`), also taken by session edits, which
    change the session file and the copies in its runs together."""
    path = str(Path(data).resolve() / LOCK_FILE)
    held = _held.__dict__.setdefault("paths", set())
    if path in held:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def editing(run_path: Path) -> Iterator[dict]:
    """Lock, read the annotations, let the caller change the dict, write it back if changed.

    with editing(path) as ann:
        ann["tags"] = sorted(set(ann["tags"]) | {"good"})
    """
    with lock(run_path):
        try:
            root = zarr.open_group(run_path, mode="r+", zarr_format=3, use_consolidated=False)
            group = root.require_group(layout.ANNOTATIONS_GROUP)
            before = dict(group.attrs) or empty()
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot update annotations of {Path(run_path).name}: {exc}") from exc
        attrs = {**empty(), **copy.deepcopy(before)}
        yield attrs
        if attrs != before:
            try:
                group.attrs.put(attrs)
                if nodes.is_consolidated(run_path):  # a closed run: keep its copy current
                    nodes.consolidate(run_path)
            except OSError as exc:
                raise StoreError(
                    f"cannot update annotations of {Path(run_path).name}: {exc}"
                ) from exc
            # a run in an object store: other hosts read the bucket's copy
            spool.push_metadata(
                Path(run_path), [f"{layout.ANNOTATIONS_GROUP}/zarr.json", "zarr.json"]
            )


def change_tags(
    run_path: Path, *, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> list[str]:
    """Add and remove tags (names checked first); returns the run's tags, sorted."""
    add, remove = list(add), list(remove)
    for t in (*add, *remove):
        layout.check_name("tag", t)
    with editing(run_path) as ann:
        ann["tags"] = sorted((set(ann["tags"]) | set(add)) - set(remove))
    return ann["tags"]


def set_session(run_path: Path, session: SessionAttrs | None) -> None:
    """Put the run in a session (a copy of the session's attributes), or take it out (None)."""
    with editing(run_path) as ann:
        if session is None:
            ann.pop("session", None)
        else:
            ann["session"] = copy.deepcopy(dict(session))
