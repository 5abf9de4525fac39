"""GET /api/v1/events: server-sent events of job and run changes, on a real catalog."""

from __future__ import annotations

import json

import pytest

from tests.web.webhelp import API, recorded_run

pytestmark = pytest.mark.timeout(60)


def _events(chunks) -> list[tuple[str, dict, str | None]]:
    """The (event, data, id) of the stream's events, read as they come."""
    for chunk in chunks:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            fields = dict(
                line.split(": ", 1)
                for line in block.splitlines()
                if ": " in line and line[0] != ":"
            )
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"]), fields.get("id")


def _until(events, pred, what: str):
    seen = []
    for ev in events:
        seen.append(ev)
        if pred(ev):
            return ev
    raise AssertionError(f"no {what} in {seen}")


def test_jobs_are_told_as_they_are_created_and_finish(client):
    resp = client.get(API + "/events?timeout=8&kinds=job", buffered=False)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    events = _events(resp.response)
    kind, _, first_id = next(events)
    assert kind == "hello" and first_id.isdigit()
    job = client.post(API + "/recordings", json={"sources": [
        {"endpoint": "tcp://127.0.0.1:1", "protocol": "raw"}]}).get_json()  # fmt: skip
    created = _until(events, lambda e: e[0] == "job", "job event")[1]
    assert created == {**created, "id": job["id"], "kind": "record", "change": "created"}
    client.post(f"{API}/recordings/{job['id']}/stop")  # a pending job stops on the spot
    finished = _until(events, lambda e: e[0] == "job" and e[1]["change"] != "created", "finish")
    assert finished[1]["change"] == "finished" and finished[1]["state"] == "stopped"
    last = _until(events, lambda e: e[0] == "bye", "bye")
    assert last[1] == {"reconnect": True}
    resp.close()


def test_run_edits_and_deletions_are_told(client, data):
    run_id = recorded_run(data, "adzmq", 3)
    resp = client.get(API + "/events?timeout=8&kinds=run", buffered=False)
    events = _events(resp.response)
    assert next(events)[0] == "hello"
    client.post(f"{API}/runs/{run_id}/tags", json={"tag": "beam"})
    edited = _until(events, lambda e: e[0] == "run", "run event")[1]
    assert edited == {**edited, "run_id": run_id, "change": "edited"}
    assert client.delete(f"{API}/runs/{run_id}?confirm={run_id}").status_code == 204
    deleted = _until(events, lambda e: e[0] == "run", "deletion")[1]
    assert deleted == {**deleted, "run_id": run_id, "change": "deleted"}
    resp.close()


def test_a_reconnect_is_told_what_happened_meanwhile_and_to_resync(client, data):
    resp = client.get(API + "/events?timeout=0")
    ids = [i for _, _, i in _events([resp.data])]
    assert [e for e, _, _ in _events([resp.data])] == ["hello", "bye"]
    run_id = recorded_run(data, "adzmq", 3)  # while nobody listens
    again = client.get(API + "/events?timeout=0", headers={"Last-Event-ID": ids[-1]})
    told = [(e, d.get("run_id"), d.get("change")) for e, d, _ in _events([again.data])]
    assert ("run", run_id, "created") in told
    assert ("run", run_id, "closed") in told
    assert told[-2][0] == "resync" and told[-1][0] == "bye"
    assert again.data.startswith(b"retry: ")


def test_events_need_a_token(anon):
    assert anon.get(API + "/events?timeout=0").status_code == 401
