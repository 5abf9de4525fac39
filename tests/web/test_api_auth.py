"""Security of the API: tokens (hashed, checked everywhere), the same-origin rule, the login
cookie, names that cannot leave the data folder, no secrets in logs, no unescaped user text."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tests.helpers import run_cli
from tests.web.webhelp import API, recorded_run


@pytest.mark.parametrize("path", ["/status", "/sources", "/runs", "/recordings", "/events"])
def test_every_call_needs_a_valid_token(anon, path):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dTpw"},
                    {"Authorization": "Bearer "}):  # fmt: skip
        r = anon.get(API + path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert r.get_json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_unsafe_cross_origin_requests_are_refused(client):
    src = {"name": "a", "endpoint": "tcp://127.0.0.1:5000"}
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
    ):
        r = client.post(f"{API}/sources", json=src, headers=headers)
        assert r.status_code == 403, headers
        assert r.get_json()["error"]["code"] == "cross_origin"
        assert client.delete(f"{API}/sources/a", headers=headers).status_code == 403
    # Same origin, or no browser at all (scripts), may change things; anyone may read.
    assert (
        client.post(f"{API}/sources", json=src, headers={"Origin": "http://localhost"}).status_code
        == 201
    )
    same = {"Sec-Fetch-Site": "same-origin"}
    assert (
        client.put(
            f"{API}/sources/a", json={"endpoint": "tcp://127.0.0.1:1"}, headers=same
        ).status_code
        == 200
    )
    assert client.get(f"{API}/sources", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_tokens_are_stored_hashed_and_revocable(app, control, data, anon):
    secret, rec = control.create_token("ci")
    ok = anon.get(f"{API}/status", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200
    raw = (data / "catalog.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in data.glob("catalog.sqlite-*")
    )
    assert secret.encode() not in raw
    with sqlite3.connect(data / "catalog.sqlite") as db:
        hashes = [h for (h,) in db.execute("select hash from tokens")]
    assert len(hashes) == 1 and secret not in hashes[0]
    assert [t["name"] for t in control.list_tokens()] == ["ci"]
    control.revoke_token(rec["id"])
    assert (
        anon.get(f"{API}/status", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )


@pytest.mark.timeout(60)
def test_token_create_prints_the_token_alone_on_the_last_line(data, anon):
    out = run_cli("token", "create", "--name", "robot", "--expires", "30d", "--data", str(data))
    assert out.returncode == 0, out.stderr
    secret = out.stdout.splitlines()[-1]
    assert secret == secret.strip() and len(secret) > 30 and " " not in secret
    assert secret not in out.stderr
    r = anon.get(f"{API}/status", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    listed = run_cli("token", "list", "--data", str(data))
    assert "robot" in listed.stdout and secret not in listed.stdout
    assert "EXPIRES" in listed.stdout and "never" not in listed.stdout
    bad = run_cli("token", "create", "--expires", "soon", "--data", str(data))
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    bad = run_cli("token", "revoke", "nope", "--data", str(data))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_login_cookie_works_like_the_token_and_obeys_the_origin_rule(anon, token):
    assert anon.get("/login").status_code == 200
    assert anon.post("/login", data={"token": "wrong"}).status_code == 401
    assert anon.post("/login", data={"token": token},
                     headers={"Origin": "https://evil.example"}).status_code == 403  # fmt: skip
    r = anon.post("/login", data={"token": token})
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert anon.get(f"{API}/status").status_code == 200  # the cookie alone
    src = {"name": "a", "endpoint": "tcp://127.0.0.1:5000"}
    assert (
        anon.post(f"{API}/sources", json=src, headers={"Sec-Fetch-Site": "cross-site"}).status_code
        == 403
    )
    assert (
        anon.post(f"{API}/sources", json=src, headers={"Sec-Fetch-Site": "same-origin"}).status_code
        == 201
    )
    anon.post("/logout")
    assert anon.get(f"{API}/status").status_code == 401


def test_names_cannot_leave_the_data_folder(client, data):
    run_id = recorded_run(data, "adzmq", 3)
    for path in (
        "/runs/..%2F..%2Fetc",
        "/runs/..",
        "/runs/%2e%2e",
        f"/runs/{run_id}/streams/..%2F..%2Fzarr.json/messages",
        f"/runs/{run_id}/streams/../messages",
        "/sources/..%2Fx",
    ):
        r = client.get(API + path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.mimetype == "application/json"
    assert (
        client.put(f"{API}/sources/..", json={"endpoint": "tcp://127.0.0.1:1"}).status_code == 400
    )
    assert client.delete(f"{API}/runs/..?confirm=..").status_code == 404
    assert client.post(f"{API}/runs/{run_id}/tags", json={"tag": "../../x"}).status_code == 422
    assert (data / "runs" / run_id / "zarr.json").is_file()


def test_user_text_is_never_served_as_html(client, anon):
    evil = "<script>alert(1)</script>"
    client.put(f"{API}/sources/x", json={"endpoint": "tcp://127.0.0.1:1", "description": evil})
    for r in (client.get(f"{API}/sources/x"), client.get(f"{API}/sources/{evil}"),
              client.get(f"{API}/runs?q={evil}")):  # fmt: skip
        assert r.mimetype == "application/json"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert evil not in anon.get(f"/login?x={evil}").get_data(as_text=True)
    assert "Content-Security-Policy" in anon.get("/login").headers


def test_errors_use_one_envelope(client):
    for r, status in (
        (client.get(f"{API}/no-such-thing"), 404),
        (client.delete(f"{API}/status"), 405),
        (client.get(f"{API}/runs?limit=0"), 422),
        (
            client.post(f"{API}/sources", data=b"x" * (2 << 20), content_type="application/json"),
            413,
        ),
    ):
        assert r.status_code == status
        err = r.get_json()["error"]
        assert set(err) == {"code", "message", "details"} and err["message"]


def test_secrets_are_never_logged(client, token, caplog, anon):
    caplog.set_level(logging.DEBUG)
    client.get(f"{API}/status")
    client.get(f"{API}/runs/nope")
    anon.get(f"{API}/status", headers={"Authorization": f"Bearer {token}x"})
    anon.post("/login", data={"token": token})
    assert token not in caplog.text
