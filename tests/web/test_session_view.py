"""A session seen whole over HTTP: its page (runs on one timeline with markers and notes,
totals, replay and export controls) through the Flask test client; the replay of a whole
session (`POST /replays` with `session`) served by a real worker, split runs played as one
stream; the export of a whole session as a job that downloads as a zip of one file per run."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import zmq

from recorder import config
from recorder.store import annotate
from recorder.store.sessions import SessionFiles
from tests.helpers import free_port, local, running_manager
from tests.replay.test_session_replay import PIECES, TOTAL, split_runs
from tests.web.webhelp import API, wait_json

pytestmark = pytest.mark.timeout(60)
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


@pytest.fixture
def session(app, data):
    """A session of three split runs of stream `main` (a PULL that connected to a free port:
    replayed by a PUSH binding there), markers in the first, a note on the second."""
    s = SessionFiles(data).create({
        "name": f"mouse 12 {EVIL}", "description": "open field", "experimenters": ["Ada"],
        "subject": {"subject_id": "m12", "species": "Mus musculus"}, "tags": ["of"],
        "meta": {"rig": "2"},
    })  # fmt: skip
    port = free_port()
    paths = split_runs(
        config.runs_dir(data), port, PIECES, session=s, markers={0: ["stimulus on", EVIL]}
    )
    with annotate.editing(paths[1]) as ann:
        ann["notes"] = [annotate.new_note("mouse moved")]
    cat = app.extensions["recorder"].catalog
    for p in paths:
        cat.index_path(p)
    return {"attrs": s, "paths": paths, "port": port}


def test_the_session_page_shows_its_runs_on_one_timeline(browser, session):
    s, paths = session["attrs"], session["paths"]
    r = browser.get(f"/sessions/{s['id']}")
    assert r.status_code == 200, r.get_data(as_text=True)[:800]
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    html = r.get_data(as_text=True)
    assert EVIL not in html and "&lt;script&gt;" in html  # escaped, in the page and its JSON
    assert 'href="/sessions"' in html and "/static/session.js" in html
    for p in paths:
        assert f'href="/runs/{p.name}"' in html
    assert "open field" in html and "Mus musculus" in html and "Ada" in html
    assert re.search(r"<dt>Runs</dt><dd>3</dd>", html)
    assert re.search(rf"<dt>Messages</dt><dd>{TOTAL}</dd>", html)
    data = re.search(
        r'<script type="application/json" id="session-timeline-data">(.*?)</script>', html, re.S
    )
    timeline = json.loads(data.group(1))
    assert [r["run_id"] for r in timeline["runs"]] == [p.name for p in paths]
    first, second, _ = timeline["runs"]
    assert [m["text"] for m in first["markers"]] == ["stimulus on", EVIL]
    assert [n["text"] for n in second["notes"]] == ["mouse moved"]
    assert second["notes"][0]["t_s"] == pytest.approx(second["end_s"])  # written after it
    assert first["streams"][0]["name"] == "main" and first["start_s"] == 0.0
    assert second["start_s"] == pytest.approx((95.0 - 1 - 9) / 1000, abs=1e-3)
    assert 'id="session-replay"' in html and 'id="session-export"' in html


def test_session_page_errors(browser, anon, data):
    assert browser.get("/sessions/ses-20990101-000000-abcdef").status_code == 404
    assert browser.get("/sessions/nonsense").status_code == 404
    assert anon.get("/sessions/ses-20990101-000000-abcdef").status_code == 303
    empty = SessionFiles(data).create({"name": "empty"})
    html = browser.get(f"/sessions/{empty['id']}").get_data(as_text=True)
    assert "No runs in this session yet." in html


def test_session_requests_are_checked(client, session, data):
    sid = session["attrs"]["id"]

    def post(body):
        return client.post(f"{API}/replays", json=body)

    assert post({}).status_code == 422
    assert post({"session": sid, "run_id": session["paths"][0].name}).status_code == 422
    assert post({"session": "nonsense"}).status_code == 422
    assert post({"session": "ses-20990101-000000-abcdef"}).status_code == 404
    r = post({"session": sid, "with_runs": [session["paths"][0].name]})
    assert r.status_code == 400 and "not both" in r.get_json()["error"]["message"]
    empty = SessionFiles(data).create({"name": "empty"})
    client.application.extensions["recorder"].catalog.index_session(empty)
    r = post({"session": empty["id"]})
    assert r.status_code == 400 and "has no runs" in r.get_json()["error"]["message"]
    r = client.post(f"{API}/sessions/{empty['id']}/exports", json={"target": "mcap"})
    assert r.status_code == 400
    r = client.post(f"{API}/sessions/ses-20990101-000000-abcdef/exports", json={"target": "nwb"})
    assert r.status_code == 404
    r = client.post(f"{API}/sessions/{sid}/exports", json={"target": "nwb"})
    assert r.status_code == 400 and "no run nwb can hold" in r.get_json()["error"]["message"]


@pytest.mark.timeout(120)
def test_a_session_replays_as_one_stream(client, session, data, ctx):
    sid, port = session["attrs"]["id"], session["port"]
    endpoint = local(free_port())
    with running_manager(data):
        r = client.post(f"{API}/replays", json={
            "session": sid, "endpoints": {"main": endpoint}, "paused": True})  # fmt: skip
        assert r.status_code == 201, r.get_json()
        job_id = r.get_json()["id"]
        assert r.get_json()["endpoints"] == {"main": endpoint}
        pull = ctx.socket(zmq.PULL)
        pull.linger = 0
        pull.connect(endpoint)
        wait_json(client, f"{API}/replays/{job_id}", lambda j: j["clients"] >= 1)
        assert client.post(f"{API}/replays/{job_id}/resume").status_code == 200
        got = []
        for _ in range(TOTAL):
            assert pull.poll(20_000), f"replay stalled after {len(got)}"
            got.append(pull.recv_multipart())
        assert got == [[b"%d" % i] for i in range(TOTAL)]
        assert not pull.poll(200), "a message came twice"
        job = wait_json(client, f"{API}/replays/{job_id}", lambda j: j["state"] == "finished")
    assert job["messages"] == TOTAL
    params = job["params"]
    assert params["session"] == sid and params["chain"] is True
    assert [params["run_id"], *params["with_runs"]] == [p.name for p in session["paths"]]
    assert port  # the recorded port was not used: the endpoint given was


@pytest.mark.timeout(120)
def test_a_session_exports_to_a_zip_of_one_file_per_run(client, session, data):
    sid, paths = session["attrs"]["id"], session["paths"]
    r = client.post(f"{API}/sessions/{sid}/exports", json={"target": "mcap"})
    assert r.status_code == 201, r.get_json()
    job_id = r.get_json()["id"]
    with running_manager(data):
        job = wait_json(client, f"{API}/exports/{job_id}", lambda j: j["state"] in (
            "finished", "failed"), timeout=60)  # fmt: skip
    assert job["state"] == "finished", job["error"]
    assert job["session"] == sid and job["file"] == f"{sid}-mcap"
    listed = client.get(f"{API}/sessions/{sid}/exports").get_json()["exports"]
    assert [e["id"] for e in listed] == [job_id]
    r = client.get(job["download"])
    assert r.status_code == 200 and r.mimetype == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(r.data)).namelist())
    assert names == sorted(f"{sid}-mcap/{p.name}_piece_{k}.mcap" for k, p in enumerate(paths))
