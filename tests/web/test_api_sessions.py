"""Sessions over the API: create, list, search, show with runs and totals, edit, close, move runs,
delete; bad input answered with the error envelope and nothing written."""

from __future__ import annotations

import json

import pytest

from recorder import config
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.web.webhelp import API

TEMPLATES = {"mouse": {"subject": ["subject_id", "species", "sex", "age"]}}


@pytest.fixture
def catalog(app):
    return app.extensions["recorder"].catalog


@pytest.fixture
def make_run(data, catalog):
    """A small closed run in the data folder, indexed (in no session)."""

    def make(messages: int = 3, name: str = "made") -> str:
        with RunWriter(config.runs_dir(data), name=name) as w:
            s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                             socket_type="PULL", role="connect")  # fmt: skip
            for i in range(messages):
                s.append(w.started_ns + i * 10_000_000, [b"x" * 100])
        catalog.index_path(w.path)
        return w.run_id

    return make


def session_files(data) -> list:
    folder = data / "sessions"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    return body["error"]


def create(client, **fields) -> dict:
    r = client.post(f"{API}/sessions", json=fields)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_create_list_search_show_edit_close_delete(client, data):
    s = create(client, name="mouse 12", description="V1 imaging", experimenters=["Ada"],
               subject={"subject_id": "m12", "species": "Mus musculus"}, tags=["imaging"],
               notes=[{"text": "calm"}], meta={"rig": 3, "laser": {"nm": 920}})  # fmt: skip
    assert s["id"].startswith("ses-") and s["ended_ns"] is None
    assert json.loads((data / "sessions" / f"{s['id']}.json").read_text())["name"] == "mouse 12"
    other = create(client, name="beamtime", experimenters=["Bo"])

    listed = client.get(f"{API}/sessions").get_json()
    assert listed["total"] == 2 and [x["id"] for x in listed["sessions"]] == [other["id"], s["id"]]
    assert listed["sessions"][1]["runs"] == 0 and listed["sessions"][1]["bytes"] == 0
    for q in ("MUS", "ada", "imaging", "V1"):
        found = client.get(f"{API}/sessions", query_string={"q": q}).get_json()
        assert [x["id"] for x in found["sessions"]] == [s["id"]], q
    page = client.get(f"{API}/sessions", query_string={"limit": 1, "offset": 1}).get_json()
    assert page["total"] == 2 and [x["id"] for x in page["sessions"]] == [s["id"]]

    got = client.get(f"{API}/sessions/{s['id']}").get_json()
    assert got["meta"] == {"rig": 3, "laser": {"nm": 920}} and got["notes"][0]["text"] == "calm"
    assert got["runs"] == [] and got["totals"]["runs"] == 0

    patched = client.patch(f"{API}/sessions/{s['id']}", json={"description": "V1, day 2"})
    assert patched.status_code == 200, patched.get_json()
    after = patched.get_json()
    assert after["description"] == "V1, day 2" and after["experimenters"] == ["Ada"]
    assert after["subject"] == s["subject"] and after["updated_ns"] > s["updated_ns"]

    closed = client.post(f"{API}/sessions/{s['id']}/close").get_json()
    assert closed["ended_ns"] is not None
    again = client.post(f"{API}/sessions/{s['id']}/close").get_json()
    assert again["ended_ns"] == closed["ended_ns"]
    opened = client.get(f"{API}/sessions", query_string={"open": "true"}).get_json()
    assert [x["id"] for x in opened["sessions"]] == [other["id"]]

    assert client.delete(f"{API}/sessions/{other['id']}").status_code == 204
    assert session_files(data) == [f"{s['id']}.json"]
    error(client.get(f"{API}/sessions/{other['id']}"), 404)
    error(client.delete(f"{API}/sessions/{other['id']}"), 404)


def test_runs_move_between_sessions_and_show_it(client, data, make_run):
    a = create(client, name="a")
    b = create(client, name="b")
    r1, r2 = make_run(3), make_run(5)
    runs = config.runs_dir(data)
    for run in (r1, r2):
        r = client.put(f"{API}/runs/{run}/session", json={"session": a["id"]})
        assert r.get_json() == {"run_id": run, "session": a["id"]}
    got = client.get(f"{API}/sessions/{a['id']}").get_json()
    assert [x["run_id"] for x in got["runs"]] == [r1, r2]
    assert {"name", "started_ns", "ended_ns", "bytes", "status", "duration_s"} <= set(
        got["runs"][0]
    )
    t = got["totals"]
    assert t["runs"] == 2 and t["messages"] == 8 and t["gaps"] == 0 and t["drops"] == 0
    assert t["bytes"] == sum(x["bytes"] for x in got["runs"]) > 0
    assert t["duration_s"] == pytest.approx(sum(x["duration_s"] for x in got["runs"]))
    listed = client.get(f"{API}/sessions").get_json()["sessions"]
    assert {x["id"]: x["runs"] for x in listed} == {a["id"]: 2, b["id"]: 0}

    # the run says so, in its store and over the API
    assert RunReader(runs / r1).summary()["session"]["id"] == a["id"]
    run = client.get(f"{API}/runs/{r1}").get_json()
    assert run["session"] == a["id"] and run["session_name"] == "a"
    items = {x["run_id"]: x["session"] for x in client.get(f"{API}/runs").get_json()["runs"]}
    assert items == {r1: a["id"], r2: a["id"]}

    # an edit reaches the copies in the runs
    client.patch(f"{API}/sessions/{a['id']}", json={"name": "a renamed"})
    assert RunReader(runs / r2).summary()["session"]["name"] == "a renamed"

    # moved to b, then out of any
    client.put(f"{API}/runs/{r1}/session", json={"session": b["id"]})
    assert [x["run_id"] for x in client.get(f"{API}/sessions/{b['id']}").get_json()["runs"]] == [r1]
    assert RunReader(runs / r1).summary()["session"]["name"] == "b"
    error(client.delete(f"{API}/sessions/{b['id']}"), 409)
    r = client.put(f"{API}/runs/{r1}/session", json={"session": None})
    assert r.get_json() == {"run_id": r1, "session": None}
    assert RunReader(runs / r1).summary()["session"] is None
    assert client.get(f"{API}/runs/{r1}").get_json()["session"] is None
    assert client.delete(f"{API}/sessions/{b['id']}").status_code == 204


