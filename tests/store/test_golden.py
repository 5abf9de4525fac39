"""Runs written by earlier recorders stay readable, replayable and browsable.

tests/golden/format<N>/ holds one small run written by the recorder that wrote format N, and
expected.json: what it must read as (the sha256 of every frame of every message, in order). Each
test runs once per format folder, so a new format adds a folder and nothing here. How the runs
were made: tests/golden/README.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import zmq

from recorder import config
from recorder.protocols.reqrep import unpack_pair
from recorder.store import annotate
from recorder.store.reader import RunReader
from tests.golden.goldens import FOLDERS, copy_into, digests, golden_run
from tests.helpers import free_port, local
from tests.replayhelp import client, quiet, receive, replaying, request, wait_clients

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=FOLDERS)
def golden(request) -> str:
    return request.param


def test_there_is_a_golden_run_per_format():
    assert "format1" in FOLDERS and "format2" in FOLDERS


def test_reader_reads_the_golden_run(golden):
    path, want = golden_run(golden)
    with RunReader(path) as run:
        s = run.summary()
        assert s["format_version"] == want["format_version"]
        for key in ("run_id", "name", "status", "started_ns", "ended_ns", "tags", "meta"):
            assert s[key] == want[key], key
        # notes written before notes had ids read with the id derived from time and text
        assert [{k: v for k, v in n.items() if k != "id"} for n in s["notes"]] == want["notes"]
        assert [n["id"] for n in s["notes"]] == [annotate.legacy_note_id(n) for n in want["notes"]]
        assert sorted(run.streams) == sorted(want["streams"])
        assert digests(run.messages()) == want["messages"]
        for name, ws in want["streams"].items():
            st = run.stream(name)
            assert st.protocol == ws["protocol"]
            assert st.n_messages == ws["messages"]
            assert [list(r) for r in st.rejects()] == ws["rejects"]
            assert st.column_names() == ws["columns"]
            assert st.array_names() == ws["arrays"]
            assert int(st.stats.get("gaps", 0)) == ws["gaps"]
            assert int(st.stats.get("drops", 0)) == ws["drops"]
            for column in st.column_names():
                assert len(st.column(column)) == st.n_messages, (name, column)
            segments = st.array_segments()
            assert len(segments) == ws["segments"]
            for seg in segments:
                rows = st.read_segment(seg.index, 0, seg.rows)
                assert len(rows) == seg.rows and rows.dtype == np.dtype(seg.dtype).newbyteorder("=")
            for array in ws["arrays"]:
                assert sum(len(a) for a in st.arrays(array)) == sum(
                    seg.rows for seg in st.array_segments(array)
                )


def test_format1_golden_values_are_what_the_simulators_sent():
    """A few typed values checked against their source (tests/golden/make_format1.py), not
    only against the bytes."""
    from recorder.simulators import make_simulator

    path, _ = golden_run("format1")
    with RunReader(path) as run:
        st = run.stream("adzmq")
        sim = make_simulator("adzmq", "tcp://127.0.0.1:1234 PUB", height=8, width=8)
        assert np.array_equal(st.arrays("image")[0][0], sim.image(0))
        assert st.column("seq").tolist()[:3] == [1, 2, 4]
        assert st.rejects()[0][0] == 3
        oe = run.stream("openephys")
        assert [seg.placed for seg in oe.array_segments()] == [True, True]  # samples x channels
        assert "event_type" in oe.column_names()
        assert run.stream("reqrep").column("latency_ns")[:2].tolist() == [1_500_000, 2_500_000]
        assert run.annotations()["name"] == "golden format 1 (renamed)"


def _replay_stream(ctx, path: Path, name: str, protocol: str, recorded: list[list[bytes]]):
    """Serve one stream of the run as the recorder's replay does by default; a client of the
    socket the real server had takes the messages. Returns (what it got, what it should)."""
    port = free_port(2)
    with replaying(
        path, streams=[name], endpoints={name: local(port)}, paused=True, max_speed=True
    ) as rp:
        plan = rp.plans[name]
        kind = {"PUB": zmq.SUB, "PUSH": zmq.PULL, "REP": zmq.REQ}[plan.socket_type]
        sock = client(ctx, kind, local(port))
        wait_clients(rp)
        rp.resume()
        if plan.socket_type == "REP" and protocol == "reqrep":
            pairs = [unpack_pair(m) for m in recorded]
            answered = [(req, rep) for req, rep in pairs if rep]
            got = [request(sock, [bytes(f) for f in req]) for req, _ in answered]
            return got, [[bytes(f) for f in rep] for _, rep in answered]
        if plan.socket_type == "REP":
            return [request(sock, [b"next"]) for _ in recorded], recorded
        got = receive(sock, len(recorded))
        assert quiet(sock, 100), "more messages than recorded"
        assert rp.wait(10)
        assert rp.status()["error"] is None
        return got, recorded


@pytest.mark.timeout(120)
def test_replay_of_the_golden_run_sends_the_recorded_bytes(golden, tmp_path):
    path = copy_into(golden, tmp_path / "data")
    _, want = golden_run(golden)
    ctx = zmq.Context()
    try:
        with RunReader(path) as run:
            streams = {n: s.protocol for n, s in run.streams.items()}
        for name, protocol in streams.items():
            mine = [m for m in want["messages"] if m["stream"] == name]
            with RunReader(path) as run:
                recorded = [[bytes(f) for f in m.frames] for m in run.stream(name).messages()]
            assert [[hashlib.sha256(f).hexdigest() for f in m] for m in recorded] == [
                m["frames"] for m in mine
            ]
            got, should = _replay_stream(ctx, path, name, protocol, recorded)
            assert got == should, name
            assert len(got) >= 1
    finally:
        ctx.destroy(linger=0)


def test_web_ui_shows_the_golden_run(golden, tmp_path):
    from recorder.db.catalog import Catalog
    from recorder.web import create_app

    data = tmp_path / "data"
    path = copy_into(golden, data)
    cat = Catalog(config.catalog_url(None, data))
    cat.index_path(path)
    cat.close()
    app = create_app(data)
    secret, _ = app.extensions["recorder"].control.create_token("tests")
    c = app.test_client()
    assert c.post("/login", data={"token": secret}).status_code == 303
    rid = path.name
    api = f"/api/v1/runs/{rid}"
    assert c.get(f"/runs/{rid}").status_code == 200
    assert c.get("/runs").status_code == 200 and rid in c.get("/runs").text
    assert c.get(api).status_code == 200
    with RunReader(path) as run:
        streams = {n: s.array_names() for n, s in run.streams.items()}
    images = plots = 0
    for name, arrays in streams.items():
        r = c.get(f"{api}/streams/{name}/messages?limit=500")
        assert r.status_code == 200, (name, r.text)
        assert len(r.get_json()["messages"]) == len(
            [m for m in golden_run(golden)[1]["messages"] if m["stream"] == name]
        )
        assert c.get(f"{api}/streams/{name}/series?column=recv_ns").status_code == 200
        for array in arrays:  # a waveform plot, or a readable refusal (an image has none)
            r = c.get(f"{api}/streams/{name}/series", query_string={"array": array})
            assert r.status_code in (200, 400), (name, array, r.text)
            plots += r.status_code == 200
        png = c.get(f"{api}/streams/{name}/frames/0.png")
        if png.status_code == 200:
            images += 1
            assert png.data.startswith(b"\x89PNG")
    assert images >= 3  # adzmq, pymultivideo, karabo at least
    assert plots >= 2  # Open Ephys continuous data, Karabo per-pulse values
    assert c.get(f"{api}/download").status_code == 200
