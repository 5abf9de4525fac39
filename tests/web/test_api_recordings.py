"""Recording over the API: saved sources, a real worker recording a real simulator, live
stats, stop, and the run it leaves (browse, tag, rename, previews, delete)."""

from __future__ import annotations

import io

import pytest
import zmq
from PIL import Image

from recorder.store.reader import RunReader
from tests.web.webhelp import API, recorded_run, wait_json


def test_sources_crud_and_validation(client):
    cfg = {"name": "cam", "protocol": "adzmq", "endpoint": "tcp://127.0.0.1:5999"}
    r = client.post(f"{API}/sources", json=cfg)
    assert r.status_code == 201, r.get_json()
    src = r.get_json()
    assert src["name"] == "cam" and src["protocol"] == "adzmq" and src["bind"] is False
    assert client.post(f"{API}/sources", json=cfg).status_code == 409
    assert [s["name"] for s in client.get(f"{API}/sources").get_json()["sources"]] == ["cam"]

    r = client.put(
        f"{API}/sources/cam", json={"endpoint": "tcp://127.0.0.1:6000", "subscribe": ["\u0000a"]}
    )
    assert r.status_code == 200 and r.get_json()["subscribe"] == ["\u0000a"]
    assert client.get(f"{API}/sources/cam").get_json()["endpoint"] == "tcp://127.0.0.1:6000"
    r = client.put(
        f"{API}/sources/new",
        json={"endpoint": "tcp://127.0.0.1:6001", "socket_type": "PULL", "bind": True},
    )
    assert r.status_code == 201

    # Core checks (endpoint syntax, option combinations) come back as 400 with the reason.
    bad = client.put(f"{API}/sources/x", json={"endpoint": "tcp://nowhere"})
    assert bad.status_code == 400
    assert "endpoint" in bad.get_json()["error"]["message"]
    bad = client.put(
        f"{API}/sources/x",
        json={"endpoint": "tcp://127.0.0.1:1", "socket_type": "REQ", "bind": True},
    )
    assert bad.status_code == 400
    # Schema violations are 422 with where and why, without echoing the input.
    bad = client.post(
        f"{API}/sources", json={"name": "x", "endpoint": "tcp://127.0.0.1:1", "colour": 1}
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"][0]["loc"] == ["colour"]
    assert (
        client.post(f"{API}/sources", data="{", content_type="application/json").status_code == 400
    )
    assert client.post(f"{API}/sources", data="name=x").status_code == 415

    assert client.delete(f"{API}/sources/cam").status_code == 204
    assert client.get(f"{API}/sources/cam").status_code == 404
    assert client.delete(f"{API}/sources/cam").status_code == 404


@pytest.mark.timeout(90)
def test_record_a_simulator_stop_browse_tag_delete(client, manager, adzmq_sim, data):
    cam = {"name": "cam", "protocol": "adzmq", "endpoint": adzmq_sim}
    assert client.post(f"{API}/sources", json=cam).status_code == 201
    body = {"sources": ["cam"], "name": "first <light>", "tags": ["beam"], "flush_interval_s": 0.1}
    r = client.post(f"{API}/recordings", json=body)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    job_id, run_id = created["id"], created["run_id"]
    assert created["state"] == "pending"

    live = wait_json(
        client,
        f"{API}/recordings/{job_id}",
        lambda j: j["state"] == "running" and j["messages"] >= 20,
    )
    for k in ("bytes", "rate_bytes_s", "gaps", "drops", "queue_bytes", "pid"):
        assert k in live
    assert live["stats"]["streams"][0]["stream"] == "cam"
    status = client.get(f"{API}/status").get_json()
    assert status["manager"]["alive"] is True
    assert [w["id"] for w in status["workers"]] == [job_id]
    assert status["disk"]["free_bytes"] > 0 and status["data"] == str(data.resolve())
    run = wait_json(client, f"{API}/runs/{run_id}", lambda x: True)
    assert run["status"] == "recording" and run["jobs"] == [job_id]
    # A run being recorded cannot be deleted.
    assert client.delete(f"{API}/runs/{run_id}?confirm={run_id}").status_code == 409

    stopped = client.post(f"{API}/recordings/{job_id}/stop")
    assert stopped.status_code == 200 and stopped.get_json()["desired"] == "stopped"
    done = wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "stopped")
    assert done["error"] is None and done["ended_ns"]
    assert client.post(f"{API}/recordings/{job_id}/stop").status_code == 200  # harmless twice

    run = client.get(f"{API}/runs/{run_id}").get_json()
    assert run["status"] == "complete" and run["name"] == "first <light>" and run["jobs"] == []
    assert run["messages"] == done["messages"] > 0  # everything received was written
    with RunReader(data / "runs" / run_id) as reader:
        assert reader.stream("cam").n_messages == done["messages"]

    # Search.
    def ids(query):
        return [x["run_id"] for x in client.get(f"{API}/runs?{query}").get_json()["runs"]]

    assert ids("") == [run_id]
    assert ids("tag=beam") == ids("q=LIGHT") == ids("protocol=adzmq") == [run_id]
    assert ids("status=complete&since=2000-01-01T00:00:00Z") == [run_id]
    assert ids("tag=other") == ids("protocol=raw") == ids("until=2000-01-01") == []
    page = client.get(f"{API}/runs?limit=1&offset=1").get_json()
    assert page["total"] == 1 and page["runs"] == []

    # Tags, name, notes: in the store and in the catalog.
    r = client.post(f"{API}/runs/{run_id}/tags", json={"tag": "good"})
    assert r.get_json()["tags"] == ["beam", "good"]
    assert client.delete(f"{API}/runs/{run_id}/tags/beam").get_json()["tags"] == ["good"]
    assert client.delete(f"{API}/runs/{run_id}/tags/beam").status_code == 200
    assert ids("tag=good") == [run_id] and ids("tag=beam") == []
    r = client.patch(f"{API}/runs/{run_id}", json={"name": "renamed", "note": "alignment ok"})
    assert r.status_code == 200
    assert r.get_json()["name"] == "renamed"
    assert [n["text"] for n in r.get_json()["notes"]] == ["alignment ok"]
    assert ids("q=alignment") == ids("q=renamed") == [run_id]
    r = client.patch(f"{API}/runs/{run_id}", json={"notes": [{"text": "only this"}]})
    assert [n["text"] for n in r.get_json()["notes"]] == ["only this"]
    with RunReader(data / "runs" / run_id) as reader:
        assert reader.annotations()["tags"] == ["good"]

    # Previews of the recorded frames.
    png = client.get(f"{API}/runs/{run_id}/streams/cam/frames/0.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    img = Image.open(io.BytesIO(png.data))
    assert img.size == (64, 48) and img.mode == "L"
    small = Image.open(
        io.BytesIO(client.get(f"{API}/runs/{run_id}/streams/cam/frames/0.png?size=32").data)
    )
    assert max(small.size) == 32
    assert client.get(f"{API}/runs/{run_id}/streams/cam/frames/99999.png").status_code == 404
    msgs = client.get(f"{API}/runs/{run_id}/streams/cam/messages?limit=2").get_json()
    assert msgs["total"] == done["messages"] and len(msgs["messages"]) == 2
    header, payload = msgs["messages"][0]["frames"]
    assert header["kind"] == "json" and header["value"]["htype"] == "array-1.0"
    assert payload == {"index": 1, "size": 48 * 64 * 2, "kind": "array", "array": "image",
                       "dtype": "<u2", "shape": [48, 64]}  # fmt: skip
    series = client.get(
        f"{API}/runs/{run_id}/streams/cam/series?column=ndattr.Temperature&points=10"
    )
    assert series.status_code == 200, series.get_json()
    s = series.get_json()
    assert len(s["t_s"]) == 10 and s["channels"] == ["ndattr.Temperature"]
    assert all(v is None or 20 < v < 40 for v in s["min"][0])

    # Delete: explicit only.
    assert client.delete(f"{API}/runs/{run_id}").status_code == 400
    assert client.delete(f"{API}/runs/{run_id}?confirm=nope").status_code == 400
    assert client.delete(f"{API}/runs/{run_id}?confirm={run_id}").status_code == 204
    assert client.get(f"{API}/runs/{run_id}").status_code == 404
    assert not (data / "runs" / run_id).exists() and ids("") == []


@pytest.mark.timeout(60)
def test_recording_with_a_duration_finishes_by_itself(client, manager, adzmq_sim):
    r = client.post(f"{API}/recordings", json={
        "sources": [{"protocol": "adzmq", "endpoint": adzmq_sim}], "duration_s": 0.5})  # fmt: skip
    job_id = r.get_json()["id"]
    done = wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "finished")
    assert done["error"] is None and done["messages"] > 0
    assert client.get(f"{API}/runs/{done['run_id']}").get_json()["streams"][0]["name"] == "main"
    assert [x["id"] for x in client.get(f"{API}/recordings").get_json()["recordings"]] == [job_id]


