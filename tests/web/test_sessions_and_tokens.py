"""Browser sessions are their own server-side records: the cookie is never a token, signing out
ends the session, sessions and tokens expire, revoking a token signs its browsers out; and the
token API (GET/POST /tokens, DELETE /tokens/{id}) with the Tokens page on top of it."""

from __future__ import annotations

import re

import pytest

from recorder.db.tables import browser_sessions
from recorder.web.auth import COOKIE
from tests.web.webhelp import API

pytestmark = pytest.mark.timeout(60)


def sign_in(app, token: str):
    c = app.test_client()
    r = c.post("/login", data={"token": token})
    assert r.status_code == 303, r.status_code
    return c, c.get_cookie(COOKIE).value


def test_the_cookie_is_a_session_never_the_token(app, token):
    c, cookie = sign_in(app, token)
    assert cookie != token and token not in cookie
    _, again = sign_in(app, token)
    assert again != cookie  # one session per sign-in
    # The cookie is no bearer token, and the token is no cookie.
    bearer = app.test_client().get(f"{API}/status", headers={"Authorization": f"Bearer {cookie}"})
    assert bearer.status_code == 401
    forged = app.test_client()
    forged.set_cookie(COOKIE, token)
    assert forged.get(f"{API}/status").status_code == 401
    assert c.get(f"{API}/status").status_code == 200


def test_after_sign_out_the_old_cookie_is_refused(app, token):
    c, cookie = sign_in(app, token)
    assert c.get(f"{API}/status").status_code == 200
    assert c.post("/logout").status_code == 303
    replay = app.test_client()  # someone who kept a copy of the cookie
    replay.set_cookie(COOKIE, cookie)
    r = replay.get(f"{API}/status")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    page = replay.get("/runs")
    assert page.status_code == 303 and page.headers["Location"].startswith("/login")


def test_an_expired_session_is_refused(app, control, token):
    c, _ = sign_in(app, token)
    with control.engine.begin() as conn:
        conn.execute(browser_sessions.update().values(expires_ns=browser_sessions.c.created_ns))
    assert c.get(f"{API}/status").status_code == 401
    assert c.get("/").status_code == 303


def test_an_idle_session_is_refused(app, control, token):
    c, _ = sign_in(app, token)
    with control.engine.begin() as conn:
        conn.execute(
            browser_sessions.update().values(
                last_seen_ns=browser_sessions.c.last_seen_ns - browser_sessions.c.idle_ns
            )
        )
    assert c.get(f"{API}/status").status_code == 401


def test_session_lifetimes_come_from_the_environment(data, monkeypatch, control):
    from recorder.web import create_app

    monkeypatch.setenv("RECORDER_SESSION_IDLE", "30m")
    monkeypatch.setenv("RECORDER_SESSION_MAX", "2h")
    app = create_app(data)
    secret, _ = control.create_token("t")
    r = app.test_client().post("/login", data={"token": secret})
    assert "Max-Age=7200" in r.headers["Set-Cookie"]
    (session,) = control.list_sessions()
    assert session["idle_ns"] == 30 * 60 * 10**9
    assert session["expires_ns"] - session["created_ns"] == 2 * 3600 * 10**9


def test_an_expired_token_is_refused_and_cannot_sign_in(app, control, anon):
    secret, _ = control.create_token("brief", expires_s=1e-6)
    r = anon.get(f"{API}/status", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401
    assert anon.post("/login", data={"token": secret}).status_code == 401


def test_revoking_a_token_signs_its_browsers_out(app, control, client):
    secret, rec = control.create_token("alice")
    browser, _ = sign_in(app, secret)
    other, _ = sign_in(app, control.create_token("bob")[0])
    assert client.delete(f"{API}/tokens/{rec['id']}").status_code == 204
    assert browser.get(f"{API}/status").status_code == 401
    assert browser.get("/").status_code == 303
    assert other.get(f"{API}/status").status_code == 200


def test_the_token_api(client, anon, token):
    listed = client.get(f"{API}/tokens").get_json()["tokens"]
    assert [(t["name"], t["current"], t["expires_ns"]) for t in listed] == [("tests", True, None)]
    assert "hash" not in listed[0] and token not in str(listed)
    r = client.post(f"{API}/tokens", json={"name": "robot", "expires_s": 3600})
    assert r.status_code == 201
    made = r.get_json()
    assert made["token"].startswith("rec_") and made["expires_ns"] > made["created_ns"]
    assert made["current"] is False
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert anon.get(f"{API}/status", headers=headers).status_code == 200
    listed = client.get(f"{API}/tokens").get_json()["tokens"]
    assert {t["name"] for t in listed} == {"tests", "robot"}
    assert all("token" not in t for t in listed)  # shown only once
    assert client.delete(f"{API}/tokens/{made['id']}").status_code == 204
    assert anon.get(f"{API}/status", headers=headers).status_code == 401
    assert client.delete(f"{API}/tokens/{made['id']}").status_code == 404
    assert client.post(f"{API}/tokens", json={"expires_s": -1}).status_code == 422
    assert client.post(f"{API}/tokens", json={"secret": "x"}).status_code == 422


def test_the_token_api_needs_auth_and_the_same_origin(anon, client, control):
    _, rec = control.create_token("victim")
    assert anon.get(f"{API}/tokens").status_code == 401
    assert anon.post(f"{API}/tokens", json={"name": "x"}).status_code == 401
    assert anon.delete(f"{API}/tokens/{rec['id']}").status_code == 401
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert client.post(f"{API}/tokens", json={}, headers=cross).status_code == 403
    assert client.delete(f"{API}/tokens/{rec['id']}", headers=cross).status_code == 403
    assert [t["name"] for t in control.list_tokens()] == ["tests", "victim"]


def test_the_tokens_page_lists_tokens_with_revoke_buttons(app, control, token):
    control.create_token("<b>robot</b>", expires_s=86400)
    browser, _ = sign_in(app, token)
    r = browser.get("/tokens")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "<b>robot</b>" not in html and "&lt;b&gt;robot&lt;/b&gt;" in html
    ids = {t["id"] for t in control.list_tokens()}
    assert set(re.findall(r'data-revoke-token="([0-9a-f]+)"', html)) == ids
    assert 'data-action="create-token"' in html and token not in html
    assert 'href="/tokens"' in browser.get("/").get_data(as_text=True)
    assert app.test_client().get("/tokens").status_code == 303
