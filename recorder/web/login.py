"""Signing a browser in with an API token: the link `recorder serve` prints, `/login#token=...`.

The token travels in the URL *fragment*, which browsers never send to the server, so it cannot
end up in access logs or proxies; the page's script posts it (same origin) and the server turns
it into a server-side browser session, whose secret (never the token) goes into an HttpOnly,
SameSite=Strict cookie that the API accepts like a bearer token (auth.py). Signing out ends the
session; it also ends after a while without use and at most a few days after sign-in
(RECORDER_SESSION_IDLE, RECORDER_SESSION_MAX), and with its token.
Without JavaScript the page is a plain form to paste a token into. After signing in the browser
goes back to the page it came from (`?next=`, a path on this site only).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
)

from recorder.web.auth import COOKIE, check_same_origin

bp = Blueprint("login", __name__)


_PATH_CHARS = frozenset(map(chr, range(0x21, 0x7F))) - {"\\"}
"""Printable ASCII without spaces: browsers drop tabs and newlines from a Location (so `/\t/evil`
becomes `//evil`, another host) and a newline cannot go into a header at all."""


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not value or len(value) > 2000 or not set(value) <= _PATH_CHARS:
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _page(nonce: str, status: int = 200, error: str | None = None) -> Response:
    html = render_template(
        "login.html", nonce=nonce, error=error, next=_safe_next(request.values.get("next"))
    )
    resp = make_response(html, status)
    resp.mimetype = "text/html"
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/login")
def login_page():
    return _page(secrets.token_urlsafe(16))


@bp.post("/login")
def login():
    check_same_origin(request)
    token = request.form.get("token", "")
    st = current_app.extensions["recorder"]
    record = st.control.verify_token(token)
    if record is None:
        return _page(secrets.token_urlsafe(16), 401, "That token is not valid (or was revoked).")
    st.control.expire_sessions()  # sign-ins are rare: a good moment to drop ended sessions
    secret, _ = st.control.create_session(
        record["id"], idle_s=st.session_idle_s, max_s=st.session_max_s
    )
    resp = redirect(_safe_next(request.form.get("next")), code=303)
    resp.set_cookie(
        COOKIE, secret, max_age=int(st.session_max_s), httponly=True, samesite="Strict",
        secure=request.is_secure, path="/",
    )  # fmt: skip
    return resp


@bp.post("/logout")
def logout():
    check_same_origin(request)
    session = request.cookies.get(COOKIE)
    if session:
        current_app.extensions["recorder"].control.revoke_session(session)
    resp = redirect("/login", code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp
