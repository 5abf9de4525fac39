"""Open Ephys ZMQ Interface / Event Broadcaster codec, encoders, heartbeat and simulator."""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.errors import MalformedMessage
from recorder.protocols import openephys as oe
from recorder.protocols.base import NO_SEQ, NO_TIME
from recorder.simulators.openephys import OpenEphysSimulator

CODEC = oe.OpenEphysCodec()
SIM = OpenEphysSimulator(n_channels=3, n_samples=16, ttl_every=2, spike_every=3, spike_channels=2)
NL = "\r\n"


def crlf(*lines: str) -> bytes:
    return NL.join(lines).encode()


# --------------------------------------------------------------------------- JUCE formatting

# JUCE's own JSON unit test ("Float formatting", juce_JSON.cpp) plus float32 values the GUI sends.
JUCE_DOUBLES = {
    1.0: "1.0",
    1.1: "1.1",
    1.01: "1.01",
    0.76378: "0.76378",
    -10.0: "-10.0",
    10.01: "10.01",
    0.0123: "0.0123",
    -3.7e-27: "-3.7e-27",
    1e40: "1.0e40",
    -12345678901234567.0: "-1.234567890123457e16",
    192000.0: "192000.0",
    1234567.0: "1.234567e6",
    0.00006: "0.00006",
    0.000006: "6.0e-6",
    0.0: "0.0",
    30000.0: "30000.0",
    float(np.float32(0.1)): "0.1000000014901161",
    float("nan"): "null",
}


@pytest.mark.parametrize(("value", "text"), list(JUCE_DOUBLES.items()))
def test_juce_double_formatting(value, text):
    assert oe.juce_double(value) == text


def test_juce_string_escapes_like_juce():
    s = 'a"b\\\n\t\x01é\U0001f600\x7f'
    assert oe.juce_string(s) == '"a\\"b\\\\\\n\\t\\u0001\\u00e9\\ud83d\\ude00\\u007f"'
    assert oe.juce_string("cut\0here") == '"cut"'


def test_empty_containers():
    assert oe.juce_json({}) == "{" + NL + "}"
    assert oe.juce_json({"a": []}) == "{" + NL + '  "a": []' + NL + "}"


# --------------------------------------------------------------------------- byte-exact encoders


def test_data_message_bytes():
    frames = oe.encode_data(
        np.array([1.5, -2.0]),
        message_num=1,
        stream="example_data",
        channel_num=0,
        sample_num=1024,
        sample_rate=30000,
        timestamp_ms=1700000000000,
    )
    assert frames[0] == b"DATA\x00"
    assert frames[1] == crlf(
        "{",
        '  "message_num": 1,',
        '  "type": "data",',
        '  "content": {',
        '    "stream": "example_data",',
        '    "channel_num": 0,',
        '    "num_samples": 2,',
        '    "sample_num": 1024,',
        '    "sample_rate": 30000.0',
        "  },",
        '  "data_size": 8,',
        '  "timestamp": 1700000000000',
        "}",
    )
    assert frames[2] == struct.pack("<2f", 1.5, -2.0)


def test_data_message_without_timestamp_and_with_channel_name():
    header = oe.encode_data(
        [0.0],
        message_num=3,
        stream="s",
        channel_num=1,
        sample_num=0,
        sample_rate=2000.5,
        channel_name="CH2",
    )[1]
    assert header == crlf(
        "{",
        '  "message_num": 3,',
        '  "type": "data",',
        '  "content": {',
        '    "stream": "s",',
        '    "channel_num": 1,',
        '    "channel_name": "CH2",',
        '    "num_samples": 1,',
        '    "sample_num": 0,',
        '    "sample_rate": 2000.5',
        "  },",
        '  "data_size": 4',
        "}",
    )


