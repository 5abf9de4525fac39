"""A recording's controls over the API: the trigger, split and session of a new recording are
checked before any job exists, and trigger, pause, resume, split and markers reach a running
recording's worker (a real manager and worker on a real simulator stream)."""

from __future__ import annotations

import json

import pytest

from recorder.store.sessions import SessionFiles
from tests.web.webhelp import API

SOURCE = {"protocol": "raw", "endpoint": "tcp://127.0.0.1:5999"}


def _post(client, **body):
    return client.post(f"{API}/recordings", json={"sources": [SOURCE], **body})


def _no_jobs(client):
    return client.get(f"{API}/recordings").get_json()["recordings"] == []


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"trigger": {"pre_s": -1}}, 422, "pre_s"),
        ({"trigger": {"pre_s": 1e6}}, 422, "pre_s"),
        ({"trigger": {"post_s": 0}}, 422, "post_s"),
        ({"trigger": {"max_bytes": "lots"}}, 400, "not a size"),
        ({"trigger": {"max_bytes": -5}}, 400, "max_bytes"),
        ({"trigger": {"colour": 1}}, 422, "colour"),
        ({"split": "forever"}, 400, "split"),
        ({"split": {}}, 400, "split"),
        ({"split": {"seconds": 0.01}}, 400, "split"),
        ({"split": {"seconds": 1, "bytes": 5000}}, 400, "split"),
        ({"split": {"bytes": 10}}, 400, "split"),
        ({"trigger": {"rules": ["blink twice"]}}, 400, "blink"),
        ({"trigger": {"rules": ["other: count >= 5"]}}, 400, "other"),  # no such stream
        ({"trigger": {"rules": ["ttl 3 high"]}}, 400, "openephys"),  # a raw stream has no TTL
        ({"trigger": {"rules": [{"kind": "count", "op": ">=", "value": "x"}]}}, 400, "count"),
        ({"session": "ses-20261202-000000-abcdef"}, 404, "no session"),
        ({"session": "../../etc/passwd"}, 404, "no session"),
    ],
)
def test_bad_trigger_split_or_session_is_refused_before_any_job(client, body, status, words):
    r = _post(client, **body)
    assert r.status_code == status, r.get_json()
    err = r.get_json()["error"]
    assert words in (err["message"] + json.dumps(err["details"]))
    assert _no_jobs(client)


def test_a_closed_session_takes_no_recording(client, data):
    files = SessionFiles(data)
    ses = files.create({"name": "monday"})
    files.close(ses["id"])
    r = _post(client, session=ses["id"])
    assert r.status_code == 409 and "closed" in r.get_json()["error"]["message"]
    assert _no_jobs(client)


def test_trigger_split_and_session_go_into_the_job(client, data):
    ses = SessionFiles(data).create({"name": "mouse 12"})
    trig = {"pre_s": 2, "post_s": 5, "max_bytes": "1MiB"}
    r = _post(client, trigger=trig, split="10m", session=ses["id"])
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["run_id"] is None  # armed: the runs begin with triggers
    job = client.get(f"{API}/recordings/{created['id']}").get_json()
    p = job["params"]
    assert p["trigger"] == {"pre_s": 2.0, "post_s": 5.0, "max_bytes": 1 << 20, "rules": []}
    assert p["split"] == {"seconds": 600.0}
    assert p["session"] == ses["id"]
    assert job["recording_state"] is None and job["runs"] == [] and job["triggers"] == 0

    # Rules as text or JSON, stored as their canonical text.
    r = _post(
        client, trigger={"rules": ["main:  count>=5", {"kind": "rate", "op": ">", "value": 10}]}
    )
    assert r.status_code == 201, r.get_json()
    rules = client.get(f"{API}/recordings/{r.get_json()['id']}").get_json()["params"]["trigger"]
    assert rules["rules"] == ["main: count >= 5", "rate > 10/s"]

    plain = _post(client, split={"bytes": 5000}).get_json()
    assert plain["run_id"]  # not armed: the first run's id is known at once
    assert client.get(f"{API}/recordings/{plain['id']}").get_json()["params"]["split"] == {
        "bytes": 5000
    }