@pytest.mark.timeout(60)
def test_a_source_that_cannot_open_fails_with_the_reason(client, manager, ctx):
    holder = ctx.socket(zmq.PULL)
    holder.bind("tcp://127.0.0.1:*")
    endpoint = holder.getsockopt_string(zmq.LAST_ENDPOINT)
    busy = client.post(f"{API}/recordings", json={"sources": [
        {"endpoint": endpoint, "socket_type": "PULL", "bind": True}]})  # fmt: skip
    failed = wait_json(client, f"{API}/recordings/{busy.get_json()['id']}",
                       lambda j: j["state"] == "failed")  # fmt: skip
    assert "bind" in failed["error"] and endpoint in failed["error"]
    run = client.get(f"{API}/runs/{failed['run_id']}").get_json()
    assert run["status"] == "failed"


def test_recording_requests_are_checked_before_any_worker(client):
    def post(body):
        return client.post(f"{API}/recordings", json=body)

    assert post({"sources": ["missing"]}).status_code == 400
    assert post({"sources": []}).status_code == 422
    one = [{"endpoint": "tcp://127.0.0.1:1"}]
    assert post({"sources": one, "duration_s": -1}).status_code == 422
    assert post({"sources": [*one, {"endpoint": "tcp://127.0.0.2:2", "stream": "s0"}]}
                ).status_code == 400  # fmt: skip
    assert post({"sources": one, "tags": ["../x"]}).status_code == 422
    assert client.get(f"{API}/recordings").get_json()["recordings"] == []


