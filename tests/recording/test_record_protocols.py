"""Simulator -> recorder -> store, end to end, for every protocol and its variants.

Each test runs one of our faithful simulators (or a raw socket) on loopback with random ports,
records it with a real `Recording` into tmp_path and checks what the run gives back: typed
arrays equal to what was sent (computed from the simulator's own generators), every frame byte
for byte (mapped to `simulator.message(i)` through the protocol's sequence numbers), gap counts
as `recorder info --json` reports them, and rejects kept verbatim with their reasons.

Open Ephys continuous data is being re-laid out as (samples, channels) by another change, so
for it only bytes, spikes, TTL columns and sequence numbers are checked here, never the shape of
the continuous arrays.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import zmq

from recorder.protocols import adzmq
from recorder.protocols.reqrep import pack_pair
from recorder.recording.recording import SourceSpec
from recorder.simulators import (
    AdzmqSimulator,
    KaraboSimulator,
    OpenEphysSimulator,
    PyMultiVideoSimulator,
    ReqRepServer,
)
from recorder.simulators.karabo import FIRST_TRAIN
from recorder.store.reader import RunReader
from tests.recordhelp import (
    assert_rows_equal,
    frames_of,
    gaps_in,
    received,
    record,
    rows,
    running,
    stream_of,
    summary_of,
)

INT_MISSING = np.iinfo(np.int64).min
OE_SIZE = {
    "n_channels": 2,
    "n_samples": 32,
    "ttl_every": 2,
    "spike_every": 3,
    "spike_channels": 2,
    "spike_samples": 20,
}
OE_SPIKES = "spikes/example_data/Tetrode 1"


def _seqs(stream) -> list[int]:
    return [int(s) for s in stream.column("seq")]


def _assert_clean(summary: dict, gaps: int = 0) -> None:
    assert summary["status"] == "complete"
    assert (summary["gaps"], summary["drops"], summary["rejects"]) == (gaps, 0, 0)
    assert summary["streams"][0]["gaps"] == gaps


# ----------------------------------------------------------------------------- Open Ephys


def _oe_sim(ctx, legacy: bool, **kw) -> OpenEphysSimulator:
    size = {"n_channels": 4, "n_samples": 16} if legacy else OE_SIZE
    return OpenEphysSimulator(
        "tcp://127.0.0.1:*", ctx=ctx, wait_for_subscriber=True, legacy=legacy, **size, **kw
    )


def _check_openephys(stream, sim: OpenEphysSimulator, seqs: list[int]) -> None:
    """Bytes, sequence numbers, source times, spikes and TTL columns of a recorded stream."""
    index = [s - 1 for s in seqs]  # message_num counts from 1
    assert frames_of(stream) == [sim.message(i) for i in index]
    plans = [sim.plan(i) for i in index]
    if sim.legacy:  # no timestamp in 0.2.x headers; continuous data only
        assert all(kind == "legacy" for kind, _, _ in plans)
        assert set(stream.column("source_ns")) == {-1}
        return
    ms = [sim.start_ms + (block * sim.n_samples * 1000) // 30000 for _, block, _ in plans]
    assert list(stream.column("source_ns")) == [t * 1_000_000 for t in ms]
    spikes = [block for kind, block, _ in plans if kind == "spike"]
    assert spikes, "the recording should hold a few spikes"
    assert_rows_equal(rows(stream, OE_SPIKES), [sim.waveform(b) for b in spikes])
    line, state, word = (stream.column(c) for c in ("line", "state", "word"))
    event_type, sample_num = stream.column("event_type"), stream.column("sample_num")
    for k, (kind, block, _) in enumerate(plans):
        if kind == "ttl":
            n = block // sim.ttl_every
            on = n % 2 == 0
            expected = (n % 8, int(on), (1 << n % 8) if on else 0, 3, block * sim.n_samples + 7)
            got = (line[k], state[k], word[k], event_type[k], sample_num[k])
            assert tuple(int(v) for v in got) == expected, k
        else:
            assert line[k] == INT_MISSING and event_type[k] == INT_MISSING, k


@pytest.mark.timeout(60)
@pytest.mark.parametrize("legacy", [False, True], ids=["current", "legacy"])
def test_openephys_recorder_heartbeats_like_a_gui_client(ctx, tmp_path, legacy):
    """The GUI counts a client only while it heartbeats on data port + 1: the recorder must."""
    sim = _oe_sim(ctx, legacy, rate=300.0)  # no count: publishes until stopped
    spec = SourceSpec(sim.bind(), protocol="openephys")
    with running(sim):
        path = record(tmp_path, spec, until=lambda rec: received(60)(rec) and bool(sim.heartbeats))
    beat = json.loads(sim.heartbeats[0])
    assert beat["application"] == "zmq-recorder" and beat["type"] == "heartbeat"
    assert uuid.UUID(beat["uuid"]).version == 4
    assert all(json.loads(b)["uuid"] == beat["uuid"] for b in sim.heartbeats)
    stream = stream_of(path)
    seqs = _seqs(stream)
    assert len(seqs) >= 60 and seqs == list(range(1, len(seqs) + 1))  # nothing lost
    _check_openephys(stream, sim, seqs)
    _assert_clean(summary_of(path))
    assert stream.protocol == "openephys" and stream.socket_type == "SUB"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("legacy", [False, True], ids=["current", "legacy"])
def test_openephys_skipped_message_numbers_are_gaps(ctx, tmp_path, legacy):
    skip = {5, 17, 18, 30}
    sim = _oe_sim(ctx, legacy, rate=0, count=40, skip=frozenset(skip))
    spec = SourceSpec(sim.bind(), protocol="openephys")
    with running(sim):
        path = record(tmp_path, spec, count=40 - len(skip))
    stream = stream_of(path)
    seqs = _seqs(stream)
    assert seqs == [n for n in range(1, 41) if n not in skip]
    _check_openephys(stream, sim, seqs)
    _assert_clean(summary_of(path), gaps=len(skip))


# ----------------------------------------------------------------------------- ADZMQ

ADZMQ_SKIP = frozenset({3, 7})
ADZMQ_COUNT = 12


@contextlib.contextmanager
def _adzmq_recording(ctx, tmp_path, transport: str, **sim_options):
    """Record an NDPluginZMQ stream over one of its three wirings; yields (sim, run path).

    PUB: the plugin binds PUB (``tcp://*:port``) and the recorder subscribes like ZMQDriver to
    ``{`` and ``STOP``. push-connect: the plugin's default without ``*`` (PUSH connecting to a
    recorder that binds PULL). push-bind: ``PUSH BIND`` with the recorder connecting PULL.
    """
    count = ADZMQ_COUNT - len(ADZMQ_SKIP) + 1  # + the STOP frame
    opts = {
        "rate": 0,
        "count": ADZMQ_COUNT,
        "skip": ADZMQ_SKIP,
        "ctx": ctx,
        "wait_for_subscriber": True,
        "send_stop": True,
        **sim_options,
    }
    if transport == "push-connect":
        holder: list[AdzmqSimulator] = []
        with contextlib.ExitStack() as stack:

            def connect_sim(rec):
                sim = AdzmqSimulator(rec.streams[0].bound_endpoint, **opts)
                holder.append(sim)
                stack.enter_context(running(sim))

            spec = SourceSpec("tcp://127.0.0.1:*", socket_type="PULL", bind=True, protocol="adzmq")
            path = record(tmp_path, spec, count=count, on_started=connect_sim)
        yield holder[0], path
        return
    if transport == "PUB":
        sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", **opts)
        spec = SourceSpec(sim.bind(), protocol="adzmq", subscribe=[b"{", b"STOP"])
    else:
        sim = AdzmqSimulator("tcp://127.0.0.1:* PUSH BIND", **opts)
        spec = SourceSpec(sim.bind(), socket_type="PULL", protocol="adzmq")
    with running(sim):
        path = record(tmp_path, spec, count=count)
    yield sim, path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("variant", adzmq.VARIANTS)
@pytest.mark.parametrize("transport", ["PUB", "push-connect", "push-bind"])
def test_adzmq_variants_and_wirings(ctx, tmp_path, variant, transport):
    with _adzmq_recording(ctx, tmp_path, transport, variant=variant, height=12, width=20) as (
        sim,
        path,
    ):
        pass
    assert sim.dropped == 0
    stream = stream_of(path)
    seqs = _seqs(stream)
    want = [n for n in range(1, ADZMQ_COUNT + 1) if n not in ADZMQ_SKIP]
    assert seqs == [*want, -1]  # STOP has no frame number
    index = [n - 1 for n in want]
    assert frames_of(stream) == [*(sim.message(i) for i in index), [adzmq.STOP]]
    # typed images in C order whatever order the header lists the shape in
    assert_rows_equal(rows(stream, "image"), [sim.image(i) for i in index])
    assert stream.array_names() == ["image"]
    n = len(index)
    assert list(stream.column("ndattr.Counter")[:n]) == want
    temps = stream.column("ndattr.Temperature")[:n]
    exposures = stream.column("ndattr.Exposure")[:n]
    if variant == "chunk":  # Diamond's sender: default stream precision, no timeStamp
        assert list(temps) == [float(f"{sim.ndattr(i)['Temperature']:g}") for i in index]
        assert set(stream.column("source_ns")) == {-1}
    else:
        assert list(temps) == [sim.ndattr(i)["Temperature"] for i in index]
        assert [np.float32(e) for e in exposures] == [sim.ndattr(i)["Exposure"] for i in index]
        assert list(stream.column("timeStamp")[:n]) == [sim.timestamp(i) for i in index]
        source_ns = stream.column("source_ns")[:n]
        for ns, i in zip(source_ns, index, strict=True):
            assert abs(int(ns) - sim.timestamp(i) * 1e9) < 1e3
    _assert_clean(summary_of(path), gaps=len(ADZMQ_SKIP))


def _push_into(ctx, messages: list[list[bytes]]):
    """`on_started` hook: a raw PUSH peer connects to the recorder's PULL and sends these."""
    socks: list[zmq.Socket] = []

    def send(rec):
        sock = ctx.socket(zmq.PUSH)
        sock.linger = 5000
        socks.append(sock)
        sock.connect(rec.streams[0].bound_endpoint)
        for frames in messages:
            sock.send_multipart(frames)

    return send, socks


@pytest.mark.timeout(60)
def test_adzmq_float_ndattr_column_keeps_values_after_an_integral_first_one(ctx, tmp_path):
    """NDPluginZMQ prints a float64 attribute of 1.0 as ``1``: no later fraction may be lost
    (regression: it was typed int64 by its first value and lost every later fraction). The
    header gives no type, so the integer literal makes an int64 column and the values from the
    first fraction on go to ndattr.<name>.float64."""
    image = np.zeros((2, 3), np.uint16)
    gains = [1.0, 1.5, 2.25]
    sent = [adzmq.encode_array(image, i + 1, 1.0 + i, {"Gain": g}) for i, g in enumerate(gains)]
    assert b'"Gain":1}' in sent[0][0]  # what NDPluginZMQ really writes for 1.0
    send, socks = _push_into(ctx, sent)
    spec = SourceSpec("tcp://127.0.0.1:*", socket_type="PULL", bind=True, protocol="adzmq")
    try:
        path = record(tmp_path, spec, count=len(sent), on_started=send)
    finally:
        for sock in socks:
            sock.close()
    stream = stream_of(path)
    assert frames_of(stream) == sent
    assert stream.column("ndattr.Gain").tolist()[:1] == [1]
    assert stream.column("ndattr.Gain.float64").tolist()[1:] == gains[1:]


# ----------------------------------------------------------------------------- pyMultiVideo


@pytest.mark.timeout(60)
def test_pymultivideo_images_and_camera_times(ctx, tmp_path):
    """pyMultiVideo has no frame counter: skipped frames cannot show up as gaps."""
    skip = {2, 5}
    sim = PyMultiVideoSimulator(
        "tcp://127.0.0.1:*", rate=0, count=9, skip=frozenset(skip), ctx=ctx,
        wait_for_subscriber=True, height=48, width=64, unique_id="cam7",
    )  # fmt: skip
    spec = SourceSpec(sim.bind(), protocol="pymultivideo", subscribe=[b"image"])
    with running(sim):
        path = record(tmp_path, spec, count=9 - len(skip))
    stream = stream_of(path)
    index = [i for i in range(9) if i not in skip]
    assert frames_of(stream) == [sim.message(i) for i in index]
    assert_rows_equal(rows(stream, "image"), [sim.image(i) for i in index])
    assert list(stream.column("source_ns")) == [sim.timestamp(i) for i in index]
    assert stream.column("source_ns")[0] == 0  # the GUI's first timestamp
    assert set(stream.column("unique_id")) == {"cam7"}
    assert set(stream.column("seq")) == {-1}
    _assert_clean(summary_of(path), gaps=0)


# ----------------------------------------------------------------------------- Karabo bridge

KARABO_SKIP = frozenset({FIRST_TRAIN + 3, FIRST_TRAIN + 4})


def _train_arrays(sim: KaraboSimulator, i: int) -> dict[str, np.ndarray]:
    """Arrays of a train by name; lists of numbers (modulesPresent) are typed arrays too."""
    data, _ = sim.train(i)
    out = {}
    for src, values in data.items():
        for key, value in values.items():
            if isinstance(value, list) and value and np.asarray(value).dtype.kind in "biuf":
                value = np.asarray(value)
            if isinstance(value, np.ndarray):
                out[f"{src}:{key}"] = value
    return out


def _karabo_source_ns(sim: KaraboSimulator, i: int) -> int:
    meta = next(iter(sim.train(i)[1].values()))
    return int(meta["timestamp.sec"]) * 1_000_000_000 + int(meta["timestamp.frac"][:9])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["2.2", "1.0"])