def test_templates_require_their_subject_fields(client, data):
    (data / "session_templates.json").write_text(json.dumps(TEMPLATES))
    e = error(client.post(f"{API}/sessions", json={"name": "m", "template": "mouse",
                                                    "subject": {"subject_id": "m1", "sex": ""}}),
              400)  # fmt: skip
    assert "species, sex, age" in e["message"] and e["code"] == "bad_request"
    e = error(client.post(f"{API}/sessions", json={"name": "m", "template": "rat"}), 400)
    assert "unknown session template 'rat'" in e["message"] and "mouse" in e["message"]
    assert session_files(data) == []

    full = {"subject_id": "m1", "species": "Mus", "sex": "F", "age": "P90D"}
    s = create(client, name="m", template="mouse", subject=full)
    # an edit that takes a required field away is refused and changes nothing
    e = error(client.patch(f"{API}/sessions/{s['id']}", json={"subject": {"subject_id": "m1"}}),
              400)  # fmt: skip
    assert "species" in e["message"]
    assert client.get(f"{API}/sessions/{s['id']}").get_json()["subject"] == full
    # other edits do not need the template again
    ok = client.patch(f"{API}/sessions/{s['id']}", json={"description": "d"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"description": "no name"},
        {"name": ""},
        {"name": "x", "colour": "red"},
        {"name": "x", "subject": {"age": 12}},
        {"name": "x", "experimenters": "Ada"},
        {"name": "x", "tags": ["../etc"]},
        {"name": "x", "notes": [{"txt": "typo"}]},
        {"name": "x", "meta": []},
    ],
)
def test_bad_bodies_are_refused_and_write_nothing(client, data, body):
    r = client.post(f"{API}/sessions", json=body)
    assert r.status_code in (400, 422)
    error(r, r.status_code)
    assert session_files(data) == []


def test_control_characters_are_refused(client, data):
    error(client.post(f"{API}/sessions", json={"name": "a\x00b"}), 400)
    assert session_files(data) == []


@pytest.mark.parametrize(
    "bad",
    ["..", "..%2F..%2Fetc%2Fpasswd", "ses-20261202-031500-3fa2c1.json", "ses-x",
     "%2e%2e", "ses-20261202-031500-3FA2C1", "ses-20261202-031500-3fa2c1%00"],
)  # fmt: skip
def test_bad_session_ids_are_404_and_touch_nothing(client, data, make_run, bad):
    good = create(client, name="kept")
    before = (data / "sessions" / f"{good['id']}.json").read_bytes()
    run = make_run()
    entries = sorted(p.name for p in data.iterdir())
    for method, url, body in [
        ("get", f"{API}/sessions/{bad}", None),
        ("patch", f"{API}/sessions/{bad}", {"name": "evil"}),
        ("post", f"{API}/sessions/{bad}/close", None),
        ("delete", f"{API}/sessions/{bad}", None),
    ]:
        r = getattr(client, method)(url, json=body)
        assert r.status_code in (404, 405), (method, url, r.status_code)
        error(r, r.status_code)
    error(client.put(f"{API}/runs/{run}/session", json={"session": bad}), 404)
    error(client.put(f"{API}/runs/{run}/session", json={"session": "../" + good["id"]}), 404)
    assert session_files(data) == [f"{good['id']}.json"]
    assert (data / "sessions" / f"{good['id']}.json").read_bytes() == before
    assert "session" not in RunReader(config.runs_dir(data) / run).annotations()
    assert sorted(p.name for p in data.iterdir()) == entries


def test_moving_an_unknown_run_or_to_an_unknown_session(client, make_run):
    s = create(client, name="s")
    error(client.put(f"{API}/runs/20260101-000000-000000/session", json={"session": s["id"]}), 404)
    error(client.put(f"{API}/runs/..%2Fx/session", json={"session": s["id"]}), 404)
    run = make_run()
    nowhere = {"session": "ses-20260101-000000-abcdef"}
    e = error(client.put(f"{API}/runs/{run}/session", json=nowhere), 404)
    assert "no session" in e["message"]
    error(client.put(f"{API}/runs/{run}/session", json={}), 422)
    error(client.put(f"{API}/runs/{run}/session", json={"session": s["id"], "x": 1}), 422)


def test_sessions_need_a_token(anon):
    assert anon.get(f"{API}/sessions").status_code == 401
    assert anon.post(f"{API}/sessions", json={"name": "x"}).status_code == 401