def test_ttl_message_bytes():
    frames = oe.encode_ttl(
        message_num=2,
        stream="example_data",
        source_node=100,
        sample_num=1031,
        line=1,
        state=True,
        timestamp_ms=1700000000034,
    )
    assert frames[0] == b"EVENT\x00"
    assert frames[1] == crlf(
        "{",
        '  "message_num": 2,',
        '  "type": "event",',
        '  "content": {',
        '    "stream": "example_data",',
        '    "source_node": 100,',
        '    "type": 3,',
        '    "sample_num": 1031',
        "  },",
        '  "data_size": 10,',
        '  "timestamp": 1700000000034',
        "}",
    )
    assert frames[2] == bytes([1, 1]) + (2).to_bytes(8, "little")


def test_event_without_data_has_two_frames():
    frames = oe.encode_event(message_num=4, stream="s", source_node=1, event_type=5, sample_num=9)
    assert len(frames) == 2 and b'"data_size": 0' in frames[1]


def test_spike_message_bytes():
    wave = np.arange(6, dtype=np.float32).reshape(2, 3)
    frames = oe.encode_spike(
        wave,
        message_num=7,
        stream="example_data",
        source_node=105,
        electrode="Stereotrode 1",
        sample_num=4242,
        sorted_id=1,
        threshold=[-50.0, -42.5],
        timestamp_ms=1700000000100,
    )
    assert frames[1] == crlf(
        "{",
        '  "message_num": 7,',
        '  "type": "spike",',
        '  "spike": {',
        '    "stream": "example_data",',
        '    "source_node": 105,',
        '    "electrode": "Stereotrode 1",',
        '    "sample_num": 4242,',
        '    "num_channels": 2,',
        '    "num_samples": 3,',
        '    "sorted_id": 1,',
        '    "threshold": [',
        "      -50.0,",
        "      -42.5",
        "    ]",
        "  },",
        '  "timestamp": 1700000000100',
        "}",
    )
    assert frames[2] == wave.tobytes()


def test_legacy_message_bytes():
    buf = np.zeros((2, 4), dtype=np.float32)
    frames = oe.encode_legacy(
        buf, message_no=12, timestamp=4096, sample_rate=30000, n_real_samples=3
    )
    assert frames[1] == crlf(
        "{",
        '  "message_no": 12,',
        '  "type": "data",',
        '  "content": {',
        '    "n_channels": 2,',
        '    "n_samples": 4,',
        '    "n_real_samples": 3,',
        '    "timestamp": 4096,',
        '    "sample_rate": 30000',
        "  },",
        '  "data_size": 32',
        "}",
    )


def test_broadcast_ttl_bytes():
    body = {
        "event_type": "ttl",
        "stream": "example_data",
        "source_node": 100,
        "sample_rate": 30000.0,
        "channel_name": "TTL",
        "sample_number": 5,
        "line": 2,
        "state": True,
    }
    frames = oe.encode_broadcast(oe.BROADCAST_TTL, body)
    assert frames[0] == b"\x00\x00"
    assert frames[1] == crlf(
        "{",
        '  "event_type": "ttl",',
        '  "stream": "example_data",',
        '  "source_node": 100,',
        '  "sample_rate": 30000.0,',
        '  "channel_name": "TTL",',
        '  "sample_number": 5,',
        '  "line": 2,',
        '  "state": true',
        "}",
    )


