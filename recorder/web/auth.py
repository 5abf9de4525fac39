"""Who may call the API, in one place: bearer tokens, the login cookie, and the same-origin rule.

A token arrives as `Authorization: Bearer <token>` (automation), checked against the hashed
tokens in the catalog. A browser instead holds the session cookie `/login` sets: the secret of a
server-side session made from a valid token (never the token itself), checked against the hashed
sessions, so signing out, expiry and revoking the token all end it (db/browser_sessions.py). Because
a browser sends cookies with cross-site requests, every state-changing request (POST, PUT, PATCH,
DELETE) must come from this site: `Sec-Fetch-Site` says so in modern browsers, `Origin` in older
ones; requests with neither come from scripts and tools, which cannot be forged by a web page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Request

from recorder.db.control import Control
from recorder.web.http_errors import ApiError

COOKIE = "recorder_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_origin_reason(request: Request) -> str | None:
    """Why an unsafe request is refused as cross-origin, or None if it may proceed."""
    if request.method in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower():
        return None
    return "the Origin is not this site"


def check_same_origin(request: Request) -> None:
    reason = cross_origin_reason(request)
    if reason is not None:
        raise ApiError(403, "cross_origin", f"cross-origin request refused: {reason}")


def presented_token(request: Request) -> str | None:
    """The bearer token of the Authorization header ("" if the header is not one), else None."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    return None


def caller(control: Control, request: Request) -> dict | None:
    """The caller's token record, from the bearer token or else the session cookie; None when
    neither is valid (or the session has ended)."""
    token = presented_token(request)
    if token is not None:
        return control.verify_token(token) if token else None
    session = request.cookies.get(COOKIE)
    return control.verify_session(session) if session else None


def authenticate(control: Control, request: Request) -> dict:
    """The caller's token record; 401 without a valid token or session. Never logs either."""
    if presented_token(request) is None and not request.cookies.get(COOKIE):
        raise _unauthorized("authentication required: send Authorization: Bearer <token>")
    record = caller(control, request)
    if record is None:
        raise _unauthorized("invalid token, or the session has ended: sign in again")
    return record


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
