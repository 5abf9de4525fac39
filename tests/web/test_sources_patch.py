"""Partial edits of a saved source: a PATCH changes what it is sent and nothing else (the edit
form once sent six fields through PUT and wiped a `subscribe` filter it did not show)."""

from __future__ import annotations

import threading

from tests.web.webhelp import API

FULL = {
    "name": "cam",
    "protocol": "adzmq",
    "endpoint": "tcp://127.0.0.1:5601",
    "subscribe": ["frames", "meta"],
    "request": "more",
    "stream": "camera",
    "heartbeat": False,
    "compression": "zstd",
    "description": "old text",
}


def test_patch_changes_only_the_fields_sent(client):
    assert client.post(f"{API}/sources", json=FULL).status_code == 201
    r = client.patch(f"{API}/sources/cam", json={"description": "new text"})
    assert r.status_code == 200, r.get_json()
    got = client.get(f"{API}/sources/cam").get_json()
    assert got["description"] == "new text"
    for k in ("protocol", "endpoint", "subscribe", "request", "stream", "heartbeat", "compression"):
        assert got[k] == FULL[k], k
    assert got["updated_ns"] >= got["created_ns"]
    # null resets a field that may be null; the rest stays
    got = client.patch(f"{API}/sources/cam", json={"stream": None}).get_json()
    assert got["stream"] is None and got["subscribe"] == ["frames", "meta"]
    assert [s["name"] for s in client.get(f"{API}/sources").get_json()["sources"]] == ["cam"]


def test_put_still_replaces_the_whole_source(client):
    client.post(f"{API}/sources", json=FULL)
    body = {"endpoint": "tcp://127.0.0.1:5601", "protocol": "adzmq", "description": "x"}
    got = client.put(f"{API}/sources/cam", json=body).get_json()
    assert got["subscribe"] == [] and got["description"] == "x"


def test_patch_refuses_what_a_source_cannot_be(client):
    client.post(f"{API}/sources", json=FULL)
    assert client.patch(f"{API}/sources/nope", json={"description": "x"}).status_code == 404
    r = client.patch(f"{API}/sources/cam", json={"endpoint": None})
    assert r.status_code == 422 and r.get_json()["error"]["code"]
    r = client.patch(f"{API}/sources/cam", json={"name": "other"})  # not a rename
    assert r.status_code == 422
    r = client.patch(f"{API}/sources/cam", json={"endpoint": "tcp://nowhere"})
    assert r.status_code in (400, 403), r.get_json()
    assert client.get(f"{API}/sources/cam").get_json()["endpoint"] == FULL["endpoint"]


def test_two_patches_of_different_fields_both_land(app, token):
    app.test_client().post(
        f"{API}/sources", json=FULL, headers={"Authorization": f"Bearer {token}"}
    )
    errors = []

    def patch(field: str, value) -> None:
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for i in range(10):
            r = c.patch(f"{API}/sources/cam", json={field: f"{value}{i}"})
            if r.status_code != 200:
                errors.append(r.get_json())

    threads = [
        threading.Thread(target=patch, args=("description", "d")),
        threading.Thread(target=patch, args=("request", "r")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    c = app.test_client()
    got = c.get(f"{API}/sources/cam", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (got["description"], got["request"]) == ("d9", "r9")