def test_heartbeat_request_is_python_json_dumps():
    assert oe.heartbeat_request("app", "u-1") == (
        b'{"application": "app", "uuid": "u-1", "type": "heartbeat"}'
    )


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b'{"application": "a", "uuid": "u", "type": "heartbeat"}', b"heartbeat received"),
        (b'{"type": "event", "event": {"type": 3}}', b"message correctly parsed"),
        (b"not json", b"JSON message could not be read"),
        (b'{"unterminated": ', b"JSON message could not be read"),
        (b"", b"heartbeat received"),  # JUCE accepts an empty text
        (b"[1, 2] trailing", b"heartbeat received"),
    ],
)
def test_heartbeat_reply_like_the_gui(request_bytes, reply):
    assert oe.heartbeat_reply(request_bytes) == reply


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("i", range(40))
def test_decode_simulator_messages(i):
    frames = SIM.message(i)
    d = CODEC.decode(frames)
    kind, block, channel = SIM.plan(i)
    header = json.loads(frames[1])
    assert d.seq == i + 1 and d.seq_key == ""
    assert d.source_ns == header["timestamp"] * 1_000_000
    if kind == "data":
        assert d.kind == "data"
        assert d.columns == {
            "stream": "example_data",
            "channel_num": channel,
            "channel_name": f"CH{channel + 1}",  # the current plugin's format, the default
            "num_samples": 16,
            "sample_num": block * 16,
            "sample_rate": 30000.0,
        }
        (bulk,) = d.bulk
        assert bulk.frame == 2 and bulk.name == "continuous/example_data"
        assert (bulk.row, bulk.column, bulk.sample_rate) == (block * 16, channel, 30000.0)
        assert bulk.array.dtype == np.float32 and bulk.array.shape == (16,)
        np.testing.assert_array_equal(bulk.array, SIM.samples(block, channel))
    elif kind == "ttl":
        assert d.kind == "event" and d.bulk == []
        n = block // 2
        assert d.columns == {
            "sample_num": block * 16 + 7,
            "event_type": 3,
            "source_node": 100,
            "stream": "example_data",
            "line": n % 8,
            "state": int(n % 2 == 0),
            "word": (1 << (n % 8)) if n % 2 == 0 else 0,
        }
    else:
        assert d.kind == "spike"
        (bulk,) = d.bulk
        assert bulk.name == "spikes/example_data/Tetrode 1" and bulk.array.shape == (2, 40)
        np.testing.assert_array_equal(bulk.array, SIM.waveform(block))
        assert d.columns["electrode"] == "Tetrode 1" and d.columns["sorted_id"] == 0
        assert d.columns["sample_num"] == block * 16 + 20


def test_simulator_plan_covers_all_kinds_deterministically():
    kinds = [SIM.plan(i)[0] for i in range(40)]
    assert {"data", "ttl", "spike"} <= set(kinds)
    assert SIM.message(17) == OpenEphysSimulator(
        n_channels=3, n_samples=16, ttl_every=2, spike_every=3, spike_channels=2
    ).message(17)


def test_decode_legacy_block():
    sim = OpenEphysSimulator(legacy=True, n_channels=4, n_samples=32)
    d = CODEC.decode(sim.message(5))
    assert d.kind == "data" and d.seq == 6 and d.source_ns == NO_TIME
    (bulk,) = d.bulk
    assert bulk.name == "continuous_legacy" and bulk.array.shape == (4, 32)
    assert bulk.row is None and bulk.column is None  # whole blocks stay one row per message
    np.testing.assert_array_equal(bulk.array[2], sim.samples(5, 2))
    assert d.columns["n_channels"] == 4 and d.columns["timestamp"] == 5 * 32


def test_decode_data_as_memoryviews_is_zero_copy():
    frames = [memoryview(bytearray(f)) for f in SIM.message(0)]
    d = CODEC.decode(frames)
    assert np.shares_memory(d.bulk[0].array, np.frombuffer(frames[2], dtype=np.uint8))


def test_decode_broadcaster():
    body = {
        "event_type": "ttl",
        "stream": "s",
        "source_node": 1,
        "sample_rate": 30000.0,
        "channel_name": "TTL",
        "sample_number": 5,
        "line": 2,
        "state": False,
    }
    d = CODEC.decode(oe.encode_broadcast(oe.BROADCAST_TTL, body))
    assert d.kind == "event" and d.seq == NO_SEQ and d.bulk == []
    assert d.columns == {**body, "format": "json"}
    d = CODEC.decode(oe.encode_broadcast(oe.BROADCAST_SPIKE, b"\x04raw spike bytes"))
    assert d.kind == "spike" and d.columns == {"format": "binary"}


