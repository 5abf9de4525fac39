"""GET /api/v1/hosts and the Hosts page: every manager's host, alive or not, its disk and its
jobs; a recording's `host` (its own or its sources') pins its job to that host."""

from __future__ import annotations

import time

from recorder.db.tables import managers


def _beat(control, host: str, age_s: float, free: int) -> None:
    info = {"disk": {"total_bytes": 1000, "free_bytes": free}}
    control.heartbeat(f"{host}/1/1", pid=1, data=f"/srv/{host}", started_ns=1, host=host, info=info)
    with control.engine.begin() as conn:
        conn.execute(
            managers.update()
            .where(managers.c.host == host)
            .values(heartbeat_ns=time.time_ns() - int(age_s * 1e9))
        )


def test_hosts_list_alive_and_lost_hosts_with_their_disk_and_jobs(client, control):
    _beat(control, "rig-1", 0, 400)
    _beat(control, "rig-2", 60, 900)
    job = control.create_job("record", {}, host="rig-1")["id"]
    lost = control.create_job("record", {}, host="rig-2")["id"]
    control.claim(lost, "rig-2/1/1", "rig-2")
    control.fail_lost_jobs(time.time_ns() - 10_000_000_000, besides="rig-1")
    r = client.get("/api/v1/hosts")
    assert r.status_code == 200, r.json
    hosts = {h["name"]: h for h in r.json["hosts"]}
    assert list(hosts) == ["rig-1", "rig-2"]
    one, two = hosts["rig-1"], hosts["rig-2"]
    assert (one["alive"], two["alive"]) == (True, False)
    assert (one["data"], one["disk_total_bytes"], one["disk_free_bytes"]) == (
        "/srv/rig-1",
        1000,
        400,
    )
    assert two["heartbeat_age_s"] >= 59
    assert [(j["id"], j["state"]) for j in one["jobs"]] == [(job, "pending")]
    assert [(j["id"], j["state"]) for j in two["jobs"]] == [(lost, "failed")]
    assert two["jobs"][0]["lost_ns"] and two["jobs"][0]["error"].startswith("host lost")

    page = client.get("/hosts")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-host="rig-1"' in html and 'data-host="rig-2"' in html
    assert f'data-job="{lost}"' in html and "lost, runs not repaired yet" in html
    assert 'href="/hosts"' in html  # in the navigation


def test_a_recording_names_its_host_or_its_sources_do(client):
    src = {"endpoint": "tcp://127.0.0.1:5555", "protocol": "raw"}
    r = client.post("/api/v1/recordings", json={"sources": [src], "host": "rig-1"})
    assert r.status_code == 201, r.json
    assert client.get(f"/api/v1/recordings/{r.json['id']}").json["host"] == "rig-1"

    r = client.put("/api/v1/sources/cam", json={**src, "host": "rig-2"})
    assert r.status_code == 201, r.json
    assert client.get("/api/v1/sources/cam").json["host"] == "rig-2"
    r = client.post("/api/v1/recordings", json={"sources": ["cam"]})
    assert client.get(f"/api/v1/recordings/{r.json['id']}").json["host"] == "rig-2"
    r = client.post("/api/v1/recordings", json={"sources": ["cam"], "host": "rig-1"})
    assert r.status_code == 400 and "different hosts" in r.json["error"]["message"]

    r = client.post("/api/v1/recordings", json={"sources": [src]})
    assert client.get(f"/api/v1/recordings/{r.json['id']}").json["host"] is None  # any host
    r = client.post("/api/v1/recordings", json={"sources": [src], "host": "a b/c"})
    assert r.status_code == 422


def test_the_recording_and_source_forms_offer_the_known_hosts(client, control):
    _beat(control, "rig-1", 0, 400)
    src = {"endpoint": "tcp://127.0.0.1:5555", "protocol": "raw"}
    assert client.put("/api/v1/sources/cam", json=src).status_code == 201
    for url in ("/", "/sources"):
        html = client.get(url).get_data(as_text=True)
        assert 'name="host" list="known-hosts"' in html, url
        assert '<option value="rig-1">' in html, url