@pytest.mark.parametrize("mode", ["REP", "PUSH", "PUB"])
def test_karabo_simulator_trains(ctx, tmp_path, mode, protocol):
    common = {"socket": mode, "protocol": protocol, "ctx": ctx, "n_sources": 2}
    if mode == "PUB":  # HWM 1 like the real bridge: paced, and whatever arrives is checked
        sim = KaraboSimulator("tcp://127.0.0.1:*", rate=200.0, wait_for_subscriber=True, **common)
        count = 8
    else:
        sim = KaraboSimulator("tcp://127.0.0.1:*", rate=None, count=10, skip=KARABO_SKIP, **common)
        count = 10 - len(KARABO_SKIP)
    socket_type = {"REP": "REQ", "PUSH": "PULL", "PUB": "SUB"}[mode]
    spec = SourceSpec(sim.bind(), socket_type=socket_type, protocol="karabo")
    with running(sim):
        path = record(tmp_path, spec, count=count)
    stream = stream_of(path)
    tids = _seqs(stream)
    if mode == "PUB":
        assert tids[0] == FIRST_TRAIN and tids == sorted(set(tids))
    else:
        assert tids == [t for t in range(FIRST_TRAIN, FIRST_TRAIN + 10) if t not in KARABO_SKIP]
    index = [t - FIRST_TRAIN for t in tids]
    assert frames_of(stream) == [sim.message(i) for i in index]
    assert list(stream.column("train_id")) == tids
    assert set(stream.column("protocol_version")) == {protocol}
    assert list(stream.column("source_ns")) == [_karabo_source_ns(sim, i) for i in index]
    # every array of every source is its own typed array: the frame itself in 2.2, a typed
    # copy beside the verbatim msgpack frame in 1.0 (all of the simulator's arrays are numeric)
    expected = [_train_arrays(sim, i) for i in index]
    assert stream.array_names() == sorted(expected[0])
    for name in expected[0]:
        assert_rows_equal(rows(stream, name), [train[name] for train in expected])
    _assert_clean(summary_of(path), gaps=gaps_in(tids))
    if mode != "PUB":
        assert summary_of(path)["gaps"] == len(KARABO_SKIP)


