"""Every mode of the Open Ephys simulator, recorded for real with ``--protocol openephys``: the
ZMQ Interface's current format (``channel_name``) and the older one, and the Event Broadcaster
in its JSON and binary formats. Bytes come back as sent and every message decodes (no rejects)
into the columns the real plugin's fields give."""

from __future__ import annotations

import json
import struct

import psutil
import pytest
import zmq

from recorder.errors import UsageError
from recorder.recording.recording import SourceSpec
from recorder.simulators import OpenEphysSimulator, make_simulator
from recorder.simulators.event_broadcaster import EventBroadcasterSimulator
from tests.recordhelp import frames_of, record, running, stream_of, summary_of

N = 12


def recorded(ctx, tmp_path, **options):
    sim = make_simulator(
        "openephys", "tcp://127.0.0.1:*", ctx=ctx, wait_for_subscriber=True, rate=0, count=N,
        n_channels=2, n_samples=16, ttl_every=1, spike_every=2, **options,
    )  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="openephys")
    with running(sim):
        path = record(tmp_path, spec, N)
    summary = summary_of(path)
    assert (summary["status"], summary["rejects"], summary["drops"]) == ("complete", 0, 0)
    stream = stream_of(path)
    assert frames_of(stream) == [sim.message(i) for i in range(N)]
    return sim, stream


def column(stream, name: str) -> list:
    return [v.item() if hasattr(v, "item") else v for v in stream.column(name)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["current", "older"])
def test_zmq_interface_formats_record_and_decode(ctx, tmp_path, fmt):
    sim, stream = recorded(ctx, tmp_path, format=fmt)
    data = [i for i in range(N) if sim.plan(i)[0] == "data"]
    headers = [json.loads(sim.message(i)[1]) for i in data]
    names = [h["content"].get("channel_name") for h in headers]
    if fmt == "current":
        assert names == [f"CH{h['content']['channel_num'] + 1}" for h in headers]
        keys = list(headers[0]["content"])
        assert keys[keys.index("channel_num") + 1] == "channel_name"  # the plugin's order
        assert [column(stream, "channel_name")[i] for i in data] == names
    else:
        assert names == [None] * len(data)
        assert "channel_name" not in stream.column_names()
    assert column(stream, "seq") == list(range(1, N + 1))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["json", "binary"])
def test_event_broadcaster_formats_record_and_decode(ctx, tmp_path, fmt):
    sim, stream = recorded(ctx, tmp_path, plugin="event-broadcaster", format=fmt)
    assert isinstance(sim, EventBroadcasterSimulator)
    kinds = [sim.plan(i)[0] for i in range(N)]
    assert set(kinds) == {"ttl", "spike"}  # events only: the plugin sends no continuous data
    assert column(stream, "format") == [fmt] * N
    types = [struct.unpack("<H", sim.message(i)[0])[0] for i in range(N)]
    assert types == [0 if k == "ttl" else 1 for k in kinds]
    samples = column(stream, "sample_number")
    for i, (kind, block, _) in enumerate(sim.plan(i) for i in range(N)):
        assert samples[i] == block * sim.n_samples + (7 if kind == "ttl" else 20), i
    ttl = [i for i, k in enumerate(kinds) if k == "ttl"]
    lines, states = column(stream, "line"), column(stream, "state")
    for i in ttl:
        n = sim.plan(i)[1] // sim.ttl_every
        assert (lines[i], bool(states[i])) == (n % 8, n % 2 == 0), i
    if fmt == "json":
        first = json.loads(sim.message(ttl[0])[1])
        assert list(first) == ["event_type", "stream", "source_node", "sample_rate",
                               "channel_name", "sample_number", "line", "state"]  # fmt: skip
        assert sim.message(ttl[0])[1].startswith(b"{\r\n  ")  # JUCE JSON::toString
        spike = json.loads(sim.message(kinds.index("spike"))[1])
        assert [k for k in spike if k.startswith("amp")] == ["amp1", "amp2"]
    else:
        assert len(sim.message(ttl[0])[1]) == 34  # 24-byte event header + line, state, word
        n_ch, n_s = sim.spike_channels, sim.spike_samples
        assert len(sim.message(kinds.index("spike"))[1]) == 26 + 4 * n_ch + 4 * n_ch * n_s


@pytest.mark.timeout(30)
def test_event_broadcaster_has_no_heartbeat_socket_and_searches_up_for_a_port(ctx):
    taken = ctx.socket(zmq.PUB)
    taken.linger = 0
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    sim = make_simulator("openephys", f"tcp://127.0.0.1:{port}", plugin="event-broadcaster")
    try:
        bound = sim.bind()
        assert bound != f"tcp://127.0.0.1:{port}" and sim.heartbeat_endpoint is None
        bound_port = int(bound.rsplit(":", 1)[1])
        assert bound_port > port
        # nothing of ours listens on port + 1: no heartbeat REP (another process on the
        # machine may hold that port; a bind probe would blame the simulator for it)
        listening = {
            c.laddr.port
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert bound_port in listening and bound_port + 1 not in listening
    finally:
        sim.close()
        taken.close()


def test_bad_modes_are_usage_errors():
    with pytest.raises(UsageError, match="plugin"):
        make_simulator("openephys", plugin="network-events")
    with pytest.raises(UsageError, match="format"):
        make_simulator("openephys", format="newest")
    with pytest.raises(UsageError, match="format"):
        make_simulator("openephys", plugin="event-broadcaster", format="xml")
    assert type(OpenEphysSimulator()) is OpenEphysSimulator  # the ZMQ Interface by default