def _data(header_changes=None, content_changes=None, payload=None, drop=()):
    header = json.loads(SIM.message(0)[1])
    header["content"].update(content_changes or {})
    for key in drop:
        header["content"].pop(key, None)
        header.pop(key, None)
    header.update(header_changes or {})
    return [
        b"DATA\x00",
        json.dumps(header).encode(),
        SIM.message(0)[2] if payload is None else payload,
    ]


def _event(changes=None, frames_after=(b"\x01\x01" + bytes(8),)):
    header = {
        "message_num": 1,
        "type": "event",
        "data_size": 10,
        "content": {"stream": "s", "source_node": 1, "type": 3, "sample_num": 0},
    }
    header.update(changes or {})
    return [b"EVENT\x00", json.dumps(header).encode(), *frames_after]


def _spike(changes=None, payload=bytes(8)):
    spike = {
        "stream": "s",
        "source_node": 1,
        "electrode": "e",
        "sample_num": 0,
        "num_channels": 1,
        "num_samples": 2,
        "sorted_id": 0,
        "threshold": [0.0],
    }
    spike.update(changes or {})
    header = {"message_num": 1, "type": "spike", "spike": spike}
    return [b"EVENT\x00", json.dumps(header).encode(), payload]


MALFORMED = [
    ([], "empty message"),
    ([b"DATA\x00"], "no header frame"),
    ([b"HELLO\x00", b"{}"], "unknown envelope"),
    ([b"DATA\x00", b"not json", b""], "not valid JSON"),
    ([b"DATA\x00", b"\xff\xfe", b""], "not valid JSON"),
    ([b"DATA\x00", b'{"message_num": NaN}', b""], "not valid JSON"),
    ([b"DATA\x00", b"[1, 2]", b""], "not an object"),
    ([b"DATA\x00", b"[" * 100000 + b"]" * 100000, b""], "not valid JSON"),
    ([b"DATA\x00", b"{}", b""], "has no 'message_num'"),
    (_data()[:2], "needs 3 frames"),
    ([*_data(), b"extra"], "needs 3 frames"),
    (_data(payload=b"\x00" * 4), "payload is 4 bytes"),
    (_data(header_changes={"data_size": 12}), "data_size 12"),
    (_data(header_changes={"message_num": "1"}), "not an integer"),
    (_data(header_changes={"message_num": True}), "not an integer"),
    (_data(header_changes={"message_num": 2**64}), "out of range"),
    (_data(header_changes={"timestamp": 2**62}), "out of range"),
    (_data(header_changes={"timestamp": 1.5}), "not an integer"),
    (_data(header_changes={"type": "spike"}), "does not fit envelope"),
    (_data(header_changes={"content": []}), "not an object"),
    (_data(content_changes={"sample_rate": "fast"}), "not a finite number"),
    (_data(content_changes={"stream": 5}), "not a string"),
    (_data(content_changes={"num_samples": -1}), "out of range"),
    (
        _data(content_changes={"num_samples": 2**62}, header_changes={"data_size": 2**64}),
        "out of range",
    ),
    (
        _data(content_changes={"num_samples": 2**61}, header_changes={"data_size": 2**63 - 8}),
        "data_size",
    ),
    (_data(drop=("content",)), "has no 'content'"),
    (_data(drop=("channel_num",)), "has no 'channel_num'"),
    (_event({"type": "parameter"}), "does not fit envelope"),
    (_event(frames_after=()), "needs 3 frames"),
    (_event(frames_after=(bytes(9),)), "event payload is 9 bytes"),
    (_event({"data_size": 0}), "needs 2 frames"),
    (_event({"content": {"stream": "s", "type": 3, "sample_num": 0}}), "has no 'source_node'"),
    (_spike(payload=bytes(4)), "spike payload is 4 bytes"),
    (_spike({"electrode": 3}), "not a string"),
    (_spike({"num_channels": None}), "not an integer"),
    (_spike()[:2], "needs 3 frames"),
    (
        [b"DATA\x00", b'{"message_no": 1, "type": "data", "content": {}, "data_size": 0}', b""],
        "has no 'n_samples'",
    ),
    (
        [b"EVENT\x00", b'{"message_no": 1, "type": "data", "content": {}, "data_size": 0}'],
        "does not fit envelope",
    ),
    ([b"\x07\x00", b"{}"], "is not 0 (TTL)"),
    ([b"\x00\x00", b"{ bad"], "not valid JSON"),
]


