"""Experimental sessions over HTTP (docs/sessions.md): create, list, search, show with their
runs, edit, close, delete an empty one, and move a run between sessions.

Thin handlers over db/session_service.py, which every front end shares: the session file is
written first, then the copies in its runs, then the catalog. Session ids from paths and bodies
are checked against their one shape before they name a file (an id that is not one is a 404).
"""

from __future__ import annotations

from recorder.db.session_service import SessionService
from recorder.web import models as m
from recorder.web.api import api, state
from recorder.web.runs import run_path


def service() -> SessionService:
    st = state()
    return SessionService(st.data, st.catalog)


@api.op("POST", "/sessions", tag="sessions", body=m.SessionCreate, response=m.SessionOut,
        status=201)  # fmt: skip
def create_session(body: m.SessionCreate):
    """Start a session: a name and any of description, experimenters, subject, template, tags,
    notes and meta. A named template's required subject fields must all be given (400)."""
    return service().create(body.model_dump(exclude_unset=True))


@api.op("GET", "/sessions", tag="sessions", query=m.SessionsQuery, response=m.SessionList)
def list_sessions(query: m.SessionsQuery):
    """Search sessions, newest first, each with how many runs and bytes it has."""
    items, total = service().list(
        q=query.q, open_only=query.open, limit=query.limit, offset=query.offset
    )
    return {"sessions": items, "total": total, "limit": query.limit, "offset": query.offset}


@api.op("GET", "/sessions/<session_id>", tag="sessions", response=m.SessionDetail)
def get_session(session_id: str):
    """A session with its runs (oldest first) and their totals."""
    return service().detail(session_id)


@api.op("PATCH", "/sessions/<session_id>", tag="sessions", body=m.SessionPatch,
        response=m.SessionOut)  # fmt: skip
def patch_session(session_id: str, body: m.SessionPatch):
    """Change the fields sent, leave the others; the copies in the session's runs follow."""
    return service().update(session_id, body.model_dump(exclude_unset=True))


@api.op("POST", "/sessions/<session_id>/close", tag="sessions", response=m.SessionOut)
def close_session(session_id: str):
    """End a session now. Closing twice is harmless (the first end time stays)."""
    return service().close(session_id)


@api.op("DELETE", "/sessions/<session_id>", tag="sessions", status=204, errors=(409,))
def delete_session(session_id: str):
    """Forget a session that has no runs (409 while it has any: move them out first)."""
    service().delete(session_id)


@api.op("PUT", "/runs/<run_id>/session", tag="sessions", body=m.SessionMove,
        response=m.RunSession)  # fmt: skip
def move_run(run_id: str, body: m.SessionMove):
    """Put a run in a session, or (`null`) take it out of any."""
    path = run_path(state().runs_dir, run_id)
    session = service().move_run(path, body.session)
    return {"run_id": run_id, "session": None if session is None else session["id"]}
