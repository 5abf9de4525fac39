"""Signing a browser in with an API token: the link `recorder serve` prints, `/login#token=...`.

The token travels in the URL *fragment*, which browsers never send to the server, so it cannot
end up in access logs or proxies; the page's script posts it (same origin) and the server turns
it into an HttpOnly, SameSite=Strict cookie that the API accepts like a bearer token (auth.py).
Without JavaScript the page is a plain form to paste a token into. The full UI comes later; until
then `/` is a small page pointing at the API.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, current_app, make_response, redirect, request

from recorder import __version__
from recorder.web.auth import COOKIE, check_same_origin

bp = Blueprint("login", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zmq-recorder: sign in</title></head>
<body>
<h1>zmq-recorder</h1>
<form method="post" action="/login" id="login">
  <label>API token <input name="token" type="password" autocomplete="off" required></label>
  <button type="submit">Sign in</button>
</form>
<p>Create a token with <code>recorder token create</code>.</p>
<script nonce="{nonce}">
  const m = /[#&]token=([^&]+)/.exec(location.hash);
  if (m) {{
    history.replaceState(null, "", location.pathname);
    const f = document.getElementById("login");
    f.token.value = decodeURIComponent(m[1]);
    f.submit();
  }}
</script>
</body></html>
"""

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zmq-recorder</title></head>
<body><h1>zmq-recorder {version}</h1>
<p>JSON API: <a href="/api/v1/status">/api/v1/status</a>,
document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
</body></html>
"""


def _page(html: str, nonce: str | None = None, status: int = 200) -> Response:
    resp = make_response(html, status)
    resp.mimetype = "text/html"
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src {script}; form-action 'self'; frame-ancestors 'none'"
    )
    return resp


@bp.get("/login")
def login_page():
    nonce = secrets.token_urlsafe(16)
    return _page(_PAGE.format(nonce=nonce), nonce)


@bp.post("/login")
def login():
    check_same_origin(request)
    token = request.form.get("token", "")
    control = current_app.extensions["recorder"].control
    if control.verify_token(token) is None:
        return _page(
            _PAGE.format(nonce="x").replace("<h1>", "<p>Invalid token.</p><h1>"), status=401
        )
    resp = redirect("/", code=303)
    resp.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure, path="/"
    )
    return resp


@bp.post("/logout")
def logout():
    check_same_origin(request)
    resp = redirect("/login", code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@bp.get("/")
def index():
    return _page(_INDEX.format(version=__version__))
