"""The browser's sessions: the Sessions page (list, search, New session), and what the
dashboard and run pages show of sessions (the current session picker, a run's session with a
Move to session select), through template globals so those pages need no extra request.

Every action goes to /api/v1/sessions (static/sessions.js), like every other button. A
session's own page (`/sessions/<id>`: runs on one timeline, totals, replay, export) is
elsewhere.
"""

from __future__ import annotations

from flask import request

from recorder.db.session_service import load_templates
from recorder.errors import RecorderError
from recorder.web.api import state
from recorder.web.sessions import service
from recorder.web.ui import bp, page


@bp.get("/sessions")
def sessions_page():
    """Sessions, newest first, searched like GET /api/v1/sessions."""
    q = request.args.get("q", "").strip()[:200]
    open_only = request.args.get("open") in ("1", "true", "on")
    items, total = service().list(q=q or None, open_only=open_only, limit=200)
    try:
        templates = load_templates(state().data)
    except RecorderError:  # a broken templates file: creating with a template will say why
        templates = {}
    return page("sessions.html", active="sessions", sessions=items, total=total, q=q,
                open_only=open_only, templates=templates,
                created=request.args.get("created", ""))  # fmt: skip


@bp.app_template_global()
def session_choices(limit: int = 50) -> list[dict]:
    """Open sessions, newest first: the newest is the dashboard's current session unless
    another is picked there."""
    rows, _ = service().list(open_only=True, limit=limit)
    return rows
