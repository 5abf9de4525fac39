"""Requests an attacker (or a broken script) would send: each gets a clear 4xx, never a 500 or a
redirect off this site."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


@pytest.mark.parametrize(
    "next_value",
    [
        "/%09/evil.example",  # a tab that browsers drop: //evil.example
        "/%0a/evil.example",  # a newline: used to be a 500
        "/%0d%0aSet-Cookie:%20x=y",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%20/evil.example",
        "evil.example",
    ],
)
def test_sign_in_never_redirects_off_site(anon, token, next_value):
    r = anon.post("/login", data={"token": token, "next": unquote(next_value)})
    assert r.status_code == 303
    assert r.headers["Location"] == "/"


def test_sign_in_keeps_a_same_site_path(anon, token):
    r = anon.post("/login", data={"token": token, "next": "/runs?tag=ephys&page=2"})
    assert r.status_code == 303
    assert r.headers["Location"] == "/runs?tag=ephys&page=2"


def test_sign_in_page_with_a_hostile_next_renders(anon):
    r = anon.get("/login?next=/%0a/evil.example")
    assert r.status_code == 200
    assert "evil.example" not in r.get_data(as_text=True)


def test_deeply_nested_json_is_a_400_with_the_envelope(client):
    body = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/v1/sources", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "bad_request"
    assert "deep" in r.get_json()["error"]["message"]