@pytest.mark.parametrize(("frames", "reason"), MALFORMED)
def test_malformed_messages_say_why(frames, reason):
    with pytest.raises(MalformedMessage) as err:
        CODEC.decode(frames)
    assert reason in err.value.reason


def test_sniff():
    assert oe.sniff(SIM.message(0)) and oe.sniff(SIM.message(3))
    assert oe.sniff(oe.encode_broadcast(0, {"a": 1}))
    assert not oe.sniff([b'{"htype":"array-1.0"}', b""])
    assert not oe.sniff([b"image", b"", b""]) and not oe.sniff([]) and not oe.sniff([None])


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    for key, value in obj.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


@st.composite
def mutated_messages(draw):
    frames = [bytes(f) for f in SIM.message(draw(st.integers(0, 40)))]
    op = draw(st.sampled_from(["header", "header", "flip", "truncate", "drop", "dup", "append"]))
    if op == "header":
        header = json.loads(frames[1])
        path = draw(st.sampled_from(list(_paths(header))))
        target = header
        for key in path[:-1]:
            target = target[key]
        if draw(st.booleans()):
            target[path[-1]] = draw(json_values)
        else:
            del target[path[-1]]
        frames[1] = json.dumps(header).encode()
    else:
        k = draw(st.integers(0, len(frames) - 1))
        if op == "flip" and frames[k]:
            pos = draw(st.integers(0, len(frames[k]) - 1))
            frames[k] = (
                frames[k][:pos]
                + bytes([frames[k][pos] ^ draw(st.integers(1, 255))])
                + frames[k][pos + 1 :]
            )
        elif op == "truncate":
            frames[k] = frames[k][: draw(st.integers(0, len(frames[k])))]
        elif op == "drop":
            del frames[k]
        elif op == "dup":
            frames.insert(k, frames[k])
        else:
            frames.append(draw(st.binary(max_size=16)))
    return frames


def _decode_or_reject(frames):
    try:
        d = CODEC.decode(frames)
    except MalformedMessage as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return
    for b in d.bulk:
        assert b.array.nbytes == memoryview(frames[b.frame]).nbytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_fuzz_random_frames(frames):
    _decode_or_reject(frames)
    oe.sniff(frames)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_fuzz_mutated_messages(frames):
    _decode_or_reject(frames)
    oe.sniff(frames)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"DATA\x00", b"EVENT\x00", b"\x00\x00", b"\x01\x00"]),
        min_size=1,
        max_size=1,
    ),
    st.lists(st.binary(max_size=32), max_size=3),
)
def test_fuzz_valid_envelopes_with_garbage(envelope, rest):
    _decode_or_reject(envelope + rest)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_heartbeat_reply_never_raises(request_bytes):
    assert oe.heartbeat_reply(request_bytes) in (
        oe.HEARTBEAT_REPLY,
        oe.EVENT_REPLY,
        oe.BAD_JSON_REPLY,
    )


# --------------------------------------------------------------------------- heartbeat client


