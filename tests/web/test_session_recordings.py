"""The issue's own test: a session created over the API, two recordings started in it from the
API and one from the CLI (`recorder record --session`), all three listed on the session."""

from __future__ import annotations

import pytest

from recorder import config
from recorder.store.reader import RunReader
from tests.helpers import cli_json, run_cli
from tests.web.webhelp import API, wait_json

DONE = ("finished", "stopped", "failed")


@pytest.mark.timeout(240)
def test_recordings_from_the_api_and_the_cli_land_in_the_session(client, manager, adzmq_sim, data):
    r = client.post(f"{API}/sessions", json={"name": "mouse 12", "subject": {"subject_id": "m12"}})
    assert r.status_code == 201, r.get_json()
    sid = r.get_json()["id"]
    cam = {"name": "cam", "protocol": "adzmq", "endpoint": adzmq_sim}
    assert client.post(f"{API}/sources", json=cam).status_code == 201

    from_api = []
    for i in range(2):
        body = {"sources": ["cam"], "session": sid, "count": 5, "name": f"api {i}",
                "flush_interval_s": 0.1}  # fmt: skip
        r = client.post(f"{API}/recordings", json=body)
        assert r.status_code == 201, r.get_json()
        job = wait_json(client, f"{API}/recordings/{r.get_json()['id']}",
                        lambda j: j["state"] in DONE, timeout=60)  # fmt: skip
        assert job["state"] == "finished", job
        from_api.append(job["run_id"])

    before = {x["run_id"] for x in cli_json("ls", "--data", data)}
    out = run_cli("record", adzmq_sim, "--protocol", "adzmq", "--count", "5", "--name", "cli",
                  "--session", sid, "--quiet", "--data", data)  # fmt: skip
    assert out.returncode == 0, out.stderr
    [from_cli] = {x["run_id"] for x in cli_json("ls", "--data", data)} - before

    got = client.get(f"{API}/sessions/{sid}").get_json()
    assert [x["run_id"] for x in got["runs"]] == [*from_api, from_cli]  # oldest first
    assert got["totals"]["runs"] == 3 and got["totals"]["messages"] == 15
    for run in (*from_api, from_cli):
        assert RunReader(config.runs_dir(data) / run).summary()["session"]["id"] == sid
        assert client.get(f"{API}/runs/{run}").get_json()["session"] == sid
    listed = client.get(f"{API}/sessions").get_json()["sessions"]
    assert [(x["id"], x["runs"]) for x in listed] == [(sid, 3)]