# ----------------------------------------------------------------------------- request/reply


def _client(ctx, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.rcvtimeo = 10_000
    sock.connect(endpoint)
    return sock


def _proxy_spec(upstream: str) -> SourceSpec:
    return SourceSpec("tcp://127.0.0.1:*", protocol="reqrep", upstream=upstream)


@pytest.mark.timeout(60)
def test_reqrep_proxy_is_transparent_and_stores_pairs(ctx, tmp_path):
    """Two tutorial clients talk through the recorder at once; each gets its own answers."""
    server = ReqRepServer("tcp://127.0.0.1:*", ctx=ctx)
    clients: list[zmq.Socket] = []

    def talk(rec):
        front = rec.streams[0].bound_endpoint
        a, b = _client(ctx, front), _client(ctx, front)
        clients.extend((a, b))
        for i in range(0, 6, 2):  # a: send_pyobj, b: send_json, interleaved
            a.send_pyobj(server.array(i))
            b.send_json(server.array(i + 1).tolist())
            np.testing.assert_array_equal(b.recv_json(), server.array(i + 1) ** 2)
            got = a.recv_pyobj()  # the test trusts its own server's pickles
            assert isinstance(got, np.ndarray)
            np.testing.assert_array_equal(got, server.array(i) ** 2)

    with running(server):
        try:
            path = record(tmp_path, _proxy_spec(server.bind()), count=6, on_started=talk)
        finally:
            for c in clients:
                c.close()
    stream = stream_of(path)
    stored = frames_of(stream)
    # replies may come back in either client's order; each pair is request + its own reply
    assert sorted(stored) == sorted(server.message(i) for i in range(6))
    recv_ns, request_ns = stream.column("recv_ns"), stream.column("request_ns")
    latency = stream.column("latency_ns")
    assert list(latency) == list(recv_ns - request_ns) and (latency > 0).all()
    contents = {bytes(f[1])[:1]: c for f, c in zip(stored, stream.column("content"), strict=True)}
    assert contents == {b"\x80": "pickle", b"[": "json"}
    assert list(stream.column("content")) == list(stream.column("reply_content"))
    assert stream.protocol == "reqrep" and stream.socket_type == "REP"
    assert stream.attrs["options"]["upstream"] == server.bound_endpoint
    _assert_clean(summary_of(path))


@pytest.mark.timeout(60)
def test_reqrep_unanswered_request_is_kept(ctx, tmp_path):
    """A request the service never answers is still in the run, with no reply and no latency."""
    service = ctx.socket(zmq.REP)
    service.linger = 0
    service.bind("tcp://127.0.0.1:*")
    client: list[zmq.Socket] = []

    def talk(rec):
        c = _client(ctx, rec.streams[0].bound_endpoint)
        client.append(c)
        c.send(b"first")
        assert service.poll(10_000) and service.recv() == b"first"
        service.send(b"one")
        assert c.recv() == b"one"
        c.send(b"second")
        assert service.poll(10_000) and service.recv() == b"second"  # and no answer

    try:
        path = record(
            tmp_path,
            _proxy_spec(service.getsockopt_string(zmq.LAST_ENDPOINT)),
            on_started=talk,
            until=lambda rec: True,  # stop as soon as the exchange above is done
        )
    finally:
        for c in client:
            c.close()
        service.close()
    stream = stream_of(path)
    assert frames_of(stream) == [pack_pair([b"first"], [b"one"]), pack_pair([b"second"], [])]
    assert list(stream.column("reply_frames")) == [1, 0]
    assert list(stream.column("reply_content")) == ["bytes", ""]
    latency, request_ns = stream.column("latency_ns"), stream.column("request_ns")
    assert latency[0] > 0 and latency[1] == INT_MISSING
    recv_ns = stream.column("recv_ns")
    assert request_ns[1] >= request_ns[0] + latency[0]  # asked after the first answer came
    assert recv_ns[1] >= request_ns[1] and recv_ns[1] >= recv_ns[0]


@pytest.mark.timeout(60)
def test_reqrep_unanswered_request_keeps_receive_time_order(ctx, tmp_path):
    """A ROUTER service (a broker, a worker pool) answers a later client first; the unanswered
    request must not go back in time (regression: it was stamped with its request time, so
    recv_ns went backwards and messages(stop=...) yielded messages from after the stop)."""
    service = ctx.socket(zmq.ROUTER)
    service.linger = 0
    service.bind("tcp://127.0.0.1:*")
    clients: list[zmq.Socket] = []

    def talk(rec):
        slow, fast = (_client(ctx, rec.streams[0].bound_endpoint) for _ in range(2))
        clients.extend((slow, fast))
        slow.send(b"slow")
        assert service.poll(10_000) and service.recv_multipart()[-1] == b"slow"
        fast.send(b"fast")
        assert service.poll(10_000)
        *envelope, body = service.recv_multipart()
        assert body == b"fast"
        service.send_multipart([*envelope, b"done"])
        assert fast.recv() == b"done"

    try:
        path = record(
            tmp_path,
            _proxy_spec(service.getsockopt_string(zmq.LAST_ENDPOINT)),
            on_started=talk,
            until=lambda rec: True,
        )
    finally:
        for c in clients:
            c.close()
        service.close()
    run = RunReader(path)
    stream = run.stream("main")
    assert sorted(frames_of(stream)) == sorted(
        [pack_pair([b"fast"], [b"done"]), pack_pair([b"slow"], [])]
    )
    recv = [int(t) for t in stream.column("recv_ns")]
    mid = (min(recv) + max(recv)) // 2
    early = list(run.messages(stop=(mid - run.started_ns) / 1e9))
    assert all(m.recv_ns < mid for m in early), [(m.recv_ns, mid) for m in early]
    assert recv == sorted(recv)


# ----------------------------------------------------------------------------- auto-detection


@dataclass
class AutoCase:
    protocol: str
    socket_type: str
    make: Any  # ctx -> simulator, counted and waiting for its peer
    index: Any  # seq -> simulator message index (None: arrival order)


AUTO_CASES = {
    "openephys": AutoCase(
        "openephys", "SUB", lambda ctx: _oe_sim(ctx, False, rate=0, count=14), lambda s: s - 1
    ),
    "openephys-legacy": AutoCase(
        "openephys", "SUB", lambda ctx: _oe_sim(ctx, True, rate=0, count=14), lambda s: s - 1
    ),
    "adzmq": AutoCase(
        "adzmq",
        "SUB",
        lambda ctx: AdzmqSimulator(
            "tcp://127.0.0.1:* PUB", rate=0, count=14, ctx=ctx, wait_for_subscriber=True
        ),
        lambda s: s - 1,
    ),
    "pymultivideo": AutoCase(
        "pymultivideo",
        "SUB",
        lambda ctx: PyMultiVideoSimulator(
            "tcp://127.0.0.1:*", rate=0, count=14, ctx=ctx, wait_for_subscriber=True
        ),
        None,
    ),
    "karabo-2.2-REP": AutoCase(
        "karabo",
        "REQ",
        lambda ctx: KaraboSimulator("tcp://127.0.0.1:*", rate=None, count=14, ctx=ctx),
        lambda s: s - FIRST_TRAIN,
    ),
    "karabo-1.0-PUSH": AutoCase(
        "karabo",
        "PULL",
        lambda ctx: KaraboSimulator(
            "tcp://127.0.0.1:*", socket="PUSH", protocol="1.0", rate=None, count=14, ctx=ctx
        ),
        lambda s: s - FIRST_TRAIN,
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(AUTO_CASES))
def test_auto_detects_each_protocol(ctx, tmp_path, case):
    c = AUTO_CASES[case]
    sim = c.make(ctx)
    spec = SourceSpec(sim.bind(), socket_type=c.socket_type, protocol="auto")
    with running(sim):
        path = record(tmp_path, spec, count=14)
    stream = stream_of(path)
    assert stream.attrs["protocol"] == c.protocol
    assert stream.attrs["protocol_detected"] is True
    assert summary_of(path)["streams"][0]["protocol"] == c.protocol
    seqs = _seqs(stream)
    index = list(range(14)) if c.index is None else [c.index(s) for s in seqs]
    assert index == list(range(14))  # decoded after detection, the first ten included
    assert frames_of(stream) == [sim.message(i) for i in index]
    if c.protocol in ("adzmq", "pymultivideo"):
        assert_rows_equal(rows(stream, "image"), [sim.image(i) for i in index])
    if case == "karabo-2.2-REP":
        name = "SIM_DET_SMALL/CAL/APPEND_CORRECTED:image.data"
        assert_rows_equal(rows(stream, name), [_train_arrays(sim, i)[name] for i in index])
    _assert_clean(summary_of(path))


@pytest.mark.timeout(60)
def test_auto_detected_openephys_heartbeats_like_a_gui_client(ctx, tmp_path):
    """Once `auto` has recognised Open Ephys, the recorder heartbeats like the explicit
    protocol does (regression: only spec.protocol == 'openephys' started the heartbeat)."""
    sim = _oe_sim(ctx, False, rate=300.0)
    spec = SourceSpec(sim.bind(), protocol="auto")
    with running(sim):
        path = record(
            tmp_path,
            spec,
            until=lambda rec: received(30)(rec) and bool(sim.heartbeats),
            timeout=10,
        )
    assert stream_of(path).attrs["protocol"] == "openephys"
    assert json.loads(sim.heartbeats[0])["type"] == "heartbeat"


# ----------------------------------------------------------------------------- malformed input


def _adzmq_malformed():
    """1 MiB images, so the big-frame (zero-copy) receive path sees rejects too."""
    sim = AdzmqSimulator(height=512, width=1024)
    good = [sim.message(i) for i in range(4)]
    header, data = sim.message(9)
    bad = [
        ([b"{not json", b"x"], "header is not valid JSON"),
        ([header, data[:-2]], "data is 1048574 bytes but shape [512, 1024]"),
        ([b"a", b"b", b"c"], "needs 2 frames"),
    ]
    return (
        good,
        bad,
        lambda stream, seqs, _: assert_rows_equal(
            rows(stream, "image"), [sim.image(s - 1) for s in seqs]
        ),
    )


def _openephys_malformed():
    sim = OpenEphysSimulator(**OE_SIZE)
    good = [sim.message(i) for i in (4, 7, 10, 16)]  # TTL, spike, TTL, spike
    envelope, header, payload = sim.message(0)
    bad = [
        ([envelope, b"{", payload], "header is not valid JSON"),
        ([b"NOPE\x00", header, payload], "unknown envelope"),
        ([envelope, header, payload[:-4]], "payload is 124 bytes"),
    ]

    def check(stream, seqs, good_rows):
        spikes = [sim.plan(s - 1)[1] for s in seqs if sim.plan(s - 1)[0] == "spike"]
        assert_rows_equal(rows(stream, OE_SPIKES), [sim.waveform(b) for b in spikes])
        line = stream.column("line")
        assert [int(line[k]) for k in good_rows] == [0, INT_MISSING, 1, INT_MISSING]

    return good, bad, check


def _karabo_malformed():
    sim = KaraboSimulator()
    good = [sim.message(i) for i in range(4)]
    frames = sim.message(5)
    name = "SIM_DET_SMALL/CAL/APPEND_CORRECTED:image.data"
    at = next(k for k in range(0, len(frames), 2) if b"image.data" in frames[k])
    short = [*frames[: at + 1], frames[at + 1][:-4], *frames[at + 2 :]]
    bad = [
        ([b"\xc1"], "not valid msgpack"),
        (frames[:3], "an even count"),
        (short, f"array {name} (frame {at + 1}): payload is"),
    ]
    return (
        good,
        bad,
        lambda stream, seqs, _: assert_rows_equal(
            rows(stream, name), [_train_arrays(sim, s - FIRST_TRAIN)[name] for s in seqs]
        ),
    )


MALFORMED = {
    "adzmq": _adzmq_malformed,
    "openephys": _openephys_malformed,
    "karabo": _karabo_malformed,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", list(MALFORMED))
def test_malformed_messages_are_kept_verbatim_between_good_ones(ctx, tmp_path, protocol):
    good, bad, check_arrays = MALFORMED[protocol]()
    order = ["g", "g", "b", "g", "b", "b", "g"]  # good and bad interleaved
    goods, bads = iter(good), iter(bad)
    sent, reasons = [], {}
    for k, kind in enumerate(order):
        if kind == "g":
            sent.append(next(goods))
        else:
            frames, reason = next(bads)
            sent.append(frames)
            reasons[k] = reason
    send_all, push = _push_into(ctx, sent)
    spec = SourceSpec("tcp://127.0.0.1:*", socket_type="PULL", bind=True, protocol=protocol)
    try:
        path = record(tmp_path, spec, count=len(sent), on_started=send_all)
    finally:
        for sock in push:
            sock.close()
    stream = stream_of(path)
    assert frames_of(stream) == sent  # rejects too, byte for byte
    rejects = stream.rejects()
    assert [k for k, _ in rejects] == sorted(reasons)
    for k, why in rejects:
        assert reasons[k] in why, (k, why)
    flags = stream.column("flags")
    assert [k for k in range(len(sent)) if flags[k] & 1] == sorted(reasons)
    good_rows = [k for k in range(len(sent)) if k not in reasons]
    seq = stream.column("seq")
    assert set(seq[sorted(reasons)]) == {-1}
    good_seqs = [int(seq[k]) for k in good_rows]
    assert all(s >= 0 for s in good_seqs)
    check_arrays(stream, good_seqs, good_rows)
    summary = summary_of(path)
    assert summary["status"] == "complete" and summary["rejects"] == len(reasons)
    assert summary["messages"] == len(sent) and summary["drops"] == 0


@pytest.mark.timeout(120)
def test_reqrep_proxy_lets_the_last_reply_leave(ctx, tmp_path):
    """With `count`, the proxy stops right after forwarding the last reply; that reply must
    still reach the client (regression: the sockets closed with linger 0 and dropped it, about
    1 in 10 CLI tries). A large reply takes long enough on the wire to lose it every time."""
    reply = bytes(8 << 20)
    service = ctx.socket(zmq.REP)
    service.linger = 0
    service.bind("tcp://127.0.0.1:*")
    upstream = service.getsockopt_string(zmq.LAST_ENDPOINT)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if service.poll(20):
                service.recv()
                service.send(reply)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    lost = []
    try:
        for attempt in range(20):
            count = 1 + attempt % 2
            clients: list[zmq.Socket] = []

            def ask(rec, clients=clients, count=count):
                for i in range(count):
                    c = _client(ctx, rec.streams[0].bound_endpoint)
                    clients.append(c)
                    c.send(b"request %d" % i)

            try:
                record(tmp_path / str(attempt), _proxy_spec(upstream), count=count, on_started=ask)
                # the recording has ended: every client must still get its whole reply
                got = [c.recv() if c.poll(5_000) else None for c in clients]
                if got != [reply] * count:
                    lost.append(attempt)
            finally:
                for c in clients:
                    c.close()
    finally:
        stop.set()
        server.join(5)
        service.close()
    assert lost == [], f"replies lost in attempts {lost}"