def test_controls_queue_commands_for_the_worker(client, control):
    armed = _post(client, trigger={"pre_s": 1}).get_json()["id"]
    plain = _post(client).get_json()["id"]
    for op in ("trigger", "pause", "resume"):
        r = client.post(f"{API}/recordings/{armed}/{op}")
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["id"] == armed
    r = client.post(f"{API}/recordings/{armed}/markers", json={"text": "stimulus on"})
    assert r.status_code == 200
    # An armed recording's runs begin and end with triggers: no split.
    r = client.post(f"{API}/recordings/{armed}/split")
    assert r.status_code == 409 and "armed" in r.get_json()["error"]["message"]
    taken = control.take_commands(armed)
    assert [c.op for c in taken] == ["trigger", "pause", "resume", "marker"]
    marker = json.loads(taken[-1].text)
    assert marker["text"] == "stimulus on" and marker["author"] == "tests"  # the token's name
    assert marker["at_ns"] > 0
    assert control.take_commands(armed) == []  # each handed out once

    # A recording that is not armed cannot be triggered; the rest applies.
    r = client.post(f"{API}/recordings/{plain}/trigger")
    assert r.status_code == 409 and "not armed" in r.get_json()["error"]["message"]
    assert client.post(f"{API}/recordings/{plain}/pause").status_code == 200
    assert client.post(f"{API}/recordings/{plain}/split").status_code == 200
    # Markers need a text; unknown recordings are 404.
    assert client.post(f"{API}/recordings/{plain}/markers", json={"text": ""}).status_code == 422
    assert client.post(f"{API}/recordings/rec-000000000000/pause").status_code == 404

    # A stopped recording takes no controls, and nothing is queued for it.
    client.post(f"{API}/recordings/{plain}/stop")
    control.take_commands(plain)
    for op in ("pause", "resume", "split"):
        assert client.post(f"{API}/recordings/{plain}/{op}").status_code == 409
    r = client.post(f"{API}/recordings/{plain}/markers", json={"text": "late"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "conflict"
    assert control.take_commands(plain) == []


def test_a_preview_takes_no_controls(client, control):
    from recorder.db.jobs import KIND_RECORD
    from recorder.manager.planning import plan_recording

    params = plan_recording(control, sources=[SOURCE], preview=True)
    assert params["preview"] is True and params["trigger"]["pre_s"] == 0
    assert params["trigger"]["rules"] == []
    job = control.create_job(KIND_RECORD, params)
    for op in ("trigger", "pause", "split"):
        r = client.post(f"{API}/recordings/{job['id']}/{op}")
        assert r.status_code == 409 and "preview" in r.get_json()["error"]["message"]


# -- the pages ---------------------------------------------------------------------------------


@pytest.fixture
def browser(app, token):
    c = app.test_client()
    assert c.post("/login", data={"token": token}).status_code == 303
    return c


def test_a_marker_from_a_browser_is_signed_with_its_token(browser, control):
    job = _post(browser).get_json()["id"]
    r = browser.post(
        f"{API}/recordings/{job}/markers", json={"text": "lights off"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )  # fmt: skip
    assert r.status_code == 200
    (cmd,) = control.take_commands(job)
    assert json.loads(cmd.text)["author"] == "tests"


def test_dashboard_shows_controls_and_the_form_options(browser, client, data):
    ses = SessionFiles(data).create({"name": "rig <2>"})
    from recorder import config
    from recorder.db.catalog import Catalog

    cat = Catalog(config.catalog_url(None, data))
    cat.index_session(ses)
    cat.close()
    client.put(f"{API}/sources/cam", json=SOURCE)
    armed = _post(client, trigger={"pre_s": 1}).get_json()["id"]
    plain = _post(client).get_json()["id"]
    page = browser.get("/").get_data(as_text=True)
    for field in ("pre_s", "post_s", "max_bytes", "rules", "split", "session", "armed"):
        assert f'name="{field}"' in page
    assert f'<option value="{ses["id"]}">rig &lt;2&gt;</option>' in page
    assert "recording_controls.js" in page
    live = browser.get("/ui/live").get_data(as_text=True)
    assert f'data-post="/recordings/{armed}/trigger"' in live
    assert f'data-post="/recordings/{plain}/trigger"' not in live  # not armed
    assert f'data-post="/recordings/{plain}/split"' in live
    assert f'data-post="/recordings/{armed}/split"' not in live  # triggers make its runs
    for job in (armed, plain):
        for op in ("pause", "stop"):
            assert f'data-post="/recordings/{job}/{op}"' in live
        assert f'data-marker="{job}"' in live and f'id="marker-{job}"' in live
    assert "armed recording" in live  # no run yet: no link to one


def test_run_page_shows_markers_pauses_and_trigger(browser, client, data):
    from recorder import config
    from recorder.db.catalog import Catalog
    from recorder.store.run_writer import RunWriter

    writer = RunWriter(config.runs_dir(data))
    t0 = writer.started_ns
    writer.add_marker("stim <on>", recv_ns=t0 + 1_000_000_000, author="alice")
    writer.add_marker("stim off", recv_ns=t0 + 2_000_000_000)
    writer.set_pauses([{"start_ns": t0 + 500_000_000, "end_ns": t0 + 700_000_000, "messages": 7}])
    trig = {"at_ns": t0, "rule": "count >= 5"}
    writer.set_attr("trigger", {**trig, "pre_s": 1, "post_s": None, "triggers": [trig, trig]})
    writer.close()
    cat = Catalog(config.catalog_url(None, data))
    cat.index_path(writer.path)
    cat.close()

    run = client.get(f"{API}/runs/{writer.run_id}").get_json()
    assert [(m["text"], m.get("author", "")) for m in run["markers"]] == [
        ("stim <on>", "alice"), ("stim off", ""),
    ]  # fmt: skip
    assert run["pauses"][0]["messages"] == 7 and run["trigger"]["rule"] == "count >= 5"
    page = browser.get(f"/runs/{writer.run_id}").get_data(as_text=True)
    assert "stim &lt;on&gt;" in page and "alice" in page and "+1.000 s" in page
    assert page.count('class="marker-mark"') == 2 and page.count('class="pause-mark"') == 1
    assert "by the rule <code>count &gt;= 5</code>" in page and "extended by 1 more" in page
    assert "run_marks.js" in page
    assert "7 messages not stored" in page