def test_compression_is_chosen_per_source_or_for_the_recording(client):
    def put(name, **extra):
        return client.put(f"{API}/sources/{name}", json={"endpoint": "tcp://127.0.0.1:1", **extra})

    assert put("dark", compression="zstd").get_json()["compression"] == "zstd"
    assert put("raw", compression="none").get_json()["compression"] == "none"
    assert put("any").get_json()["compression"] is None  # the recording's choice
    bad = put("x", compression="lz4")
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["loc"] == [
        "compression"
    ]
    assert client.get(f"{API}/sources/x").status_code == 404

    body = {"sources": ["dark", "raw", "any", {"endpoint": "tcp://127.0.0.1:2"}],
            "compression": "blosc-zstd"}  # fmt: skip
    job = client.post(f"{API}/recordings", json=body).get_json()
    params = client.get(f"{API}/recordings/{job['id']}").get_json()["params"]
    chosen = {s["stream"]: s["compression"] for s in params["sources"]}
    assert chosen == {"dark": "zstd", "raw": "none", "any": "blosc-zstd", "s3": "blosc-zstd"}
    job = client.post(f"{API}/recordings", json={"sources": ["any"]}).get_json()
    params = client.get(f"{API}/recordings/{job['id']}").get_json()["params"]
    assert params["sources"][0]["compression"] == "none"

    for bad_body in (
        {"sources": ["any"], "compression": "gzip"},
        {"sources": [{"endpoint": "tcp://127.0.0.1:2", "compression": 3}]},
    ):
        r = client.post(f"{API}/recordings", json=bad_body)
        assert r.status_code == 422 and r.get_json()["error"]["code"], r.get_json()
    assert len(client.get(f"{API}/recordings").get_json()["recordings"]) == 2


@pytest.mark.timeout(60)
def test_recorded_streams_say_which_compression_they_got(client, manager, adzmq_sim, data):
    cam = {"protocol": "adzmq", "endpoint": adzmq_sim, "compression": "zstd"}
    assert client.put(f"{API}/sources/cam", json=cam).status_code == 201
    r = client.post(f"{API}/recordings", json={
        "sources": ["cam", {"protocol": "adzmq", "endpoint": adzmq_sim, "stream": "copy"}],
        "compression": "blosc-zstd", "duration_s": 0.5})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    done = wait_json(client, f"{API}/recordings/{r.get_json()['id']}",
                     lambda j: j["state"] == "finished")  # fmt: skip
    assert done["error"] is None
    with RunReader(data / "runs" / done["run_id"]) as reader:
        assert reader.streams["cam"].attrs["compression"] == "zstd"
        assert reader.streams["copy"].attrs["compression"] == "blosc-zstd"


def test_stopping_a_pending_recording_needs_no_worker(client):
    job = client.post(
        f"{API}/recordings", json={"sources": [{"endpoint": "tcp://127.0.0.1:1"}]}
    ).get_json()
    r = client.post(f"{API}/recordings/{job['id']}/stop").get_json()
    assert r["state"] == "stopped"
    assert client.get(f"{API}/recordings/nope").status_code == 404


@pytest.mark.timeout(60)
def test_series_of_placed_open_ephys_samples(client, data):
    """The default array is the continuous one even when a spike arrived first (regression:
    the first segment created won, so a late subscriber sometimes got spikes)."""
    # every block has a spike after its 8 channels; block 0's channels are never sent, so the
    # first message the recorder sees (the simulator waits for it) is a spike
    run_id = recorded_run(
        data, "openephys", 200, spike_every=1, skip=set(range(1, 9)), wait_for_subscriber=True
    )
    with RunReader(data / "runs" / run_id) as reader:
        assert reader.stream("main").array_segments()[0].name.startswith("spikes/")
    url = f"{API}/runs/{run_id}/streams/main/series"
    s = client.get(f"{url}?points=50").get_json()
    assert s["array"].startswith("continuous/") and len(s["channels"]) == 8
    assert len(s["t_s"]) == len(s["min"][0]) == 50
    lo = [v for v in s["min"][0] if v is not None]
    hi = [v for v in s["max"][0] if v is not None]
    assert lo and all(a <= b for a, b in zip(lo, hi, strict=True))
    assert min(lo) < -50 and max(hi) > 50  # a 100-amplitude sine, seen through min/max
    window = client.get(f"{url}?start={s['t_s'][10]}&end={s['t_s'][20]}&points=5").get_json()
    assert window["start_s"] == s["t_s"][10] and window["samples"] < s["samples"]
    assert client.get(f"{url}?array=nope").status_code == 404
    assert client.get(f"{url}?start=5&end=1").status_code == 400
    assert client.get(f"{API}/runs/{run_id}/streams/main/frames/1.png").status_code == 404
