"""A run's notes as items: add one, edit one, delete one, each by its id.

Replacing the whole list (the older `PATCH /runs/{id}` with `notes`) lost every note added
elsewhere after a page had loaded; these operations change one note under the annotations lock
(store/annotate.py) and leave the others alone. A note is signed with the name of the token (or
the browser session's token) that added it. The catalog's copy of the notes, which search reads,
is rewritten under the same lock.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from recorder.errors import NotFound
from recorder.store import annotate
from recorder.store.reader import RunReader
from recorder.web import models as m
from recorder.web.api import api, state
from recorder.web.recording_controls import author
from recorder.web.runs import run_path


class NoteText(m.Request):
    text: m.Text = Field(min_length=1)


class NoteList(m.Response):
    run_id: str
    notes: list[m.Note]


def _note_id(note_id: str, run_id: str) -> str:
    if not annotate.NOTE_ID.match(note_id):  # also what a legacy note's derived id looks like
        raise NotFound(f"no note {note_id!r} in run {run_id}")
    return note_id


def _indexed(path: Path, run_id: str, notes: list) -> None:
    catalog = state().catalog
    catalog.ensure_indexed(path)
    catalog.set_notes(run_id, notes)


@api.op("GET", "/runs/<run_id>/notes", tag="runs", response=NoteList)
def list_notes(run_id: str):
    """A run's notes, oldest first, each with its id, time and author."""
    with RunReader(run_path(state().runs_dir, run_id)) as reader:
        notes = annotate.note_items(reader.annotations().get("notes", []))
    return {"run_id": run_id, "notes": notes}


@api.op("POST", "/runs/<run_id>/notes", tag="runs", body=NoteText, response=m.Note, status=201)
def add_note(run_id: str, body: NoteText):
    """Add a note (signed with the token's name); the run's other notes are left alone."""
    path = run_path(state().runs_dir, run_id)
    with annotate.lock(path):
        note, notes = annotate.add_note(path, body.text, author=author() or None)
        _indexed(path, run_id, notes)
    return note


@api.op("PATCH", "/runs/<run_id>/notes/<note_id>", tag="runs", body=NoteText, response=m.Note)
def edit_note(run_id: str, note_id: str, body: NoteText):
    """Change one note's text (404 if it was deleted meanwhile)."""
    path = run_path(state().runs_dir, run_id)
    with annotate.lock(path):
        note, notes = annotate.edit_note(
            path, _note_id(note_id, run_id), body.text, editor=author() or None
        )
        _indexed(path, run_id, notes)
    return note


@api.op("DELETE", "/runs/<run_id>/notes/<note_id>", tag="runs", status=204)
def delete_note(run_id: str, note_id: str):
    """Delete one note (404 if it is not there)."""
    path = run_path(state().runs_dir, run_id)
    with annotate.lock(path):
        notes = annotate.delete_note(path, _note_id(note_id, run_id))
        _indexed(path, run_id, notes)
