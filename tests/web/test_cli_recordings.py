"""A recording started from the command line shows on the dashboard and in GET /recordings with
its live figures, and the runs table gives its duration so far (it was invisible, "Nothing is
being recorded", and 0.0 s long)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from recorder.recording import status_file
from recorder.simulators import make_simulator
from tests.helpers import end_process, start_cli
from tests.recordhelp import running
from tests.web.webhelp import API, wait_json


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def _cli(body: dict) -> list[dict]:
    return [r for r in body["recordings"] if r["params"].get("cli")]


@pytest.mark.timeout(90)
def test_a_cli_recording_is_listed_live_and_gone_when_it_ends(client, browser, data):
    sim = make_simulator("raw", "tcp://127.0.0.1:*", rate=200)
    endpoint = sim.bind()
    with running(sim):
        proc = start_cli("record", endpoint, "--data", data, "--name", "from the terminal", "-q")
        try:
            body = wait_json(
                client, f"{API}/recordings",
                lambda j: any(r["messages"] > 0 and r["rate_messages_s"] > 0 for r in _cli(j)),
                timeout=60, what="the command-line recording with a rate",
            )  # fmt: skip
            rec = _cli(body)[0]
            assert rec["state"] == "running" and rec["pid"] == proc.pid and rec["run_id"]
            assert rec["params"]["name"] == "from the terminal"
            assert rec["params"]["sources"][0]["endpoint"] == endpoint
            one = client.get(f"{API}/recordings/{rec['id']}").get_json()
            assert one["id"] == rec["id"] and one["messages"] >= rec["messages"]
            assert client.get(f"{API}/status").get_json()["disk"]["write_rate_bytes_s"] > 0

            html = browser.get("/ui/live").get_data(as_text=True)
            assert "from the terminal" in html and "Nothing is being recorded" not in html
            assert f"pid {proc.pid}" in html

            runs = wait_json(
                client, f"{API}/runs", lambda j: j["runs"] and j["runs"][0]["duration_s"] > 0.5,
                what="the duration so far",
            )["runs"]  # fmt: skip
            assert runs[0]["run_id"] == rec["run_id"] and runs[0]["status"] == "recording"
        finally:
            end_process(proc)
    assert proc.returncode == 0, proc.stderr.read()
    assert not _cli(client.get(f"{API}/recordings").get_json())
    assert client.get(f"{API}/recordings/{rec['id']}").status_code == 404
    assert not list(status_file.status_dir(data).glob("*.json"))


def test_a_status_left_by_a_dead_or_silent_recorder_is_not_shown(data):
    folder = status_file.status_dir(data)
    folder.mkdir()
    base = {"v": 1, "host": socket.gethostname(), "started_ns": 1, "stats": {}}
    now = time.time_ns()
    dead = {**base, "id": "cli-dead", "pid": 2**22 + 12345, "updated_ns": now}
    silent = {**base, "id": "cli-silent", "pid": os.getpid(), "updated_ns": now - int(60e9)}
    alive = {**base, "id": "cli-alive", "pid": os.getpid(), "updated_ns": now}
    for s in (dead, silent, alive):
        (folder / f"{s['id']}.json").write_text(json.dumps(s))
    (folder / "cli-broken.json").write_text("{not json")
    assert [s["id"] for s in status_file.read_all(data)] == ["cli-alive"]