def test_heartbeat_endpoint():
    assert oe.heartbeat_endpoint("tcp://127.0.0.1:5556") == "tcp://127.0.0.1:5557"
    assert oe.heartbeat_endpoint("tcp://[::1]:6000") == "tcp://[::1]:6001"
    with pytest.raises(Exception, match="heartbeat port"):
        oe.heartbeat_endpoint("ipc:///tmp/x")


@pytest.mark.timeout(30)
def test_heartbeat_client_lazy_pirate_timing():
    ctx = zmq.Context()
    try:
        hb = oe.HeartbeatClient(ctx, "tcp://127.0.0.1:9", "test", now=100.0)  # nobody listens
        first = hb.socket
        assert hb.due(100.0)
        assert hb.tick(100.0) is False and hb.waiting  # heartbeat sent
        assert not hb.due(101.0) and hb.tick(101.0) is False
        assert hb.tick(102.5) is False and hb.socket is first  # no reply yet: retry, keep socket
        for t in (104.0, 105.0, 106.0, 107.0, 108.0, 109.0, 110.0):
            assert hb.tick(t) is False
        assert hb.tick(111.0) is True  # > 10 s without reply: socket replaced
        assert hb.socket is not first and hb.reconnects == 1 and not hb.waiting
        assert hb.tick(111.5) is False and hb.waiting  # next heartbeat right away
        hb.close()
    finally:
        ctx.term()


# --------------------------------------------------------------------------- real sockets


@pytest.mark.timeout(30)
def test_simulator_over_sockets_with_gap():
    ctx = zmq.Context()
    sim = OpenEphysSimulator(
        "tcp://127.0.0.1:*",
        rate=0,
        count=30,
        skip=frozenset({5, 9}),
        ctx=ctx,
        wait_for_subscriber=True,
        n_channels=2,
        n_samples=8,
    )
    endpoint = sim.bind()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    thread = threading.Thread(target=sim.run)
    thread.start()
    try:
        got = []
        while len(got) < 28:
            assert sub.poll(10_000), "simulator went quiet"
            got.append(sub.recv_multipart())
        thread.join(10)
        assert sim.sent == 28
        seqs = [CODEC.decode(f).seq for f in got]
        assert seqs == [n for n in range(1, 31) if n not in (5, 9)]
        assert got[0] == sim.message(0) and got[-1] == sim.message(29)
    finally:
        thread.join(10)
        sub.close(linger=0)
        ctx.term()


@pytest.mark.timeout(30)
def test_simulator_answers_heartbeats_like_the_gui():
    ctx = zmq.Context()
    stop = threading.Event()
    sim = OpenEphysSimulator("tcp://127.0.0.1:0", rate=50, ctx=ctx, n_channels=1, n_samples=4)
    endpoint = sim.bind()
    assert int(sim.heartbeat_endpoint.rsplit(":", 1)[1]) == int(endpoint.rsplit(":", 1)[1]) + 1
    thread = threading.Thread(target=sim.run, args=(stop,))
    thread.start()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(sim.heartbeat_endpoint)
    hb = oe.HeartbeatClient(ctx, endpoint, "pytest")
    try:
        for request, reply in [
            (oe.heartbeat_request("x", "u"), b"heartbeat received"),
            (b"{broken", b"JSON message could not be read"),
            (b'{"type": "event"}', b"message correctly parsed"),
        ]:
            req.send(request)
            assert req.poll(10_000)
            assert req.recv() == reply
        deadline = time.monotonic() + 10
        while hb.replies == 0 and time.monotonic() < deadline:
            hb.tick(time.monotonic())
            if hb.socket.poll(50):
                hb.on_readable(time.monotonic())
        assert hb.last_reply == b"heartbeat received" and not hb.waiting
        assert json.loads(sim.heartbeats[-1]) == {
            "application": "pytest",
            "uuid": hb.uuid,
            "type": "heartbeat",
        }
    finally:
        stop.set()
        thread.join(10)
        hb.close()
        req.close()
        ctx.term()
